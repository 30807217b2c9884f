//! `pfstatelog import-pfctl FILE|-` and `record --snapshot`: states older than the recorder,
//! from `pfctl -ss -vv`.
//!
//! Each state read (src/pfctl.rs) goes through the recorder's tracker and writer as if a full
//! UPD for it had arrived when the snapshot was taken, with `creation` = its age: it opens a
//! lifetime starting at (taken − age), or refreshes one already open. The store merges by
//! (creator, id) and time, so a later INS/UPD/DEL_C for the same state joins the same row,
//! and an earlier DEL_C kept as evidence (a state the recorder only saw end) gets its keys.
//! The run is recorded with kind `snapshot`, covering the instant it was taken.

use crate::cli::ImportPfctlArgs;
use crate::model::{Event, Micros};
use crate::model::{Flavor, FullState};
use crate::pfctl::{ParseError, Reader};
use crate::report::line::event_line;
use crate::store::{self, RunCounters, RunInfo};
use crate::syslog::Logger;
use crate::time::{format_rfc3339, parse_time, Zone};
use crate::track::Tracker;
use crate::wire::{Decoded, Message};
use anyhow::{anyhow, Context};
use std::io::BufRead;
use std::time::{Duration, UNIX_EPOCH};

/// pfsync v6 action code of a full UPD (what a snapshot state stands for).
const ACT_UPD: u8 = 14;
/// Events written per transaction.
const BATCH: usize = 20_000;

/// What loading a snapshot did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    /// States read and applied.
    pub states: u64,
    /// Of those, lifetimes the tracker did not have open (new, or merged into a stored row).
    pub opened: u64,
    /// Of those, lifetimes already open (counters refreshed).
    pub refreshed: u64,
    /// Lines or states that could not be read.
    pub rejected: u64,
    /// States of other creators (`--creator`).
    pub skipped: u64,
    pub first_error: Option<String>,
}

/// How to load: where, as which run, at which time.
pub(crate) struct Load<'a> {
    pub db: &'a str,
    pub run: RunInfo,
    /// When the snapshot was taken (start = taken − age).
    pub taken: Micros,
    /// Only states of this creator.
    pub creator: Option<u32>,
    /// Flavour for creators the database does not know yet.
    pub default_flavor: Flavor,
    pub log: &'a Logger,
}

/// Feed parsed states into the database through the tracker and the writer.
pub(crate) fn load(
    items: impl Iterator<Item = Result<FullState, ParseError>>,
    l: &Load,
    mut on_error: impl FnMut(&ParseError),
) -> anyhow::Result<Summary> {
    let mut writer = store::open_write(l.db, &l.run)?;
    let flavors = writer
        .creator_flavors()
        .with_context(|| format!("reading {}", l.db))?;
    let mut tracker = Tracker::new();
    tracker.preload(writer.load_open()?);
    let mut counters = RunCounters {
        first_us: Some(l.taken),
        last_us: Some(l.taken),
        ..Default::default()
    };
    let mut sum = Summary::default();
    let mut events: Vec<Event> = Vec::new();
    for item in items {
        let s = match item {
            Ok(s) => s,
            Err(e) => {
                on_error(&e);
                sum.rejected += 1;
                sum.first_error.get_or_insert_with(|| e.to_string());
                continue;
            }
        };
        if l.creator.is_some_and(|c| c != s.creator_id) {
            sum.skipped += 1;
            continue;
        }
        let d = Decoded {
            flavor: flavors
                .get(&s.creator_id)
                .copied()
                .unwrap_or(l.default_flavor),
            action: ACT_UPD,
            record_version: 0,
            msg: Message::Upd(s),
        };
        tracker.apply(&d, l.taken, &mut events);
        sum.states += 1;
        for e in events.drain(..) {
            match &e {
                Event::Open { .. } => sum.opened += 1,
                Event::Refresh { .. } => sum.refreshed += 1,
                _ => {}
            }
            if let Some(line) = event_line(&e) {
                l.log.info(&line);
            }
            writer.push(e);
        }
        if writer.batch_len() >= BATCH {
            counters.messages = sum.states;
            writer.flush(&counters)?;
        }
    }
    if sum.rejected > 0 {
        writer.gap(
            l.taken,
            l.taken,
            "snapshot-error",
            sum.rejected,
            format!(
                "{} of the pfctl snapshot could not be read; first: {}",
                plural(sum.rejected, "part"),
                sum.first_error.as_deref().unwrap_or("")
            ),
        );
    }
    counters.messages = sum.states;
    counters.decode_errors = sum.rejected;
    counters.skipped = sum.skipped;
    let status = if sum.rejected > 0 {
        "damaged"
    } else {
        "stopped"
    };
    writer.finish(&counters, status, super::wall_us())?;
    Ok(sum)
}

/// `1 part`, `2 parts`.
fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// `--creator HEX`.
pub(crate) fn parse_creator(s: &str) -> anyhow::Result<u32> {
    let h = s.trim();
    let h = h
        .strip_prefix("0x")
        .or_else(|| h.strip_prefix("0X"))
        .unwrap_or(h);
    if h.is_empty() || h.len() > 8 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(anyhow!(
            "invalid creator id \"{s}\": expected up to 8 hex digits, as pfctl prints it (5a3c1e07)"
        ));
    }
    u32::from_str_radix(h, 16).map_err(|_| anyhow!("invalid creator id \"{s}\""))
}

fn summary_line(source: &str, taken: Micros, s: &Summary) -> String {
    format!(
        "{source}: snapshot of {}: {} states loaded ({} opened, {} already open), {} rejected{}",
        format_rfc3339(taken),
        s.states,
        s.opened,
        s.refreshed,
        s.rejected,
        if s.skipped > 0 {
            format!(", {} of other creators skipped", s.skipped)
        } else {
            String::new()
        }
    )
}

pub(crate) fn run(a: ImportPfctlArgs) -> anyhow::Result<u8> {
    let db = a.db.path();
    let creator = a.creator.as_deref().map(parse_creator).transpose()?;
    let now = super::wall_us();
    let taken = match &a.taken {
        Some(t) => parse_time(t, &Zone::Local).map_err(|e| anyhow!("--taken: {e}"))?,
        None => now,
    };
    let log = Logger::console_only(a.verbose);
    let (reader, source, fingerprint): (Box<dyn BufRead>, String, Option<String>) = if a.file == "-"
    {
        (
            Box::new(std::io::BufReader::new(std::io::stdin())),
            "stdin".into(),
            None,
        )
    } else {
        let f = std::fs::File::open(&a.file).with_context(|| a.file.clone())?;
        let meta = f.metadata().with_context(|| a.file.clone())?;
        let canon = std::fs::canonicalize(&a.file)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| a.file.clone());
        let mtime = meta
            .modified()
            .ok()
            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_micros() as i64);
        if a.taken.is_none() {
            if let Some(m) = mtime.filter(|m| now - m > Duration::from_secs(300).as_micros() as i64)
            {
                eprintln!(
                        "pfstatelog: note: {} was last written at {}; states are placed as if the snapshot was taken now ({}). If it was taken earlier, say when with --taken",
                        a.file,
                        format_rfc3339(m),
                        format_rfc3339(now)
                    );
            }
        }
        (
            Box::new(std::io::BufReader::new(f)),
            canon.clone(),
            // Re-importing the same file for the same time reuses its run row.
            Some(format!(
                "pfctl:{canon}:{}:{}:{taken}",
                meta.len(),
                mtime.unwrap_or(0)
            )),
        )
    };
    let l = Load {
        db: &db,
        run: RunInfo {
            kind: "snapshot",
            source: format!("pfctl -ss -vv: {source}"),
            fingerprint,
            started_wall: now,
        },
        taken,
        creator,
        default_flavor: Flavor::OpenBsd,
        log: &log,
    };
    let sum = load(Reader::new(reader), &l, |e| {
        eprintln!("pfstatelog: {}: {e}", a.file)
    })
    .with_context(|| format!("importing {} into {db}", a.file))?;
    eprintln!("{}", summary_line(&a.file, taken, &sum));
    if sum.rejected > 0 {
        eprintln!(
            "pfstatelog: {} of {} could not be read (see above); the rest was loaded",
            plural(sum.rejected, "part"),
            a.file
        );
        return Ok(2);
    }
    Ok(0)
}

/// `record --snapshot`, first half, as root: run `pfctl -ss -vv` and read its states.
pub(crate) struct Snapshot {
    pub taken: Micros,
    pub states: Vec<FullState>,
    pub errors: Vec<ParseError>,
}

/// Where pfctl lives on OpenBSD and FreeBSD; else whatever PATH finds.
fn pfctl_path() -> &'static str {
    if std::path::Path::new("/sbin/pfctl").exists() {
        "/sbin/pfctl"
    } else {
        "pfctl"
    }
}

/// Run `pfctl -ss -vv` (needs root: /dev/pf) and parse its output as it streams, so only
/// the states are held, not the text. `None` (after a warning) when there is no pfctl or
/// it fails: recording goes on without the snapshot.
pub(crate) fn take_snapshot(log: &Logger) -> Option<Snapshot> {
    use std::process::{Command, Stdio};
    let taken = super::wall_us();
    let child = Command::new(pfctl_path())
        .args(["-ss", "-vv"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            log.warn("--snapshot: pfctl is not available on this system (it needs the firewall's own pf, as on OpenBSD); recording without a snapshot. On a log host, load one taken on the firewall with `pfstatelog import-pfctl`");
            return None;
        }
        Err(e) => {
            log.warn(&format!(
                "--snapshot: cannot run pfctl: {e}; recording without a snapshot"
            ));
            return None;
        }
    };
    // stderr on its own thread, so a chatty pfctl cannot block on a full pipe.
    let stderr = child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
            s
        })
    });
    let (mut states, mut errors) = (Vec::new(), Vec::new());
    if let Some(out) = child.stdout.take() {
        for r in Reader::new(std::io::BufReader::new(out)) {
            match r {
                Ok(s) => states.push(s),
                Err(e) => errors.push(e),
            }
        }
    }
    let status = child.wait();
    let err_text = stderr
        .and_then(|h| h.join().ok())
        .unwrap_or_default()
        .trim()
        .replace('\n', "; ");
    match status {
        Ok(st) if st.success() => Some(Snapshot {
            taken,
            states,
            errors,
        }),
        Ok(st) => {
            log.warn(&format!(
                "--snapshot: pfctl -ss -vv failed ({st}): {err_text}; recording without a snapshot"
            ));
            None
        }
        Err(e) => {
            log.warn(&format!(
                "--snapshot: waiting for pfctl: {e}; recording without a snapshot"
            ));
            None
        }
    }
}

/// `record --snapshot`, second half, after privileges are dropped: load what pfctl showed.
/// Never fails the recorder: problems are logged.
pub(crate) fn store_snapshot(snap: Snapshot, db: &str, iface: &str, log: &Logger) {
    let n_err = snap.errors.len();
    let items = snap
        .errors
        .into_iter()
        .map(Err)
        .chain(snap.states.into_iter().map(Ok));
    let l = Load {
        db,
        run: RunInfo {
            kind: "snapshot",
            source: format!("pfctl -ss -vv at start of record {iface}"),
            fingerprint: None,
            started_wall: super::wall_us(),
        },
        taken: snap.taken,
        creator: None,
        default_flavor: if cfg!(target_os = "freebsd") {
            Flavor::FreeBsd
        } else {
            Flavor::OpenBsd
        },
        log,
    };
    let mut shown = 0;
    match load(items, &l, |e| {
        if shown < 5 {
            log.warn(&format!("--snapshot: pfctl output {e}"));
            shown += 1;
        }
    }) {
        Ok(s) => log.info(&format!(
            "{}{}",
            summary_line("--snapshot", snap.taken, &s),
            if n_err > 5 {
                format!(" (first 5 errors logged of {n_err})")
            } else {
                String::new()
            }
        )),
        Err(e) => log.warn(&format!(
            "--snapshot: cannot store the snapshot: {e:#}; recording without it"
        )),
    }
}
