//! The OpenBSD pfsync v6 decoder against packets written by hand from the offset tables of
//! docs/pfsync.md (§2 header, §3 subheader, walk and damage rules R1–R4, §4 small messages,
//! §6 `struct pfsync_state` L1/L3/L5), the link framing of §1, and property tests: the
//! crate's `emit` and `parse` are inverses, and no input makes the decoder or the tracker panic.
//!
//! Every byte array here is built with `put*` at literal offsets; the crate's own emitters are
//! used only in the round-trip properties.

use pfstatelog::model::Event;
use pfstatelog::model::{Af, Bus, BusStatus, Direction, Flavor, FullState, Key, StateRef};
use pfstatelog::pipeline::{decode_frame, Outcome};
use pfstatelog::source::Frame;
use pfstatelog::track::Tracker;
use pfstatelog::wire::link::{self, linktype};
use pfstatelog::wire::openbsd::{self, KeyRepr, PeerRepr, StateRepr};
use pfstatelog::wire::{
    decode_pfsync, Clr, DecodedPacket, Item, Message, Tdb, UpdC, WireErrorKind,
};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

// ---------------------------------------------------------------------------------------------
// Hand-writing helpers: bytes at literal offsets, nothing from the crate.

fn put(b: &mut Vec<u8>, off: usize, bytes: &[u8]) {
    if b.len() < off + bytes.len() {
        b.resize(off + bytes.len(), 0);
    }
    b[off..off + bytes.len()].copy_from_slice(bytes);
}

fn put16(b: &mut Vec<u8>, off: usize, v: u16) {
    put(b, off, &v.to_be_bytes());
}

fn put32(b: &mut Vec<u8>, off: usize, v: u32) {
    put(b, off, &v.to_be_bytes());
}

fn put64(b: &mut Vec<u8>, off: usize, v: u64) {
    put(b, off, &v.to_be_bytes());
}

fn v4(s: &str) -> [u8; 4] {
    s.parse::<Ipv4Addr>().expect("test IPv4 address").octets()
}

fn v6(s: &str) -> [u8; 16] {
    s.parse::<Ipv6Addr>().expect("test IPv6 address").octets()
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// One section as written on the wire: action, len in dwords, count, message bytes.
struct Sec<'a> {
    action: u8,
    len: u8,
    count: u16,
    body: &'a [u8],
}

fn sec(action: u8, len: u8, count: u16, body: &[u8]) -> Sec<'_> {
    Sec {
        action,
        len,
        count,
        body,
    }
}

/// pfsync_header (docs/pfsync.md §2): 0 version 6, 1 pad, 2 len BE (whole packet), 4..20 pfcksum; then
/// each subheader (§3): 0 action, 1 len (dwords), 2 count BE; then the messages.
fn packet(sections: &[Sec]) -> Vec<u8> {
    let mut p = Vec::new();
    put(&mut p, 0, &[6, 0]);
    put(&mut p, 4, &[0xa5; 16]); // a ruleset MD5 (≤ 7.3 senders); receivers ignore it
    for s in sections {
        let at = p.len();
        put(&mut p, at, &[s.action, s.len]);
        put16(&mut p, at + 2, s.count);
        put(&mut p, at + 4, s.body);
    }
    let n = p.len() as u16;
    put16(&mut p, 2, n);
    p
}

fn decode(p: &[u8]) -> DecodedPacket {
    decode_pfsync(p).expect("packet header accepted")
}

fn messages(p: &DecodedPacket) -> Vec<Message> {
    p.messages().map(|d| d.msg.clone()).collect()
}

fn damage(p: &DecodedPacket) -> Vec<WireErrorKind> {
    p.damage().map(|e| e.kind.clone()).collect()
}

fn names(p: &DecodedPacket) -> Vec<String> {
    p.messages().map(|d| d.name()).collect()
}

const A: u32 = 0x5a3c_1e07;
const B: u32 = 0x8d2b_6f10;

/// A 12-byte id + creatorid message (INS_ACK, UPD_REQ, DEL_C): 0:8 id, 8:4 creatorid.
fn id_msg(id: u64, creator: u32) -> Vec<u8> {
    let mut b = vec![0u8; 12];
    put64(&mut b, 0, id);
    put32(&mut b, 8, creator);
    b
}

/// The canonical hand-written `struct pfsync_state`, layout L5 (docs/pfsync.md §6): an outbound NAT
/// state 192.168.1.23:59601 -> 192.0.2.16:443 translated to 203.0.113.10:41001.
fn l5_state() -> Vec<u8> {
    let mut b = vec![0u8; 264];
    put(&mut b, 0, &[0x00, 0x00, 0x01, 0x3d, 0x00, 0xf0, 0x00, 0x01]); // id
    put(&mut b, 8, b"all"); // ifname, NUL-padded to 16
                            // key[0] WIRE at 24: addr0 24, addr1 40, port0 56, port1 58, rdomain 60, af 62, pad 63
    put(&mut b, 24, &v4("192.0.2.16"));
    put(&mut b, 40, &v4("203.0.113.10"));
    put16(&mut b, 56, 443);
    put16(&mut b, 58, 41001);
    put16(&mut b, 60, 0);
    b[62] = 2;
    // key[1] STACK at 64: addr0 64, addr1 80, port0 96, port1 98, rdomain 100, af 102
    put(&mut b, 64, &v4("192.0.2.16"));
    put(&mut b, 80, &v4("192.168.1.23"));
    put16(&mut b, 96, 443);
    put16(&mut b, 98, 59601);
    b[102] = 2;
    // src peer at 104: scrub 104..112, seqlo 112, seqhi 116, seqdiff 120, max_win 124,
    // mss 126, state 128, wscale 129
    put(&mut b, 104, &[0x00, 0x01, 64, 0x01, 0xde, 0xad, 0xbe, 0xef]);
    put32(&mut b, 112, 0x1122_3344);
    put32(&mut b, 116, 0x5566_7788);
    put32(&mut b, 120, 0x99aa_bbcc);
    put16(&mut b, 124, 65535);
    put16(&mut b, 126, 1460);
    b[128] = 4; // ESTABLISHED
    b[129] = 7;
    // dst peer at 136
    put32(&mut b, 144, 0x0102_0304);
    put32(&mut b, 148, 0x0506_0708);
    put32(&mut b, 152, 0);
    put16(&mut b, 156, 29200);
    put16(&mut b, 158, 1380);
    b[160] = 4;
    b[161] = 9;
    put(&mut b, 168, &v4("10.0.0.1")); // rt_addr
    put32(&mut b, 184, 7); // rule
    put32(&mut b, 188, 0xffff_ffff); // anchor
    put32(&mut b, 192, 0xffff_ffff); // nat_rule
    put32(&mut b, 196, 3); // creation
    put32(&mut b, 200, 86_400); // expire
    put64(&mut b, 204, 0x0000_0001_0000_0002); // packets[0]: the high word counts
    put64(&mut b, 212, 5);
    put64(&mut b, 220, 0x0000_0002_0000_0003); // bytes[0]
    put64(&mut b, 228, 777);
    put32(&mut b, 236, A); // creatorid
    put32(&mut b, 240, 0xffff_ffff); // rtableid[0] = -1
    put32(&mut b, 244, 3); // rtableid[1]
    put16(&mut b, 248, 1400); // max_mss
    b[250] = 2; // af
    b[251] = 6; // proto tcp
    b[252] = 2; // direction out
    b[253] = 1; // log
    b[254] = 1; // L5: rt = route-to
    b[255] = 2; // timeout tcp.established
    b[256] = 0x04; // sync_flags
    b[257] = 0; // updates
    b[258] = 64; // min_ttl
    b[259] = 0x10; // set_tos
    put16(&mut b, 260, 0x0202); // L3+: state_flags (set-prio | sloppy)
    put(&mut b, 262, &[3, 5]); // L4+: set_prio
    b
}

/// The same state as layout L3 (OpenBSD 5.3): byte 254 pad0, 260 state_flags, 262 pad.
fn l3_state() -> Vec<u8> {
    let mut b = l5_state();
    b[254] = 0;
    put16(&mut b, 260, 0x0001);
    put(&mut b, 262, &[0, 0]);
    b
}

/// Layout L1 (OpenBSD 4.8), IPv6: key byte 38 is pad (0), so the key's family comes from the
/// state's af byte 250; byte 254 is a u8 state_flags; 260–263 pad.
fn l1_state_v6() -> Vec<u8> {
    let mut b = vec![0u8; 264];
    put64(&mut b, 0, 0x0011_2233_4455_6677);
    put(&mut b, 8, b"em0");
    put(&mut b, 24, &v6("2001:db8:10::5"));
    put(&mut b, 40, &v6("2001:db8:ff::1"));
    put16(&mut b, 56, 80);
    put16(&mut b, 58, 40001);
    put16(&mut b, 60, 5); // rdomain 5
    b[62] = 0; // L1: pad
    put(&mut b, 64, &v6("2001:db8:10::5"));
    put(&mut b, 80, &v6("fd00:10::7"));
    put16(&mut b, 96, 80);
    put16(&mut b, 98, 51000);
    put16(&mut b, 100, 5);
    b[102] = 0;
    put32(&mut b, 184, 0xffff_ffff);
    put32(&mut b, 188, 0xffff_ffff);
    put32(&mut b, 192, 0xffff_ffff);
    put32(&mut b, 196, 4000);
    put32(&mut b, 200, 12);
    put64(&mut b, 204, 0x0123_4567_89ab_cdef);
    put64(&mut b, 212, 0xfedc_ba98_7654_3210);
    put64(&mut b, 220, u64::MAX);
    put64(&mut b, 228, 1);
    put32(&mut b, 236, B);
    b[250] = 24; // AF_INET6 on OpenBSD
    b[251] = 17; // udp
    b[252] = 1; // in
    b[254] = 0x02; // L1 state_flags u8
    b[255] = 8; // udp.multiple
    b
}

fn full(m: &Message) -> &FullState {
    m.full_state().expect("a full state")
}

// ---------------------------------------------------------------------------------------------
// Header and small messages (docs/pfsync.md §2, §4).

#[test]
fn header_fields_and_empty_packet() {
    let p = packet(&[]);
    assert_eq!(p.len(), 20);
    let d = decode(&p);
    assert_eq!(d.version, 6);
    assert_eq!(d.header_len, 20);
    assert_eq!(d.available, 20);
    assert!(d.items.is_empty(), "{:?}", d.items);
}

#[test]
fn clr_with_and_without_interface() {
    // pfsync_clr (20): 0:16 ifname, 16:4 creatorid.
    let mut all = vec![0u8; 20];
    put32(&mut all, 16, A);
    let mut em1 = vec![0u8; 20];
    put(&mut em1, 0, b"em1");
    put32(&mut em1, 16, B);
    let mut body = all.clone();
    body.extend_from_slice(&em1);
    let d = decode(&packet(&[sec(0, 5, 2, &body)]));
    assert_eq!(
        messages(&d),
        vec![
            Message::Clr(Clr {
                ifname: Default::default(),
                creator_id: A
            }),
            Message::Clr(Clr {
                ifname: "em1".into(),
                creator_id: B
            }),
        ]
    );
    assert_eq!(names(&d), ["CLR", "CLR"]);
    let first = d.messages().next().expect("one message");
    assert_eq!(first.flavor, Flavor::OpenBsd);
    assert_eq!(first.action, 0);
    assert_eq!(first.record_version, 0);
    assert!(damage(&d).is_empty());
}

#[test]
fn ins_ack_upd_req_del_c() {
    let d = decode(&packet(&[
        sec(2, 3, 1, &id_msg(0x0102_0304_0506_0708, A)),
        sec(5, 3, 2, &[id_msg(0, 0), id_msg(42, B)].concat()),
        sec(7, 3, 1, &id_msg(u64::MAX, 0xffff_ffff)),
    ]));
    assert_eq!(
        messages(&d),
        vec![
            Message::InsAck(StateRef {
                id: 0x0102_0304_0506_0708,
                creator_id: A
            }),
            Message::UpdReq(StateRef {
                id: 0,
                creator_id: 0
            }),
            Message::UpdReq(StateRef {
                id: 42,
                creator_id: B
            }),
            Message::DelC(StateRef {
                id: u64::MAX,
                creator_id: 0xffff_ffff
            }),
        ]
    );
    assert_eq!(names(&d), ["INS_ACK", "UPD_REQ", "UPD_REQ", "DEL_C"]);
    // Offsets of each message inside the packet: 20 + 4, 36 + 4, 36 + 4 + 12, 64 + 4.
    let offs: Vec<usize> = d
        .items
        .iter()
        .map(|i| match i {
            Item::Message(o, _) => *o,
            Item::Damage(e) => panic!("damage {e}"),
        })
        .collect();
    assert_eq!(offs, [24, 40, 52, 68]);
}

#[test]
fn upd_c_reads_id_peers_creator_expire_timeout() {
    // pfsync_upd_c (84): 0:8 id, 8:32 src peer (state at +24), 40:32 dst peer, 72:4 creatorid,
    // 76:4 expire, 80:1 timeout, 81:1 state_flags, 82:2 pad.
    let mut b = vec![0u8; 84];
    put64(&mut b, 0, 0x0000_013d_00f0_0001);
    put32(&mut b, 8 + 8, 0xdead_beef); // src seqlo: not in the model, must not leak anywhere
    b[8 + 24] = 4;
    b[40 + 24] = 5;
    put32(&mut b, 72, A);
    put32(&mut b, 76, 0); // always 0 from real senders
    b[80] = 2;
    b[81] = 0;
    let d = decode(&packet(&[sec(4, 21, 1, &b)]));
    assert_eq!(
        messages(&d),
        vec![Message::UpdC(UpdC {
            id: 0x0000_013d_00f0_0001,
            creator_id: A,
            expire: 0,
            timeout: 2,
            peer_state: [4, 5],
        })]
    );
    assert_eq!(names(&d), ["UPD_C"]);
}

#[test]
fn bus_start_and_end() {
    // pfsync_bus (12): 0:4 creatorid, 4:4 endtime, 8:1 status (1 start, 2 end), 9:3 pad.
    let mut start = vec![0u8; 12];
    put32(&mut start, 0, A);
    put32(&mut start, 4, 0);
    start[8] = 1;
    let mut end = vec![0u8; 12];
    put32(&mut end, 0, A);
    put32(&mut end, 4, 37);
    end[8] = 2;
    let mut odd = vec![0u8; 12];
    put32(&mut odd, 0, B);
    odd[8] = 9;
    let d = decode(&packet(&[
        sec(10, 3, 1, &start),
        sec(14, 66, 1, &l5_state()),
        sec(10, 3, 2, &[end, odd].concat()),
    ]));
    let m = messages(&d);
    assert_eq!(
        m[0],
        Message::Bus(Bus {
            creator_id: A,
            endtime: 0,
            status: BusStatus::Start
        })
    );
    assert!(matches!(m[1], Message::Upd(_)));
    assert_eq!(
        m[2],
        Message::Bus(Bus {
            creator_id: A,
            endtime: 37,
            status: BusStatus::End
        })
    );
    assert_eq!(
        m[3],
        Message::Bus(Bus {
            creator_id: B,
            endtime: 0,
            status: BusStatus::Other(9)
        })
    );
    assert_eq!(names(&d), ["BUS", "UPD", "BUS", "BUS"]);
}

#[test]
fn tdb_action_15_is_52_bytes_with_64_bit_rpl() {
    // 0:4 spi, 4:28 dst sockaddr, 32:8 rpl, 40:8 cur_bytes, 48:1 sproto, 49:1 updates,
    // 50:2 rdomain.
    let mut b = vec![0u8; 52];
    put32(&mut b, 0, 0xcafe_f00d);
    put(&mut b, 4, &[16, 2, 0, 0]); // sockaddr_in: len 16, AF_INET
    put(&mut b, 8, &v4("198.51.100.1"));
    put64(&mut b, 32, 0x0000_0001_0000_0010);
    put64(&mut b, 40, 0x0000_00ff_0000_0001);
    b[48] = 50; // ESP
    b[49] = 3;
    put16(&mut b, 50, 7);
    let d = decode(&packet(&[sec(15, 13, 1, &b)]));
    assert_eq!(
        messages(&d),
        vec![Message::Tdb(Tdb {
            spi: 0xcafe_f00d,
            rpl: 0x0000_0001_0000_0010,
            cur_bytes: 0x0000_00ff_0000_0001,
            sproto: 50,
            rdomain: 7,
        })]
    );
    assert_eq!(names(&d), ["TDB"]);
    assert_eq!(d.messages().next().map(|m| m.action), Some(15));
}

#[test]
fn tdb_action_11_of_2010_is_48_bytes_with_32_bit_rpl() {
    // 32:4 rpl, 36:8 cur_bytes, 44:1 sproto, 45:1 updates, 46:2 rdomain.
    let mut b = vec![0u8; 48];
    put32(&mut b, 0, 0x0000_1001);
    put32(&mut b, 32, 0x8000_0001);
    put64(&mut b, 36, 0x1_0000_0000);
    b[44] = 51; // AH
    b[45] = 1;
    put16(&mut b, 46, 2);
    let d = decode(&packet(&[sec(11, 12, 1, &b), sec(7, 3, 1, &id_msg(9, A))]));
    assert_eq!(
        messages(&d),
        vec![
            Message::Tdb(Tdb {
                spi: 0x1001,
                rpl: 0x8000_0001,
                cur_bytes: 0x1_0000_0000,
                sproto: 51,
                rdomain: 2,
            }),
            Message::DelC(StateRef {
                id: 9,
                creator_id: A
            }),
        ]
    );
    assert_eq!(d.messages().next().map(|m| m.action), Some(11));
}

// ---------------------------------------------------------------------------------------------
// Full states (docs/pfsync.md §6): INS 13, UPD 14, DEL 6; layouts L1, L3, L5.

#[test]
fn ins_l5_every_field() {
    let d = decode(&packet(&[sec(13, 66, 1, &l5_state())]));
    assert!(damage(&d).is_empty());
    assert_eq!(names(&d), ["INS"]);
    let m = messages(&d);
    let s = full(&m[0]);
    assert_eq!(s.id, 0x0000_013d_00f0_0001);
    assert_eq!(format!("{:016x}", s.id), "0000013d00f00001");
    assert_eq!(pfstatelog::report::hex_id(s.id), "0000013d00f00001");
    assert_eq!(pfstatelog::report::hex_creator(s.creator_id), "5a3c1e07");
    assert_eq!(s.creator_id, A);
    assert_eq!(s.ifname, "all");
    assert_eq!(
        s.key[0],
        Key {
            addr: [ip("192.0.2.16"), ip("203.0.113.10")],
            port: [443, 41001],
            rdomain: 0,
            af: Af::Inet,
        }
    );
    assert_eq!(
        s.key[1],
        Key {
            addr: [ip("192.0.2.16"), ip("192.168.1.23")],
            port: [443, 59601],
            rdomain: 0,
            af: Af::Inet,
        }
    );
    assert_eq!(s.af, Af::Inet);
    assert_eq!(s.proto, 6);
    assert_eq!(s.direction, Direction::Out);
    assert_eq!(s.creation, 3);
    assert_eq!(s.expire, 86_400);
    assert_eq!(s.packets, [(1 << 32) | 2, 5]);
    assert_eq!(s.bytes, [(2 << 32) | 3, 777]);
    assert_eq!(s.rule, 7);
    assert_eq!(s.timeout, 2);
    assert_eq!(s.peer_state, [4, 4]);
    assert!(s.is_nat());
    // Out state: post-translation = WIRE, pre-translation = STACK (docs/pfsync.md §8).
    assert_eq!(s.nk(), &s.key[0]);
    assert_eq!(s.sk(), &s.key[1]);
    assert_eq!(
        pfstatelog::report::line::pfctl_state(s),
        "all tcp 203.0.113.10:41001 (192.168.1.23:59601) -> 192.0.2.16:443"
    );
}

#[test]
fn state_repr_l5_every_raw_field_and_extras() {
    let r = StateRepr::parse(&l5_state()).expect("264 bytes");
    assert_eq!(r.id, 0x0000_013d_00f0_0001);
    assert_eq!(r.ifname, "all");
    assert_eq!(
        r.key[0],
        KeyRepr {
            addr: [
                [192, 0, 2, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                [203, 0, 113, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
            ],
            port: [443, 41001],
            rdomain: 0,
            af: 2,
        }
    );
    assert_eq!(r.key[1].port, [443, 59601]);
    assert_eq!(
        r.src,
        PeerRepr {
            scrub: [0x00, 0x01, 64, 0x01, 0xde, 0xad, 0xbe, 0xef],
            seqlo: 0x1122_3344,
            seqhi: 0x5566_7788,
            seqdiff: 0x99aa_bbcc,
            max_win: 65535,
            mss: 1460,
            state: 4,
            wscale: 7,
        }
    );
    assert_eq!(
        r.dst,
        PeerRepr {
            scrub: [0; 8],
            seqlo: 0x0102_0304,
            seqhi: 0x0506_0708,
            seqdiff: 0,
            max_win: 29200,
            mss: 1380,
            state: 4,
            wscale: 9,
        }
    );
    assert_eq!(&r.rt_addr[..4], &[10, 0, 0, 1]);
    assert_eq!(r.rule, 7);
    assert_eq!(r.anchor, u32::MAX);
    assert_eq!(r.nat_rule, u32::MAX);
    assert_eq!(r.creation, 3);
    assert_eq!(r.expire, 86_400);
    assert_eq!(r.creator_id, A);
    assert_eq!(r.rtableid, [-1, 3]);
    assert_eq!(r.max_mss, 1400);
    assert_eq!((r.af, r.proto, r.direction, r.log), (2, 6, 2, 1));
    assert_eq!(r.timeout, 2);
    assert_eq!(
        (r.sync_flags, r.updates, r.min_ttl, r.set_tos),
        (0x04, 0, 64, 0x10)
    );
    assert_eq!((r.extra254, r.extra260, r.extra262), (1, 0x0202, [3, 5]));
    let x = r.layout_extras();
    assert_eq!(x.rt, 1, "L5 rt at byte 254");
    assert_eq!(x.set_prio, [3, 5], "L4/L5 set_prio at 262–263");
    assert_eq!(x.state_flags_u16, 0x0202, "L3+ state_flags at 260–261");
    assert_eq!(x.state_flags_u8, 1, "the same byte 254 read as L1/L2 would");
}

#[test]
fn state_repr_l3_extras_are_zero_where_l3_pads() {
    let r = StateRepr::parse(&l3_state()).expect("264 bytes");
    let x = r.layout_extras();
    assert_eq!(x.rt, 0);
    assert_eq!(x.state_flags_u8, 0);
    assert_eq!(x.state_flags_u16, 0x0001);
    assert_eq!(x.set_prio, [0, 0]);
    // Everything a logger needs sits at the same offsets in L3 and L5.
    let l3 = r.to_full();
    let l5 = StateRepr::parse(&l5_state()).expect("264 bytes").to_full();
    assert_eq!(l3, l5);
}

#[test]
fn upd_l1_ipv6_key_af_pad_falls_back_to_state_af() {
    let d = decode(&packet(&[sec(14, 66, 1, &l1_state_v6())]));
    assert!(damage(&d).is_empty());
    assert_eq!(names(&d), ["UPD"]);
    let m = messages(&d);
    let s = full(&m[0]);
    assert_eq!(format!("{:016x}", s.id), "0011223344556677");
    assert_eq!(s.creator_id, B);
    assert_eq!(s.ifname, "em0");
    assert_eq!(s.af, Af::Inet6);
    assert_eq!(
        s.key[0],
        Key {
            addr: [ip("2001:db8:10::5"), ip("2001:db8:ff::1")],
            port: [80, 40001],
            rdomain: 5,
            af: Af::Inet6,
        }
    );
    assert_eq!(
        s.key[1],
        Key {
            addr: [ip("2001:db8:10::5"), ip("fd00:10::7")],
            port: [80, 51000],
            rdomain: 5,
            af: Af::Inet6,
        }
    );
    assert_eq!(s.proto, 17);
    assert_eq!(s.direction, Direction::In);
    assert_eq!(s.creation, 4000);
    assert_eq!(s.expire, 12);
    assert_eq!(s.packets, [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210]);
    assert_eq!(s.bytes, [u64::MAX, 1]);
    assert_eq!(s.rule, u32::MAX);
    assert_eq!(s.timeout, 8);
    // In state: post-translation = STACK, pre = WIRE; IPv6 prints addr[port], rdomain (5).
    assert_eq!(
        pfstatelog::report::line::pfctl_state(s),
        "em0 udp (5) fd00:10::7[51000] ((5) 2001:db8:ff::1[40001]) <- 2001:db8:10::5[80]"
    );
    let r = StateRepr::parse(&l1_state_v6()).expect("264 bytes");
    assert_eq!(r.key[0].af, 0);
    assert_eq!(r.layout_extras().state_flags_u8, 0x02);
}

#[test]
fn key_af_wins_over_state_af_when_set() {
    // af-to (NAT64): the keys carry different families; each key's own af decides.
    let mut b = l5_state();
    put(&mut b, 24, &v6("64:ff9b::c000:210"));
    put(&mut b, 40, &v6("2001:db8::1"));
    b[62] = 24;
    b[250] = 24;
    let s = StateRepr::parse(&b).expect("264 bytes").to_full();
    assert_eq!(s.key[0].af, Af::Inet6);
    assert_eq!(s.key[0].addr[1], ip("2001:db8::1"));
    assert_eq!(s.key[1].af, Af::Inet);
    assert_eq!(s.key[1].addr[1], ip("192.168.1.23"));
    assert_eq!(s.af, Af::Inet6);
}

#[test]
fn del_full_state_and_longer_stride_reads_the_known_prefix() {
    // A future sender with a longer state (len 70 dwords = 280 bytes): read the 264-byte prefix.
    let mut long = l5_state();
    long.extend_from_slice(&[0xee; 16]);
    let mut two = long.clone();
    two.extend_from_slice(&long);
    let d = decode(&packet(&[
        sec(6, 66, 1, &l3_state()),
        sec(6, 70, 2, &two),
        sec(7, 3, 1, &id_msg(1, A)),
    ]));
    assert!(damage(&d).is_empty(), "{:?}", damage(&d));
    assert_eq!(names(&d), ["DEL", "DEL", "DEL", "DEL_C"]);
    let m = messages(&d);
    assert_eq!(full(&m[0]), full(&m[1]));
    assert_eq!(full(&m[1]), full(&m[2]));
    assert_eq!(full(&m[0]).id, 0x0000_013d_00f0_0001);
    assert_eq!(d.messages().next().map(|x| x.action), Some(6));
}

#[test]
fn state_repr_parse_rejects_short_input() {
    let e = StateRepr::parse(&[0u8; 263]).expect_err("263 bytes are too few");
    assert!(matches!(
        e.kind,
        WireErrorKind::Truncated {
            needed: 264,
            available: 263,
            ..
        }
    ));
}

// ---------------------------------------------------------------------------------------------
// Stop rules and salvage rules R2–R4 (docs/pfsync.md §3).

#[test]
fn unknown_action_is_stepped_over_by_len_times_count() {
    let junk = [0x5au8; 24]; // action 42, len 3 dwords, count 2
    let d = decode(&packet(&[
        sec(42, 3, 2, &junk),
        sec(7, 3, 1, &id_msg(5, A)),
    ]));
    assert!(damage(&d).is_empty());
    assert_eq!(names(&d), ["ACT_42", "ACT_42", "DEL_C"]);
    assert_eq!(
        messages(&d)[2],
        Message::DelC(StateRef {
            id: 5,
            creator_id: A
        })
    );
    // Known-but-unsupported v5 actions (1 OINS, 3 OUPD, 8, 9) are stepped over the same way.
    for act in [1u8, 3, 8, 9, 16, 255] {
        let d = decode(&packet(&[
            sec(act, 1, 3, &[0; 12]),
            sec(2, 3, 1, &id_msg(1, B)),
        ]));
        assert!(damage(&d).is_empty(), "action {act}: {:?}", damage(&d));
        let n = names(&d);
        assert_eq!(n.len(), 4, "action {act}: {n:?}");
        assert_eq!(n[0], format!("ACT_{act}"));
        assert_eq!(n[3], "INS_ACK");
    }
}

#[test]
fn eof_action_12_stops_the_packet() {
    let d = decode(&packet(&[
        sec(7, 3, 1, &id_msg(1, A)),
        sec(12, 0, 0, &[]),
        sec(7, 3, 1, &id_msg(2, A)),
    ]));
    assert_eq!(names(&d), ["DEL_C"]);
    // Even an EOF with a len and count stops (tcpdump and ≤ 7.3 receivers do).
    let d = decode(&packet(&[
        sec(12, 3, 1, &id_msg(3, A)),
        sec(7, 3, 1, &id_msg(4, A)),
    ]));
    assert!(messages(&d).is_empty());
}

#[test]
fn unknown_action_with_len_0_stops_and_keeps_what_came_before() {
    let d = decode(&packet(&[
        sec(13, 66, 1, &l5_state()),
        sec(42, 0, 1, &[]),
        sec(7, 3, 1, &id_msg(1, A)),
    ]));
    assert_eq!(names(&d), ["INS"]);
    assert_eq!(
        damage(&d),
        vec![WireErrorKind::Unskippable {
            action: 42,
            len: 0,
            count: 1
        }]
    );
    let e = d.damage().next().expect("damage");
    assert_eq!(e.offset, 20 + 4 + 264, "offset of the bad subheader");
}

#[test]
fn unknown_action_with_count_0_stops() {
    // R4 (docs/pfsync.md §3): an unknown action is stepped over only when len AND count are both
    // non-zero; "zero len or count on an unknown action → stop" (as the kernel does).
    let d = decode(&packet(&[
        sec(7, 3, 1, &id_msg(1, A)),
        sec(42, 3, 0, &[]),
        sec(7, 3, 1, &id_msg(2, A)),
    ]));
    assert_eq!(
        names(&d),
        ["DEL_C"],
        "nothing after the unskippable section"
    );
    assert_eq!(
        damage(&d),
        vec![WireErrorKind::Unskippable {
            action: 42,
            len: 3,
            count: 0
        }]
    );
    // The same rule for a known action whose stride is too short (R4): INS len 10, count 0.
    let d = decode(&packet(&[
        sec(7, 3, 1, &id_msg(1, A)),
        sec(13, 10, 0, &[]),
        sec(7, 3, 1, &id_msg(2, A)),
    ]));
    assert_eq!(names(&d), ["DEL_C"]);
    assert!(matches!(
        damage(&d)[..],
        [WireErrorKind::Unskippable {
            action: 13,
            len: 10,
            count: 0
        }]
    ));
}

#[test]
fn known_action_with_short_stride_is_stepped_over() {
    // R4: INS with len 10 dwords (< 66) count 1: 40 bytes stepped over, then the next INS.
    let d = decode(&packet(&[
        sec(13, 10, 1, &[0x77; 40]),
        sec(13, 66, 1, &l5_state()),
    ]));
    assert_eq!(names(&d), ["INS"]);
    assert_eq!(
        damage(&d),
        vec![WireErrorKind::ShortStride {
            action: 13,
            len: 10,
            needed: 264
        }]
    );
    assert!(
        matches!(d.items[0], Item::Damage(_)),
        "damage where it occurs"
    );
    // A short stride on a small message too: UPD_C needs 84 bytes, 20 given, count 2.
    let d = decode(&packet(&[
        sec(4, 5, 2, &[0; 40]),
        sec(7, 3, 1, &id_msg(1, A)),
    ]));
    assert_eq!(names(&d), ["DEL_C"]);
    assert_eq!(d.damage().count(), 1);
    // A short stride with len 0 cannot be stepped over: stop.
    let d = decode(&packet(&[sec(13, 0, 1, &[]), sec(7, 3, 1, &id_msg(1, A))]));
    assert!(messages(&d).is_empty());
    assert!(matches!(
        damage(&d)[..],
        [WireErrorKind::Unskippable { action: 13, .. }]
    ));
}

#[test]
fn header_len_smaller_than_data_bounds_the_parse() {
    // R2/R3: header len ends inside the 2nd INS: the 1st is kept, the rest (incl. a DEL_C
    // after it) is not.
    let mut p = packet(&[
        sec(13, 66, 2, &[l5_state(), l5_state()].concat()),
        sec(7, 3, 1, &id_msg(1, A)),
    ]);
    assert_eq!(p.len(), 20 + 4 + 528 + 4 + 12);
    put16(&mut p, 2, 388);
    let d = decode(&p);
    assert_eq!(d.header_len, 388);
    assert_eq!(d.available, p.len());
    assert_eq!(names(&d), ["INS"]);
    assert!(matches!(
        damage(&d)[..],
        [WireErrorKind::SectionOverrun {
            action: 13,
            count: 2,
            stride: 264,
            kept: 1,
            bound: 388
        }]
    ));
    // The bound falls exactly after the 1st INS: still the 1st only, and the damage is that
    // the 2nd does not fit.
    put16(&mut p, 2, 20 + 4 + 264);
    let d = decode(&p);
    assert_eq!(names(&d), ["INS"]);
    assert_eq!(d.damage().count(), 1);
}

#[test]
fn header_len_larger_than_data_is_bounded_by_the_data() {
    // R2: len 1400 but only 552 bytes: both whole INS are applied.
    let mut p = packet(&[sec(13, 66, 2, &[l5_state(), l3_state()].concat())]);
    assert_eq!(p.len(), 552);
    put16(&mut p, 2, 1400);
    let d = decode(&p);
    assert_eq!(d.header_len, 1400);
    assert_eq!(d.available, 552);
    assert_eq!(names(&d), ["INS", "INS"]);
}

#[test]
fn header_len_larger_than_data_is_reported_as_damage() {
    // `decode --format json`: "Damage gets an object with an `error` field, where it occurs." A header that
    // claims 1400 bytes where 552 exist is damage (tcpdump: "invalid header length"; the
    // kernel drops the packet), even though the whole messages are kept (R2).
    let mut p = packet(&[sec(13, 66, 2, &[l5_state(), l3_state()].concat())]);
    put16(&mut p, 2, 1400);
    let d = decode(&p);
    assert_eq!(names(&d), ["INS", "INS"]);
    assert!(
        d.damage().count() >= 1,
        "header len 1400 > 552 bytes present went unreported: {:?}",
        d.items
    );
}

#[test]
fn count_too_large_keeps_the_whole_messages() {
    // R3: INS count 65520 with two messages present.
    let p = packet(&[sec(13, 66, 65520, &[l5_state(), l5_state()].concat())]);
    let d = decode(&p);
    assert_eq!(names(&d), ["INS", "INS"]);
    assert!(matches!(
        damage(&d)[..],
        [WireErrorKind::SectionOverrun {
            action: 13,
            count: 65520,
            kept: 2,
            ..
        }]
    ));
    // Same for an unknown action: whole strides kept as unknown messages, then stop.
    let d = decode(&packet(&[sec(42, 3, 9, &[0; 30])]));
    assert_eq!(names(&d), ["ACT_42", "ACT_42"]);
    assert!(matches!(
        damage(&d)[..],
        [WireErrorKind::SectionOverrun { kept: 2, .. }]
    ));
}

#[test]
fn truncated_mid_message_and_mid_subheader() {
    // Capture cut inside the 3rd INS (R3).
    let p = packet(&[sec(
        13,
        66,
        3,
        &[l5_state(), l5_state(), l5_state()].concat(),
    )]);
    assert_eq!(p.len(), 816);
    let d = decode(&p[..652]);
    assert_eq!(names(&d), ["INS", "INS"]);
    assert!(matches!(
        damage(&d)[..],
        [WireErrorKind::SectionOverrun { kept: 2, .. }]
    ));
    // Cut inside the second subheader.
    let p = packet(&[sec(7, 3, 1, &id_msg(1, A)), sec(7, 3, 1, &id_msg(2, A))]);
    let d = decode(&p[..38]);
    assert_eq!(names(&d), ["DEL_C"]);
    assert!(matches!(
        damage(&d)[..],
        [WireErrorKind::Truncated {
            needed: 4,
            available: 2,
            ..
        }]
    ));
}

#[test]
fn header_rejections() {
    // R1: fewer than 20 bytes, version ≠ 6 (and ≠ 5, FreeBSD), len < 20.
    let p = packet(&[sec(7, 3, 1, &id_msg(1, A))]);
    let e = decode_pfsync(&p[..10]).expect_err("10 bytes");
    assert!(matches!(
        e.kind,
        WireErrorKind::Truncated {
            needed: 20,
            available: 10,
            ..
        }
    ));
    let mut v7 = p.clone();
    v7[0] = 7;
    assert_eq!(
        decode_pfsync(&v7).expect_err("v7").kind,
        WireErrorKind::UnsupportedVersion(7)
    );
    let mut v4 = p.clone();
    v4[0] = 4;
    assert_eq!(
        decode_pfsync(&v4).expect_err("v4").kind,
        WireErrorKind::UnsupportedVersion(4)
    );
    let mut short = p.clone();
    put16(&mut short, 2, 8);
    assert_eq!(
        decode_pfsync(&short).expect_err("len 8").kind,
        WireErrorKind::BadHeaderLen(8)
    );
    // Version 5 goes to the FreeBSD decoder, which cannot take an OpenBSD subheader (its
    // byte 1 carries the length): no message comes out of it, and that is reported.
    let mut v5 = packet(&[sec(13, 66, 1, &l5_state())]);
    v5[0] = 5;
    let d = decode(&v5);
    assert_eq!(d.messages().count(), 0);
    assert!(d.damage().count() >= 1);
}

#[test]
fn message_size_table() {
    use openbsd::{action, message_size, size};
    assert_eq!(message_size(action::CLR), Some(20));
    assert_eq!(message_size(action::INS_ACK), Some(12));
    assert_eq!(message_size(action::UPD_C), Some(84));
    assert_eq!(message_size(action::UPD_REQ), Some(12));
    assert_eq!(message_size(action::DEL), Some(264));
    assert_eq!(message_size(action::DEL_C), Some(12));
    assert_eq!(message_size(action::BUS), Some(12));
    assert_eq!(message_size(action::OTDB), Some(48));
    assert_eq!(message_size(action::INS), Some(264));
    assert_eq!(message_size(action::UPD), Some(264));
    assert_eq!(message_size(action::TDB), Some(52));
    for a in [1u8, 3, 8, 9, 12, 16, 42, 255] {
        assert_eq!(message_size(a), None, "action {a}");
    }
    assert_eq!(size::STATE, 264);
    assert_eq!(openbsd::HEADER_LEN, 20);
    assert_eq!(openbsd::SUBHEADER_LEN, 4);
}

// ---------------------------------------------------------------------------------------------
// Link framing (docs/pfsync.md §1).

/// IPv4: 0 ver/ihl 0x45, 2 total len, 6 flags DF, 8 ttl, 9 proto, 12 src, 16 dst.
fn ipv4(payload: &[u8], proto: u8, ttl: u8) -> Vec<u8> {
    let mut h = Vec::new();
    put(&mut h, 0, &[0x45, 0x10]);
    put16(&mut h, 2, (20 + payload.len()) as u16);
    put16(&mut h, 4, 0x1234);
    put16(&mut h, 6, 0x4000);
    put(&mut h, 8, &[ttl, proto]);
    put(&mut h, 12, &v4("192.168.250.1"));
    put(&mut h, 16, &v4("224.0.0.240"));
    h.extend_from_slice(payload);
    h
}

/// IPv6: 0 version 6, 4 payload len, 6 next header, 7 hop limit, 8 src, 24 dst.
fn ipv6(payload: &[u8], next: u8, hops: u8) -> Vec<u8> {
    let mut h = Vec::new();
    put(&mut h, 0, &[0x60, 0, 0, 0]);
    put16(&mut h, 4, payload.len() as u16);
    put(&mut h, 6, &[next, hops]);
    put(&mut h, 8, &v6("fe80::1"));
    put(&mut h, 24, &v6("ff12::f0"));
    h.extend_from_slice(payload);
    h
}

fn ether(ethertype: u16, vlan: Option<u16>, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    put(&mut f, 0, &[0x01, 0x00, 0x5e, 0x00, 0x00, 0xf0]);
    put(&mut f, 6, &[0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);
    if let Some(tci) = vlan {
        put16(&mut f, 12, 0x8100);
        put16(&mut f, 14, tci);
    }
    let at = f.len();
    put16(&mut f, at, ethertype);
    f.extend_from_slice(payload);
    f
}

fn sample() -> Vec<u8> {
    packet(&[sec(7, 3, 1, &id_msg(0x77, A))])
}

fn strip_ok(lt: u32, frame: &[u8]) -> link::Framed<'_> {
    link::strip(lt, frame).unwrap_or_else(|e| panic!("link type {lt}: {e}"))
}

fn frame(lt: u32, data: Vec<u8>) -> Frame {
    Frame {
        ts_us: 1_741_942_800_000_000,
        linktype: lt,
        orig_len: data.len() as u32,
        data,
    }
}

fn check_ip4(f: &link::Framed<'_>, ttl: u8) {
    let m = f.ip.expect("IP metadata");
    assert_eq!(m.src, ip("192.168.250.1"));
    assert_eq!(m.dst, ip("224.0.0.240"));
    assert_eq!(m.ttl, ttl);
}

#[test]
fn ethernet_plain_vlan_and_padding() {
    let p = sample();
    let f = ether(0x0800, None, &ipv4(&p, 240, 255));
    let s = strip_ok(linktype::ETHERNET, &f);
    assert_eq!(s.pfsync, &p[..]);
    check_ip4(&s, 255);
    // 802.1Q tag (VLAN 42).
    let f = ether(0x0800, Some(42), &ipv4(&p, 240, 255));
    let s = strip_ok(linktype::ETHERNET, &f);
    assert_eq!(s.pfsync, &p[..]);
    // Trailing Ethernet padding / FCS is cut at the IP total length.
    let mut f = ether(0x0800, None, &ipv4(&p, 240, 255));
    f.extend_from_slice(&[0u8; 6]);
    assert_eq!(strip_ok(linktype::ETHERNET, &f).pfsync, &p[..]);
    // IPv6 carrying next header 240 (FreeBSD 15 sync network).
    let f = ether(0x86dd, None, &ipv6(&p, 240, 255));
    let s = strip_ok(linktype::ETHERNET, &f);
    assert_eq!(s.pfsync, &p[..]);
    let m = s.ip.expect("IPv6 metadata");
    assert_eq!(m.src, ip("fe80::1"));
    assert_eq!(m.dst, ip("ff12::f0"));
    assert_eq!(m.ttl, 255);
    // Not IP: ARP.
    let f = ether(0x0806, None, &[0u8; 28]);
    assert!(matches!(
        link::strip(linktype::ETHERNET, &f).expect_err("ARP").kind,
        WireErrorKind::NotPfsync(_)
    ));
    // IP but another protocol.
    let f = ether(0x0800, None, &ipv4(&p, 17, 255));
    assert!(matches!(
        link::strip(linktype::ETHERNET, &f).expect_err("UDP").kind,
        WireErrorKind::NotPfsync(_)
    ));
}

#[test]
fn linux_cooked_v1_and_v2() {
    let p = sample();
    // SLL (113): 0 packet type, 2 ARPHRD, 4 addr len, 6..14 addr, 14 protocol.
    let mut f = Vec::new();
    put16(&mut f, 0, 2);
    put16(&mut f, 2, 1);
    put16(&mut f, 4, 6);
    put(&mut f, 6, &[2, 0, 0, 0, 0, 1, 0, 0]);
    put16(&mut f, 14, 0x0800);
    f.extend_from_slice(&ipv4(&p, 240, 255));
    let s = strip_ok(linktype::LINUX_SLL, &f);
    assert_eq!(s.pfsync, &p[..]);
    check_ip4(&s, 255);
    assert_eq!(linktype::LINUX_SLL, 113);
    // SLL2 (276): 0 protocol, 2 reserved, 4 ifindex, 8 ARPHRD, 10 packet type, 11 addr len,
    // 12..20 addr.
    let mut f = Vec::new();
    put16(&mut f, 0, 0x86dd);
    put32(&mut f, 4, 3);
    put16(&mut f, 8, 1);
    put(&mut f, 10, &[2, 6]);
    put(&mut f, 12, &[2, 0, 0, 0, 0, 1, 0, 0]);
    f.extend_from_slice(&ipv6(&p, 240, 255));
    let s = strip_ok(linktype::LINUX_SLL2, &f);
    assert_eq!(s.pfsync, &p[..]);
    assert_eq!(linktype::LINUX_SLL2, 276);
}

#[test]
fn raw_ip_link_types() {
    let p = sample();
    let ip4 = ipv4(&p, 240, 255);
    let ip6 = ipv6(&p, 240, 255);
    for lt in [12u32, 14, 101] {
        let s = strip_ok(lt, &ip4);
        assert_eq!(s.pfsync, &p[..], "link type {lt} IPv4");
        check_ip4(&s, 255);
        let s = strip_ok(lt, &ip6);
        assert_eq!(s.pfsync, &p[..], "link type {lt} IPv6");
    }
    assert_eq!(strip_ok(228, &ip4).pfsync, &p[..]);
    assert_eq!(strip_ok(229, &ip6).pfsync, &p[..]);
    // 228 is IPv4 only, 229 IPv6 only.
    assert!(link::strip(228, &ipv6(&p, 240, 255)).is_err());
    assert!(link::strip(229, &ipv4(&p, 240, 255)).is_err());
}

#[test]
fn null_and_loopback_in_both_byte_orders() {
    let p = sample();
    let ip4 = ipv4(&p, 240, 255);
    let ip6 = ipv6(&p, 240, 255);
    for (lt, fam) in [
        (0u32, [2u8, 0, 0, 0]), // DLT_NULL, little-endian host
        (0, [0, 0, 0, 2]),      // DLT_NULL, big-endian host
        (108, [0, 0, 0, 2]),    // DLT_LOOP, network order
        (108, [2, 0, 0, 0]),    // a little-endian writer's LOOP
    ] {
        let f = [&fam[..], &ip4].concat();
        let s = strip_ok(lt, &f);
        assert_eq!(s.pfsync, &p[..], "link type {lt} family {fam:?}");
        check_ip4(&s, 255);
    }
    // AF_INET6 is 24 (OpenBSD/NetBSD), 28 (FreeBSD), 30 (macOS).
    for fam in [24u32, 28, 30] {
        for f in [
            [&fam.to_le_bytes()[..], &ip6].concat(),
            [&fam.to_be_bytes()[..], &ip6].concat(),
        ] {
            assert_eq!(strip_ok(0, &f).pfsync, &p[..], "family {fam}");
        }
    }
    let f = [&[0u8, 0, 0, 7][..], &ip4].concat();
    assert!(link::strip(0, &f).is_err());
}

#[test]
fn pfsync_dlts_with_and_without_an_ipv4_header() {
    let p = sample();
    for lt in [18u32, 246, 121] {
        assert!(linktype::is_pfsync(lt));
        // ≤ 7.3 (and FreeBSD) tap: pfsync header first.
        let s = strip_ok(lt, &p);
        assert_eq!(s.pfsync, &p[..], "link type {lt}");
        assert!(s.ip.is_none());
        // ≥ 7.4 tap: the whole IPv4 datagram, source 0.0.0.0.
        let mut d = ipv4(&p, 240, 255);
        put(&mut d, 12, &[0, 0, 0, 0]);
        let s = strip_ok(lt, &d);
        assert_eq!(s.pfsync, &p[..], "link type {lt} with IPv4 header");
        assert_eq!(s.ip.map(|m| m.src), Some(ip("0.0.0.0")));
        let pkt = decode(s.pfsync);
        assert_eq!(names(&pkt), ["DEL_C"]);
    }
    assert!(link::strip(246, &[]).is_err());
}

#[test]
fn ttl_other_than_255_is_decoded_but_not_trusted() {
    let p = sample();
    let f = frame(linktype::ETHERNET, ether(0x0800, None, &ipv4(&p, 240, 64)));
    match decode_frame(&f) {
        Outcome::Packet { ip, pkt, trusted } => {
            assert!(!trusted);
            assert_eq!(ip.map(|i| i.ttl), Some(64));
            assert_eq!(names(&pkt), ["DEL_C"]);
        }
        o => panic!("expected a packet, got {o:?}"),
    }
    let f = frame(linktype::RAW, ipv6(&p, 240, 1));
    assert!(matches!(
        decode_frame(&f),
        Outcome::Packet { trusted: false, .. }
    ));
    // TTL 255, and no IP header at all: trusted.
    let f = frame(linktype::ETHERNET, ether(0x0800, None, &ipv4(&p, 240, 255)));
    assert!(matches!(
        decode_frame(&f),
        Outcome::Packet { trusted: true, .. }
    ));
    let f = frame(linktype::PFSYNC, p.clone());
    assert!(matches!(
        decode_frame(&f),
        Outcome::Packet { trusted: true, .. }
    ));
    // Another protocol is "not pfsync", damage below the header is "damaged".
    let f = frame(linktype::ETHERNET, ether(0x0800, None, &ipv4(&p, 6, 255)));
    assert!(matches!(decode_frame(&f), Outcome::NotPfsync(_)));
    let f = frame(linktype::ETHERNET, vec![0u8; 5]);
    assert!(matches!(decode_frame(&f), Outcome::Damaged(_)));
}

#[test]
fn ip_header_damage() {
    let p = sample();
    let good = ipv4(&p, 240, 255);
    let bad_ip = |f: &[u8]| {
        matches!(
            link::strip(linktype::RAW, f).map_err(|e| e.kind),
            Err(WireErrorKind::BadIpHeader(_))
        )
    };
    let mut ihl3 = good.clone();
    ihl3[0] = 0x43;
    assert!(bad_ip(&ihl3));
    let mut total10 = good.clone();
    put16(&mut total10, 2, 10);
    assert!(bad_ip(&total10));
    let mut ihl15 = good.clone();
    ihl15[0] = 0x4f;
    ihl15.truncate(50);
    assert!(matches!(
        link::strip(linktype::RAW, &ihl15).map_err(|e| e.kind),
        Err(WireErrorKind::Truncated { needed: 60, .. })
    ));
    // A fragment cannot be decoded alone.
    let mut frag = good.clone();
    put16(&mut frag, 6, 0x2000);
    assert!(link::strip(linktype::RAW, &frag).is_err());
    // IPv4 ethertype but version nibble 6.
    let mut v6nib = good.clone();
    v6nib[0] = 0x65;
    assert!(link::strip(linktype::ETHERNET, &ether(0x0800, None, &v6nib)).is_err());
}

#[test]
fn unsupported_link_type_names_it() {
    for lt in [147u32, 2, 9, 105, 127, 65535] {
        let e = link::strip(lt, &sample()).expect_err("unsupported");
        assert_eq!(e.kind, WireErrorKind::UnsupportedLinkType(lt));
        assert!(e.to_string().contains(&lt.to_string()), "{e}");
        assert!(!linktype::is_supported(lt));
    }
    let f = frame(147, sample());
    match decode_frame(&f) {
        Outcome::Damaged(e) => assert!(e.to_string().contains("147"), "{e}"),
        o => panic!("expected damage, got {o:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Property tests.

fn arb_ifname() -> impl Strategy<Value = String> {
    "[\\x01-\\x7f]{0,15}"
}

fn arb_key_repr() -> impl Strategy<Value = KeyRepr> {
    (
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        any::<[u16; 2]>(),
        any::<u16>(),
        any::<u8>(),
    )
        .prop_map(|(a0, a1, port, rdomain, af)| KeyRepr {
            addr: [a0, a1],
            port,
            rdomain,
            af,
        })
}

fn arb_peer_repr() -> impl Strategy<Value = PeerRepr> {
    (
        any::<[u8; 8]>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u16>(),
        any::<u16>(),
        any::<u8>(),
        any::<u8>(),
    )
        .prop_map(
            |(scrub, seqlo, seqhi, seqdiff, max_win, mss, state, wscale)| PeerRepr {
                scrub,
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

fn arb_state_repr() -> impl Strategy<Value = StateRepr> {
    let g1 = (
        any::<u64>(),
        arb_ifname(),
        arb_key_repr(),
        arb_key_repr(),
        arb_peer_repr(),
        arb_peer_repr(),
        any::<[u8; 16]>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
    );
    let g2 = (
        any::<u32>(),
        any::<u32>(),
        any::<[u64; 2]>(),
        any::<[u64; 2]>(),
        any::<u32>(),
        any::<[i32; 2]>(),
        any::<u16>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
    );
    let g3 = (
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u16>(),
        any::<[u8; 2]>(),
    );
    (g1, g2, g3).prop_map(
        |(
            (id, ifname, k0, k1, src, dst, rt_addr, rule, anchor, nat_rule),
            (creation, expire, packets, bytes, creator_id, rtableid, max_mss, af, proto, direction),
            (log, extra254, timeout, sync_flags, updates, min_ttl, set_tos, extra260, extra262),
        )| StateRepr {
            id,
            ifname: ifname.into(),
            key: [k0, k1],
            src,
            dst,
            rt_addr,
            rule,
            anchor,
            nat_rule,
            creation,
            expire,
            packets,
            bytes,
            creator_id,
            rtableid,
            max_mss,
            af,
            proto,
            direction,
            log,
            extra254,
            timeout,
            sync_flags,
            updates,
            min_ttl,
            set_tos,
            extra260,
            extra262,
        },
    )
}

/// A family that survives the trip through the wire byte: key families must not be 0
/// (0 means "use the state's"), and Other never takes a value that names a real family.
fn arb_af(allow_zero: bool) -> impl Strategy<Value = Af> {
    prop_oneof![
        Just(Af::Inet),
        Just(Af::Inet6),
        any::<u8>()
            .prop_filter("a real family byte", move |o| {
                *o != 2 && *o != 24 && (allow_zero || *o != 0)
            })
            .prop_map(Af::Other),
    ]
}

fn arb_addr(af: Af) -> BoxedStrategy<IpAddr> {
    match af {
        Af::Inet6 => any::<[u8; 16]>()
            .prop_map(|a| IpAddr::V6(Ipv6Addr::from(a)))
            .boxed(),
        _ => any::<[u8; 4]>()
            .prop_map(|a| IpAddr::V4(Ipv4Addr::from(a)))
            .boxed(),
    }
}

fn arb_key() -> impl Strategy<Value = Key> {
    arb_af(false).prop_flat_map(|af| {
        (arb_addr(af), arb_addr(af), any::<[u16; 2]>(), any::<u16>()).prop_map(
            move |(a0, a1, port, rdomain)| Key {
                addr: [a0, a1],
                port,
                rdomain,
                af,
            },
        )
    })
}

fn arb_direction() -> impl Strategy<Value = Direction> {
    prop_oneof![
        Just(Direction::In),
        Just(Direction::Out),
        any::<u8>()
            .prop_filter("not in/out", |o| *o != 1 && *o != 2)
            .prop_map(Direction::Other),
    ]
}

fn arb_full_state() -> impl Strategy<Value = FullState> {
    (
        (
            any::<u64>(),
            any::<u32>(),
            arb_ifname(),
            arb_key(),
            arb_key(),
            arb_af(true),
            any::<u8>(),
            arb_direction(),
        ),
        (
            any::<u32>(),
            any::<u32>(),
            any::<[u64; 2]>(),
            any::<[u64; 2]>(),
            any::<u32>(),
            any::<u8>(),
            any::<[u8; 2]>(),
        ),
    )
        .prop_map(
            |(
                (id, creator_id, ifname, k0, k1, af, proto, direction),
                (creation, expire, packets, bytes, rule, timeout, peer_state),
            )| FullState {
                id,
                creator_id,
                ifname: ifname.into(),
                key: [k0, k1],
                af,
                proto,
                direction,
                creation,
                expire,
                packets,
                bytes,
                rule,
                timeout,
                peer_state,
            },
        )
}

fn arb_ref() -> impl Strategy<Value = StateRef> {
    (any::<u64>(), any::<u32>()).prop_map(|(id, creator_id)| StateRef { id, creator_id })
}

/// Every message kind an OpenBSD v6 packet carries (EOF and unknown actions have no body).
fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (arb_ifname(), any::<u32>()).prop_map(|(ifname, creator_id)| Message::Clr(Clr {
            ifname: ifname.into(),
            creator_id
        })),
        arb_ref().prop_map(Message::InsAck),
        arb_ref().prop_map(Message::UpdReq),
        arb_ref().prop_map(Message::DelC),
        (
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            any::<u8>(),
            any::<[u8; 2]>()
        )
            .prop_map(|(id, creator_id, expire, timeout, peer_state)| {
                Message::UpdC(UpdC {
                    id,
                    creator_id,
                    expire,
                    timeout,
                    peer_state,
                })
            }),
        (
            any::<u32>(),
            any::<u32>(),
            prop_oneof![
                Just(BusStatus::Start),
                Just(BusStatus::End),
                any::<u8>()
                    .prop_filter("not start/end", |o| *o != 1 && *o != 2)
                    .prop_map(BusStatus::Other),
            ]
        )
            .prop_map(|(creator_id, endtime, status)| Message::Bus(Bus {
                creator_id,
                endtime,
                status
            })),
        (
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            any::<u8>(),
            any::<u16>()
        )
            .prop_map(|(spi, rpl, cur_bytes, sproto, rdomain)| Message::Tdb(Tdb {
                spi,
                rpl,
                cur_bytes,
                sproto,
                rdomain
            })),
        arb_full_state().prop_map(Message::Ins),
        arb_full_state().prop_map(Message::Upd),
        arb_full_state().prop_map(Message::Del),
    ]
}

/// Link types the decoder strips, for the no-panic properties and the fuzz selector.
const LINKTYPES: [u32; 13] = [0, 1, 12, 14, 18, 101, 108, 113, 121, 228, 229, 246, 276];

/// Decode and track whatever comes out; checks the invariants that must hold on any input.
fn decode_and_track(lt: u32, data: &[u8], tracker: &mut Tracker, ts: i64) {
    let Ok(framed) = link::strip(lt, data) else {
        return;
    };
    assert!(framed.pfsync.len() <= data.len());
    let Ok(pkt) = decode_pfsync(framed.pfsync) else {
        return;
    };
    let bound = (pkt.header_len as usize).min(framed.pfsync.len());
    let mut events = Vec::new();
    for item in &pkt.items {
        if let Item::Message(off, d) = item {
            assert!(*off <= bound, "message offset {off} beyond bound {bound}");
            tracker.apply(d, ts, &mut events);
        }
    }
    for e in &events {
        if let Event::End { start, end, .. } = e {
            assert!(end >= start, "End before start: {e:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn state_repr_round_trips(r in arb_state_repr()) {
        let mut b = vec![0u8; 264];
        r.emit(&mut b);
        let back = StateRepr::parse(&b).expect("264 bytes");
        prop_assert_eq!(&back, &r);
        // And the bytes sit where docs/pfsync.md §6 says.
        prop_assert_eq!(&b[0..8], &r.id.to_be_bytes()[..]);
        prop_assert_eq!(&b[236..240], &r.creator_id.to_be_bytes()[..]);
        prop_assert_eq!(&b[204..212], &r.packets[0].to_be_bytes()[..]);
        prop_assert_eq!(b[250], r.af);
        prop_assert_eq!(b[62], r.key[0].af);
        prop_assert_eq!(b[102], r.key[1].af);
        prop_assert_eq!(b[254], r.extra254);
        prop_assert_eq!(&b[262..264], &r.extra262[..]);
    }

    #[test]
    fn full_state_round_trips_through_state_repr(s in arb_full_state()) {
        let mut b = vec![0u8; 264];
        StateRepr::from_full(&s).emit(&mut b);
        prop_assert_eq!(StateRepr::parse(&b).expect("264 bytes").to_full(), s);
    }

    #[test]
    fn parse_full_is_parse_then_to_full(
        r in arb_state_repr(),
        raw in proptest::collection::vec(any::<u8>(), 250..300),
    ) {
        // From a valid state, and from any bytes (a name of invalid UTF-8, odd families).
        let mut b = vec![0u8; 264];
        r.emit(&mut b);
        for b in [&b[..], &raw[..]] {
            match (StateRepr::parse(b), StateRepr::parse_full(b)) {
                (Ok(repr), Ok(full)) => prop_assert_eq!(repr.to_full(), full),
                (Err(a), Err(b)) => prop_assert_eq!(a, b),
                (a, b) => prop_assert!(false, "parse {:?}, parse_full {:?}", a, b),
            }
        }
    }

    #[test]
    fn message_round_trips(m in arb_message()) {
        let (act, body) = openbsd::emit_message(&m);
        prop_assert_eq!(openbsd::message_size(act), Some(body.len()));
        prop_assert_eq!(openbsd::parse_message(act, &body).expect("parses"), m);
    }

    #[test]
    fn packet_round_trips(msgs in proptest::collection::vec(arb_message(), 0..40)) {
        let bytes = openbsd::emit_packet(&openbsd::sections_for(&msgs), [0; 16]);
        let pkt = decode_pfsync(&bytes).expect("header");
        prop_assert_eq!(pkt.version, 6);
        prop_assert_eq!(pkt.header_len as usize, bytes.len());
        prop_assert_eq!(pkt.damage().count(), 0);
        let got: Vec<Message> = pkt.messages().map(|d| d.msg.clone()).collect();
        prop_assert_eq!(got, msgs.clone());
        for (d, m) in pkt.messages().zip(&msgs) {
            prop_assert_eq!(d.flavor, Flavor::OpenBsd);
            prop_assert_eq!(d.action, openbsd::emit_message(m).0);
        }
    }

    #[test]
    fn header_len_cuts_at_whole_messages(
        msgs in proptest::collection::vec(arb_message(), 1..12),
        cut in any::<u16>(),
    ) {
        // Any header len: whatever comes out is a prefix of what went in (R2, R3).
        let mut bytes = openbsd::emit_packet(&openbsd::sections_for(&msgs), [0; 16]);
        let len = 20 + cut as usize % (bytes.len() + 100);
        bytes[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        let pkt = decode_pfsync(&bytes).expect("header");
        let got: Vec<Message> = pkt.messages().map(|d| d.msg.clone()).collect();
        prop_assert!(got.len() <= msgs.len());
        prop_assert_eq!(&got[..], &msgs[..got.len()]);
        if len < bytes.len() {
            prop_assert!(got.len() < msgs.len());
        } else {
            prop_assert_eq!(got.len(), msgs.len());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_frames_never_panic(
        sel in any::<u8>(),
        data in proptest::collection::vec(any::<u8>(), 0..1600),
    ) {
        let lt = LINKTYPES[sel as usize % LINKTYPES.len()];
        let mut t = Tracker::new();
        decode_and_track(lt, &data, &mut t, 1_000_000_000);
        let f = frame(lt, data);
        let _ = decode_frame(&f);
    }

    #[test]
    fn arbitrary_pfsync_bodies_never_panic(
        version in prop_oneof![Just(6u8), Just(5u8)],
        len in any::<u16>(),
        body in proptest::collection::vec(
            prop_oneof![
                // subheader-looking bytes: known actions, plausible lens and counts
                (0u8..20, prop_oneof![Just(0u8), Just(3), Just(5), Just(13), Just(21), Just(66), any::<u8>()], 0u16..4)
                    .prop_map(|(a, l, c)| { let mut v = vec![a, l]; v.extend_from_slice(&c.to_be_bytes()); v }),
                proptest::collection::vec(any::<u8>(), 0..300),
            ],
            0..8,
        ),
    ) {
        let mut p = vec![version, 0];
        p.extend_from_slice(&len.to_be_bytes());
        p.extend_from_slice(&[0u8; 16]);
        for b in body {
            p.extend_from_slice(&b);
        }
        let mut t = Tracker::new();
        decode_and_track(linktype::PFSYNC, &p, &mut t, 5_000_000);
        decode_and_track(linktype::PFSYNC, &p, &mut t, 4_000_000);
    }

    #[test]
    fn tracker_never_ends_before_start(
        msgs in proptest::collection::vec((arb_message(), 0i64..1_000_000_000_000), 0..30),
    ) {
        let mut t = Tracker::new();
        let mut events = Vec::new();
        for (m, ts) in &msgs {
            let d = pfstatelog::wire::Decoded {
                flavor: Flavor::OpenBsd,
                action: openbsd::emit_message(m).0,
                record_version: 0,
                msg: m.clone(),
            };
            t.apply(&d, *ts, &mut events);
        }
        for e in &events {
            if let Event::End { start, end, .. } = e {
                prop_assert!(end >= start);
            }
        }
    }
}
