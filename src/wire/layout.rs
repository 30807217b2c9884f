//! What OpenBSD (header version 6) and FreeBSD (version 5) pfsync lay out alike: the header
//! and subheader sizes, the state key's addresses and ports, the 32-byte peer, the small
//! messages (state reference, CLR, BUS, UPD_C) and the loop over a section's items, with
//! one set of length checks for both flavours (docs/pfsync.md). Every multi-byte field is
//! big-endian, read and written with `byteorder` after the length has been checked.

#[cfg(feature = "emit")]
use super::ifname_to;
use super::message::*;
use super::{ifname_from, WireError, WireErrorKind};
use crate::model::*;
use byteorder::{ByteOrder, BE};

pub const HEADER_LEN: usize = 20;
pub const SUBHEADER_LEN: usize = 4;

/// The action codes both flavours give the same meaning.
pub mod action {
    pub const CLR: u8 = 0;
    pub const INS_ACK: u8 = 2;
    pub const UPD_C: u8 = 4;
    pub const UPD_REQ: u8 = 5;
    pub const DEL: u8 = 6;
    pub const DEL_C: u8 = 7;
    pub const BUS: u8 = 10;
    pub const EOF: u8 = 12;
}

/// Sizes in bytes of the shared messages and parts.
pub mod size {
    pub const CLR: usize = 20;
    pub const INS_ACK: usize = 12;
    pub const UPD_C: usize = 84;
    pub const UPD_REQ: usize = 12;
    pub const DEL_C: usize = 12;
    pub const BUS: usize = 12;
    /// Addresses and ports of a state key (OpenBSD appends rdomain, af and a pad byte).
    pub const KEY: usize = 36;
    pub const PEER: usize = 32;
}

/// `b` holds at least `n` bytes, or the truncation (offset relative to `b`).
pub(crate) fn need(b: &[u8], n: usize, what: &'static str) -> Result<(), WireError> {
    if b.len() < n {
        Err(WireError::truncated(0, what, n, b.len()))
    } else {
        Ok(())
    }
}

/// One field of a wire struct: `LEN` bytes, big-endian, read from or written to the start
/// of a slice of exactly that length (the struct's `parse` has checked it is there).
pub(crate) trait Field: Sized {
    const LEN: usize;
    fn get(b: &[u8]) -> Self;
    #[cfg(feature = "emit")]
    fn put(&self, b: &mut [u8]);
}

impl Field for u8 {
    const LEN: usize = 1;
    fn get(b: &[u8]) -> u8 {
        b[0]
    }
    #[cfg(feature = "emit")]
    fn put(&self, b: &mut [u8]) {
        b[0] = *self;
    }
}

macro_rules! int_field {
    ($($t:ty: $read:ident, $write:ident;)*) => {$(
        impl Field for $t {
            const LEN: usize = std::mem::size_of::<$t>();
            fn get(b: &[u8]) -> $t {
                BE::$read(b)
            }
            #[cfg(feature = "emit")]
            fn put(&self, b: &mut [u8]) {
                BE::$write(b, *self);
            }
        }
    )*};
}

int_field! {
    u16: read_u16, write_u16;
    u32: read_u32, write_u32;
    u64: read_u64, write_u64;
    i32: read_i32, write_i32;
}

/// Consecutive fields of one type (addresses, the two directions' counters).
impl<T: Field, const N: usize> Field for [T; N] {
    const LEN: usize = T::LEN * N;
    fn get(b: &[u8]) -> [T; N] {
        std::array::from_fn(|i| T::get(&b[i * T::LEN..(i + 1) * T::LEN]))
    }
    #[cfg(feature = "emit")]
    fn put(&self, b: &mut [u8]) {
        for (i, x) in self.iter().enumerate() {
            x.put(&mut b[i * T::LEN..(i + 1) * T::LEN]);
        }
    }
}

/// An interface name (IFNAMSIZ).
impl Field for IfName {
    const LEN: usize = 16;
    fn get(b: &[u8]) -> IfName {
        IfName::from_wire(b)
    }
    #[cfg(feature = "emit")]
    fn put(&self, b: &mut [u8]) {
        ifname_to(self, b);
    }
}

/// A NUL-padded name, IFNAMSIZ unless the field says otherwise (`=> 64`).
impl Field for String {
    const LEN: usize = 16;
    fn get(b: &[u8]) -> String {
        ifname_from(b)
    }
    #[cfg(feature = "emit")]
    fn put(&self, b: &mut [u8]) {
        ifname_to(self, b);
    }
}

/// A wire struct declared once, as the C struct lays it out: each field with its type and
/// byte offset (`=> LEN` for a name longer than IFNAMSIZ). Gives the struct, `parse` (its
/// size checked, then every field), `emit` (zeroed, then every field; pad stays 0) and a
/// [`Field`] impl so that it nests in a larger struct.
macro_rules! wire_struct {
    (@len $t:ty) => { <$t as $crate::wire::layout::Field>::LEN };
    (@len $t:ty, $len:expr) => { $len };
    (
        $(#[$meta:meta])*
        pub struct $name:ident: $size:expr, $what:literal {
            $($(#[$fmeta:meta])* $f:ident: $t:ty = $off:expr $(=> $len:expr)?,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            $($(#[$fmeta])* pub $f: $t,)*
        }

        impl $crate::wire::layout::Field for $name {
            const LEN: usize = $size;
            fn get(b: &[u8]) -> $name {
                $name {
                    $($f: <$t as $crate::wire::layout::Field>::get(
                        &b[$off..$off + $crate::wire::layout::wire_struct!(@len $t $(, $len)?)],
                    ),)*
                }
            }
            #[cfg(feature = "emit")]
            fn put(&self, b: &mut [u8]) {
                let b = &mut b[..$size];
                b.fill(0);
                $($crate::wire::layout::Field::put(
                    &self.$f,
                    &mut b[$off..$off + $crate::wire::layout::wire_struct!(@len $t $(, $len)?)],
                );)*
            }
        }

        impl $name {
            /// From at least its size in bytes; what follows is not read.
            pub fn parse(b: &[u8]) -> Result<$name, $crate::wire::WireError> {
                $crate::wire::layout::need(b, $size, $what)?;
                Ok(<$name as $crate::wire::layout::Field>::get(b))
            }
            #[cfg(feature = "emit")]
            /// Write its size in bytes; `b` must hold that many (a caller bug otherwise).
            pub fn emit(&self, b: &mut [u8]) {
                $crate::wire::layout::Field::put(self, b);
            }
        }
    };
}
pub(crate) use wire_struct;

wire_struct! {
    /// `pfsync_state_key`'s addresses and ports (all of FreeBSD's key).
    pub struct KeyRepr: size::KEY, "pfsync_state_key" {
        addr: [[u8; 16]; 2] = 0,
        port: [u16; 2] = 32,
    }
}

impl KeyRepr {
    /// Neutral key in family `af`; FreeBSD keys carry no routing domain (OpenBSD sets it).
    pub fn to_key(&self, af: Af) -> Key {
        Key {
            addr: [addr_from(af, &self.addr[0]), addr_from(af, &self.addr[1])],
            port: self.port,
            rdomain: 0,
            af,
        }
    }
    #[cfg(feature = "emit")]
    pub fn from_key(k: &Key) -> KeyRepr {
        KeyRepr {
            addr: [addr_to(&k.addr[0]), addr_to(&k.addr[1])],
            port: k.port,
        }
    }
}

wire_struct! {
    /// `pfsync_state_peer` with its scrub part split out (6 trailing pad bytes).
    pub struct PeerRepr: size::PEER, "pfsync_state_peer" {
        scrub_flags: u16 = 0,
        scrub_ttl: u8 = 2,
        /// 1 = the scrub fields are valid.
        scrub_flag: u8 = 3,
        scrub_ts_mod: u32 = 4,
        seqlo: u32 = 8,
        seqhi: u32 = 12,
        seqdiff: u32 = 16,
        max_win: u16 = 20,
        mss: u16 = 22,
        state: u8 = 24,
        wscale: u8 = 25,
    }
}

impl PeerRepr {
    /// Offset of the TCP/UDP peer state inside a peer.
    pub(crate) const STATE: usize = 24;
    #[cfg(feature = "emit")]
    pub(crate) fn with_state(state: u8) -> PeerRepr {
        PeerRepr {
            state,
            ..Default::default()
        }
    }
}

wire_struct! {
    /// `pfsync_upd_c`. Bytes 81–83 are pad on FreeBSD; OpenBSD's are not read.
    pub struct UpdCRepr: size::UPD_C, "pfsync_upd_c" {
        id: u64 = 0,
        src: PeerRepr = 8,
        dst: PeerRepr = 40,
        creator_id: u32 = 72,
        /// FreeBSD always sends 0 and ignores it on receipt.
        expire: u32 = 76,
        timeout: u8 = 80,
    }
}

impl UpdCRepr {
    pub fn to_msg(&self) -> UpdC {
        UpdC {
            id: self.id,
            creator_id: self.creator_id,
            expire: self.expire,
            timeout: self.timeout,
            peer_state: [self.src.state, self.dst.state],
        }
    }
    #[cfg(feature = "emit")]
    pub fn from_msg(u: &UpdC) -> UpdCRepr {
        UpdCRepr {
            id: u.id,
            src: PeerRepr::with_state(u.peer_state[0]),
            dst: PeerRepr::with_state(u.peer_state[1]),
            creator_id: u.creator_id,
            expire: u.expire,
            timeout: u.timeout,
        }
    }
}

/// INS_ACK, UPD_REQ, DEL_C: state id (bytes 0–7) and creator id (8–11).
pub fn parse_ref(b: &[u8]) -> Result<StateRef, WireError> {
    need(b, size::DEL_C, "state reference")?;
    Ok(StateRef {
        id: BE::read_u64(&b[0..]),
        creator_id: BE::read_u32(&b[8..]),
    })
}

#[cfg(feature = "emit")]
/// Write 12 bytes; `b` must hold at least that many (a caller bug otherwise).
pub fn emit_ref(r: &StateRef, b: &mut [u8]) {
    BE::write_u64(&mut b[0..], r.id);
    BE::write_u32(&mut b[8..], r.creator_id);
}

/// CLR: interface name (bytes 0–15, empty for all) and creator id (16–19).
pub fn parse_clr(b: &[u8]) -> Result<Clr, WireError> {
    need(b, size::CLR, "pfsync_clr")?;
    Ok(Clr {
        ifname: IfName::from_wire(&b[0..16]),
        creator_id: BE::read_u32(&b[16..]),
    })
}

#[cfg(feature = "emit")]
/// Write 20 bytes; `b` must hold at least that many (a caller bug otherwise).
pub fn emit_clr(c: &Clr, b: &mut [u8]) {
    ifname_to(&c.ifname, &mut b[0..16]);
    BE::write_u32(&mut b[16..], c.creator_id);
}

/// BUS: creator id (bytes 0–3), end time (4–7), status (8), 3 pad bytes.
pub fn parse_bus(b: &[u8]) -> Result<Bus, WireError> {
    need(b, size::BUS, "pfsync_bus")?;
    Ok(Bus {
        creator_id: BE::read_u32(&b[0..]),
        endtime: BE::read_u32(&b[4..]),
        status: match b[8] {
            1 => BusStatus::Start,
            2 => BusStatus::End,
            o => BusStatus::Other(o),
        },
    })
}

#[cfg(feature = "emit")]
/// Write 12 bytes; `b` must hold at least that many (a caller bug otherwise).
pub fn emit_bus(m: &Bus, b: &mut [u8]) {
    let b = &mut b[..size::BUS];
    b.fill(0);
    BE::write_u32(&mut b[0..], m.creator_id);
    BE::write_u32(&mut b[4..], m.endtime);
    b[8] = match m.status {
        BusStatus::Start => 1,
        BusStatus::End => 2,
        BusStatus::Other(o) => o,
    };
}

/// Decode a message both flavours lay out alike (CLR, the state references, UPD_C, BUS);
/// `None` for other actions.
pub(crate) fn parse_shared(act: u8, b: &[u8]) -> Option<Result<Message, WireError>> {
    use action as a;
    Some(match act {
        a::CLR => parse_clr(b).map(Message::Clr),
        a::INS_ACK => parse_ref(b).map(Message::InsAck),
        a::UPD_C => UpdCRepr::parse(b).map(|u| Message::UpdC(u.to_msg())),
        a::UPD_REQ => parse_ref(b).map(Message::UpdReq),
        a::DEL_C => parse_ref(b).map(Message::DelC),
        a::BUS => parse_bus(b).map(Message::Bus),
        _ => return None,
    })
}

#[cfg(feature = "emit")]
/// A message body of `n` bytes, zeroed, then written by `write`.
pub(crate) fn body(n: usize, write: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let mut b = vec![0u8; n];
    write(&mut b);
    b
}

#[cfg(feature = "emit")]
/// The action and body of a message both flavours encode alike (those of
/// [`parse_shared`], and EOF and unknown actions, which have no body); `None` for others.
pub(crate) fn emit_shared(m: &Message) -> Option<(u8, Vec<u8>)> {
    use action as a;
    Some(match m {
        Message::Clr(c) => (a::CLR, body(size::CLR, |b| emit_clr(c, b))),
        Message::InsAck(r) => (a::INS_ACK, body(size::INS_ACK, |b| emit_ref(r, b))),
        Message::UpdReq(r) => (a::UPD_REQ, body(size::UPD_REQ, |b| emit_ref(r, b))),
        Message::DelC(r) => (a::DEL_C, body(size::DEL_C, |b| emit_ref(r, b))),
        Message::UpdC(u) => (
            a::UPD_C,
            body(size::UPD_C, |b| UpdCRepr::from_msg(u).emit(b)),
        ),
        Message::Bus(m) => (a::BUS, body(size::BUS, |b| emit_bus(m, b))),
        Message::Eof => (a::EOF, Vec::new()),
        Message::Unknown { action } => (*action, Vec::new()),
        _ => return None,
    })
}

/// A subheader: the action, OpenBSD's item length in dwords (a pad byte on FreeBSD) and the
/// item count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subheader {
    pub action: u8,
    pub len: u8,
    pub count: u16,
}

/// The subheader at `off`; `None`, with the truncation pushed, when fewer than its 4
/// bytes remain before `bound`.
pub(crate) fn subheader(
    buf: &[u8],
    off: usize,
    bound: usize,
    items: &mut Vec<Item>,
) -> Option<Subheader> {
    if off + SUBHEADER_LEN > bound {
        items.push(Item::Damage(WireError::truncated(
            off,
            "subheader",
            SUBHEADER_LEN,
            bound - off,
        )));
        return None;
    }
    Some(Subheader {
        action: buf[off],
        len: buf[off + 1],
        count: BE::read_u16(&buf[off + 2..]),
    })
}

/// A section whose items are decoded one by one.
pub(crate) struct Section {
    /// Offset of the subheader; the items follow it.
    pub at: usize,
    pub sub: Subheader,
    /// Bytes per item.
    pub stride: usize,
    pub flavor: Flavor,
    pub record_version: u16,
}

/// Decode the section's items, pushing each message (or its damage, at its offset in the
/// packet). Returns the offset after the last item, or `None` when an item runs past
/// `bound`: the whole items before it are kept and the overrun is pushed (R3).
pub(crate) fn section_items(
    buf: &[u8],
    bound: usize,
    s: &Section,
    parse: fn(u8, &[u8]) -> Result<Message, WireError>,
    items: &mut Vec<Item>,
) -> Option<usize> {
    let act = s.sub.action;
    let mut off = s.at + SUBHEADER_LEN;
    for i in 0..s.sub.count {
        if off + s.stride > bound {
            items.push(Item::Damage(WireError::new(
                s.at,
                WireErrorKind::SectionOverrun {
                    action: act,
                    count: s.sub.count,
                    stride: s.stride,
                    kept: i,
                    bound,
                },
            )));
            return None;
        }
        match parse(act, &buf[off..off + s.stride]) {
            Ok(msg) => items.push(Item::Message(
                off,
                Decoded {
                    flavor: s.flavor,
                    action: act,
                    record_version: s.record_version,
                    msg,
                },
            )),
            Err(mut e) => {
                e.offset += off;
                items.push(Item::Damage(e));
            }
        }
        off += s.stride;
    }
    Some(off)
}
