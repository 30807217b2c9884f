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
    // A restart finds the user's own files and takes them as they are.
    run_as_nobody(&[], &db);
    let f = std::fs::metadata(&db).expect("db");
    assert_eq!((f.uid(), f.permissions().mode() & 0o777), (uid, 0o640));
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

/// Start `record --user nobody` and wait for it to give up; one that keeps running (it took
/// the folder as it was) is stopped and reported as `None`.
fn refused(db: &Path) -> Option<(i32, String)> {
    let mut child = Command::new(bin())
        .args(["record", "--no-syslog", "--user", "nobody", "--db"])
        .arg(db)
        .arg("lo")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn record");
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                e.read_to_string(&mut err).expect("stderr");
            }
            return Some((st.code().unwrap_or(-1), err));
        }
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A root-owned file outside the database folder, and how it looked before.
struct Bait {
    path: std::path::PathBuf,
    content: Vec<u8>,
}

impl Bait {
    fn new(dir: &Path) -> Bait {
        let secret = dir.join("secret");
        std::fs::create_dir(&secret).expect("mkdir");
        let path = secret.join("shadow");
        let content = b"root:$6$do-not-touch:19000::::::\n".to_vec();
        std::fs::write(&path, &content).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        Bait { path, content }
    }

    fn assert_untouched(&self, what: &str) {
        let m = std::fs::symlink_metadata(&self.path).expect("bait");
        assert_eq!((m.uid(), m.gid()), (0, 0), "{what}: owner of the target");
        assert_eq!(m.permissions().mode() & 0o7777, 0o600, "{what}: mode");
        assert_eq!(
            std::fs::read(&self.path).expect("read"),
            self.content,
            "{what}: content"
        );
    }
}

/// A folder for the database, owned by `uid:gid` with `mode`, inside a fresh root-owned 0755
/// temporary directory.
fn db_folder(uid: u32, gid: u32, mode: u32) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let dir = tmp.path().join("db");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).expect("chmod");
    std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown");
    (tmp, dir)
}

fn assert_one_line_naming(out: Option<(i32, String)>, what: &str, names: &str) {
    let Some((code, err)) = out else {
        panic!("{what}: record took the folder and kept running")
    };
    assert_eq!(code, 2, "{what}: exit status; stderr: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{what}: one line: {err}");
    assert!(err.contains(names), "{what}: names {names}: {err}");
}

/// A recorder user who plants a symlink or a hard link under any name the recorder uses
/// (`DB`, `DB-wal`, `DB-shm`, `DB.lock`) must not get root's file: record refuses to start,
/// and the file keeps its owner, mode and content.
#[test]
fn record_refuses_planted_links_in_the_database_folder() {
    let Some((uid, gid)) = skip() else { return };
    for suffix in ["", "-wal", "-shm", ".lock"] {
        for hard in [false, true] {
            let (tmp, dir) = db_folder(uid, gid, 0o750);
            let bait = Bait::new(tmp.path());
            let db = dir.join("pfstatelog.db");
            let planted = dir.join(format!("pfstatelog.db{suffix}"));
            let what = format!(
                "{} {}",
                if hard { "hard link" } else { "symlink" },
                planted.display()
            );
            if hard {
                std::fs::hard_link(&bait.path, &planted).expect("ln");
            } else {
                std::os::unix::fs::symlink(&bait.path, &planted).expect("ln -s");
            }
            let out = refused(&db);
            bait.assert_untouched(&what);
            assert_one_line_naming(out, &what, &planted.display().to_string());
        }
    }
}

/// The database folder must be writable by nobody but root and the user: otherwise a third
/// party could plant files there between the checks and the recorder's use of them.
#[test]
fn record_refuses_a_database_folder_others_control() {
    let Some((uid, gid)) = skip() else { return };
    for (owner, group, mode, what) in [
        (uid, 4243, 0o770, "writable by another group"),
        (0, 4243, 0o770, "root's, writable by another group"),
        (uid, gid, 0o757, "world-writable"),
        (uid, gid, 0o1777, "sticky world-writable"),
        (4242, gid, 0o750, "a third user's"),
        (0, 0, 0o755, "root's, which the user cannot write"),
    ] {
        let (_tmp, dir) = db_folder(owner, group, mode);
        let out = refused(&dir.join("pfstatelog.db"));
        assert_one_line_naming(out, what, &dir.display().to_string());
        assert_eq!(
            std::fs::read_dir(&dir).expect("ls").count(),
            0,
            "{what}: nothing created"
        );
    }
}

/// systemd's `StateDirectory=` layout: root's folder, writable by the user's own group.
#[test]
fn record_takes_a_root_folder_writable_by_the_users_own_group() {
    let Some((uid, gid)) = skip() else { return };
    let own = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .is_some_and(|g| g.mem.iter().all(|m| m == "nobody"));
    if !own {
        eprintln!("skipped: nobody's group has other members here");
        return;
    }
    let (_tmp, dir) = db_folder(0, gid, 0o770);
    let db = dir.join("pfstatelog.db");
    run_as_nobody(&[], &db);
    let f = std::fs::metadata(&db).expect("db");
    assert_eq!((f.uid(), f.gid()), (uid, gid));
}

/// A missing database folder is created by root: only under folders that root alone
/// controls, reached without symlinks, or the user could redirect root's mkdir and chown.
#[test]
fn record_creates_the_database_folder_only_under_root_folders() {
    let Some((uid, gid)) = skip() else { return };
    // Under a folder the user owns.
    let (_tmp, home) = db_folder(uid, gid, 0o755);
    let out = refused(&home.join("new/pfstatelog.db"));
    assert_one_line_naming(out, "under the user's folder", &home.display().to_string());
    assert!(!home.join("new").exists(), "nothing created");
    // Through a symlink (root's own, here) to a root folder.
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).expect("mkdir");
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).expect("ln -s");
    let out = refused(&link.join("new/pfstatelog.db"));
    assert_one_line_naming(out, "through a symlink", &link.display().to_string());
    assert!(!real.join("new").exists(), "nothing created");
}
