//! `pfstatelog record IFACE`: the daemon. Captures live until SIGINT/SIGTERM, then flushes
//! and exits 0; SIGHUP reopens the log.

use crate::cli::RecordArgs;
use crate::ingest::Ingest;
use crate::source::live::{Captured, Live};
use crate::store::writer::RunInfo;
use crate::syslog::{Facility, Logger};
use anyhow::Context;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often libpcap's drop counters are read.
const STATS_EVERY: Duration = Duration::from_secs(5);
/// Frames captured but not yet decoded (≈ 3 s at 20,000 states/s, ≈ 60 MiB at most): room
/// for a slow commit, on top of the kernel's ring.
const QUEUE_FRAMES: usize = 16_384;
/// Longest wait for a frame before flushing and checking signals.
const TICK: Duration = Duration::from_millis(250);

pub fn run(a: RecordArgs) -> anyhow::Result<u8> {
    let facility: Facility = a
        .syslog_facility
        .parse()
        .map_err(|e| anyhow::anyhow!("--syslog-facility: {e}"))?;
    let log = Logger::new(!a.no_syslog, facility, a.verbose);
    let db = a.db.path();
    let term = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, term.clone()).context("installing signal handlers")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .context("installing signal handlers")?;

    let target = a.user.as_deref().map(crate::privdrop::lookup).transpose()?;
    let live = Live::open(&a.iface, a.filter.as_deref())?;
    let linktype = live.linktype;
    // --snapshot: pfctl needs root (/dev/pf), so it runs now; its states are stored after the drop.
    let snapshot = a
        .snapshot
        .then(|| super::import_pfctl::take_snapshot(&log))
        .flatten();
    // Root is needed only to open the capture: give it up before any packet is parsed.
    let db = match &target {
        Some(t) => {
            crate::privdrop::prepare_db(&db, t)?;
            crate::privdrop::drop_to(t, a.chroot.as_deref(), &db)?
        }
        None => db,
    };
    if let Some(s) = snapshot {
        super::import_pfctl::store_snapshot(s, &db, &a.iface, &log);
    }
    let started = super::wall_us();
    let run = RunInfo {
        kind: "record",
        source: a.iface.clone(),
        fingerprint: None,
        started_wall: started,
    };
    let mut ing = Ingest::open(&db, &run, &log)?;
    ing.set_cache_mib(a.cache.mib)?;
    crate::privdrop::restrict(&db)?;
    ing.live_since(started);
    log.info(&format!(
        "recording pfsync on {} (link type {}) into {db}; {} open states carried over",
        a.iface,
        linktype,
        ing.open_count()
    ));
    // The capture thread starts after the privilege drop and the sandbox, like all else.
    let stop = Arc::new(AtomicBool::new(false));
    let (frames, capture) = live
        .spawn(stop.clone(), QUEUE_FRAMES, STATS_EVERY)
        .context("starting the capture thread")?;
    let mut status = "stopped";
    // Decoding and tracking here, SQLite on the commit thread: each has a core.
    let stored = std::thread::scope(|scope| -> anyhow::Result<bool> {
        let committing = ing.commit_on(scope).context("starting the commit thread")?;
        let mut dropped_seen: u64 = 0;
        let mut stopping = false;
        loop {
            if !stopping && term.load(Ordering::Relaxed) {
                // Stop capturing, then decode and store what was already captured.
                stopping = true;
                stop.store(true, Ordering::Relaxed);
            }
            if hup.swap(false, Ordering::Relaxed) {
                log.reopen();
                log.info("SIGHUP: log reopened");
            }
            match frames.recv_timeout(TICK) {
                // Write errors are the commit thread's to log and retry.
                Ok(Captured::Frame(f)) => ing.frame(&f)?,
                Ok(Captured::Stats(s)) => {
                    let dropped = s.dropped as u64 + s.if_dropped as u64;
                    if dropped > dropped_seen {
                        let now = super::wall_us();
                        let n = dropped - dropped_seen;
                        log.warn(&format!(
                            "libpcap dropped {n} packets on {}: states may be missing",
                            a.iface
                        ));
                        ing.gap(
                            now - STATS_EVERY.as_micros() as i64,
                            now,
                            "pcap-drop",
                            n,
                            format!("{n} packets dropped by libpcap"),
                        );
                        dropped_seen = dropped;
                        ing.counters.drops = dropped;
                    }
                }
                Ok(Captured::Failed(e)) => {
                    log.error(&format!("capture failed: {e}"));
                    status = "failed";
                    stop.store(true, Ordering::Relaxed);
                    stopping = true;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                // The capture thread ended and everything it sent is handled.
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
            ing.tick()?;
            if !stopping && !ing.storing() {
                // The commit thread stopped (damage in the file, said in the log): capture
                // nothing more that could not be stored.
                status = "failed";
                stop.store(true, Ordering::Relaxed);
                stopping = true;
            }
        }
        if capture.join().is_err() {
            log.error("the capture thread panicked");
            status = "failed";
        }
        let opened = ing.tracker.stats.opened;
        let closed = ing.tracker.stats.closed;
        ing.finish(status)?;
        let stored = committing.join().unwrap_or_else(|_| {
            log.error("the commit thread panicked");
            false
        });
        if stored {
            log.info(&format!(
                "stopped: {opened} states opened, {closed} closed this run"
            ));
        }
        Ok(stored)
    })?;
    if !stored {
        return Ok(2);
    }
    Ok(if status == "failed" { 2 } else { 0 })
}
