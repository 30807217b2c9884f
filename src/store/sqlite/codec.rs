//! The packed forms of archived lifetimes (migrations/0001_schema.sql): a group of lifetimes in
//! one blob, the public pairs of a private host, and the state ids of a batch.
//!
//! Varints (LEB128, signed ones zigzag) from `integer-encoding`; times as deltas from the
//! previous lifetime of the group (sorted by start), so a lifetime of a NAT pair costs about
//! 40 bytes instead of a 31-column record and three index entries. Decoding never trusts the
//! blob: a short, overlong or inconsistent one is an error, never a panic.

use integer_encoding::VarInt;
use std::net::IpAddr;

use crate::model::Micros;
use crate::model::{IfName, StateRef};

/// One lifetime with every column `states` holds for it (a archived lifetime has a start and an
/// end; evidence rows never get archived).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub creator_id: u32,
    pub state_id: u64,
    pub ifname: IfName,
    /// `af` column: 2 inet, 24 inet6, else as received.
    pub af: u8,
    pub proto: u8,
    /// 1 in, 2 out, else as received.
    pub direction: u8,
    /// WIRE key: [remote, public] address and port.
    pub w_addr: [IpAddr; 2],
    pub w_port: [u16; 2],
    pub w_rdomain: u16,
    /// STACK key: [remote, private].
    pub s_addr: [IpAddr; 2],
    pub s_port: [u16; 2],
    pub s_rdomain: u16,
    pub s_af: u8,
    pub nat: bool,
    pub start: Micros,
    pub first: Micros,
    pub updated: Micros,
    pub last: Micros,
    pub end: Micros,
    /// 0 delete, 1 delete-full, 2 clear, 3 replaced (as [`REASONS`]).
    pub reason: u8,
    pub expire: u32,
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    pub rule: u32,
    /// Header version it came in: 6 OpenBSD, 5 FreeBSD.
    pub flavor: u8,
}

impl Stored {
    /// The state it is a lifetime of.
    pub fn key(&self) -> StateRef {
        StateRef {
            id: self.state_id,
            creator_id: self.creator_id,
        }
    }
}

/// `end_reason` names by code.
pub const REASONS: [&str; 4] = ["delete", "delete-full", "clear", "replaced"];

/// A blob that does not decode: damage, reported and skipped by the readers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("damaged packed data ({0})")]
pub struct Damaged(pub &'static str);

type Res<T> = std::result::Result<T, Damaged>;

/// Bytes of the checksum that ends every stored blob.
pub const SUM_BYTES: usize = 4;

/// CRC-32 of a row's key parts and its payload. The key is covered so that a row whose key
/// bytes were damaged (read by a full walk: export, check) does not pass for another key.
fn sum(key: &[&[u8]], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for k in key {
        // Each part's length first, so ("ab", "c") and ("a", "bc") differ.
        h.update(&(k.len() as u32).to_le_bytes());
        h.update(k);
    }
    h.update(payload);
    h.finalize()
}

/// A packed blob as it is stored: the payload, then the CRC-32 (little-endian) of the row's
/// key parts and the payload. Every reader checks it ([`verified`]), so a flipped byte is
/// damage reported with its key, never a wrong lifetime or a silently empty group.
pub fn summed(key: &[&[u8]], mut payload: Vec<u8>) -> Vec<u8> {
    let s = sum(key, &payload);
    payload.extend_from_slice(&s.to_le_bytes());
    payload
}

/// The payload of a stored blob whose checksum matches its key and payload.
pub fn verified<'a>(key: &[&[u8]], blob: &'a [u8]) -> Res<&'a [u8]> {
    if blob.len() < SUM_BYTES {
        return Err(Damaged("checksum missing"));
    }
    let (payload, s) = blob.split_at(blob.len() - SUM_BYTES);
    if sum(key, payload).to_le_bytes() != s {
        return Err(Damaged("checksum mismatch"));
    }
    Ok(payload)
}

fn put<V: VarInt>(out: &mut Vec<u8>, v: V) {
    let mut b = [0u8; 10];
    let n = v.encode_var(&mut b);
    out.extend_from_slice(&b[..n]);
}

/// A time delta that is often whole seconds: as seconds then (low bit 1), else as µs.
/// (Deltas here are below 2^60 µs: pcap times and pf ages are 32-bit seconds.)
fn put_secs(out: &mut Vec<u8>, d: i64) {
    if d % 1_000_000 == 0 {
        put(out, ((d / 1_000_000) << 1) | 1);
    } else {
        put(out, d << 1);
    }
}

fn put_addr(out: &mut Vec<u8>, a: &IpAddr) {
    match a {
        IpAddr::V4(v) => out.extend_from_slice(&v.octets()),
        IpAddr::V6(v) => out.extend_from_slice(&v.octets()),
    }
}

/// A bounds-checked reader over a blob.
struct Cur<'a> {
    b: &'a [u8],
}

impl<'a> Cur<'a> {
    fn var<V: VarInt>(&mut self, what: &'static str) -> Res<V> {
        let (v, n) = V::decode_var(self.b).ok_or(Damaged(what))?;
        self.b = &self.b[n..];
        Ok(v)
    }
    fn secs(&mut self, what: &'static str) -> Res<i64> {
        let v: i64 = self.var(what)?;
        Ok(if v & 1 == 1 {
            (v >> 1).wrapping_mul(1_000_000)
        } else {
            v >> 1
        })
    }
    fn take(&mut self, n: usize, what: &'static str) -> Res<&'a [u8]> {
        if self.b.len() < n {
            return Err(Damaged(what));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn byte(&mut self, what: &'static str) -> Res<u8> {
        Ok(self.take(1, what)?[0])
    }
    fn port(&mut self) -> Res<u16> {
        let p = self.take(2, "port")?;
        Ok(u16::from_be_bytes([p[0], p[1]]))
    }
    fn addr(&mut self, v6: bool) -> Res<IpAddr> {
        Ok(if v6 {
            let mut a = [0u8; 16];
            a.copy_from_slice(self.take(16, "address")?);
            IpAddr::from(a)
        } else {
            let a = self.take(4, "address")?;
            IpAddr::from([a[0], a[1], a[2], a[3]])
        })
    }
    fn done(&self) -> bool {
        self.b.is_empty()
    }
}

// Flag bits of a packed lifetime.
const F_FREEBSD: u32 = 1 << 0;
const F_NAT: u32 = 1 << 1;
const F_S0_DIFFERS: u32 = 1 << 2;
const F_RDOMAINS: u32 = 1 << 3;
const F_S_AF_DIFFERS: u32 = 1 << 4;
const F_W0_V6: u32 = 1 << 5;
const F_S1_V6: u32 = 1 << 6;
const F_S0_V6: u32 = 1 << 7;
/// Bits 8..: end reason (2 bits), then af code, direction code (2 bits each: 0, 1, 2 the
/// usual values, 3 = the raw byte follows).
const REASON_SHIFT: u32 = 8;
const AF_SHIFT: u32 = 10;
const DIR_SHIFT: u32 = 12;

fn code(v: u8, usual: [u8; 3]) -> u32 {
    usual.iter().position(|u| *u == v).map_or(3, |p| p as u32)
}

const AFS: [u8; 3] = [2, 24, 0];
const DIRS: [u8; 3] = [1, 2, 0];

/// A section's public pair: in the section header, not in each lifetime.
#[derive(Debug, Clone, Copy)]
struct Public<'a> {
    addr: &'a IpAddr,
    port: u16,
}

/// What the first lifetime of a packed run is a delta from: (start, creator, state id).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Base(i64, i64, i64);

/// Flag bits of a packed lifetime: (bit as the `F_*` constants number it, bit stored). The
/// common ones (NAT, direction, end reason) fit the varint's first byte, so most lifetimes
/// spend one byte on flags instead of two.
const SECTION_FLAGS: [(u32, u32); 14] = [
    (1, 0),
    (12, 1),
    (13, 2),
    (8, 3),
    (9, 4),
    (2, 5),
    (5, 6),
    (6, 7),
    (7, 8),
    (10, 9),
    (11, 10),
    (0, 11),
    (3, 12),
    (4, 13),
];

/// Move flag bits from one order to the other (`to_section`: `F_*` order -> stored order).
fn reorder_flags(f: u32, to_section: bool) -> u32 {
    SECTION_FLAGS.iter().fold(0, |acc, &(g, sec)| {
        let (from, to) = if to_section { (g, sec) } else { (sec, g) };
        acc | (((f >> from) & 1) << to)
    })
}

/// Pack one public pair's lifetimes (any order: sorted here by start) into `out`, the first
/// lifetime's start, creator and id as deltas from `base` (the row's first lifetime: most
/// runs hold one or two lifetimes, and absolute values cost ~22 bytes each). `name` maps an
/// ifname to its id in `names`.
fn pack_rows_from(
    out: &mut Vec<u8>,
    rows: &mut [&Stored],
    mut name: impl FnMut(&IfName) -> u64,
    base: Base,
) {
    rows.sort_by_key(|r| (r.start, r.creator_id, r.state_id));
    let Base(mut start, mut creator, mut id) = base;
    for r in rows.iter() {
        let s0_differs = r.s_addr[0] != r.w_addr[0] || r.s_port[0] != r.w_port[0];
        let mut f = (u32::from(r.reason.min(3)) << REASON_SHIFT)
            | (code(r.af, AFS) << AF_SHIFT)
            | (code(r.direction, DIRS) << DIR_SHIFT);
        for (on, bit) in [
            (r.flavor == 5, F_FREEBSD),
            (r.nat, F_NAT),
            (s0_differs, F_S0_DIFFERS),
            (r.w_rdomain != 0 || r.s_rdomain != 0, F_RDOMAINS),
            (r.s_af != r.af, F_S_AF_DIFFERS),
            (r.w_addr[0].is_ipv6(), F_W0_V6),
            (r.s_addr[1].is_ipv6(), F_S1_V6),
            (s0_differs && r.s_addr[0].is_ipv6(), F_S0_V6),
        ] {
            if on {
                f |= bit;
            }
        }
        put(out, reorder_flags(f, true));
        if code(r.af, AFS) == 3 {
            out.push(r.af);
        }
        if code(r.direction, DIRS) == 3 {
            out.push(r.direction);
        }
        out.push(r.proto);
        put(out, r.start.wrapping_sub(start));
        put(out, r.end.wrapping_sub(r.start));
        // start = first full message - its creation age in whole seconds.
        put_secs(out, r.first.wrapping_sub(r.start));
        put(out, r.updated.wrapping_sub(r.first));
        put(out, r.last.wrapping_sub(r.end));
        put(out, i64::from(r.creator_id).wrapping_sub(creator));
        put(out, (r.state_id as i64).wrapping_sub(id));
        put(out, name(&r.ifname));
        put_addr(out, &r.w_addr[0]);
        out.extend_from_slice(&r.w_port[0].to_be_bytes());
        put_addr(out, &r.s_addr[1]);
        out.extend_from_slice(&r.s_port[1].to_be_bytes());
        if s0_differs {
            put_addr(out, &r.s_addr[0]);
            out.extend_from_slice(&r.s_port[0].to_be_bytes());
        }
        if f & F_RDOMAINS != 0 {
            put(out, r.w_rdomain);
            put(out, r.s_rdomain);
        }
        if f & F_S_AF_DIFFERS != 0 {
            out.push(r.s_af);
        }
        put(out, r.expire);
        for v in [r.packets[0], r.packets[1], r.bytes[0], r.bytes[1]] {
            put(out, v);
        }
        put(out, r.rule);
        (start, creator, id) = (r.start, i64::from(r.creator_id), r.state_id as i64);
    }
}

/// The inverse of [`pack_rows_from`], appending to `out`; `name` resolves an ifname id
/// (None: damage).
fn unpack_rows_from(
    out: &mut Vec<Stored>,
    blob: &[u8],
    public: Public,
    mut name: impl FnMut(u64) -> Option<String>,
    base: Base,
) -> Res<()> {
    let mut c = Cur { b: blob };
    let Base(mut start, mut creator, mut id) = base;
    while !c.done() {
        let f = reorder_flags(c.var("flags")?, false);
        let raw = |c: &mut Cur, code: u32, usual: [u8; 3]| -> Res<u8> {
            if code == 3 {
                c.byte("code")
            } else {
                Ok(usual[code as usize])
            }
        };
        let af = raw(&mut c, (f >> AF_SHIFT) & 3, AFS)?;
        let direction = raw(&mut c, (f >> DIR_SHIFT) & 3, DIRS)?;
        let reason = ((f >> REASON_SHIFT) & 3) as u8;
        if usize::from(reason) >= REASONS.len() {
            return Err(Damaged("end reason"));
        }
        let proto = c.byte("proto")?;
        start = start.wrapping_add(c.var::<i64>("start")?);
        let end = start.wrapping_add(c.var::<i64>("end")?);
        let first = start.wrapping_add(c.secs("first")?);
        let updated = first.wrapping_add(c.var::<i64>("updated")?);
        let last = end.wrapping_add(c.var::<i64>("last")?);
        creator = creator.wrapping_add(c.var::<i64>("creator")?);
        id = id.wrapping_add(c.var::<i64>("state id")?);
        let ifname = name(c.var("ifname")?).ok_or(Damaged("ifname"))?;
        let w0 = c.addr(f & F_W0_V6 != 0)?;
        let wp0 = c.port()?;
        let s1 = c.addr(f & F_S1_V6 != 0)?;
        let sp1 = c.port()?;
        let (s0, sp0) = if f & F_S0_DIFFERS != 0 {
            (c.addr(f & F_S0_V6 != 0)?, c.port()?)
        } else {
            (w0, wp0)
        };
        let (w_rdomain, s_rdomain) = if f & F_RDOMAINS != 0 {
            (c.var("rdomain")?, c.var("rdomain")?)
        } else {
            (0, 0)
        };
        let s_af = if f & F_S_AF_DIFFERS != 0 {
            c.byte("s_af")?
        } else {
            af
        };
        let expire = c.var("expire")?;
        let packets = [c.var("packets")?, c.var("packets")?];
        let bytes = [c.var("bytes")?, c.var("bytes")?];
        let rule = c.var("rule")?;
        out.push(Stored {
            creator_id: u32::try_from(creator).map_err(|_| Damaged("creator"))?,
            state_id: id as u64,
            ifname: ifname.into(),
            af,
            proto,
            direction,
            w_addr: [w0, *public.addr],
            w_port: [wp0, public.port],
            w_rdomain,
            s_addr: [s0, s1],
            s_port: [sp0, sp1],
            s_rdomain,
            s_af,
            nat: f & F_NAT != 0,
            start,
            first,
            updated,
            last,
            end,
            reason,
            expire,
            packets,
            bytes,
            rule,
            flavor: if f & F_FREEBSD != 0 { 5 } else { 6 },
        });
    }
    Ok(())
}

/// The row a public pair's lifetimes go to in a bucket of `2^bits` hashed groups.
///
/// Stored on disk (the row key), so this function must never change: FNV-1a over the
/// address bytes and the port, high bits first. (Not ahash or std's hasher: their output
/// may change between versions or runs.)
pub fn hashed_group(addr: &IpAddr, port: u16, bits: u32) -> i64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    };
    match addr {
        IpAddr::V4(v) => v.octets().into_iter().for_each(&mut eat),
        IpAddr::V6(v) => v.octets().into_iter().for_each(&mut eat),
    }
    port.to_be_bytes().into_iter().for_each(&mut eat);
    // A final mix: FNV's high bits depend weakly on the last bytes.
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 32;
    match bits {
        0 => 0,
        b => (h >> (64 - b.min(62))) as i64,
    }
}

/// Pack the lifetimes of a hashed group (several public pairs): the start, creator and id
/// every run is a delta from, a table of the public addresses, then per pair its address
/// (index), port and the length of its lifetimes packed by [`pack_rows_from`], then
/// those. A reader after one pair skips the others unread.
pub fn pack_sections(rows: &mut [&Stored], mut name: impl FnMut(&IfName) -> u64) -> Vec<u8> {
    sort_for_sections(rows);
    let mut out = Vec::with_capacity(rows.len() * 48);
    let base = rows.first().map_or(Base::default(), |r| {
        Base(r.start, i64::from(r.creator_id), r.state_id as i64)
    });
    for v in [base.0, base.1, base.2] {
        put(&mut out, v);
    }
    let mut addrs: Vec<IpAddr> = rows.iter().map(|r| r.w_addr[1]).collect();
    addrs.dedup();
    put_addrs(&mut out, &addrs);
    let mut body = Vec::with_capacity(256);
    let (mut at, mut a) = (0, 0u64);
    while at < rows.len() {
        let (addr, port) = (rows[at].w_addr[1], rows[at].w_port[1]);
        let n = rows[at..]
            .iter()
            .take_while(|r| r.w_addr[1] == addr && r.w_port[1] == port)
            .count();
        body.clear();
        pack_rows_from(&mut body, &mut rows[at..at + n], &mut name, base);
        // Sorted by address: the index only ever stays or moves on.
        while addrs.get(a as usize).is_some_and(|x| *x != addr) {
            a += 1;
        }
        put(&mut out, a);
        out.extend_from_slice(&port.to_be_bytes());
        put(&mut out, body.len() as u64);
        out.extend_from_slice(&body);
        at += n;
    }
    out
}

/// The order of a hashed group's lifetimes: by public pair, then start, creator and id.
pub fn sort_for_sections(rows: &mut [&Stored]) {
    rows.sort_by(|a, b| {
        (a.w_addr[1], a.w_port[1], a.start, a.creator_id, a.state_id).cmp(&(
            b.w_addr[1],
            b.w_port[1],
            b.start,
            b.creator_id,
            b.state_id,
        ))
    });
}

/// Unpack a hashed group's blob: every pair's lifetimes, or those of `only`.
pub fn unpack_sections(
    blob: &[u8],
    only: Option<(&IpAddr, u16)>,
    mut name: impl FnMut(u64) -> Option<String>,
) -> Res<Vec<Stored>> {
    let mut c = Cur { b: blob };
    let mut out = Vec::new();
    if c.done() {
        return Ok(out);
    }
    let base = Base(
        c.var("base start")?,
        c.var("base creator")?,
        c.var("base id")?,
    );
    let addrs = get_addrs(&mut c)?;
    while !c.done() {
        let a: u64 = c.var("address")?;
        let addr = *addrs.get(a as usize).ok_or(Damaged("address index"))?;
        let port = c.port()?;
        let len: u64 = c.var("section length")?;
        let len = usize::try_from(len).map_err(|_| Damaged("section length"))?;
        let body = c.take(len, "section")?;
        if only.is_some_and(|(a, p)| *a != addr || p != port) {
            continue;
        }
        let public = Public { addr: &addr, port };
        unpack_rows_from(&mut out, body, public, &mut name, base)?;
    }
    Ok(out)
}

/// Bits of a pair's hash a [`Spot`] keeps: as many as a bucket's groups can use.
pub const SPOT_BITS: u32 = 24;

/// Where in its bucket a archived lifetime's row is: the top [`SPOT_BITS`] of its public
/// pair's hash ([`hashed_group`]). In a bucket of 2^bits hashed groups its group is the top
/// `bits` of them, whatever bits a later merge chooses. Three bytes instead of an address
/// and a port; the reader then finds the lifetime among its group's by id or private
/// address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Spot(pub u32);

impl Spot {
    /// The spot of pair (addr, port).
    pub fn hashed(addr: &IpAddr, port: u16) -> Spot {
        Spot(hashed_group(addr, port, SPOT_BITS) as u32)
    }
}

/// The group of a hash spot in a bucket of `2^bits` hashed groups.
pub fn spot_group(hash: u32, bits: u32) -> i64 {
    i64::from(hash >> (SPOT_BITS - bits.min(SPOT_BITS)))
}

/// Where a archived lifetime is filed: class, bucket and spot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Filed {
    pub dur_class: i64,
    pub start_bucket: i64,
    pub spot: Spot,
}

/// A table of distinct addresses at the head of a blob, so entries name one by index.
fn put_addrs(out: &mut Vec<u8>, addrs: &[IpAddr]) {
    put(out, addrs.len() as u64);
    for a in addrs {
        out.push(if a.is_ipv6() { 16 } else { 4 });
        put_addr(out, a);
    }
}

fn get_addrs(c: &mut Cur) -> Res<Vec<IpAddr>> {
    let n: u64 = c.var("address count")?;
    // Each address takes at least 5 bytes: a count beyond the blob is damage.
    if n > c.b.len() as u64 / 5 {
        return Err(Damaged("address count"));
    }
    (0..n)
        .map(|_| match c.byte("address length")? {
            4 => c.addr(false),
            16 => c.addr(true),
            _ => Err(Damaged("address length")),
        })
        .collect()
}

/// Column `form` of `archive_batches`: the one form [`pack_ids`] writes (any other is damage).
pub const IDS_FORM: i64 = 2;

fn zigzag(d: i64) -> u64 {
    ((d << 1) ^ (d >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    (z >> 1) as i64 ^ -((z & 1) as i64)
}

/// A spot's hash, 3 bytes big-endian.
fn put_hash(out: &mut Vec<u8>, h: u32) {
    out.extend_from_slice(&h.to_be_bytes()[1..]);
}

fn get_hash(c: &mut Cur) -> Res<u32> {
    let b = c.take(3, "hash")?;
    Ok(u32::from_be_bytes([0, b[0], b[1], b[2]]))
}

/// The first byte of an id list and of a history list: always zero (anything else is
/// damage).
fn put_head(out: &mut Vec<u8>) {
    out.push(0);
}

fn get_head(c: &mut Cur) -> Res<()> {
    match c.byte("list head")? {
        0 => Ok(()),
        _ => Err(Damaged("list head")),
    }
}

/// The ids of one batch (one creator, one id group), each with where it is filed; `ids`
/// sorted by id. Packed as [`IDS_FORM`]: after the head, per id its delta, then class (< 16,
/// as `class_of` gives), bucket delta and a set bit 4 in one varint (bit 4 clear is damage),
/// then the spot's three bytes.
pub fn pack_ids(ids: &[(u64, Filed)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ids.len() * 5 + 1);
    put_head(&mut out);
    let (mut prev_id, mut prev_tb) = (ids.first().map_or(0, |i| i.0), [0i64; 16]);
    for (id, f) in ids {
        put(&mut out, id.wrapping_sub(prev_id));
        let slot = f.dur_class.clamp(0, 15) as usize;
        let d = zigzag(f.start_bucket.wrapping_sub(prev_tb[slot]));
        put(&mut out, d << 5 | 1 << 4 | (f.dur_class as u64 & 15));
        put_hash(&mut out, f.spot.0);
        (prev_id, prev_tb[slot]) = (*id, f.start_bucket);
    }
    out
}

/// The inverse of [`pack_ids`], given the batch's lowest id.
pub fn unpack_ids(blob: &[u8], min_id: u64) -> Res<Vec<(u64, Filed)>> {
    let mut c = Cur { b: blob };
    get_head(&mut c)?;
    let mut out = Vec::new();
    let (mut id, mut prev_tb) = (min_id, [0i64; 16]);
    while !c.done() {
        id = id.wrapping_add(c.var::<u64>("id")?);
        let x: u64 = c.var("class and bucket")?;
        if x & 16 == 0 {
            return Err(Damaged("spot kind"));
        }
        let (dur_class, delta) = ((x & 15) as i64, unzigzag(x >> 5));
        let slot = dur_class as usize;
        let start_bucket = prev_tb[slot].wrapping_add(delta);
        prev_tb[slot] = start_bucket;
        let spot = Spot(get_hash(&mut c)?);
        out.push((
            id,
            Filed {
                dur_class,
                start_bucket,
                spot,
            },
        ));
    }
    Ok(out)
}

/// Where a private host's archived lifetimes of one class and 72-minute bucket are filed: the
/// (archived bucket, spot) of each group, sorted.
pub type Pair = (i64, Spot);

/// Column `form` of `archive_hosts`: the one form [`pack_pairs`] writes (any other is
/// damage).
pub const PAIRS_FORM: i64 = 1;

/// A history row's list: after the head, per entry its bucket as a delta from the
/// previous one, shifted left once over a set low bit (clear is damage), then the spot's
/// three bytes. The first is a delta from `base`, the archived bucket its history bucket
/// starts in (most entries are a delta of 0 or 1 from it).
pub fn pack_pairs(pairs: &[Pair], base: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(pairs.len() * 4 + 1);
    put_head(&mut out);
    let mut prev_tb = base;
    for (start_bucket, spot) in pairs {
        put(
            &mut out,
            zigzag(start_bucket.wrapping_sub(prev_tb)) << 1 | 1,
        );
        put_hash(&mut out, spot.0);
        prev_tb = *start_bucket;
    }
    out
}

/// The inverse of [`pack_pairs`].
pub fn unpack_pairs(blob: &[u8], base: i64) -> Res<Vec<Pair>> {
    let mut c = Cur { b: blob };
    get_head(&mut c)?;
    let mut out = Vec::new();
    let mut start_bucket = base;
    while !c.done() {
        let x: u64 = c.var("bucket")?;
        if x & 1 == 0 {
            return Err(Damaged("spot kind"));
        }
        start_bucket = start_bucket.wrapping_add(unzigzag(x >> 1));
        out.push((start_bucket, Spot(get_hash(&mut c)?)));
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Lifetime `i` of a test group: NAT 10.0.0.i:5000i -> 192.0.2.2:61234 -> 192.0.2.1:443.
    pub(crate) fn stored(i: u64) -> Stored {
        let v4 = |x: u8| IpAddr::from([192, 0, 2, x]);
        Stored {
            creator_id: 0xdead_beef,
            state_id: 0x6500_0000_0000_0000 + i,
            ifname: if i % 2 == 0 { "em0" } else { "vlan12" }.into(),
            af: 2,
            proto: 6,
            direction: 2,
            w_addr: [v4(1), v4(2)],
            w_port: [443, 61234],
            w_rdomain: 0,
            s_addr: [v4(1), IpAddr::from([10, 0, 0, i as u8])],
            s_port: [443, 50000 + i as u16],
            s_rdomain: 0,
            s_af: 2,
            nat: true,
            start: 1_767_571_200_000_000 + i as i64 * 977,
            first: 1_767_571_200_000_000 + i as i64 * 977 + 5_000_000,
            updated: 1_767_571_200_000_000 + i as i64 * 977 + 9_000_000,
            last: 1_767_571_200_000_000 + i as i64 * 977 + 12_000_000,
            end: 1_767_571_200_000_000 + i as i64 * 977 + 12_000_000,
            reason: 0,
            expire: 86400,
            packets: [10 * i, 12],
            bytes: [1000 * i, 5000],
            rule: 3,
            flavor: 6,
        }
    }

    fn names() -> (impl FnMut(&IfName) -> u64, Vec<String>) {
        (
            |n: &IfName| if *n == "em0" { 0 } else { 1 },
            vec!["em0".into(), "vlan12".into()],
        )
    }

    #[test]
    fn a_group_round_trips_every_column() {
        let mut rows: Vec<Stored> = (0..40).rev().map(stored).collect();
        // The unusual: IPv6 remote and stack key, rdomains, af-to, raw codes, a clear.
        rows[3].w_addr[0] = "2001:db8::1".parse().expect("v6");
        rows[3].s_addr[0] = "2001:db8::2".parse().expect("v6");
        rows[3].s_af = 24;
        rows[4].w_rdomain = 7;
        rows[5].af = 99;
        rows[5].direction = 0;
        rows[6].direction = 200;
        rows[7].reason = 2;
        rows[7].last = rows[7].end - 5_000_000;
        rows[8].flavor = 5;
        rows[9].nat = false;
        rows[10].bytes[1] = u64::MAX;
        rows[10].rule = u32::MAX;
        rows[11].first = rows[11].start - 3;
        let (name, table) = names();
        let mut refs: Vec<&Stored> = rows.iter().collect();
        let blob = pack_sections(&mut refs, name);
        let back =
            unpack_sections(&blob, None, |i| table.get(i as usize).cloned()).expect("decodes");
        let mut want = rows.clone();
        want.sort_by_key(|r| r.start);
        assert_eq!(back, want);
        assert!(
            blob.len() < rows.len() * 50,
            "{} bytes for {} lifetimes",
            blob.len(),
            rows.len()
        );
    }

    #[test]
    fn every_truncation_and_byte_flip_is_an_error_or_a_value_never_a_panic() {
        let rows: Vec<Stored> = (0..5).map(stored).collect();
        let (name, table) = names();
        let mut refs: Vec<&Stored> = rows.iter().collect();
        let blob = pack_sections(&mut refs, name);
        let get = |i: u64| table.get(i as usize).cloned();
        for cut in 0..blob.len() {
            let r = unpack_sections(&blob[..cut], None, get);
            assert!(r.is_err() || r.is_ok_and(|v| v.len() < 5), "cut at {cut}");
        }
        let spots: Vec<(u64, Filed)> = ids();
        let lists = [
            blob,
            pack_ids(&spots),
            pack_pairs(
                &spots
                    .iter()
                    .map(|(_, f)| (f.start_bucket, f.spot))
                    .collect::<Vec<_>>(),
                7,
            ),
        ];
        for b in &lists {
            for cut in 0..b.len() {
                let _ = unpack_sections(&b[..cut], None, get);
                let _ = unpack_ids(&b[..cut], 0);
                let _ = unpack_pairs(&b[..cut], 7);
            }
            for i in 0..b.len() {
                let mut b = b.clone();
                b[i] ^= 0xff;
                let _ = unpack_sections(&b, None, get);
                let _ = unpack_ids(&b, 0);
                let _ = unpack_pairs(&b, 7);
            }
        }
    }

    /// 30 lifetimes over 7 public pairs, IPv4 and IPv6, two creators.
    fn several_pairs() -> Vec<Stored> {
        let v6: IpAddr = "2001:db8:ffff::1".parse().expect("v6");
        (0..30u64)
            .map(|i| {
                let mut s = stored(i);
                s.w_addr[1] = if i % 7 == 3 {
                    v6
                } else {
                    IpAddr::from([203, 0, 113, (i % 3) as u8])
                };
                s.w_port[1] = 50000 + (i % 7) as u16;
                s.creator_id = if i % 4 == 0 { 0x5e6f_7a8b } else { 0x1a2b_3c4d };
                s
            })
            .collect()
    }

    #[test]
    fn a_hashed_group_round_trips_every_pair_and_reads_one_pair_alone() {
        let rows = several_pairs();
        let (name, table) = names();
        let mut refs: Vec<&Stored> = rows.iter().collect();
        let blob = pack_sections(&mut refs, name);
        let get = |i: u64| table.get(i as usize).cloned();
        let key = |r: &Stored| (r.w_addr[1], r.w_port[1], r.start, r.creator_id, r.state_id);
        let mut back = unpack_sections(&blob, None, get).expect("decodes");
        back.sort_by_key(key);
        let mut want = rows.clone();
        want.sort_by_key(key);
        assert_eq!(back, want);
        let one = (rows[3].w_addr[1], rows[3].w_port[1]);
        let alone = unpack_sections(&blob, Some((&one.0, one.1)), get).expect("one pair");
        assert!(!alone.is_empty());
        assert!(alone.iter().all(|r| (r.w_addr[1], r.w_port[1]) == one));
        assert_eq!(
            alone.len(),
            rows.iter()
                .filter(|r| (r.w_addr[1], r.w_port[1]) == one)
                .count()
        );
        let absent = IpAddr::from([198, 51, 100, 1]);
        assert!(unpack_sections(&blob, Some((&absent, 1)), get)
            .expect("no such pair")
            .is_empty());
        // The pairs of a row share its base (a start, creator and id, ~22 bytes) and its
        // address table: the row costs less than its pairs packed as rows of their own.
        let alone_total: usize = want
            .chunk_by(|a, b| (a.w_addr[1], a.w_port[1]) == (b.w_addr[1], b.w_port[1]))
            .map(|run| pack_sections(&mut run.iter().collect::<Vec<_>>(), names().0).len())
            .sum();
        assert!(
            blob.len() + 7 * 10 < alone_total,
            "{} bytes, {alone_total} as separate groups",
            blob.len()
        );
        for cut in 0..blob.len() {
            let _ = unpack_sections(&blob[..cut], None, get);
        }
        for i in 0..blob.len() {
            let mut b = blob.clone();
            b[i] ^= 0xff;
            let _ = unpack_sections(&b, None, get);
            let _ = unpack_sections(&b, Some((&one.0, one.1)), get);
        }
    }

    const HASHED_GOLDEN: [i64; 3] = [785, 824, 31180];

    #[test]
    fn the_hashed_group_of_a_pair_never_changes() {
        // Row keys on disk: these values are fixed forever (migrations/0001_schema.sql).
        let a = IpAddr::from([203, 0, 113, 5]);
        let v6: IpAddr = "2001:db8::1".parse().expect("v6");
        assert_eq!(hashed_group(&a, 61234, 0), 0);
        let g = [
            hashed_group(&a, 61234, 10),
            hashed_group(&a, 61235, 10),
            hashed_group(&v6, 443, 16),
        ];
        assert_eq!(g, [HASHED_GOLDEN[0], HASHED_GOLDEN[1], HASHED_GOLDEN[2]]);
        // Spread: 4 addresses x 15,535 ports over 1,024 groups, none far from the mean.
        let mut n = vec![0u32; 1024];
        for x in 0..4u8 {
            for p in 50001..=65535u16 {
                n[hashed_group(&IpAddr::from([203, 0, 113, x]), p, 10) as usize] += 1;
            }
        }
        let (lo, hi) = (n.iter().min().copied(), n.iter().max().copied());
        assert!(
            lo > Some(30) && hi < Some(100),
            "{lo:?}..{hi:?} per group, mean 60"
        );
    }

    fn ids() -> Vec<(u64, Filed)> {
        let v6: IpAddr = "2001:db8::7".parse().expect("v6");
        (0..100u64)
            .map(|i| {
                let addr = if i % 5 == 0 {
                    v6
                } else {
                    IpAddr::from([203, 0, 113, 5])
                };
                let spot = Spot::hashed(&addr, 50000 + i as u16);
                let dur_class = (i % 7) as i64;
                let start_bucket =
                    (1_767_571_200_000_000 + i as i64 * 1_000_000) >> (22 + 2 * (i % 7));
                (
                    1000 + i * 3,
                    Filed {
                        dur_class,
                        start_bucket,
                        spot,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn id_lists_round_trip() {
        let list = ids();
        let blob = pack_ids(&list);
        assert_eq!(unpack_ids(&blob, 1000).expect("ids"), list);
        // Per id: its delta, one byte of class and bucket, 3 of hash.
        assert!(blob.len() <= 1 + list.len() * 6);
        let empty = pack_ids(&[]);
        assert_eq!(unpack_ids(&empty, 5).expect("empty"), vec![]);
        let bad = [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200];
        assert!(unpack_ids(&bad, 0).is_err());
    }

    #[test]
    fn history_lists_round_trip() {
        let list: Vec<Pair> = ids()
            .iter()
            .map(|(_, f)| (f.start_bucket, f.spot))
            .collect();
        let base = list[0].0 - 1;
        let blob = pack_pairs(&list, base);
        assert_eq!(unpack_pairs(&blob, base).expect("pairs"), list);
        // Near the base: one byte of bucket, three of hash.
        let near: Vec<Pair> = list.iter().map(|p| (base, p.1)).collect();
        assert_eq!(pack_pairs(&near, base).len(), 1 + near.len() * 4);
        assert_eq!(
            unpack_pairs(&pack_pairs(&near, base), base).expect("near"),
            near
        );
    }

    #[test]
    fn the_packed_lists_keep_their_bytes() {
        // Stored on disk: a change here is a change of the file format.
        let f = |start_bucket, h| Filed {
            dur_class: 2,
            start_bucket,
            spot: Spot(h),
        };
        let list = [(1000, f(5, 0xab_cdef)), (1003, f(6, 0x12_3456))];
        assert_eq!(
            pack_ids(&list),
            [0, 0, 0xd2, 0x02, 0xab, 0xcd, 0xef, 3, 0x52, 0x12, 0x34, 0x56]
        );
        let pairs = [(5, Spot(0xab_cdef)), (4, Spot(0x12_3456))];
        assert_eq!(
            pack_pairs(&pairs, 5),
            [0, 1, 0xab, 0xcd, 0xef, 3, 0x12, 0x34, 0x56]
        );
    }

    #[test]
    fn a_list_entry_of_another_form_is_damage_not_a_value() {
        let list = ids();
        let (blob, pairs) = (pack_ids(&list[..1]), pack_pairs(&[(7, list[0].1.spot)], 7));
        // The first byte is always zero.
        for (mut b, ids) in [(blob.clone(), true), (pairs.clone(), false)] {
            b[0] = 1;
            let e = if ids {
                unpack_ids(&b, 0).err()
            } else {
                unpack_pairs(&b, 7).err()
            };
            assert_eq!(e, Some(Damaged("list head")));
        }
        // An entry's kind bit is always set: bit 4 of an id's class byte, bit 0 of a
        // history entry's bucket byte.
        let mut b = blob;
        b[2] &= !16;
        assert_eq!(unpack_ids(&b, 0).err(), Some(Damaged("spot kind")));
        let mut b = pairs;
        b[1] &= !1;
        assert_eq!(unpack_pairs(&b, 7).err(), Some(Damaged("spot kind")));
    }

    #[test]
    fn a_hash_spot_names_the_group_of_every_bucket_size() {
        let a = IpAddr::from([198, 51, 100, 9]);
        for port in [1, 443, 61234] {
            let h = Spot::hashed(&a, port).0;
            for bits in 0..=SPOT_BITS {
                assert_eq!(spot_group(h, bits), hashed_group(&a, port, bits), "{bits}");
            }
        }
    }
}
