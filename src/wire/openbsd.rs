//! OpenBSD pfsync protocol version 6 (pfsync-v6.md §2–§3): header, subheaders, every
//! message layout, and `struct pfsync_state` in all five layouts L1–L5.

use super::model::*;
use super::{be16, be32, be64, ifname_to, IfName, WireError, WireErrorKind};

pub const VERSION: u8 = 6;
pub const HEADER_LEN: usize = 20;
pub const SUBHEADER_LEN: usize = 4;

/// Action codes (pfsync-v6.md §2.3).
pub mod action {
    pub const CLR: u8 = 0;
    pub const INS_ACK: u8 = 2;
    pub const UPD_C: u8 = 4;
    pub const UPD_REQ: u8 = 5;
    pub const DEL: u8 = 6;
    pub const DEL_C: u8 = 7;
    pub const BUS: u8 = 10;
    /// 2010 TDB with a 32-bit replay counter, renumbered OTDB in 5.2.
    pub const OTDB: u8 = 11;
    pub const EOF: u8 = 12;
    pub const INS: u8 = 13;
    pub const UPD: u8 = 14;
    pub const TDB: u8 = 15;
}

/// Message sizes in bytes (pfsync-v6.md §2.4, §3).
pub mod size {
    pub const CLR: usize = 20;
    pub const INS_ACK: usize = 12;
    pub const UPD_C: usize = 84;
    pub const UPD_REQ: usize = 12;
    pub const DEL_C: usize = 12;
    pub const BUS: usize = 12;
    pub const OTDB: usize = 48;
    pub const TDB: usize = 52;
    pub const STATE: usize = 264;
}

/// Byte ranges of `struct pfsync_state` (pfsync-v6.md §3.2).
pub mod field {
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
    // Inside a key.
    pub const K_ADDR0: usize = 0;
    pub const K_ADDR1: usize = 16;
    pub const K_PORT0: usize = 32;
    pub const K_PORT1: usize = 34;
    pub const K_RDOMAIN: usize = 36;
    pub const K_AF: usize = 38;
    // Inside a peer.
    pub const P_SCRUB: usize = 0;
    pub const P_SEQLO: usize = 8;
    pub const P_SEQHI: usize = 12;
    pub const P_SEQDIFF: usize = 16;
    pub const P_MAX_WIN: usize = 20;
    pub const P_MSS: usize = 22;
    pub const P_STATE: usize = 24;
    pub const P_WSCALE: usize = 25;
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
    fn parse(b: &[u8]) -> KeyRepr {
        use field::*;
        let mut a0 = [0u8; 16];
        let mut a1 = [0u8; 16];
        a0.copy_from_slice(&b[K_ADDR0..K_ADDR0 + 16]);
        a1.copy_from_slice(&b[K_ADDR1..K_ADDR1 + 16]);
        KeyRepr {
            addr: [a0, a1],
            port: [be16(b, K_PORT0), be16(b, K_PORT1)],
            rdomain: be16(b, K_RDOMAIN),
            af: b[K_AF],
        }
    }
    fn emit(&self, b: &mut [u8]) {
        use field::*;
        b[K_ADDR0..K_ADDR0 + 16].copy_from_slice(&self.addr[0]);
        b[K_ADDR1..K_ADDR1 + 16].copy_from_slice(&self.addr[1]);
        b[K_PORT0..K_PORT0 + 2].copy_from_slice(&self.port[0].to_be_bytes());
        b[K_PORT1..K_PORT1 + 2].copy_from_slice(&self.port[1].to_be_bytes());
        b[K_RDOMAIN..K_RDOMAIN + 2].copy_from_slice(&self.rdomain.to_be_bytes());
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
    pub fn parse(b: &[u8]) -> PeerRepr {
        use field::*;
        let mut scrub = [0u8; 8];
        scrub.copy_from_slice(&b[P_SCRUB..P_SCRUB + 8]);
        PeerRepr {
            scrub,
            seqlo: be32(b, P_SEQLO),
            seqhi: be32(b, P_SEQHI),
            seqdiff: be32(b, P_SEQDIFF),
            max_win: be16(b, P_MAX_WIN),
            mss: be16(b, P_MSS),
            state: b[P_STATE],
            wscale: b[P_WSCALE],
        }
    }
    pub fn emit(&self, b: &mut [u8]) {
        use field::*;
        b[P_SCRUB..P_SCRUB + 8].copy_from_slice(&self.scrub);
        b[P_SEQLO..P_SEQLO + 4].copy_from_slice(&self.seqlo.to_be_bytes());
        b[P_SEQHI..P_SEQHI + 4].copy_from_slice(&self.seqhi.to_be_bytes());
        b[P_SEQDIFF..P_SEQDIFF + 4].copy_from_slice(&self.seqdiff.to_be_bytes());
        b[P_MAX_WIN..P_MAX_WIN + 2].copy_from_slice(&self.max_win.to_be_bytes());
        b[P_MSS..P_MSS + 2].copy_from_slice(&self.mss.to_be_bytes());
        b[P_STATE] = self.state;
        b[P_WSCALE] = self.wscale;
        b[26..32].fill(0);
    }
}

/// `struct pfsync_state`, every byte that carries meaning in some layout. The
/// layout-dependent bytes (254, 260–263) are kept raw: [`StateRepr::layout_extras`]
/// interprets them per §3.3 rather than guessing a layout from traffic.
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

/// The layout-dependent bytes read per layout (pfsync-v6.md §3.3).
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
    if b.len() < size::STATE {
        return Err(WireError::truncated(
            0,
            "pfsync_state",
            size::STATE,
            b.len(),
        ));
    }
    Ok(())
}

impl StateRepr {
    /// Parse a state from at least 264 bytes (longer strides carry unknown tails, ignored).
    pub fn parse(b: &[u8]) -> Result<StateRepr, WireError> {
        use field::*;
        need_state(b)?;
        let mut rt_addr = [0u8; 16];
        rt_addr.copy_from_slice(&b[RT_ADDR]);
        Ok(StateRepr {
            id: be64(b, ID.start),
            ifname: IfName::from_wire(&b[IFNAME]),
            key: [
                KeyRepr::parse(&b[KEY0..KEY0 + KEY_LEN]),
                KeyRepr::parse(&b[KEY1..KEY1 + KEY_LEN]),
            ],
            src: PeerRepr::parse(&b[SRC_PEER..SRC_PEER + PEER_LEN]),
            dst: PeerRepr::parse(&b[DST_PEER..DST_PEER + PEER_LEN]),
            rt_addr,
            rule: be32(b, RULE),
            anchor: be32(b, ANCHOR),
            nat_rule: be32(b, NAT_RULE),
            creation: be32(b, CREATION),
            expire: be32(b, EXPIRE),
            packets: [be64(b, PACKETS0), be64(b, PACKETS1)],
            bytes: [be64(b, BYTES0), be64(b, BYTES1)],
            creator_id: be32(b, CREATORID),
            rtableid: [be32(b, RTABLEID0) as i32, be32(b, RTABLEID1) as i32],
            max_mss: be16(b, MAX_MSS),
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
            extra260: be16(b, EXTRA260),
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
            id: be64(b, ID.start),
            creator_id: be32(b, CREATORID),
            ifname: IfName::from_wire(&b[IFNAME]),
            key: [
                KeyRepr::parse(&b[KEY0..KEY0 + KEY_LEN]).to_key(af),
                KeyRepr::parse(&b[KEY1..KEY1 + KEY_LEN]).to_key(af),
            ],
            af: Af::from_openbsd(af),
            proto: b[PROTO],
            direction: Direction::from_u8(b[DIRECTION]),
            creation: be32(b, CREATION),
            expire: be32(b, EXPIRE),
            packets: [be64(b, PACKETS0), be64(b, PACKETS1)],
            bytes: [be64(b, BYTES0), be64(b, BYTES1)],
            rule: be32(b, RULE),
            timeout: b[TIMEOUT],
            peer_state: [b[SRC_PEER + P_STATE], b[DST_PEER + P_STATE]],
        })
    }

    /// Write the 264-byte state into `b` (which must hold at least 264 bytes).
    pub fn emit(&self, b: &mut [u8]) {
        use field::*;
        let b = &mut b[..size::STATE];
        b.fill(0);
        b[ID].copy_from_slice(&self.id.to_be_bytes());
        ifname_to(&self.ifname, &mut b[IFNAME]);
        self.key[0].emit(&mut b[KEY0..KEY0 + KEY_LEN]);
        self.key[1].emit(&mut b[KEY1..KEY1 + KEY_LEN]);
        self.src.emit(&mut b[SRC_PEER..SRC_PEER + PEER_LEN]);
        self.dst.emit(&mut b[DST_PEER..DST_PEER + PEER_LEN]);
        b[RT_ADDR].copy_from_slice(&self.rt_addr);
        let put32 =
            |b: &mut [u8], off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_be_bytes());
        let put64 =
            |b: &mut [u8], off: usize, v: u64| b[off..off + 8].copy_from_slice(&v.to_be_bytes());
        put32(b, RULE, self.rule);
        put32(b, ANCHOR, self.anchor);
        put32(b, NAT_RULE, self.nat_rule);
        put32(b, CREATION, self.creation);
        put32(b, EXPIRE, self.expire);
        put64(b, PACKETS0, self.packets[0]);
        put64(b, PACKETS1, self.packets[1]);
        put64(b, BYTES0, self.bytes[0]);
        put64(b, BYTES1, self.bytes[1]);
        put32(b, CREATORID, self.creator_id);
        put32(b, RTABLEID0, self.rtableid[0] as u32);
        put32(b, RTABLEID1, self.rtableid[1] as u32);
        b[MAX_MSS..MAX_MSS + 2].copy_from_slice(&self.max_mss.to_be_bytes());
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
        b[EXTRA260..EXTRA260 + 2].copy_from_slice(&self.extra260.to_be_bytes());
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

/// The small messages, parse and emit (pfsync-v6.md §2.4).
pub fn parse_ref(b: &[u8]) -> StateRef {
    StateRef {
        id: be64(b, 0),
        creator_id: be32(b, 8),
    }
}

pub fn emit_ref(r: &StateRef, b: &mut [u8]) {
    b[0..8].copy_from_slice(&r.id.to_be_bytes());
    b[8..12].copy_from_slice(&r.creator_id.to_be_bytes());
}

pub fn parse_clr(b: &[u8]) -> Clr {
    Clr {
        ifname: IfName::from_wire(&b[0..16]),
        creator_id: be32(b, 16),
    }
}

pub fn emit_clr(c: &Clr, b: &mut [u8]) {
    ifname_to(&c.ifname, &mut b[0..16]);
    b[16..20].copy_from_slice(&c.creator_id.to_be_bytes());
}

pub fn parse_upd_c(b: &[u8]) -> UpdC {
    UpdC {
        id: be64(b, 0),
        creator_id: be32(b, 72),
        expire: be32(b, 76),
        timeout: b[80],
        peer_state: [b[8 + field::P_STATE], b[40 + field::P_STATE]],
    }
}

pub fn emit_upd_c(u: &UpdC, b: &mut [u8]) {
    b[..size::UPD_C].fill(0);
    b[0..8].copy_from_slice(&u.id.to_be_bytes());
    b[8 + field::P_STATE] = u.peer_state[0];
    b[40 + field::P_STATE] = u.peer_state[1];
    b[72..76].copy_from_slice(&u.creator_id.to_be_bytes());
    b[76..80].copy_from_slice(&u.expire.to_be_bytes());
    b[80] = u.timeout;
}

pub fn parse_bus(b: &[u8]) -> Bus {
    Bus {
        creator_id: be32(b, 0),
        endtime: be32(b, 4),
        status: match b[8] {
            1 => BusStatus::Start,
            2 => BusStatus::End,
            o => BusStatus::Other(o),
        },
    }
}

pub fn emit_bus(m: &Bus, b: &mut [u8]) {
    b[..size::BUS].fill(0);
    b[0..4].copy_from_slice(&m.creator_id.to_be_bytes());
    b[4..8].copy_from_slice(&m.endtime.to_be_bytes());
    b[8] = match m.status {
        BusStatus::Start => 1,
        BusStatus::End => 2,
        BusStatus::Other(o) => o,
    };
}

/// TDB: action 15 (64-bit rpl, 52 bytes) or 11 (2010, 32-bit rpl, 48 bytes).
pub fn parse_tdb(b: &[u8], wide: bool) -> Tdb {
    if wide {
        Tdb {
            spi: be32(b, 0),
            rpl: be64(b, 32),
            cur_bytes: be64(b, 40),
            sproto: b[48],
            rdomain: be16(b, 50),
        }
    } else {
        Tdb {
            spi: be32(b, 0),
            rpl: be32(b, 32) as u64,
            cur_bytes: be64(b, 36),
            sproto: b[44],
            rdomain: be16(b, 46),
        }
    }
}

pub fn emit_tdb(t: &Tdb, b: &mut [u8]) {
    b[..size::TDB].fill(0);
    b[0..4].copy_from_slice(&t.spi.to_be_bytes());
    b[32..40].copy_from_slice(&t.rpl.to_be_bytes());
    b[40..48].copy_from_slice(&t.cur_bytes.to_be_bytes());
    b[48] = t.sproto;
    b[50..52].copy_from_slice(&t.rdomain.to_be_bytes());
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
        a::CLR => Message::Clr(parse_clr(b)),
        a::INS_ACK => Message::InsAck(parse_ref(b)),
        a::UPD_C => Message::UpdC(parse_upd_c(b)),
        a::UPD_REQ => Message::UpdReq(parse_ref(b)),
        a::DEL => Message::Del(StateRepr::parse_full(b)?),
        a::DEL_C => Message::DelC(parse_ref(b)),
        a::BUS => Message::Bus(parse_bus(b)),
        a::OTDB => Message::Tdb(parse_tdb(b, false)),
        a::TDB => Message::Tdb(parse_tdb(b, true)),
        a::INS => Message::Ins(StateRepr::parse_full(b)?),
        a::UPD => Message::Upd(StateRepr::parse_full(b)?),
        _ => Message::Unknown { action: act },
    })
}

/// One section to emit: the action, the stride in dwords (normally the message size / 4)
/// and the message bodies.
pub struct SectionOut {
    pub action: u8,
    pub len_dwords: u8,
    pub bodies: Vec<Vec<u8>>,
}

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

/// Build a whole v6 packet (header + sections). `checksum` fills the 16-byte pfcksum.
pub fn emit_packet(sections: &[SectionOut], checksum: [u8; 16]) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN];
    out[0] = VERSION;
    out[4..20].copy_from_slice(&checksum);
    for s in sections {
        out.push(s.action);
        out.push(s.len_dwords);
        out.extend_from_slice(&(s.bodies.len() as u16).to_be_bytes());
        let stride = s.len_dwords as usize * 4;
        for body in &s.bodies {
            let start = out.len();
            out.resize(start + stride, 0);
            let n = body.len().min(stride);
            out[start..start + n].copy_from_slice(&body[..n]);
        }
    }
    let len = out.len().min(u16::MAX as usize) as u16;
    out[2..4].copy_from_slice(&len.to_be_bytes());
    out
}

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
pub(crate) fn walk(buf: &[u8], bound: usize, items: &mut Vec<super::packet::Item>) {
    use super::packet::Item;
    let mut off = HEADER_LEN;
    while off < bound {
        if off + SUBHEADER_LEN > bound {
            items.push(Item::Damage(WireError::truncated(
                off,
                "subheader",
                SUBHEADER_LEN,
                bound - off,
            )));
            return;
        }
        let act = buf[off];
        let len = buf[off + 1];
        let count = be16(buf, off + 2);
        let stride = len as usize * 4;
        let sec = off;
        off += SUBHEADER_LEN;
        if act == action::EOF {
            // v5 leftover; receivers and tcpdump stop here (§7 step 3).
            return;
        }
        let known = message_size(act);
        let decodable = matches!(known, Some(sz) if stride >= sz);
        // R4 / §7: an unknown (or too short) section is stepped over only when both len and
        // count are non-zero; otherwise the rest of the packet cannot be trusted.
        if !decodable && (len == 0 || count == 0) {
            items.push(Item::Damage(WireError::new(
                sec,
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
            if off + total > bound {
                items.push(Item::Damage(WireError::new(
                    sec,
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
                sec,
                WireErrorKind::ShortStride {
                    action: act,
                    len,
                    needed,
                },
            )));
            off += total;
            continue;
        }
        for i in 0..count {
            if off + stride > bound {
                items.push(Item::Damage(WireError::new(
                    sec,
                    WireErrorKind::SectionOverrun {
                        action: act,
                        count,
                        stride,
                        kept: i,
                        bound,
                    },
                )));
                return;
            }
            let body = &buf[off..off + stride];
            match parse_message(act, body) {
                Ok(msg) => items.push(Item::Message(
                    off,
                    Decoded {
                        flavor: Flavor::OpenBsd,
                        action: act,
                        record_version: 0,
                        msg,
                    },
                )),
                Err(mut e) => {
                    e.offset += off;
                    items.push(Item::Damage(e));
                }
            }
            off += stride;
        }
    }
}
