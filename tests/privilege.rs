//! `record --user NAME [--chroot DIR]`: the capture is opened as root, then the recorder runs
//! as the user, with the database directory 0750 and the file 0640 owned by it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pfstatelog")
}

fn nobody() -> Option<(u32, u32)> {
    let u = nix::unistd::User::from_name("nobody").ok().flatten()?;
    Some((u.uid.as_raw(), u.gid.as_raw()))
}

fn status_ids(pid: u32) -> Option<(String, String)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
    };
    Some((field("Uid:")?, field("Groups:").unwrap_or_default()))
}

/// Run the recorder on the loopback interface (nothing arrives there) and inspect it.
fn run_as_nobody(extra: &[&str], db: &Path) -> (String, String) {
    let mut child = Command::new(bin())
        .args(["record", "--no-syslog", "-v", "--user", "nobody", "--db"])
        .arg(db)
        .args(extra)
        .arg("lo")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn record");
    let t0 = Instant::now();
    // Wait until the privileges are gone (the database is opened after the drop).
    let ids = loop {
        if let Some((uid, groups)) = status_ids(child.id()) {
            if !uid.starts_with("0 ") && db.exists() {
                break (uid, groups);
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "record never dropped privileges"
        );
        if let Ok(Some(st)) = child.try_wait() {
            panic!("record exited early: {st}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling our own child.
    assert_eq!(
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) },
        0,
        "SIGTERM"
    );
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            assert!(st.success(), "record exits 0 on SIGTERM: {st}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "record did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    ids
}

fn skip() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: dropping privileges needs root");
        return None;
    }
    let n = nobody();
    if n.is_none() {
        eprintln!("skipped: no user \"nobody\" here");
    }
    n
}

#[test]
fn record_drops_to_the_user_and_creates_the_database_for_it() {
    let Some((uid, gid)) = skip() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let db = tmp.path().join("var/db/pfstatelog/pfstatelog.db");
    let (ids, groups) = run_as_nobody(&[], &db);
    assert_eq!(
        ids,
        format!("{uid} {uid} {uid} {uid}"),
        "real, effective, saved and fs uid"
    );
    assert_eq!(
        groups.trim(),
        gid.to_string(),
        "supplementary groups dropped"
    );
    let dir = std::fs::metadata(db.parent().expect("dir")).expect("dir");
    assert_eq!(dir.permissions().mode() & 0o777, 0o750);
    assert_eq!((dir.uid(), dir.gid()), (uid, gid));
    let f = std::fs::metadata(&db).expect("db");
    assert_eq!(f.permissions().mode() & 0o777, 0o640);
    assert_eq!((f.uid(), f.gid()), (uid, gid));
    let stats = Command::new(bin())
        .args(["stats", "--json", "--db"])
        .arg(&db)
        .output()
        .expect("stats");
    let v: serde_json::Value = serde_json::from_slice(&stats.stdout).expect("json");
    assert_eq!(v["runs"][0]["kind"], "record");
    assert_eq!(v["runs"][0]["status"], "stopped");
}

#[test]
fn record_chroots_before_dropping() {
    let Some((uid, _)) = skip() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let root = tmp.path().join("chroot");
    std::fs::create_dir(&root).expect("mkdir");
    let db = root.join("db/pfstatelog.db");
    let (ids, _) = run_as_nobody(&["--chroot", &root.display().to_string()], &db);
    assert!(ids.starts_with(&uid.to_string()), "{ids}");
    let f = std::fs::metadata(&db).expect("db created inside the chroot");
    assert_eq!(f.uid(), uid);
    let outside = Command::new(bin())
        .args(["record", "--no-syslog", "--user", "nobody", "--chroot"])
        .arg(&root)
        .args(["--db", "/tmp/elsewhere.db", "lo"])
        .output()
        .expect("record");
    assert_eq!(outside.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&outside.stderr).contains("must lie inside"));
    let root_user = Command::new(bin())
        .args(["record", "--user", "root", "--db", "/tmp/x.db", "lo"])
        .output()
        .expect("record");
    assert_eq!(root_user.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&root_user.stderr).contains("unprivileged"));
}
