//! OpenBSD pfsync protocol version 6 (docs/pfsync.md §2–§6): header, subheaders, every
//! message layout, and `struct pfsync_state` in all five layouts L1–L5.

use super::layout::{self, need, wire_struct, Section, Subheader};
use super::message::*;
use super::{WireError, WireErrorKind};
use crate::model::*;
use byteorder::{ByteOrder, BE};

#[cfg(feature = "emit")]
pub use super::layout::{emit_bus, emit_clr, emit_ref};
pub use super::layout::{parse_bus, parse_clr, parse_ref, HEADER_LEN, SUBHEADER_LEN};

pub const VERSION: u8 = 6;

/// Action codes (docs/pfsync.md §5).
pub mod action {
    pub use crate::wire::layout::action::*;
    /// 2010 TDB with a 32-bit replay counter, renumbered OTDB in 5.2.
    pub const OTDB: u8 = 11;
    pub const INS: u8 = 13;
    pub const UPD: u8 = 14;
    pub const TDB: u8 = 15;
}

/// Message sizes in bytes (docs/pfsync.md §4–§6).
pub mod size {
    pub use crate::wire::layout::size::*;
    pub const OTDB: usize = 48;
    pub const TDB: usize = 52;
    pub const STATE: usize = 264;
}

/// Offsets in `struct pfsync_state` that [`StateRepr::parse_full`] reads (docs/pfsync.md §6).
mod field {
    pub const ID: usize = 0;
    pub const IFNAME: usize = 8;
    pub const KEY0: usize = 24;
    pub const KEY1: usize = 64;
    pub const SRC_PEER: usize = 104;
    pub const DST_PEER: usize = 136;
    pub const RULE: usize = 184;
    pub const CREATION: usize = 196;
    pub const EXPIRE: usize = 200;
    pub const PACKETS: usize = 204;
    pub const BYTES: usize = 220;
    pub const CREATORID: usize = 236;
    pub const AF: usize = 250;
    pub const PROTO: usize = 251;
    pub const DIRECTION: usize = 252;
    pub const TIMEOUT: usize = 255;
}

wire_struct! {
    /// `pfsync_state_key` exactly as on the wire (byte 38 is af in L2+, pad in L1).
    pub struct KeyRepr: 40, "pfsync_state_key" {
        addr: [[u8; 16]; 2] = 0,
        port: [u16; 2] = 32,
        rdomain: u16 = 36,
        af: u8 = 38,
    }
}

impl KeyRepr {
    /// Neutral key; a key af of 0 (or layout L1's pad) falls back to the state's af.
    pub fn to_key(&self, state_af: u8) -> Key {
        let af = Af::from_openbsd(if self.af == 0 { state_af } else { self.af });
        Key {
            addr: [addr_from(af, &self.addr[0]), addr_from(af, &self.addr[1])],
            port: self.port,
            rdomain: self.rdomain,
            af,
        }
    }
}

wire_struct! {
    /// `pfsync_state_peer` (scrub kept raw: only its bytes matter to a logger).
    pub struct PeerRepr: size::PEER, "pfsync_state_peer" {
        scrub: [u8; 8] = 0,
        seqlo: u32 = 8,
        seqhi: u32 = 12,
        seqdiff: u32 = 16,
        max_win: u16 = 20,
        mss: u16 = 22,
        state: u8 = 24,
        wscale: u8 = 25,
    }
}

wire_struct! {
    /// `struct pfsync_state`, every byte that carries meaning in some layout. The
    /// layout-dependent bytes (254, 260–263) are kept raw: [`StateRepr::layout_extras`]
    /// interprets them per layout (docs/pfsync.md §6) rather than guessing a layout from
    /// traffic. Longer strides carry unknown tails, ignored.
    pub struct StateRepr: size::STATE, "pfsync_state" {
        id: u64 = field::ID,
        ifname: IfName = field::IFNAME,
        key: [KeyRepr; 2] = field::KEY0,
        src: PeerRepr = field::SRC_PEER,
        dst: PeerRepr = field::DST_PEER,
        rt_addr: [u8; 16] = 168,
        rule: u32 = field::RULE,
        anchor: u32 = 188,
        nat_rule: u32 = 192,
        creation: u32 = field::CREATION,
        expire: u32 = field::EXPIRE,
        packets: [u64; 2] = field::PACKETS,
        bytes: [u64; 2] = field::BYTES,
        creator_id: u32 = field::CREATORID,
        rtableid: [i32; 2] = 240,
        max_mss: u16 = 248,
        af: u8 = field::AF,
        proto: u8 = field::PROTO,
        direction: u8 = field::DIRECTION,
        log: u8 = 253,
        /// L1/L2 state_flags (u8), L3/L4 pad0, L5 rt.
        extra254: u8 = 254,
        timeout: u8 = field::TIMEOUT,
        sync_flags: u8 = 256,
        updates: u8 = 257,
        min_ttl: u8 = 258,
        set_tos: u8 = 259,
        /// L2 all_state_flags, L3+ state_flags.
        extra260: u16 = 260,
        /// L4 set_prio[2] (L5 too); pad before.
        extra262: [u8; 2] = 262,
    }
}

/// The layout-dependent bytes read per layout (docs/pfsync.md §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutExtras {
    /// L1/L2: byte 254.
    pub state_flags_u8: u8,
    /// L3+: bytes 260–261; L2: all_state_flags there.
    pub state_flags_u16: u16,
    /// L5: route type at 254 (0 none, 1 route-to, 2 dup-to, 3 reply-to).
    pub rt: u8,
    /// L4/L5: set_prio at 262–263.
    pub set_prio: [u8; 2],
}

impl StateRepr {
    /// `parse(b)?.to_full()` without the repr in between: every full state an import reads
    /// comes this way, and the fields only the repr has (peers, route, anchors) were read
    /// and dropped.
    pub fn parse_full(b: &[u8]) -> Result<FullState, WireError> {
        use field::*;
        need(b, size::STATE, "pfsync_state")?;
        let af = b[AF];
        let peer_state = |at: usize| b[at + layout::PeerRepr::STATE];
        Ok(FullState {
            id: BE::read_u64(&b[ID..]),
            creator_id: BE::read_u32(&b[CREATORID..]),
            ifname: IfName::from_wire(&b[IFNAME..IFNAME + 16]),
            key: [
                KeyRepr::parse(&b[KEY0..])?.to_key(af),
                KeyRepr::parse(&b[KEY1..])?.to_key(af),
            ],
            af: Af::from_openbsd(af),
            proto: b[PROTO],
            direction: Direction::from_u8(b[DIRECTION]),
            creation: BE::read_u32(&b[CREATION..]),
            expire: BE::read_u32(&b[EXPIRE..]),
            packets: [BE::read_u64(&b[PACKETS..]), BE::read_u64(&b[PACKETS + 8..])],
            bytes: [BE::read_u64(&b[BYTES..]), BE::read_u64(&b[BYTES + 8..])],
            rule: BE::read_u32(&b[RULE..]),
            timeout: b[TIMEOUT],
            peer_state: [peer_state(SRC_PEER), peer_state(DST_PEER)],
        })
    }

    /// Read the layout-dependent bytes as each layout defines them; which reading applies
    /// depends on the sender's release, which the wire does not say.
    pub fn layout_extras(&self) -> LayoutExtras {
        LayoutExtras {
            state_flags_u8: self.extra254,
            state_flags_u16: self.extra260,
            rt: self.extra254,
            set_prio: self.extra262,
        }
    }

    pub fn to_full(&self) -> FullState {
        FullState {
            id: self.id,
            creator_id: self.creator_id,
            ifname: self.ifname,
            key: [self.key[0].to_key(self.af), self.key[1].to_key(self.af)],
            af: Af::from_openbsd(self.af),
            proto: self.proto,
            direction: Direction::from_u8(self.direction),
            creation: self.creation,
            expire: self.expire,
            packets: self.packets,
            bytes: self.bytes,
            rule: self.rule,
            timeout: self.timeout,
            peer_state: [self.src.state, self.dst.state],
        }
    }

    #[cfg(feature = "emit")]
    /// A repr from a neutral state (for generators and tests): the fields the neutral form
    /// lacks are given pf's usual values.
    pub fn from_full(s: &FullState) -> StateRepr {
        let key = |k: &Key| KeyRepr {
            addr: [addr_to(&k.addr[0]), addr_to(&k.addr[1])],
            port: k.port,
            rdomain: k.rdomain,
            af: k.af.to_openbsd(),
        };
        StateRepr {
            id: s.id,
            ifname: s.ifname,
            key: [key(&s.key[0]), key(&s.key[1])],
            src: PeerRepr {
                state: s.peer_state[0],
                ..Default::default()
            },
            dst: PeerRepr {
                state: s.peer_state[1],
                ..Default::default()
            },
            rule: s.rule,
            anchor: u32::MAX,
            nat_rule: u32::MAX,
            creation: s.creation,
            expire: s.expire,
            packets: s.packets,
            bytes: s.bytes,
            creator_id: s.creator_id,
            af: s.af.to_openbsd(),
            proto: s.proto,
            direction: s.direction.to_u8(),
            timeout: s.timeout,
            ..Default::default()
        }
    }
}

/// TDB: action 15 (64-bit rpl, 52 bytes) or 11 (2010, 32-bit rpl, 48 bytes).
pub(crate) fn parse_tdb(b: &[u8], wide: bool) -> Result<Tdb, WireError> {
    if wide {
        need(b, size::TDB, "pfsync_tdb")?;
        Ok(Tdb {
            spi: BE::read_u32(&b[0..]),
            rpl: BE::read_u64(&b[32..]),
            cur_bytes: BE::read_u64(&b[40..]),
            sproto: b[48],
            rdomain: BE::read_u16(&b[50..]),
        })
    } else {
        need(b, size::OTDB, "pfsync_tdb (2010)")?;
        Ok(Tdb {
            spi: BE::read_u32(&b[0..]),
            rpl: BE::read_u32(&b[32..]) as u64,
            cur_bytes: BE::read_u64(&b[36..]),
            sproto: b[44],
            rdomain: BE::read_u16(&b[46..]),
        })
    }
}

#[cfg(feature = "emit")]
pub(crate) fn emit_tdb(t: &Tdb, b: &mut [u8]) {
    b[..size::TDB].fill(0);
    BE::write_u32(&mut b[0..], t.spi);
    BE::write_u64(&mut b[32..], t.rpl);
    BE::write_u64(&mut b[40..], t.cur_bytes);
    b[48] = t.sproto;
    BE::write_u16(&mut b[50..], t.rdomain);
}

/// Size of the message an action carries, for the actions this decoder understands.
pub fn message_size(act: u8) -> Option<usize> {
    use self::action as a;
    Some(match act {
        a::CLR => size::CLR,
        a::INS_ACK => size::INS_ACK,
        a::UPD_C => size::UPD_C,
        a::UPD_REQ => size::UPD_REQ,
        a::DEL | a::INS | a::UPD => size::STATE,
        a::DEL_C => size::DEL_C,
        a::BUS => size::BUS,
        a::OTDB => size::OTDB,
        a::TDB => size::TDB,
        _ => return None,
    })
}

/// Decode one message of a known action from its bytes (at least `message_size`). UPD_C
/// is read as both flavours lay it out; OpenBSD's state flags (bytes 81–82) are not read.
pub fn parse_message(act: u8, b: &[u8]) -> Result<Message, WireError> {
    use self::action as a;
    if let Some(m) = layout::parse_shared(act, b) {
        return m;
    }
    Ok(match act {
        a::DEL => Message::Del(StateRepr::parse_full(b)?),
        a::OTDB => Message::Tdb(parse_tdb(b, false)?),
        a::TDB => Message::Tdb(parse_tdb(b, true)?),
        a::INS => Message::Ins(StateRepr::parse_full(b)?),
        a::UPD => Message::Upd(StateRepr::parse_full(b)?),
        _ => Message::Unknown { action: act },
    })
}

#[cfg(feature = "emit")]
/// One section to emit: the action, the stride in dwords (normally the message size / 4)
/// and the message bodies.
pub struct SectionOut {
    pub action: u8,
    pub len_dwords: u8,
    pub bodies: Vec<Vec<u8>>,
}

#[cfg(feature = "emit")]
/// Encode a message body (the inverse of [`parse_message`]); `Eof` and `Unknown` have none.
pub fn emit_message(m: &Message) -> (u8, Vec<u8>) {
    use self::action as a;
    if let Some(shared) = layout::emit_shared(m) {
        return shared;
    }
    let state = |s: &FullState| layout::body(size::STATE, |b| StateRepr::from_full(s).emit(b));
    match m {
        Message::Tdb(t) => (a::TDB, layout::body(size::TDB, |b| emit_tdb(t, b))),
        Message::Ins(s) => (a::INS, state(s)),
        Message::Upd(s) => (a::UPD, state(s)),
        Message::Del(s) => (a::DEL, state(s)),
        _ => unreachable!("emit_shared encodes every other message"),
    }
}

#[cfg(feature = "emit")]
/// Build a whole v6 packet (header + sections). `checksum` fills the 16-byte pfcksum.
pub fn emit_packet(sections: &[SectionOut], checksum: [u8; 16]) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN];
    out[0] = VERSION;
    out[4..20].copy_from_slice(&checksum);
    for s in sections {
        out.push(s.action);
        out.push(s.len_dwords);
        let mut count = [0u8; 2];
        BE::write_u16(&mut count, s.bodies.len() as u16);
        out.extend_from_slice(&count);
        let stride = s.len_dwords as usize * 4;
        for body in &s.bodies {
            let start = out.len();
            out.resize(start + stride, 0);
            let n = body.len().min(stride);
            out[start..start + n].copy_from_slice(&body[..n]);
        }
    }
    let len = out.len().min(u16::MAX as usize) as u16;
    BE::write_u16(&mut out[2..], len);
    out
}

#[cfg(feature = "emit")]
/// Group messages into one section per run of the same action (what a sender does).
pub fn sections_for(msgs: &[Message]) -> Vec<SectionOut> {
    let mut out: Vec<SectionOut> = Vec::new();
    for m in msgs {
        let (act, body) = emit_message(m);
        let len = (body.len() / 4) as u8;
        match out.last_mut() {
            Some(s) if s.action == act && s.len_dwords == len => s.bodies.push(body),
            _ => out.push(SectionOut {
                action: act,
                len_dwords: len,
                bodies: vec![body],
            }),
        }
    }
    out
}

/// Walk the sections of a v6 packet, bounded by `bound` (R2), pushing messages and damage.
pub(crate) fn walk(buf: &[u8], bound: usize, items: &mut Vec<Item>) {
    let mut off = HEADER_LEN;
    while off < bound {
        let Some(sub) = layout::subheader(buf, off, bound, items) else {
            return;
        };
        let Subheader {
            action: act,
            len,
            count,
        } = sub;
        let stride = len as usize * 4;
        if act == action::EOF {
            // v5 leftover; receivers and tcpdump stop here (docs/pfsync.md §3).
            return;
        }
        let known = message_size(act);
        let decodable = matches!(known, Some(sz) if stride >= sz);
        // R4: an unknown (or too short) section is stepped over only when both len and
        // count are non-zero; otherwise the rest of the packet cannot be trusted.
        if !decodable && (len == 0 || count == 0) {
            items.push(Item::Damage(WireError::new(
                off,
                WireErrorKind::Unskippable {
                    action: act,
                    len,
                    count,
                },
            )));
            return;
        }
        if let (Some(needed), false) = (known, decodable) {
            let total = stride * count as usize;
            if off + SUBHEADER_LEN + total > bound {
                items.push(Item::Damage(WireError::new(
                    off,
                    WireErrorKind::SectionOverrun {
                        action: act,
                        count,
                        stride,
                        kept: 0,
                        bound,
                    },
                )));
                return;
            }
            items.push(Item::Damage(WireError::new(
                off,
                WireErrorKind::ShortStride {
                    action: act,
                    len,
                    needed,
                },
            )));
            off += SUBHEADER_LEN + total;
            continue;
        }
        let section = Section {
            at: off,
            sub,
            stride,
            flavor: Flavor::OpenBsd,
            record_version: 0,
        };
        match layout::section_items(buf, bound, &section, parse_message, items) {
            Some(next) => off = next,
            None => return,
        }
    }
}
