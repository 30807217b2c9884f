//! Archived lifetimes (migrations/0001_schema.sql): writing a batch, merging a bucket's batches,
//! taking a lifetime back out ("unarchive"), and reading them for the queries.

use super::addr_blob;
use super::codec::{self, Damaged, Filed, Pair, Spot, Stored};
use super::query::{archive_bucket_of, archive_shift, class_of, CLASS_MAX_US};
use crate::model::Micros;
use crate::model::{IfName, StateRef};
use crate::store::lazy_open::group_of;
use crate::store::{DamageKind, DamagedGroup};
use rusqlite::{params, Connection, OptionalExtension};
/// Maps keyed by small tuples, hashed with ahash (SipHash was ~4 % of an import).
type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
pub type HashSet<K> = std::collections::HashSet<K, ahash::RandomState>;
use std::net::IpAddr;

/// A bucket can get no more lifetimes once packets this much past its last possible end
/// have been read (captures are not perfectly ordered).
const COMPLETE_SLACK_US: Micros = 600_000_000;

/// History rows of one host from several batches: (batch, blob, form).
type Blobs = Vec<(i64, Vec<u8>, i64)>;
/// A row of `archive_hosts` as a merge reads it: (s_addr1, batch, pairs, form).
type HistoryRow = (Vec<u8>, i64, Vec<u8>, i64);
/// The key of a group's rows in `archive`: (dur_class, start_bucket, w_addr1, w_port1).
type RowKey = (i64, i64, Vec<u8>, i64);
/// A row of `archive` as a merge reads it: (w_addr1, w_port1, batch, n, rows).
type ArchivedRow = (Vec<u8>, i64, i64, i64, Vec<u8>);
/// The rows of one key: ((w_addr1, w_port1), [(batch, n, rows)]).
type KeyRows = ((Vec<u8>, i64), Vec<(i64, i64, Vec<u8>)>);
/// (batch, lowest id, highest id) of a chunk of a batch's ids.
type BatchRange = (i64, i64, i64);
/// A row of `archive_batches`: (batch, creator, id group, lowest id).
type ChunkKey = (i64, u32, u8, i64);
/// State ids per row of `archive_batches`.
const IDS_PER_CHUNK: usize = 4096;
/// Parsed id chunks the writer keeps (~60 bytes per id).
const CHUNKS_CACHED: usize = 256;

/// Interface names by id (table `names`).
#[derive(Debug, Default)]
pub struct Names {
    by_name: HashMap<String, u64>,
    by_id: HashMap<u64, String>,
}

impl Names {
    pub fn load(conn: &Connection) -> rusqlite::Result<Names> {
        let mut n = Names::default();
        let mut st = conn.prepare_cached("SELECT id, name FROM names")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let (id, name): (i64, String) = (r.get(0)?, r.get(1)?);
            n.by_name.insert(name.clone(), id as u64);
            n.by_id.insert(id as u64, name);
        }
        Ok(n)
    }

    fn ensure(&mut self, tx: &Connection, name: &str) -> rusqlite::Result<()> {
        if !self.by_name.contains_key(name) {
            tx.prepare_cached("INSERT INTO names (name) VALUES (?1)")?
                .execute([name])?;
            let id = tx.last_insert_rowid() as u64;
            self.by_name.insert(name.to_string(), id);
            self.by_id.insert(id, name.to_string());
        }
        Ok(())
    }

    fn id(&self, name: &str) -> u64 {
        self.by_name.get(name).copied().unwrap_or(u64::MAX)
    }

    pub fn name(&self, id: u64) -> Option<String> {
        self.by_id.get(&id).cloned()
    }

    /// Forget ids learnt in a transaction that rolled back.
    pub fn reload(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        *self = Names::load(conn)?;
        Ok(())
    }
}

/// The 72-minute (class 6 on: wider) bucket of states_private, for archive_hosts.
pub fn history_bucket(start: Micros, c: i64) -> i64 {
    match usize::try_from(c).ok().and_then(super::query::bucket_shift) {
        Some(shift) => start >> shift,
        None => 0,
    }
}

/// The class and archived bucket a closed lifetime is filed under.
pub fn filed(r: &Stored) -> (i64, i64) {
    let c = class_of(r.end - r.start);
    (c, archive_bucket_of(r.start, c))
}

/// Lifetimes a hashed group is sized for: rows of ~0.5 KB stay within their B-tree page
/// (a row that spills into an overflow page wastes most of that page).
const PER_GROUP: u64 = 8;
/// At most 2^24 groups per bucket.
const MAX_BITS: u32 = 24;

/// How a bucket's rows are keyed (migrations/0001_schema.sql): 2^bits rows, by hash of the
/// public pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout(u32);

impl Layout {
    /// The layout of a new bucket expected to hold `n` lifetimes.
    pub fn for_expected(n: u64) -> Layout {
        let groups = n.div_ceil(PER_GROUP).max(1);
        Layout((64 - (groups - 1).leading_zeros()).min(MAX_BITS))
    }

    /// The row key (w_addr1, w_port1) of a public pair's lifetimes.
    fn key(self, addr: &IpAddr, port: u16) -> (Vec<u8>, i64) {
        (vec![self.0 as u8], codec::hashed_group(addr, port, self.0))
    }

    /// The row key of a spot.
    fn spot_key(self, spot: &Spot) -> (Vec<u8>, i64) {
        (vec![self.0 as u8], codec::spot_group(spot.0, self.0))
    }
}

/// The layout of bucket (c, b); None: no such bucket, or one whose `bits` is out of range
/// (damage: skipped where damage is tolerated, an error elsewhere).
fn layout_of(conn: &Connection, c: i64, b: i64) -> rusqlite::Result<Option<Layout>> {
    let bits: Option<i64> = conn
        .prepare_cached(
            "SELECT bits FROM archive_buckets WHERE dur_class = ?1 AND start_bucket = ?2",
        )?
        .query_row(params![c, b], |r| r.get(0))
        .optional()?;
    let Some(bits) = bits else {
        return Ok(None);
    };
    match u32::try_from(bits) {
        Ok(bits) if bits <= MAX_BITS => Ok(Some(Layout(bits))),
        _ => {
            let (from, to) = bucket_span(b, usize::try_from(c).ok().and_then(archive_shift));
            met(DamagedGroup {
                kind: DamageKind::ArchiveBucket,
                what: format!("archived bucket (class {c}, bucket {b})"),
                from,
                to,
                why: "bucket bits",
            })?;
            Ok(None)
        }
    }
}

/// Pack a row of lifetimes (one hashed group, or part of one).
fn pack_row(rows: &mut [&Stored], names: &Names) -> Vec<u8> {
    // A row's lifetimes mostly share one interface: its id is looked up once per run of it
    // (hashing the name for every lifetime was ~3 % of an import).
    let mut last: Option<(IfName, u64)> = None;
    let id = |n: &IfName| match last {
        Some((name, id)) if name == *n => id,
        _ => {
            let id = names.id(n);
            last = Some((*n, id));
            id
        }
    };
    codec::pack_sections(rows, id)
}

/// Unpack a row by its key (its checksum checked first): every lifetime, or those of the
/// public pair `only`. A row's key address is one byte, its bucket's bits; any other is
/// damage.
fn unpack_row(
    (c, b, key_addr, key_port): (i64, i64, &[u8], i64),
    blob: &[u8],
    names: &Names,
    only: Option<(&IpAddr, u16)>,
) -> Result<Vec<Stored>, Damaged> {
    let blob = codec::verified(&[&row_key(c, b, key_addr, key_port)], blob)?;
    if key_addr.len() != 1 {
        return Err(Damaged("row key"));
    }
    codec::unpack_sections(blob, only, |i| names.name(i))
}

/// What a row of `archive` checksums besides its blob: class, bucket, address and port.
fn row_key(c: i64, b: i64, addr: &[u8], port: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(41);
    k.push(b'r');
    k.extend_from_slice(&c.to_le_bytes());
    k.extend_from_slice(&b.to_le_bytes());
    k.extend_from_slice(&port.to_le_bytes());
    k.extend_from_slice(addr);
    k
}

/// What a row of `archive_hosts` checksums besides its blob: class, bucket, host, form.
fn pairs_key(c: i64, hb: i64, host: &[u8], form: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(41);
    k.push(b'p');
    k.extend_from_slice(&c.to_le_bytes());
    k.extend_from_slice(&hb.to_le_bytes());
    k.extend_from_slice(&form.to_le_bytes());
    k.extend_from_slice(host);
    k
}

/// What a row of `archive_batches` checksums besides its blob: creator, id group, lowest id.
fn ids_key(creator: i64, grp: i64, min_id: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(25);
    k.push(b'i');
    k.extend_from_slice(&creator.to_le_bytes());
    k.extend_from_slice(&grp.to_le_bytes());
    k.extend_from_slice(&min_id.to_le_bytes());
    k
}

/// The starts a bucket of width 2^shift holds.
fn bucket_span(b: i64, shift: Option<u32>) -> (Option<Micros>, Option<Micros>) {
    let Some(shift) = shift else {
        return (None, None);
    };
    let from = b.checked_shl(shift).filter(|x| x >> shift == b);
    let to = from.and_then(|f| f.checked_add((1i64 << shift) - 1));
    (from, to)
}

/// A damaged row of `archive`.
fn damaged_row(c: i64, b: i64, addr: &[u8], port: i64, why: Damaged) -> DamagedGroup {
    let public = match addr {
        [bits] => format!("hash group {port} of {}", 1u64 << (*bits).min(63)),
        _ => format!("row key of {} bytes", addr.len()),
    };
    let (from, to) = bucket_span(b, usize::try_from(c).ok().and_then(archive_shift));
    DamagedGroup {
        kind: DamageKind::ArchiveGroup,
        what: format!("archived group (class {c}, bucket {b}, {public})"),
        from,
        to,
        why: why.0,
    }
}

/// A damaged row of `archive_hosts`.
fn damaged_pairs(c: i64, hb: i64, host: &[u8], why: Damaged) -> DamagedGroup {
    let host = super::blob_addr(host).map_or_else(|| "?".to_string(), |a| a.to_string());
    let shift = usize::try_from(c).ok().and_then(super::query::bucket_shift);
    let (from, to) = bucket_span(hb, shift);
    DamagedGroup {
        kind: DamageKind::HistoryRow,
        what: format!("history row (class {c}, bucket {hb}, private host {host})"),
        from,
        to,
        why: why.0,
    }
}

thread_local! {
    /// How many readers that skip damage ([`tolerate`]) are running on this thread.
    static TOLERANT: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    /// The damaged groups they met, until [`damage_seen`] takes them.
    static SEEN: std::cell::RefCell<Vec<DamagedGroup>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// While held, damaged groups that this thread's reads meet are skipped and kept for
/// [`damage_seen`] (queries answer what is intact and say what is not). Without it, damage is
/// an error (SQLITE_CORRUPT, "damaged ..."): a writer stops rather than merge, rewrite or
/// prune around a group it cannot read.
pub struct Tolerant(());

pub fn tolerate() -> Tolerant {
    TOLERANT.with(|t| t.set(t.get() + 1));
    Tolerant(())
}

impl Drop for Tolerant {
    fn drop(&mut self) {
        TOLERANT.with(|t| t.set(t.get().saturating_sub(1)));
    }
}

/// The damaged groups skipped on this thread since the last call, each once.
pub fn damage_seen() -> Vec<DamagedGroup> {
    let mut v = SEEN.with(|s| std::mem::take(&mut *s.borrow_mut()));
    let mut seen = HashSet::default();
    v.retain(|d| seen.insert(d.what.clone()));
    v
}

/// The error a writer stops with on damage: SQLite's own code for a damaged file.
pub fn damage_error(d: &DamagedGroup) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
        Some(format!("damaged {d}")),
    )
}

/// Whether an error is damage: SQLite found the file damaged (or a page checksum did not
/// match), a group did not read back ([`damage_error`]), or a value read back is not of its
/// column's kind (pfstatelog writes one kind per column, so that is damage too).
pub fn is_damage(e: &rusqlite::Error) -> bool {
    use rusqlite::{Error, ErrorCode};
    match e {
        Error::SqliteFailure(f, _) => {
            matches!(f.code, ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
                || f.extended_code == rusqlite::ffi::SQLITE_IOERR_DATA
        }
        Error::Utf8Error(..)
        | Error::FromSqlConversionFailure(..)
        | Error::InvalidColumnType(..)
        | Error::IntegralValueOutOfRange(..) => true,
        _ => false,
    }
}

/// Damage met: kept for the query's warning, or an error for a writer.
fn met(d: DamagedGroup) -> rusqlite::Result<()> {
    if TOLERANT.with(|t| t.get()) > 0 {
        SEEN.with(|s| s.borrow_mut().push(d));
        Ok(())
    } else {
        Err(damage_error(&d))
    }
}

/// How many lifetimes a bucket of class `c` may get, from the `n` of this batch and the rate
/// the writer has archived that class at so far (`total` lifetimes over `span_us` of traffic).
pub fn expected_in_bucket(c: i64, n: u64, total: u64, span_us: Micros) -> u64 {
    let width = usize::try_from(c)
        .ok()
        .and_then(archive_shift)
        .map_or(span_us, |s| 1i64 << s);
    if span_us < 1_000_000 {
        return n;
    }
    let by_rate = (total as f64) * (width as f64) / (span_us as f64);
    n.max(by_rate.min(1e12) as u64)
}

fn to_i64(v: u64) -> i64 {
    v as i64
}

/// (class, archived bucket).
type Bucket = (i64, i64);
/// An address as a sort key (`addr_key`): 0 for IPv4 or 1 for IPv6, then the address's
/// 32-bit words, most significant first. Words rather than a u128: a u128 made every key
/// holding one 16-byte aligned, and the batch's lists of keys were then half again as large
/// (their pages zeroed and their entries moved by each sort: perf, ~5 % of an import).
type AddrKey = [u32; 5];

/// An address as a sort key: groups equal addresses (IPv4 before IPv6), cheaper to compare
/// than `IpAddr`.
fn addr_key(a: &IpAddr) -> AddrKey {
    match a {
        IpAddr::V4(v) => [0, 0, 0, 0, u32::from(*v)],
        IpAddr::V6(v) => {
            let [a, b, c, d] = words(u128::from(*v));
            [1, a, b, c, d]
        }
    }
}

/// The four 32-bit words of `x`, most significant first.
fn words(x: u128) -> [u32; 4] {
    [
        (x >> 96) as u32,
        (x >> 64) as u32,
        (x >> 32) as u32,
        x as u32,
    ]
}

/// Write `rows` (closed lifetimes new to the store) as batch number `batch`.
///
/// A bucket this batch creates gets the layout for the lifetimes `expect(class, n)` says it
/// will hold, `n` being those of this batch.
pub fn write_batch(
    tx: &Connection,
    rows: &[Stored],
    batch: i64,
    names: &mut Names,
    expect: &dyn Fn(i64, u64) -> u64,
) -> rusqlite::Result<Vec<Bucket>> {
    let rows: Vec<&Stored> = rows.iter().collect();
    write_batch_with(
        tx,
        &rows,
        batch,
        names,
        expect,
        &mut ArchiveLists::default(),
    )
}

/// A lifetime's group row as a batch sorts them (12 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct GroupKey {
    /// Rank of its bucket among the batch's buckets (sorted: ranks order as buckets do).
    bucket: u32,
    /// Its hash group in that bucket.
    group: u32,
    /// Index in the batch's rows.
    i: u32,
}

/// A lifetime's history row as a batch sorts them (48 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct HistoryKey {
    class: i64,
    /// History bucket.
    hb: i64,
    /// Private host.
    host: AddrKey,
    /// Rank of its archived bucket (as in [`GroupKey`]).
    bucket: u32,
    spot: Spot,
    i: u32,
}

impl HistoryKey {
    /// All but the index: lifetimes of one host with the same spot make one pair.
    fn pair(&self) -> (i64, i64, AddrKey, u32, Spot) {
        (self.class, self.hb, self.host, self.bucket, self.spot)
    }
}

/// The lists [`write_batch_with`] sorts (~180 bytes a lifetime), kept by a writer from batch
/// to batch for their capacity: allocated anew, their pages were faulted in and zeroed at
/// every batch (perf: ~3 % of an import).
#[derive(Debug, Default)]
pub struct ArchiveLists {
    order: Vec<GroupKey>,
    private: Vec<HistoryKey>,
    /// Per creator and id group, its ids and where each is filed.
    ids: HashMap<(u32, u8), Vec<(u64, Filed)>>,
    /// Per lifetime, the rank of its bucket.
    filed: Vec<u32>,
    /// The lifetimes' indices class by class, and where each class starts ([`by_class`]).
    members: Vec<u32>,
    slices: Vec<usize>,
}

/// The batch's lifetimes grouped by duration class, in row order within one: their indices
/// go into `members`, and the returned bounds are where each class starts, then the end.
/// `ranked` is sorted, so each class's buckets are a run of ranks.
fn by_class<'a>(
    ranked: &[(Bucket, Layout)],
    cb: &[u32],
    members: &mut Vec<u32>,
    bounds: &'a mut Vec<usize>,
) -> &'a [usize] {
    // Per rank, the index of its class among the batch's classes.
    let mut slot = Vec::with_capacity(ranked.len());
    let mut n = 0;
    for (k, ((c, _), _)) in ranked.iter().enumerate() {
        if k > 0 && ranked[k - 1].0 .0 != *c {
            n += 1;
        }
        slot.push(n);
    }
    bounds.clear();
    bounds.resize(n + 2, 0);
    for &b in cb {
        bounds[slot[b as usize] + 1] += 1;
    }
    for k in 1..bounds.len() {
        bounds[k] += bounds[k - 1];
    }
    let mut next = bounds.clone();
    members.clear();
    members.resize(cb.len(), 0);
    for (i, &b) in cb.iter().enumerate() {
        let at = &mut next[slot[b as usize]];
        members[*at] = i as u32;
        *at += 1;
    }
    bounds
}

/// `v` emptied, with room for `n`: a list too small is replaced, not grown (growing copies
/// its whole old capacity, though nothing in it is kept).
pub(crate) fn emptied<T>(v: &mut Vec<T>, n: usize) -> &mut Vec<T> {
    v.clear();
    if v.capacity() < n {
        *v = Vec::with_capacity(n);
    }
    v
}

/// [`write_batch`] with the lists of an earlier batch (`lists`, emptied first).
pub fn write_batch_with(
    tx: &Connection,
    rows: &[&Stored],
    batch: i64,
    names: &mut Names,
    expect: &dyn Fn(i64, u64) -> u64,
    lists: &mut ArchiveLists,
) -> rusqlite::Result<Vec<Bucket>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut last_name = None;
    for r in rows {
        if last_name != Some(r.ifname) {
            names.ensure(tx, &r.ifname)?;
            last_name = Some(r.ifname);
        }
    }
    let names: &Names = names;
    // Sorted vectors of plain keys rather than maps: one sort each, the inserts in key
    // order, and no walk through the rows (~200 bytes each) while sorting.
    let mut buckets: HashMap<Bucket, (i64, Micros, Micros, Micros)> = HashMap::default();
    let mut per_group: HashMap<(u32, u8), usize> = HashMap::default();
    for r in rows {
        let k = buckets
            .entry(filed(r))
            .or_insert((0, r.start, r.last, r.end));
        k.0 += 1;
        k.1 = k.1.min(r.start);
        k.2 = k.2.max(r.last);
        k.3 = k.3.max(r.end);
        *per_group.entry(group_of(&r.key())).or_default() += 1;
    }
    // The batch's buckets sorted, each with its layout (kept from its creation); a lifetime
    // names its bucket by rank.
    let mut ranked: Vec<(Bucket, Layout)> = Vec::with_capacity(buckets.len());
    let mut keys: Vec<Bucket> = buckets.keys().copied().collect();
    keys.sort_unstable();
    let mut rank: HashMap<Bucket, u32> = HashMap::default();
    for (n, &(c, b)) in keys.iter().enumerate() {
        let l = match layout_of(tx, c, b)? {
            Some(l) => l,
            None => Layout::for_expected(expect(c, buckets[&(c, b)].0 as u64)),
        };
        ranked.push(((c, b), l));
        rank.insert((c, b), n as u32);
    }
    let cb = emptied(&mut lists.filed, rows.len());
    cb.extend(rows.iter().map(|r| rank[&filed(r)]));
    // One duration class at a time: its buckets, archived and history, are its own, so the
    // sort lists hold one class's lifetimes, not the batch's. An import batches most of a
    // capture at its end, and lists of every lifetime (~100 bytes each) were the largest
    // memory it faulted in.
    let slices = by_class(&ranked, cb, &mut lists.members, &mut lists.slices);
    let largest = slices.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    let order = emptied(&mut lists.order, largest);
    let private = emptied(&mut lists.private, largest);
    let ids = &mut lists.ids;
    for v in ids.values_mut() {
        v.clear();
    }
    for (g, n) in &per_group {
        let v = ids.entry(*g).or_default();
        v.reserve(*n);
    }
    let mut ends: HashMap<(u32, u8), Micros> = HashMap::default();
    let mut creators: HashMap<u32, i64> = HashMap::default();
    let mut history: Vec<Bucket> = Vec::new();
    let mut put = tx.prepare_cached(
        "INSERT INTO archive (dur_class, start_bucket, w_addr1, w_port1, batch, n, rows) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut group: Vec<&Stored> = Vec::new();
    let mut pairs: Vec<Pair> = Vec::new();
    for w in slices.windows(2) {
        order.clear();
        private.clear();
        for &i in &lists.members[w[0]..w[1]] {
            let (r, bucket) = (rows[i as usize], cb[i as usize]);
            let ((c, b), layout) = ranked[bucket as usize];
            let spot = Spot::hashed(&r.w_addr[1], r.w_port[1]);
            order.push(GroupKey {
                bucket,
                group: layout.spot_key(&spot).1 as u32,
                i,
            });
            // History finds a host's groups through 72-minute buckets (as states_private),
            // each pair with the archived bucket its group is in.
            private.push(HistoryKey {
                class: c,
                hb: history_bucket(r.start, c),
                host: addr_key(&r.s_addr[1]),
                bucket,
                spot,
                i,
            });
            let g = group_of(&r.key());
            ids.entry(g).or_default().push((
                r.state_id,
                Filed {
                    dur_class: c,
                    start_bucket: b,
                    spot,
                },
            ));
            let e = ends.entry(g).or_insert(r.end);
            *e = (*e).max(r.end);
            *creators.entry(r.creator_id).or_default() += 1;
        }
        order.sort_unstable();
        for (n, k) in order.iter().enumerate() {
            group.push(rows[k.i as usize]);
            if order
                .get(n + 1)
                .is_some_and(|x| (x.bucket, x.group) == (k.bucket, k.group))
            {
                continue;
            }
            let ((c, b), layout) = ranked[k.bucket as usize];
            let key = [layout.0 as u8];
            put_rows(
                &mut put,
                names,
                (c, b, &key, i64::from(k.group)),
                batch,
                &mut group,
            )?;
            group.clear();
        }
        private.sort_unstable();
        private.dedup_by_key(|x| x.pair());
        for (n, k) in private.iter().enumerate() {
            let r = &rows[k.i as usize];
            let start_bucket = ranked[k.bucket as usize].0 .1;
            pairs.push((start_bucket, k.spot));
            if private
                .get(n + 1)
                .is_some_and(|x| (x.class, x.hb, x.host) == (k.class, k.hb, k.host))
            {
                continue;
            }
            put_pairs(tx, (k.class, k.hb, &addr_blob(&r.s_addr[1])), batch, &pairs)?;
            pairs.clear();
        }
        history.extend(private.iter().map(|p| (p.class, p.hb)));
        history.dedup();
    }
    drop(put);
    let mut ins = tx.prepare_cached(
        "INSERT INTO archive_batches (batch, creator_id, grp, min_id, max_id, end_us, ids, form) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (g, list) in ids.iter_mut().filter(|(_, l)| !l.is_empty()) {
        list.sort_unstable_by_key(|(id, _)| *id);
        // Chunks of consecutive ids: a batch's ids span back to its longest lifetime's, so
        // one range per batch would contain almost every id; a chunk's range is tight, and a
        // lookup reads a few small chunks.
        for chunk in list.chunks(IDS_PER_CHUNK) {
            let (lo, hi) = (chunk[0].0, chunk[chunk.len() - 1].0);
            ins.execute(params![
                batch,
                g.0,
                g.1,
                to_i64(lo),
                to_i64(hi),
                ends[g],
                codec::summed(
                    &[&ids_key(i64::from(g.0), i64::from(g.1), to_i64(lo))],
                    codec::pack_ids(chunk)
                ),
                codec::IDS_FORM
            ])?;
        }
    }
    let mut up = tx.prepare_cached(
        "INSERT INTO archive_buckets (dur_class, start_bucket, batches, n, first_us, last_us, end_us, bits) VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (dur_class, start_bucket) DO UPDATE SET batches = batches + 1, n = n + excluded.n,
            first_us = min(first_us, excluded.first_us), last_us = max(last_us, excluded.last_us),
            end_us = max(end_us, excluded.end_us)",
    )?;
    for ((c, b), layout) in &ranked {
        let (n, first, last, end) = buckets[&(*c, *b)];
        up.execute(params![c, b, n, first, last, end, layout.0])?;
    }
    count_creators(tx, &creators)?;
    Ok(history)
}

/// One group row in bucket (c, b), keyed (addr, port) as `Layout::key` keys it, packed.
fn put_group(
    tx: &Connection,
    names: &Names,
    key: (i64, i64, &[u8], i64),
    batch: i64,
    rows: &mut [&Stored],
) -> rusqlite::Result<()> {
    let mut put = tx.prepare_cached(
        "INSERT INTO archive (dur_class, start_bucket, w_addr1, w_port1, batch, n, rows) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    put_rows(&mut put, names, key, batch, rows)
}

/// A hashed group's rows stay below this many bytes: SQLite keeps up to ~1 KB of a row in
/// its B-tree page and moves the rest to overflow pages of their own, mostly empty for a
/// row of 1–2 KB (48 % of a 12 M-state import's pages were such).
const ROW_BYTES: usize = 960;
/// Parts of one group after the first take batch numbers above every real one.
const PART_SHIFT: u32 = 40;

/// Insert the lifetimes of one key with `put` (the INSERT of `put_group`): one row, or for
/// a group larger than [`ROW_BYTES`] (a public pair reused hundreds of times in a bucket),
/// several, told apart by their batch numbers (`batch + k << PART_SHIFT`).
fn put_rows(
    put: &mut rusqlite::CachedStatement,
    names: &Names,
    (c, b, addr, port): (i64, i64, &[u8], i64),
    batch: i64,
    rows: &mut [&Stored],
) -> rusqlite::Result<()> {
    let key = row_key(c, b, addr, port);
    let blob = pack_row(rows, names);
    if blob.len() <= ROW_BYTES || rows.len() < 2 {
        let blob = codec::summed(&[&key], blob);
        put.execute(params![c, b, addr, port, batch, rows.len() as i64, blob])?;
        return Ok(());
    }
    // Parts in the sections' order (pair, start), each under ROW_BYTES where one can be.
    codec::sort_for_sections(rows);
    let mut parts = blob.len().div_ceil(ROW_BYTES);
    loop {
        let per = rows.len().div_ceil(parts);
        let packed: Vec<(usize, Vec<u8>)> = rows
            .chunks_mut(per)
            .map(|part| (part.len(), pack_row(part, names)))
            .collect();
        if parts < rows.len() && packed.iter().any(|(_, b)| b.len() > ROW_BYTES) {
            parts = (parts + parts / 4 + 1).min(rows.len());
            continue;
        }
        for (k, (n, blob)) in packed.into_iter().enumerate() {
            let s = batch.wrapping_add((k as i64) << PART_SHIFT);
            let blob = codec::summed(&[&key], blob);
            put.execute(params![c, b, addr, port, s, n as i64, blob])?;
        }
        return Ok(());
    }
}

/// The archived bucket history bucket `hb` of class `c` starts in: what a history row's
/// buckets are deltas from.
fn pairs_base(c: i64, hb: i64) -> i64 {
    usize::try_from(c)
        .ok()
        .and_then(super::query::bucket_shift)
        .and_then(|shift| hb.checked_mul(1i64.checked_shl(shift)?))
        .map_or(0, |start| archive_bucket_of(start, c))
}

/// One history row: where a private host's groups of class c and 72-minute bucket b are.
fn put_pairs(
    tx: &Connection,
    key: (i64, i64, &[u8]),
    batch: i64,
    pairs: &[Pair],
) -> rusqlite::Result<()> {
    let blob = codec::pack_pairs(pairs, pairs_base(key.0, key.1));
    let blob = codec::summed(&[&pairs_key(key.0, key.1, key.2, codec::PAIRS_FORM)], blob);
    put_pairs_blob(tx, key, batch, &blob, codec::PAIRS_FORM)
}

/// A history row whose pairs are packed already, in `form` (column value).
fn put_pairs_blob(
    tx: &Connection,
    (c, b, host): (i64, i64, &[u8]),
    batch: i64,
    blob: &[u8],
    form: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO archive_hosts (dur_class, start_bucket, s_addr1, batch, pairs, form) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![c, b, host, batch, blob, form])?;
    Ok(())
}

/// A history row's list (its checksum checked first); damage is an error.
fn read_pairs(
    (c, hb, host): (i64, i64, &[u8]),
    blob: &[u8],
    form: i64,
) -> Result<Vec<Pair>, Damaged> {
    let blob = codec::verified(&[&pairs_key(c, hb, host, form)], blob)?;
    if form != codec::PAIRS_FORM {
        return Err(Damaged("history form"));
    }
    codec::unpack_pairs(blob, pairs_base(c, hb))
}

/// An id list's `form` column: the one form written, anything else is damage.
fn ids_form(form: i64) -> Result<(), Damaged> {
    if form == codec::IDS_FORM {
        Ok(())
    } else {
        Err(Damaged("id list form"))
    }
}

fn count_creators(tx: &Connection, by: &HashMap<u32, i64>) -> rusqlite::Result<()> {
    let mut up = tx.prepare_cached(
        "INSERT INTO archive_creators (creator_id, n) VALUES (?1, ?2)
         ON CONFLICT (creator_id) DO UPDATE SET n = n + excluded.n",
    )?;
    for (c, n) in by {
        up.execute(params![c, n])?;
    }
    Ok(())
}

/// The next batch number.
pub fn next_batch(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        // Above any batch a destination was sent: `ship` takes higher numbers for new.
        "SELECT max(coalesce((SELECT max(batch) FROM archive_batches), 0),
                    coalesce((SELECT max(batch) FROM shipped), 0)) + 1",
        [],
        |r| r.get(0),
    )
}

/// Highest archived state id of a creator's id group.
pub fn max_id(conn: &Connection, creator_id: u32, grp: u8) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT max(max_id) FROM archive_batches WHERE creator_id = ?1 AND grp = ?2",
    )?
    .query_row(params![creator_id, grp], |r| r.get(0))
}

/// Buckets that more than one batch wrote into, and that can get no more lifetimes from
/// packets up to `watermark` (None: every such bucket).
pub fn buckets_to_merge(
    conn: &Connection,
    watermark: Option<Micros>,
) -> rusqlite::Result<Vec<(i64, i64)>> {
    let mut st = conn
        .prepare_cached("SELECT dur_class, start_bucket FROM archive_buckets WHERE batches > 1")?;
    let all: Vec<(i64, i64)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(all
        .into_iter()
        .filter(|(c, b)| match watermark {
            None => true,
            Some(w) => bucket_end(*c, *b)
                .and_then(|e| e.checked_add(COMPLETE_SLACK_US))
                .is_some_and(|e| e <= w),
        })
        .collect())
}

/// When neither the archived bucket nor the history bucket a lifetime [start, end] is filed
/// in can get more lifetimes: the latest end any lifetime of its class and buckets can have
/// (None: unbounded). An import batches a lifetime then. The short classes' archived buckets
/// (4 s to 18 min) end long before their 72-minute history bucket; archived at the former,
/// they left a history row per host and batch, read and merged again once the history
/// bucket was complete (perf: merging ~7 % of a 1 M import, the extra rows ~4 %).
pub fn complete_at(start: Micros, end: Micros) -> Option<Micros> {
    let c = class_of(end - start);
    let archived = bucket_end(c, archive_bucket_of(start, c))?;
    Some(archived.max(history_end(c, history_bucket(start, c))?))
}

/// The latest end a lifetime of class `c` filed in bucket `b` can have (None: unbounded).
fn bucket_end(c: i64, b: i64) -> Option<Micros> {
    let shift = archive_shift(usize::try_from(c).ok()?)?;
    let max = CLASS_MAX_US.get(usize::try_from(c).ok()?)?;
    b.checked_add(1)?
        .checked_mul(1i64.checked_shl(shift)?)?
        .checked_add(*max)
}

/// Merge the rows several batches wrote for each group of bucket (c, b) into one (or parts of
/// at most [`ROW_BYTES`]); `who` then reads one row per group.
pub fn merge_bucket(tx: &Connection, names: &Names, c: i64, b: i64) -> rusqlite::Result<u64> {
    const CHUNK: usize = 20_000;
    let mut merged = 0u64;
    let mut after: (Vec<u8>, i64) = (Vec::new(), -1);
    // A hashed bucket that got far more lifetimes than its first batch foresaw is regrouped
    // under more bits: its rows would spill into overflow pages. The new rows' keys (one
    // byte: the new bits) sort after the old ones, which this walk reads alone.
    let n: i64 = tx
        .prepare_cached("SELECT n FROM archive_buckets WHERE dur_class = ?1 AND start_bucket = ?2")?
        .query_row(params![c, b], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let regroup = match layout_of(tx, c, b)? {
        Some(Layout(old)) => match Layout::for_expected(n.max(0) as u64) {
            Layout(new) if new > old + 1 => Some((old, new)),
            _ => None,
        },
        None => None,
    };
    loop {
        // A chunk of the bucket in key order; the last pair of a full chunk may continue in
        // the next one, so it is left for that one.
        let rows: Vec<ArchivedRow> = tx
            .prepare_cached(
                "SELECT w_addr1, w_port1, batch, n, rows FROM archive
                  WHERE dur_class = ?1 AND start_bucket = ?2 AND (w_addr1, w_port1) > (?3, ?4)
                  ORDER BY w_addr1, w_port1, batch LIMIT ?5",
            )?
            .query_map(params![c, b, after.0, after.1, CHUNK as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut rows = rows;
        let mut full = rows.len() == CHUNK;
        if let Some((old, _)) = regroup {
            // Rows under the new bits come after every old one: the walk is over there.
            if let Some(i) = rows.iter().position(|r| r.0 != [old as u8]) {
                rows.truncate(i);
                full = false;
            }
        }
        let mut pairs: Vec<KeyRows> = Vec::new();
        for (a, p, s, n, blob) in rows {
            match pairs.last_mut() {
                Some((k, v)) if k.0 == a && k.1 == p => v.push((s, n, blob)),
                _ => pairs.push(((a, p), vec![(s, n, blob)])),
            }
        }
        if full && pairs.len() > 1 {
            pairs.pop();
        }
        let (Some(first), Some(last)) = (
            pairs.first().map(|(k, _)| k.clone()),
            pairs.last().map(|(k, _)| k.clone()),
        ) else {
            break;
        };
        // The whole key range goes, then comes back in key order: rows rewritten in place
        // one by one (a merged row is larger) left pages half empty (51 % unused after a
        // 12 M-state import whose buckets were archived in parts).
        tx.prepare_cached(
            "DELETE FROM archive WHERE dur_class = ?1 AND start_bucket = ?2
               AND (w_addr1, w_port1) >= (?3, ?4) AND (w_addr1, w_port1) <= (?5, ?6)",
        )?
        .execute(params![c, b, first.0, first.1, last.0, last.1])?;
        let mut put = tx.prepare_cached(
            "INSERT INTO archive (dur_class, start_bucket, w_addr1, w_port1, batch, n, rows) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for ((a, p), blobs) in pairs {
            let mut all = Vec::new();
            if blobs.len() > 1 || regroup.is_some() {
                for (_, _, blob) in &blobs {
                    // A damaged blob stops the writer (its transaction, this delete
                    // included, is rolled back): merged around, it would be lost.
                    match unpack_row((c, b, &a, p), blob, names, None) {
                        Ok(v) => all.push(v),
                        Err(e) => {
                            met(damaged_row(c, b, &a, p, e))?;
                            all.clear();
                            break;
                        }
                    }
                }
            }
            if all.is_empty() {
                for (batch, n, blob) in &blobs {
                    put.execute(params![c, b, a, p, batch, n, blob])?;
                }
                continue;
            }
            let rows: Vec<Stored> = all.into_iter().flatten().collect();
            let batch = blobs.iter().map(|(s, _, _)| *s).min().unwrap_or(0);
            merged += rows.len() as u64;
            let Some((_, new)) = regroup else {
                let mut refs: Vec<&Stored> = rows.iter().collect();
                put_rows(&mut put, names, (c, b, &a, p), batch, &mut refs)?;
                continue;
            };
            let mut by_group: Vec<(i64, &Stored)> = rows
                .iter()
                .map(|s| (codec::hashed_group(&s.w_addr[1], s.w_port[1], new), s))
                .collect();
            by_group.sort_by_key(|(g, _)| *g);
            let key = vec![new as u8];
            for part in by_group.chunk_by(|x, y| x.0 == y.0) {
                let mut refs: Vec<&Stored> = part.iter().map(|(_, s)| *s).collect();
                put_rows(&mut put, names, (c, b, &key, part[0].0), batch, &mut refs)?;
            }
        }
        if !full {
            break;
        }
        after = last;
    }
    tx.prepare_cached(
        "UPDATE archive_buckets SET batches = 1 WHERE dur_class = ?1 AND start_bucket = ?2",
    )?
    .execute(params![c, b])?;
    if let Some((_, new)) = regroup {
        tx.prepare_cached(
            "UPDATE archive_buckets SET bits = ?3 WHERE dur_class = ?1 AND start_bucket = ?2",
        )?
        .execute(params![c, b, new])?;
    }
    Ok(merged)
}

/// Whether no later packet can add to history bucket `hb` of class `c` (72 minutes for the
/// short classes, as `archive_hosts` files them) once packets up to `watermark` were read.
pub fn history_complete(c: i64, hb: i64, watermark: Micros) -> bool {
    history_end(c, hb)
        .and_then(|e| e.checked_add(COMPLETE_SLACK_US))
        .is_some_and(|e| e <= watermark)
}

/// The latest end a lifetime of class `c` filed in history bucket `hb` can have (None:
/// unbounded).
fn history_end(c: i64, hb: i64) -> Option<Micros> {
    let shift = super::query::bucket_shift(usize::try_from(c).ok()?)?;
    let max = CLASS_MAX_US.get(usize::try_from(c).ok()?)?;
    hb.checked_add(1)?
        .checked_mul(1i64.checked_shl(shift)?)?
        .checked_add(*max)
}

/// Merge the rows several batches wrote for each private host of class `c` and history bucket
/// `hb` into one (the writers call it once the bucket is complete: a batch every 30 s had
/// left a row per batch and host), when hosts have 1.5 rows or more on average.
pub fn merge_private(tx: &Connection, c: i64, b: i64) -> rusqlite::Result<()> {
    const CHUNK: usize = 20_000;
    // A merge rewrites every row of the bucket; it pays where hosts have several rows each
    // (the recorder batches every 30 s). An import writes few, large batches: in a 1 M-state
    // import hosts had 1.19 rows each, and merging them took 13 % of its CPU to save ~1
    // byte per state.
    let (rows, hosts): (i64, i64) = tx
        .prepare_cached(
            "SELECT count(*), count(DISTINCT s_addr1) FROM archive_hosts WHERE dur_class = ?1 AND start_bucket = ?2",
        )?
        .query_row(params![c, b], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if rows * 2 < hosts * 3 {
        return Ok(());
    }
    let mut after: Vec<u8> = Vec::new();
    loop {
        let rows: Vec<HistoryRow> = tx
            .prepare_cached(
                "SELECT s_addr1, batch, pairs, form FROM archive_hosts
                  WHERE dur_class = ?1 AND start_bucket = ?2 AND s_addr1 > ?3 ORDER BY s_addr1, batch LIMIT ?4",
            )?
            .query_map(params![c, b, after, CHUNK as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let full = rows.len() == CHUNK;
        let mut hosts: Vec<(Vec<u8>, Blobs)> = Vec::new();
        for (a, s, blob, form) in rows {
            match hosts.last_mut() {
                Some((k, v)) if *k == a => v.push((s, blob, form)),
                _ => hosts.push((a, vec![(s, blob, form)])),
            }
        }
        if full && hosts.len() > 1 {
            hosts.pop();
        }
        let (Some(first), Some(last)) = (
            hosts.first().map(|(k, _)| k.clone()),
            hosts.last().map(|(k, _)| k.clone()),
        ) else {
            break;
        };
        // As in merge_bucket: the chunk's range goes and comes back in key order, so the
        // merged rows fill their pages.
        tx.prepare_cached(
            "DELETE FROM archive_hosts WHERE dur_class = ?1 AND start_bucket = ?2 AND s_addr1 >= ?3 AND s_addr1 <= ?4",
        )?
        .execute(params![c, b, first, last])?;
        for (a, blobs) in hosts {
            let mut set = HashSet::default();
            let mut as_is = blobs.len() < 2;
            for (_, blob, form) in &blobs {
                match read_pairs((c, b, &a), blob, *form) {
                    Ok(v) if !as_is => set.extend(v),
                    Ok(_) => {}
                    Err(e) => {
                        met(damaged_pairs(c, b, &a, e))?;
                        as_is = true;
                    }
                }
            }
            if as_is {
                // One row, or a damaged one: back as it was.
                for (batch, blob, form) in &blobs {
                    put_pairs_blob(tx, (c, b, &a), *batch, blob, *form)?;
                }
                continue;
            }
            let mut pairs: Vec<Pair> = set.into_iter().collect();
            pairs.sort();
            let batch = blobs.iter().map(|(s, ..)| *s).min().unwrap_or(0);
            put_pairs(tx, (c, b, &a), batch, &pairs)?;
        }
        if !full {
            break;
        }
        after = last;
    }
    Ok(())
}

/// The id ranges of every batch, and the parsed id lists of the ones looked into: how the
/// writer finds out whether a state it did not take as new is archived.
#[derive(Debug, Default)]
pub struct BatchIndex {
    loaded: bool,
    /// (creator, group) -> (batch, min id, max id).
    ranges: HashMap<(u32, u8), Ranges>,
    parsed: HashMap<ChunkKey, HashMap<u64, Vec<Filed>>>,
}

/// One group's id ranges (chunks of batches), found by binary search: a file of 100 M
/// lifetimes has ~25,000 chunks, and a scan of them all for each state an older capture
/// names was ~6 % of its import.
#[derive(Debug, Default)]
struct Ranges {
    /// (batch, min id, max id), by min id.
    by_lo: Vec<BatchRange>,
    /// The highest max id among the first i + 1: where a search back from the chunks that
    /// start at or below an id can stop.
    reach: Vec<i64>,
}

impl Ranges {
    fn sort(&mut self) {
        self.by_lo
            .sort_unstable_by_key(|&(batch, lo, hi)| (lo, hi, batch));
        let mut top = i64::MIN;
        self.reach = self
            .by_lo
            .iter()
            .map(|&(_, _, hi)| {
                top = top.max(hi);
                top
            })
            .collect();
    }

    /// (batch, min id) of the chunks whose range holds `id`.
    fn containing(&self, id: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        let mut i = self.by_lo.partition_point(|&(_, lo, _)| lo <= id);
        while i > 0 {
            i -= 1;
            if self.reach[i] < id {
                break;
            }
            let (batch, lo, hi) = self.by_lo[i];
            if id <= hi {
                out.push((batch, lo));
            }
        }
        out
    }
}

impl BatchIndex {
    /// Forget everything (after a rollback, or when batches were added).
    pub fn reset(&mut self) {
        *self = BatchIndex::default();
    }

    /// Count a batch just written in (its id lists are read when needed).
    fn load(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        if self.loaded {
            return Ok(());
        }
        let mut st =
            conn.prepare("SELECT batch, creator_id, grp, min_id, max_id FROM archive_batches")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let (batch, creator, grp, lo, hi): (i64, i64, i64, i64, i64) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
            self.ranges
                .entry((creator as u32, grp as u8))
                .or_default()
                .by_lo
                .push((batch, lo, hi));
        }
        for r in self.ranges.values_mut() {
            r.sort();
        }
        self.loaded = true;
        Ok(())
    }

    /// Where the archived lifetimes of `k` may be filed: each group once, in key order.
    fn places(&mut self, conn: &Connection, k: &StateRef) -> rusqlite::Result<Vec<Filed>> {
        self.load(conn)?;
        let g = group_of(k);
        let id = to_i64(k.id);
        let chunks: Vec<(i64, i64)> = match self.ranges.get(&g) {
            Some(r) => r.containing(id),
            None => return Ok(Vec::new()),
        };
        let mut out = Vec::new();
        for (batch, lo) in chunks {
            let key = (batch, g.0, g.1, lo);
            if !self.parsed.contains_key(&key) {
                if self.parsed.len() >= CHUNKS_CACHED {
                    self.parsed.clear();
                }
                let blob: Option<(Vec<u8>, i64)> = conn
                    .prepare_cached(
                        "SELECT ids, form FROM archive_batches WHERE batch = ?1 AND creator_id = ?2 AND grp = ?3 AND min_id = ?4",
                    )?
                    .query_row(params![batch, g.0, g.1, lo], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let mut map: HashMap<u64, Vec<Filed>> = HashMap::default();
                if let Some((blob, form)) = blob {
                    // Only writers look here: a damaged id list stops them, since a later
                    // message about one of its lifetimes would otherwise store it twice.
                    let list =
                        codec::verified(&[&ids_key(i64::from(g.0), i64::from(g.1), lo)], &blob)
                            .and_then(|b| {
                                ids_form(form)?;
                                codec::unpack_ids(b, lo as u64)
                            });
                    match list {
                        Ok(list) => {
                            for (i, f) in list {
                                map.entry(i).or_default().push(f);
                            }
                        }
                        Err(e) => met(DamagedGroup {
                            kind: DamageKind::IdList,
                            what: format!(
                                "id list (batch {batch}, creator {:08x}, ids from {lo:016x})",
                                g.0
                            ),
                            from: None,
                            to: None,
                            why: e.0,
                        })?,
                    }
                }
                self.parsed.insert(key, map);
            }
            if let Some(v) = self.parsed.get(&key).and_then(|m| m.get(&k.id)) {
                out.extend(v.iter().cloned());
            }
        }
        // Each group once, in key order.
        out.sort_by_key(|f| (f.dur_class, f.start_bucket, f.spot));
        out.dedup();
        Ok(out)
    }
}

/// Every archived lifetime of `k`, left where it is.
pub fn find(
    conn: &Connection,
    index: &mut BatchIndex,
    names: &Names,
    k: &StateRef,
) -> rusqlite::Result<Vec<Stored>> {
    let mut found = Vec::new();
    for (c, b, a, p) in rows_of(conn, index, k)? {
        found.extend(
            at_key(conn, names, (c, b, &a, p), None)?
                .into_iter()
                .filter(|s| s.creator_id == k.creator_id && s.state_id == k.id),
        );
    }
    Ok(found)
}

/// Every lifetime (or those of public pair `only`) in the rows of `archive` at one key;
/// a damaged row is skipped and kept for the reader's warning, or an error ([`tolerate`]).
fn at_key(
    conn: &Connection,
    names: &Names,
    (c, b, a, p): (i64, i64, &[u8], i64),
    only: Option<(&IpAddr, u16)>,
) -> rusqlite::Result<Vec<Stored>> {
    let mut st = conn.prepare_cached(
        "SELECT rows FROM archive WHERE dur_class = ?1 AND start_bucket = ?2 AND w_addr1 = ?3 AND w_port1 = ?4",
    )?;
    let mut rows = st.query(params![c, b, a, p])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let blob: Vec<u8> = r.get(0)?;
        match unpack_row((c, b, a, p), &blob, names, only) {
            Ok(v) => out.extend(v),
            Err(e) => met(damaged_row(c, b, a, p, e))?,
        }
    }
    Ok(out)
}

/// The rows of `archive` (dur_class, start_bucket, w_addr1, w_port1) the archived lifetimes of `k` may be
/// in, each once (two spots can name one row).
fn rows_of(
    conn: &Connection,
    index: &mut BatchIndex,
    k: &StateRef,
) -> rusqlite::Result<Vec<RowKey>> {
    let mut keys = Vec::new();
    for f in index.places(conn, k)? {
        if let Some((a, p)) =
            layout_of(conn, f.dur_class, f.start_bucket)?.map(|l| l.spot_key(&f.spot))
        {
            keys.push((f.dur_class, f.start_bucket, a, p));
        }
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// Take every archived lifetime of `k` out of the archived tables (the writer then writes them
/// into `states`, where its merges apply).
pub fn take(
    tx: &Connection,
    index: &mut BatchIndex,
    names: &Names,
    k: &StateRef,
) -> rusqlite::Result<Vec<Stored>> {
    let mut taken = Vec::new();
    for (dur_class, start_bucket, a, port) in rows_of(tx, index, k)? {
        let groups: Vec<(i64, Vec<u8>)> = tx
            .prepare_cached(
                "SELECT batch, rows FROM archive WHERE dur_class = ?1 AND start_bucket = ?2 AND w_addr1 = ?3 AND w_port1 = ?4",
            )?
            .query_map(params![dur_class, start_bucket, a, port], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (batch, blob) in groups {
            let rows = match unpack_row((dur_class, start_bucket, &a, port), &blob, names, None) {
                Ok(rows) => rows,
                Err(e) => {
                    met(damaged_row(dur_class, start_bucket, &a, port, e))?;
                    continue;
                }
            };
            let (mine, rest): (Vec<Stored>, Vec<Stored>) = rows
                .into_iter()
                .partition(|r| r.creator_id == k.creator_id && r.state_id == k.id);
            if mine.is_empty() {
                continue;
            }
            if rest.is_empty() {
                tx.prepare_cached(
                    "DELETE FROM archive WHERE dur_class = ?1 AND start_bucket = ?2 AND w_addr1 = ?3 AND w_port1 = ?4 AND batch = ?5",
                )?
                .execute(params![dur_class, start_bucket, a, port, batch])?;
            } else {
                let mut refs: Vec<&Stored> = rest.iter().collect();
                let blob = codec::summed(
                    &[&row_key(dur_class, start_bucket, &a, port)],
                    pack_row(&mut refs, names),
                );
                tx.prepare_cached(
                    "UPDATE archive SET n = ?6, rows = ?7
                      WHERE dur_class = ?1 AND start_bucket = ?2 AND w_addr1 = ?3 AND w_port1 = ?4 AND batch = ?5",
                )?
                .execute(params![
                    dur_class,
                    start_bucket,
                    a,
                    port,
                    batch,
                    rest.len() as i64,
                    blob
                ])?;
            }
            tx.prepare_cached(
                "UPDATE archive_buckets SET n = n - ?3 WHERE dur_class = ?1 AND start_bucket = ?2",
            )?
            .execute(params![dur_class, start_bucket, mine.len() as i64])?;
            count_creators(
                tx,
                &[(k.creator_id, -(mine.len() as i64))].into_iter().collect(),
            )?;
            taken.extend(mine);
        }
    }
    Ok(taken)
}

/// Every archived lifetime of bucket (c, b), group by group, to `f`; damaged groups are
/// counted where damage is tolerated ([`tolerate`]), an error elsewhere (prune).
pub fn each_in_bucket(
    conn: &Connection,
    names: &Names,
    c: i64,
    b: i64,
    mut f: impl FnMut(Stored) -> rusqlite::Result<()>,
) -> rusqlite::Result<u64> {
    let mut st = conn.prepare_cached(
        "SELECT w_addr1, w_port1, rows FROM archive WHERE dur_class = ?1 AND start_bucket = ?2",
    )?;
    let mut rows = st.query(params![c, b])?;
    let mut damaged = 0;
    while let Some(r) = rows.next()? {
        let (a, p, blob): (Vec<u8>, i64, Vec<u8>) = (r.get(0)?, r.get(1)?, r.get(2)?);
        match unpack_row((c, b, &a, p), &blob, names, None) {
            Ok(v) => {
                for s in v {
                    f(s)?;
                }
            }
            Err(e) => {
                met(damaged_row(c, b, &a, p, e))?;
                damaged += 1;
            }
        }
    }
    Ok(damaged)
}

/// The lifetimes archived by batches after `after` (`ship`): their id lists say where each
/// is filed, and the rows there are read once each. A row merged since holds lifetimes of
/// older batches too; only ids the new batches list are kept (an id reused in the same
/// row comes along, a harmless copy). Returns the damaged rows and id lists skipped.
pub fn each_after_batch(
    conn: &Connection,
    names: &Names,
    after: i64,
    mut f: impl FnMut(Stored) -> rusqlite::Result<()>,
) -> rusqlite::Result<u64> {
    let mut damaged = 0u64;
    let mut ids: HashSet<(u32, u64)> = HashSet::default();
    let mut places: HashSet<(i64, i64, Spot)> = HashSet::default();
    {
        let mut st = conn.prepare(
            "SELECT batch, creator_id, grp, min_id, ids, form FROM archive_batches WHERE batch > ?1",
        )?;
        let mut rows = st.query([after])?;
        while let Some(r) = rows.next()? {
            let (batch, creator, grp, lo): (i64, i64, i64, i64) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            let (blob, form): (Vec<u8>, i64) = (r.get(4)?, r.get(5)?);
            let list = codec::verified(&[&ids_key(creator, grp, lo)], &blob).and_then(|b| {
                ids_form(form)?;
                codec::unpack_ids(b, lo as u64)
            });
            match list {
                Ok(list) => {
                    for (id, at) in list {
                        ids.insert((creator as u32, id));
                        places.insert((at.dur_class, at.start_bucket, at.spot));
                    }
                }
                Err(e) => {
                    met(DamagedGroup {
                        kind: DamageKind::IdList,
                        what: format!(
                            "id list (batch {batch}, creator {:08x}, ids from {lo:016x})",
                            creator as u32
                        ),
                        from: None,
                        to: None,
                        why: e.0,
                    })?;
                    damaged += 1;
                }
            }
        }
    }
    let mut by_bucket: Vec<(i64, i64, Spot)> = places.into_iter().collect();
    by_bucket.sort_unstable();
    let mut keys: Vec<RowKey> = Vec::new();
    for part in by_bucket.chunk_by(|x, y| (x.0, x.1) == (y.0, y.1)) {
        let (c, b) = (part[0].0, part[0].1);
        let Some(layout) = layout_of(conn, c, b)? else {
            continue;
        };
        keys.extend(part.iter().map(|(_, _, s)| {
            let (a, p) = layout.spot_key(s);
            (c, b, a, p)
        }));
    }
    keys.sort_unstable();
    keys.dedup();
    let mut st = conn.prepare_cached(
        "SELECT rows FROM archive WHERE dur_class = ?1 AND start_bucket = ?2 AND w_addr1 = ?3 AND w_port1 = ?4",
    )?;
    for (c, b, a, p) in keys {
        let mut rows = st.query(params![c, b, a, p])?;
        while let Some(r) = rows.next()? {
            let blob: Vec<u8> = r.get(0)?;
            match unpack_row((c, b, &a, p), &blob, names, None) {
                Ok(v) => {
                    for s in v {
                        if ids.contains(&(s.creator_id, s.state_id)) {
                            f(s)?;
                        }
                    }
                }
                Err(e) => {
                    met(damaged_row(c, b, &a, p, e))?;
                    damaged += 1;
                }
            }
        }
    }
    Ok(damaged)
}

/// The (creator, id) of every lifetime archived by batches after `after`: what `prune`
/// keeps for a destination that has not been sent them.
pub fn ids_after_batch(conn: &Connection, after: i64) -> rusqlite::Result<HashSet<(u32, u64)>> {
    let mut out: HashSet<(u32, u64)> = HashSet::default();
    let mut st = conn.prepare(
        "SELECT creator_id, grp, min_id, ids, form FROM archive_batches WHERE batch > ?1",
    )?;
    let mut rows = st.query([after])?;
    while let Some(r) = rows.next()? {
        let (creator, grp, lo): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let (blob, form): (Vec<u8>, i64) = (r.get(3)?, r.get(4)?);
        let list = codec::verified(&[&ids_key(creator, grp, lo)], &blob).and_then(|b| {
            ids_form(form)?;
            codec::unpack_ids(b, lo as u64)
        });
        match list {
            Ok(list) => out.extend(list.into_iter().map(|(id, _)| (creator as u32, id))),
            // Prune stops rather than delete what it cannot tell is shipped.
            Err(e) => met(DamagedGroup {
                kind: DamageKind::IdList,
                what: format!(
                    "id list (creator {:08x}, ids from {lo:016x})",
                    creator as u32
                ),
                from: None,
                to: None,
                why: e.0,
            })?,
        }
    }
    Ok(out)
}

/// The archived lifetimes of one public pair in bucket (c, b).
pub fn group(
    conn: &Connection,
    names: &Names,
    c: i64,
    b: i64,
    addr: &IpAddr,
    port: u16,
) -> rusqlite::Result<Vec<Stored>> {
    let Some((a, p)) = layout_of(conn, c, b)?.map(|l| l.key(addr, port)) else {
        return Ok(Vec::new());
    };
    at_key(conn, names, (c, b, &a, p), Some((addr, port)))
}

/// The archived lifetimes at `spots` in bucket (c, b), each once: those of the pairs whose
/// hash a spot holds (the caller picks by private address).
pub fn at_spots(
    conn: &Connection,
    names: &Names,
    c: i64,
    b: i64,
    spots: &[Spot],
) -> rusqlite::Result<Vec<Stored>> {
    let Some(layout) = layout_of(conn, c, b)? else {
        return Ok(Vec::new());
    };
    // Several spots can name one row (one group, several hashes): each row is read once.
    let mut keys: Vec<(Vec<u8>, i64)> = spots.iter().map(|s| layout.spot_key(s)).collect();
    keys.sort();
    keys.dedup();
    let wanted: HashSet<Spot> = spots.iter().copied().collect();
    let mut out = Vec::new();
    for (a, p) in keys {
        out.extend(
            at_key(conn, names, (c, b, &a, p), None)?
                .into_iter()
                .filter(|s| wanted.contains(&Spot::hashed(&s.w_addr[1], s.w_port[1]))),
        );
    }
    Ok(out)
}

/// Where the groups of private hosts in [lo, hi] (same length) of class `c` and history
/// bucket `b` are: (archived bucket, spot).
pub fn private_pairs(
    conn: &Connection,
    c: i64,
    b: i64,
    lo: &[u8],
    hi: &[u8],
) -> rusqlite::Result<Vec<Pair>> {
    let mut st = conn.prepare_cached(
        "SELECT s_addr1, pairs, form FROM archive_hosts
          WHERE dur_class = ?1 AND start_bucket = ?2 AND s_addr1 >= ?3 AND s_addr1 <= ?4 AND length(s_addr1) = length(?3)",
    )?;
    let mut rows = st.query(params![c, b, lo, hi])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let (host, blob, form): (Vec<u8>, Vec<u8>, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        match read_pairs((c, b, &host), &blob, form) {
            Ok(v) => out.extend(v),
            Err(e) => met(damaged_pairs(c, b, &host, e))?,
        }
    }
    Ok(out)
}

/// Delete archived lifetimes that ended before `before`; how many.
pub fn prune(tx: &Connection, names: &Names, before: Micros) -> rusqlite::Result<u64> {
    prune_keeping(tx, names, before, None).map(|(gone, _)| gone)
}

/// [`prune`], keeping the lifetimes whose (creator, id) `unshipped` holds (not yet sent to
/// every destination this file ships to) and the id lists of batches after `unshipped`'s
/// batch; (deleted, kept because unshipped).
pub fn prune_keeping(
    tx: &Connection,
    names: &Names,
    before: Micros,
    unshipped: Option<(&HashSet<(u32, u64)>, i64)>,
) -> rusqlite::Result<(u64, u64)> {
    let mut held = 0u64;
    let buckets: Vec<(i64, i64, Micros)> = tx
        .prepare("SELECT dur_class, start_bucket, end_us FROM archive_buckets WHERE first_us < ?1")?
        .query_map([before], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut gone = 0u64;
    for (c, b, _) in buckets {
        let Some(layout) = layout_of(tx, c, b)? else {
            continue;
        };
        let mut keep: HashMap<(Vec<u8>, i64), Vec<Stored>> = HashMap::default();
        let mut removed: HashMap<u32, i64> = HashMap::default();
        let mut kept = 0i64;
        each_in_bucket(tx, names, c, b, |s| {
            let keep_unshipped = s.end < before
                && unshipped.is_some_and(|(ids, _)| ids.contains(&(s.creator_id, s.state_id)));
            if keep_unshipped {
                held += 1;
            }
            if s.end < before && !keep_unshipped {
                *removed.entry(s.creator_id).or_default() -= 1;
            } else {
                kept += 1;
                keep.entry(layout.key(&s.w_addr[1], s.w_port[1]))
                    .or_default()
                    .push(s);
            }
            Ok(())
        })?;
        if removed.is_empty() {
            continue;
        }
        gone += removed.values().map(|n| -n).sum::<i64>() as u64;
        tx.prepare_cached("DELETE FROM archive WHERE dur_class = ?1 AND start_bucket = ?2")?
            .execute(params![c, b])?;
        // Every lifetime gone (its latest end is before, and none is kept unshipped).
        if kept == 0 {
            tx.prepare_cached(
                "DELETE FROM archive_buckets WHERE dur_class = ?1 AND start_bucket = ?2",
            )?
            .execute(params![c, b])?;
        } else {
            for ((a, p), rows) in &keep {
                let mut refs: Vec<&Stored> = rows.iter().collect();
                put_group(tx, names, (c, b, a, *p), 0, &mut refs)?;
            }
            let first = keep.values().flatten().map(|s| s.start).min().unwrap_or(0);
            tx.prepare_cached(
                "UPDATE archive_buckets SET n = ?3, first_us = ?4, batches = 1 WHERE dur_class = ?1 AND start_bucket = ?2",
            )?
            .execute(params![c, b, kept, first])?;
        }
        count_creators(tx, &removed)?;
    }
    // One id row of the newest batch stays even once its lifetimes are gone: next_batch
    // counts from it, and a number handed out again would meet the history rows that batch
    // wrote (prune keeps those of recent buckets, below). A stale id list only points at
    // lifetimes no longer there, as that of a batch pruned in part does.
    // Id lists of batches not yet shipped everywhere stay: ship finds their lifetimes by them.
    tx.execute(
        "DELETE FROM archive_batches WHERE end_us < ?1 AND batch <= ?2 AND (batch, creator_id, grp, min_id) !=
           (SELECT batch, creator_id, grp, min_id FROM archive_batches ORDER BY batch DESC LIMIT 1)",
        params![before, unshipped.map_or(i64::MAX, |(_, b)| b)],
    )?;
    if held > 0 {
        // The history rows of kept lifetimes stay too (history finds them by these).
        return Ok((gone, held));
    }
    // History entries of 72-minute buckets whose every lifetime ended before; those of a
    // bucket pruned in part only point at fewer lifetimes now, which history skips.
    for (c, max) in CLASS_MAX_US.iter().enumerate() {
        if let Some(shift) = super::query::bucket_shift(c) {
            let dead_below = (before.saturating_sub(*max) >> shift) - 1;
            tx.prepare_cached(
                "DELETE FROM archive_hosts WHERE dur_class = ?1 AND start_bucket < ?2",
            )?
            .execute(params![c as i64, dead_below])?;
        }
    }
    Ok((gone, held))
}

/// Move every archived lifetime back into `states` (tests compare whole databases this way;
/// also a way back for anyone who wants one row per lifetime).
pub fn unarchive_all(
    tx: &Connection,
    names: &Names,
    mut insert: impl FnMut(&Connection, &Stored) -> rusqlite::Result<()>,
) -> rusqlite::Result<u64> {
    let buckets: Vec<(i64, i64)> = tx
        .prepare("SELECT dur_class, start_bucket FROM archive_buckets")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut n = 0;
    for (c, b) in buckets {
        let mut rows = Vec::new();
        each_in_bucket(tx, names, c, b, |s| {
            rows.push(s);
            Ok(())
        })?;
        for s in &rows {
            insert(tx, s)?;
        }
        n += rows.len() as u64;
    }
    tx.execute_batch(
        "DELETE FROM archive; DELETE FROM archive_hosts; DELETE FROM archive_buckets;
         DELETE FROM archive_creators; DELETE FROM archive_batches;",
    )?;
    Ok(n)
}

/// Read every history row and id list back (checksum, then decoding); damaged ones go
/// through [`met`] like a damaged group. How many of each were read: (history, id lists).
pub fn check_lists(conn: &Connection) -> rusqlite::Result<(u64, u64)> {
    let mut st =
        conn.prepare("SELECT dur_class, start_bucket, s_addr1, pairs, form FROM archive_hosts")?;
    let mut rows = st.query([])?;
    let mut history = 0;
    while let Some(r) = rows.next()? {
        let (c, hb, host, blob, form): (i64, i64, Vec<u8>, Vec<u8>, i64) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
        history += 1;
        if let Err(e) = read_pairs((c, hb, &host), &blob, form) {
            met(damaged_pairs(c, hb, &host, e))?;
        }
    }
    let mut st =
        conn.prepare("SELECT batch, creator_id, grp, min_id, ids, form FROM archive_batches")?;
    let mut rows = st.query([])?;
    let mut lists = 0;
    while let Some(r) = rows.next()? {
        let (batch, creator, grp, lo, blob, form): (i64, i64, i64, i64, Vec<u8>, i64) = (
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        );
        lists += 1;
        let list = codec::verified(&[&ids_key(creator, grp, lo)], &blob).and_then(|b| {
            ids_form(form)?;
            codec::unpack_ids(b, lo as u64)
        });
        if let Err(e) = list {
            met(DamagedGroup {
                kind: DamageKind::IdList,
                what: format!("id list (batch {batch}, creator {creator:08x}, ids from {lo:016x})"),
                from: None,
                to: None,
                why: e.0,
            })?;
        }
    }
    Ok((history, lists))
}

#[cfg(test)]
mod tests {
    proptest::proptest! {
        /// The binary search finds exactly the chunks a scan of them all finds.
        #[test]
        fn a_chunk_search_finds_what_a_scan_finds(
            chunks in proptest::collection::vec((0i64..50, 0i64..1000, 0i64..40), 0..60),
            ids in proptest::collection::vec(-5i64..1100, 1..20),
        ) {
            let mut r = super::Ranges {
                by_lo: chunks.iter().map(|&(batch, lo, len)| (batch, lo, lo + len)).collect(),
                ..Default::default()
            };
            r.sort();
            for id in ids {
                let mut got = r.containing(id);
                got.sort_unstable();
                let mut want: Vec<(i64, i64)> = r
                    .by_lo
                    .iter()
                    .filter(|(_, lo, hi)| *lo <= id && id <= *hi)
                    .map(|(s, lo, _)| (*s, *lo))
                    .collect();
                want.sort_unstable();
                proptest::prop_assert_eq!(got, want);
            }
        }
    }

    use super::*;
    use crate::store::sqlite::codec::tests::stored;
    use crate::store::sqlite::query;
    use crate::store::WhoFilter;

    const S: Micros = 1_000_000;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("t.db").display().to_string();
        let conn = crate::store::sqlite::open_rw(&path).expect("open");
        (dir, conn)
    }

    fn batch(conn: &Connection, rows: &[Stored], no: i64) {
        let mut names = Names::load(conn).expect("names");
        let tx = conn.unchecked_transaction().expect("tx");
        let written = write_batch(&tx, rows, no, &mut names, &|_, n| n).expect("batch");
        assert!(!written.is_empty());
        tx.commit().expect("commit");
    }

    fn who(conn: &Connection, at: Micros) -> Vec<(u64, Micros)> {
        let public = IpAddr::from([192, 0, 2, 2]);
        let v = query::who(conn, &public, 61234, at, at, at, &WhoFilter::default()).expect("who");
        let mut v: Vec<(u64, Micros)> = v.iter().map(|l| (l.state_id, l.start)).collect();
        v.sort();
        v
    }

    fn groups(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM archive", [], |r| r.get(0))
            .expect("count")
    }

    /// The start of the class-2 archived bucket the test lifetimes begin in.
    fn all_base() -> Micros {
        ((1_767_571_200 * S) >> 26) << 26
    }

    /// Lifetimes 0..n of one public pair, one every second from the start of a class-2 archived
    /// bucket (67 s), each 12 s long (class 2).
    fn lifetimes(from: u64, n: u64) -> Vec<Stored> {
        let base = all_base();
        (from..from + n)
            .map(|i| {
                let mut s = stored(i);
                s.start = base + i as i64 * S;
                s.first = s.start + 5 * S;
                s.updated = s.first;
                s.end = s.start + 12 * S;
                s.last = s.end;
                s
            })
            .collect()
    }

    #[test]
    fn a_seal_of_mixed_durations_files_each_lifetime_in_its_class_and_gives_it_back() {
        let (_d, conn) = db();
        // Four classes interleaved row by row: the batch takes them one class at a time.
        let lengths = [1, 30, 700, 4000];
        let mut all = lifetimes(0, 60);
        for (i, s) in all.iter_mut().enumerate() {
            s.state_id = 1000 + i as u64;
            s.s_addr[1] = IpAddr::from([10, 0, 0, (i % 7) as u8]);
            s.end = s.start + lengths[i % 4] * S;
            s.last = s.end;
        }
        batch(&conn, &all, 1);
        let per_class = |sql: &str| -> Vec<(i64, i64)> {
            conn.prepare(sql)
                .expect("prepare")
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .expect("query")
                .collect::<rusqlite::Result<_>>()
                .expect("rows")
        };
        let mut want: Vec<(i64, i64)> = lengths.iter().map(|l| (class_of(l * S), 15)).collect();
        want.sort();
        assert_eq!(
            per_class(
                "SELECT dur_class, sum(n) FROM archive GROUP BY dur_class ORDER BY dur_class"
            ),
            want
        );
        // Each class has its hosts' history: seven hosts, all in each class.
        let hosts: Vec<(i64, i64)> = want.iter().map(|(c, _)| (*c, 7)).collect();
        assert_eq!(
            per_class(
                "SELECT dur_class, count(DISTINCT s_addr1) FROM archive_hosts GROUP BY dur_class ORDER BY dur_class"
            ),
            hosts
        );
        let names = Names::load(&conn).expect("names");
        let tx = conn.unchecked_transaction().expect("tx");
        let mut back = Vec::new();
        unarchive_all(&tx, &names, |_, s| {
            back.push(s.clone());
            Ok(())
        })
        .expect("unarchive");
        back.sort_by_key(|s| s.state_id);
        assert_eq!(back, all);
    }

    #[test]
    fn merging_a_buckets_seals_keeps_every_lifetime_in_the_fewest_rows_that_fit_a_page() {
        let (_d, conn) = db();
        let all = lifetimes(0, 30);
        for (no, part) in all.chunks(10).enumerate() {
            batch(&conn, part, no as i64 + 1);
        }
        assert_eq!(groups(&conn), 3, "one group per batch before the merge");
        let probes: Vec<Micros> = all.iter().map(|s| s.start + 11 * S).collect();
        let before: Vec<_> = probes.iter().map(|t| who(&conn, *t)).collect();
        let overlaps: Vec<usize> = before.iter().map(Vec::len).collect();
        assert_eq!(
            overlaps[..3],
            [12, 13, 13],
            "each probe meets every lifetime alive"
        );
        let names = Names::load(&conn).expect("names");
        let todo = buckets_to_merge(&conn, None).expect("buckets");
        assert_eq!(todo.len(), 1);
        let tx = conn.unchecked_transaction().expect("tx");
        for (c, b) in todo {
            assert_eq!(merge_bucket(&tx, &names, c, b).expect("merge"), 30);
        }
        tx.commit().expect("commit");
        assert_eq!(
            groups(&conn),
            2,
            "30 lifetimes of one pair: two rows under 1 KB"
        );
        let after: Vec<_> = probes.iter().map(|t| who(&conn, *t)).collect();
        assert_eq!(before, after);
        assert!(buckets_to_merge(&conn, None).expect("buckets").is_empty());
    }

    #[test]
    fn a_hashed_bucket_keeps_several_pairs_per_row_and_answers_for_each() {
        let (_d, conn) = db();
        // 64 lifetimes over 16 public pairs; eight per row: 8 rows.
        let mut all = lifetimes(0, 64);
        for (i, s) in all.iter_mut().enumerate() {
            s.w_port[1] = 61234 + (i % 16) as u16;
        }
        batch(&conn, &all, 1);
        let hashed: i64 = conn
            .query_row(
                "SELECT count(*) FROM archive WHERE length(w_addr1) = 1",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(hashed, groups(&conn), "a new bucket is hashed");
        assert!(groups(&conn) <= 8, "{} rows for 16 pairs", groups(&conn));
        let bits: i64 = conn
            .query_row("SELECT bits FROM archive_buckets", [], |r| r.get(0))
            .expect("bits");
        assert_eq!(bits, 3);
        // who for 192.0.2.2:61234 meets the lifetimes of that pair only.
        let t = all[20].start + 11 * S;
        let want: Vec<u64> = all
            .iter()
            .filter(|s| s.w_port[1] == 61234 && s.start <= t && s.end >= t)
            .map(|s| s.state_id)
            .collect();
        let got: Vec<u64> = who(&conn, t).iter().map(|w| w.0).collect();
        assert_eq!(got, want);
        // Take one out of its row: the others of that row stay.
        let names = Names::load(&conn).expect("names");
        let k = StateRef {
            id: all[16].state_id,
            creator_id: all[16].creator_id,
        };
        let tx = conn.unchecked_transaction().expect("tx");
        let taken = take(&tx, &mut BatchIndex::default(), &names, &k).expect("take");
        tx.commit().expect("commit");
        assert_eq!(taken, vec![all[16].clone()]);
        let left = crate::store::sqlite::export::each_lifetime(&conn, 0, i64::MAX, |_| {
            Ok::<(), rusqlite::Error>(())
        })
        .expect("walk");
        assert_eq!((left.rows, left.damaged), (63, 0));
    }

    #[test]
    fn history_rows_are_merged_only_where_hosts_have_several() {
        let (_d, conn) = db();
        let rows = || {
            conn.query_row("SELECT count(*) FROM archive_hosts", [], |r| {
                r.get::<_, i64>(0)
            })
            .expect("count")
        };
        // Ten hosts in batch 1, one of them again in batch 2: 11 rows for 10 hosts stay.
        let mut all = lifetimes(0, 12);
        for (i, s) in all.iter_mut().enumerate() {
            s.s_addr[1] = IpAddr::from([10, 0, 1, (i % 10) as u8]);
        }
        batch(&conn, &all[..10], 1);
        batch(&conn, &all[10..11], 2);
        let (c, hb) = (2, history_bucket(all[0].start, 2));
        let merge = || {
            let tx = conn.unchecked_transaction().expect("tx");
            merge_private(&tx, c, hb).expect("merge");
            tx.commit().expect("commit");
        };
        merge();
        assert_eq!(rows(), 11, "1.1 rows per host: left as written");
        // Every host in five more batches: 61 rows for 10 hosts become one each.
        for no in 3..8 {
            let mut more = lifetimes(12 + 10 * no as u64, 10);
            for (i, s) in more.iter_mut().enumerate() {
                s.s_addr[1] = IpAddr::from([10, 0, 1, i as u8]);
            }
            batch(&conn, &more, no);
        }
        merge();
        assert_eq!(rows(), 10);
        let host = IpAddr::from([10, 0, 1, 0]);
        let h = query::history(&conn, &host, &host, 0, i64::MAX / 4, None).expect("history");
        let mut ids: Vec<u64> = h.iter().map(|l| l.state_id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(
            (h.len(), ids.len()),
            (7, 7),
            "its seven lifetimes, each once"
        );
    }

    #[test]
    fn a_hosts_history_meets_each_lifetime_once_when_its_pairs_share_a_group() {
        let (_d, conn) = db();
        // One inside host, 64 public pairs in 8 hashed groups: its history row names the
        // groups by hash, several pairs per group.
        let host = IpAddr::from([10, 0, 0, 7]);
        let mut all = lifetimes(0, 64);
        for (i, s) in all.iter_mut().enumerate() {
            s.s_addr[1] = host;
            s.w_port[1] = 61234 + i as u16;
        }
        batch(&conn, &all, 1);
        let forms: (i64, i64) = conn
            .query_row(
                "SELECT (SELECT min(form) FROM archive_batches), (SELECT min(form) FROM archive_hosts)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("forms");
        assert_eq!(forms, (2, 1), "id list and history row name hashes");
        let got = query::history(&conn, &host, &host, 0, i64::MAX / 4, None).expect("history");
        let mut ids: Vec<u64> = got.iter().map(|l| l.state_id).collect();
        ids.sort();
        let want: Vec<u64> = all.iter().map(|s| s.state_id).collect();
        assert_eq!(ids, want, "every lifetime once");
        // Another host's history meets none of them, though they share the groups.
        let other = IpAddr::from([10, 0, 0, 8]);
        let none = query::history(&conn, &other, &other, 0, i64::MAX / 4, None).expect("h");
        assert!(none.is_empty());
        // find by id through the hash spot meets the lifetime once.
        let names = Names::load(&conn).expect("names");
        let k = StateRef {
            id: all[9].state_id,
            creator_id: all[9].creator_id,
        };
        let found = find(&conn, &mut BatchIndex::default(), &names, &k).expect("find");
        assert_eq!(found, vec![all[9].clone()]);
    }

    #[test]
    fn a_bucket_far_larger_than_its_first_seal_foresaw_is_regrouped_by_its_merge() {
        let (_d, conn) = db();
        // 608 lifetimes of 608 public pairs in one class-2 bucket: the first batch holds 8.
        let mut all = lifetimes(0, 608);
        for (i, s) in all.iter_mut().enumerate() {
            let shift = (i as i64 % 50) * S - (s.start - all_base());
            s.start += shift;
            s.first += shift;
            s.updated += shift;
            s.end += shift;
            s.last += shift;
            s.w_port[1] = 1000 + i as u16;
        }
        batch(&conn, &all[..8], 1);
        batch(&conn, &all[8..], 2);
        let bits = |conn: &Connection| -> i64 {
            conn.query_row("SELECT bits FROM archive_buckets", [], |r| r.get(0))
                .expect("bits")
        };
        assert_eq!(bits(&conn), 0, "sized for the first batch's 8");
        let pair_at = |conn: &Connection, i: usize| -> Vec<u64> {
            let public = all[i].w_addr[1];
            let t = all[i].start + S;
            query::who(
                conn,
                &public,
                all[i].w_port[1],
                t,
                t,
                t,
                &WhoFilter::default(),
            )
            .expect("who")
            .iter()
            .map(|l| l.state_id)
            .collect()
        };
        let before: Vec<Vec<u64>> = [0, 7, 300, 607]
            .iter()
            .map(|i| pair_at(&conn, *i))
            .collect();
        let names = Names::load(&conn).expect("names");
        let (c, b) = filed(&all[0]);
        let tx = conn.unchecked_transaction().expect("tx");
        assert_eq!(merge_bucket(&tx, &names, c, b).expect("merge"), 608);
        tx.commit().expect("commit");
        assert_eq!(bits(&conn), 7, "608 / 8 rows");
        assert!(
            (40..=128).contains(&groups(&conn)),
            "{} rows",
            groups(&conn)
        );
        let after: Vec<Vec<u64>> = [0, 7, 300, 607]
            .iter()
            .map(|i| pair_at(&conn, *i))
            .collect();
        assert_eq!(before, after);
        assert!(after.iter().all(|v| v.len() == 1));
        let walked = crate::store::sqlite::export::each_lifetime(&conn, 0, i64::MAX, |_| {
            Ok::<(), rusqlite::Error>(())
        })
        .expect("walk");
        assert_eq!((walked.rows, walked.damaged), (608, 0));
    }

    #[test]
    fn a_pair_reused_sixty_times_in_a_bucket_is_written_in_rows_that_fit_a_page() {
        let (_d, conn) = db();
        let all = lifetimes(0, 60);
        batch(&conn, &all[..30], 1);
        batch(&conn, &all[30..], 2);
        let t = all[40].start + 5 * S;
        let alive = all.iter().filter(|s| s.start <= t && s.end >= t).count();
        let names = Names::load(&conn).expect("names");
        let (c, b) = filed(&all[0]);
        let tx = conn.unchecked_transaction().expect("tx");
        assert_eq!(merge_bucket(&tx, &names, c, b).expect("merge"), 60);
        tx.commit().expect("commit");
        let (rows, longest): (i64, i64) = conn
            .query_row("SELECT count(*), max(length(rows)) FROM archive", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("rows");
        assert!(rows >= 3, "{rows} rows");
        assert!(longest <= ROW_BYTES as i64, "{longest} bytes");
        assert_eq!(who(&conn, t).len(), alive);
        let k = StateRef {
            id: all[40].state_id,
            creator_id: all[40].creator_id,
        };
        let tx = conn.unchecked_transaction().expect("tx");
        let taken = take(&tx, &mut BatchIndex::default(), &names, &k).expect("take");
        tx.commit().expect("commit");
        assert_eq!(taken, vec![all[40].clone()]);
        assert_eq!(who(&conn, t).len(), alive - 1);
    }

    #[test]
    fn a_bucket_whose_bits_are_out_of_range_is_damage_named_by_a_reader_and_an_error_to_a_writer() {
        let (_d, conn) = db();
        let all = lifetimes(0, 4);
        batch(&conn, &all[..2], 1);
        let t = all[1].start + 11 * S;
        assert_eq!(who(&conn, t).len(), 2);
        conn.execute("UPDATE archive_buckets SET bits = 99", [])
            .expect("damage");
        let named = {
            let _tolerant = tolerate();
            assert!(who(&conn, t).is_empty());
            damage_seen()
        };
        assert_eq!(named.len(), 1, "{named:?}");
        assert!(named[0].what.starts_with("archived bucket (class 2"));
        assert_eq!(named[0].why, "bucket bits");
        // A writer stops: archived into that bucket, its lifetimes could not be found again.
        let mut names = Names::load(&conn).expect("names");
        let tx = conn.unchecked_transaction().expect("tx");
        let e = write_batch(&tx, &all[2..], 2, &mut names, &|_, n| n).expect_err("damage");
        assert!(is_damage(&e), "{e}");
    }

    #[test]
    fn a_row_keyed_by_a_public_pair_is_damage_even_with_a_matching_checksum() {
        let (_d, conn) = db();
        let all = lifetimes(0, 3);
        batch(&conn, &all, 1);
        // The one row, moved under the key of its public pair, checksummed for that key.
        let (c, b, blob): (i64, i64, Vec<u8>) = conn
            .query_row(
                "SELECT dur_class, start_bucket, rows FROM archive",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("row");
        let pair = addr_blob(&all[0].w_addr[1]);
        let port = i64::from(all[0].w_port[1]);
        let payload = blob[..blob.len() - codec::SUM_BYTES].to_vec();
        let moved = codec::summed(&[&row_key(c, b, &pair, port)], payload);
        conn.execute(
            "UPDATE archive SET w_addr1 = ?1, w_port1 = ?2, rows = ?3",
            params![pair, port, moved],
        )
        .expect("move");
        let walked = crate::store::sqlite::export::each_lifetime(&conn, 0, i64::MAX, |_| {
            Ok::<(), rusqlite::Error>(())
        })
        .expect("walk");
        assert_eq!((walked.rows, walked.damaged), (0, 1));
        let _tolerant = tolerate();
        let _ = damage_seen();
        let names = Names::load(&conn).expect("names");
        each_in_bucket(&conn, &names, c, b, |_| Ok(())).expect("tolerated");
        let named = damage_seen();
        assert_eq!(named.len(), 1, "{named:?}");
        assert_eq!(named[0].why, "row key");
    }

    #[test]
    fn a_bucket_is_merged_only_once_no_later_packet_can_add_to_it() {
        let (_d, conn) = db();
        let all = lifetimes(0, 4);
        batch(&conn, &all[..2], 1);
        batch(&conn, &all[2..], 2);
        let (c, b) = filed(&all[0]);
        let end = bucket_end(c, b).expect("bounded class");
        assert!(buckets_to_merge(&conn, Some(end)).expect("b").is_empty());
        assert_eq!(
            buckets_to_merge(&conn, Some(end + COMPLETE_SLACK_US)).expect("b"),
            vec![(c, b)]
        );
    }

    #[test]
    fn take_moves_a_sealed_lifetime_out_and_leaves_the_others() {
        let (_d, conn) = db();
        let all = lifetimes(0, 5);
        batch(&conn, &all, 1);
        let names = Names::load(&conn).expect("names");
        let mut index = BatchIndex::default();
        let k = StateRef {
            id: all[2].state_id,
            creator_id: all[2].creator_id,
        };
        let tx = conn.unchecked_transaction().expect("tx");
        assert_eq!(
            take(&tx, &mut index, &names, &k).expect("take"),
            vec![all[2].clone()]
        );
        assert!(take(&tx, &mut index, &names, &k).expect("again").is_empty());
        tx.commit().expect("commit");
        let left: i64 = conn
            .query_row("SELECT n FROM archive", [], |r| r.get(0))
            .expect("n");
        assert_eq!(left, 4);
        let st = query::stats(&conn, "x").expect("stats");
        assert_eq!(st.states, 4, "stats count what is still archived");
    }

    #[test]
    fn prune_drops_what_ended_before_and_keeps_the_rest() {
        let (_d, conn) = db();
        let all = lifetimes(0, 10);
        batch(&conn, &all, 1);
        let cut = all[4].end + 1;
        assert_eq!(query::prune(&conn, cut).expect("prune"), (5, 0));
        let st = query::stats(&conn, "x").expect("stats");
        assert_eq!(st.states, 5);
        assert!(who(&conn, all[3].start + S).is_empty());
        assert_eq!(
            who(&conn, all[7].start + 11 * S).len(),
            4,
            "lifetimes 6 to 9"
        );
    }

    #[test]
    fn a_damaged_group_is_skipped_not_a_panic() {
        let (_d, conn) = db();
        let all = lifetimes(0, 3);
        batch(&conn, &all, 1);
        conn.execute("UPDATE archive SET rows = x'ffffffffffffffffffff01'", [])
            .expect("damage");
        assert!(who(&conn, all[1].start + S).is_empty());
        let mut n = 0;
        let walked = crate::store::sqlite::export::each_lifetime(&conn, 0, i64::MAX, |_| {
            n += 1;
            Ok::<(), rusqlite::Error>(())
        })
        .expect("export");
        assert_eq!((n, walked.damaged), (0, 1));
    }
}
