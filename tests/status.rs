//! `pfstatelog status` and the recorder's silence warning, through the binary: on a file no
//! recorder writes (degraded, exit 1), and live on a veth pair while `record` captures frames
//! of a fixture sent from a private network namespace (see tests/common/live.rs).

mod common;

use common::live::{setup, start_recorder};
use common::{fixture, read_frames, run};
use serde_json::Value;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const WAIT: Duration = Duration::from_secs(20);

fn status(db: &str, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["status", "--db", db];
    args.extend_from_slice(extra);
    let o = run(&args);
    let code = o.status.code().expect("exit code");
    assert!(
        code == 0 || code == 1,
        "status {extra:?}: exit {code}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (code, String::from_utf8(o.stdout).expect("utf-8"))
}

fn status_json(db: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["--format", "json"];
    args.extend_from_slice(extra);
    let (code, out) = status(db, &args);
    (code, serde_json::from_str(&out).expect("status json"))
}

/// Every sample line of the exposition format: `name{labels} value`, the value a number.
fn prometheus_samples(text: &str) -> Vec<(String, f64)> {
    let mut v = Vec::new();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("{l:?}"));
        assert!(
            name.starts_with("pfstatelog_") && name.ends_with('}') && name.contains("{db=\""),
            "{l:?}"
        );
        v.push((
            name.to_string(),
            value.parse().unwrap_or_else(|_| panic!("{l:?}")),
        ));
    }
    v
}

fn sample(samples: &[(String, f64)], prefix: &str) -> Option<f64> {
    samples
        .iter()
        .find(|(n, _)| n.starts_with(prefix))
        .map(|(_, v)| *v)
}

#[test]
fn status_of_a_file_no_recorder_writes_is_degraded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("s.db").display().to_string();
    let cap = fixture("ha-pair-clr-l5-ether.pcap");
    let o = run(&["import", "--db", &db, &cap.display().to_string()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let (code, text) = status(&db, &[]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("never ran on this database"), "{text}");
    assert!(
        text.contains("health:          degraded: no recorder running"),
        "{text}"
    );

    let (code, j) = status_json(&db, &[]);
    assert_eq!(code, 1);
    assert_eq!(j["healthy"], false);
    assert_eq!(j["recorder_running"], false);
    assert_eq!(j["problems"][0], "no recorder running");
    assert!(j["database_bytes"].as_u64().is_some_and(|n| n > 0), "{j}");

    let (code, prom) = status(&db, &["--format", "prometheus"]);
    assert_eq!(code, 1);
    let s = prometheus_samples(&prom);
    assert_eq!(sample(&s, "pfstatelog_healthy{"), Some(0.0), "{prom}");
    assert_eq!(
        sample(&s, "pfstatelog_recorder_running{"),
        Some(0.0),
        "{prom}"
    );
    // Unknown values are left out, not reported as zero.
    assert_eq!(sample(&s, "pfstatelog_open_states{"), None, "{prom}");

    // Bad input: one line, exit 2.
    let o = run(&["status", "--db", &db, "--silent-after", "soon"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&[
        "status",
        "--db",
        &dir.path().join("none.db").display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&o.stderr).lines().count(), 1);
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_micros() as i64
}

/// Poll `status --format json` until `done` holds (or fail after WAIT).
fn wait_status(db: &str, extra: &[&str], what: &str, done: impl Fn(i32, &Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, j) = status_json(db, extra);
        if done(code, &j) {
            return j;
        }
        assert!(Instant::now() < deadline, "status never showed {what}: {j}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn status_follows_a_live_recorder_and_the_recorder_says_when_pfsync_goes_quiet() {
    const TEST: &str = "status_follows_a_live_recorder";
    let Some(link) = setup(TEST, 'h') else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("live.db").display().to_string();
    let frames = read_frames(&fixture("ha-pair-clr-l5-ether.pcap"));
    let mut p = start_recorder(&link.host, &db, &["--no-syslog", "--silent-after", "2s"]);
    let sender = link.sender();
    sender.send_all(&frames[..40]);

    // Healthy: running, its pid, traffic just now, states begun at a rate, open states.
    let pid = i64::from(p.pid());
    let j = wait_status(
        &db,
        &["--silent-after", "1h"],
        "a healthy recorder",
        |c, j| c == 0 && j["open_states"].as_i64().is_some_and(|n| n > 0),
    );
    assert_eq!(j["recorder_running"], true, "{j}");
    assert_eq!(j["run"]["pid"].as_i64(), Some(pid), "{j}");
    assert_eq!(j["writer_pid"].as_i64(), Some(pid), "{j}");
    assert_eq!(j["run"]["version"], env!("CARGO_PKG_VERSION"), "{j}");
    assert!(
        j["states_per_second_minute"]
            .as_f64()
            .is_some_and(|r| r > 0.0),
        "{j}"
    );
    let last = chrono::DateTime::parse_from_rfc3339(j["last_packet"].as_str().expect("last"))
        .expect("rfc3339")
        .timestamp_micros();
    assert!((now_us() - last).abs() < 60_000_000, "{j}");
    let (code, prom) = status(&db, &["--format", "prometheus", "--silent-after", "1h"]);
    assert_eq!(code, 0, "{prom}");
    let s = prometheus_samples(&prom);
    assert_eq!(sample(&s, "pfstatelog_healthy{"), Some(1.0), "{prom}");
    assert_eq!(
        sample(&s, "pfstatelog_recorder_running{"),
        Some(1.0),
        "{prom}"
    );
    assert_eq!(
        sample(&s, "pfstatelog_open_states{"),
        j["open_states"].as_f64(),
        "{prom}"
    );

    // Quiet for longer than --silent-after: the recorder warns once, status degrades.
    assert!(
        p.err.wait_for(WAIT, |s| s
            .iter()
            .any(|l| l.contains("warning: no pfsync traffic on"))),
        "no silence warning:\n{}",
        p.transcript()
    );
    let j = wait_status(&db, &["--silent-after", "1s"], "the silence", |c, _| c == 1);
    assert!(
        j["problems"][0]
            .as_str()
            .is_some_and(|m| m.starts_with("no pfsync packet for ")),
        "{j}"
    );
    // Traffic again: said once.
    sender.send_all(&frames[40..41]);
    assert!(
        p.err.wait_for(WAIT, |s| s.iter().any(|l| l
            .starts_with("pfsync traffic on ")
            && l.contains(" resumed after "))),
        "no resume line:\n{}",
        p.transcript()
    );
    p.stop(Duration::from_secs(8));
    let warnings = p
        .err
        .seen
        .iter()
        .filter(|l| l.contains("no pfsync traffic on"))
        .count();
    assert_eq!(warnings, 1, "{}", p.transcript());

    // Stopped: no recorder running.
    let (code, text) = status(&db, &[]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("recorder:        not running (last run on "),
        "{text}"
    );
    assert!(text.contains(": stopped at "), "{text}");
}
