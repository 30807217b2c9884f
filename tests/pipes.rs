//! Standard output that fails: every command that prints ends quietly with exit 0 when its
//! reader went away (`| head -1`), and with one line and exit 2 when the write itself fails
//! (`> /dev/full`); never a panic or a backtrace.

mod common;

use common::{bin, fixture, run_ok};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The write end of a pipe whose read end is already closed: the first write gets EPIPE,
/// whatever the size of the output and however fast the reader would have been.
fn closed_pipe() -> Stdio {
    let mut fds = [0 as libc::c_int; 2];
    // Close-on-exec, so that no other test's child keeps the read end open.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(r);
    Stdio::from(w)
}

fn dev_full() -> Stdio {
    Stdio::from(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full"),
    )
}

fn run_to(args: &[String], stdout: Stdio) -> Output {
    Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run pfstatelog")
}

/// Every command that prints to stdout, on a database of one fixture, asking only about
/// times the recorder watched (so no coverage warning is expected on stderr).
fn commands(dir: &Path) -> Vec<Vec<String>> {
    let db = dir.join("p.db").display().to_string();
    run_ok(&[
        "import",
        "--db",
        &db,
        &fixture("nat-outbound-l3-dlt246.pcap").display().to_string(),
    ]);
    let batch = dir.join("batch.csv");
    std::fs::write(
        &batch,
        "ip,port,time\n203.0.113.10,50028,2025-03-14T09:01:30Z\n203.0.113.10,50005,2025-03-14T09:05:00Z\n",
    )
    .expect("write batch");
    let batch = batch.display().to_string();
    let cap = fixture("nat-outbound-l3-dlt246.pcap").display().to_string();
    let who = |f: &'static str| {
        vec![
            "who",
            "--db",
            &db,
            "--ip",
            "203.0.113.10",
            "--port",
            "50028",
            "--at",
            "2025-03-14T09:01:30Z",
            "--format",
            f,
        ]
    };
    let batch_in = |f: &'static str| vec!["who", "--db", &db, "--batch", &batch, "--format", f];
    let export = |f: &'static str| {
        vec![
            "export",
            "--db",
            &db,
            "--from",
            "2025-03-14T09:01:00Z",
            "--to",
            "2025-03-14T09:20:00Z",
            "--format",
            f,
        ]
    };
    let all: Vec<Vec<&str>> = vec![
        who("table"),
        who("json"),
        who("csv"),
        who("json-report"),
        batch_in("csv"),
        batch_in("json"),
        batch_in("json-report"),
        batch_in("table"),
        vec!["history", "--db", &db, "--host", "192.168.1.0/24"],
        vec![
            "history",
            "--db",
            &db,
            "--host",
            "192.168.1.0/24",
            "--format",
            "json",
        ],
        vec!["stats", "--db", &db],
        vec!["stats", "--db", &db, "--json"],
        vec!["status", "--db", &db],
        vec!["status", "--db", &db, "--format", "json"],
        vec!["status", "--db", &db, "--format", "prometheus"],
        export("csv"),
        export("json"),
        vec!["decode", &cap],
        vec!["decode", "--format", "json", &cap],
        vec!["man"],
        vec!["completions", "bash"],
        vec![
            "record",
            "--check-args",
            "--no-syslog",
            "--db",
            &db,
            "pfsync0",
        ],
    ];
    all.into_iter()
        .map(|c| c.into_iter().map(String::from).collect())
        .collect()
}

#[test]
fn a_closed_pipe_ends_every_command_quietly_with_exit_0() {
    let tmp = tempfile::tempdir().expect("tmp");
    for args in commands(tmp.path()) {
        let out = run_to(&args, closed_pipe());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?} into a closed pipe: exit {:?}, stderr {err}",
            out.status.code()
        );
        assert!(
            err.is_empty(),
            "{args:?} into a closed pipe: stderr {err:?}"
        );
    }
}

#[test]
fn a_failing_stdout_gives_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().expect("tmp");
    for args in commands(tmp.path()) {
        let out = run_to(&args, dev_full());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} > /dev/full: exit {:?}, stderr {err}",
            out.status.code()
        );
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{args:?} > /dev/full: {err}"
        );
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?} > /dev/full: {err:?}");
        assert!(
            lines[0].starts_with("pfstatelog: ") && lines[0].contains("standard output"),
            "{args:?} > /dev/full: {err:?}"
        );
    }
}

/// The progress bar is for a terminal: with stderr a pipe, import prints its summary line
/// per capture and nothing else (no bar, no carriage returns, no escapes).
#[test]
fn import_on_a_pipe_shows_no_progress() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("i.db").display().to_string();
    let caps = [
        fixture("all-features-l5-ether.pcap").display().to_string(),
        fixture("nat-outbound-l3-dlt246.pcap").display().to_string(),
    ];
    let out = Command::new(bin())
        .args(["import", "--db", &db, &caps[0], &caps[1]])
        .stdin(Stdio::null())
        .output()
        .expect("run import");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(out.stdout.is_empty());
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "one summary line per capture: {err:?}");
    for (l, cap) in lines.iter().zip(&caps) {
        assert!(l.starts_with(&format!("{cap}: ")), "{l}");
    }
    assert!(
        !err.contains('\r') && !err.contains('\x1b') && !err.contains("ETA"),
        "{err:?}"
    );
}
