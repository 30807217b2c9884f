//! FreeBSD pfsync (header version 5; FreeBSD 10–15, pfSense, OPNsense): subheaders without
//! an item length, and full states in the three record layouts 1301, 1400 and 1500
//! (docs/pfsync.md §5, §7). The action code alone selects the record layout.

use super::layout::{self, wire_struct, Section, Subheader};
use super::message::*;
use super::{WireError, WireErrorKind};
use crate::model::*;
#[cfg(feature = "emit")]
use byteorder::{ByteOrder, BE};

pub const VERSION: u8 = 5;
#[cfg(feature = "emit")]
pub use super::layout::{emit_bus, emit_clr, emit_ref};
pub use super::layout::{
    parse_bus, parse_clr, parse_ref, KeyRepr, PeerRepr, UpdCRepr, HEADER_LEN, SUBHEADER_LEN,
};

/// Action codes (docs/pfsync.md §5, FreeBSD 15 naming).
/// DEL (6) is the full delete in the 1301 layout, defined but never sent by FreeBSD.
pub mod action {
    pub use crate::wire::layout::action::*;
    pub const INS_1301: u8 = 1;
    pub const UPD_1301: u8 = 3;
    /// Fragment actions, never implemented: no size is known, so they cannot be walked.
    pub const INS_F: u8 = 8;
    pub const DEL_F: u8 = 9;
    pub const TDB: u8 = 11;
    pub const INS_1400: u8 = 13;
    pub const UPD_1400: u8 = 14;
    pub const INS_1500: u8 = 15;
    pub const UPD_1500: u8 = 16;
}

/// Item sizes in bytes (docs/pfsync.md §4, §5, §7).
pub mod size {
    pub use crate::wire::layout::size::*;
    pub const TDB: usize = 48;
    pub const EOF: usize = 0;
    pub const STATE_1301: usize = 242;
    pub const STATE_1400: usize = 277;
    pub const STATE_1500: usize = 360;
}

/// The fixed item size of an action; `None` for actions whose size is unknown (8, 9, >16),
/// which can therefore not be stepped over.
pub(crate) fn item_size(act: u8) -> Option<usize> {
    use self::action as a;
    Some(match act {
        a::CLR => size::CLR,
        a::INS_1301 | a::UPD_1301 | a::DEL => size::STATE_1301,
        a::INS_ACK => size::INS_ACK,
        a::UPD_C => size::UPD_C,
        a::UPD_REQ => size::UPD_REQ,
        a::DEL_C => size::DEL_C,
        a::BUS => size::BUS,
        a::TDB => size::TDB,
        a::EOF => size::EOF,
        a::INS_1400 | a::UPD_1400 => size::STATE_1400,
        a::INS_1500 | a::UPD_1500 => size::STATE_1500,
        _ => return None,
    })
}

/// Which state record layout; chosen by the action code, never by the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordVersion {
    V1301,
    V1400,
    V1500,
}

impl RecordVersion {
    /// Each layout's number, record size, INS action and UPD action.
    #[rustfmt::skip]
    const TABLE: [(RecordVersion, u16, usize, u8, u8); 3] = [
        (Self::V1301, 1301, size::STATE_1301, action::INS_1301, action::UPD_1301),
        (Self::V1400, 1400, size::STATE_1400, action::INS_1400, action::UPD_1400),
        (Self::V1500, 1500, size::STATE_1500, action::INS_1500, action::UPD_1500),
    ];
    fn row(self) -> (RecordVersion, u16, usize, u8, u8) {
        Self::TABLE[self as usize]
    }
    pub fn from_u16(v: u16) -> Option<RecordVersion> {
        Self::TABLE.iter().find(|r| r.1 == v).map(|r| r.0)
    }
    pub fn as_u16(self) -> u16 {
        self.row().1
    }
    pub fn size(self) -> usize {
        self.row().2
    }
    /// The layout a full-state action carries (DEL is 1301).
    pub fn of_action(act: u8) -> Option<RecordVersion> {
        if act == action::DEL {
            return Some(RecordVersion::V1301);
        }
        Self::TABLE
            .iter()
            .find(|r| r.3 == act || r.4 == act)
            .map(|r| r.0)
    }
    pub fn ins_action(self) -> u8 {
        self.row().3
    }
    pub fn upd_action(self) -> u8 {
        self.row().4
    }
}

wire_struct! {
    /// Bytes 0–231, identical in all three record layouts.
    pub struct CommonRepr: 232, "pfsync_state prefix" {
        id: u64 = 0,
        ifname: IfName = 8,
        /// [0] wire key, [1] stack key.
        key: [KeyRepr; 2] = 24,
        src: PeerRepr = 96,
        dst: PeerRepr = 128,
        rt_addr: [u8; 16] = 160,
        rule: u32 = 176,
        anchor: u32 = 180,
        nat_rule: u32 = 184,
        creation: u32 = 188,
        expire: u32 = 192,
        packets: [u64; 2] = 196,
        bytes: [u64; 2] = 212,
        creator_id: u32 = 228,
    }
}

impl CommonRepr {
    /// The neutral state minus what the tail supplies (family, protocol, direction,
    /// timeout); `keys_af` gives each key's family.
    fn to_full(&self, keys_af: [Af; 2], proto: u8, direction: u8, timeout: u8) -> FullState {
        FullState {
            id: self.id,
            creator_id: self.creator_id,
            ifname: self.ifname,
            key: [
                self.key[0].to_key(keys_af[0]),
                self.key[1].to_key(keys_af[1]),
            ],
            // The state's own family is the wire key's, as pf exports it.
            af: keys_af[0],
            proto,
            direction: Direction::from_u8(direction),
            creation: self.creation,
            expire: self.expire,
            packets: self.packets,
            bytes: self.bytes,
            rule: self.rule,
            timeout,
            peer_state: [self.src.state, self.dst.state],
        }
    }
    #[cfg(feature = "emit")]
    /// From a neutral state; fields it lacks get pf's values for "none" (all-ones anchor
    /// and NAT rule numbers).
    fn from_full(s: &FullState) -> CommonRepr {
        CommonRepr {
            id: s.id,
            ifname: s.ifname,
            key: [KeyRepr::from_key(&s.key[0]), KeyRepr::from_key(&s.key[1])],
            src: PeerRepr::with_state(s.peer_state[0]),
            dst: PeerRepr::with_state(s.peer_state[1]),
            rt_addr: [0; 16],
            rule: s.rule,
            anchor: u32::MAX,
            nat_rule: u32::MAX,
            creation: s.creation,
            expire: s.expire,
            packets: s.packets,
            bytes: s.bytes,
            creator_id: s.creator_id,
        }
    }
}

wire_struct! {
    /// `pfsync_state_1301`: also FreeBSD ≤13's `struct pfsync_state`.
    pub struct State1301: size::STATE_1301, "pfsync_state_1301" {
        common: CommonRepr = 0,
        /// FreeBSD family: 2 IPv4, 28 IPv6.
        af: u8 = 232,
        proto: u8 = 233,
        direction: u8 = 234,
        spare: u16 = 235,
        log: u8 = 237,
        /// 8 bits only (14+ senders truncate their 16-bit flags here).
        state_flags: u8 = 238,
        timeout: u8 = 239,
        sync_flags: u8 = 240,
        updates: u8 = 241,
    }
}

impl State1301 {
    pub fn to_full(&self) -> FullState {
        let af = Af::from_freebsd(self.af);
        self.common
            .to_full([af, af], self.proto, self.direction, self.timeout)
    }
    #[cfg(feature = "emit")]
    pub fn from_full(s: &FullState) -> State1301 {
        State1301 {
            common: CommonRepr::from_full(s),
            af: s.af.to_freebsd(),
            proto: s.proto,
            direction: s.direction.to_u8(),
            timeout: s.timeout,
            ..Default::default()
        }
    }
}

wire_struct! {
    /// `pfsync_state_1400`.
    pub struct State1400: size::STATE_1400, "pfsync_state_1400" {
        common: CommonRepr = 0,
        af: u8 = 232,
        proto: u8 = 233,
        direction: u8 = 234,
        /// 16 bits at the unaligned offset 235.
        state_flags: u16 = 235,
        log: u8 = 237,
        spare: u8 = 238,
        timeout: u8 = 239,
        sync_flags: u8 = 240,
        updates: u8 = 241,
        qid: u16 = 242,
        pqid: u16 = 244,
        dnpipe: u16 = 246,
        dnrpipe: u16 = 248,
        /// −1 = not set.
        rtableid: i32 = 250,
        min_ttl: u8 = 254,
        set_tos: u8 = 255,
        max_mss: u16 = 256,
        set_prio: [u8; 2] = 258,
        /// FreeBSD numbering: 0 none, 1 fastroute, 2 route-to, 3 dup-to, 4 reply-to.
        rt: u8 = 260,
        rt_ifname: String = 261,
    }
}

impl State1400 {
    pub fn to_full(&self) -> FullState {
        let af = Af::from_freebsd(self.af);
        self.common
            .to_full([af, af], self.proto, self.direction, self.timeout)
    }
    #[cfg(feature = "emit")]
    pub fn from_full(s: &FullState) -> State1400 {
        State1400 {
            common: CommonRepr::from_full(s),
            af: s.af.to_freebsd(),
            proto: s.proto,
            direction: s.direction.to_u8(),
            timeout: s.timeout,
            rtableid: -1,
            ..Default::default()
        }
    }
}

wire_struct! {
    /// `pfsync_state_1500`: separate wire/stack family and protocol (af-to). Nothing after
    /// the common prefix lines up with 1301/1400.
    pub struct State1500: size::STATE_1500, "pfsync_state_1500" {
        common: CommonRepr = 0,
        tagname: String = 232 => 64,
        rt_ifname: String = 296,
        /// The real interface, even for floating states.
        orig_ifname: String = 312,
        rtableid: i32 = 328,
        state_flags: u16 = 332,
        qid: u16 = 334,
        pqid: u16 = 336,
        dnpipe: u16 = 338,
        dnrpipe: u16 = 340,
        max_mss: u16 = 342,
        /// Family of key[0].
        wire_af: u8 = 344,
        /// Family of key[1]; differs from `wire_af` for af-to (NAT64) states.
        stack_af: u8 = 345,
        rt_af: u8 = 346,
        wire_proto: u8 = 347,
        stack_proto: u8 = 348,
        log: u8 = 349,
        timeout: u8 = 350,
        direction: u8 = 351,
        rt: u8 = 352,
        min_ttl: u8 = 353,
        set_tos: u8 = 354,
        set_prio: [u8; 2] = 355,
        spare: [u8; 3] = 357,
    }
}

impl State1500 {
    /// The state's family and protocol are the wire key's; each key keeps its own family.
    pub fn to_full(&self) -> FullState {
        self.common.to_full(
            [
                Af::from_freebsd(self.wire_af),
                Af::from_freebsd(self.stack_af),
            ],
            self.wire_proto,
            self.direction,
            self.timeout,
        )
    }
    #[cfg(feature = "emit")]
    pub fn from_full(s: &FullState) -> State1500 {
        let wire_af = s.key[0].af;
        let stack_af = s.key[1].af;
        State1500 {
            common: CommonRepr::from_full(s),
            orig_ifname: s.ifname.to_string(),
            rtableid: -1,
            wire_af: wire_af.to_freebsd(),
            stack_af: stack_af.to_freebsd(),
            wire_proto: s.proto,
            stack_proto: af_to_proto(s.proto, wire_af, stack_af),
            timeout: s.timeout,
            direction: s.direction.to_u8(),
            ..Default::default()
        }
    }
}

#[cfg(feature = "emit")]
/// The stack-side protocol of an af-to state: ICMP and ICMPv6 swap with the family.
fn af_to_proto(proto: u8, wire: Af, stack: Af) -> u8 {
    const ICMP: u8 = 1;
    const ICMP6: u8 = 58;
    match (proto, wire, stack) {
        (ICMP, Af::Inet, Af::Inet6) => ICMP6,
        (ICMP6, Af::Inet6, Af::Inet) => ICMP,
        _ => proto,
    }
}

/// A state record in any of the three layouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateRepr {
    V1301(State1301),
    V1400(State1400),
    V1500(State1500),
}

impl StateRepr {
    pub fn parse(version: RecordVersion, b: &[u8]) -> Result<StateRepr, WireError> {
        Ok(match version {
            RecordVersion::V1301 => StateRepr::V1301(State1301::parse(b)?),
            RecordVersion::V1400 => StateRepr::V1400(State1400::parse(b)?),
            RecordVersion::V1500 => StateRepr::V1500(State1500::parse(b)?),
        })
    }
    pub fn version(&self) -> RecordVersion {
        match self {
            StateRepr::V1301(_) => RecordVersion::V1301,
            StateRepr::V1400(_) => RecordVersion::V1400,
            StateRepr::V1500(_) => RecordVersion::V1500,
        }
    }
    #[cfg(feature = "emit")]
    /// Write the record; `b` must hold `self.version().size()` bytes (a caller bug otherwise).
    pub fn emit(&self, b: &mut [u8]) {
        match self {
            StateRepr::V1301(s) => s.emit(b),
            StateRepr::V1400(s) => s.emit(b),
            StateRepr::V1500(s) => s.emit(b),
        }
    }
    pub fn to_full(&self) -> FullState {
        match self {
            StateRepr::V1301(s) => s.to_full(),
            StateRepr::V1400(s) => s.to_full(),
            StateRepr::V1500(s) => s.to_full(),
        }
    }
    #[cfg(feature = "emit")]
    pub fn from_full(s: &FullState, version: RecordVersion) -> StateRepr {
        match version {
            RecordVersion::V1301 => StateRepr::V1301(State1301::from_full(s)),
            RecordVersion::V1400 => StateRepr::V1400(State1400::from_full(s)),
            RecordVersion::V1500 => StateRepr::V1500(State1500::from_full(s)),
        }
    }
    #[cfg(feature = "emit")]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; self.version().size()];
        self.emit(&mut b);
        b
    }
}

wire_struct! {
    /// `pfsync_tdb` (FreeBSD never sends it, receivers skip it).
    pub struct TdbRepr: size::TDB, "pfsync_tdb" {
        spi: u32 = 0,
        /// Destination as a raw FreeBSD `sockaddr_in6`-sized union.
        dst: [u8; 28] = 4,
        rpl: u32 = 32,
        cur_bytes: u64 = 36,
        sproto: u8 = 44,
        updates: u8 = 45,
    }
}

impl TdbRepr {
    /// FreeBSD's TDB has no routing domain.
    pub fn to_msg(&self) -> Tdb {
        Tdb {
            spi: self.spi,
            rpl: self.rpl as u64,
            cur_bytes: self.cur_bytes,
            sproto: self.sproto,
            rdomain: 0,
        }
    }
    #[cfg(feature = "emit")]
    /// The replay counter is 32 bits on FreeBSD: higher bits are dropped.
    pub fn from_msg(t: &Tdb) -> TdbRepr {
        TdbRepr {
            spi: t.spi,
            dst: [0; 28],
            rpl: t.rpl as u32,
            cur_bytes: t.cur_bytes,
            sproto: t.sproto,
            updates: 0,
        }
    }
}

/// Decode one item of a known action (`b` holds at least its `item_size`).
pub fn parse_message(act: u8, b: &[u8]) -> Result<Message, WireError> {
    use self::action as a;
    if let Some(v) = RecordVersion::of_action(act) {
        let s = StateRepr::parse(v, b)?.to_full();
        return Ok(match act {
            a::DEL => Message::Del(s),
            a::INS_1301 | a::INS_1400 | a::INS_1500 => Message::Ins(s),
            _ => Message::Upd(s),
        });
    }
    if let Some(m) = layout::parse_shared(act, b) {
        return m;
    }
    Ok(match act {
        a::TDB => Message::Tdb(TdbRepr::parse(b)?.to_msg()),
        a::EOF => Message::Eof,
        _ => Message::Unknown { action: act },
    })
}

/// Walk the sections of a version-5 packet up to `bound` (min(header len, bytes present)),
/// pushing messages and damage in wire order. FreeBSD subheaders carry no item length, so
/// an unknown action, or a subheader whose pad byte is not 0, ends the walk: stepping over
/// it would be a guess. A walk that reaches `bound` without EOF reports a truncation.
pub(crate) fn walk(buf: &[u8], bound: usize, items: &mut Vec<Item>) {
    let bound = bound.min(buf.len());
    let mut off = HEADER_LEN;
    while off < bound {
        let Some(sub) = layout::subheader(buf, off, bound, items) else {
            return;
        };
        let Subheader {
            action: act,
            len: pad,
            count,
        } = sub;
        let unskippable = WireError::new(
            off,
            WireErrorKind::Unskippable {
                action: act,
                len: pad,
                count,
            },
        );
        if pad != 0 {
            // FreeBSD always writes 0 here; anything else is not a FreeBSD-built section
            // (likely an OpenBSD subheader, whose item length sits in this byte), so the
            // action table cannot be trusted to give its item size.
            items.push(Item::Damage(unskippable));
            return;
        }
        if act == action::EOF {
            // The receiver stops here whatever the count; the message sits at the subheader.
            items.push(Item::Message(
                off,
                Decoded {
                    flavor: Flavor::FreeBsd,
                    action: act,
                    record_version: 0,
                    msg: Message::Eof,
                },
            ));
            return;
        }
        let Some(stride) = item_size(act) else {
            items.push(Item::Damage(unskippable));
            return;
        };
        let section = Section {
            at: off,
            sub,
            stride,
            flavor: Flavor::FreeBsd,
            record_version: RecordVersion::of_action(act).map_or(0, RecordVersion::as_u16),
        };
        match layout::section_items(buf, bound, &section, parse_message, items) {
            Some(next) => off = next,
            None => return,
        }
    }
    // The bound came before any EOF: FreeBSD always ends a frame with one, so the frame was
    // cut (capture or header len) and what it held after `bound` is unknown.
    items.push(Item::Damage(WireError::truncated(
        bound,
        "EOF subheader",
        SUBHEADER_LEN,
        0,
    )));
}

#[cfg(feature = "emit")]
/// Where a message goes in a FreeBSD-built frame (INS, INS_ACK, UPD, UPD_C, DEL_C,
/// UPD_REQ, then the appended CLR/BUS region). DEL and TDB, which FreeBSD never sends, go
/// before that region; unknown actions last, just before EOF.
fn section_rank(m: &Message) -> u8 {
    match m {
        Message::Ins(_) => 0,
        Message::InsAck(_) => 1,
        Message::Upd(_) => 2,
        Message::UpdC(_) => 3,
        Message::DelC(_) => 4,
        Message::UpdReq(_) => 5,
        Message::Del(_) => 6,
        Message::Tdb(_) => 7,
        Message::Clr(_) => 8,
        Message::Bus(_) => 9,
        Message::Unknown { .. } => 10,
        Message::Eof => 11,
    }
}

#[cfg(feature = "emit")]
/// Encode one message: its action code and item bytes. Full INS/UPD use `version`; DEL is
/// always the 1301 layout (action 6). `Eof` and `Unknown` have no item.
pub fn emit_message(m: &Message, version: RecordVersion) -> (u8, Vec<u8>) {
    if let Some(shared) = layout::emit_shared(m) {
        return shared;
    }
    let state = |s: &FullState, v: RecordVersion| StateRepr::from_full(s, v).to_bytes();
    match m {
        Message::Tdb(t) => (
            action::TDB,
            layout::body(size::TDB, |b| TdbRepr::from_msg(t).emit(b)),
        ),
        Message::Ins(s) => (version.ins_action(), state(s, version)),
        Message::Upd(s) => (version.upd_action(), state(s, version)),
        Message::Del(s) => (action::DEL, state(s, RecordVersion::V1301)),
        _ => unreachable!("emit_shared encodes every other message"),
    }
}

#[cfg(feature = "emit")]
/// Build a whole version-5 frame from `msgs` as a FreeBSD sender lays it out: one section
/// per kind in FreeBSD's order (message order kept within a kind), then EOF with count 1.
/// Full states use `record_version` (1301, 1400 or 1500; any other value means 1400, the
/// FreeBSD 14 default). `Message::Eof` in `msgs` is ignored (the EOF is always appended);
/// `Message::Unknown` becomes an empty section of that action (a decoder stops there).
/// No MTU is applied: split the messages beforehand for realistic frames.
pub fn emit_packet(msgs: &[Message], record_version: u16, checksum: [u8; 16]) -> Vec<u8> {
    let version = RecordVersion::from_u16(record_version).unwrap_or(RecordVersion::V1400);
    let mut order: Vec<&Message> = msgs.iter().filter(|m| !matches!(m, Message::Eof)).collect();
    // Stable: keeps the callers' order inside each kind.
    order.sort_by_key(|m| section_rank(m));

    let mut out = vec![0u8; HEADER_LEN];
    out[0] = VERSION;
    out[4..HEADER_LEN].copy_from_slice(&checksum);
    // (subheader offset, action, count) of the section being filled.
    let mut open: Option<(usize, u8, u16)> = None;
    let close = |out: &mut Vec<u8>, s: Option<(usize, u8, u16)>| {
        if let Some((at, _, count)) = s {
            BE::write_u16(&mut out[at + 2..], count);
        }
    };
    for m in order {
        let (act, body) = emit_message(m, version);
        let unknown = matches!(m, Message::Unknown { .. });
        let same = matches!(open, Some((_, a, c)) if a == act && c < u16::MAX && !unknown);
        if !same {
            close(&mut out, open);
            open = Some((out.len(), act, 0));
            out.extend_from_slice(&[act, 0, 0, 0]);
        }
        if !unknown {
            if let Some((_, _, c)) = open.as_mut() {
                *c += 1;
            }
            out.extend_from_slice(&body);
        }
    }
    close(&mut out, open);
    out.extend_from_slice(&[action::EOF, 0, 0, 1]);
    // A frame over 64 KiB cannot be described; its len saturates (callers keep to the MTU).
    let len = u16::try_from(out.len()).unwrap_or(u16::MAX);
    BE::write_u16(&mut out[2..], len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::decode_pfsync;
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn set16(b: &mut [u8], off: usize, v: u16) {
        BE::write_u16(&mut b[off..], v);
    }
    fn set32(b: &mut [u8], off: usize, v: u32) {
        BE::write_u32(&mut b[off..], v);
    }
    fn set64(b: &mut [u8], off: usize, v: u64) {
        BE::write_u64(&mut b[off..], v);
    }

    /// The common prefix written at literal offsets from docs/pfsync.md §7: an outbound
    /// NAT state 10.0.0.5:40000 -> 192.0.2.80:443 translated to 198.51.100.1:50000.
    fn prefix(b: &mut [u8]) {
        set64(b, 0, 0x0102_0304_0506_0708);
        b[8..11].copy_from_slice(b"em0");
        // key[0] wire: addr0 remote, addr1 translated source.
        b[24..28].copy_from_slice(&[192, 0, 2, 80]);
        b[40..44].copy_from_slice(&[198, 51, 100, 1]);
        set16(b, 56, 443);
        set16(b, 58, 50000);
        // key[1] stack: addr1 the private host.
        b[60..64].copy_from_slice(&[192, 0, 2, 80]);
        b[76..80].copy_from_slice(&[10, 0, 0, 5]);
        set16(b, 92, 443);
        set16(b, 94, 40000);
        // src peer at 96, dst peer at 128.
        set16(b, 96, 0x0001);
        b[98] = 64;
        b[99] = 1;
        set32(b, 100, 0xaabb_ccdd);
        set32(b, 104, 1000);
        set32(b, 108, 2000);
        set32(b, 112, 3000);
        set16(b, 116, 65535);
        set16(b, 118, 1460);
        b[120] = 4;
        b[121] = 7;
        b[128 + 24] = 5;
        b[128 + 25] = 6;
        b[160..164].copy_from_slice(&[10, 9, 9, 9]);
        set32(b, 176, 7);
        set32(b, 180, 0xffff_ffff);
        set32(b, 184, 3);
        set32(b, 188, 120);
        set32(b, 192, 86400);
        set64(b, 196, 11);
        set64(b, 204, 12);
        set64(b, 212, 1300);
        set64(b, 220, 1400);
        set32(b, 228, 0xdead_beef);
    }

    fn check_prefix(c: &CommonRepr) {
        assert_eq!(c.id, 0x0102_0304_0506_0708);
        assert_eq!(c.ifname, "em0");
        assert_eq!(c.key[0].addr[0][..4], [192, 0, 2, 80]);
        assert_eq!(c.key[0].addr[1][..4], [198, 51, 100, 1]);
        assert_eq!(c.key[0].port, [443, 50000]);
        assert_eq!(c.key[1].addr[1][..4], [10, 0, 0, 5]);
        assert_eq!(c.key[1].port, [443, 40000]);
        assert_eq!(c.src.scrub_flags, 1);
        assert_eq!(c.src.scrub_ttl, 64);
        assert_eq!(c.src.scrub_flag, 1);
        assert_eq!(c.src.scrub_ts_mod, 0xaabb_ccdd);
        assert_eq!(
            (c.src.seqlo, c.src.seqhi, c.src.seqdiff),
            (1000, 2000, 3000)
        );
        assert_eq!((c.src.max_win, c.src.mss), (65535, 1460));
        assert_eq!((c.src.state, c.src.wscale), (4, 7));
        assert_eq!((c.dst.state, c.dst.wscale), (5, 6));
        assert_eq!(c.rt_addr[..4], [10, 9, 9, 9]);
        assert_eq!((c.rule, c.anchor, c.nat_rule), (7, u32::MAX, 3));
        assert_eq!((c.creation, c.expire), (120, 86400));
        assert_eq!(c.packets, [11, 12]);
        assert_eq!(c.bytes, [1300, 1400]);
        assert_eq!(c.creator_id, 0xdead_beef);
    }

    fn check_full_v4(f: &FullState) {
        assert_eq!(f.af, Af::Inet);
        assert_eq!(f.direction, Direction::Out);
        assert_eq!(f.proto, 6);
        assert_eq!(f.key[0].af, Af::Inet);
        assert_eq!(f.key[0].rdomain, 0);
        assert_eq!(f.key[0].addr[1], IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)));
        assert_eq!(f.key[1].addr[1], IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)));
        assert_eq!(f.peer_state, [4, 5]);
        assert_eq!(f.rule, 7);
        assert!(f.is_nat());
    }

    #[test]
    fn parse_1301_literal() {
        let mut b = [0u8; 242];
        prefix(&mut b);
        b[232] = 2;
        b[233] = 6;
        b[234] = 2;
        set16(&mut b, 235, 0x0102);
        b[237] = 1;
        b[238] = 0x44;
        b[239] = 3;
        b[240] = 0x04;
        b[241] = 9;
        let s = State1301::parse(&b).unwrap();
        check_prefix(&s.common);
        assert_eq!((s.af, s.proto, s.direction), (2, 6, 2));
        assert_eq!(s.spare, 0x0102);
        assert_eq!(s.log, 1);
        assert_eq!(s.state_flags, 0x44);
        assert_eq!(s.timeout, 3);
        assert_eq!(s.sync_flags, 4);
        assert_eq!(s.updates, 9);
        let f = s.to_full();
        check_full_v4(&f);
        assert_eq!(f.timeout, 3);
        // Emitting what was parsed gives the same bytes back.
        let mut out = [0u8; 242];
        s.emit(&mut out);
        assert_eq!(out[..], b[..]);
        assert!(State1301::parse(&b[..241]).is_err());
    }

    #[test]
    fn parse_1400_literal() {
        let mut b = [0u8; 277];
        prefix(&mut b);
        b[232] = 2;
        b[233] = 6;
        b[234] = 2;
        set16(&mut b, 235, 0x8001);
        b[237] = 1;
        b[238] = 0x55;
        b[239] = 4;
        b[240] = 0x08;
        b[241] = 1;
        set16(&mut b, 242, 10);
        set16(&mut b, 244, 11);
        set16(&mut b, 246, 12);
        set16(&mut b, 248, 13);
        set32(&mut b, 250, 0xffff_ffff);
        b[254] = 32;
        b[255] = 0x10;
        set16(&mut b, 256, 1400);
        b[258] = 3;
        b[259] = 4;
        b[260] = 2;
        b[261..265].copy_from_slice(b"igb1");
        let s = State1400::parse(&b).unwrap();
        check_prefix(&s.common);
        assert_eq!((s.af, s.proto, s.direction), (2, 6, 2));
        assert_eq!(s.state_flags, 0x8001);
        assert_eq!(s.log, 1);
        assert_eq!(s.spare, 0x55);
        assert_eq!(s.timeout, 4);
        assert_eq!(s.sync_flags, 8);
        assert_eq!(s.updates, 1);
        assert_eq!((s.qid, s.pqid, s.dnpipe, s.dnrpipe), (10, 11, 12, 13));
        assert_eq!(s.rtableid, -1);
        assert_eq!((s.min_ttl, s.set_tos, s.max_mss), (32, 0x10, 1400));
        assert_eq!(s.set_prio, [3, 4]);
        assert_eq!(s.rt, 2);
        assert_eq!(s.rt_ifname, "igb1");
        let f = s.to_full();
        check_full_v4(&f);
        assert_eq!(f.timeout, 4);
        let mut out = [0u8; 277];
        s.emit(&mut out);
        assert_eq!(out[..], b[..]);
        assert!(State1400::parse(&b[..276]).is_err());
    }

    #[test]
    fn parse_1500_literal_af_to() {
        let mut b = [0u8; 360];
        prefix(&mut b);
        // A NAT64 state: wire key IPv6, stack key IPv4.
        let v6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets();
        b[24..40].copy_from_slice(&v6);
        // Bytes 232/233 lie inside the tag name: a 1301 reading would find 't'/'a' here.
        b[232..239].copy_from_slice(b"tagname");
        b[296..300].copy_from_slice(b"igb2");
        b[312..316].copy_from_slice(b"igb0");
        set32(&mut b, 328, 5);
        set16(&mut b, 332, 0x0201);
        set16(&mut b, 334, 20);
        set16(&mut b, 336, 21);
        set16(&mut b, 338, 22);
        set16(&mut b, 340, 23);
        set16(&mut b, 342, 1220);
        b[344] = 28;
        b[345] = 2;
        b[346] = 28;
        b[347] = 58;
        b[348] = 1;
        b[349] = 1;
        b[350] = 17;
        b[351] = 1;
        b[352] = 4;
        b[353] = 9;
        b[354] = 0x20;
        b[355] = 5;
        b[356] = 6;
        b[357..360].copy_from_slice(&[7, 8, 9]);
        let s = State1500::parse(&b).unwrap();
        assert_eq!(s.common.id, 0x0102_0304_0506_0708);
        assert_eq!(s.common.creator_id, 0xdead_beef);
        assert_eq!(s.common.key[0].addr[0], v6);
        assert_eq!(s.tagname, "tagname");
        assert_eq!(s.rt_ifname, "igb2");
        assert_eq!(s.orig_ifname, "igb0");
        assert_eq!(s.rtableid, 5);
        assert_eq!(s.state_flags, 0x0201);
        assert_eq!((s.qid, s.pqid, s.dnpipe, s.dnrpipe), (20, 21, 22, 23));
        assert_eq!(s.max_mss, 1220);
        assert_eq!((s.wire_af, s.stack_af, s.rt_af), (28, 2, 28));
        assert_eq!((s.wire_proto, s.stack_proto), (58, 1));
        assert_eq!((s.log, s.timeout, s.direction, s.rt), (1, 17, 1, 4));
        assert_eq!((s.min_ttl, s.set_tos), (9, 0x20));
        assert_eq!(s.set_prio, [5, 6]);
        assert_eq!(s.spare, [7, 8, 9]);
        let f = s.to_full();
        assert_eq!(f.af, Af::Inet6);
        assert_eq!(f.proto, 58);
        assert_eq!(f.direction, Direction::In);
        assert_eq!(f.timeout, 17);
        assert_eq!(f.key[0].af, Af::Inet6);
        assert_eq!(f.key[0].addr[0], IpAddr::V6(Ipv6Addr::from(v6)));
        assert_eq!(f.key[1].af, Af::Inet);
        assert_eq!(f.key[1].addr[1], IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)));
        let mut out = [0u8; 360];
        s.emit(&mut out);
        assert_eq!(out[..], b[..]);
        assert!(State1500::parse(&b[..359]).is_err());
    }

    #[test]
    fn small_items_literal() {
        let mut u = [0u8; 84];
        set64(&mut u, 0, 42);
        u[8 + 24] = 4;
        u[40 + 24] = 10;
        set32(&mut u, 72, 0x0a0b_0c0d);
        set32(&mut u, 76, 0);
        u[80] = 5;
        let r = UpdCRepr::parse(&u).unwrap();
        assert_eq!(
            r.to_msg(),
            UpdC {
                id: 42,
                creator_id: 0x0a0b_0c0d,
                expire: 0,
                timeout: 5,
                peer_state: [4, 10]
            }
        );
        let mut c = [0u8; 20];
        c[..4].copy_from_slice(b"vtne");
        set32(&mut c, 16, 77);
        assert_eq!(
            parse_clr(&c).unwrap(),
            Clr {
                ifname: "vtne".into(),
                creator_id: 77
            }
        );
        let mut bus = [0u8; 12];
        set32(&mut bus, 0, 9);
        set32(&mut bus, 4, 3);
        bus[8] = 2;
        assert_eq!(
            parse_bus(&bus).unwrap(),
            Bus {
                creator_id: 9,
                endtime: 3,
                status: BusStatus::End
            }
        );
        let mut t = [0u8; 48];
        set32(&mut t, 0, 0x1000);
        t[4] = 28;
        set32(&mut t, 32, 99);
        set64(&mut t, 36, 1 << 40);
        t[44] = 50;
        t[45] = 2;
        let tr = TdbRepr::parse(&t).unwrap();
        assert_eq!((tr.spi, tr.rpl, tr.cur_bytes), (0x1000, 99, 1 << 40));
        assert_eq!((tr.sproto, tr.updates, tr.dst[0]), (50, 2, 28));
        let mut r = [0u8; 12];
        set64(&mut r, 0, u64::MAX);
        set32(&mut r, 8, 1);
        assert_eq!(
            parse_ref(&r).unwrap(),
            StateRef {
                id: u64::MAX,
                creator_id: 1
            }
        );
        assert!(parse_ref(&r[..11]).is_err());
        assert!(UpdCRepr::parse(&u[..83]).is_err());
    }

    fn header(b: &mut Vec<u8>) {
        b.extend_from_slice(&[5, 0, 0, 0]);
        b.extend_from_slice(&[0xcc; 16]);
    }
    fn fix_len(b: &mut [u8]) {
        let n = b.len() as u16;
        set16(b, 2, n);
    }

    #[test]
    fn walk_ins_1400_del_c_eof() {
        let mut p = Vec::new();
        header(&mut p);
        p.extend_from_slice(&[13, 0, 0, 1]);
        let mut rec = [0u8; 277];
        prefix(&mut rec);
        rec[232] = 2;
        rec[233] = 6;
        rec[234] = 2;
        p.extend_from_slice(&rec);
        p.extend_from_slice(&[7, 0, 0, 2]);
        let mut r = [0u8; 12];
        set64(&mut r, 0, 5);
        set32(&mut r, 8, 6);
        p.extend_from_slice(&r);
        set64(&mut r, 0, 7);
        p.extend_from_slice(&r);
        p.extend_from_slice(&[12, 0, 0, 1]);
        fix_len(&mut p);
        let pkt = decode_pfsync(&p).unwrap();
        let names: Vec<String> = pkt.messages().map(|d| d.name()).collect();
        assert_eq!(names, ["INS_1400", "DEL_C", "DEL_C", "EOF"]);
        assert_eq!(pkt.damage().count(), 0);
        let offs: Vec<usize> = pkt
            .items
            .iter()
            .map(|i| match i {
                Item::Message(o, _) => *o,
                Item::Damage(e) => e.offset,
            })
            .collect();
        assert_eq!(offs, [24, 305, 317, 329]);
        let first = pkt.messages().next().unwrap();
        assert_eq!(first.flavor, Flavor::FreeBsd);
        assert_eq!(first.record_version, 1400);
        check_full_v4(first.msg.full_state().unwrap());
        let refs: Vec<_> = pkt.messages().filter_map(|d| d.msg.state_ref()).collect();
        assert_eq!(refs[1].id, 5);
        assert_eq!(refs[2].id, 7);
    }

    #[test]
    fn unknown_action_is_unskippable() {
        for act in [8u8, 9, 17, 200] {
            let mut p = Vec::new();
            header(&mut p);
            p.extend_from_slice(&[2, 0, 0, 1]);
            p.extend_from_slice(&[1; 12]);
            p.extend_from_slice(&[act, 0, 0, 2]);
            p.extend_from_slice(&[0; 24]);
            p.extend_from_slice(&[7, 0, 0, 1]);
            p.extend_from_slice(&[2; 12]);
            p.extend_from_slice(&[12, 0, 0, 1]);
            fix_len(&mut p);
            let pkt = decode_pfsync(&p).unwrap();
            assert_eq!(pkt.items.len(), 2, "action {act}");
            assert!(matches!(&pkt.items[0], Item::Message(20..=24, d) if d.name() == "INS_ACK"));
            assert_eq!(
                pkt.items[1],
                Item::Damage(WireError::new(
                    36,
                    WireErrorKind::Unskippable {
                        action: act,
                        len: 0,
                        count: 2
                    }
                ))
            );
        }
    }

    #[test]
    fn nonzero_pad_is_unskippable() {
        // An OpenBSD v6 INS section (action 13, 66 dwords) in a frame labelled version 5:
        // read with FreeBSD's 277-byte INS_1400 it would yield a garbage state.
        let mut p = Vec::new();
        header(&mut p);
        p.extend_from_slice(&[13, 66, 0, 2]);
        p.extend_from_slice(&[0x11; 2 * 264]);
        fix_len(&mut p);
        let pkt = decode_pfsync(&p).unwrap();
        assert_eq!(pkt.messages().count(), 0);
        assert_eq!(
            pkt.items,
            [Item::Damage(WireError::new(
                20,
                WireErrorKind::Unskippable {
                    action: 13,
                    len: 66,
                    count: 2
                }
            ))]
        );
        // A known small action with a non-zero pad stops too, after the whole items before.
        let mut q = Vec::new();
        header(&mut q);
        q.extend_from_slice(&[7, 0, 0, 1]);
        q.extend_from_slice(&[0; 12]);
        q.extend_from_slice(&[7, 3, 0, 1]);
        q.extend_from_slice(&[0; 12]);
        q.extend_from_slice(&[12, 0, 0, 1]);
        fix_len(&mut q);
        let pkt = decode_pfsync(&q).unwrap();
        assert_eq!(pkt.messages().count(), 1);
        assert_eq!(pkt.damage().next().map(|e| e.offset), Some(36));
    }

    #[test]
    fn overrunning_section_keeps_whole_items() {
        let mut p = Vec::new();
        header(&mut p);
        p.extend_from_slice(&[4, 0, 0, 3]);
        for id in 1..=3u64 {
            let mut u = [0u8; 84];
            set64(&mut u, 0, id);
            p.extend_from_slice(&u);
        }
        p.extend_from_slice(&[12, 0, 0, 1]);
        fix_len(&mut p);
        // Cut inside the 3rd UPD_C: the header len still says the whole frame.
        let cut = &p[..24 + 2 * 84 + 40];
        let pkt = decode_pfsync(cut).unwrap();
        let ids: Vec<u64> = pkt
            .messages()
            .filter_map(|d| d.msg.state_ref().map(|r| r.id))
            .collect();
        assert_eq!(ids, [1, 2]);
        let dmg: Vec<_> = pkt.damage().collect();
        assert_eq!(dmg.len(), 1);
        assert_eq!(
            dmg[0].kind,
            WireErrorKind::SectionOverrun {
                action: 4,
                count: 3,
                stride: 84,
                kept: 2,
                bound: cut.len()
            }
        );
        assert_eq!(dmg[0].offset, 20);
    }

    #[test]
    fn missing_eof_is_reported() {
        let mut p = Vec::new();
        header(&mut p);
        p.extend_from_slice(&[7, 0, 0, 1]);
        p.extend_from_slice(&[0; 12]);
        fix_len(&mut p);
        let pkt = decode_pfsync(&p).unwrap();
        assert_eq!(pkt.messages().count(), 1);
        assert_eq!(pkt.damage().next().map(|e| e.tag()), Some("truncated"));
        // A cut subheader.
        let mut q = p.clone();
        q.extend_from_slice(&[12, 0]);
        fix_len(&mut q);
        let pkt = decode_pfsync(&q).unwrap();
        assert_eq!(
            pkt.damage().next().map(|e| e.offset),
            Some(p.len()),
            "{pkt:?}"
        );
    }

    #[test]
    fn emit_packet_orders_sections_and_ends_with_eof() {
        let st = State1400::parse(&{
            let mut b = [0u8; 277];
            prefix(&mut b);
            b[232] = 2;
            b[233] = 6;
            b[234] = 2;
            b
        })
        .unwrap()
        .to_full();
        let r = StateRef {
            id: 1,
            creator_id: 2,
        };
        let msgs = vec![
            Message::DelC(r),
            Message::Bus(Bus {
                creator_id: 2,
                endtime: 0,
                status: BusStatus::Start,
            }),
            Message::Upd(st.clone()),
            Message::Ins(st.clone()),
            Message::Eof,
            Message::DelC(StateRef { id: 3, ..r }),
        ];
        for (v, ins, upd) in [(1301u16, 1u8, 3u8), (1400, 13, 14), (1500, 15, 16)] {
            let p = emit_packet(&msgs, v, [7; 16]);
            assert_eq!(p[0], 5);
            assert_eq!(BE::read_u16(&p[2..]) as usize, p.len());
            assert_eq!(p[4..20], [7; 16]);
            let pkt = decode_pfsync(&p).unwrap();
            assert_eq!(pkt.damage().count(), 0);
            let got: Vec<(u8, String)> = pkt.messages().map(|d| (d.action, d.name())).collect();
            let want = vec![
                (ins, format!("INS_{v}")),
                (upd, format!("UPD_{v}")),
                (7, "DEL_C".into()),
                (7, "DEL_C".into()),
                (10, "BUS".into()),
                (12, "EOF".into()),
            ];
            assert_eq!(got, want);
            let full: Vec<&FullState> = pkt.messages().filter_map(|d| d.msg.full_state()).collect();
            assert_eq!(full[0], &st);
            assert_eq!(p[p.len() - 4..], [12, 0, 0, 1]);
        }
    }

    #[test]
    fn decoder_survives_truncations_of_every_kind() {
        let msgs = vec![
            Message::Clr(Clr {
                ifname: IfName::default(),
                creator_id: 1,
            }),
            Message::Tdb(Tdb {
                spi: 1,
                rpl: 2,
                cur_bytes: 3,
                sproto: 50,
                rdomain: 0,
            }),
            Message::UpdC(UpdC {
                id: 1,
                creator_id: 1,
                expire: 0,
                timeout: 2,
                peer_state: [1, 2],
            }),
        ];
        let p = emit_packet(&msgs, 1500, [0; 16]);
        for n in 0..=p.len() {
            let _ = decode_pfsync(&p[..n]);
        }
    }

    // ---- round trips ----

    fn name(max: usize) -> impl Strategy<Value = String> {
        proptest::string::string_regex(&format!("[a-z0-9_.]{{0,{max}}}")).unwrap()
    }

    fn key_s() -> impl Strategy<Value = KeyRepr> {
        (any::<[u8; 16]>(), any::<[u8; 16]>(), any::<[u16; 2]>())
            .prop_map(|(a, b, port)| KeyRepr { addr: [a, b], port })
    }

    fn peer_s() -> impl Strategy<Value = PeerRepr> {
        (
            (any::<u16>(), any::<u8>(), any::<u8>(), any::<u32>()),
            (any::<u32>(), any::<u32>(), any::<u32>()),
            (any::<u16>(), any::<u16>(), any::<u8>(), any::<u8>()),
        )
            .prop_map(
                |(
                    (scrub_flags, scrub_ttl, scrub_flag, scrub_ts_mod),
                    (seqlo, seqhi, seqdiff),
                    (max_win, mss, state, wscale),
                )| PeerRepr {
                    scrub_flags,
                    scrub_ttl,
                    scrub_flag,
                    scrub_ts_mod,
                    seqlo,
                    seqhi,
                    seqdiff,
                    max_win,
                    mss,
                    state,
                    wscale,
                },
            )
    }

    fn common_s() -> impl Strategy<Value = CommonRepr> {
        (
            (any::<u64>(), name(16), key_s(), key_s(), peer_s(), peer_s()),
            (any::<[u8; 16]>(), any::<[u32; 3]>(), any::<[u32; 2]>()),
            (any::<[u64; 2]>(), any::<[u64; 2]>(), any::<u32>()),
        )
            .prop_map(
                |(
                    (id, ifname, k0, k1, src, dst),
                    (rt_addr, rules, times),
                    (packets, bytes, creator_id),
                )| CommonRepr {
                    id,
                    ifname: ifname.into(),
                    key: [k0, k1],
                    src,
                    dst,
                    rt_addr,
                    rule: rules[0],
                    anchor: rules[1],
                    nat_rule: rules[2],
                    creation: times[0],
                    expire: times[1],
                    packets,
                    bytes,
                    creator_id,
                },
            )
    }

    fn s1301() -> impl Strategy<Value = State1301> {
        (common_s(), any::<[u8; 3]>(), any::<u16>(), any::<[u8; 5]>()).prop_map(
            |(common, a, spare, t)| State1301 {
                common,
                af: a[0],
                proto: a[1],
                direction: a[2],
                spare,
                log: t[0],
                state_flags: t[1],
                timeout: t[2],
                sync_flags: t[3],
                updates: t[4],
            },
        )
    }

    fn s1400() -> impl Strategy<Value = State1400> {
        (
            common_s(),
            any::<[u8; 9]>(),
            any::<[u16; 6]>(),
            any::<i32>(),
            any::<[u8; 2]>(),
            name(16),
        )
            .prop_map(|(common, a, w, rtableid, set_prio, rt_ifname)| State1400 {
                common,
                af: a[0],
                proto: a[1],
                direction: a[2],
                state_flags: w[0],
                log: a[3],
                spare: a[4],
                timeout: a[5],
                sync_flags: a[6],
                updates: a[7],
                qid: w[1],
                pqid: w[2],
                dnpipe: w[3],
                dnrpipe: w[4],
                rtableid,
                min_ttl: a[8],
                set_tos: a[0] ^ 0x5a,
                max_mss: w[5],
                set_prio,
                rt: a[1] ^ 0xa5,
                rt_ifname,
            })
    }

    fn s1500() -> impl Strategy<Value = State1500> {
        (
            common_s(),
            (name(64), name(16), name(16)),
            any::<i32>(),
            any::<[u16; 6]>(),
            any::<[u8; 12]>(),
            any::<[u8; 2]>(),
            any::<[u8; 3]>(),
        )
            .prop_map(
                |(common, (tagname, rt_ifname, orig_ifname), rtableid, w, a, set_prio, spare)| {
                    State1500 {
                        common,
                        tagname,
                        rt_ifname,
                        orig_ifname,
                        rtableid,
                        state_flags: w[0],
                        qid: w[1],
                        pqid: w[2],
                        dnpipe: w[3],
                        dnrpipe: w[4],
                        max_mss: w[5],
                        wire_af: a[0],
                        stack_af: a[1],
                        rt_af: a[2],
                        wire_proto: a[3],
                        stack_proto: a[4],
                        log: a[5],
                        timeout: a[6],
                        direction: a[7],
                        rt: a[8],
                        min_ttl: a[9],
                        set_tos: a[10],
                        set_prio,
                        spare,
                    }
                },
            )
    }

    fn af_s() -> impl Strategy<Value = Af> {
        prop_oneof![Just(Af::Inet), Just(Af::Inet6)]
    }

    fn ip_s(af: Af) -> BoxedStrategy<IpAddr> {
        match af {
            Af::Inet6 => any::<[u8; 16]>()
                .prop_map(|o| IpAddr::V6(Ipv6Addr::from(o)))
                .boxed(),
            _ => any::<[u8; 4]>()
                .prop_map(|o| IpAddr::V4(Ipv4Addr::from(o)))
                .boxed(),
        }
    }

    fn nkey_s(af: Af) -> impl Strategy<Value = Key> {
        (ip_s(af), ip_s(af), any::<[u16; 2]>()).prop_map(move |(a, b, port)| Key {
            addr: [a, b],
            port,
            rdomain: 0,
            af,
        })
    }

    /// A neutral state every layout can carry when `same_af` (1301/1400: one family).
    fn full_s(same_af: bool) -> impl Strategy<Value = FullState> {
        (af_s(), af_s()).prop_flat_map(move |(a0, a1)| {
            let a1 = if same_af { a0 } else { a1 };
            (
                (any::<u64>(), any::<u32>(), name(16)),
                (nkey_s(a0), nkey_s(a1)),
                (any::<u8>(), 1u8..=2, any::<u32>(), any::<u32>()),
                (any::<[u64; 2]>(), any::<[u64; 2]>()),
                (any::<u32>(), any::<u8>(), any::<[u8; 2]>()),
            )
                .prop_map(
                    move |(
                        (id, creator_id, ifname),
                        (k0, k1),
                        (proto, dir, creation, expire),
                        (packets, bytes),
                        (rule, timeout, peer_state),
                    )| {
                        // af-to swaps ICMP for ICMPv6; keep proto neutral there.
                        let proto = if a0 != a1 && matches!(proto, 1 | 58) {
                            6
                        } else {
                            proto
                        };
                        FullState {
                            id,
                            creator_id,
                            ifname: ifname.into(),
                            key: [k0, k1],
                            af: a0,
                            proto,
                            direction: Direction::from_u8(dir),
                            creation,
                            expire,
                            packets,
                            bytes,
                            rule,
                            timeout,
                            peer_state,
                        }
                    },
                )
        })
    }

    proptest! {
        #[test]
        fn roundtrip_1301(s in s1301()) {
            let mut b = [0u8; 242];
            s.emit(&mut b);
            prop_assert_eq!(State1301::parse(&b).unwrap(), s);
        }

        #[test]
        fn roundtrip_1400(s in s1400()) {
            let mut b = [0u8; 277];
            s.emit(&mut b);
            prop_assert_eq!(State1400::parse(&b).unwrap(), s);
        }

        #[test]
        fn roundtrip_1500(s in s1500()) {
            let mut b = [0u8; 360];
            s.emit(&mut b);
            prop_assert_eq!(State1500::parse(&b).unwrap(), s);
        }

        #[test]
        fn roundtrip_small(id in any::<u64>(), c in any::<u32>(), e in any::<u32>(),
                           t in any::<u8>(), src in peer_s(), dst in peer_s(),
                           ifn in name(16), st in any::<u8>(),
                           dstaddr in any::<[u8; 28]>(), rpl in any::<u32>()) {
            let u = UpdCRepr { id, src, dst, creator_id: c, expire: e, timeout: t };
            let mut b = [0u8; 84];
            u.emit(&mut b);
            prop_assert_eq!(UpdCRepr::parse(&b).unwrap(), u);
            let clr = Clr { ifname: ifn.into(), creator_id: c };
            let mut b = [0u8; 20];
            emit_clr(&clr, &mut b);
            prop_assert_eq!(parse_clr(&b).unwrap(), clr);
            let bus = Bus { creator_id: c, endtime: e, status: match st {
                1 => BusStatus::Start, 2 => BusStatus::End, o => BusStatus::Other(o) } };
            let mut b = [0u8; 12];
            emit_bus(&bus, &mut b);
            prop_assert_eq!(parse_bus(&b).unwrap(), bus);
            let r = StateRef { id, creator_id: c };
            emit_ref(&r, &mut b);
            prop_assert_eq!(parse_ref(&b).unwrap(), r);
            let tdb = TdbRepr { spi: c, dst: dstaddr, rpl, cur_bytes: id, sproto: t, updates: st };
            let mut b = [0u8; 48];
            tdb.emit(&mut b);
            prop_assert_eq!(TdbRepr::parse(&b).unwrap(), tdb);
        }

        #[test]
        fn full_roundtrip_single_af(s in full_s(true), v in 0usize..3) {
            let v = [RecordVersion::V1301, RecordVersion::V1400, RecordVersion::V1500][v];
            let b = StateRepr::from_full(&s, v).to_bytes();
            prop_assert_eq!(b.len(), v.size());
            prop_assert_eq!(StateRepr::parse(v, &b).unwrap().to_full(), s);
        }

        #[test]
        fn full_roundtrip_af_to_1500(s in full_s(false)) {
            let b = StateRepr::from_full(&s, RecordVersion::V1500).to_bytes();
            prop_assert_eq!(StateRepr::parse(RecordVersion::V1500, &b).unwrap().to_full(), s);
        }

        #[test]
        fn packet_roundtrip(states in proptest::collection::vec(full_s(true), 0..5),
                            v in 0usize..3) {
            let v = [1301u16, 1400, 1500][v];
            let msgs: Vec<Message> = states.iter().cloned().map(Message::Upd).collect();
            let p = emit_packet(&msgs, v, [0; 16]);
            let pkt = decode_pfsync(&p).unwrap();
            prop_assert_eq!(pkt.damage().count(), 0);
            let mut got: Vec<Message> = pkt.messages().map(|d| d.msg.clone()).collect();
            prop_assert_eq!(got.pop(), Some(Message::Eof));
            prop_assert_eq!(got, msgs);
        }

        #[test]
        fn damaged_packets_never_panic(states in proptest::collection::vec(full_s(false), 1..3),
                                       flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
                                       cut in any::<usize>()) {
            let mut msgs: Vec<Message> = states.into_iter().map(Message::Ins).collect();
            msgs.push(Message::UpdC(UpdC { id: 1, creator_id: 2, expire: 0, timeout: 3, peer_state: [1, 2] }));
            msgs.push(Message::DelC(StateRef { id: 1, creator_id: 2 }));
            let mut p = emit_packet(&msgs, 1500, [0; 16]);
            // Damage past the header so the walk, not the header check, meets it.
            for (at, v) in flips {
                let i = HEADER_LEN + at % (p.len() - HEADER_LEN);
                p[i] = v;
            }
            p.truncate(HEADER_LEN + cut % (p.len() - HEADER_LEN + 1));
            let pkt = decode_pfsync(&p).unwrap();
            // Every message offset lies inside the packet.
            for item in &pkt.items {
                if let Item::Message(off, _) = item {
                    prop_assert!(*off <= p.len());
                }
            }
        }

        #[test]
        fn walk_never_panics(body in proptest::collection::vec(any::<u8>(), 0..1200),
                             len in any::<u16>()) {
            let mut p = vec![5u8, 0];
            p.extend_from_slice(&len.to_be_bytes());
            p.extend_from_slice(&[0; 16]);
            p.extend_from_slice(&body);
            let _ = decode_pfsync(&p);
            let mut items = Vec::new();
            walk(&p, usize::MAX, &mut items);
        }
    }
}
