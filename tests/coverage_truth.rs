//! "Never silent when blind": an empty answer is only trusted where the recorder was
//! watching. Each test builds a database the way a user would (real captures, the real
//! binary, real kills) and checks that `who` warns and its `json-report` says `complete:
//! false` wherever lifetimes may be missing.

mod common;

use common::live::{setup, start_recorder};
use common::{bin, read_frames, run, run_ok, write_pcap, Proc};
use pfstatelog_bench::gen::{write_capture, GenConfig};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Longest wait for anything to show up.
const WAIT: Duration = Duration::from_secs(60);

fn stats(db: &str) -> Value {
    serde_json::from_str(&run_ok(&["stats", "--db", db, "--json"])).expect("stats JSON")
}

/// `who … --format json-report` at `at` (µs): the report and what went to stderr.
fn who_report(db: &str, at_us: i64) -> (Value, String) {
    let at = chrono::DateTime::from_timestamp_micros(at_us)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let o = run(&[
        "who",
        "--db",
        db,
        "--ip",
        "192.0.2.254",
        "--port",
        "1",
        "--at",
        &at,
        "--format",
        "json-report",
    ]);
    assert!(
        o.status.code().is_some_and(|c| c <= 1),
        "who: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).expect("json-report");
    (v, String::from_utf8_lossy(&o.stderr).into_owned())
}

fn gap_kinds(report: &Value) -> Vec<String> {
    report["coverage"]["gaps"]
        .as_array()
        .map(|g| {
            g.iter()
                .filter_map(|g| g["kind"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A small generated capture (states from DEFAULT_START_US, early 2026), its frames.
fn small_capture(dir: &Path) -> Vec<pfstatelog::source::Frame> {
    let p = dir.join("gen.pcap");
    let cfg = GenConfig {
        states: 2_000,
        rate: 100.0,
        ..GenConfig::default()
    };
    let f = std::fs::File::create(&p).expect("create");
    write_capture(&cfg, std::io::BufWriter::new(f), 1).expect("write capture");
    read_frames(&p)
}

/// Defect 5: one frame dated 2100 in a 2026 capture must not make the database claim it
/// watched 2026–2100.
#[test]
fn a_frame_dated_2100_does_not_cover_the_years_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut frames = small_capture(dir.path());
    let mid = frames.len() / 2;
    let y2100 = 4_102_444_800_000_000; // 2100-01-01T00:00:00Z
    frames[mid].ts_us = y2100;
    let cap = dir.path().join("jump.pcap");
    write_pcap(&cap, &frames);
    let db = dir.path().join("t.db").display().to_string();
    let o = run(&["import", "--db", &db, &cap.display().to_string()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = String::from_utf8_lossy(&o.stderr);
    assert!(
        summary.contains("time jumps 1"),
        "import summary: {summary}"
    );

    let y2027 = 1_814_400_000_000_000; // 2027-06-30
    let (r, err) = who_report(&db, y2027);
    assert_eq!(r["coverage"]["complete"], false, "{r}");
    assert!(gap_kinds(&r).contains(&"time-jump".to_string()), "{r}");
    assert!(err.contains("warning"), "who must warn on stderr: {err}");
    assert_eq!(stats(&db)["time_jumps"], 1);

    // The capture's real span is still covered.
    let inside = frames[mid / 2].ts_us;
    let (r, _) = who_report(&db, inside);
    assert_eq!(r["coverage"]["complete"], true, "{r}");
}

/// Defect 4: an import killed part-way must not vouch for time whose lifetimes it still
/// held in memory: its range is a gap until it is imported again.
#[test]
fn an_import_killed_midway_claims_no_coverage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = dir.path().join("big.pcap");
    let cfg = GenConfig {
        states: 600_000,
        ..GenConfig::default()
    };
    let f = std::fs::File::create(&cap).expect("create");
    write_capture(&cfg, std::io::BufWriter::new(f), 1).expect("write capture");
    let db = dir.path().join("t.db").display().to_string();
    let cap_s = cap.display().to_string();
    let mut p = Proc::spawn(Command::new(bin()).args(["import", "--db", &db, &cap_s]))
        .expect("spawn import");
    // Kill it once a commit has stored part of its range.
    let claimed = |db: &str| -> Option<(i64, i64)> {
        let c = pfstatelog::store::sqlite::pagesum::open_with_flags(
            db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .ok()?;
        c.query_row(
            "SELECT first_us, last_us FROM runs WHERE first_us IS NOT NULL AND status = 'running'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ok()
    };
    p.poll_until(
        WAIT,
        "a first commit of the import",
        |_| claimed(&db).is_some_and(|(a, b)| b > a),
        |p| p.err.drain(Duration::from_millis(20)),
    );
    p.signal(libc::SIGKILL);
    assert!(p.wait_timeout(WAIT).is_some(), "kill -9");
    let (first, last) = claimed(&db).expect("the killed import's range");
    let s = stats(&db);
    assert_eq!(s["runs"][0]["status"], "abnormal", "{s}");
    for at in [first, (first + last) / 2, last] {
        let (r, err) = who_report(&db, at);
        assert_eq!(r["coverage"]["complete"], false, "{r}");
        assert!(
            gap_kinds(&r).contains(&"import-unfinished".to_string()),
            "{r}"
        );
        assert!(err.contains("warning"), "{err}");
    }
    // Imported again, whole: covered.
    run_ok(&["import", "--db", &db, &cap_s]);
    let (r, _) = who_report(&db, (first + last) / 2);
    assert_eq!(r["coverage"]["complete"], true, "{r}");
}

/// Defect 3: a recorder killed with SIGKILL does not stay "running": readers see it ended
/// abnormally at its last commit with nothing watched after it; the next writer marks it so.
#[test]
fn a_recorder_killed_with_sigkill_ended_abnormally() {
    const TEST: &str = "a_recorder_killed_with_sigkill_ended_abnormally";
    let Some(link) = setup(TEST, 'a') else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("live.db").display().to_string();
    let start = |db: &str| start_recorder(&link.host, db, &["--no-syslog"]);
    let mut p = start(&db);
    let last = |db: &str| -> Option<i64> {
        let c = pfstatelog::store::sqlite::pagesum::open_with_flags(
            db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .ok()?;
        c.query_row(
            "SELECT last_us FROM runs WHERE status = 'running' AND last_us > first_us",
            [],
            |r| r.get(0),
        )
        .ok()
    };
    p.poll_until(
        WAIT,
        "a heartbeat commit",
        |_| last(&db).is_some(),
        |p| p.err.drain(Duration::from_millis(100)),
    );
    let s = stats(&db);
    assert_eq!(s["runs"][0]["status"], "running", "alive: {s}");
    p.signal(libc::SIGKILL);
    assert!(p.wait_timeout(WAIT).is_some(), "kill -9");
    let ended = last(&db).expect("the killed run's last commit");

    // A reader (read-only) sees it ended abnormally, and blind after it.
    let s = stats(&db);
    assert_eq!(s["runs"][0]["status"], "abnormal", "{s}");
    let text = run_ok(&["stats", "--db", &db]);
    assert!(text.contains("ended abnormally"), "{text}");
    let (r, err) = who_report(&db, ended + 2_000_000);
    assert_eq!(r["coverage"]["complete"], false, "{r}");
    assert!(gap_kinds(&r).contains(&"abnormal-end".to_string()), "{r}");
    assert!(err.contains("ended abnormally"), "{err}");

    // The next writer writes it so.
    let mut p = start(&db);
    p.stop(WAIT);
    let c = pfstatelog::store::sqlite::pagesum::open_with_flags(
        &db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open");
    let statuses: Vec<String> = c
        .prepare("SELECT status FROM runs ORDER BY id")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    assert_eq!(statuses, ["abnormal", "stopped"]);
    // Between the killed run's last commit and the next run: a gap.
    let (r, _) = who_report(&db, ended + 1);
    assert!(gap_kinds(&r).contains(&"abnormal-end".to_string()), "{r}");
}

/// Packets lost while the recorder could not read (stopped with SIGSTOP, its small ring
/// full): the drop gap covers the time they were sent, not the moment the drop counter was
/// next read and processed (seconds later), so `who` at that time warns.
#[test]
fn a_drop_gap_covers_the_time_of_the_lost_packets() {
    const TEST: &str = "a_drop_gap_covers_the_time_of_the_lost_packets";
    let Some(link) = setup(TEST, 'p') else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("live.db").display().to_string();
    let frames = read_frames(&common::fixture("ha-pair-clr-l5-ether.pcap"));
    let mut p = start_recorder(&link.host, &db, &["--no-syslog", "--pcap-buffer-mib", "1"]);
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_micros() as i64
    };
    // A 1 MiB ring holds a few hundred packets; 6,000 overflow it while nobody reads.
    p.signal(libc::SIGSTOP);
    let sender = link.sender();
    let sent_from = now();
    sender.send_all(frames.iter().cycle().take(6_000));
    let sent_to = now();
    // Long enough that a gap stamped at processing time (its reading minus 5 s) would miss
    // every lost packet.
    std::thread::sleep(Duration::from_secs(7));
    p.signal(libc::SIGCONT);
    assert!(
        p.err
            .wait_for(WAIT, |s| s.iter().any(|l| l.contains("libpcap dropped"))),
        "no drops reported:\n{}",
        p.transcript()
    );
    p.stop(WAIT);
    for at in [sent_from, (sent_from + sent_to) / 2, sent_to] {
        let (r, err) = who_report(&db, at);
        assert_eq!(r["coverage"]["complete"], false, "at {at}: {r}");
        assert!(gap_kinds(&r).contains(&"pcap-drop".to_string()), "{r}");
        assert!(err.contains("warning"), "at {at}: {err}");
    }
}

/// A damaged frame in a capture is a blind spot: `who` at its time warns and its report is
/// incomplete, while a time of clean traffic in the same capture is complete.
#[test]
fn a_damaged_frame_is_a_gap_who_warns_about() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("h.db").display().to_string();
    let cap = common::fixture("hostile-l5-ether.pcap")
        .display()
        .to_string();
    run_ok(&["import", "--db", &db, &cap]);
    let decoded = run_ok(&["decode", "--format", "json", &cap]);
    let times = |damaged: bool| -> Vec<i64> {
        decoded
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v.get("error").is_some() == damaged)
            .filter_map(|v| v["ts"].as_str().map(str::to_string))
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(&t)
                    .expect("ts")
                    .timestamp_micros()
            })
            .collect()
    };
    let damaged = times(true);
    assert!(!damaged.is_empty(), "the fixture has damaged frames");
    for at in damaged {
        let (r, err) = who_report(&db, at);
        assert_eq!(r["coverage"]["complete"], false, "at {at}: {r}");
        assert!(gap_kinds(&r).contains(&"decode-error".to_string()), "{r}");
        assert!(err.contains("warning"), "at {at}: {err}");
    }
    // Far from any damage (a gap is the damaged frame's own time, give or take little).
    let clean = times(false);
    let first = *clean.first().expect("clean frames");
    let (r, err) = who_report(&db, first);
    assert_eq!(r["coverage"]["complete"], true, "{r}\n{err}");
}
