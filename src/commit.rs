//! The store end of the pipeline: batches the tracker's events into transactions (by size
//! and by age, at most 1 s of data unflushed), retries a write that fails, and paces commits
//! that cannot keep up. `import` drives it in line; `record` runs it on a thread of its own
//! ([`spawn`]), so decoding and tracking on one core never wait for SQLite on the other.

use crate::model::StateRef;
use crate::model::{Event, Micros, OpenState};
use crate::store::{LifetimeSink, RunCounters, StoreError};
use crate::syslog::Logger;
use roaring::RoaringTreemap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::time::{Duration, Instant};

/// Flush when this many events are pending (≈ 60 MiB; at 20,000 states/s about a
/// second's worth, so the time limit below decides)...
const BATCH_EVENTS: usize = 200_000;
/// ...or, committing in line (`import`), this many. An import's flush writes little (its
/// lifetimes wait for their buckets to be complete), but the lists a batch fills (ended rows,
/// and at the end their copies for the batch) are sized by it: ~200 bytes an event, faulted
/// in once. 1 M lifetimes into the 50 M file: RSS 546 MiB instead of 585.
const INLINE_BATCH_EVENTS: usize = 50_000;
/// ...or when the oldest unflushed data is this old (at most 1 s of data unflushed)...
const BATCH_AGE: Duration = Duration::from_secs(1);
/// ...unless commits cannot keep up: then the recorder commits less often, up to this, and
/// says so. Each commit rewrites the index pages of the open states whatever the batch
/// size, so a longer batch costs less per state; the alternative is libpcap dropping
/// packets, which loses them for good.
const BATCH_AGE_MAX: Duration = Duration::from_secs(8);
/// How often a live recorder closes days (see [`Committer::seal`]).
const SEAL_EVERY: Duration = Duration::from_secs(300);
/// Pause between write attempts while the database cannot be written.
const RETRY_EVERY: Duration = Duration::from_secs(2);
/// Longest wait of the commit thread for events before it checks the batch's age.
const TICK: Duration = Duration::from_millis(250);
/// Batches of events in flight to the commit thread (each up to [`HANDOFF_EVENTS`]): room
/// for ~5 s of 20,000 states/s while a commit runs, on top of the capture queue.
const QUEUE_BATCHES: usize = 128;
/// Events the decoding side gathers before handing them over...
pub const HANDOFF_EVENTS: usize = 2_048;
/// ...or after this long, so the commit thread's clock never lags the traffic much.
pub const HANDOFF_AGE: Duration = Duration::from_millis(100);

pub struct Committer<'l> {
    writer: Box<dyn LifetimeSink>,
    log: &'l Logger,
    /// The run's counters as of the latest events (the decoding side keeps them).
    pub counters: RunCounters,
    oldest_pending: Option<Instant>,
    /// Live recorder: coverage runs from its start to its last heartbeat (wall clock), not
    /// just between packets (a quiet sync link is still watched).
    live: bool,
    /// After a failed write (disk full), the next attempt waits until then: events stay
    /// pending, nothing is dropped, and capture goes on.
    retry_after: Option<Instant>,
    /// Events the last successful flush wrote.
    flushed: usize,
    /// Current limit on the age of unflushed data: BATCH_AGE, longer while commits are slow.
    batch_age: Duration,
    /// Events that make a full batch: [`INLINE_BATCH_EVENTS`], or on a commit thread of its
    /// own [`BATCH_EVENTS`].
    batch_events: usize,
    /// The log has been told that commits are slow.
    slow_said: bool,
    /// A write has failed since the last one that went through (the log says when one
    /// goes through again).
    failing: bool,
    last_write_warning: Option<Instant>,
    /// `record`'s `--digest-grace`, and when it last closed days.
    digest_grace: Option<i64>,
    sealed: Option<Instant>,
    /// A write met damage in the file: the commit thread stops rather than retry (a retry
    /// would meet it again, or write around it).
    damaged: bool,
}

impl<'l> Committer<'l> {
    pub fn new(writer: Box<dyn LifetimeSink>, log: &'l Logger) -> Committer<'l> {
        Committer {
            writer,
            log,
            counters: RunCounters::default(),
            oldest_pending: None,
            live: false,
            retry_after: None,
            flushed: 0,
            batch_age: BATCH_AGE,
            batch_events: INLINE_BATCH_EVENTS,
            slow_said: false,
            failing: false,
            last_write_warning: None,
            damaged: false,
            digest_grace: None,
            sealed: None,
        }
    }

    /// Size the writer's page cache (`--cache-mib`); the default is store::open_rw's.
    pub fn set_cache_mib(&self, mib: u32) -> Result<(), StoreError> {
        self.writer.set_cache_mib(mib)
    }

    /// The writer, for reads on the decoding side while the commits run in line.
    pub fn writer_mut(&mut self) -> &mut dyn LifetimeSink {
        &mut *self.writer
    }

    pub fn set_live(&mut self, digest_grace: i64) {
        self.live = true;
        self.digest_grace = Some(digest_grace);
        self.writer.set_live();
    }

    /// A live recorder closes the days over by its grace, by the wall clock, and publishes
    /// their roots: at start, then every SEAL_EVERY (a day is over once a day, but a late
    /// message may change a closed one). Here, on the commit thread, never on the packet
    /// path. It seals what is committed, and flushes nothing itself: a flush out of turn
    /// would run the writer's periodic work (bucket merges) at another moment.
    fn seal(&mut self) {
        let Some(grace) = self.digest_grace else {
            return;
        };
        if self.sealed.is_some_and(|t| t.elapsed() < SEAL_EVERY) || self.failing {
            return;
        }
        self.sealed = Some(Instant::now());
        match self.writer.seal(crate::time::wall_us(), grace) {
            Ok(roots) => roots.iter().for_each(|r| self.log.notice(&r.line())),
            Err(e) => self.log.error(&format!("cannot close days: {e}")),
        }
    }

    /// Events from the decoding side that waited since `since`; flushes a full batch.
    pub fn push(
        &mut self,
        events: impl IntoIterator<Item = Event>,
        since: Instant,
    ) -> Result<(), StoreError> {
        for e in events {
            self.writer.push(e);
        }
        if self.oldest_pending.is_none_or(|t| since < t) {
            self.oldest_pending = Some(since);
        }
        if self.writer.batch_len() >= self.batch_events {
            self.flush()?;
        }
        Ok(())
    }

    pub fn gap(&mut self, from: Micros, to: Micros, kind: &'static str, n: u64, detail: String) {
        self.writer.gap(from, to, kind, n, detail);
    }

    /// Flush if the oldest unflushed data has waited long enough.
    pub fn tick(&mut self) -> Result<(), StoreError> {
        match self.oldest_pending {
            Some(t) if t.elapsed() >= self.batch_age => self.flush(),
            None if self.live => {
                // Heartbeat: coverage must grow while the link is quiet.
                self.oldest_pending = Some(Instant::now());
                Ok(())
            }
            _ => Ok(()),
        }
    }

    pub fn flush(&mut self) -> Result<(), StoreError> {
        if matches!(self.retry_after, Some(t) if Instant::now() < t) {
            return Ok(());
        }
        if self.live {
            self.counters.last_us = Some(crate::time::wall_us());
        }
        let pending = self.writer.pending();
        let started = Instant::now();
        match self.writer.flush(&self.counters) {
            Ok(()) => {
                self.oldest_pending = None;
                self.retry_after = None;
                self.flushed = pending;
                // The batch every 30 s is a longer commit by design, not a sign of a disk
                // that cannot keep up: the regular commits between batches set the pace.
                if !self.writer.archived_in_flush() {
                    self.pace(started.elapsed());
                }
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
        if !self.live || before == self.batch_age {
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

    /// The recorder's way with a write result: a write that fails (disk full, I/O error) is
    /// retried while capture goes on and nothing already decoded is dropped. Warn at once,
    /// then at most once a minute; say when it works again.
    fn report(&mut self, r: Result<(), StoreError>) {
        match r {
            // The failed write's retry is not due yet: nothing was written.
            Ok(()) if self.write_failing() => {}
            Ok(()) => {
                if std::mem::take(&mut self.failing) {
                    self.log.warn(&format!(
                        "database writable again; {} pending events written",
                        self.flushed
                    ));
                }
            }
            Err(e) if e.is_damage() => {
                self.damaged = true;
                self.log.error(&format!(
                    "database damaged: {}; stopping, nothing more is written to it",
                    e.cause()
                ));
            }
            Err(e) => {
                self.failing = true;
                if self
                    .last_write_warning
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
                {
                    self.last_write_warning = Some(Instant::now());
                    let pending = self.pending();
                    self.log.error(&format!("cannot write the database: {e}; still capturing, {pending} events held in memory, retrying"));
                }
            }
        }
    }

    /// Evicted open lifetimes read back (`record --max-open`). The evictions are committed
    /// first, so `states` holds them as the tracker had them. A store that cannot be
    /// written or read gives none: the messages about them are then unknown-state ones.
    fn load(&mut self, creator_id: u32, ids: &RoaringTreemap) -> Vec<OpenState> {
        if self.writer.evictions_pending() {
            let r = self.flush_now();
            self.report(r);
        }
        match self.writer.load_open_of(creator_id, ids) {
            Ok(states) => states,
            Err(e) => {
                self.log.error(&format!(
                    "cannot read back {} evicted open states: {e}",
                    ids.len()
                ));
                Vec::new()
            }
        }
    }

    /// Events waiting to be written (grows while the database cannot be written).
    pub fn pending(&self) -> usize {
        self.writer.pending()
    }

    /// Whether the last write attempt failed: until one succeeds, `Ok` from a flush only
    /// means that the retry is not due yet, not that data was written.
    pub fn write_failing(&self) -> bool {
        self.retry_after.is_some()
    }

    /// Write what is pending now, whatever the backoff.
    pub fn flush_now(&mut self) -> Result<(), StoreError> {
        self.retry_after = None;
        self.flush()
    }

    /// Write what is pending now, whatever the backoff, and close the run.
    pub fn finish(mut self, status: &str) -> Result<(), StoreError> {
        self.flush_now()?;
        self.writer
            .finish(&self.counters, status, crate::time::wall_us())
    }
}

/// What the decoding side sends the commit thread.
pub enum ToCommit {
    /// Events in order, the counters after them, and when the first of them was decoded.
    Events(Vec<Event>, RunCounters, Instant),
    Gap(Micros, Micros, &'static str, u64, String),
    /// Open lifetimes the tracker dropped from memory (`record --max-open`), after every
    /// event about them: stored whole by the next commit.
    Evict(Vec<StateRef>),
    /// The stored open lifetimes of a creator with these ids, evicted earlier, sent back
    /// once every event before this request is applied and every eviction is committed.
    Load(u32, RoaringTreemap, SyncSender<Vec<OpenState>>),
    /// Write what is pending and close the run with this status.
    Finish(&'static str),
}

/// Run `c` on a thread of `scope` until it is sent [`ToCommit::Finish`] (or the sending
/// end is dropped without it: status "failed"); the thread then writes what is pending and
/// closes the run. It returns whether the end went well; its log says why not.
pub fn spawn<'scope, 'l: 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    mut c: Committer<'l>,
) -> std::io::Result<(
    SyncSender<ToCommit>,
    std::thread::ScopedJoinHandle<'scope, bool>,
)> {
    c.batch_events = BATCH_EVENTS;
    let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE_BATCHES);
    let handle = std::thread::Builder::new()
        .name("commit".into())
        .spawn_scoped(scope, move || run(c, rx))?;
    Ok((tx, handle))
}

fn run(mut c: Committer, rx: Receiver<ToCommit>) -> bool {
    let status = 'run: loop {
        let mut next = rx.recv_timeout(TICK);
        // What arrived during the last commit goes into the next one (up to a queue's
        // worth): deciding after each handover made the commit after a slow one a tiny one,
        // with a commit's whole fixed cost, and the thread fell further behind.
        let mut taken = 0;
        loop {
            match next {
                Ok(ToCommit::Events(events, counters, since)) => {
                    c.counters = counters;
                    let r = c.push(events, since);
                    c.report(r);
                    if c.damaged {
                        return false;
                    }
                }
                Ok(ToCommit::Gap(from, to, kind, n, detail)) => c.gap(from, to, kind, n, detail),
                Ok(ToCommit::Evict(keys)) => c.writer.evict_open(keys),
                Ok(ToCommit::Load(creator_id, ids, reply)) => {
                    let _ = reply.send(c.load(creator_id, &ids));
                }
                Ok(ToCommit::Finish(status)) => break 'run status,
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => break 'run "failed",
            }
            taken += 1;
            if taken == QUEUE_BATCHES {
                break;
            }
            next = match rx.try_recv() {
                Ok(m) => Ok(m),
                Err(TryRecvError::Empty) => Err(RecvTimeoutError::Timeout),
                Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
            };
        }
        let r = c.tick();
        c.report(r);
        if c.damaged {
            return false;
        }
        c.seal();
    };
    let pending = c.pending();
    let log = c.log;
    match c.finish(status) {
        Ok(()) => true,
        Err(e) => {
            log.error(&format!(
                "at shutdown, cannot write: {e}; {pending} events lost"
            ));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Flavor;
    use crate::store::{self, RunInfo};

    #[test]
    fn a_backlog_longer_than_the_queue_is_stored_whole() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = dir.path().join("t.db").display().to_string();
        let log = Logger::console_only(false);
        let info = RunInfo {
            kind: "record",
            source: "pfsync0".into(),
            fingerprint: None,
            started_wall: 0,
        };
        let writer = store::open_write(&db, &info).expect("writer");
        let c = Committer::new(writer, &log);
        // Everything is queued before the thread starts: several queues' worth at once.
        let batches = 3 * QUEUE_BATCHES as u64 + 7;
        let (tx, rx) = std::sync::mpsc::sync_channel(batches as usize + 1);
        let t0 = 1_700_000_000_000_000;
        for id in 1..=batches {
            let open = Event::Open {
                state: crate::track::tests::state(7, id, "em0", 0),
                start: t0,
                seen: t0,
                flavor: Flavor::OpenBsd,
                record_version: 0,
            };
            let sent = tx.send(ToCommit::Events(
                vec![open],
                RunCounters::default(),
                Instant::now(),
            ));
            assert!(sent.is_ok());
        }
        assert!(tx.send(ToCommit::Finish("stopped")).is_ok());
        assert!(run(c, rx), "the final write went well");
        let n = store::open_read(&db)
            .expect("ro")
            .each_lifetime(i64::MIN, i64::MAX, &mut |_| Ok(()))
            .expect("walk")
            .rows;
        assert_eq!(n, batches, "every state of every batch");
    }
}
