//! `pfctl -ss -vv` snapshots: the parser on sample text of every shape (IPv4, IPv6, nat, rdr,
//! ICMP, no translation, rdomain, af-to), lines it must reject with their line numbers, a
//! property test that it never panics and reads back exactly what pfctl's printer writes,
//! and `import-pfctl` through the binary: a snapshot and the pfsync messages for the same
//! (creator, id) end up in one row, in either order.

mod common;

use common::{fixture, pfsync_capture as capture, run, run_ok};
use pfstatelog::model::{Af, Direction, FullState, Key, StateRef};
use pfstatelog::pfctl::{parse_state_line, parse_str, Reader};
use pfstatelog::report::proto_name;
use pfstatelog::wire::{Message, UpdC};
use proptest::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// The verbose lines pfctl prints under a state line.
fn tail(age: &str, id: &str, creator: &str) -> String {
    format!("   age {age}, expires in 00:00:10, 5:7 pkts, 500:700 bytes, rule 4\n   id: {id} creatorid: {creator}\n")
}

fn one(text: &str) -> FullState {
    let (s, e) = parse_str(text);
    assert!(e.is_empty(), "unexpected errors: {e:?}");
    assert_eq!(s.len(), 1, "{s:?}");
    s.into_iter().next().expect("a state")
}

// ---------------------------------------------------------------------------------------
// Sample text.

#[test]
fn ipv4_outbound_nat() {
    let s = one(&format!(
        "all tcp 203.0.113.1:61234 (192.168.1.10:51234) -> 93.184.216.34:443       ESTABLISHED:ESTABLISHED\n   [1807 + 65535] wscale 7  [4811 + 65535] wscale 7\n{}",
        tail("01:02:03", "0000003f00000182", "5a3c1e07")
    ));
    assert_eq!(s.direction, Direction::Out);
    // WIRE key (key[0]) = after translation on an out state; STACK = before.
    assert_eq!(s.key[0].addr, [ip("93.184.216.34"), ip("203.0.113.1")]);
    assert_eq!(s.key[0].port, [443, 61234]);
    assert_eq!(s.key[1].addr, [ip("93.184.216.34"), ip("192.168.1.10")]);
    assert_eq!(s.key[1].port, [443, 51234]);
    assert_eq!(
        (s.id, s.creator_id, s.creation, s.expire),
        (0x3f_0000_0182, 0x5a3c_1e07, 3723, 10)
    );
    assert_eq!((s.packets, s.bytes, s.rule), ([5, 7], [500, 700], 4));
}

#[test]
fn ipv4_inbound_rdr() {
    let s = one(&format!(
        "all tcp 192.168.1.20:8080 (203.0.113.1:80) <- 198.51.100.7:51000       ESTABLISHED:ESTABLISHED\n{}",
        tail("00:00:05", "0000000000000001", "00000002")
    ));
    assert_eq!(s.direction, Direction::In);
    // WIRE key = before translation on an in state: the public address the client hit.
    assert_eq!(s.key[0].addr, [ip("198.51.100.7"), ip("203.0.113.1")]);
    assert_eq!(s.key[0].port, [51000, 80]);
    assert_eq!(s.key[1].addr, [ip("198.51.100.7"), ip("192.168.1.20")]);
    assert_eq!(s.key[1].port, [51000, 8080]);
}

#[test]
fn ipv6_nat66_and_plain() {
    let s = one(&format!(
        "em0 udp 2001:db8:f5::1[41005] (fd00:20::1c[42907]) -> 2001:db8:cafe::57a[53]       MULTIPLE:SINGLE\n{}",
        tail("00:00:01", "0100000000003602", "3c7f0a91")
    ));
    assert_eq!(
        (s.af, s.direction, s.proto),
        (Af::Inet6, Direction::Out, 17)
    );
    assert_eq!(s.key[0].addr[1], ip("2001:db8:f5::1"));
    assert_eq!(s.key[1].addr[1], ip("fd00:20::1c"));
    assert_eq!(s.key[1].port, [53, 42907]);
    assert_eq!(s.ifname, "em0");
    let p = one(&format!(
        "all tcp 2001:db8::10[22] <- 2001:db8:1::99[50000]       ESTABLISHED:ESTABLISHED\n{}",
        tail("00:00:01", "1", "2")
    ));
    assert!(!p.is_nat());
    assert_eq!(p.key[0], p.key[1]);
    assert_eq!(p.key[0].addr, [ip("2001:db8:1::99"), ip("2001:db8::10")]);
}

#[test]
fn icmp_echo_with_id_translation_and_no_nat() {
    let s = one(&format!(
        "all icmp 203.0.113.1:27953 (192.168.1.10:8) -> 93.184.216.34:8       0:0\n{}",
        tail("00:00:01", "10", "20")
    ));
    assert_eq!(s.proto, 1);
    assert_eq!(s.key[0].port, [8, 27953]);
    assert_eq!(s.key[1].port, [8, 8]);
    assert_eq!(s.key[1].addr[1], ip("192.168.1.10"));
    let v6 = one(&format!(
        "all ipv6-icmp 2001:db8:beef::9c8[128] <- 2001:db8:10::20[12482]       0:0\n{}",
        tail("00:00:01", "11", "20")
    ));
    assert_eq!(v6.proto, 58);
    assert!(!v6.is_nat());
    // No port at all: other protocols, or an ICMP id of 0.
    let gre = one(&format!(
        "all gre 10.0.0.1 -> 10.0.0.2       MULTIPLE:MULTIPLE\n{}",
        tail("00:00:01", "12", "20")
    ));
    assert_eq!((gre.proto, gre.key[0].port), (47, [0, 0]));
}

#[test]
fn rdomain_route_to_and_af_to() {
    let s = one(&format!(
        "vio0 tcp (2) 10.1.0.5:3306 ((3) 10.9.0.5:3306) {{10.1.0.254}} <- (2) 10.1.0.77:40000 ((3) 10.1.0.77:40000)       ESTABLISHED:ESTABLISHED\n{}",
        tail("00:00:01", "13", "20")
    ));
    assert_eq!(s.direction, Direction::In);
    assert_eq!((s.key[0].rdomain, s.key[1].rdomain), (3, 2));
    assert_eq!(s.key[0].addr[1], ip("10.9.0.5"));
    assert_eq!(s.key[1].addr[1], ip("10.1.0.5"));
    // af-to (NAT64): printed with ->, sk.addr[0] in the first parentheses.
    let a = one(&format!(
        "all tcp 64:ff9b::c633:6407[443] (198.51.100.7:443) -> 2001:db8::7[50000] (192.0.2.1:61000)       ESTABLISHED:ESTABLISHED\n{}",
        tail("00:00:01", "14", "20")
    ));
    assert_eq!(a.direction, Direction::In);
    assert_eq!(
        (a.key[0].af, a.key[1].af, a.af),
        (Af::Inet, Af::Inet6, Af::Inet)
    );
    assert_eq!(a.key[0].addr, [ip("198.51.100.7"), ip("192.0.2.1")]);
    assert_eq!(a.key[0].port, [443, 61000]);
    assert_eq!(a.key[1].addr, [ip("2001:db8::7"), ip("64:ff9b::c633:6407")]);
}

#[test]
fn freebsd_extras_and_unknown_lines_are_skipped() {
    let text = "all tcp 10.0.0.1:22 <- 10.0.0.2:50000       ESTABLISHED:ESTABLISHED\n   [1 + 2] wscale 6  [3 + 4] wscale 6\n   age 00:10:00, expires in 23:59:59, 1:2 pkts, 3:4 bytes, rule 0, allow-opts, set-prio (0x01 0x02), log (all), max-mss 1400\n   id: 6789abcd00000000 creatorid: 12345678 route-to: 10.0.0.254@em1 rtable: 2\n   origif: em1\n@12 pass in on em0\n\n";
    let (s, e) = parse_str(text);
    assert!(e.is_empty(), "{e:?}");
    assert_eq!(s.len(), 1);
    assert_eq!((s[0].creation, s[0].rule), (600, 0));
    assert_eq!(s[0].id, 0x6789_abcd_0000_0000);
}

#[test]
fn rejects_cleanly_with_line_numbers() {
    let cases: &[(&str, usize, &str)] = &[
        ("No ALTQ support in kernel\n", 1, "not a pfctl state line"),
        ("all tcp host.example.org:443 -> 10.0.0.1:1 X:Y\n", 1, "without -r"),
        ("all tcp 10.0.0.1:https -> 10.0.0.2:1 X:Y\n", 1, "without -N"),
        ("all tcp 10.0.0.1:99999 -> 10.0.0.2:1 X:Y\n", 1, "out of range"),
        ("all tcp 10.0.0.1:1 => 10.0.0.2:1 X:Y\n", 1, "-> or <-"),
        ("all tcp 10.0.0.1:1 -> 2001:db8::1[1] X:Y\n", 1, "address families"),
        ("all tcp 10.0.0.1:1 (10.0.0.3:1 -> 10.0.0.2:1\n", 1, "parenthesis"),
        ("all tcp 10.0.0.1:1\n", 1, "ends before"),
        ("all tcp 10.0.0.1:1 -> 10.0.0.2:1 X:Y\n   id: 1 creatorid: 2\n", 1, "age"),
        ("all tcp 10.0.0.1:1 -> 10.0.0.2:1 X:Y\n   age 00:00:01, expires in 00:00:02, 1:1 pkts, 1:1 bytes\n", 1, "two v"),
        ("\n\nall tcp 10.0.0.1:1 -> 10.0.0.2:1 X:Y\n   age 00:61:01, expires in 00:00:02, 1:1 pkts, 1:1 bytes\n", 4, "hh:mm:ss"),
        ("all tcp 10.0.0.1:1 -> 10.0.0.2:1 X:Y\n   age 00:00:01, expires in 00:00:02, 1:1 pkts, 1:1 bytes\n   id: xyz creatorid: 2\n", 3, "16 hex"),
        ("all tcp 10.0.0.1:1 -> 10.0.0.2:1 X:Y\n   age 00:00:01, expires in 00:00:02, 1:1 pkts, 1:1 bytes\n   id: 1 creatorid: 123456789\n", 3, "8 hex"),
        ("   age 00:00:01, expires in 00:00:02, 1:1 pkts, 1:1 bytes\n", 1, "without a state line"),
        ("x\u{fffd}\n", 1, "not a pfctl state line"),
    ];
    for (text, line, what) in cases {
        let (s, e) = parse_str(text);
        assert!(s.is_empty(), "{text:?} gave {s:?}");
        assert_eq!(e.len(), 1, "{text:?}: {e:?}");
        assert_eq!(e[0].line, *line, "{text:?}: {}", e[0]);
        assert!(e[0].to_string().contains(what), "{text:?}: {}", e[0]);
        assert!(e[0].to_string().starts_with(&format!("line {line}: ")));
    }
}

#[test]
fn good_states_around_bad_lines_are_kept() {
    let text = format!(
        "garbage\nall tcp 10.0.0.1:1 -> 10.0.0.2:2 X:Y\n{}all tcp 10.0.0.1:1 -> bad:2 X:Y\n{}all udp 10.0.0.3:3 -> 10.0.0.4:4 X:Y\n{}",
        tail("00:00:01", "1", "9"),
        tail("00:00:01", "2", "9"),
        tail("00:00:01", "3", "9")
    );
    let (s, e) = parse_str(&text);
    assert_eq!(s.iter().map(|s| s.id).collect::<Vec<_>>(), vec![1, 3]);
    assert_eq!(e.iter().map(|e| e.line).collect::<Vec<_>>(), vec![1, 5]);
}

#[test]
fn overlong_lines_and_bytes_are_rejected_not_fatal() {
    let mut input = Vec::new();
    input.extend_from_slice(&vec![b'a'; 100_000]);
    input.extend_from_slice(b"\n\xff\xfe\n");
    input.extend_from_slice(
        format!(
            "all tcp 10.0.0.1:1 -> 10.0.0.2:2 X:Y\n{}",
            tail("00:00:01", "1", "9")
        )
        .as_bytes(),
    );
    let items: Vec<_> = Reader::new(&input[..]).collect();
    let lines: Vec<Result<u64, usize>> = items
        .iter()
        .map(|r| r.as_ref().map(|s| s.id).map_err(|e| e.line))
        .collect();
    assert_eq!(lines, vec![Err(1), Err(2), Ok(1)]);
}

// ---------------------------------------------------------------------------------------
// Properties.

/// pfctl's print_state (pf_print_state.c), with -vv, for a state.
fn pfctl_print(s: &FullState) -> String {
    fn host(a: &IpAddr, port: u16, rd: u16) -> String {
        let mut o = if rd != 0 {
            format!("({rd}) ")
        } else {
            String::new()
        };
        o.push_str(&a.to_string());
        if port != 0 {
            o.push_str(&match a {
                IpAddr::V4(_) => format!(":{port}"),
                IpAddr::V6(_) => format!("[{port}]"),
            });
        }
        o
    }
    let afto = s.key[0].af != s.key[1].af;
    let (nk, sk) = if s.direction == Direction::Out {
        (&s.key[0], &s.key[1])
    } else {
        (&s.key[1], &s.key[0])
    };
    let mut o = format!(
        "{} {} {}",
        s.ifname,
        proto_name(s.proto),
        host(&nk.addr[1], nk.port[1], nk.rdomain)
    );
    let differs = |i: usize| {
        nk.af != sk.af
            || nk.addr[i] != sk.addr[i]
            || nk.port[i] != sk.port[i]
            || nk.rdomain != sk.rdomain
    };
    if differs(1) {
        let i = if afto { 0 } else { 1 };
        o.push_str(&format!(" ({})", host(&sk.addr[i], sk.port[i], sk.rdomain)));
    }
    o.push_str(if s.direction == Direction::Out || afto {
        " -> "
    } else {
        " <- "
    });
    o.push_str(&host(&nk.addr[0], nk.port[0], nk.rdomain));
    if differs(0) {
        let i = if afto { 1 } else { 0 };
        o.push_str(&format!(" ({})", host(&sk.addr[i], sk.port[i], sk.rdomain)));
    }
    o.push_str("       ESTABLISHED:ESTABLISHED\n");
    if s.proto == 6 {
        o.push_str("   [1 + 2]  [3 + 4]\n");
    }
    let hms = |v: u32| format!("{:02}:{:02}:{:02}", v / 3600, v / 60 % 60, v % 60);
    o.push_str(&format!(
        "   age {}, expires in {}, {}:{} pkts, {}:{} bytes",
        hms(s.creation),
        hms(s.expire),
        s.packets[0],
        s.packets[1],
        s.bytes[0],
        s.bytes[1]
    ));
    if s.rule != u32::MAX {
        o.push_str(&format!(", rule {}", s.rule));
    }
    o.push_str(&format!(
        "\n   id: {:016x} creatorid: {:08x}\n",
        s.id, s.creator_id
    ));
    o
}

fn addr(v6: bool) -> impl Strategy<Value = IpAddr> {
    if v6 {
        any::<[u8; 16]>()
            .prop_map(|b| IpAddr::V6(Ipv6Addr::from(b)))
            .boxed()
    } else {
        any::<[u8; 4]>()
            .prop_map(|b| IpAddr::V4(Ipv4Addr::from(b)))
            .boxed()
    }
}

fn key(v6: bool) -> impl Strategy<Value = Key> {
    (
        addr(v6),
        addr(v6),
        any::<u16>(),
        any::<u16>(),
        prop_oneof![Just(0u16), any::<u16>()],
    )
        .prop_map(move |(a0, a1, p0, p1, rd)| Key {
            addr: [a0, a1],
            port: [p0, p1],
            rdomain: rd,
            af: if v6 { Af::Inet6 } else { Af::Inet },
        })
}

/// A state as pf could hold it: the stack key equal to the wire key, or differing at one
/// index or both (and in rdomain), or of the other family (af-to, in states only).
fn state() -> impl Strategy<Value = FullState> {
    (
        any::<bool>(),
        0u8..5,
        prop::sample::select(vec![1u8, 6, 17, 47, 50, 58, 132, 0, 4, 103, 200]),
        prop::sample::select(vec!["all", "em0", "vio1", "pppoe0"]),
        any::<bool>(),
    )
        .prop_flat_map(|(v6, shape, proto, ifname, out)| {
            (
                key(v6),
                key(v6),
                key(!v6),
                any::<(u64, u32, u32, u32, u32)>(),
                any::<[u64; 4]>(),
            )
                .prop_map(move |(nk, other, afto_key, ids, counters)| {
                    let (id, creator, creation, expire, rule) = ids;
                    let mut sk = nk.clone();
                    let mut direction = if out { Direction::Out } else { Direction::In };
                    match shape {
                        0 => {}
                        1 => {
                            sk.addr[1] = other.addr[1];
                            sk.port[1] = other.port[1];
                        }
                        2 => {
                            sk.addr[0] = other.addr[0];
                            sk.port[0] = other.port[0];
                        }
                        3 => sk = other,
                        _ => {
                            sk = afto_key;
                            direction = Direction::In;
                        }
                    }
                    // pfctl copies the wire-side ICMP id into the pre-translation key.
                    if proto == 1 || proto == 58 {
                        if direction == Direction::Out {
                            sk.port[0] = nk.port[0];
                        } else {
                            sk.port[1] = nk.port[1];
                        }
                    }
                    let key = if direction == Direction::Out {
                        [nk, sk]
                    } else {
                        [sk, nk]
                    };
                    FullState {
                        id,
                        creator_id: creator,
                        ifname: ifname.into(),
                        af: key[0].af,
                        key,
                        proto,
                        direction,
                        creation,
                        expire,
                        packets: [counters[0], counters[1]],
                        bytes: [counters[2], counters[3]],
                        rule,
                        timeout: 0,
                        peer_state: [0, 0],
                    }
                })
        })
}

/// Fragments that look like pfctl output, to get past the first token.
fn pfctlish_line() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("all".to_string()),
        Just("tcp".to_string()),
        Just("icmp".to_string()),
        Just("->".to_string()),
        Just("<-".to_string()),
        Just("(".to_string()),
        Just("((1)".to_string()),
        Just("{10.0.0.1}".to_string()),
        Just("age".to_string()),
        Just("id:".to_string()),
        Just("creatorid:".to_string()),
        "[0-9a-f:.\\[\\]()]{0,24}",
        "[ -~]{0,12}",
    ];
    (
        prop::sample::select(vec!["", "   ", "\t"]),
        prop::collection::vec(token, 0..10),
    )
        .prop_map(|(indent, t)| format!("{indent}{}", t.join(" ")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn reads_back_what_pfctl_prints(s in state()) {
        let text = pfctl_print(&s);
        let (got, errors) = parse_str(&text);
        prop_assert!(errors.is_empty(), "{text}\n{errors:?}");
        prop_assert_eq!(got.len(), 1);
        prop_assert_eq!(&got[0], &s, "{}", text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let n = text.split('\n').count();
        let (_, errors) = parse_str(&text);
        for e in errors {
            prop_assert!(e.line >= 1 && e.line <= n, "{e}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        for r in Reader::new(&bytes[..]) {
            if let Err(e) = r {
                prop_assert!(e.line >= 1);
            }
        }
    }

    #[test]
    fn pfctl_like_text_never_panics(lines in prop::collection::vec(pfctlish_line(), 0..30)) {
        let text = lines.join("\n");
        let (_, errors) = parse_str(&text);
        for e in errors {
            prop_assert!(e.line >= 1 && e.line <= lines.len().max(1), "{e}");
        }
        for (i, l) in lines.iter().enumerate() {
            let _ = parse_state_line(l.trim_start(), i + 1);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Through the binary.

fn db_arg(dir: &Path) -> String {
    dir.join("t.db").display().to_string()
}

/// Every lifetime of the database as JSON objects keyed by (creator, state id).
fn rows(db: &str) -> BTreeMap<(String, String), Vec<Value>> {
    let out = common::export_all(db, "json");
    let mut m: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    for l in out.lines().skip(1) {
        let v: Value = serde_json::from_str(l).expect("json line");
        if v.get("pfstatelog_export_end").is_some() {
            continue;
        }
        let k = (
            v["creator_id"].as_str().unwrap_or_default().to_string(),
            v["state_id"].as_str().unwrap_or_default().to_string(),
        );
        m.entry(k).or_default().push(v);
    }
    m
}

const SNAPSHOT: &str = "all tcp 203.0.113.1:61234 (192.168.1.10:51234) -> 93.184.216.34:443       ESTABLISHED:ESTABLISHED
   [1807 + 65535] wscale 7  [4811 + 65535] wscale 7
   age 00:10:00, expires in 23:59:58, 10:12 pkts, 1000:2000 bytes, rule 3
   id: 0000003f00000182 creatorid: 5a3c1e07
all tcp 192.168.1.20:8080 (203.0.113.1:80) <- 198.51.100.7:51000       ESTABLISHED:ESTABLISHED
   age 00:00:05, expires in 00:00:10, 1:2 pkts, 3:4 bytes, rule 1
   id: 0000003f00000183 creatorid: 5a3c1e07
all udp 2001:db8:f5::1[41005] (fd00:20::1c[42907]) -> 2001:db8:cafe::57a[53]       MULTIPLE:SINGLE
   age 00:00:30, expires in 00:00:30, 1:1 pkts, 80:200 bytes, rule 2
   id: 0000000000000007 creatorid: 8d2b6f10
";

/// 2025-03-14T10:00:00Z, when the sample snapshot was taken.
const TAKEN: i64 = 1_741_946_400;

fn import_snapshot(db: &str, extra: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("states.txt");
    std::fs::write(&f, SNAPSHOT).expect("write snapshot");
    let taken = format!("@{TAKEN}");
    let f = f.display().to_string();
    let mut args = vec!["import-pfctl", "--db", db, "--taken", &taken];
    args.extend_from_slice(extra);
    args.push(&f);
    run(&args)
}

#[test]
fn import_pfctl_opens_lifetimes_at_taken_minus_age() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = db_arg(dir.path());
    let o = import_snapshot(&db, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("3 states loaded (3 opened"), "{err}");
    let out = run_ok(&[
        "who",
        "--db",
        &db,
        "--ip",
        "203.0.113.1",
        "--port",
        "61234",
        "--at",
        "2025-03-14T09:55:00Z",
        "--format",
        "json",
    ]);
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v[0]["private_ip"], "192.168.1.10");
    assert_eq!(v[0]["private_port"], 51234);
    assert_eq!(v[0]["remote_ip"], "93.184.216.34");
    assert_eq!(v[0]["start"], "2025-03-14T09:50:00.000000Z");
    assert_eq!(v[0]["end"], Value::Null);
    let out = run_ok(&[
        "who",
        "--db",
        &db,
        "--ip",
        "2001:db8:f5::1",
        "--port",
        "41005",
        "--at",
        "2025-03-14T10:00:00Z",
        "--format",
        "json",
    ]);
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v[0]["private_ip"], "fd00:20::1c");
    assert_eq!(v[0]["creator_id"], "8d2b6f10");
    // The run is marked as a snapshot, covering the moment it was taken.
    let stats: Value =
        serde_json::from_str(&run_ok(&["stats", "--db", &db, "--json"])).expect("stats json");
    let run0 = &stats["runs"][0];
    assert_eq!(run0["kind"], "snapshot");
    assert_eq!(run0["from"], "2025-03-14T10:00:00.000000Z");
    assert_eq!(run0["to"], "2025-03-14T10:00:00.000000Z");
    // Importing it again changes nothing.
    let before = rows(&db);
    let o = import_snapshot(&db, &[]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("3 already open"));
    assert_eq!(rows(&db), before);
}

#[test]
fn import_pfctl_creator_filter_stdin_and_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = db_arg(dir.path());
    let o = import_snapshot(&db, &["--creator", "8D2B6F10"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(rows(&db).len(), 1);
    let o = run(&["import-pfctl", "--db", &db, "--creator", "xyz", "-"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid creator id"));
    // stdin, with a bad line: the good states are loaded, the bad line named, exit 2.
    let mut child = std::process::Command::new(common::bin())
        .args([
            "import-pfctl",
            "--db",
            &db,
            "--taken",
            "2025-03-14T10:00:00Z",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut w = child.stdin.take().expect("stdin");
        w.write_all(SNAPSHOT.as_bytes()).expect("write");
        w.write_all(b"all tcp 10.0.0.1:1 (10.0.0.2:2 -> 10.0.0.3:3 X:Y\n")
            .expect("write");
    }
    let o = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("-: line 11:"), "{err}");
    assert!(err.contains("1 rejected"), "{err}");
    assert_eq!(rows(&db).len(), 3);
    // The unreadable part is recorded as a blind spot at the snapshot's time.
    let o = run(&[
        "who",
        "--db",
        &db,
        "--ip",
        "203.0.113.1",
        "--port",
        "61234",
        "--at",
        "2025-03-14T10:00:00Z",
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("snapshot-error"));
}

/// The first state of the sample snapshot, as pfsync would carry it.
fn sample_state(creation: u32) -> FullState {
    let (s, e) = parse_str(SNAPSHOT);
    assert!(e.is_empty());
    let mut s = s[0].clone();
    s.creation = creation;
    s
}

fn r(id: u64, creator: u32) -> StateRef {
    StateRef {
        id,
        creator_id: creator,
    }
}

#[test]
fn snapshot_then_capture_joins_one_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = db_arg(dir.path());
    assert!(import_snapshot(&db, &[]).status.success());
    // After the snapshot: an UPD_C, a full UPD from a bulk transfer, then the DEL_C.
    let pcap = dir.path().join("after.pcap");
    let upd_c = Message::UpdC(UpdC {
        id: 0x3f_0000_0182,
        creator_id: 0x5a3c_1e07,
        expire: 0,
        timeout: 4,
        peer_state: [4, 4],
    });
    let mut full = sample_state(620);
    full.packets = [99, 98];
    capture(
        &pcap,
        &[
            (TAKEN + 10, vec![upd_c]),
            (TAKEN + 20, vec![Message::Upd(full)]),
            (
                TAKEN + 30,
                vec![Message::DelC(r(0x3f_0000_0182, 0x5a3c_1e07))],
            ),
        ],
    );
    run_ok(&["import", "--db", &db, &pcap.display().to_string()]);
    let all = rows(&db);
    let k = ("5a3c1e07".to_string(), "0000003f00000182".to_string());
    assert_eq!(all[&k].len(), 1, "{:?}", all[&k]);
    let row = &all[&k][0];
    assert_eq!(row["start"], "2025-03-14T09:50:00.000000Z");
    assert_eq!(row["end"], "2025-03-14T10:00:30.000000Z");
    assert_eq!(row["end_reason"], "delete");
    assert_eq!(row["packets"][0], 99);
    assert_eq!(all.len(), 3);
}

#[test]
fn capture_then_snapshot_joins_one_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = db_arg(dir.path());
    // The recorder saw the INS (9:50:00) and the DEL_C (10:00:30) of one state, and only the
    // DEL_C of another (evidence without keys); the snapshot of 10:00 holds both.
    let pcap = dir.path().join("before.pcap");
    capture(
        &pcap,
        &[
            (TAKEN - 600, vec![Message::Ins(sample_state(0))]),
            (
                TAKEN + 30,
                vec![
                    Message::DelC(r(0x3f_0000_0182, 0x5a3c_1e07)),
                    Message::DelC(r(0x3f_0000_0183, 0x5a3c_1e07)),
                ],
            ),
        ],
    );
    run_ok(&["import", "--db", &db, &pcap.display().to_string()]);
    let stats: Value =
        serde_json::from_str(&run_ok(&["stats", "--db", &db, "--json"])).expect("stats");
    assert_eq!(stats["evidence_only"], 1);
    let o = import_snapshot(&db, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let all = rows(&db);
    let a = &all[&("5a3c1e07".to_string(), "0000003f00000182".to_string())];
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["start"], "2025-03-14T09:50:00.000000Z");
    assert_eq!(a[0]["end"], "2025-03-14T10:00:30.000000Z");
    // The evidence row got its keys and start from the snapshot, and kept its end.
    let b = &all[&("5a3c1e07".to_string(), "0000003f00000183".to_string())];
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0]["private_ip"], "192.168.1.20");
    assert_eq!(b[0]["public_port"], 80);
    assert_eq!(b[0]["start"], "2025-03-14T09:59:55.000000Z");
    assert_eq!(b[0]["end"], "2025-03-14T10:00:30.000000Z");
    let stats: Value =
        serde_json::from_str(&run_ok(&["stats", "--db", &db, "--json"])).expect("stats");
    assert_eq!(stats["evidence_only"], 0);
    assert_eq!(stats["states"], 3);
}

/// The decoder's text output prints states as pfctl does: read back as a snapshot, every
/// fixture gives the same keys as importing the capture itself.
#[test]
fn decoded_fixtures_read_back_with_the_same_keys() {
    let fixtures = [
        "nat-outbound-l3-dlt246.pcap",
        "rdr-and-no-nat-l3-dlt18.pcap",
        "ipv6-icmp-l5-dlt246ip.pcap",
        "all-features-l5-ether.pcap",
        "ha-pair-clr-l5-ether.pcap",
        "freebsd-1400-ha-ether.pcap",
        "mixed-openbsd-freebsd-ether.pcap",
    ];
    let fields = [
        "private_ip",
        "private_port",
        "public_ip",
        "public_port",
        "remote_ip",
        "remote_port",
        "proto",
        "af",
        "direction",
        "ifname",
        "nat",
    ];
    for name in fixtures {
        let dir = tempfile::tempdir().expect("tempdir");
        let cap = fixture(name).display().to_string();
        let text = run_ok(&["decode", &cap]);
        // State blocks are tab-indented under each message: pfctl prints them flush left.
        // A state line is the one followed by its "age" line; the rest (message headers,
        // ids of compressed messages) is not pfctl output.
        let body: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix('\t')).collect();
        let mut snapshot = String::new();
        for (i, l) in body.iter().enumerate() {
            let next_is_age = body.get(i + 1).is_some_and(|n| n.starts_with("   age "));
            if next_is_age || l.starts_with("   ") {
                snapshot.push_str(l);
                snapshot.push('\n');
            }
        }
        let f = dir.path().join("snap.txt");
        std::fs::write(&f, &snapshot).expect("write");
        let snap_db = dir.path().join("snap.db").display().to_string();
        let cap_db = dir.path().join("cap.db").display().to_string();
        let o = run(&["import-pfctl", "--db", &snap_db, &f.display().to_string()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{name}: {err}");
        run_ok(&["import", "--db", &cap_db, &cap]);
        let (a, b) = (rows(&snap_db), rows(&cap_db));
        assert!(!a.is_empty(), "{name}: no state read back");
        let mut compared = 0;
        for (k, rs) in &a {
            let Some(cs) = b.get(k) else {
                panic!("{name}: {k:?} only in the snapshot");
            };
            for f in fields {
                assert_eq!(rs[0][f], cs[0][f], "{name} {k:?} {f}");
            }
            compared += 1;
        }
        assert!(compared > 0);
    }
}

/// `record --snapshot` where there is no pfctl: a warning, and recording goes on.
#[test]
fn record_snapshot_without_pfctl_warns_and_records() {
    if !nix::unistd::Uid::effective().is_root() || Path::new("/sbin/pfctl").exists() {
        eprintln!("skipped: needs root (live capture) and a system without pfctl");
        return;
    }
    if std::process::Command::new("pfctl")
        .arg("-h")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
    {
        eprintln!("skipped: pfctl is on PATH");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = db_arg(dir.path());
    let mut p = common::Proc::spawn(std::process::Command::new(common::bin()).args([
        "record",
        "--snapshot",
        "--no-syslog",
        "-v",
        "--db",
        &db,
        "lo",
    ]))
    .expect("spawn record");
    let ok = p.err.wait_for(std::time::Duration::from_secs(20), |seen| {
        seen.iter().any(|l| l.contains("recording pfsync on lo"))
    });
    assert!(ok, "{}", p.transcript());
    assert!(
        p.err
            .seen
            .iter()
            .any(|l| l.contains("pfctl is not available")),
        "{}",
        p.transcript()
    );
    p.signal(libc::SIGTERM);
    let st = p.wait_timeout(std::time::Duration::from_secs(20));
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{}", p.transcript());
}
