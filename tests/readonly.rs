//! Queries on write-protected evidence: a database on a read-only mount, or in a folder
//! (and a file) the user cannot write. Every query command must answer as on a writable
//! copy and change nothing: the database's bytes and mtime stay, and no file appears
//! beside it (no -wal, -shm or lock file). Also: a `--db` that is a directory, or a file
//! the user may not read, is named as such.
//!
//! The read-only states are real ones root cannot bypass: a read-only bind mount in a
//! mount namespace of its own (`unshare -m`), and an unprivileged user (`setpriv`, when
//! the tests run as root) facing a folder it cannot write. Where the machine cannot do
//! that a test prints why and passes, unless PFSTATELOG_REQUIRE_LIVE=1 (CI), which makes
//! it a failure.

mod common;

use common::{bin, run, run_ok};
use pfstatelog_bench::gen::{write_capture, GenConfig};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::SystemTime;

/// The user an unprivileged query runs as, when the tests run as root (`nobody`).
const NOBODY: &str = "65534";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

/// A database as `import` leaves it, in a folder of its own, and what to ask it.
struct Evidence {
    /// Kept for its lifetime: the folder goes when the test ends.
    _tmp: tempfile::TempDir,
    root: PathBuf,
    /// The folder that holds the database only.
    folder: PathBuf,
    name: &'static str,
    batch: PathBuf,
    /// A lifetime in it: public ip, port, and a time inside.
    probe: (String, String, String),
}

impl Evidence {
    fn new() -> Evidence {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().to_path_buf();
        // Another user must reach what is inside (the folder itself is 0700).
        chmod(&root, 0o755);
        let capture = root.join("capture.pcap");
        let f = std::fs::File::create(&capture).expect("create capture");
        let cfg = GenConfig {
            states: 3_000,
            ..GenConfig::default()
        };
        write_capture(&cfg, std::io::BufWriter::new(f), 1).expect("write capture");
        let name = "pfstatelog.db";
        let work = root.join("work");
        std::fs::create_dir(&work).expect("mkdir");
        let db = work.join(name).display().to_string();
        run_ok(&["import", "--db", &db, &capture.display().to_string()]);
        // The evidence handed over is the database file alone: the import checkpointed
        // its whole write-ahead log into it.
        let wal = std::fs::metadata(format!("{db}-wal")).map_or(0, |m| m.len());
        assert_eq!(wal, 0, "the import left commits in its -wal");
        let folder = root.join("evidence");
        std::fs::create_dir(&folder).expect("mkdir");
        std::fs::copy(&db, folder.join(name)).expect("copy the database");
        let json = run_ok(&[
            "export",
            "--db",
            &db,
            "--from",
            "@0",
            "--to",
            "@4000000000",
            "--format",
            "json",
        ]);
        // An open lifetime: those stay in `states` (a test removes them there).
        let row: serde_json::Value = json
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|r| r.get("start").is_some() && r["end"].is_null())
            .expect("an exported open lifetime");
        let probe = (
            row["public_ip"].as_str().expect("ip").to_string(),
            row["public_port"].to_string(),
            row["start"].as_str().expect("start").to_string(),
        );
        let batch = root.join("batch.csv");
        std::fs::write(
            &batch,
            format!("ip,port,time\n{},{},{}\n", probe.0, probe.1, probe.2),
        )
        .expect("write batch");
        Evidence {
            _tmp: tmp,
            root,
            folder,
            name,
            batch,
            probe,
        }
    }

    /// Every query command, with the database at `db`.
    fn queries(&self, db: &str) -> Vec<Vec<String>> {
        let (ip, port, at) = &self.probe;
        let batch = self.batch.display().to_string();
        let all = ["--from", "@0", "--to", "@4000000000"];
        let q: Vec<Vec<&str>> = vec![
            vec!["who", "--db", db, "--ip", ip, "--port", port, "--at", at],
            vec![
                "who", "--db", db, "--ip", ip, "--port", port, "--at", at, "--format", "json",
            ],
            vec!["who", "--db", db, "--batch", &batch],
            vec!["history", "--db", db, "--host", "10.0.0.0/16"],
            vec![
                "history",
                "--db",
                db,
                "--host",
                "10.0.0.0/8",
                "--from",
                "@0",
                "--to",
                "@4000000000",
                "--format",
                "csv",
            ],
            vec!["stats", "--db", db],
            vec!["stats", "--db", db, "--json"],
            [&["export", "--db", db, "--format", "csv"][..], &all].concat(),
            [&["export", "--db", db, "--format", "json"][..], &all].concat(),
        ];
        q.into_iter()
            .map(|v| v.into_iter().map(String::from).collect())
            .collect()
    }
}

/// What must not change: the database's bytes and mtime, and the names in its folder.
#[derive(Debug, PartialEq)]
struct Snapshot {
    bytes: Vec<u8>,
    mtime: SystemTime,
    names: BTreeSet<String>,
}

fn snapshot(folder: &Path, name: &str) -> Snapshot {
    let db = folder.join(name);
    Snapshot {
        bytes: std::fs::read(&db).expect("read database"),
        mtime: std::fs::metadata(&db)
            .and_then(|m| m.modified())
            .expect("mtime"),
        names: std::fs::read_dir(folder)
            .expect("list folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect(),
    }
}

/// Output without what names the file or the moment (export's header, stats' path line).
fn comparable(o: &Output, db: &str) -> String {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.starts_with("# generated:") && !l.contains("\"generated\""))
        .map(|l| l.replace(db, "DB"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn show(o: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Each query through `runner` against the database as `seen_as` (its path in the
/// runner's view) must answer as on a writable copy, say nothing on stderr but what the
/// writable copy says, and leave the evidence as it was.
fn every_query_unchanged(
    ev: &Evidence,
    seen_as: &str,
    runner: impl Fn(&[String]) -> Output,
    what: &str,
) {
    let copy = ev.root.join("copy");
    std::fs::create_dir_all(&copy).expect("mkdir copy");
    std::fs::copy(ev.folder.join(ev.name), copy.join(ev.name)).expect("copy");
    let copy_db = copy.join(ev.name).display().to_string();
    let before = snapshot(&ev.folder, ev.name);
    for (q, want_q) in ev.queries(seen_as).iter().zip(ev.queries(&copy_db)) {
        let want = Command::new(bin())
            .args(&want_q)
            .stdin(Stdio::null())
            .output()
            .expect("run on the copy");
        assert_eq!(
            want.status.code(),
            Some(0),
            "{want_q:?} on a writable copy: {}",
            show(&want)
        );
        let got = runner(q);
        assert_eq!(
            got.status.code(),
            Some(0),
            "{what}: {q:?} failed: {}",
            show(&got)
        );
        assert_eq!(
            comparable(&got, seen_as),
            comparable(&want, &copy_db),
            "{what}: {q:?} answered otherwise than on a writable copy"
        );
        assert_eq!(
            String::from_utf8_lossy(&got.stderr),
            String::from_utf8_lossy(&want.stderr).replace(&copy_db, seen_as),
            "{what}: {q:?}: stderr"
        );
        let after = snapshot(&ev.folder, ev.name);
        assert!(
            before.bytes == after.bytes,
            "{what}: {q:?} changed the database's bytes"
        );
        assert_eq!(before.mtime, after.mtime, "{what}: {q:?} changed its mtime");
        assert_eq!(
            before.names, after.names,
            "{what}: {q:?} added or removed files"
        );
    }
}

/// Runs a command with `src` bind-mounted read-only on `ro`, in a mount namespace of its
/// own (nothing to undo afterwards; root's writes there fail with EROFS).
fn ro_bind(src: &Path, ro: &Path, cmd: &[&str]) -> Output {
    Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(r#"src=$1 ro=$2; shift 2; mount --bind "$src" "$ro" && mount -o remount,bind,ro "$ro" && exec "$@""#)
        .arg("sh")
        .arg(src)
        .arg(ro)
        .args(cmd)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| Output {
            status: std::os::unix::process::ExitStatusExt::from_raw(127 << 8),
            stdout: Vec::new(),
            stderr: format!("unshare: {e}").into_bytes(),
        })
}

/// Why a read-only bind mount cannot be made here, if it cannot: it must work, and
/// root's write through it must fail.
fn ro_bind_unavailable(root: &Path) -> Option<String> {
    if !is_root() {
        return Some("needs root (mount namespace)".into());
    }
    let (src, ro) = (root.join("probe-src"), root.join("probe-ro"));
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::create_dir_all(&ro).expect("mkdir");
    let ok = ro_bind(&src, &ro, &["true"]);
    if !ok.status.success() {
        return Some(format!(
            "no read-only bind mount in a mount namespace: {}",
            String::from_utf8_lossy(&ok.stderr).trim()
        ));
    }
    let probe = ro.join("written").display().to_string();
    let w = ro_bind(&src, &ro, &["touch", &probe]);
    assert!(
        !w.status.success() && !src.join("written").exists(),
        "a read-only bind mount let root write: {}",
        show(&w)
    );
    None
}

/// Runs a command as a user who cannot write the evidence folder: `nobody` when the tests
/// run as root, else the user itself.
fn unprivileged(cmd: &[String]) -> Output {
    let mut c = if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
        ]);
        c.arg(bin());
        c
    } else {
        Command::new(bin())
    };
    c.args(cmd)
        .stdin(Stdio::null())
        .output()
        .expect("run pfstatelog unprivileged")
}

/// Why a query cannot run as a user who cannot write `folder`, if it cannot.
fn unprivileged_unavailable(folder: &Path) -> Option<String> {
    if is_root() {
        let o = Command::new("setpriv")
            .args([
                &format!("--reuid={NOBODY}"),
                &format!("--regid={NOBODY}"),
                "--clear-groups",
                "true",
            ])
            .output();
        match o {
            Ok(o) if o.status.success() => {}
            Ok(o) => return Some(format!("setpriv failed: {}", show(&o))),
            Err(e) => return Some(format!("no setpriv: {e}")),
        }
    }
    // The folder must really be closed to that user.
    let probe = folder.join("written");
    let touch = if is_root() {
        Command::new("setpriv")
            .args([
                &format!("--reuid={NOBODY}"),
                &format!("--regid={NOBODY}"),
                "--clear-groups",
                "touch",
            ])
            .arg(&probe)
            .output()
    } else {
        Command::new("touch").arg(&probe).output()
    };
    assert!(
        touch.is_ok_and(|o| !o.status.success()) && !probe.exists(),
        "the unprivileged user can write {}",
        folder.display()
    );
    None
}

#[test]
fn queries_on_a_read_only_mount_answer_and_change_nothing() {
    let test = "queries_on_a_read_only_mount_answer_and_change_nothing";
    let ev = Evidence::new();
    if let Some(why) = ro_bind_unavailable(&ev.root) {
        common::live::skip(test, &why);
        return;
    }
    let ro = ev.root.join("mnt");
    std::fs::create_dir(&ro).expect("mkdir");
    let seen_as = ro.join(ev.name).display().to_string();
    every_query_unchanged(
        &ev,
        &seen_as,
        |q| {
            let mut cmd = vec![bin()];
            cmd.extend(q.iter().map(String::as_str));
            ro_bind(&ev.folder, &ro, &cmd)
        },
        "read-only mount",
    );
}

#[test]
fn queries_in_a_folder_the_user_cannot_write_answer_and_change_nothing() {
    let test = "queries_in_a_folder_the_user_cannot_write_answer_and_change_nothing";
    let ev = Evidence::new();
    chmod(&ev.folder.join(ev.name), 0o444);
    chmod(&ev.folder, 0o555);
    if let Some(why) = unprivileged_unavailable(&ev.folder) {
        common::live::skip(test, &why);
        return;
    }
    let db = ev.folder.join(ev.name).display().to_string();
    every_query_unchanged(&ev, &db, unprivileged, "read-only folder and file");
}

/// A copy taken while a writer ran: its last commits are in the -wal file. With the
/// -shm index beside it, SQLite reads them even on a read-only mount; without, they
/// cannot be read there, and the query says so (and that a writer holds the lock).
#[test]
fn a_write_ahead_log_that_cannot_be_read_is_said() {
    let test = "a_write_ahead_log_that_cannot_be_read_is_said";
    let ev = Evidence::new();
    if let Some(why) = ro_bind_unavailable(&ev.root) {
        common::live::skip(test, &why);
        return;
    }
    let (ip, port, at) = ev.probe.clone();
    let live = ev.root.join("live");
    std::fs::create_dir(&live).expect("mkdir");
    let live_db = live.join(ev.name);
    std::fs::copy(ev.folder.join(ev.name), &live_db).expect("copy");
    let with_shm = ev.root.join("with-shm");
    let wal_only = ev.root.join("wal-only");
    {
        let c = pfstatelog::store::sqlite::pagesum::open(&live_db).expect("open");
        // As a running recorder has it (a finished import leaves rollback mode).
        c.pragma_update(None, "journal_mode", "WAL").expect("WAL");
        c.pragma_update(None, "wal_autocheckpoint", 0)
            .expect("no checkpoint");
        // The probe's lifetime (an open one) is gone in the last commit, which only the
        // -wal holds.
        let removed = c
            .execute("DELETE FROM states WHERE end_us IS NULL", [])
            .expect("delete");
        assert!(removed > 0, "open lifetimes in states");
        for (dir, files) in [
            (&with_shm, &["", "-wal", "-shm"][..]),
            (&wal_only, &["", "-wal"][..]),
        ] {
            std::fs::create_dir(dir).expect("mkdir");
            for f in files {
                let name = format!("{}{f}", ev.name);
                std::fs::copy(live.join(&name), dir.join(&name)).expect("copy");
            }
        }
    }
    let ro = ev.root.join("mnt");
    std::fs::create_dir(&ro).expect("mkdir");
    let db = ro.join(ev.name).display().to_string();
    let who = [
        bin(),
        "who",
        "--db",
        &db,
        "--ip",
        &ip,
        "--port",
        &port,
        "--at",
        &at,
    ];

    let before = snapshot(&with_shm, ev.name);
    let o = ro_bind(&with_shm, &ro, &who);
    assert_eq!(
        o.status.code(),
        Some(1),
        "the -wal's delete is read: {}",
        show(&o)
    );
    assert!(o.stderr.is_empty(), "nothing to say: {}", show(&o));
    assert_eq!(before, snapshot(&with_shm, ev.name), "with -shm: changed");

    // A writer's lock on the original's lock file, copied with it.
    let lock = wal_only.join(format!("{}.lock", ev.name));
    let held = std::fs::File::create(&lock).expect("lock file");
    // SAFETY: flock on a descriptor we own.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&held), libc::LOCK_EX) },
        0
    );
    let before = snapshot(&wal_only, ev.name);
    let o = ro_bind(&wal_only, &ro, &who);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(0),
        "answers from the database file: {}",
        show(&o)
    );
    assert_eq!(err.lines().count(), 1, "one note: {err}");
    assert!(
        err.contains("immutable") && err.contains("-wal") && err.contains("writer holds"),
        "the note says what is not read and that a writer is at work: {err}"
    );
    assert_eq!(before, snapshot(&wal_only, ev.name), "wal only: changed");
    drop(held);
}

#[test]
fn a_directory_as_db_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display().to_string();
    let capture = common::fixture("nat-outbound-l3-dlt246.pcap")
        .display()
        .to_string();
    for args in [
        vec![
            "who",
            "--db",
            &d,
            "--ip",
            "203.0.113.5",
            "--port",
            "1",
            "--at",
            "@0",
        ],
        vec!["stats", "--db", &d],
        vec!["export", "--db", &d, "--from", "@0", "--to", "@1"],
        vec!["prune", "--db", &d, "--before", "@0"],
        vec!["import", "--db", &d, &capture],
    ] {
        let o = run(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", show(&o));
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(err.contains("is a directory"), "{args:?}: {err}");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("list").count(),
        0,
        "nothing made in the directory"
    );
}

#[test]
fn a_database_the_user_may_not_read_is_named() {
    let test = "a_database_the_user_may_not_read_is_named";
    let ev = Evidence::new();
    let db = ev.folder.join(ev.name);
    chmod(&db, 0o000);
    chmod(&ev.folder, 0o555);
    if let Some(why) = unprivileged_unavailable(&ev.folder) {
        common::live::skip(test, &why);
        return;
    }
    let db = db.display().to_string();
    for q in ev.queries(&db) {
        let o = unprivileged(&q);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{q:?}: {}", show(&o));
        assert_eq!(err.lines().count(), 1, "{q:?}: one line: {err}");
        assert!(err.contains("permission denied"), "{q:?}: {err}");
    }
}

/// A FIFO as `--db` is refused at once (opening it to read would wait for a writer).
#[test]
fn a_fifo_as_db_is_refused_without_waiting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("db.fifo");
    let c = std::ffi::CString::new(fifo.display().to_string()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    let f = fifo.display().to_string();
    for args in [
        vec!["stats", "--db", &f],
        vec!["prune", "--db", &f, "--before", "@0"],
    ] {
        let mut p = common::Proc::spawn(Command::new(bin()).args(&args)).expect("spawn");
        let status = p.wait_timeout(std::time::Duration::from_secs(30));
        p.err.drain(std::time::Duration::from_secs(5));
        let err = p.err.seen.join("\n");
        assert_eq!(status.and_then(|s| s.code()), Some(2), "{args:?}: {err}");
        assert!(err.contains("not a regular file"), "{args:?}: {err}");
    }
}

/// A finished import hands the file back in rollback mode: a query on it, even in a
/// folder it could write, opens that one file and leaves nothing beside it (no `-wal` or
/// `-shm` to build and tear down: a lone `who` starts faster, and the evidence folder
/// stays as it was handed over).
#[test]
fn a_query_on_a_finished_database_leaves_nothing_beside_it() {
    let ev = Evidence::new();
    let before = snapshot(&ev.folder, ev.name);
    let db = ev.folder.join(ev.name).display().to_string();
    for q in ev.queries(&db) {
        let args: Vec<&str> = q.iter().map(String::as_str).collect();
        run_ok(&args);
        let after = snapshot(&ev.folder, ev.name);
        assert_eq!(
            after.names, before.names,
            "{q:?} left files beside the database"
        );
        assert!(after.bytes == before.bytes, "{q:?} changed the database");
    }
}
