//! `pfstatelog import`: capture files through the recorder's pipeline.

use crate::cli::ImportArgs;
use crate::ingest::Ingest;
use crate::source::file::CaptureFile;
use crate::source::Handover;
use crate::store::RunInfo;
use crate::syslog::{Logger, Syslog};
use anyhow::Context;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn run(a: ImportArgs) -> anyhow::Result<u8> {
    let db = a.db.path();
    let log = Logger::console_only(a.verbose);
    let syslog = match &a.syslog_facility {
        Some(f) => Some(Syslog::open(
            "pfstatelog",
            f.parse()
                .map_err(|e| anyhow::anyhow!("--syslog-facility: {e}"))?,
        )),
        None => None,
    };
    let mut failed = false;
    for path in &a.captures {
        let path_s = path.display().to_string();
        let t0 = Instant::now();
        let read = Arc::new(AtomicU64::new(0));
        let cap = CaptureFile::open_counted(&path_s, Some(read.clone()))?;
        let meta = std::fs::metadata(path).ok();
        let size = meta.as_ref().map_or(0, |m| m.len());
        // A regular file's size is known: a bar with an ETA; a pipe or FIFO gets a spinner.
        let known = meta
            .as_ref()
            .is_some_and(|m| m.is_file() && m.len() > 0 && path_s != "-");
        let canon = std::fs::canonicalize(path)
            .map(|p| p.display().to_string())
            .unwrap_or(path_s.clone());
        let run = RunInfo {
            kind: "import",
            source: canon.clone(),
            // A re-import of the same file reuses its run row: the database ends as after one.
            fingerprint: Some(format!("import:{canon}:{size}")),
            started_wall: super::wall_us(),
        };
        let mut ing =
            Ingest::open(&db, &run, &log).with_context(|| format!("importing {path_s}"))?;
        ing.set_cache_mib(a.cache.mib)?;
        ing.set_max_open(a.max_open.get());
        let bar = progress(&path_s, known.then_some(size));
        // Frames are read on their own thread so that a slow source (a pipe from tcpdump)
        // still gets its data flushed within a second.
        let queue = std::sync::Arc::new(Handover::new(1024));
        let q = queue.clone();
        let reader = std::thread::spawn(move || {
            let mut cap = cap;
            while let Some(r) = cap.next_frame() {
                let end = r.is_err();
                if !q.push(r) || end {
                    break;
                }
            }
            q.close();
        });
        let mut read_error = None;
        let mut n: u64 = 0;
        'frames: while let Some(batch) = queue.take_all(Duration::from_millis(200)) {
            for r in batch {
                let f = match r {
                    Ok(f) => f,
                    Err(e) => {
                        read_error = Some(e);
                        break 'frames;
                    }
                };
                ing.frame(&f)
                    .with_context(|| format!("importing {path_s}: writing {db}"))?;
                n += 1;
            }
            if let Some(b) = &bar {
                b.set_position(if known {
                    read.load(Ordering::Relaxed)
                } else {
                    n
                });
                b.set_message(format!("{} states", ing.tracker.stats.opened));
            }
            ing.tick()
                .with_context(|| format!("importing {path_s}: writing {db}"))?;
        }
        // A reader still waiting to hand over (an error ended the import) is let go.
        queue.close();
        let _ = reader.join();
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        let status = if read_error.is_some() {
            "damaged"
        } else {
            "stopped"
        };
        let stats = ing.stats.clone();
        let track = ing.tracker.stats.clone();
        let open_now = ing.open_count();
        let jumps = ing.time_jumps();
        ing.finish(status)
            .with_context(|| format!("importing {path_s}: writing {db}"))?;
        let secs = t0.elapsed().as_secs_f64();
        eprintln!(
            "{path_s}: {} frames, {} pfsync packets in {secs:.2}s ({:.0} states/s); messages: {}; states opened {}, closed {} ({} by CLR), open now {}; replaced by another state under their id {}; evicted from memory (--max-open) {}; unknown-state messages {}; skipped (not pfsync) {}, untrusted (ttl != 255) {}; decode errors: {}; time jumps {jumps}",
            stats.frames,
            stats.packets,
            track.opened as f64 / secs.max(1e-9),
            stats.messages_line(),
            track.opened,
            track.closed,
            track.cleared,
            open_now,
            track.replaced,
            track.evicted,
            track.orphans,
            stats.not_pfsync,
            stats.untrusted_packets,
            stats.errors_line(),
        );
        if let Some(e) = read_error {
            eprintln!("pfstatelog: {e} (everything before it was imported)");
            failed = true;
        }
    }
    publish_digests(&db, a.digest.grace, syslog.as_ref())?;
    Ok(if failed { 2 } else { 0 })
}

/// Close the days the captures completed (by their own time, not the wall clock: old
/// captures close their days at once) and publish each new root: to stderr, and to syslog
/// when asked (docs/integrity.md).
fn publish_digests(db: &str, grace: i64, syslog: Option<&Syslog>) -> anyhow::Result<()> {
    for r in crate::store::seal(db, grace).with_context(|| format!("closing days in {db}"))? {
        eprintln!("{}", r.line());
        if let Some(s) = &syslog {
            s.log(crate::syslog::Level::Notice, &r.line());
        }
    }
    Ok(())
}

/// Memory an open state costs an import, all told (the tracker's entry, the writer's key,
/// the batch's events): about 1 KiB (README, "Database").
const OPEN_STATE_BYTES: u64 = 1024;

/// `--max-open`'s default: open states that fill a quarter of physical memory.
pub fn default_max_open() -> usize {
    // SAFETY: sysconf reads system constants; no memory is shared.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let phys = u64::try_from(pages)
        .unwrap_or(0)
        .saturating_mul(u64::try_from(size).unwrap_or(0));
    // Unknown memory: 1 GiB's worth.
    let phys = if phys == 0 { 4 << 30 } else { phys };
    usize::try_from(phys / 4 / OPEN_STATE_BYTES)
        .unwrap_or(usize::MAX)
        .max(1000)
}

/// On a terminal only: a bar (bytes read, rate, ETA) when the size is known, else a
/// spinner; nothing on a pipe or file, where it would only be noise in a log.
fn progress(path: &str, size: Option<u64>) -> Option<indicatif::ProgressBar> {
    use indicatif::{ProgressBar, ProgressStyle};
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let b = match size {
        Some(total) => {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:20}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
                )
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        }
        None => {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {prefix} {pos} frames, {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b
        }
    };
    // The file name only: the whole line must fit a terminal's width.
    let name = std::path::Path::new(path)
        .file_name()
        .map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned());
    b.set_prefix(name);
    b.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(b)
}
