//! `record` on a full disk: the database lives on a small tmpfs that the test fills while
//! the recorder captures live pfsync traffic (a veth pair, one end in a network namespace,
//! set up by tests/common/live.rs as for tests/live.rs). The recorder must not exit, must
//! say once, clearly, on stderr and in syslog, that it cannot write, must keep capturing
//! (states pending in memory), and once space returns must write everything it captured
//! before, during and after the full period, lose nothing committed earlier, and stop with
//! exit 0 on SIGTERM.
//!
//! The tmpfs is mounted in a private mount namespace of the test's worker thread (the
//! programs it starts inherit it; the rest of the machine never sees the mount, and it
//! vanishes with the thread). Syslog is read from a datagram socket bound over /dev/log in
//! the recorder's own, further private, mount namespace (tests/common/live.rs,
//! `in_private_dev`, as in tests/live.rs).
//!
//! The oracle for what must be stored is `import` of the same frames (of the prefix sent so
//! far): live capture restamps packets, so only times are left out of the comparison.
//!
//! Needs root and `ip netns` (iproute2); otherwise the test prints why it is skipped and
//! passes, unless PFSTATELOG_REQUIRE_LIVE=1 (as in .ci/run), which makes that a failure.

mod common;

use common::live::{in_private_dev, setup, skip, Veth};
use common::{
    bin, fixture, imported_events, integrity, read_frames, row_strings, untimed_event, write_pcap,
    Proc,
};
use rusqlite::OpenFlags;
use std::ffi::CString;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TEST: &str = "record_survives_a_full_disk_and_writes_everything_once_space_returns";
const CAPTURE: &str = "ha-pair-clr-l5-ether";
/// Longest wait for any condition (each is normally met within a second or two).
const WAIT: Duration = Duration::from_secs(30);
/// SIGTERM to exit.
const STOP: Duration = Duration::from_secs(10);
/// The recorder's pause between write attempts (src/ingest.rs RETRY_EVERY).
const RETRY_EVERY: Duration = Duration::from_secs(2);
/// Room for the database, its WAL and the filler.
const TMPFS_SIZE: &str = "16m";
/// syslog priorities: daemon (3 << 3) | err (3), daemon | warning (4).
const DAEMON_ERR: &str = "<27>";
const DAEMON_WARNING: &str = "<28>";
const DAEMON_INFO: &str = "<30>";

// ---------------------------------------------------------------------------------------
// The small filesystem.

fn last_os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn c_path(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).expect("path without NUL")
}

/// Move the calling thread into a private mount namespace and mount a tmpfs of `size` on
/// `dir` there. Threads and programs it starts afterwards see the mount; nothing else does,
/// and the mount goes away with the last of them. Err: no mount namespace here.
fn private_tmpfs(dir: &Path, size: &str) -> Result<Unmount, String> {
    let target = c_path(dir);
    let opts = CString::new(format!("size={size},mode=0700")).expect("options");
    let null = std::ptr::null();
    // SAFETY: plain syscalls on NUL-terminated strings that outlive them. unshare with
    // CLONE_NEWNS gives this thread its own copy of the filesystem information (CLONE_FS)
    // and of the mount table; the other threads of the test process keep theirs.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(last_os_error("unshare(CLONE_NEWNS)"));
        }
        // Private first, so that no mount made here propagates to the host.
        let private = libc::MS_REC | libc::MS_PRIVATE;
        if libc::mount(null, c"/".as_ptr(), null, private, null.cast()) != 0 {
            return Err(last_os_error("making / private"));
        }
        if libc::mount(
            c"pfstatelog-full".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            opts.as_ptr().cast(),
        ) != 0
        {
            return Err(last_os_error("mounting a tmpfs"));
        }
    }
    Ok(Unmount(target))
}

/// Detaches the tmpfs (so the temporary directory under it can be removed).
struct Unmount(CString);

impl Drop for Unmount {
    fn drop(&mut self) {
        // SAFETY: a NUL-terminated path.
        unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Free blocks for an unprivileged user and for root.
fn free_blocks(dir: &Path) -> (u64, u64) {
    let p = c_path(dir);
    // SAFETY: statvfs is plain old data, written by the call.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a valid out pointer.
    assert_eq!(unsafe { libc::statvfs(p.as_ptr(), &mut s) }, 0, "statvfs");
    (s.f_bavail as u64, s.f_bfree as u64)
}

/// Write `path` until the filesystem is full; returns how many bytes it took.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("create the filler");
    let buf = vec![0xa5u8; 1 << 16];
    let mut n = 0u64;
    loop {
        match f.write(&buf) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    n
}

// ---------------------------------------------------------------------------------------
// The database.

/// Every stored lifetime without its times (live capture restamps packets), sorted.
fn rows(db: &Path) -> Vec<String> {
    // Archived lifetimes become one row each again, in a copy: the database may be a running
    // recorder's, on a full disk, and the test must not write it.
    let archived: i64 =
        pfstatelog::store::sqlite::pagesum::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row("SELECT count(*) FROM archive_batches", [], |r| r.get(0)))
            .unwrap_or(0);
    let copy = tempfile::tempdir().expect("tmp");
    let db = if archived > 0 {
        let to = copy.path().join("copy.db");
        pfstatelog::store::sqlite::pagesum::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.execute("VACUUM INTO ?1", [to.display().to_string()]))
            .expect("copy the database");
        let c = pfstatelog::store::sqlite::pagesum::open(&to).expect("open the copy");
        pfstatelog::store::sqlite::unarchive_all(&c).expect("unarchive");
        to
    } else {
        db.to_path_buf()
    };
    let db = db.as_path();
    let c = pfstatelog::store::sqlite::pagesum::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", db.display()));
    c.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    // A running recorder's journal open lifetimes are in its journal (those not ended since).
    const COLS: &str = "creator_id, state_id, ifname, af, proto, direction,
                    hex(w_addr0), w_port0, hex(w_addr1), w_port1, hex(s_addr0), s_port0,
                    hex(s_addr1), s_port1, nat, start_us IS NULL, end_us IS NULL, end_reason,
                    packets0, packets1, bytes0, bytes1";
    let mut st = c
        .prepare(&format!(
            "SELECT {COLS} FROM states
             UNION ALL
             SELECT {COLS} FROM journal y
              WHERE NOT EXISTS (SELECT 1 FROM journal_ends e WHERE e.creator_id = y.creator_id
                                   AND e.state_id = y.state_id AND e.seq > y.seq)"
        ))
        .expect("prepare");
    let mut v = row_strings(&mut st);
    v.sort();
    v
}

/// `rows` as a running recorder promises them: the counters of a journal open lifetime may
/// be up to a minute behind (its journal row is rewritten only then; a clean stop writes
/// them all), so they are left out of open rows. Whether a commit during the full period
/// fitted in WAL space decides which counters the journal got.
fn open_rows_without_counters(v: &[String]) -> Vec<String> {
    let mut out: Vec<String> = v
        .iter()
        .map(|r| {
            let mut f: Vec<&str> = r.split('|').collect();
            if f.get(16) == Some(&"Integer(1)") {
                for x in f.iter_mut().skip(18).take(4) {
                    *x = "-";
                }
            }
            f.join("|")
        })
        .collect();
    out.sort();
    out
}

/// (status, packets) of the database's runs.
fn runs(db: &Path) -> Vec<(String, i64)> {
    let c = pfstatelog::store::sqlite::pagesum::open(db).expect("open");
    let mut st = c
        .prepare("SELECT status, packets FROM runs ORDER BY id")
        .expect("prepare");
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Syslog: a datagram socket read by a thread (a writer blocks when the socket is full).

struct SyslogSink {
    got: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SyslogSink {
    fn bind(path: &Path) -> SyslogSink {
        let sock = UnixDatagram::bind(path).expect("bind the log socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (got, stop) = (got.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 8192];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = sock.recv(&mut buf) {
                        let d = String::from_utf8_lossy(&buf[..n]).into_owned();
                        got.lock().expect("lock").push(d);
                    }
                }
            })
        };
        SyslogSink {
            got,
            stop,
            thread: Some(thread),
        }
    }

    /// The datagrams so far with priority `pri` from `pfstatelog[pid]`, as messages.
    fn messages(&self, pri: &str, pid: libc::pid_t) -> Vec<String> {
        let tag = format!(" pfstatelog[{pid}]: ");
        self.got
            .lock()
            .expect("lock")
            .iter()
            .filter(|d| d.starts_with(pri))
            .filter_map(|d| d.find(&tag).map(|at| d[at + tag.len()..].to_string()))
            .collect()
    }
}

impl Drop for SyslogSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `record -v --db DB IFACE` in a private mount namespace (a copy of the caller's, so it
/// sees the tmpfs) where /dev is `devdir`, holding the log socket.
fn start_recorder(iface: &str, db: &Path, devdir: &Path) -> Result<Proc, String> {
    let mut cmd = Command::new(bin());
    cmd.arg("record").arg("-v").arg("--db").arg(db).arg(iface);
    in_private_dev(&mut cmd, devdir);
    let mut p = Proc::spawn(&mut cmd).map_err(|e| format!("record in a mount namespace: {e}"))?;
    let ready = p.err.wait_for(WAIT, |s| {
        s.iter().any(|l| l.starts_with("recording pfsync on "))
    });
    assert!(ready, "record did not start capturing:\n{}", p.transcript());
    Ok(p)
}

/// Poll `cond` (up to WAIT) while collecting the recorder's stderr; the recorder must stay up.
fn wait_until(p: &mut Proc, what: &str, mut cond: impl FnMut(&Proc) -> bool) {
    let what = format!("record: {what}");
    p.poll_until(
        WAIT,
        &what,
        |p| cond(p),
        |p| {
            p.err.wait_for(Duration::from_millis(100), |_| false);
        },
    );
}

/// Let `d` pass while collecting stderr; the recorder must stay up all along.
fn stay_up(p: &mut Proc, d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if let Some(s) = p.exited() {
            panic!("record exited ({s}):\n{}", p.transcript());
        }
        p.err.wait_for(Duration::from_millis(100), |_| false);
    }
}

fn events(p: &Proc) -> Vec<String> {
    p.err.seen.iter().filter_map(|l| untimed_event(l)).collect()
}

fn lines_with(p: &Proc, needle: &str) -> Vec<String> {
    p.err
        .seen
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------

#[test]
fn record_survives_a_full_disk_and_writes_everything_once_space_returns() {
    let Some(link) = setup(TEST, 'f') else {
        return;
    };
    let iface = link.host.clone();
    // The mount namespace belongs to this worker thread alone.
    let worker = std::thread::spawn(move || body(&iface, &link));
    if let Err(panic) = worker.join() {
        std::panic::resume_unwind(panic);
    }
}

fn body(iface: &str, link: &Veth) {
    let t_start = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let small = tmp.path().join("small");
    std::fs::create_dir(&small).expect("mkdir");
    // Dropped before `tmp`, so the directory can be removed.
    let _unmount = match private_tmpfs(&small, TMPFS_SIZE) {
        Ok(u) => u,
        Err(why) => return skip(TEST, &format!("no private tmpfs: {why}")),
    };

    // Three phases of the capture: before, during and after the full period; each opens
    // and closes states (the CLR falls in the second).
    let frames = read_frames(&fixture(&format!("{CAPTURE}.pcap")));
    let n = frames.len();
    let (a, b) = (n / 3, 2 * n / 3);
    let refs: Vec<(PathBuf, Vec<String>)> = [a, b, n]
        .iter()
        .map(|&k| {
            let cap = tmp.path().join(format!("first{k}.pcap"));
            write_pcap(&cap, &frames[..k]);
            let db = tmp.path().join(format!("first{k}.db"));
            let ev = imported_events(&cap, &db);
            (db, ev)
        })
        .collect();
    let want = refs[2].1.clone();
    let (n_a, n_b) = (refs[0].1.len(), refs[1].1.len());
    assert_eq!(refs[0].1, want[..n_a], "import of a prefix logs a prefix");
    assert_eq!(refs[1].1, want[..n_b], "import of a prefix logs a prefix");
    let (rows_a, rows_b, rows_all) = (rows(&refs[0].0), rows(&refs[1].0), rows(&refs[2].0));
    for (phase, ev) in [
        ("before", &want[..n_a]),
        ("during", &want[n_a..n_b]),
        ("after", &want[n_b..]),
    ] {
        assert!(
            ev.iter().any(|l| l.starts_with("start ")) && ev.iter().any(|l| l.starts_with("end ")),
            "the frames sent {phase} the full period open and close states"
        );
    }
    assert!(rows_a.len() < rows_b.len() && rows_b.len() < rows_all.len());

    let devdir = tmp.path().join("dev");
    std::fs::create_dir(&devdir).expect("mkdir");
    let syslog = SyslogSink::bind(&devdir.join("log"));
    let db = small.join("live.db");
    let mut p = match start_recorder(iface, &db, &devdir) {
        Ok(p) => p,
        Err(why) => return skip(TEST, &why),
    };
    let pid = p.pid();
    let tx = link.sender();

    // 1. Before: sent, captured and committed.
    tx.send_all(&frames[..a]);
    wait_until(&mut p, "the first third committed", |_| {
        open_rows_without_counters(&rows(&db)) == open_rows_without_counters(&rows_a)
    });
    assert_eq!(events(&p), want[..n_a]);

    // 2. Full: the recorder says so once, keeps capturing, commits nothing, loses nothing.
    let filler = small.join("filler");
    let filled = fill(&filler);
    assert_eq!(free_blocks(&small), (0, 0), "the tmpfs is full");
    let full_since = Instant::now();
    // The traffic of the full period, in four bursts over more than one retry period. A
    // small commit may still fit in WAL space SQLite already holds (a checkpoint lets it
    // reuse the file), so the error is awaited once there is traffic to write.
    let during = &frames[a..b];
    let mut saw_error = None;
    for chunk in during.chunks(during.len().div_ceil(4)) {
        tx.send_all(chunk);
        stay_up(&mut p, RETRY_EVERY / 2);
        if saw_error.is_none() && !lines_with(&p, "cannot write the database").is_empty() {
            saw_error = Some(full_since.elapsed());
        }
    }
    wait_until(&mut p, "an error line about the full disk", |p| {
        !lines_with(p, "cannot write the database").is_empty()
    });
    let saw_error = saw_error.unwrap_or_else(|| full_since.elapsed());
    wait_until(&mut p, "the second third captured while full", |p| {
        events(p).len() >= n_b
    });
    // Several write attempts fail while the disk stays full.
    stay_up(
        &mut p,
        (RETRY_EVERY * 3).saturating_sub(full_since.elapsed()),
    );
    assert_eq!(events(&p), want[..n_b], "captured while full");
    // (creator, state id) of each row: a commit that fit may have ended a state since.
    let ids = |v: &[String]| -> Vec<String> {
        v.iter()
            .map(|r| r.split('|').take(2).collect::<Vec<_>>().join("|"))
            .collect()
    };
    let while_full = ids(&rows(&db));
    assert!(
        ids(&rows_a).iter().all(|r| while_full.contains(r)) && while_full.len() < rows_b.len(),
        "while full nothing committed is lost, and not all of the full period's traffic fits"
    );
    let errors = lines_with(&p, "cannot write the database");
    assert_eq!(
        errors.len(),
        1,
        "one error line, not one per retry:\n{}",
        p.transcript()
    );
    let e = &errors[0];
    assert!(
        e.starts_with("pfstatelog: error: cannot write the database: ")
            && e.contains(&db.display().to_string())
            && e.contains("database or disk is full")
            && e.contains("still capturing")
            && e.contains("retrying"),
        "a clear error line: {e}"
    );
    assert!(
        lines_with(&p, "writable again").is_empty(),
        "no recovery is announced while the disk is still full:\n{}",
        p.transcript()
    );
    assert!(p.exited().is_none(), "record is still running");
    let full_for = full_since.elapsed();

    // 3. Space returns: everything captured so far is written within a few retry periods.
    std::fs::remove_file(&filler).expect("remove the filler");
    let freed = Instant::now();
    wait_until(&mut p, "the first two thirds committed", |_| {
        open_rows_without_counters(&rows(&db)) == open_rows_without_counters(&rows_b)
    });
    let recovered = freed.elapsed();
    wait_until(
        &mut p,
        "a line saying the database is writable again",
        |p| !lines_with(p, "writable again").is_empty(),
    );
    let back = lines_with(&p, "writable again");
    assert_eq!(back.len(), 1, "{back:?}");
    let written: usize = back[0]
        .split("writable again; ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no count of written events in {:?}", back[0]));
    // Commits that fitted in WAL space may have written part of the full period already;
    // the rest, and at least one event, waited for the space (rows_b above holds them all).
    assert!(
        written > 0,
        "{written} pending events written: {:?}",
        back[0]
    );

    // 4. After: captured and committed as usual.
    tx.send_all(&frames[b..]);
    wait_until(&mut p, "all of the capture committed", |_| {
        open_rows_without_counters(&rows(&db)) == open_rows_without_counters(&rows_all)
    });

    // 5. SIGTERM: exit 0, and every state of the capture is stored, once.
    p.stop(STOP);
    assert_eq!(events(&p), want, "the state lines of import, in order");
    let opened = want.iter().filter(|l| l.starts_with("start ")).count();
    let stopped = format!(
        "stopped: {opened} states opened, {} closed this run",
        want.len() - opened
    );
    assert!(
        p.err.seen.contains(&stopped),
        "no {stopped:?}:\n{}",
        p.transcript()
    );
    assert_eq!(integrity(&db), "ok");
    assert_eq!(rows(&db), rows_all, "every state, before, during and after");
    assert_eq!(runs(&db), vec![("stopped".to_string(), n as i64)]);

    // Syslog got the same error and recovery lines.
    let deadline = Instant::now() + WAIT;
    while syslog.messages(DAEMON_INFO, pid).last() != Some(&stopped) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        syslog.messages(DAEMON_INFO, pid).last(),
        Some(&stopped),
        "syslog daemon.info ends with the stop line"
    );
    let err_msgs = syslog.messages(DAEMON_ERR, pid);
    assert_eq!(
        err_msgs,
        [e.trim_start_matches("pfstatelog: error: ").to_string()],
        "syslog daemon.err"
    );
    let warn_msgs = syslog.messages(DAEMON_WARNING, pid);
    assert_eq!(
        warn_msgs,
        [back[0]
            .trim_start_matches("pfstatelog: warning: ")
            .to_string()],
        "syslog daemon.warning"
    );
    println!(
        "{n} frames, {} state lines; filler {filled} bytes; error line {saw_error:?} after \
         the disk filled; full for {full_for:?}; all written {recovered:?} after space \
         returned ({written} pending events); whole test {:?}",
        want.len(),
        t_start.elapsed()
    );
}
