//! Helpers shared by the integration tests: the built binary, fixtures, pcap files, child
//! processes whose output is read line by line with timeouts (never an unbounded wait), and
//! database checks; `live` holds the setup of the live-capture tests.
#![allow(dead_code)] // each test crate uses its own subset

pub mod clickhouse;
pub mod live;

use pfstatelog::source::file::CaptureFile;
use pfstatelog::source::Frame;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pfstatelog")
}

/// `tests/fixtures/NAME`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Every frame of a capture file.
pub fn read_frames(p: &Path) -> Vec<Frame> {
    let mut c = CaptureFile::open(&p.display().to_string()).expect("open capture");
    let mut v = Vec::new();
    while let Some(f) = c.next_frame() {
        v.push(f.expect("readable frame"));
    }
    v
}

/// A classic little-endian microsecond pcap of `frames` (link type of the first frame).
pub fn write_pcap(p: &Path, frames: &[Frame]) {
    let lt = frames.first().map_or(1, |f| f.linktype);
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&65535u32.to_le_bytes());
    b.extend_from_slice(&lt.to_le_bytes());
    for f in frames {
        b.extend_from_slice(&(f.ts_us.div_euclid(1_000_000) as u32).to_le_bytes());
        b.extend_from_slice(&(f.ts_us.rem_euclid(1_000_000) as u32).to_le_bytes());
        b.extend_from_slice(&(f.data.len() as u32).to_le_bytes());
        b.extend_from_slice(&f.orig_len.max(f.data.len() as u32).to_le_bytes());
        b.extend_from_slice(&f.data);
    }
    std::fs::write(p, b).expect("write pcap");
}

/// A pcap (LINKTYPE_PFSYNC) with one OpenBSD pfsync packet per (seconds, messages).
pub fn pfsync_capture(path: &Path, packets: &[(i64, Vec<pfstatelog::wire::Message>)]) {
    use pfstatelog::wire::openbsd;
    let frames: Vec<Frame> = packets
        .iter()
        .map(|(t, msgs)| {
            let data = openbsd::emit_packet(&openbsd::sections_for(msgs), [0; 16]);
            Frame {
                ts_us: t * 1_000_000,
                linktype: 246,
                orig_len: data.len() as u32,
                data,
            }
        })
        .collect();
    write_pcap(path, &frames);
}

/// Run the binary to completion.
pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run pfstatelog")
}

/// Run the binary; it must exit 0. Returns stdout.
pub fn run_ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "pfstatelog {args:?}: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("utf-8 stdout")
}

/// `export` of every lifetime the file holds, in `format` (csv or json); it must exit 0.
pub fn export_all(db: &str, format: &str) -> String {
    run_ok(&[
        "export",
        "--db",
        db,
        "--from",
        "@0",
        "--to",
        "@4000000000",
        "--format",
        format,
    ])
}

/// Lines of a child's stdout or stderr, read by a thread, collected in `seen`.
pub struct Lines {
    rx: Receiver<String>,
    pub seen: Vec<String>,
    pub closed: bool,
}

impl Lines {
    pub fn new(r: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(r).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
            closed: false,
        }
    }

    /// Collect lines until `done(&seen)` holds (true) or `timeout` passes or the stream ends.
    pub fn wait_for(&mut self, timeout: Duration, mut done: impl FnMut(&[String]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.seen) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if self.closed || left.is_zero() {
                return false;
            }
            match self.rx.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.closed = true,
            }
        }
    }

    /// Everything until the stream ends (bounded by `timeout`).
    pub fn drain(&mut self, timeout: Duration) {
        self.wait_for(timeout, |_| false);
    }
}

/// A running child with piped output; killed (and reaped) when dropped, so a failing test
/// leaves nothing behind.
pub struct Proc {
    pub child: Child,
    pub out: Lines,
    pub err: Lines,
}

impl Proc {
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Proc> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let out = Lines::new(child.stdout.take().expect("stdout"));
        let err = Lines::new(child.stderr.take().expect("stderr"));
        Ok(Proc { child, out, err })
    }

    pub fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill has no memory preconditions; the child is not reaped yet.
        unsafe { libc::kill(self.pid(), sig) };
    }

    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM: the child must exit 0 within `timeout`; its stderr is then read to the end.
    /// Returns how long it took to exit.
    pub fn stop(&mut self, timeout: Duration) -> Duration {
        let t = Instant::now();
        self.signal(libc::SIGTERM);
        let status = self.wait_timeout(timeout);
        let took = t.elapsed();
        let status = status.unwrap_or_else(|| {
            panic!(
                "still running {timeout:?} after SIGTERM:\n{}",
                self.transcript()
            )
        });
        self.err.drain(Duration::from_secs(5));
        assert!(
            status.success(),
            "exited with {status} after SIGTERM:\n{}",
            self.transcript()
        );
        took
    }

    /// Call `done` until it holds, for at most `timeout`. After each `false` the child must
    /// still be running and time be left (else a panic naming `what`, with the transcript);
    /// then `pause` (e.g. collect output for a while) before the next call.
    pub fn poll_until(
        &mut self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&mut Proc) -> bool,
        mut pause: impl FnMut(&mut Proc),
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            if done(self) {
                return;
            }
            if let Some(s) = self.exited() {
                panic!("exited ({s}) waiting for {what}:\n{}", self.transcript());
            }
            assert!(
                Instant::now() < deadline,
                "not within {timeout:?}: {what}:\n{}",
                self.transcript()
            );
            pause(self);
        }
    }

    /// What the child printed so far, for assertion messages.
    pub fn transcript(&self) -> String {
        let tail = |v: &[String]| v[v.len().saturating_sub(30)..].join("\n");
        format!(
            "--- stdout (last 30 lines) ---\n{}\n--- stderr (last 30 lines) ---\n{}",
            tail(&self.out.seen),
            tail(&self.err.seen)
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A recorder log line (`start ...` / `end ...`) without the parts that depend on packet
/// timestamps (`start=`, `end=`, `duration=`), so live and imported runs compare equal.
pub fn untimed_event(line: &str) -> Option<String> {
    if !(line.starts_with("start ") || line.starts_with("end ")) {
        return None;
    }
    Some(
        line.split_whitespace()
            .filter(|t| {
                !(t.starts_with("start=") || t.starts_with("end=") || t.starts_with("duration="))
            })
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// The state start/end lines `import -v` logs for `capture` (into a scratch database), untimed.
pub fn imported_events(capture: &Path, db: &Path) -> Vec<String> {
    let o = run(&[
        "import",
        "-v",
        "--db",
        &db.display().to_string(),
        &capture.display().to_string(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "import {}: {err}", capture.display());
    err.lines().filter_map(untimed_event).collect()
}

/// `PRAGMA integrity_check` of the database `db`: "ok" when it is sound.
pub fn integrity(db: &Path) -> String {
    pfstatelog::store::sqlite::pagesum::open(db)
        .and_then(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get(0)))
        .unwrap_or_else(|e| panic!("integrity_check {}: {e}", db.display()))
}

/// Every row of `st`, in the order the query returns them, as one string: each column's
/// value in `Debug` form followed by `|`.
pub fn row_strings(st: &mut rusqlite::Statement) -> Vec<String> {
    let n = st.column_count();
    st.query_map([], |r| {
        let mut s = String::new();
        for i in 0..n {
            s.push_str(&format!("{:?}|", r.get::<_, rusqlite::types::Value>(i)?));
        }
        Ok(s)
    })
    .expect("query")
    .map(|r| r.expect("row"))
    .collect()
}

/// A `lifetimes` row in the shape `who --format json` prints.
/// A row of `sql`'s `lifetimes` (or an SQLite export) in the shape of `who --format json`:
/// `nat` a boolean, counters as pairs, the integer times left out.
pub fn who_shape(r: &Value) -> Value {
    let mut o = r.as_object().expect("row object").clone();
    o.insert("nat".into(), json!(r["nat"].as_i64() == Some(1)));
    o.insert("packets".into(), json!([r["packets_out"], r["packets_in"]]));
    o.insert("bytes".into(), json!([r["bytes_out"], r["bytes_in"]]));
    for k in [
        "packets_out",
        "packets_in",
        "bytes_out",
        "bytes_in",
        "start_us",
        "end_us",
        "until_us",
    ] {
        o.remove(k);
    }
    Value::Object(o)
}

/// The rows as sorted JSON strings, to compare sets of rows.
pub fn sorted(v: impl IntoIterator<Item = Value>) -> Vec<String> {
    let mut s: Vec<String> = v.into_iter().map(|x| x.to_string()).collect();
    s.sort();
    s
}
