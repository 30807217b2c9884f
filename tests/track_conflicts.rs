//! Conflicting full states under one open (creator, id), the cap on open states in memory
//! (`--max-open`), and `stats` counts that add up: through the built binary, on real
//! capture files and databases.

mod common;

use common::{pfsync_capture, run, run_ok};
use pfstatelog::model::{Af, Direction, FullState, Key, StateRef};
use pfstatelog::wire::Message;
use serde_json::Value;
use std::net::IpAddr;

const CREATOR: u32 = 0x5a3c_1e07;
/// 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// An outbound NAT state: private:pport -> public:port -> 93.184.216.34:443.
fn nat(id: u64, private: &str, pport: u16, port: u16) -> FullState {
    FullState {
        id,
        creator_id: CREATOR,
        ifname: "em0".into(),
        key: [
            Key {
                addr: [ip("93.184.216.34"), ip("203.0.113.1")],
                port: [443, port],
                rdomain: 0,
                af: Af::Inet,
            },
            Key {
                addr: [ip("93.184.216.34"), ip(private)],
                port: [443, pport],
                rdomain: 0,
                af: Af::Inet,
            },
        ],
        af: Af::Inet,
        proto: 6,
        direction: Direction::Out,
        creation: 0,
        expire: 86400,
        packets: [1, 2],
        bytes: [3, 4],
        rule: 1,
        timeout: 2,
        peer_state: [4, 4],
    }
}

fn del_c(id: u64) -> Message {
    Message::DelC(StateRef {
        id,
        creator_id: CREATOR,
    })
}

fn rfc(t: i64) -> String {
    pfstatelog::time::format_rfc3339(t * 1_000_000)
}

/// `who` for 203.0.113.1:port at `at` (seconds), as JSON rows.
fn who(db: &str, port: u16, at: i64) -> Vec<Value> {
    let o = run(&[
        "who",
        "--db",
        db,
        "--ip",
        "203.0.113.1",
        "--port",
        &port.to_string(),
        "--at",
        &rfc(at),
        "--window",
        "0",
        "--format",
        "json",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    if out.trim().is_empty() {
        return Vec::new();
    }
    serde_json::from_str::<Vec<Value>>(&out).unwrap_or_else(|e| panic!("who json: {e}: {out}"))
}

fn import(db: &str, cap: &std::path::Path, extra: &[&str]) -> String {
    let cap = cap.display().to_string();
    let mut args = vec!["import", "--db", db];
    args.extend_from_slice(extra);
    args.push(&cap);
    let o = run(&args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "import failed: {err}");
    err
}

/// The number before `label` in `text`.
fn number_before(text: &str, label: &str) -> u64 {
    let at = text
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in {text}"));
    text[..at]
        .trim_end()
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number before {label:?} in {text}"))
}

/// The number after `label` in `text`.
fn number_after(text: &str, label: &str) -> u64 {
    let at = text
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in {text}"))
        + label.len();
    text[at..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {label:?} in {text}"))
}

fn stats(db: &str) -> String {
    run_ok(&["stats", "--db", db])
}

/// K1 (192.168.1.10:51234 as 203.0.113.1:61234) from t1 to t2, K2 (192.168.1.20:40000 as
/// 203.0.113.1:62000) from t2 to t3, both state id 7.
fn assert_replaced(db: &str) {
    let (t1, t2, t3) = (T0, T0 + 100, T0 + 200);
    let k1 = who(db, 61234, t1 + 50);
    assert_eq!(k1.len(), 1, "K1 during its lifetime: {k1:?}");
    assert_eq!(k1[0]["private_ip"], "192.168.1.10");
    assert_eq!(k1[0]["end"], rfc(t2));
    assert_eq!(k1[0]["end_reason"], "replaced");
    assert!(who(db, 61234, t2 + 50).is_empty(), "K1 ended at t2");
    let k2 = who(db, 62000, t2 + 50);
    assert_eq!(k2.len(), 1, "K2 during its lifetime: {k2:?}");
    assert_eq!(k2[0]["private_ip"], "192.168.1.20");
    assert_eq!(k2[0]["start"], rfc(t2));
    assert_eq!(k2[0]["end"], rfc(t3));
    assert_eq!(k2[0]["end_reason"], "delete");
    assert!(who(db, 62000, t1 + 50).is_empty(), "K2 began at t2");
    let s = stats(db);
    assert_eq!(number_after(&s, "replaced"), 1, "{s}");
}

#[test]
fn an_ins_with_other_keys_ends_the_open_lifetime_as_replaced() {
    let dir = tempfile::tempdir().expect("tmp");
    let cap = dir.path().join("conflict.pcap");
    pfsync_capture(
        &cap,
        &[
            (T0, vec![Message::Ins(nat(7, "192.168.1.10", 51234, 61234))]),
            // The same keys again (a retransmit): nothing ends.
            (
                T0 + 10,
                vec![Message::Ins(nat(7, "192.168.1.10", 51234, 61234))],
            ),
            (
                T0 + 100,
                vec![Message::Ins(nat(7, "192.168.1.20", 40000, 62000))],
            ),
            (T0 + 200, vec![del_c(7)]),
        ],
    );
    let db = dir.path().join("t.db").display().to_string();
    let err = import(&db, &cap, &["-v"]);
    assert_eq!(
        number_after(&err, "replaced by another state under their id"),
        1,
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("end tcp 192.168.1.10:51234") && l.contains("reason=replaced")),
        "the replacement is logged as an end: {err}"
    );
    assert_replaced(&db);
    // A re-import changes nothing.
    import(&db, &cap, &[]);
    assert_replaced(&db);
}

#[test]
fn an_ins_with_other_keys_replaces_a_lifetime_stored_open_by_an_earlier_import() {
    let dir = tempfile::tempdir().expect("tmp");
    let first = dir.path().join("first.pcap");
    let second = dir.path().join("second.pcap");
    pfsync_capture(
        &first,
        &[(T0, vec![Message::Ins(nat(7, "192.168.1.10", 51234, 61234))])],
    );
    pfsync_capture(
        &second,
        &[
            (
                T0 + 100,
                vec![Message::Ins(nat(7, "192.168.1.20", 40000, 62000))],
            ),
            (T0 + 200, vec![del_c(7)]),
        ],
    );
    let db = dir.path().join("t.db").display().to_string();
    import(&db, &first, &[]);
    let err = import(&db, &second, &[]);
    assert_eq!(
        number_after(&err, "replaced by another state under their id"),
        1,
        "{err}"
    );
    assert_replaced(&db);
}

/// The numbers of a `stats` line: the first, then those in its parentheses.
fn total_and_parts(line: &str) -> (u64, Vec<u64>) {
    let nums = |s: &str| -> Vec<u64> {
        s.split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect()
    };
    let (head, rest) = line.split_once('(').unwrap_or((line, ""));
    let inside = rest.split_once(')').map_or(rest, |(i, _)| i);
    let total = nums(head)
        .first()
        .copied()
        .unwrap_or_else(|| panic!("{line}"));
    (total, nums(inside))
}

#[test]
fn stats_counts_add_up_on_the_sample() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("t.db").display().to_string();
    let sample =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sample-ha-pair.pcap");
    import(&db, &sample, &[]);
    let s = stats(&db);
    let line = s
        .lines()
        .find(|l| l.starts_with("states "))
        .unwrap_or_else(|| panic!("no states line: {s}"));
    let (total, parts) = total_and_parts(line);
    assert!(parts.len() >= 3, "open, archived and the rest: {line}");
    assert_eq!(parts.iter().sum::<u64>(), total, "{line}");
    let by_creator: u64 = s
        .lines()
        .filter(|l| l.starts_with("creator "))
        .map(|l| number_before(l, " states,"))
        .sum();
    assert_eq!(by_creator, total, "{s}");
}

/// Every lifetime `export` gives, one JSON line each (without the header and the end).
fn exported(db: &str) -> Vec<String> {
    let out = run_ok(&[
        "export",
        "--db",
        db,
        "--from",
        &rfc(T0 - 3600),
        "--to",
        &rfc(T0 + 3600),
        "--format",
        "json",
    ]);
    out.lines()
        .filter(|l| !l.starts_with("{\"pfstatelog_export"))
        .map(str::to_string)
        .collect()
}

#[test]
fn max_open_evicts_idle_states_and_every_lifetime_still_ends() {
    let dir = tempfile::tempdir().expect("tmp");
    let cap = dir.path().join("flood.pcap");
    let n: u64 = 5_000;
    let mut packets = Vec::new();
    for chunk in (1..=n).collect::<Vec<_>>().chunks(10) {
        let t = T0 + chunk[0] as i64 / 10;
        let ins = chunk
            .iter()
            .map(|&id| {
                Message::Ins(nat(
                    id,
                    "192.168.1.10",
                    10_000 + id as u16,
                    20_000 + id as u16,
                ))
            })
            .collect();
        packets.push((t, ins));
    }
    for chunk in (1..=n).collect::<Vec<_>>().chunks(10) {
        let t = T0 + 1_000 + chunk[0] as i64 / 10;
        packets.push((t, chunk.iter().map(|&id| del_c(id)).collect()));
    }
    pfsync_capture(&cap, &packets);
    let capped = dir.path().join("capped.db").display().to_string();
    let whole = dir.path().join("whole.db").display().to_string();
    let err = import(&capped, &cap, &["--max-open", "1000"]);
    import(&whole, &cap, &[]);
    let evicted = number_after(&err, "evicted from memory (--max-open)");
    assert!(evicted > 0, "{err}");
    assert_eq!(number_after(&err, "open now"), 0, "{err}");
    assert_eq!(number_after(&err, "unknown-state messages"), 0, "{err}");
    let (a, b) = (exported(&capped), exported(&whole));
    assert_eq!(a.len(), n as usize);
    assert_eq!(a, b, "the same lifetimes with and without the cap");
    assert!(a.iter().all(|l| l.contains("\"end_reason\":\"delete\"")));
}
