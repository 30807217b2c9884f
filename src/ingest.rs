//! The recorder's pipeline, shared by `import` and `record`:
//! frame -> decode -> track -> store, with the log fed from the tracker's events.

use crate::pipeline::{decode_frame, DecodeStats, Outcome};
use crate::report::line::event_line;
use crate::source::Frame;
use crate::store::writer::{RunCounters, RunInfo, Writer};
use crate::store::{self, StoreError};
use crate::syslog::Logger;
use crate::track::{Event, Tracker};
use std::time::{Duration, Instant};

/// Flush when this many events are pending (≈ 60 MiB; at 20,000 states/s about a
/// second's worth, so the time limit below decides)...
const BATCH_EVENTS: usize = 200_000;
/// ...or when the oldest unflushed data is this old (at most 1 s of data unflushed)...
const BATCH_AGE: Duration = Duration::from_secs(1);
/// ...unless commits cannot keep up: then the recorder commits less often, up to this, and
/// says so. Each commit rewrites the index pages of the open states whatever the batch
/// size, so a longer batch costs less per state; the alternative is libpcap dropping
/// packets, which loses them for good.
const BATCH_AGE_MAX: Duration = Duration::from_secs(8);

pub struct Ingest<'l> {
    pub tracker: Tracker,
    writer: Writer,
    pub stats: DecodeStats,
    pub counters: RunCounters,
    log: &'l Logger,
    events: Vec<Event>,
    oldest_pending: Option<Instant>,
    /// Live recorder: coverage runs from its start to its last heartbeat (wall clock), not
    /// just between packets (a quiet sync link is still watched).
    live_since: Option<i64>,
    /// After a failed write (disk full), the next attempt waits until then: events stay
    /// pending, nothing is dropped, and capture goes on.
    retry_after: Option<Instant>,
    /// Events the last successful flush wrote.
    flushed: usize,
    /// Current limit on the age of unflushed data: BATCH_AGE, longer while commits are slow.
    batch_age: Duration,
    /// The log has been told that commits are slow.
    slow_said: bool,
    /// Stopped (joined) before the lock is released: fields drop in declaration order.
    checkpointer: Option<store::Checkpointer>,
    _lock: store::WriterLock,
}

/// Pause between write attempts while the database cannot be written.
const RETRY_EVERY: Duration = Duration::from_secs(2);

impl<'l> Ingest<'l> {
    /// Open the database for writing, register the run and carry on from its open states.
    pub fn open(db: &str, run: &RunInfo, log: &'l Logger) -> Result<Ingest<'l>, StoreError> {
        let lock = store::WriterLock::acquire(db)?;
        let conn = store::open_rw(db)?;
        let checkpointer = store::Checkpointer::start(db, &conn)?;
        let mut writer = Writer::new(conn, db, run)?;
        let mut tracker = Tracker::new();
        tracker.preload(writer.load_open()?);
        Ok(Ingest {
            tracker,
            writer,
            stats: DecodeStats::default(),
            counters: RunCounters::default(),
            log,
            events: Vec::new(),
            oldest_pending: None,
            live_since: None,
            retry_after: None,
            flushed: 0,
            batch_age: BATCH_AGE,
            slow_said: false,
            checkpointer: Some(checkpointer),
            _lock: lock,
        })
    }

    /// Size the writer's page cache (`--cache-mib`); the default is store::open_rw's.
    pub fn set_cache_mib(&self, mib: u32) -> Result<(), StoreError> {
        self.writer.set_cache_mib(mib)
    }

    /// One captured frame through every stage.
    pub fn frame(&mut self, f: &Frame) -> Result<(), StoreError> {
        let o = decode_frame(f);
        let errors_before = self.stats.error_total();
        let apply = self.stats.count(f, &o);
        let new_errors = self.stats.error_total() - errors_before;
        if new_errors > 0 {
            // The query side must be able to tell "no state" from "blind here".
            let detail = match &o {
                Outcome::Damaged(e) => e.to_string(),
                Outcome::Packet { pkt, .. } => pkt
                    .damage()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
                Outcome::NotPfsync(_) => String::new(),
            };
            self.writer
                .gap(f.ts_us, f.ts_us, "decode-error", new_errors, detail);
        }
        if let Outcome::Packet {
            pkt,
            trusted: false,
            ip,
        } = &o
        {
            let ttl = ip.map(|i| i.ttl).unwrap_or(0);
            self.writer.gap(
                f.ts_us,
                f.ts_us,
                "bad-ttl",
                pkt.messages().count() as u64,
                format!("ttl {ttl}: not from the sync link, not applied"),
            );
        }
        if apply {
            if let Outcome::Packet { pkt, .. } = &o {
                for m in pkt.messages() {
                    self.tracker.apply(m, f.ts_us, &mut self.events);
                }
            }
        }
        let logging = self.log.wants_info();
        for e in self.events.drain(..) {
            if logging {
                if let Some(line) = event_line(&e) {
                    self.log.info(&line);
                }
            }
            self.writer.push(e);
        }
        self.counters.packets = self.stats.frames;
        self.counters.messages = self.stats.message_total();
        self.counters.decode_errors = self.stats.error_total();
        self.counters.skipped = self.stats.not_pfsync + self.stats.untrusted_packets;
        if self.live_since.is_none() {
            self.counters.first_us = self.stats.first_us;
            self.counters.last_us = self.stats.last_us;
        }
        if self.oldest_pending.is_none() {
            self.oldest_pending = Some(Instant::now());
        }
        if self.writer.batch_len() >= BATCH_EVENTS {
            self.flush()?;
        }
        Ok(())
    }

    /// Flush if the oldest unflushed data has waited long enough.
    pub fn tick(&mut self) -> Result<(), StoreError> {
        match self.oldest_pending {
            Some(t) if t.elapsed() >= self.batch_age => self.flush(),
            None if self.live_since.is_some() => {
                // Heartbeat: coverage must grow while the link is quiet.
                self.oldest_pending = Some(Instant::now());
                Ok(())
            }
            _ => Ok(()),
        }
    }

    pub fn live_since(&mut self, wall: i64) {
        self.live_since = Some(wall);
        self.counters.first_us = Some(wall);
        self.counters.last_us = Some(wall);
    }

    pub fn flush(&mut self) -> Result<(), StoreError> {
        if matches!(self.retry_after, Some(t) if Instant::now() < t) {
            return Ok(());
        }
        if self.live_since.is_some() {
            self.counters.last_us = Some(crate::cmd::wall_us());
        }
        let pending = self.writer.pending();
        let started = Instant::now();
        match self.writer.flush(&self.counters) {
            Ok(()) => {
                self.oldest_pending = None;
                self.retry_after = None;
                self.flushed = pending;
                self.pace(started.elapsed());
                Ok(())
            }
            Err(e) => {
                self.retry_after = Some(Instant::now() + RETRY_EVERY);
                Err(e)
            }
        }
    }

    /// Keep commits under half the recorder's time: a commit that took `took` sets the next
    /// batch to at least twice that (at most BATCH_AGE_MAX); fast commits bring it back.
    fn pace(&mut self, took: Duration) {
        let before = self.batch_age;
        self.batch_age = if took * 2 > self.batch_age {
            (took * 2).min(BATCH_AGE_MAX)
        } else if took * 4 < self.batch_age {
            (self.batch_age / 2).max(BATCH_AGE)
        } else {
            self.batch_age
        };
        if self.live_since.is_none() || before == self.batch_age {
            return;
        }
        // Said once per slow spell: when batches pass 2 s, and when they are back to 1 s.
        if !self.slow_said && self.batch_age >= 2 * BATCH_AGE {
            self.slow_said = true;
            self.log.warn(&format!(
                "database commits are slow ({:.1} s for {} events): committing every {:.1} s instead of every second (up to {} s); a crash can lose that much",
                took.as_secs_f64(),
                self.flushed,
                self.batch_age.as_secs_f64(),
                BATCH_AGE_MAX.as_secs()
            ));
        } else if self.slow_said && self.batch_age == BATCH_AGE {
            self.slow_said = false;
            self.log
                .info("database commits keep up again: committing every second");
        }
    }

    /// Events waiting to be written (grows while the database cannot be written).
    pub fn pending(&self) -> usize {
        self.writer.pending()
    }

    /// Whether the last write attempt failed: until one succeeds, `Ok` from [`Ingest::frame`]
    /// or [`Ingest::tick`] only means that the retry is not due yet, not that data was written.
    pub fn write_failing(&self) -> bool {
        self.retry_after.is_some()
    }

    /// Events the last successful flush wrote.
    pub fn flushed(&self) -> usize {
        self.flushed
    }

    /// Try the write now, whatever the backoff (at shutdown).
    pub fn flush_now(&mut self) -> Result<(), StoreError> {
        self.retry_after = None;
        self.flush()
    }

    pub fn gap(&mut self, from: i64, to: i64, kind: &'static str, count: u64, detail: String) {
        self.writer.gap(from, to, kind, count, detail);
    }

    pub fn finish(mut self, status: &str) -> Result<(), StoreError> {
        self.retry_after = None;
        // The writer's last checkpoint (TRUNCATE) must not meet the checkpointer's.
        self.checkpointer = None;
        self.writer
            .finish(&self.counters, status, crate::cmd::wall_us())
    }
}
