//! A damaged database file: queries answer what is intact and name what is not, never a
//! silent "nothing"; writers stop with exit 2 and one line, writing nothing more.

mod common;

use common::{fixture, run, run_ok};
use rusqlite::Connection;
use serde_json::Value;
use std::collections::BTreeSet;

const CAPTURE: &str = "nat-outbound-l3-dlt246.pcap";

/// A database with the capture imported.
fn imported() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("d.db").display().to_string();
    run_ok(&[
        "import",
        "--db",
        &db,
        &fixture(CAPTURE).display().to_string(),
    ]);
    (dir, db)
}

/// Every lifetime as export's CSV lines (header and comments left out).
fn lifetimes(db: &str) -> BTreeSet<String> {
    let o = run(&[
        "export",
        "--db",
        db,
        "--from",
        "@0",
        "--to",
        "@4000000000",
        "--format",
        "csv",
    ]);
    assert!(
        o.status.success(),
        "export: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout)
        .expect("utf-8")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("private_ip,"))
        .map(str::to_string)
        .collect()
}

/// A row of `archive`: (dur_class, start_bucket, w_addr1, w_port1, batch).
type Key = (i64, i64, Vec<u8>, i64, i64);

/// The key and blob of the archived group with the most lifetimes.
fn largest_group(conn: &Connection) -> (Key, Vec<u8>) {
    conn.query_row(
        "SELECT dur_class, start_bucket, w_addr1, w_port1, batch, rows FROM archive ORDER BY n DESC, length(rows) DESC LIMIT 1",
        [],
        |r| Ok(((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?), r.get(5)?)),
    )
    .expect("an archived group")
}

fn put_group(conn: &Connection, k: &Key, blob: &[u8]) {
    conn.execute(
        "UPDATE archive SET rows = ?6 WHERE dur_class = ?1 AND start_bucket = ?2 AND w_addr1 = ?3 AND w_port1 = ?4 AND batch = ?5",
        rusqlite::params![k.0, k.1, k.2, k.3, k.4, blob],
    )
    .expect("update");
}

/// Flip one byte in the middle of the payload of the largest archived group; the lifetimes
/// it held (as export read them before).
fn damage_largest_group(db: &str) -> Vec<String> {
    let before = lifetimes(db);
    let conn = pfstatelog::store::sqlite::pagesum::open(db).expect("open");
    let (key, mut blob) = largest_group(&conn);
    let i = blob.len() / 2;
    blob[i] ^= 0x10;
    put_group(&conn, &key, &blob);
    drop(conn);
    let after = lifetimes(db);
    let gone: Vec<String> = before.difference(&after).cloned().collect();
    assert!(!gone.is_empty(), "the flipped byte changed no lifetime");
    gone
}

/// (private ip, public ip, public port, start) of an export CSV line.
fn fields(line: &str) -> (String, String, String, String) {
    let f: Vec<&str> = line.split(',').collect();
    (f[0].into(), f[2].into(), f[3].into(), f[11].into())
}

/// Every table a writer could change, row by row.
fn stored_rows(db: &str) -> Vec<String> {
    let conn = pfstatelog::store::sqlite::pagesum::open(db).expect("open");
    let mut all = Vec::new();
    for t in [
        "states",
        "archived",
        "archive_hosts",
        "batches",
        "archive_buckets",
    ] {
        let mut st = conn.prepare(&format!("SELECT * FROM {t}")).expect("select");
        all.extend(
            common::row_strings(&mut st)
                .into_iter()
                .map(|r| format!("{t}: {r}")),
        );
    }
    all
}

/// The same rows, or the first few that differ.
fn assert_same(before: &[String], after: &[String], what: &str) {
    let (b, a): (BTreeSet<&String>, BTreeSet<&String>) =
        (before.iter().collect(), after.iter().collect());
    let gone: Vec<_> = b.difference(&a).take(3).collect();
    let new: Vec<_> = a.difference(&b).take(3).collect();
    assert!(
        gone.is_empty() && new.is_empty() && before.len() == after.len(),
        "{what}: gone {gone:?}, new {new:?}"
    );
}

#[test]
fn who_warns_that_the_range_holds_damaged_data_instead_of_answering_nothing() {
    let (_d, db) = imported();
    let gone = damage_largest_group(&db);
    let (_, ip, port, start) = fields(&gone[0]);
    let o = run(&[
        "who", "--db", &db, "--ip", &ip, "--port", &port, "--at", &start,
    ]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_ne!(o.status.code(), Some(1), "a plain 'nothing': {out}{err}");
    assert!(!out.contains("no state matched"), "{out}");
    assert!(
        err.contains("damaged") && err.contains("archived group") && err.contains("class"),
        "{err}"
    );
    if o.status.code() != Some(0) {
        assert_eq!(o.status.code(), Some(3), "{out}{err}");
    }
    // The report says the answer is not complete, and which group is damaged.
    let o = run(&[
        "who",
        "--db",
        &db,
        "--ip",
        &ip,
        "--port",
        &port,
        "--at",
        &start,
        "--format",
        "json-report",
    ]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("json-report");
    assert_eq!(v["coverage"]["complete"], Value::Bool(false), "{v}");
    let d = &v["damage"][0];
    assert!(
        d["group"]
            .as_str()
            .is_some_and(|g| g.contains("archived group")),
        "{v}"
    );
    assert!(d["from"].is_string() && d["to"].is_string(), "{v}");
}

#[test]
fn history_reports_a_damaged_group_it_meets() {
    let (_d, db) = imported();
    let gone = damage_largest_group(&db);
    let (host, ..) = fields(&gone[0]);
    let o = run(&["history", "--db", &db, "--host", &host]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("utf-8"), "{err}");
    assert!(err.contains("damaged") && err.contains("class"), "{err}");
    assert_ne!(o.status.code(), Some(1), "{err}");
}

#[test]
fn an_import_into_a_damaged_file_stops_with_one_line_and_writes_nothing() {
    let (_d, db) = imported();
    damage_largest_group(&db);
    let before = stored_rows(&db);
    // The same traffic again: its lifetimes are found in the damaged group's bucket.
    let o = run(&[
        "import",
        "--db",
        &db,
        &fixture(CAPTURE).display().to_string(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("database damaged") && err.contains("class"),
        "{err}"
    );
    assert_same(
        &before,
        &stored_rows(&db),
        "the import wrote into the damaged file",
    );
}

#[test]
fn prune_stops_at_a_damaged_group_rather_than_drop_it() {
    let (_d, db) = imported();
    damage_largest_group(&db);
    let before = stored_rows(&db);
    let o = run(&["prune", "--db", &db, "--before", "2030-01-01T00:00:00Z"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("database damaged"), "{err}");
    assert_same(
        &before,
        &stored_rows(&db),
        "prune deleted around the damage",
    );
}

#[test]
fn a_byte_flipped_in_the_stored_data_never_changes_an_answer_silently() {
    let (_d, db) = imported();
    let before = lifetimes(&db);
    let conn = pfstatelog::store::sqlite::pagesum::open(&db).expect("open");
    // Byte positions spread over the whole group, one at a time: each is damage said, or
    // no change.
    let (key, blob) = largest_group(&conn);
    let put = |bytes: &[u8]| put_group(&conn, &key, bytes);
    for i in (0..blob.len()).step_by(blob.len().div_ceil(16)) {
        let mut bad = blob.clone();
        bad[i] ^= 0x01;
        put(&bad);
        let o = run(&[
            "export",
            "--db",
            &db,
            "--from",
            "@0",
            "--to",
            "@4000000000",
            "--format",
            "csv",
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        let now: BTreeSet<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("private_ip,"))
            .map(str::to_string)
            .collect();
        // Never a lifetime that was not there (a value decoded wrongly).
        assert!(
            now.is_subset(&before),
            "byte {i}: a changed lifetime\n{err}"
        );
        if now != before {
            assert!(err.contains("damaged archived group"), "byte {i}: {err}");
        }
    }
    put(&blob);
}

#[test]
fn check_says_sound_or_names_the_damaged_group() {
    let (_d, db) = imported();
    let o = run(&["check", "--db", &db]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("integrity check: ok") && out.contains("sound"),
        "{out}"
    );
    damage_largest_group(&db);
    let o = run(&["check", "--db", &db]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("damaged: archived group (class") && l.contains("started")),
        "{out}"
    );
    let o = run(&["check", "--db", "/nonexistent/p.db"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_byte_flipped_in_an_index_page_is_found_by_check() {
    let (_d, db) = imported();
    let conn = pfstatelog::store::sqlite::pagesum::open(&db).expect("open");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
    let root: i64 = conn
        .query_row(
            "SELECT rootpage FROM sqlite_master WHERE name = 'states_who'",
            [],
            |r| r.get(0),
        )
        .expect("index");
    let size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .expect("page size");
    drop(conn);
    // A byte of the index's first cell: the last cell-pointer array entry names it.
    let mut file = std::fs::read(&db).expect("read");
    let page = ((root - 1) * size) as usize;
    let cells = u16::from_be_bytes([file[page + 3], file[page + 4]]) as usize;
    assert!(cells > 0, "an empty index page");
    let header = if file[page] == 0x0a { 8 } else { 12 };
    let ptr = page + header;
    let cell = page + u16::from_be_bytes([file[ptr], file[ptr + 1]]) as usize;
    file[cell + 4] ^= 0x10;
    std::fs::write(&db, &file).expect("write");
    let o = run(&["check", "--db", &db]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("integrity check: FAILED"), "{out}");
}

#[test]
fn a_value_sqlite_reads_back_wrongly_is_called_damage_in_one_line() {
    let (_d, db) = imported();
    let all = lifetimes(&db);
    let (host, ..) = fields(all.iter().next().expect("a lifetime"));
    let conn = pfstatelog::store::sqlite::pagesum::open(&db).expect("open");
    // An interface name that is no longer UTF-8, as a flipped byte in its page leaves it.
    conn.execute("UPDATE names SET name = CAST(x'616cff' AS TEXT)", [])
        .expect("damage");
    drop(conn);
    let o = run(&["history", "--db", &db, "--host", &host]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.starts_with("pfstatelog: database damaged: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// `record` that meets a damaged group while it stores (the same traffic again) logs one
/// "database damaged" line, stops capturing by itself and exits 2, writing nothing more.
#[test]
fn a_recorder_that_meets_damage_stops_with_exit_2() {
    use common::live::setup;
    use std::time::Duration;
    const TEST: &str = "a_recorder_that_meets_damage_stops_with_exit_2";
    const LIVE_CAPTURE: &str = "ha-pair-clr-l5-ether.pcap";
    let Some(link) = setup(TEST, 'x') else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("r.db").display().to_string();
    let path = fixture(LIVE_CAPTURE);
    run_ok(&["import", "--db", &db, &path.display().to_string()]);
    damage_largest_group(&db);
    let before = stored_rows(&db);
    let mut p = common::live::start_recorder(&link.host, &db, &["--no-syslog"]);
    link.sender().send_all(&common::read_frames(&path));
    let status = p.wait_timeout(Duration::from_secs(30));
    if status.is_none() {
        p.stop(Duration::from_secs(5));
    }
    p.err.drain(Duration::from_secs(2));
    let log = p.transcript();
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{log}");
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("database damaged"))
            .count(),
        1,
        "{log}"
    );
    let after = stored_rows(&db);
    // Only rows the recorder wrote before it met the damage (its run's own lifetimes
    // written at earlier commits) may be new; none of the file's rows is gone or changed.
    let gone: Vec<_> = before
        .iter()
        .filter(|r| !after.contains(r))
        .take(3)
        .collect();
    assert!(gone.is_empty(), "rows changed: {gone:?}");
}
