//! `pfstatelog record IFACE`: the daemon. Captures live until SIGINT/SIGTERM, then flushes
//! and exits 0; SIGHUP reopens the log.

use crate::cli::RecordArgs;
use crate::ingest::Ingest;
use crate::source::live::{Live, Next};
use crate::store::writer::RunInfo;
use crate::syslog::{Facility, Logger};
use anyhow::Context;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often libpcap's drop counters are read.
const STATS_EVERY: Duration = Duration::from_secs(5);

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

    let mut live = Live::open(&a.iface, a.filter.as_deref())?;
    let started = super::wall_us();
    let run = RunInfo {
        kind: "record",
        source: a.iface.clone(),
        fingerprint: None,
        started_wall: started,
    };
    let mut ing = Ingest::open(&db, &run, &log)?;
    ing.live_since(started);
    log.info(&format!(
        "recording pfsync on {} (link type {}) into {db}; {} open states carried over",
        a.iface,
        live.linktype,
        ing.tracker.open_count()
    ));
    let mut last_stats = Instant::now();
    let mut dropped_seen: u64 = 0;
    let mut status = "stopped";
    while !term.load(Ordering::Relaxed) {
        if hup.swap(false, Ordering::Relaxed) {
            log.reopen();
            log.info("SIGHUP: log reopened");
        }
        match live.next_frame() {
            Ok(Next::Frame(f)) => ing.frame(&f)?,
            Ok(Next::Timeout) => {}
            Err(e) => {
                log.error(&format!("capture failed: {e}"));
                status = "failed";
                break;
            }
        }
        if last_stats.elapsed() >= STATS_EVERY {
            last_stats = Instant::now();
            if let Some(s) = live.stats() {
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
        }
        ing.tick()?;
    }
    let opened = ing.tracker.stats.opened;
    let closed = ing.tracker.stats.closed;
    ing.finish(status)?;
    log.info(&format!(
        "stopped: {opened} states opened, {closed} closed this run"
    ));
    Ok(if status == "failed" { 2 } else { 0 })
}
