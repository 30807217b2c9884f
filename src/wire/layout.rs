//! What OpenBSD (header version 6) and FreeBSD (version 5) pfsync lay out alike: the header
//! and subheader sizes, the state key's addresses and ports, the 32-byte peer, the small
//! messages (state reference, CLR, BUS, UPD_C) and the loop over a section's items, with
//! one set of length checks for both flavours (docs/pfsync.md). Every multi-byte field is
//! big-endian, read and written with `byteorder` after the length has been checked.

#[cfg(feature = "emit")]
use super::ifname_to;
use super::message::*;
use super::{WireError, WireErrorKind};
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

/// Byte offsets inside the shared parts.
pub mod field {
    use std::ops::Range;
    // Inside a key.
    pub const K_ADDR0: usize = 0;
    pub const K_ADDR1: usize = 16;
    pub const K_PORT0: usize = 32;
    pub const K_PORT1: usize = 34;

    // Inside a peer: the scrub part (8 bytes), then the TCP window tracking.
    pub const P_SCRUB: Range<usize> = 0..8;
    pub const P_SCRUB_FLAGS: usize = 0;
    pub const P_SCRUB_TTL: usize = 2;
    pub const P_SCRUB_FLAG: usize = 3;
    pub const P_SCRUB_TS_MOD: usize = 4;
    pub const P_SEQLO: usize = 8;
    pub const P_SEQHI: usize = 12;
    pub const P_SEQDIFF: usize = 16;
    pub const P_MAX_WIN: usize = 20;
    pub const P_MSS: usize = 22;
    pub const P_STATE: usize = 24;
    pub const P_WSCALE: usize = 25;
    pub const P_PAD: Range<usize> = 26..32;

    // UPD_C (84 bytes).
    pub const UC_ID: usize = 0;
    pub const UC_SRC: usize = 8;
    pub const UC_DST: usize = 40;
    pub const UC_CREATORID: usize = 72;
    pub const UC_EXPIRE: usize = 76;
    pub const UC_TIMEOUT: usize = 80;

    // State reference: INS_ACK, UPD_REQ, DEL_C (12 bytes).
    pub const R_ID: usize = 0;
    pub const R_CREATORID: usize = 8;

    // CLR (20 bytes).
    pub const CLR_IFNAME: Range<usize> = 0..16;
    pub const CLR_CREATORID: usize = 16;

    // BUS (12 bytes).
    pub const BUS_CREATORID: usize = 0;
    pub const BUS_ENDTIME: usize = 4;
    pub const BUS_STATUS: usize = 8;
}

/// `b` holds at least `n` bytes, or the truncation (offset relative to `b`).
pub(crate) fn need(b: &[u8], n: usize, what: &'static str) -> Result<(), WireError> {
    if b.len() < n {
        Err(WireError::truncated(0, what, n, b.len()))
    } else {
        Ok(())
    }
}

/// A `pf_addr` (16 bytes) from the start of `b`, which holds at least that many.
pub(crate) fn addr16(b: &[u8]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    a
}

/// `pfsync_state_key`'s addresses and ports (36 bytes; all of FreeBSD's key).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyRepr {
    pub addr: [[u8; 16]; 2],
    pub port: [u16; 2],
}

impl KeyRepr {
    pub fn parse(b: &[u8]) -> Result<KeyRepr, WireError> {
        use field::*;
        need(b, size::KEY, "pfsync_state_key")?;
        Ok(KeyRepr {
            addr: [addr16(&b[K_ADDR0..]), addr16(&b[K_ADDR1..])],
            port: [BE::read_u16(&b[K_PORT0..]), BE::read_u16(&b[K_PORT1..])],
        })
    }
    #[cfg(feature = "emit")]
    /// Write the 36 bytes; `b` must hold at least that many (a caller bug otherwise).
    pub fn emit(&self, b: &mut [u8]) {
        use field::*;
        let b = &mut b[..size::KEY];
        b[K_ADDR0..K_ADDR0 + 16].copy_from_slice(&self.addr[0]);
        b[K_ADDR1..K_ADDR1 + 16].copy_from_slice(&self.addr[1]);
        BE::write_u16(&mut b[K_PORT0..], self.port[0]);
        BE::write_u16(&mut b[K_PORT1..], self.port[1]);
    }
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

/// `pfsync_state_peer` with its scrub part split out (32 bytes, 6 trailing pad bytes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerRepr {
    pub scrub_flags: u16,
    pub scrub_ttl: u8,
    /// 1 = the scrub fields are valid.
    pub scrub_flag: u8,
    pub scrub_ts_mod: u32,
    pub seqlo: u32,
    pub seqhi: u32,
    pub seqdiff: u32,
    pub max_win: u16,
    pub mss: u16,
    pub state: u8,
    pub wscale: u8,
}

impl PeerRepr {
    pub fn parse(b: &[u8]) -> Result<PeerRepr, WireError> {
        use field::*;
        need(b, size::PEER, "pfsync_state_peer")?;
        Ok(PeerRepr {
            scrub_flags: BE::read_u16(&b[P_SCRUB_FLAGS..]),
            scrub_ttl: b[P_SCRUB_TTL],
            scrub_flag: b[P_SCRUB_FLAG],
            scrub_ts_mod: BE::read_u32(&b[P_SCRUB_TS_MOD..]),
            seqlo: BE::read_u32(&b[P_SEQLO..]),
            seqhi: BE::read_u32(&b[P_SEQHI..]),
            seqdiff: BE::read_u32(&b[P_SEQDIFF..]),
            max_win: BE::read_u16(&b[P_MAX_WIN..]),
            mss: BE::read_u16(&b[P_MSS..]),
            state: b[P_STATE],
            wscale: b[P_WSCALE],
        })
    }
    #[cfg(feature = "emit")]
    /// Write the 32 bytes; `b` must hold at least that many (a caller bug otherwise).
    pub fn emit(&self, b: &mut [u8]) {
        use field::*;
        let b = &mut b[..size::PEER];
        BE::write_u16(&mut b[P_SCRUB_FLAGS..], self.scrub_flags);
        b[P_SCRUB_TTL] = self.scrub_ttl;
        b[P_SCRUB_FLAG] = self.scrub_flag;
        BE::write_u32(&mut b[P_SCRUB_TS_MOD..], self.scrub_ts_mod);
        BE::write_u32(&mut b[P_SEQLO..], self.seqlo);
        BE::write_u32(&mut b[P_SEQHI..], self.seqhi);
        BE::write_u32(&mut b[P_SEQDIFF..], self.seqdiff);
        BE::write_u16(&mut b[P_MAX_WIN..], self.max_win);
        BE::write_u16(&mut b[P_MSS..], self.mss);
        b[P_STATE] = self.state;
        b[P_WSCALE] = self.wscale;
        b[P_PAD].fill(0);
    }
    #[cfg(feature = "emit")]
    pub(crate) fn with_state(state: u8) -> PeerRepr {
        PeerRepr {
            state,
            ..Default::default()
        }
    }
}

/// `pfsync_upd_c` (84 bytes). Bytes 81–83 are pad on FreeBSD; OpenBSD's are not read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdCRepr {
    pub id: u64,
    pub src: PeerRepr,
    pub dst: PeerRepr,
    pub creator_id: u32,
    /// FreeBSD always sends 0 and ignores it on receipt.
    pub expire: u32,
    pub timeout: u8,
}

impl UpdCRepr {
    pub fn parse(b: &[u8]) -> Result<UpdCRepr, WireError> {
        use field::*;
        need(b, size::UPD_C, "pfsync_upd_c")?;
        Ok(UpdCRepr {
            id: BE::read_u64(&b[UC_ID..]),
            src: PeerRepr::parse(&b[UC_SRC..UC_SRC + size::PEER])?,
            dst: PeerRepr::parse(&b[UC_DST..UC_DST + size::PEER])?,
            creator_id: BE::read_u32(&b[UC_CREATORID..]),
            expire: BE::read_u32(&b[UC_EXPIRE..]),
            timeout: b[UC_TIMEOUT],
        })
    }
    #[cfg(feature = "emit")]
    /// Write 84 bytes; `b` must hold at least that many (a caller bug otherwise).
    pub fn emit(&self, b: &mut [u8]) {
        use field::*;
        let b = &mut b[..size::UPD_C];
        BE::write_u64(&mut b[UC_ID..], self.id);
        self.src.emit(&mut b[UC_SRC..UC_SRC + size::PEER]);
        self.dst.emit(&mut b[UC_DST..UC_DST + size::PEER]);
        BE::write_u32(&mut b[UC_CREATORID..], self.creator_id);
        BE::write_u32(&mut b[UC_EXPIRE..], self.expire);
        b[UC_TIMEOUT] = self.timeout;
        b[UC_TIMEOUT + 1..].fill(0);
    }
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

/// INS_ACK, UPD_REQ, DEL_C: state id and creator id (12 bytes).
pub fn parse_ref(b: &[u8]) -> Result<StateRef, WireError> {
    use field::*;
    need(b, size::DEL_C, "state reference")?;
    Ok(StateRef {
        id: BE::read_u64(&b[R_ID..]),
        creator_id: BE::read_u32(&b[R_CREATORID..]),
    })
}

#[cfg(feature = "emit")]
/// Write 12 bytes; `b` must hold at least that many (a caller bug otherwise).
pub fn emit_ref(r: &StateRef, b: &mut [u8]) {
    use field::*;
    BE::write_u64(&mut b[R_ID..], r.id);
    BE::write_u32(&mut b[R_CREATORID..], r.creator_id);
}

pub fn parse_clr(b: &[u8]) -> Result<Clr, WireError> {
    use field::*;
    need(b, size::CLR, "pfsync_clr")?;
    Ok(Clr {
        ifname: IfName::from_wire(&b[CLR_IFNAME]),
        creator_id: BE::read_u32(&b[CLR_CREATORID..]),
    })
}

#[cfg(feature = "emit")]
/// Write 20 bytes; `b` must hold at least that many (a caller bug otherwise).
pub fn emit_clr(c: &Clr, b: &mut [u8]) {
    use field::*;
    ifname_to(&c.ifname, &mut b[CLR_IFNAME]);
    BE::write_u32(&mut b[CLR_CREATORID..], c.creator_id);
}

pub fn parse_bus(b: &[u8]) -> Result<Bus, WireError> {
    use field::*;
    need(b, size::BUS, "pfsync_bus")?;
    Ok(Bus {
        creator_id: BE::read_u32(&b[BUS_CREATORID..]),
        endtime: BE::read_u32(&b[BUS_ENDTIME..]),
        status: match b[BUS_STATUS] {
            1 => BusStatus::Start,
            2 => BusStatus::End,
            o => BusStatus::Other(o),
        },
    })
}

#[cfg(feature = "emit")]
/// Write 12 bytes; `b` must hold at least that many (a caller bug otherwise).
pub fn emit_bus(m: &Bus, b: &mut [u8]) {
    use field::*;
    let b = &mut b[..size::BUS];
    BE::write_u32(&mut b[BUS_CREATORID..], m.creator_id);
    BE::write_u32(&mut b[BUS_ENDTIME..], m.endtime);
    b[BUS_STATUS] = match m.status {
        BusStatus::Start => 1,
        BusStatus::End => 2,
        BusStatus::Other(o) => o,
    };
    b[BUS_STATUS + 1..].fill(0);
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
