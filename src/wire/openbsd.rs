//! OpenBSD pfsync protocol version 6 (docs/pfsync.md §2–§6): header, subheaders, every
//! message layout, and `struct pfsync_state` in all five layouts L1–L5.

#[cfg(feature = "emit")]
use super::ifname_to;
use super::layout::{self, need, Section, Subheader, UpdCRepr};
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

/// Byte ranges of `struct pfsync_state` (docs/pfsync.md §6).
pub mod field {
    pub use crate::wire::layout::field::*;
    use std::ops::Range;
    pub const ID: Range<usize> = 0..8;
    pub const IFNAME: Range<usize> = 8..24;
    pub const KEY0: usize = 24;
    pub const KEY1: usize = 64;
    pub const KEY_LEN: usize = 40;
    pub const SRC_PEER: usize = 104;
    pub const DST_PEER: usize = 136;
    pub const PEER_LEN: usize = 32;
    pub const RT_ADDR: Range<usize> = 168..184;
    pub const RULE: usize = 184;
    pub const ANCHOR: usize = 188;
    pub const NAT_RULE: usize = 192;
    pub const CREATION: usize = 196;
    pub const EXPIRE: usize = 200;
    pub const PACKETS0: usize = 204;
    pub const PACKETS1: usize = 212;
    pub const BYTES0: usize = 220;
    pub const BYTES1: usize = 228;
    pub const CREATORID: usize = 236;
    pub const RTABLEID0: usize = 240;
    pub const RTABLEID1: usize = 244;
    pub const MAX_MSS: usize = 248;
    pub const AF: usize = 250;
    pub const PROTO: usize = 251;
    pub const DIRECTION: usize = 252;
    pub const LOG: usize = 253;
    /// L1/L2 state_flags (u8), L3/L4 pad0, L5 rt.
    pub const EXTRA254: usize = 254;
    pub const TIMEOUT: usize = 255;
    pub const SYNC_FLAGS: usize = 256;
    pub const UPDATES: usize = 257;
    pub const MIN_TTL: usize = 258;
    pub const SET_TOS: usize = 259;
    /// L2 all_state_flags, L3+ state_flags (u16 BE).
    pub const EXTRA260: usize = 260;
    /// L4 set_prio[2] (L5 too); pad before.
    pub const EXTRA262: usize = 262;
    // Inside a key, after the addresses and ports both flavours share.
    pub const K_RDOMAIN: usize = 36;
    pub const K_AF: usize = 38;
}

/// `pfsync_state_key` exactly as on the wire (byte 38 is af in L2+, pad in L1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyRepr {
    pub addr: [[u8; 16]; 2],
    pub port: [u16; 2],
    pub rdomain: u16,
    pub af: u8,
}

impl KeyRepr {
    /// From the 40-byte key: the shared addresses and ports, then rdomain and af.
    fn parse(b: &[u8]) -> Result<KeyRepr, WireError> {
        use field::*;
        need(b, KEY_LEN, "pfsync_state_key")?;
        let k = layout::KeyRepr::parse(b)?;
        Ok(KeyRepr {
            addr: k.addr,
            port: k.port,
            rdomain: BE::read_u16(&b[K_RDOMAIN..]),
            af: b[K_AF],
        })
    }
    #[cfg(feature = "emit")]
    fn emit(&self, b: &mut [u8]) {
        use field::*;
        layout::KeyRepr {
            addr: self.addr,
            port: self.port,
        }
        .emit(b);
        BE::write_u16(&mut b[K_RDOMAIN..], self.rdomain);
        b[K_AF] = self.af;
        b[K_AF + 1] = 0;
    }
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

/// `pfsync_state_peer` (scrub kept raw: only its bytes matter to a logger).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerRepr {
    pub scrub: [u8; 8],
    pub seqlo: u32,
    pub seqhi: u32,
    pub seqdiff: u32,
    pub max_win: u16,
    pub mss: u16,
    pub state: u8,
    pub wscale: u8,
}

impl PeerRepr {
    /// The shared 32-byte peer, its scrub bytes kept as they came.
    pub fn parse(b: &[u8]) -> Result<PeerRepr, WireError> {
        let p = layout::PeerRepr::parse(b)?;
        let mut scrub = [0u8; 8];
        scrub.copy_from_slice(&b[field::P_SCRUB]);
        Ok(PeerRepr {
            scrub,
            seqlo: p.seqlo,
            seqhi: p.seqhi,
            seqdiff: p.seqdiff,
            max_win: p.max_win,
            mss: p.mss,
            state: p.state,
            wscale: p.wscale,
        })
    }
    #[cfg(feature = "emit")]
    /// Write the 32 bytes; `b` must hold at least that many (a caller bug otherwise).
    pub fn emit(&self, b: &mut [u8]) {
        layout::PeerRepr {
            seqlo: self.seqlo,
            seqhi: self.seqhi,
            seqdiff: self.seqdiff,
            max_win: self.max_win,
            mss: self.mss,
            state: self.state,
            wscale: self.wscale,
            ..Default::default()
        }
        .emit(b);
        b[field::P_SCRUB].copy_from_slice(&self.scrub);
    }
}

/// `struct pfsync_state`, every byte that carries meaning in some layout. The
/// layout-dependent bytes (254, 260–263) are kept raw: [`StateRepr::layout_extras`]
/// interprets them per layout (docs/pfsync.md §6) rather than guessing a layout from traffic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StateRepr {
    pub id: u64,
    pub ifname: IfName,
    pub key: [KeyRepr; 2],
    pub src: PeerRepr,
    pub dst: PeerRepr,
    pub rt_addr: [u8; 16],
    pub rule: u32,
    pub anchor: u32,
    pub nat_rule: u32,
    pub creation: u32,
    pub expire: u32,
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    pub creator_id: u32,
    pub rtableid: [i32; 2],
    pub max_mss: u16,
    pub af: u8,
    pub proto: u8,
    pub direction: u8,
    pub log: u8,
    pub extra254: u8,
    pub timeout: u8,
    pub sync_flags: u8,
    pub updates: u8,
    pub min_ttl: u8,
    pub set_tos: u8,
    pub extra260: u16,
    pub extra262: [u8; 2],
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

/// A state is at least 264 bytes (longer strides carry unknown tails, ignored).
fn need_state(b: &[u8]) -> Result<(), WireError> {
    need(b, size::STATE, "pfsync_state")
}

impl StateRepr {
    /// Parse a state from at least 264 bytes (longer strides carry unknown tails, ignored).
    pub fn parse(b: &[u8]) -> Result<StateRepr, WireError> {
        use field::*;
        need_state(b)?;
        let mut rt_addr = [0u8; 16];
        rt_addr.copy_from_slice(&b[RT_ADDR]);
        Ok(StateRepr {
            id: BE::read_u64(&b[ID]),
            ifname: IfName::from_wire(&b[IFNAME]),
            key: [
                KeyRepr::parse(&b[KEY0..KEY0 + KEY_LEN])?,
                KeyRepr::parse(&b[KEY1..KEY1 + KEY_LEN])?,
            ],
            src: PeerRepr::parse(&b[SRC_PEER..SRC_PEER + PEER_LEN])?,
            dst: PeerRepr::parse(&b[DST_PEER..DST_PEER + PEER_LEN])?,
            rt_addr,
            rule: BE::read_u32(&b[RULE..]),
            anchor: BE::read_u32(&b[ANCHOR..]),
            nat_rule: BE::read_u32(&b[NAT_RULE..]),
            creation: BE::read_u32(&b[CREATION..]),
            expire: BE::read_u32(&b[EXPIRE..]),
            packets: [BE::read_u64(&b[PACKETS0..]), BE::read_u64(&b[PACKETS1..])],
            bytes: [BE::read_u64(&b[BYTES0..]), BE::read_u64(&b[BYTES1..])],
            creator_id: BE::read_u32(&b[CREATORID..]),
            rtableid: [BE::read_i32(&b[RTABLEID0..]), BE::read_i32(&b[RTABLEID1..])],
            max_mss: BE::read_u16(&b[MAX_MSS..]),
            af: b[AF],
            proto: b[PROTO],
            direction: b[DIRECTION],
            log: b[LOG],
            extra254: b[EXTRA254],
            timeout: b[TIMEOUT],
            sync_flags: b[SYNC_FLAGS],
            updates: b[UPDATES],
            min_ttl: b[MIN_TTL],
            set_tos: b[SET_TOS],
            extra260: BE::read_u16(&b[EXTRA260..]),
            extra262: [b[EXTRA262], b[EXTRA262 + 1]],
        })
    }

    /// `parse(b)?.to_full()` without the repr in between: every full state an import reads
    /// comes this way, and the fields only the repr has (peers, route, anchors) were read
    /// and dropped.
    pub fn parse_full(b: &[u8]) -> Result<FullState, WireError> {
        use field::*;
        need_state(b)?;
        let af = b[AF];
        Ok(FullState {
            id: BE::read_u64(&b[ID]),
            creator_id: BE::read_u32(&b[CREATORID..]),
            ifname: IfName::from_wire(&b[IFNAME]),
            key: [
                KeyRepr::parse(&b[KEY0..KEY0 + KEY_LEN])?.to_key(af),
                KeyRepr::parse(&b[KEY1..KEY1 + KEY_LEN])?.to_key(af),
            ],
            af: Af::from_openbsd(af),
            proto: b[PROTO],
            direction: Direction::from_u8(b[DIRECTION]),
            creation: BE::read_u32(&b[CREATION..]),
            expire: BE::read_u32(&b[EXPIRE..]),
            packets: [BE::read_u64(&b[PACKETS0..]), BE::read_u64(&b[PACKETS1..])],
            bytes: [BE::read_u64(&b[BYTES0..]), BE::read_u64(&b[BYTES1..])],
            rule: BE::read_u32(&b[RULE..]),
            timeout: b[TIMEOUT],
            peer_state: [b[SRC_PEER + P_STATE], b[DST_PEER + P_STATE]],
        })
    }

    #[cfg(feature = "emit")]
    /// Write the 264-byte state into `b` (which must hold at least 264 bytes).
    pub fn emit(&self, b: &mut [u8]) {
        use field::*;
        let b = &mut b[..size::STATE];
        b.fill(0);
        BE::write_u64(&mut b[ID], self.id);
        ifname_to(&self.ifname, &mut b[IFNAME]);
        self.key[0].emit(&mut b[KEY0..KEY0 + KEY_LEN]);
        self.key[1].emit(&mut b[KEY1..KEY1 + KEY_LEN]);
        self.src.emit(&mut b[SRC_PEER..SRC_PEER + PEER_LEN]);
        self.dst.emit(&mut b[DST_PEER..DST_PEER + PEER_LEN]);
        b[RT_ADDR].copy_from_slice(&self.rt_addr);
        BE::write_u32(&mut b[RULE..], self.rule);
        BE::write_u32(&mut b[ANCHOR..], self.anchor);
        BE::write_u32(&mut b[NAT_RULE..], self.nat_rule);
        BE::write_u32(&mut b[CREATION..], self.creation);
        BE::write_u32(&mut b[EXPIRE..], self.expire);
        BE::write_u64(&mut b[PACKETS0..], self.packets[0]);
        BE::write_u64(&mut b[PACKETS1..], self.packets[1]);
        BE::write_u64(&mut b[BYTES0..], self.bytes[0]);
        BE::write_u64(&mut b[BYTES1..], self.bytes[1]);
        BE::write_u32(&mut b[CREATORID..], self.creator_id);
        BE::write_i32(&mut b[RTABLEID0..], self.rtableid[0]);
        BE::write_i32(&mut b[RTABLEID1..], self.rtableid[1]);
        BE::write_u16(&mut b[MAX_MSS..], self.max_mss);
        b[AF] = self.af;
        b[PROTO] = self.proto;
        b[DIRECTION] = self.direction;
        b[LOG] = self.log;
        b[EXTRA254] = self.extra254;
        b[TIMEOUT] = self.timeout;
        b[SYNC_FLAGS] = self.sync_flags;
        b[UPDATES] = self.updates;
        b[MIN_TTL] = self.min_ttl;
        b[SET_TOS] = self.set_tos;
        BE::write_u16(&mut b[EXTRA260..], self.extra260);
        b[EXTRA262..EXTRA262 + 2].copy_from_slice(&self.extra262);
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

/// UPD_C as both flavours lay it out; OpenBSD's state flags (bytes 81–82) are not read.
pub fn parse_upd_c(b: &[u8]) -> Result<UpdC, WireError> {
    Ok(UpdCRepr::parse(b)?.to_msg())
}

#[cfg(feature = "emit")]
/// Write 84 bytes; `b` must hold at least that many (a caller bug otherwise).
pub fn emit_upd_c(u: &UpdC, b: &mut [u8]) {
    UpdCRepr::from_msg(u).emit(b);
}

/// TDB: action 15 (64-bit rpl, 52 bytes) or 11 (2010, 32-bit rpl, 48 bytes).
pub fn parse_tdb(b: &[u8], wide: bool) -> Result<Tdb, WireError> {
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
pub fn emit_tdb(t: &Tdb, b: &mut [u8]) {
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

/// Decode one message of a known action from its bytes (at least `message_size`).
pub fn parse_message(act: u8, b: &[u8]) -> Result<Message, WireError> {
    use self::action as a;
    Ok(match act {
        a::CLR => Message::Clr(parse_clr(b)?),
        a::INS_ACK => Message::InsAck(parse_ref(b)?),
        a::UPD_C => Message::UpdC(parse_upd_c(b)?),
        a::UPD_REQ => Message::UpdReq(parse_ref(b)?),
        a::DEL => Message::Del(StateRepr::parse_full(b)?),
        a::DEL_C => Message::DelC(parse_ref(b)?),
        a::BUS => Message::Bus(parse_bus(b)?),
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
    match m {
        Message::Clr(c) => {
            let mut b = vec![0; size::CLR];
            emit_clr(c, &mut b);
            (a::CLR, b)
        }
        Message::InsAck(r) | Message::UpdReq(r) | Message::DelC(r) => {
            let mut b = vec![0; size::DEL_C];
            emit_ref(r, &mut b);
            let act = match m {
                Message::InsAck(_) => a::INS_ACK,
                Message::UpdReq(_) => a::UPD_REQ,
                _ => a::DEL_C,
            };
            (act, b)
        }
        Message::UpdC(u) => {
            let mut b = vec![0; size::UPD_C];
            emit_upd_c(u, &mut b);
            (a::UPD_C, b)
        }
        Message::Bus(m) => {
            let mut b = vec![0; size::BUS];
            emit_bus(m, &mut b);
            (a::BUS, b)
        }
        Message::Tdb(t) => {
            let mut b = vec![0; size::TDB];
            emit_tdb(t, &mut b);
            (a::TDB, b)
        }
        Message::Ins(s) | Message::Upd(s) | Message::Del(s) => {
            let mut b = vec![0; size::STATE];
            StateRepr::from_full(s).emit(&mut b);
            let act = match m {
                Message::Ins(_) => a::INS,
                Message::Upd(_) => a::UPD,
                _ => a::DEL,
            };
            (act, b)
        }
        Message::Eof => (a::EOF, Vec::new()),
        Message::Unknown { action } => (*action, Vec::new()),
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
