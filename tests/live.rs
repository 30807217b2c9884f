//! Live capture end to end, on a veth pair this test creates: one end stays in the root
//! network namespace, where `pfstatelog decode -i` / `record` capture; its peer lives in a
//! private network namespace, from where frames of tests/fixtures/ha-pair-clr-l5-ether.pcap
//! are sent with a raw AF_PACKET socket. Nothing is sent anywhere else.
//!
//! The oracle for what the recorder must log and store is `import` of the same frames: live
//! capture restamps packets with the current time, so only times differ.
//!
//! Needs root and `ip netns` (iproute2); otherwise each test prints why it is skipped and
//! passes, unless PFSTATELOG_REQUIRE_LIVE=1 (as in .ci/run), which makes that a failure.

mod common;

use common::live::{in_private_dev, setup, skip, start_recorder, Sender, Veth};
use common::{
    bin, fixture, imported_events, read_frames, run, run_ok, untimed_event, write_pcap, Proc,
};
use pfstatelog::source::Frame;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CAPTURE: &str = "ha-pair-clr-l5-ether";
const CREATORS: [&str; 2] = ["5a3c1e07", "8d2b6f10"];
/// Longest wait for anything to show up; each test still finishes in a few seconds.
const WAIT: Duration = Duration::from_secs(20);
/// SIGTERM to exit: the capture loop wakes up every 250 ms, then flushes.
const STOP: Duration = Duration::from_secs(8);

// ---------------------------------------------------------------------------------------
// Helpers on frames, decode output, the database.

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_micros() as i64
}

fn rfc3339_us(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s:?}: {e}"))
        .timestamp_micros()
}

/// A copy of an Ethernet/IPv4 frame with another TTL (and the header checksum fixed, unless
/// the sender left it zero).
fn with_ttl(f: &Frame, ttl: u8) -> Frame {
    let mut f = f.clone();
    let d = &mut f.data;
    assert_eq!(&d[12..14], &[0x08, 0x00], "not IPv4 over Ethernet");
    let ihl = (d[14] & 0x0f) as usize * 4;
    d[14 + 8] = ttl;
    if d[24..26] != [0, 0] {
        d[24..26].copy_from_slice(&[0, 0]);
        let mut sum: u32 = d[14..14 + ihl]
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        d[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    }
    f
}

/// `decode --format json` output as one group of messages per frame (frame numbers must
/// run 1, 2, ...), without the `ts` and `frame` fields; also returns the timestamps seen.
fn frame_groups(lines: &[String]) -> (Vec<Vec<Value>>, Vec<i64>) {
    let mut groups: Vec<Vec<Value>> = Vec::new();
    let mut ts = Vec::new();
    for l in lines {
        let mut v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
        let o = v.as_object_mut().expect("JSON object per line");
        let n = o.remove("frame").and_then(|n| n.as_u64()).expect("frame");
        let t = o.remove("ts").expect("ts");
        ts.push(rfc3339_us(t.as_str().expect("ts string")));
        if n as usize == groups.len() + 1 {
            groups.push(Vec::new());
        }
        assert_eq!(
            n as usize,
            groups.len(),
            "frame numbers out of order at {l}"
        );
        groups.last_mut().expect("group").push(v);
    }
    (groups, ts)
}

/// The frame groups of `decode FILE --format json`.
fn decode_file(p: &Path) -> Vec<Vec<Value>> {
    let out = run_ok(&["decode", "--format", "json", &p.display().to_string()]);
    let lines: Vec<String> = out.lines().map(String::from).collect();
    frame_groups(&lines).0
}

fn ids_with_action(group: &[Value], action: &str) -> BTreeSet<String> {
    group
        .iter()
        .filter(|m| m["action"] == action)
        .filter_map(|m| m["state_id"].as_str().map(String::from))
        .collect()
}

/// A JSON array printed by `who`/`history --format json` (exit 0, or 1 for no match).
fn json_rows(args: &[&str]) -> Vec<Value> {
    let o = run(args);
    let code = o.status.code();
    assert!(
        code == Some(0) || code == Some(1),
        "pfstatelog {args:?}: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let s = String::from_utf8_lossy(&o.stdout);
    if s.trim().is_empty() {
        return Vec::new();
    }
    match serde_json::from_str(&s) {
        Ok(Value::Array(a)) => a,
        other => panic!("pfstatelog {args:?}: not a JSON array: {other:?}"),
    }
}

/// Everything about a stored lifetime except its times, plus whether it is still open.
fn untimed_row(r: &Value) -> String {
    let mut o = serde_json::Map::new();
    for k in [
        "state_id",
        "creator_id",
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
        "end_reason",
        "packets",
        "bytes",
    ] {
        o.insert(k.into(), r[k].clone());
    }
    o.insert("open".into(), r["end"].is_null().into());
    Value::Object(o).to_string()
}

/// Rows as [`untimed_row`] gives them, as a set.
fn untimed(rows: &[Value]) -> BTreeSet<String> {
    rows.iter().map(untimed_row).collect()
}

/// Every lifetime in the database (IPv4 and IPv6), as full rows.
fn all_rows(db: &str) -> Vec<Value> {
    let mut v = json_rows(&[
        "history",
        "--db",
        db,
        "--host",
        "0.0.0.0/0",
        "--format",
        "json",
    ]);
    v.extend(json_rows(&[
        "history", "--db", db, "--host", "::/0", "--format", "json",
    ]));
    v
}

fn stats(db: &str) -> Value {
    serde_json::from_str(&run_ok(&["stats", "--db", db, "--json"])).expect("stats JSON")
}

/// Rows in the recorder's journal of journal states.
fn young_rows(db: &str) -> i64 {
    let c = pfstatelog::store::sqlite::pagesum::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open");
    c.query_row("SELECT count(*) FROM journal", [], |r| r.get(0))
        .expect("count")
}

fn state_ids(rows: &[Value]) -> BTreeSet<String> {
    rows.iter()
        .map(|r| r["state_id"].as_str().expect("state_id").to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------
// The recorder.

/// Wait until the recorder logged `n` state lines (on stderr with -v).
fn wait_events(p: &mut Proc, n: usize) {
    let ok = p.err.wait_for(WAIT, |s| {
        s.iter().filter_map(|l| untimed_event(l)).count() >= n
    });
    assert!(
        ok,
        "record logged fewer than {n} state lines:\n{}",
        p.transcript()
    );
}

// ---------------------------------------------------------------------------------------
// Tests.

/// `decode -i IFACE --format json --count N` prints, for each captured frame, exactly what
/// decoding the capture file prints (apart from the time), and exits by itself after N.
#[test]
fn decode_interface_prints_the_sent_messages() {
    const TEST: &str = "decode_interface_prints_the_sent_messages";
    let Some(link) = setup(TEST, 'd') else {
        return;
    };
    let path = fixture(&format!("{CAPTURE}.pcap"));
    let frames = read_frames(&path);
    let offline = decode_file(&path);
    assert_eq!(offline.len(), frames.len());
    const N: usize = 150;

    let t0 = now_us();
    let mut p = Proc::spawn(Command::new(bin()).args([
        "decode",
        "-i",
        &link.host,
        "--format",
        "json",
        "--count",
        &N.to_string(),
    ]))
    .expect("spawn decode");
    let tx = link.sender();
    probe(&mut p, &tx, &frames[0]);
    // Then the rest in order, until it has its N frames.
    for (i, f) in frames[1..].iter().enumerate() {
        if i % 8 == 0 && p.exited().is_some() {
            break;
        }
        tx.send(&f.data);
        std::thread::sleep(Duration::from_millis(1));
    }
    let status = p
        .wait_timeout(WAIT)
        .unwrap_or_else(|| panic!("decode -i --count {N} still running:\n{}", p.transcript()));
    p.out.drain(Duration::from_secs(5));
    p.err.drain(Duration::from_secs(5));
    let t1 = now_us();
    assert!(status.success(), "decode -i: {status}\n{}", p.transcript());

    let (live, ts) = frame_groups(&p.out.seen);
    assert_eq!(live.len(), N, "--count {N}:\n{}", p.transcript());
    // Live frames carry the capture time, not the file's.
    for t in ts {
        assert!(
            t0 - 1_000_000 <= t && t <= t1 + 1_000_000,
            "ts {t} not in [{t0}, {t1}]"
        );
    }
    // First the probes (copies of frame 1), then frames 2, 3, ... exactly as offline.
    let probes = live.iter().take_while(|g| **g == offline[0]).count();
    assert!(probes >= 1, "first frame decoded as {:?}", live[0]);
    for (i, g) in live.iter().enumerate().skip(probes) {
        let want = &offline[i - probes + 1];
        assert_eq!(
            g,
            want,
            "captured frame {} (file frame {})",
            i + 1,
            i - probes + 2
        );
    }
    // The state ids of the fixture, with their action names.
    let msgs: Vec<&Value> = live.iter().flatten().collect();
    for creator in CREATORS {
        assert!(
            msgs.iter()
                .any(|m| m["action"] == "INS" && m["creator_id"] == creator),
            "no INS from {creator}"
        );
    }
    for action in ["INS", "UPD_C", "DEL_C"] {
        assert!(
            msgs.iter()
                .any(|m| m["action"] == action
                    && m["state_id"].as_str().is_some_and(|s| s.len() == 16)),
            "no {action} with a state id"
        );
    }
    let first_ins = ids_with_action(&offline[0], "INS");
    assert!(!first_ins.is_empty());
    assert_eq!(ids_with_action(&live[0], "INS"), first_ins);
    let summary = p.err.seen.join("\n");
    assert!(
        summary.contains(&format!("{N} frames, {N} pfsync packets")),
        "{summary}"
    );

    // Without --count it runs until SIGTERM, which must work on a quiet link too.
    let mut p =
        Proc::spawn(Command::new(bin()).args(["decode", "-i", &link.host, "--format", "json"]))
            .expect("spawn decode");
    probe(&mut p, &tx, &frames[0]);
    std::thread::sleep(Duration::from_millis(500));
    let took = p.stop(STOP);
    assert!(
        p.err.seen.iter().any(|l| l.contains(" frames, ")),
        "no summary after SIGTERM:\n{}",
        p.transcript()
    );
    println!(
        "decode -i: {N} frames ({probes} probe copies of frame 1), {} messages; \
         quiet decode -i exited {took:?} after SIGTERM",
        msgs.len()
    );
}

/// `decode -i` says nothing until a frame arrives: send `frame` until it prints something.
fn probe(p: &mut Proc, tx: &Sender, frame: &Frame) {
    let what = "decode -i printing what it captured";
    let sent = |p: &mut Proc| {
        tx.send(&frame.data);
        p.out
            .wait_for(Duration::from_millis(200), |s| !s.is_empty())
    };
    p.poll_until(WAIT, what, sent, |_| {});
}

/// `record` on the interface while the whole capture is replayed: it logs and stores the
/// same lifetimes as `import` of the file (only times differ), and exits 0 on SIGTERM.
#[test]
fn record_interface_stores_what_import_stores() {
    const TEST: &str = "record_interface_stores_what_import_stores";
    let Some(link) = setup(TEST, 'r') else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = fixture(&format!("{CAPTURE}.pcap"));
    let frames = read_frames(&path);
    let ref_db = dir.path().join("import.db").display().to_string();
    let want_events = imported_events(&path, Path::new(&ref_db));
    assert!(
        want_events.len() > 200,
        "import logged {}",
        want_events.len()
    );
    let db = dir.path().join("live.db").display().to_string();

    let t0 = now_us();
    let mut p = start_recorder(&link.host, &db, &["--no-syslog"]);
    let tx = link.sender();
    let sent = Instant::now();
    tx.send_all(&frames);
    wait_events(&mut p, want_events.len());
    let processed = sent.elapsed();
    // Questions from the fixture's expected answers that do not depend on its times: who
    // held these public ip:port over the whole run, and a private host's history.
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture(&format!("{CAPTURE}.expected.json"))).expect("read"),
    )
    .expect("expected JSON");
    let mut per_public: BTreeMap<(String, u64), BTreeSet<String>> = BTreeMap::new();
    let mut per_private: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for q in expected["queries"].as_array().expect("queries") {
        for m in q["expected"].as_array().expect("expected") {
            let id = m["state_id"].as_str().expect("state_id").to_string();
            let key = (
                q["ip"].as_str().expect("ip").to_string(),
                q["port"].as_u64().expect("port"),
            );
            per_public.entry(key).or_default().insert(id.clone());
            let private = m["private_ip"].as_str().expect("private_ip").to_string();
            per_private.entry(private).or_default().insert(id);
        }
    }
    assert!(per_public.len() >= 4);
    let first = expected["first_packet"].as_str().expect("first_packet");
    let ask = |when: &str| {
        let now = format!("@{}", now_us() / 1_000_000);
        for ((ip, port), ids) in per_public.iter().take(8) {
            let port = port.to_string();
            let who = |db: &str, at: &str| {
                state_ids(&json_rows(&[
                    "who", "--db", db, "--ip", ip, "--port", &port, "--at", at, "--window", "1d",
                    "--format", "json",
                ]))
            };
            let live = who(&db, &now);
            assert!(
                live.is_superset(ids),
                "{when}: who {ip}:{port}: {live:?} lacks {ids:?}"
            );
            assert_eq!(live, who(&ref_db, first), "{when}: who {ip}:{port}");
        }
        for (host, ids) in per_private.iter().take(3) {
            let hist = |db: &str| {
                state_ids(&json_rows(&[
                    "history", "--db", db, "--host", host, "--format", "json",
                ]))
            };
            let live = hist(&db);
            assert!(
                live.is_superset(ids),
                "{when}: history {host}: {live:?} lacks {ids:?}"
            );
            assert_eq!(live, hist(&ref_db), "{when}: history {host}");
        }
    };
    // While it runs, within a minute of the states' start: the open ones are in the
    // recorder's journal, and every question gets the answer it gets from the import.
    let want_states = stats(&ref_db)["states"].clone();
    p.poll_until(
        Duration::from_secs(20),
        "the recorder's last commit",
        |_| stats(&db)["states"] == want_states,
        |p| p.err.drain(Duration::from_millis(200)),
    );
    assert!(young_rows(&db) > 0, "the open states are journal");
    ask("running");
    let took = p.stop(STOP);
    let t1 = now_us();

    let got: Vec<String> = p.err.seen.iter().filter_map(|l| untimed_event(l)).collect();
    assert_eq!(got, want_events, "state lines differ from import's");
    let opened = want_events
        .iter()
        .filter(|l| l.starts_with("start "))
        .count();
    let closed = want_events.len() - opened;
    let stopped = format!("stopped: {opened} states opened, {closed} closed this run");
    assert!(
        p.err.seen.contains(&stopped),
        "no {stopped:?}:\n{}",
        p.transcript()
    );

    // stats: the same states per creator; one record run that saw every frame.
    let (s, r) = (stats(&db), stats(&ref_db));
    assert!(s["states"].as_i64().unwrap_or(0) > 0);
    assert_eq!(s["states"], r["states"]);
    assert_eq!(s["open"], r["open"]);
    // What ended is packed, live as by an import: states keeps the open ones.
    let closed_n = s["states"].as_i64().unwrap_or(0) - s["open"].as_i64().unwrap_or(0);
    assert!(s["archived"].as_i64().unwrap_or(0) > 0, "{s}");
    assert!(s["archived"].as_i64().unwrap_or(0) <= closed_n, "{s}");
    let creators = |v: &Value| -> BTreeMap<String, Value> {
        v["creators"]
            .as_array()
            .expect("creators")
            .iter()
            .map(|c| {
                (
                    c["creator_id"].as_str().unwrap_or("").into(),
                    c["states"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(creators(&s), creators(&r));
    assert_eq!(
        creators(&s).keys().map(String::as_str).collect::<Vec<_>>(),
        CREATORS
    );
    let run0 = &s["runs"][0];
    assert_eq!(run0["kind"], "record", "{s}");
    assert_eq!(run0["source"], link.host.as_str());
    assert_eq!(run0["status"], "stopped");
    assert_eq!(run0["packets"], frames.len());
    assert_eq!(run0["messages"], r["runs"][0]["messages"]);
    assert_eq!(run0["skipped"], 0);
    assert_eq!(run0["drops"], 0);
    assert_eq!(run0["decode_errors"], 0);

    // Every lifetime, apart from its times, as import stored it; ends are live times.
    let live_rows = all_rows(&db);
    assert_eq!(untimed(&live_rows), untimed(&all_rows(&ref_db)));
    for row in &live_rows {
        let start = rfc3339_us(row["start"].as_str().expect("start"));
        if let Some(end) = row["end"].as_str() {
            let end = rfc3339_us(end);
            assert!(t0 <= end && end <= t1 && start <= end, "times of {row}");
        }
    }

    // The same answers once stopped, with the journal moved into states.
    ask("stopped");
    assert_eq!(young_rows(&db), 0, "a clean stop empties the journal");
    println!(
        "record: {} frames, {} state lines, processed {processed:?} after sending began, \
         exited {took:?} after SIGTERM",
        frames.len(),
        got.len()
    );
}

/// The recorder killed with -9 while its states are journal (in the journal): readers still
/// answer from the journal; a recorder started again carries on from it, and once the rest
/// of the capture is sent the database holds the lifetimes an import of the whole capture
/// holds. Lost states: none.
#[test]
fn record_killed_with_young_states_then_restarted_loses_none() {
    const TEST: &str = "record_killed_with_young_states_then_restarted_loses_none";
    let Some(link) = setup(TEST, 'k') else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = fixture(&format!("{CAPTURE}.pcap"));
    let frames = read_frames(&path);
    let ref_db = dir.path().join("import.db").display().to_string();
    imported_events(&path, Path::new(&ref_db));
    let db = dir.path().join("live.db").display().to_string();
    let half = frames.len() / 2;
    let tx = link.sender();
    // Frames the newest run has committed (its counters are written with every commit).
    let committed = |db: &str| stats(db)["runs"][0]["packets"].as_u64().unwrap_or(0);

    let mut p = start_recorder(&link.host, &db, &["--no-syslog"]);
    tx.send_all(&frames[..half]);
    p.poll_until(
        WAIT,
        "the first half committed",
        |_| committed(&db) == half as u64,
        |p| p.err.drain(Duration::from_millis(200)),
    );
    p.signal(libc::SIGKILL);
    assert!(p.wait_timeout(STOP).is_some(), "kill -9");
    let journaled = young_rows(&db);
    assert!(
        journaled > 0,
        "the killed recorder left its journal states in the journal"
    );
    let s = stats(&db);
    assert!(s["open"].as_i64().unwrap_or(0) >= journaled, "{s}");

    let mut p = start_recorder(&link.host, &db, &["--no-syslog"]);
    assert_eq!(young_rows(&db), 0, "the journal moved into states at start");
    tx.send_all(&frames[half..]);
    p.poll_until(
        WAIT,
        "the second half committed",
        |_| committed(&db) == (frames.len() - half) as u64,
        |p| p.err.drain(Duration::from_millis(200)),
    );
    p.stop(STOP);
    assert_eq!(
        untimed(&all_rows(&db)),
        untimed(&all_rows(&ref_db)),
        "after kill -9 and a restart, the lifetimes an import of the whole capture stores"
    );
}

/// A frame that did not come from the sync link (TTL 64, not 255) is not applied: its
/// states are not recorded, the packet counts as skipped and leaves a gap.
#[test]
fn record_interface_ignores_ttl_64() {
    const TEST: &str = "record_interface_ignores_ttl_64";
    let Some(link) = setup(TEST, 't') else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = fixture(&format!("{CAPTURE}.pcap"));
    let frames = read_frames(&path);
    let offline = decode_file(&path);
    // The untrusted copy: frame 1 (INS). The control, sent after it: the first frame with
    // INS that does not mention any state of frame 1.
    let bad_ids = ids_with_action(&offline[0], "INS");
    assert!(!bad_ids.is_empty());
    let mentions = |g: &[Value]| -> BTreeSet<String> {
        g.iter()
            .filter_map(|m| m["state_id"].as_str().map(String::from))
            .collect()
    };
    let ctrl = (1..offline.len())
        .find(|&i| {
            !ids_with_action(&offline[i], "INS").is_empty()
                && mentions(&offline[i]).is_disjoint(&bad_ids)
        })
        .expect("a control frame");
    let ctrl_ids = ids_with_action(&offline[ctrl], "INS");
    let send = [with_ttl(&frames[0], 64), frames[ctrl].clone()];
    let sub = dir.path().join("ttl.pcap");
    write_pcap(&sub, &send);
    let ref_db = dir.path().join("import.db").display().to_string();
    let want_events = imported_events(&sub, Path::new(&ref_db));
    assert!(!want_events.is_empty());

    let db = dir.path().join("live.db").display().to_string();
    let mut p = start_recorder(&link.host, &db, &["--no-syslog"]);
    link.sender().send_all(&send);
    wait_events(&mut p, want_events.len());
    p.stop(STOP);

    let got: Vec<String> = p.err.seen.iter().filter_map(|l| untimed_event(l)).collect();
    assert_eq!(got, want_events);
    let ids = state_ids(&all_rows(&db));
    assert_eq!(ids, ctrl_ids, "only the control frame's states");
    assert!(ids.is_disjoint(&bad_ids));
    let s = stats(&db);
    assert_eq!(s["states"], ctrl_ids.len(), "{s}");
    assert_eq!(s["runs"][0]["packets"], 2, "{s}");
    assert_eq!(s["runs"][0]["skipped"], 1, "{s}");
    assert!(s["gaps"].as_i64().unwrap_or(0) >= 1, "no bad-ttl gap: {s}");
}

/// Lines that reach syslog: `record` (without --no-syslog) runs in a private mount
/// namespace where /dev is a directory holding our datagram socket `log` (the technique of
/// src/syslog.rs's test, set up between fork and exec), so the host's syslog is untouched.
#[test]
fn record_interface_logs_to_syslog() {
    const TEST: &str = "record_interface_logs_to_syslog";
    let Some(link) = setup(TEST, 's') else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = fixture(&format!("{CAPTURE}.pcap"));
    let frames = read_frames(&path);
    let offline = decode_file(&path);
    // A few frames: frame 1, and the INS and DEL_C of the first state deleted by DEL_C.
    let (ins, del) = offline
        .iter()
        .enumerate()
        .find_map(|(j, g)| {
            ids_with_action(g, "DEL_C").into_iter().find_map(|id| {
                (0..j)
                    .find(|&i| ids_with_action(&offline[i], "INS").contains(&id))
                    .map(|i| (i, j))
            })
        })
        .expect("a state with INS and DEL_C");
    let mut picks = vec![0, ins, del];
    picks.dedup();
    let send: Vec<Frame> = picks.iter().map(|&i| frames[i].clone()).collect();

    let Some(daemon) = syslog_run(&link, dir.path(), "daemon", &send, 30) else {
        skip(TEST, "cannot create a private mount namespace");
        return;
    };
    // Their shape, as in src/report/line.rs.
    let starts: Vec<&String> = daemon.iter().filter(|l| l.starts_with("start ")).collect();
    let ends: Vec<&String> = daemon.iter().filter(|l| l.starts_with("end ")).collect();
    assert!(!starts.is_empty() && !ends.is_empty(), "{daemon:?}");
    for l in &starts {
        check_shape(l, "start", &["if=", "dir=", "start=", "id=", "creator="]);
    }
    for l in &ends {
        check_shape(
            l,
            "end",
            &[
                "if=",
                "dir=",
                "end=",
                "duration=",
                "pkts=",
                "bytes=",
                "reason=",
                "id=",
                "creator=",
            ],
        );
        assert!(l.contains(" reason=delete "), "{l}");
    }
    assert!(
        starts.iter().any(|l| l.contains(") -> ")),
        "no NAT state line with its public address: {starts:?}"
    );

    // Another facility: local3 | info = 19 * 8 + 6.
    syslog_run(&link, dir.path(), "local3", &send[..1], 158).expect("second mount namespace");
}

/// `start|end PROTO IP:PORT [(IP:PORT)] ->|<- IP:PORT k=v...` with the keys in order.
fn check_shape(line: &str, kind: &str, keys: &[&str]) {
    let t: Vec<&str> = line.split(' ').collect();
    assert_eq!(t[0], kind, "{line}");
    assert!(
        ["tcp", "udp", "icmp", "ipv6-icmp"].contains(&t[1]),
        "{line}"
    );
    let endpoint = |s: &str| {
        s.rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    };
    assert!(endpoint(t[2]), "{line}");
    let mut i = 3;
    if t[i].starts_with('(') {
        assert!(
            t[i].ends_with(')') && endpoint(&t[i][1..t[i].len() - 1]),
            "{line}"
        );
        i += 1;
    }
    assert!(t[i] == "->" || t[i] == "<-", "{line}");
    assert!(endpoint(t[i + 1]), "{line}");
    let rest = &t[i + 2..];
    assert_eq!(rest.len(), keys.len(), "{line}");
    for (tok, key) in rest.iter().zip(keys) {
        assert!(tok.starts_with(key), "{line}: {key} expected, got {tok}");
        let v = &tok[key.len()..];
        let ok = match *key {
            "start=" | "end=" => chrono::DateTime::parse_from_rfc3339(v).is_ok(),
            "id=" => v.len() == 16 && v.bytes().all(|b| b.is_ascii_hexdigit()),
            "creator=" => CREATORS.contains(&v),
            "pkts=" | "bytes=" => v
                .split_once(':')
                .is_some_and(|(a, b)| a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok()),
            "dir=" => v == "in" || v == "out",
            _ => !v.is_empty(),
        };
        assert!(ok, "{line}: bad {key}{v}");
    }
}

/// One `record --syslog-facility FACILITY` run in a private mount namespace while `send`
/// is replayed; checks every datagram (priority `pri`, tag `pfstatelog[PID]`, the same state
/// lines as `import -v`) and returns the messages. None: no mount namespace here.
fn syslog_run(
    link: &Veth,
    tmp: &Path,
    facility: &str,
    send: &[Frame],
    pri: u32,
) -> Option<Vec<String>> {
    let work = tmp.join(facility);
    let devdir = work.join("dev");
    std::fs::create_dir_all(&devdir).expect("mkdir");
    let sock = UnixDatagram::bind(devdir.join("log")).expect("bind log socket");
    let sub = work.join("sent.pcap");
    write_pcap(&sub, send);
    let want_events = imported_events(&sub, &work.join("import.db"));
    assert!(!want_events.is_empty());
    let db = work.join("live.db").display().to_string();

    let mut cmd = Command::new(bin());
    cmd.args([
        "record",
        "--db",
        &db,
        "--syslog-facility",
        facility,
        &link.host,
    ]);
    in_private_dev(&mut cmd, &devdir);
    let mut p = match Proc::spawn(&mut cmd) {
        Ok(p) => p,
        Err(e) => {
            println!("record in a private mount namespace: {e}");
            return None;
        }
    };
    let pid = p.pid();
    let tag = format!(" pfstatelog[{pid}]: ");
    let mut got: Vec<String> = Vec::new();
    let mut buf = vec![0u8; 8192];
    // One datagram per call; all of them are checked as they arrive.
    let mut recv = |p: &mut Proc, timeout: Duration| -> Option<String> {
        sock.set_read_timeout(Some(timeout)).expect("timeout");
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(_) => return None,
        };
        let d = String::from_utf8_lossy(&buf[..n]).into_owned();
        let want = format!("<{pri}>");
        assert!(d.starts_with(&want), "{d:?} should start with {want}");
        let at = d
            .find(&tag)
            .unwrap_or_else(|| panic!("{d:?} lacks {tag:?}:\n{}", p.transcript()));
        Some(d[at + tag.len()..].to_string())
    };
    let deadline = Instant::now() + WAIT;
    // The first line comes once capture is set up.
    let first = |p: &mut Proc| match recv(p, Duration::from_millis(200)) {
        Some(m) => {
            assert!(m.starts_with("recording pfsync on "), "{m}");
            got.push(m);
            true
        }
        None => false,
    };
    p.poll_until(WAIT, "record's first syslog line", first, |_| {});
    link.sender().send_all(send);
    while got.iter().filter_map(|l| untimed_event(l)).count() < want_events.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "too few lines {got:?}:\n{}",
            p.transcript()
        );
        if let Some(m) = recv(&mut p, left.min(Duration::from_millis(500))) {
            got.push(m);
        }
    }
    p.stop(STOP);
    while let Some(m) = recv(&mut p, Duration::from_millis(500)) {
        let last = m.starts_with("stopped: ");
        got.push(m);
        if last {
            break;
        }
    }
    let events: Vec<String> = got.iter().filter_map(|l| untimed_event(l)).collect();
    assert_eq!(events, want_events, "{facility}: state lines");
    let opened = events.iter().filter(|l| l.starts_with("start ")).count();
    assert_eq!(
        got.last().map(String::as_str),
        Some(
            format!(
                "stopped: {opened} states opened, {} closed this run",
                events.len() - opened
            )
            .as_str()
        ),
        "{got:?}"
    );
    // Nothing but info lines went to syslog, and nothing of it to stderr (no -v).
    assert!(p.err.seen.is_empty(), "stderr without -v: {:?}", p.err.seen);
    println!(
        "syslog {facility}: {} datagrams, e.g. {:?}",
        got.len(),
        got.get(1)
    );
    Some(got)
}

/// Ethernet/IPv4 frames (protocol 240, TTL 255, as pfsync sends them) carrying the pfsync
/// packets of a LINKTYPE_PFSYNC capture; headers copied from the fixture's first frame.
fn on_ethernet(pfsync: &[Frame]) -> Vec<Frame> {
    let template = &read_frames(&fixture(&format!("{CAPTURE}.pcap")))[0];
    let d = &template.data;
    let ihl = (d[14] & 0x0f) as usize * 4;
    pfsync
        .iter()
        .map(|f| {
            let mut data = d[..14 + ihl].to_vec();
            data.extend_from_slice(&f.data);
            let total = (ihl + f.data.len()) as u16;
            data[16..18].copy_from_slice(&total.to_be_bytes());
            data[24..26].copy_from_slice(&[0, 0]);
            let mut sum: u32 = data[14..14 + ihl]
                .chunks(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                .sum();
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            data[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
            Frame {
                ts_us: f.ts_us,
                linktype: 1,
                orig_len: data.len() as u32,
                data,
            }
        })
        .collect()
}

/// `export --format json` of every lifetime, without the fields that carry times (live
/// capture restamps packets), sorted.
fn exported_untimed(db: &str) -> Vec<String> {
    let out = run_ok(&[
        "export",
        "--db",
        db,
        "--from",
        "@0",
        "--to",
        "@4102444800",
        "--format",
        "json",
    ]);
    let mut v: Vec<String> = out
        .lines()
        .filter_map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("export JSON line");
            let o = v.as_object_mut()?;
            o.get("state_id")?;
            o.retain(|k, _| {
                ![
                    "start", "end", "first", "last", "updated", "duration", "expire",
                ]
                .iter()
                .any(|t| k.contains(t))
            });
            Some(v.to_string())
        })
        .collect();
    v.sort();
    v
}

/// `record --max-open 1000` under a flood of 3,500 INS with unique ids: the longest idle
/// leave memory, and their later DEL_C, and a CLR for the rest, end them in the store as
/// `import` of the same frames without a cap does.
#[test]
fn record_max_open_evicts_and_stores_what_import_stores() {
    use pfstatelog::model::{Af, Direction, FullState, Key, StateRef};
    use pfstatelog::wire::{Clr, Message};
    const TEST: &str = "record_max_open_evicts_and_stores_what_import_stores";
    let Some(link) = setup(TEST, 'm') else {
        return;
    };
    let creator = 0x5a3c_1e07u32;
    let ip = |s: &str| -> std::net::IpAddr { s.parse().expect("address") };
    let state = |id: u64| FullState {
        id,
        creator_id: creator,
        ifname: "em0".into(),
        key: [
            Key {
                addr: [ip("93.184.216.34"), ip("203.0.113.1")],
                port: [443, 20_000 + id as u16],
                rdomain: 0,
                af: Af::Inet,
            },
            Key {
                addr: [ip("93.184.216.34"), ip("192.168.1.10")],
                port: [443, 10_000 + id as u16],
                rdomain: 0,
                af: Af::Inet,
            },
        ],
        proto: 6,
        af: Af::Inet,
        direction: Direction::Out,
        creation: 0,
        expire: 86_400,
        packets: [1, 1],
        bytes: [60, 60],
        rule: 1,
        timeout: 2,
        peer_state: [4, 4],
    };
    let (n, deleted) = (3_500u64, 3_000u64);
    let t0 = 1_700_000_000i64;
    let mut packets = Vec::new();
    for ids in (1..=n).collect::<Vec<_>>().chunks(4) {
        let ins = ids.iter().map(|&id| Message::Ins(state(id))).collect();
        packets.push((t0, ins));
    }
    for ids in (1..=deleted).collect::<Vec<_>>().chunks(10) {
        let del = ids
            .iter()
            .map(|&id| {
                Message::DelC(StateRef {
                    id,
                    creator_id: creator,
                })
            })
            .collect();
        packets.push((t0 + 1, del));
    }
    packets.push((
        t0 + 2,
        vec![Message::Clr(Clr {
            creator_id: creator,
            ifname: "".into(),
        })],
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let pfsync = dir.path().join("flood-pfsync.pcap");
    common::pfsync_capture(&pfsync, &packets);
    let frames = on_ethernet(&read_frames(&pfsync));
    let cap = dir.path().join("flood.pcap");
    write_pcap(&cap, &frames);
    let ref_db = dir.path().join("import.db").display().to_string();
    run_ok(&["import", "--db", &ref_db, &cap.display().to_string()]);
    let want = exported_untimed(&ref_db);
    assert_eq!(want.len(), n as usize);

    let db = dir.path().join("live.db").display().to_string();
    let mut p = start_recorder(&link.host, &db, &["--no-syslog", "--max-open", "1000"]);
    link.sender().send_all(&frames);
    wait_events(&mut p, (2 * n) as usize);
    p.stop(STOP);
    let log = p.transcript();
    let evicted = log
        .lines()
        .find_map(|l| l.split_once(" idle open states evicted from memory (--max-open)"))
        .and_then(|(before, _)| before.split_whitespace().last()?.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(evicted > 0, "no eviction said:\n{log}");
    assert_eq!(exported_untimed(&db), want, "{log}");
}

/// `record --ship-to`: a state started on the wire is answered by `who` from the central
/// server within 10 s, while it is still open (shipped from the recorder's journal).
#[test]
fn record_ship_to_answers_a_new_state_centrally_within_10_s() {
    const TEST: &str = "record_ship_to_answers_a_new_state_centrally_within_10_s";
    let Some(link) = setup(TEST, 's') else {
        return;
    };
    let Some(srv) = common::clickhouse::start(TEST) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{}\n", common::clickhouse::PASSWORD)).expect("password file");
    let frames = read_frames(&fixture(&format!("{CAPTURE}.pcap")));
    let first_ins = decode_file(&fixture(&format!("{CAPTURE}.pcap")))
        .iter()
        .position(|g| !ids_with_action(g, "INS").is_empty())
        .expect("a frame with INS");
    let db = dir.path().join("live.db").display().to_string();
    let url = srv.url("pf");
    let mut p = start_recorder(
        &link.host,
        &db,
        &[
            "--no-syslog",
            "--ship-to",
            &url,
            "--name",
            "fw-log",
            "--password-file",
            pw.to_str().expect("utf-8 path"),
        ],
    );
    let sent = Instant::now();
    link.sender().send_all(&frames[..=first_ins]);
    // Which state it was (times are restamped live): the local file says.
    let mut local: Vec<Value> = Vec::new();
    p.poll_until(
        WAIT,
        "the new state stored locally",
        |_| {
            local = all_rows(&db)
                .into_iter()
                .filter(|r| r["end"].is_null())
                .collect();
            !local.is_empty()
        },
        |p| p.err.drain(Duration::from_millis(100)),
    );
    let l = local[0].clone();
    let ask = || -> Vec<Value> {
        let o = Command::new(bin())
            .args([
                "who",
                "--db",
                &url,
                "--ip",
                l["public_ip"].as_str().unwrap_or_default(),
                "--port",
                &l["public_port"].to_string(),
                "--at",
                l["start"].as_str().unwrap_or_default(),
                "--format",
                "json",
            ])
            .env(
                "PFSTATELOG_CLICKHOUSE_PASSWORD",
                common::clickhouse::PASSWORD,
            )
            .output()
            .expect("who");
        serde_json::from_slice(&o.stdout).unwrap_or_default()
    };
    let mut answered = false;
    while sent.elapsed() < Duration::from_secs(10) {
        if ask().iter().any(|r| r["state_id"] == l["state_id"]) {
            answered = true;
            break;
        }
        p.err.drain(Duration::from_millis(200));
    }
    let took = sent.elapsed();
    assert!(
        answered,
        "not answered centrally within 10 s of the frame (asked for {l})\n{}",
        p.transcript()
    );
    p.stop(STOP);
    assert!(
        !p.err.seen.iter().any(|x| x.contains("cannot ship")),
        "{}",
        p.transcript()
    );
    eprintln!("answered centrally {took:?} after the frame was sent");
}
