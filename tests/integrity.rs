//! Tamper evidence through the binary (docs/integrity.md): an import closes the days its
//! captures completed and publishes their roots; `verify` recomputes them from what is
//! stored, and names the first day a deleted, altered or added lifetime changed.
//!
//! The fixtures of 2025-03-14 are closed by importing one of 2025-05-20 after them (days
//! close by the newest message time stored, for imports).

mod common;

use common::{bin, fixture, run, run_ok};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A database with 2025-03-14 closed for both of its creators; the roots it printed.
fn closed_db(dir: &Path) -> (String, Vec<String>) {
    let db = dir.join("t.db").display().to_string();
    let mut roots = Vec::new();
    for f in ["all-features-l5-ether.pcap", "freebsd-1301-nat-dlt246.pcap"] {
        let o = run(&["import", "--db", &db, &fixture(f).display().to_string()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        roots.extend(digest_lines(&String::from_utf8_lossy(&o.stderr)));
    }
    assert_eq!(roots.len(), 2, "{roots:?}");
    for r in &roots {
        assert!(
            r.contains(" day=2025-03-14 ") && r.ends_with(" version=1"),
            "{r}"
        );
    }
    (db, roots)
}

fn digest_lines(s: &str) -> Vec<String> {
    s.lines()
        .filter(|l| l.starts_with("digest creator="))
        .map(String::from)
        .collect()
}

/// `verify`'s exit code and stdout.
fn verify(db: &str, extra: &[&str]) -> (i32, String) {
    let o = run(&[&["verify", "--db", db], extra].concat());
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr);
    (o.status.code().unwrap_or(-1), format!("{out}{err}"))
}

/// Every lifetime in a plain row of `states`, through the store's own connection (page
/// checksums kept), then `sql` run on it: a change the store reads as a valid row.
fn tamper(db: &str, sql: &str) {
    let c = pfstatelog::store::sqlite::open_rw(db).expect("open");
    pfstatelog::store::sqlite::unarchive_all(&c).expect("unarchive");
    let n = c.execute(sql, []).expect("tamper");
    assert_eq!(n, 1, "{sql}");
}

/// A copy of the closed database under `name`.
fn copy(dir: &Path, db: &str, name: &str) -> String {
    let to = dir.join(name);
    std::fs::copy(db, &to).expect("copy");
    to.display().to_string()
}

/// The lifetimes of 2025-03-14: start in [from, to).
const DAY: &str = "start_us >= 1741910400000000 AND start_us < 1741996800000000";

#[test]
fn an_untouched_database_verifies_and_each_change_names_its_day() {
    let dir = tempfile::tempdir().expect("tmp");
    let (db, roots) = closed_db(dir.path());
    let (code, out) = verify(&db, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 days of 2 creators match"), "{out}");
    // Moving every lifetime into plain rows changes where they are, not what they are.
    let moved = copy(dir.path(), &db, "moved.db");
    let c = pfstatelog::store::sqlite::open_rw(&moved).expect("open");
    assert!(pfstatelog::store::sqlite::unarchive_all(&c).expect("unarchive") > 0);
    drop(c);
    assert_eq!(verify(&moved, &[]).0, 0);

    let changes = [
        ("deleted", format!("DELETE FROM states WHERE id = (SELECT min(id) FROM states WHERE {DAY})")),
        (
            "private address",
            format!("UPDATE states SET s_addr1 = X'0a636363' WHERE id = (SELECT min(id) FROM states WHERE {DAY} AND length(s_addr1) = 4)"),
        ),
        (
            "added",
            format!(
                "INSERT INTO states (creator_id, state_id, ifname, af, proto, direction, w_addr0, w_port0, w_addr1, w_port1, w_rdomain,
                    s_addr0, s_port0, s_addr1, s_port1, s_rdomain, s_af, nat, start_us, first_us, end_us, end_reason, last_us,
                    updated_us, expire, packets0, packets1, bytes0, bytes1, rule, flavor)
                 SELECT creator_id, state_id + 1000000, ifname, af, proto, direction, w_addr0, w_port0, w_addr1, w_port1, w_rdomain,
                    s_addr0, s_port0, s_addr1, s_port1, s_rdomain, s_af, nat, start_us, first_us, end_us, end_reason, last_us,
                    updated_us, expire, packets0, packets1, bytes0, bytes1, rule, flavor
                 FROM states WHERE id = (SELECT min(id) FROM states WHERE {DAY})"
            ),
        ),
    ];
    for (what, sql) in changes {
        let t = copy(dir.path(), &db, &format!("{}.db", what.replace(' ', "-")));
        tamper(&t, &sql);
        let (code, out) = verify(&t, &[]);
        assert_eq!(code, 1, "{what}: {out}");
        let first = out.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("differs: creator=") && first.contains(" day=2025-03-14: "),
            "{what}: {out}"
        );
    }

    // The stored roots and the published ones: equal; one published root changed: named.
    let published = dir.path().join("roots.log");
    std::fs::write(&published, roots.join("\n")).expect("write");
    let p = published.display().to_string();
    assert_eq!(verify(&db, &["--roots", &p]).0, 0);
    let mut bad = roots[0].clone();
    let at = bad.find("root=").expect("root") + 5;
    let flip = if &bad[at..at + 1] == "0" { "1" } else { "0" };
    bad.replace_range(at..at + 1, flip);
    std::fs::write(&published, [bad, roots[1].clone()].join("\n")).expect("write");
    let (code, out) = verify(&db, &["--roots", &p]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("differs from the published root"), "{out}");
}

#[test]
fn a_flipped_byte_in_a_stored_lifetime_is_caught() {
    let dir = tempfile::tempdir().expect("tmp");
    let (db, _) = closed_db(dir.path());
    // The packed lifetimes of one archive row, found in the file and one byte flipped:
    // damage (page checksum, blob CRC) or a different lifetime, never a match.
    let blob: Vec<u8> = rusqlite::Connection::open(&db)
        .expect("open")
        .query_row(
            "SELECT rows FROM archive ORDER BY length(rows) DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("an archived row");
    assert!(blob.len() >= 16, "{}", blob.len());
    let mut bytes = std::fs::read(&db).expect("read");
    let at = bytes
        .windows(blob.len())
        .position(|w| w == blob)
        .expect("the blob in the file");
    bytes[at + blob.len() / 2] ^= 0x01;
    let t = dir.path().join("flip.db");
    std::fs::write(&t, &bytes).expect("write");
    let (code, out) = verify(&t.display().to_string(), &[]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("damaged") || out.contains("differs"), "{out}");
}

#[test]
fn an_older_capture_after_the_close_publishes_version_2_and_both_verify() {
    let dir = tempfile::tempdir().expect("tmp");
    let (db, mut roots) = closed_db(dir.path());
    let v1 = copy(dir.path(), &db, "v1.db");
    let o = run(&[
        "import",
        "--db",
        &db,
        &fixture("bulk-transfer-l3-ether.pcap").display().to_string(),
    ]);
    assert!(o.status.success());
    let later = digest_lines(&String::from_utf8_lossy(&o.stderr));
    assert!(!later.is_empty());
    for r in &later {
        assert!(
            r.contains(" day=2025-03-14 ") && r.ends_with(" version=2 reason=import"),
            "{r}"
        );
    }
    roots.extend(later);
    // Each version against its own content: the file as it was, the file as it is; and the
    // history, both versions, against what was published.
    assert_eq!(verify(&v1, &[]).0, 0);
    let published = dir.path().join("roots.log");
    std::fs::write(&published, roots.join("\n")).expect("write");
    let (code, out) = verify(&db, &["--roots", &published.display().to_string()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 days changed after their close"), "{out}");
    // The same capture again changes nothing: no version 3.
    let o = run(&[
        "import",
        "--db",
        &db,
        &fixture("bulk-transfer-l3-ether.pcap").display().to_string(),
    ]);
    assert!(digest_lines(&String::from_utf8_lossy(&o.stderr)).is_empty());
    // A stored version removed from the history: named, though the newest still matches.
    let c = pfstatelog::store::sqlite::open_rw(&db).expect("open");
    c.execute("DELETE FROM digests WHERE version = 1 AND creator_id = (SELECT min(creator_id) FROM digests)", [])
        .expect("delete");
    drop(c);
    let (code, out) = verify(&db, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("follows a missing one"), "{out}");
}

/// The roots an import publishes to syslog (a datagram socket bound over /dev/log in the
/// import's private mount namespace) are the stored ones.
#[test]
fn roots_sent_to_syslog_are_the_stored_ones() {
    if let Some(why) = common::live::unavailable() {
        common::live::skip("roots_sent_to_syslog_are_the_stored_ones", &why);
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let devdir: PathBuf = dir.path().join("dev");
    std::fs::create_dir_all(&devdir).expect("mkdir");
    let sock = UnixDatagram::bind(devdir.join("log")).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let db = dir.path().join("s.db").display().to_string();
    let mut printed = Vec::new();
    for f in ["all-features-l5-ether.pcap", "freebsd-1301-nat-dlt246.pcap"] {
        let mut cmd = Command::new(bin());
        cmd.args(["import", "--syslog-facility", "local3", "--db", &db])
            .arg(fixture(f));
        common::live::in_private_dev(&mut cmd, &devdir);
        let o = cmd.output().expect("run");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        printed.extend(digest_lines(&String::from_utf8_lossy(&o.stderr)));
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while got.len() < printed.len() {
        let n = sock.recv(&mut buf).expect("a digest datagram");
        let d = String::from_utf8_lossy(&buf[..n]).into_owned();
        // local3.notice = 19 * 8 + 5.
        assert!(d.starts_with("<157>"), "{d}");
        got.push(d);
    }
    for (line, sent) in printed.iter().zip(&got) {
        assert!(sent.ends_with(&format!(": {line}")), "{sent} / {line}");
    }
    let log = dir.path().join("syslog");
    std::fs::write(&log, got.join("\n")).expect("write");
    let (code, out) = verify(&db, &["--roots", &log.display().to_string()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 published ones compared"), "{out}");
    let _ = run_ok(&["verify", "--db", &db]);
}

/// A file of schema 2 (before the roots) holding lifetimes: the next import migrates it
/// and closes its old days too, with the roots a new file gets.
#[test]
fn a_file_from_before_the_roots_gets_them_at_its_next_import() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_, want) = closed_db(dir.path());
    let db = dir.path().join("old.db").display().to_string();
    run_ok(&[
        "import",
        "--db",
        &db,
        &fixture("all-features-l5-ether.pcap").display().to_string(),
    ]);
    let c = pfstatelog::store::sqlite::open_rw(&db).expect("open");
    c.execute_batch("DROP TABLE digests; DROP TABLE digest_dirty; PRAGMA user_version = 201;")
        .expect("back to schema 2");
    drop(c);
    let o = run(&["verify", "--db", &db]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("migrate"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(&[
        "import",
        "--db",
        &db,
        &fixture("freebsd-1301-nat-dlt246.pcap")
            .display()
            .to_string(),
    ]);
    assert!(o.status.success());
    assert_eq!(digest_lines(&String::from_utf8_lossy(&o.stderr)), want);
    assert_eq!(verify(&db, &[]).0, 0);
}

/// Retention is a change the roots record: the next close publishes the pruned days' new
/// versions, and the file verifies again.
#[test]
fn a_prune_is_published_as_a_new_version() {
    let dir = tempfile::tempdir().expect("tmp");
    let (db, _) = closed_db(dir.path());
    run_ok(&["prune", "--db", &db, "--before", "2025-03-15T00:00:00Z"]);
    assert_eq!(verify(&db, &[]).0, 1);
    let o = run(&[
        "import",
        "--db",
        &db,
        &fixture("freebsd-1400-bulk-dlt121.pcap")
            .display()
            .to_string(),
    ]);
    assert!(o.status.success());
    let lines = digest_lines(&String::from_utf8_lossy(&o.stderr));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains(" day=2025-03-14 ") && l.ends_with(" version=2 reason=prune")),
        "{lines:?}"
    );
    assert_eq!(verify(&db, &[]).0, 0);
}

/// `record` closes, by the wall clock, the days its file holds from an import (which could
/// not close them: its data ended that day), at its first commit, and sends their roots to
/// syslog at its facility, severity notice.
#[test]
fn record_closes_old_days_and_sends_their_roots_to_syslog() {
    const TEST: &str = "record_closes_old_days_and_sends_their_roots_to_syslog";
    let Some(link) = common::live::setup(TEST, 'i') else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("r.db").display().to_string();
    let o = run(&[
        "import",
        "--db",
        &db,
        &fixture("all-features-l5-ether.pcap").display().to_string(),
    ]);
    assert!(digest_lines(&String::from_utf8_lossy(&o.stderr)).is_empty());
    let devdir = dir.path().join("dev");
    std::fs::create_dir_all(&devdir).expect("mkdir");
    let sock = UnixDatagram::bind(devdir.join("log")).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut cmd = Command::new(bin());
    cmd.args([
        "record",
        "--db",
        &db,
        "--syslog-facility",
        "local3",
        &link.host,
    ]);
    common::live::in_private_dev(&mut cmd, &devdir);
    let mut p = common::Proc::spawn(&mut cmd).expect("record");
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while got.len() < 2 {
        let Ok(n) = sock.recv(&mut buf) else {
            panic!("no roots from record: {got:?}\n{}", p.transcript());
        };
        let d = String::from_utf8_lossy(&buf[..n]).into_owned();
        if d.contains(": digest creator=") {
            assert!(d.starts_with("<157>"), "{d}");
            got.push(d);
        }
    }
    p.stop(Duration::from_secs(10));
    for d in &got {
        assert!(
            d.contains(" day=2025-03-14 ") && d.ends_with(" version=1"),
            "{d}"
        );
    }
    let log = dir.path().join("syslog");
    std::fs::write(&log, got.join("\n")).expect("write");
    let (code, out) = verify(&db, &["--roots", &log.display().to_string()]);
    assert_eq!(code, 0, "{out}");
}
