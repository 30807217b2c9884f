//! Faults the recorder must survive without losing what it recorded: a second writer, a
//! kill -9 in the middle of an import, a full disk.

mod common;

use common::{bin, fixture, integrity, row_strings};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.display().to_string()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

fn states(db: &Path) -> Vec<String> {
    let c = pfstatelog::store::sqlite::pagesum::open(db).expect("open");
    pfstatelog::store::sqlite::unarchive_all(&c).expect("unarchive");
    let mut st = c
        .prepare(
            "SELECT creator_id, state_id, hex(w_addr1), w_port1, hex(s_addr1), s_port1, start_us, first_us,
                    end_us, end_reason, last_us, updated_us, packets0, bytes1
             FROM states ORDER BY creator_id, state_id, start_us, end_us",
        )
        .expect("prepare");
    row_strings(&mut st)
}

fn count(db: &Path) -> i64 {
    pfstatelog::store::sqlite::pagesum::open(db)
        .and_then(|c| {
            c.query_row(
                "SELECT (SELECT count(*) FROM states) + (SELECT coalesce(sum(n), 0) FROM archive_buckets)",
                [],
                |r| r.get(0),
            )
        })
        .unwrap_or(0)
}

/// Start an import reading from a FIFO, feed it `bytes`, and keep the FIFO open.
fn import_from_fifo(db: &Path, fifo: &Path, bytes: &[u8]) -> (std::process::Child, std::fs::File) {
    mkfifo(fifo);
    let child = Command::new(bin())
        .arg("import")
        .arg("--db")
        .arg(db)
        .arg(fifo)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn import");
    let mut w = std::fs::OpenOptions::new()
        .write(true)
        .open(fifo)
        .expect("open fifo");
    w.write_all(bytes).expect("feed fifo");
    w.flush().expect("flush");
    (child, w)
}

#[test]
fn a_second_writer_is_refused_at_once_while_readers_work() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("w.db");
    let cap = std::fs::read(fixture("nat-outbound-l3-dlt246.pcap")).expect("fixture");
    // The pcap header and some frames; the FIFO stays open so the import keeps writing.
    let (mut first, fifo_w) =
        import_from_fifo(&db, &tmp.path().join("fifo"), &cap[..cap.len() / 2]);
    let t0 = Instant::now();
    while count(&db) == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "first import wrote nothing"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let t = Instant::now();
    let second = Command::new(bin())
        .arg("import")
        .arg("--db")
        .arg(&db)
        .arg(fixture("rdr-and-no-nat-l3-dlt18.pcap"))
        .output()
        .expect("second import");
    assert_eq!(second.status.code(), Some(2));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("another pfstatelog record or import is writing"),
        "{err}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "refused at once, not after a timeout"
    );
    let who = Command::new(bin())
        .args(["stats", "--db"])
        .arg(&db)
        .output()
        .expect("stats");
    assert!(who.status.success(), "a reader works beside the writer");
    let mut fifo_w = fifo_w;
    fifo_w
        .write_all(&cap[cap.len() / 2..])
        .expect("feed the rest");
    drop(fifo_w);
    assert!(first.wait().expect("wait").success());
}

#[test]
fn kill_9_mid_import_then_import_again_equals_a_clean_import() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cap_path = fixture("all-features-l5-ether.pcap");
    let cap = std::fs::read(&cap_path).expect("fixture");
    let db = tmp.path().join("killed.db");
    let (mut child, fifo_w) =
        import_from_fifo(&db, &tmp.path().join("fifo"), &cap[..cap.len() * 2 / 3]);
    let t0 = Instant::now();
    // Wait until something is committed (a flush happens at least once a second).
    while count(&db) < 50 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "import wrote nothing"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    drop(fifo_w);
    assert_eq!(integrity(&db), "ok");
    assert!(count(&db) > 0, "what was committed before the kill stays");
    let again = Command::new(bin())
        .arg("import")
        .arg("--db")
        .arg(&db)
        .arg(&cap_path)
        .output()
        .expect("import");
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let clean = tmp.path().join("clean.db");
    let out = Command::new(bin())
        .arg("import")
        .arg("--db")
        .arg(&clean)
        .arg(&cap_path)
        .output()
        .expect("import");
    assert!(out.status.success());
    assert_eq!(integrity(&db), "ok");
    assert_eq!(
        states(&db),
        states(&clean),
        "after kill -9 and a re-import the states equal a clean import"
    );
}

#[test]
fn a_full_disk_gives_a_clear_error_and_keeps_what_was_committed() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let mnt = tmp.path().join("small");
    std::fs::create_dir(&mnt).expect("mkdir");
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=600k", "pfstatelog-test"])
        .arg(&mnt)
        .status();
    if !matches!(st, Ok(s) if s.success()) {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let db = mnt.join("full.db");
    let mut names: Vec<PathBuf> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
            .expect("fixtures")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
            .collect();
    names.sort();
    let mut failed = None;
    let mut committed = 0;
    for cap in &names {
        let out = Command::new(bin())
            .arg("import")
            .arg("--db")
            .arg(&db)
            .arg(cap)
            .output()
            .expect("import");
        if !out.status.success() {
            failed = Some(String::from_utf8_lossy(&out.stderr).to_string());
            break;
        }
        committed = count(&db);
    }
    let err = failed.expect("600 KiB must fill up before every fixture is imported");
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
    assert!(err.contains("full"), "says the disk is full: {err}");
    assert_eq!(integrity(&db), "ok");
    assert!(count(&db) >= committed, "nothing already committed is lost");
    assert!(committed > 0);
}
