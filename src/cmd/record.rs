//! `pfstatelog record IFACE`: the daemon. Captures live until SIGINT/SIGTERM, then flushes
//! and exits 0; SIGHUP reopens the log.

use crate::cli::RecordArgs;
use crate::ingest::Ingest;
use crate::source::live::{drop_gap, Captured, Live};
use crate::store::RunInfo;
use crate::syslog::{Facility, Logger};
use crate::time::format_duration;
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

    // The URL is checked and the password read now: before root is given up, before
    // anything is captured.
    let ship_to = match &a.ship_to {
        Some(url) => {
            crate::store::clickhouse::Target::parse(url)?;
            let pw = crate::store::clickhouse::password(a.password_file.as_deref())?;
            let name = a
                .name
                .clone()
                .unwrap_or_else(crate::store::clickhouse::ship::default_name);
            Some((url.clone(), name, pw))
        }
        None => None,
    };
    let target = a.user.as_deref().map(crate::privdrop::lookup).transpose()?;
    let live = Live::open(&a.iface, a.filter.as_deref(), a.pcap_buffer_mib)?;
    let linktype = live.linktype;
    let mut drops_read = live.first_read();
    // --snapshot: pfctl needs root (/dev/pf), so it runs now; its states are stored after the drop.
    let snapshot = a
        .snapshot
        .then(|| super::import_pfctl::take_snapshot(&log))
        .flatten();
    // Root is needed only to open the capture: give it up before any packet is parsed.
    let db = match &target {
        Some(t) => {
            // A --db outside the chroot is an argument error: said before the folder checks.
            crate::privdrop::chroot_layout(a.chroot.as_deref(), &db)?;
            crate::privdrop::prepare_db(&db, t)?;
            let db = crate::privdrop::drop_to(t, a.chroot.as_deref(), &db)?;
            crate::privdrop::check_db(&db, t)?;
            db
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
    ing.set_max_open(a.max_open.get());
    // Its own connections to the spool: one reading snapshots, one keeping its place.
    let mut shipper = match &ship_to {
        Some((url, name, pw)) => Some(crate::store::clickhouse::ship::Shipper::new(
            &db,
            url,
            name,
            pw.clone(),
        )?),
        None => None,
    };
    crate::privdrop::restrict(&db, shipper.is_some())?;
    ing.live_since(started, a.digest.grace);
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
    let ship_stop = AtomicBool::new(false);
    let stored = std::thread::scope(|scope| -> anyhow::Result<bool> {
        let committing = ing.commit_on(scope).context("starting the commit thread")?;
        let shipping = match shipper.as_mut() {
            Some(s) => {
                log.info(&format!("shipping to {} as it is written", s.shown()));
                let (log, stop) = (&log, &ship_stop);
                Some(
                    std::thread::Builder::new()
                        .name("ship".into())
                        .spawn_scoped(scope, move || {
                            crate::store::clickhouse::ship::follow(s, stop, log)
                        })
                        .context("starting the ship thread")?,
                )
            }
            None => None,
        };
        let mut stopping = false;
        let mut silence = Silence::new(a.silent_after);
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
                Ok(Captured::Frame(f)) => {
                    if let Some(quiet) = silence.heard() {
                        log.info(&format!(
                            "pfsync traffic on {} resumed after {}",
                            a.iface,
                            format_duration(quiet)
                        ));
                    }
                    ing.frame(&f)?
                }
                Ok(Captured::Stats(_, read)) => {
                    // The gap is when the lost packets may have been (source/live.rs,
                    // drop_gap), not when this reading reached us: that lags under load.
                    if let Some((from, to, n)) = drop_gap(&drops_read, &read) {
                        log.warn(&format!(
                            "libpcap dropped {n} packets on {}: states may be missing",
                            a.iface
                        ));
                        ing.gap(
                            from,
                            to,
                            "pcap-drop",
                            n,
                            format!("{n} packets dropped by libpcap"),
                        );
                        ing.counters.drops = read.dropped;
                    }
                    drops_read = read;
                }
                Ok(Captured::Failed(e)) => {
                    log.error(&format!("capture failed: {e}"));
                    status = "failed";
                    stop.store(true, Ordering::Relaxed);
                    stopping = true;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(quiet) = silence.check() {
                        log.warn(&format!(
                            "no pfsync traffic on {} for {}: is the firewall up, is the cable in, does pfsync have its syncdev? (a quiet link is not a gap; drops are)",
                            a.iface,
                            format_duration(quiet)
                        ));
                    }
                }
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
        let replaced = ing.tracker.stats.replaced;
        let evicted = ing.tracker.stats.evicted;
        // The shipper finishes the insert in flight; what the last commits wrote goes with
        // the next ship (the spool keeps it).
        ship_stop.store(true, Ordering::Relaxed);
        if let Some(t) = shipping {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => log.error(&format!("shipping: {e:#}")),
                Err(_) => log.error("the ship thread panicked"),
            }
        }
        ing.finish(status)?;
        let stored = committing.join().unwrap_or_else(|_| {
            log.error("the commit thread panicked");
            false
        });
        if stored {
            if replaced > 0 {
                log.info(&format!(
                    "{replaced} lifetimes replaced by another state under their id this run"
                ));
            }
            if evicted > 0 {
                log.info(&format!(
                    "{evicted} idle open states evicted from memory (--max-open) this run"
                ));
            }
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

/// Silence on the sync link: told once when it passes the limit, and once when it ends.
/// A quiet link is not blindness (a firewall with no traffic sends nothing), so it is only
/// logged, never recorded as a gap.
struct Silence {
    limit: Duration,
    heard: std::time::Instant,
    said: bool,
}

impl Silence {
    fn new(limit_us: i64) -> Silence {
        Silence {
            limit: Duration::from_micros(limit_us.max(0) as u64),
            heard: std::time::Instant::now(),
            said: false,
        }
    }

    /// A frame arrived: the length of the silence it ends, if that was told.
    fn heard(&mut self) -> Option<i64> {
        let quiet = self.heard.elapsed();
        self.heard = std::time::Instant::now();
        std::mem::take(&mut self.said).then_some(quiet.as_micros() as i64)
    }

    /// No frame yet: the silence so far, the first time it passes the limit.
    fn check(&mut self) -> Option<i64> {
        let quiet = self.heard.elapsed();
        (!self.said && quiet >= self.limit).then(|| {
            self.said = true;
            quiet.as_micros() as i64
        })
    }
}
