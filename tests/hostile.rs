//! hostile-l5-ether.pcap through the library (CaptureFile -> decode_frame -> Tracker): per
//! damaged frame of tests/fixtures/README.md, exactly what is kept (number and kind of messages)
//! and that the damage is reported; the valid traffic around it decodes as usual; and the
//! lifetimes the tracker builds answer the fixture's queries (R0–R4).

use pfstatelog::model::{Event, OrphanKind};
use pfstatelog::model::{FullState, StateRef};
use pfstatelog::pipeline::{decode_frame, DecodeStats, Outcome};
use pfstatelog::source::file::CaptureFile;
use pfstatelog::source::Frame;
use pfstatelog::track::Tracker;
use pfstatelog::wire::{decode_pfsync, Message, WireErrorKind};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::OnceLock;

const NAME: &str = "hostile-l5-ether";
const DAMAGED: [usize; 20] = [
    27, 35, 38, 49, 69, 74, 86, 111, 150, 157, 160, 176, 264, 292, 299, 317, 323, 344, 363, 376,
];

struct Decoded {
    frame: Frame,
    outcome: Outcome,
}

struct Capture {
    /// Index 0 is frame 1, as the fixture numbers them.
    frames: Vec<Decoded>,
    stats: DecodeStats,
    /// Tracker events, with the number of the frame that caused them.
    events: Vec<(usize, Event)>,
}

fn path(ext: &str) -> String {
    format!("{}/tests/fixtures/{NAME}.{ext}", env!("CARGO_MANIFEST_DIR"))
}

fn capture() -> &'static Capture {
    static CAP: OnceLock<Capture> = OnceLock::new();
    CAP.get_or_init(|| {
        let mut cap = CaptureFile::open(&path("pcap")).expect("open the capture");
        let mut frames = Vec::new();
        let mut stats = DecodeStats::default();
        let mut tracker = Tracker::new();
        let mut events = Vec::new();
        while let Some(f) = cap.next_frame() {
            let frame = f.expect("every record of the file is readable");
            let outcome = decode_frame(&frame);
            let n = frames.len() + 1;
            if stats.count(&frame, &outcome) {
                if let Outcome::Packet { pkt, .. } = &outcome {
                    let mut ev = Vec::new();
                    for d in pkt.messages() {
                        tracker.apply(d, frame.ts_us, &mut ev);
                    }
                    events.extend(ev.into_iter().map(|e| (n, e)));
                }
            }
            frames.push(Decoded { frame, outcome });
        }
        Capture {
            frames,
            stats,
            events,
        }
    })
}

fn expected() -> Value {
    let text = std::fs::read_to_string(path("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("expected.json is JSON")
}

fn frame(n: usize) -> &'static Decoded {
    &capture().frames[n - 1]
}

/// Names of the messages a frame yields (empty unless it is a packet).
fn kept(n: usize) -> Vec<String> {
    match &frame(n).outcome {
        Outcome::Packet { pkt, .. } => pkt.messages().map(|d| d.name()).collect(),
        _ => Vec::new(),
    }
}

/// Damage reported inside a packet.
fn packet_damage(n: usize) -> Vec<WireErrorKind> {
    match &frame(n).outcome {
        Outcome::Packet { pkt, .. } => pkt.damage().map(|e| e.kind.clone()).collect(),
        o => panic!("frame {n}: expected a packet, got {o:?}"),
    }
}

/// The error of a frame that is damaged below or at the pfsync header.
fn frame_damage(n: usize) -> WireErrorKind {
    match &frame(n).outcome {
        Outcome::Damaged(e) => e.kind.clone(),
        o => panic!("frame {n}: expected damage, got {o:?}"),
    }
}

fn trusted_packet(n: usize) {
    assert!(
        matches!(frame(n).outcome, Outcome::Packet { trusted: true, .. }),
        "frame {n}: {:?}",
        frame(n).outcome
    );
}

fn ins(k: usize) -> Vec<String> {
    vec!["INS".to_string(); k]
}

fn full_states(n: usize) -> Vec<FullState> {
    match &frame(n).outcome {
        Outcome::Packet { pkt, .. } => pkt
            .messages()
            .filter_map(|d| d.msg.full_state().cloned())
            .collect(),
        _ => Vec::new(),
    }
}

/// Decoys sit on 203.0.113.10 ports 41001 and up (WIRE key addr[1]:port[1]); the fixture
/// has 24 of them (the valid traffic's NAT uses 50001 and up).
fn is_decoy(s: &FullState) -> bool {
    s.key[0].addr[1] == "203.0.113.10".parse::<IpAddr>().expect("ip")
        && (41001..=41024).contains(&s.key[0].port[1])
}

// ---------------------------------------------------------------------------------------------
// Per damaged frame (the fixture's damaged_frames list; rules in docs/pfsync.md §3).

#[test]
fn frame_27_zero_length() {
    let f = frame(27);
    assert!(f.frame.data.is_empty());
    assert!(kept(27).is_empty());
    assert!(matches!(
        frame_damage(27),
        WireErrorKind::Truncated { available: 0, .. }
    ));
}

#[test]
fn frame_35_zero_length_of_60() {
    let f = frame(35);
    assert!(f.frame.data.is_empty());
    assert_eq!(f.frame.orig_len, 60);
    assert!(matches!(
        frame_damage(35),
        WireErrorKind::Truncated { available: 0, .. }
    ));
}

#[test]
fn frame_38_truncated_mid_message_keeps_two_ins() {
    trusted_packet(38);
    assert_eq!(kept(38), ins(2));
    assert!(matches!(
        packet_damage(38)[..],
        [WireErrorKind::SectionOverrun {
            action: 13,
            count: 3,
            stride: 264,
            kept: 2,
            ..
        }]
    ));
    assert!(full_states(38).iter().all(is_decoy));
}

#[test]
fn frame_49_version_5_is_ignored() {
    // Version 5 is FreeBSD's; an OpenBSD body under it cannot be read (its subheader byte 1
    // is a length): nothing is kept, and that is reported either way.
    assert!(kept(49).is_empty());
    match &frame(49).outcome {
        Outcome::Damaged(_) => {}
        Outcome::Packet { pkt, .. } => {
            assert_eq!(pkt.version, 5);
            assert!(pkt.damage().count() >= 1, "{pkt:?}");
        }
        o => panic!("frame 49: {o:?}"),
    }
}

#[test]
fn frame_69_version_7_is_ignored() {
    assert!(kept(69).is_empty());
    assert_eq!(frame_damage(69), WireErrorKind::UnsupportedVersion(7));
}

#[test]
fn frame_74_header_len_larger_than_data_keeps_both_ins() {
    trusted_packet(74);
    assert_eq!(kept(74), ins(2));
    let Outcome::Packet { pkt, .. } = &frame(74).outcome else {
        unreachable!()
    };
    assert_eq!(pkt.header_len, 1400);
    assert_eq!(pkt.available, 552);
    assert!(full_states(74).iter().all(is_decoy));
}

#[test]
fn frame_74_header_len_larger_than_data_is_reported() {
    // The fixture lists it as damage (hdr-len-larger-than-data); `decode` reports damage
    // where it occurs. Salvaging the two INS (R2) must not hide that the header lied.
    assert!(
        !packet_damage(74).is_empty(),
        "frame 74: header len 1400 with 552 bytes present is not reported"
    );
}

#[test]
fn frame_86_header_len_smaller_than_data_keeps_one_ins() {
    trusted_packet(86);
    assert_eq!(kept(86), ins(1));
    assert!(matches!(
        packet_damage(86)[..],
        [WireErrorKind::SectionOverrun {
            action: 13,
            kept: 1,
            bound: 388,
            ..
        }]
    ));
    let Outcome::Packet { pkt, .. } = &frame(86).outcome else {
        unreachable!()
    };
    assert_eq!(pkt.header_len, 388);
    assert_eq!(pkt.available, 568);
}

#[test]
fn frame_86_ignored_tail_del_c_does_not_end_a_live_state() {
    // The tail past the header len holds a DEL_C (pfsync offset 552: subheader 7/3/1, then
    // id and creatorid) for a live state. It must not end that state.
    let f = frame(86);
    let tail = &f.frame.data[14 + 20..];
    assert_eq!(&tail[552..556], &[7, 3, 0, 1]);
    let id = u64::from_be_bytes(tail[556..564].try_into().expect("8 bytes"));
    let creator = u32::from_be_bytes(tail[564..568].try_into().expect("4 bytes"));
    let key = StateRef {
        id,
        creator_id: creator,
    };
    let cap = capture();
    let opened_before = cap.events.iter().any(|(n, e)| {
        *n < 86 && matches!(e, Event::Open { state, .. } if state.id == id && state.creator_id == creator)
    });
    assert!(
        opened_before,
        "the DEL_C's state {id:016x} is live before frame 86"
    );
    for (n, e) in &cap.events {
        if let Event::End { state, .. } = e {
            if state.id == key.id && state.creator_id == key.creator_id {
                assert!(*n > 86, "state {id:016x} ended by frame {n}");
            }
        }
    }
}

#[test]
fn frame_111_count_far_too_large_keeps_two_ins() {
    trusted_packet(111);
    assert_eq!(kept(111), ins(2));
    assert!(matches!(
        packet_damage(111)[..],
        [WireErrorKind::SectionOverrun {
            action: 13,
            count: 65520,
            kept: 2,
            ..
        }]
    ));
}

#[test]
fn frame_150_unknown_action_len_0_stops_after_one_ins() {
    trusted_packet(150);
    assert_eq!(kept(150), ins(1));
    assert!(matches!(
        packet_damage(150)[..],
        [WireErrorKind::Unskippable {
            action: 42,
            len: 0,
            ..
        }]
    ));
}

#[test]
fn frame_157_unknown_action_is_stepped_over() {
    trusted_packet(157);
    assert_eq!(kept(157), ["ACT_42", "ACT_42", "INS"]);
    assert!(packet_damage(157).is_empty());
    assert!(full_states(157).iter().all(is_decoy));
}

#[test]
fn frames_with_bad_ip_headers_are_ignored() {
    for n in [160, 176, 292] {
        assert!(kept(n).is_empty(), "frame {n}");
        assert!(
            matches!(frame_damage(n), WireErrorKind::BadIpHeader(_)),
            "frame {n}: {:?}",
            frame(n).outcome
        );
    }
    assert!(matches!(
        frame_damage(299),
        WireErrorKind::Truncated {
            needed: 60,
            available: 50,
            ..
        }
    ));
}

#[test]
fn frame_264_ip_proto_6_is_skipped_though_its_payload_parses() {
    assert!(matches!(frame(264).outcome, Outcome::NotPfsync(_)));
    assert!(kept(264).is_empty());
    // The payload is a well-formed pfsync packet with decoys: only the IP layer rejects it.
    let pkt = decode_pfsync(&frame(264).frame.data[14 + 20..]).expect("pfsync-looking payload");
    assert!(pkt.messages().count() >= 1);
}

#[test]
fn frame_317_pfsync_len_below_20_is_ignored() {
    assert!(kept(317).is_empty());
    assert_eq!(frame_damage(317), WireErrorKind::BadHeaderLen(8));
}

#[test]
fn frame_323_short_stride_is_stepped_over() {
    trusted_packet(323);
    assert_eq!(kept(323), ins(1));
    assert_eq!(
        packet_damage(323),
        vec![WireErrorKind::ShortStride {
            action: 13,
            len: 10,
            needed: 264
        }]
    );
}

#[test]
fn frame_344_truncated_pfsync_header_is_ignored() {
    assert!(kept(344).is_empty());
    assert!(matches!(
        frame_damage(344),
        WireErrorKind::Truncated {
            needed: 20,
            available: 10,
            ..
        }
    ));
}

#[test]
fn frame_363_ethertype_ipv6_is_ignored() {
    assert!(kept(363).is_empty());
    assert!(!matches!(frame(363).outcome, Outcome::Packet { .. }));
}

#[test]
fn frame_376_del_c_ends_five_decoys_and_ignores_one() {
    trusted_packet(376);
    assert_eq!(kept(376), vec!["DEL_C".to_string(); 6]);
    assert!(packet_damage(376).is_empty());
    let ev: Vec<&Event> = capture()
        .events
        .iter()
        .filter(|(n, _)| *n == 376)
        .map(|(_, e)| e)
        .collect();
    let ends: Vec<&FullState> = ev
        .iter()
        .filter_map(|e| match e {
            Event::End { state, .. } => Some(state),
            _ => None,
        })
        .collect();
    assert_eq!(ends.len(), 5, "{ev:?}");
    assert!(ends.iter().all(|s| is_decoy(s)));
    let orphans = ev
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Orphan {
                    kind: OrphanKind::DelC,
                    ..
                }
            )
        })
        .count();
    assert_eq!(orphans, 1);
}

// ---------------------------------------------------------------------------------------------
// The file as a whole.

#[test]
fn every_other_frame_is_a_clean_trusted_packet() {
    let cap = capture();
    assert_eq!(
        cap.frames.len() as u64,
        expected()["frames"].as_u64().expect("frames")
    );
    for n in 1..=cap.frames.len() {
        if DAMAGED.contains(&n) {
            continue;
        }
        trusted_packet(n);
        assert!(packet_damage(n).is_empty(), "frame {n}");
        assert!(!kept(n).is_empty(), "frame {n}");
    }
}

#[test]
fn applied_counts_equal_messages_applied_plus_the_stepped_over_act_42() {
    let cap = capture();
    let mut want: BTreeMap<String, u64> = expected()["messages_applied"]
        .as_object()
        .expect("messages_applied")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("count")))
        .collect();
    want.insert("ACT_42".into(), 2);
    assert_eq!(cap.stats.messages, want);
    assert_eq!(cap.stats.frames, 408);
    assert_eq!(cap.stats.not_pfsync, 1, "frame 264");
    assert_eq!(cap.stats.untrusted_packets, 0);
}

#[test]
fn decoys_are_opened_exactly_from_the_applied_frames() {
    let cap = capture();
    let mut by_frame: BTreeMap<usize, usize> = BTreeMap::new();
    for (n, e) in &cap.events {
        if let Event::Open { state, .. } = e {
            if is_decoy(state) {
                *by_frame.entry(*n).or_default() += 1;
            }
        }
    }
    let want: BTreeMap<usize, usize> = [
        (38, 2),
        (74, 2),
        (86, 1),
        (111, 2),
        (150, 1),
        (157, 1),
        (323, 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(by_frame, want);
    for (_, e) in &cap.events {
        if let Event::End { start, end, .. } = e {
            assert!(end >= start, "{e:?}");
        }
    }
}

fn micros(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
        .timestamp_micros()
}

struct Lifetime {
    state: FullState,
    start: i64,
    end: Option<i64>,
}

#[test]
fn tracker_lifetimes_answer_every_query() {
    let cap = capture();
    let mut lifetimes: Vec<Lifetime> = Vec::new();
    let mut open: HashMap<(u64, u32), usize> = HashMap::new();
    for (_, e) in &cap.events {
        match e {
            Event::Open { state, start, .. } => {
                open.insert((state.id, state.creator_id), lifetimes.len());
                lifetimes.push(Lifetime {
                    state: state.clone(),
                    start: *start,
                    end: None,
                });
            }
            Event::End { state, end, .. } => {
                let i = open
                    .remove(&(state.id, state.creator_id))
                    .expect("an End for an open state");
                lifetimes[i].end = Some(*end);
            }
            _ => {}
        }
    }
    let exp = expected();
    let queries = exp["queries"].as_array().expect("queries");
    assert!(!queries.is_empty());
    for q in queries {
        let ip: IpAddr = q["ip"].as_str().expect("ip").parse().expect("ip");
        let port = q["port"].as_u64().expect("port") as u16;
        let at = micros(q["at"].as_str().expect("at"));
        let w = q["window_s"].as_i64().expect("window") * 1_000_000;
        let mut got: Vec<&Lifetime> = lifetimes
            .iter()
            .filter(|l| {
                l.state.key[0].addr[1] == ip
                    && l.state.key[0].port[1] == port
                    && l.start <= at + w
                    && l.end.is_none_or(|e| e >= at - w)
            })
            .collect();
        got.sort_by_key(|l| (l.state.creator_id, l.state.id));
        let mut want: Vec<&Value> = q["expected"].as_array().expect("expected").iter().collect();
        want.sort_by_key(|m| {
            (
                m["creator_id"].as_str().unwrap_or("").to_string(),
                m["state_id"].as_str().unwrap_or("").to_string(),
            )
        });
        let ctx = format!("query {} {}:{} at {}", q["kind"], ip, port, q["at"]);
        assert_eq!(got.len(), want.len(), "{ctx}");
        for (l, m) in got.iter().zip(want) {
            let s = &l.state;
            assert_eq!(format!("{:016x}", s.id), m["state_id"], "{ctx}");
            assert_eq!(format!("{:08x}", s.creator_id), m["creator_id"], "{ctx}");
            assert_eq!(s.key[1].addr[1].to_string(), m["private_ip"], "{ctx}");
            assert_eq!(u64::from(s.key[1].port[1]), m["private_port"], "{ctx}");
            assert_eq!(s.key[0].addr[0].to_string(), m["remote_ip"], "{ctx}");
            assert_eq!(u64::from(s.key[0].port[0]), m["remote_port"], "{ctx}");
            assert_eq!(s.ifname.as_str(), m["ifname"], "{ctx}");
            assert_eq!(s.direction.name(), m["direction"], "{ctx}");
            assert_eq!(s.is_nat(), m["nat"], "{ctx}");
            let start = micros(m["start"].as_str().expect("start"));
            assert!((l.start - start).abs() <= 1_000_000, "{ctx}: start");
            match (l.end, m["end"].as_str()) {
                (None, None) => {}
                (Some(e), Some(want)) => {
                    assert!((e - micros(want)).abs() <= 1_000_000, "{ctx}: end")
                }
                (e, w) => panic!("{ctx}: end {e:?} vs expected {w:?}"),
            }
        }
    }
}

#[test]
fn damaged_frames_list_matches_the_fixture() {
    let exp = expected();
    let listed: Vec<usize> = exp["damaged_frames"]
        .as_array()
        .expect("damaged_frames")
        .iter()
        .map(|d| d["frame"].as_u64().expect("frame") as usize)
        .collect();
    assert_eq!(listed, DAMAGED);
    // And the frame times agree with the capture.
    for d in exp["damaged_frames"].as_array().expect("damaged_frames") {
        let n = d["frame"].as_u64().expect("frame") as usize;
        let t = micros(d["time"].as_str().expect("time"));
        assert_eq!(frame(n).frame.ts_us, t, "frame {n}");
    }
}

#[test]
fn decoding_every_frame_again_with_every_link_type_never_panics() {
    // The same damaged bytes under every link type the decoder accepts.
    let mut t = Tracker::new();
    let mut ev = Vec::new();
    for d in &capture().frames {
        for lt in [0u32, 1, 12, 14, 18, 101, 108, 113, 121, 228, 229, 246, 276] {
            let f = Frame {
                linktype: lt,
                ..d.frame.clone()
            };
            if let Outcome::Packet { pkt, .. } = decode_frame(&f) {
                for m in pkt.messages() {
                    if !matches!(m.msg, Message::Clr(_)) {
                        t.apply(m, f.ts_us, &mut ev);
                    }
                }
            }
        }
    }
}
