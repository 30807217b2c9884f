//! The recorder's pipeline, shared by `import` and `record`:
//! frame -> decode -> track -> store, with the log fed from the tracker's events.
//! The store end ([`Committer`]) runs in line (`import`) or on a thread of its own
//! (`record`, [`Ingest::commit_on`]).

use crate::commit::{self, Committer, ToCommit, HANDOFF_AGE, HANDOFF_EVENTS};
use crate::model::Event;
use crate::pipeline::{decode_frame, DecodeStats, Outcome};
use crate::report::line::event_line;
use crate::source::Frame;
use crate::store::lazy_open::Unloaded;
use crate::store::{self, RunCounters, RunInfo, StoreError};
use crate::syslog::Logger;
use crate::track::Tracker;
use crate::wire::{Decoded, Message};
use std::sync::mpsc::SyncSender;
use std::thread::{Scope, ScopedJoinHandle};
use std::time::Instant;

pub struct Ingest<'l> {
    pub tracker: Tracker,
    /// Open lifetimes of the store the tracker has not read yet: read when a message names
    /// them (store/unloaded.rs).
    unloaded: Unloaded,
    pub stats: DecodeStats,
    pub counters: RunCounters,
    log: &'l Logger,
    events: Vec<Event>,
    sink: Sink<'l>,
    /// A live recorder ([`Ingest::live_since`]): coverage comes from the wall clock.
    live: bool,
    /// A capture file: the stretches of packet time it really spans.
    spans: Spans,
    /// Open states the tracker may hold in memory (`--max-open`); past it the longest
    /// idle are stored open and dropped from memory.
    max_open: usize,
}

/// Packet times further apart than this are not one stretch of watching: a clock that
/// jumped (forward or back), or a capture paused that long. Nothing in between was seen,
/// so it is reported as a gap rather than covered (erring on the side of "blind").
pub const TIME_JUMP_US: i64 = 3_600_000_000;
/// Stretches tracked at most; a capture with more has no clock worth trusting.
const MAX_SPANS: usize = 4_096;

/// The stretches of a capture's packet time: frames less than [`TIME_JUMP_US`] apart (in
/// whatever order they come) are one stretch. Sorted, disjoint, more than TIME_JUMP_US
/// apart.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Spans {
    spans: Vec<(i64, i64)>,
    /// The stretch the previous frame fell in (the common case: the same one again).
    cur: usize,
    /// More than [`MAX_SPANS`] stretches: no longer tracked.
    overflow: bool,
}

impl Spans {
    pub fn add(&mut self, t: i64) {
        if self.overflow {
            return;
        }
        if let Some(&(a, b)) = self.spans.get(self.cur) {
            let next_far = self
                .spans
                .get(self.cur + 1)
                .is_none_or(|n| n.0 > t.saturating_add(TIME_JUMP_US));
            if t >= a && t <= b {
                return;
            }
            if t > b && t <= b.saturating_add(TIME_JUMP_US) && next_far {
                self.spans[self.cur].1 = t;
                return;
            }
        }
        let i = self.spans.partition_point(|s| s.0 <= t);
        let k = if i > 0 && t <= self.spans[i - 1].1.saturating_add(TIME_JUMP_US) {
            let s = &mut self.spans[i - 1];
            s.1 = s.1.max(t);
            i - 1
        } else if i < self.spans.len() && self.spans[i].0.saturating_sub(TIME_JUMP_US) <= t {
            self.spans[i].0 = t;
            i
        } else {
            if self.spans.len() == MAX_SPANS {
                self.overflow = true;
                return;
            }
            self.spans.insert(i, (t, t));
            i
        };
        // The stretch grew: it may now reach its neighbours.
        while k + 1 < self.spans.len()
            && self.spans[k + 1].0 <= self.spans[k].1.saturating_add(TIME_JUMP_US)
        {
            let n = self.spans.remove(k + 1);
            self.spans[k].1 = self.spans[k].1.max(n.1);
        }
        let k = if k > 0 && self.spans[k].0 <= self.spans[k - 1].1.saturating_add(TIME_JUMP_US) {
            let n = self.spans.remove(k);
            self.spans[k - 1].1 = self.spans[k - 1].1.max(n.1);
            k - 1
        } else {
            k
        };
        self.cur = k;
    }

    /// The unwatched time between stretches: one hole per time jump. `None`: too many
    /// stretches to tell (the whole capture's span is then a gap).
    pub fn holes(&self) -> Option<Vec<(i64, i64)>> {
        if self.overflow {
            return None;
        }
        Some(
            self.spans
                .windows(2)
                .map(|w| (w[0].1 + 1, w[1].0 - 1))
                .collect(),
        )
    }

    /// Time jumps: breaks between stretches (every stretch but one, past the limit).
    pub fn jumps(&self) -> usize {
        if self.overflow {
            MAX_SPANS
        } else {
            self.spans.len().saturating_sub(1)
        }
    }
}

/// Where tracked events go.
enum Sink<'l> {
    Inline(Box<Committer<'l>>),
    Thread {
        tx: SyncSender<ToCommit>,
        /// Events not handed over yet, since when, and when the last handover was.
        outbox: Vec<Event>,
        since: Option<Instant>,
        sent: Instant,
    },
    /// The commit thread has gone (it ended after a panic): nothing more can be stored.
    Gone,
}

impl<'l> Ingest<'l> {
    /// Open the database for writing, register the run and carry on from its open states.
    pub fn open(db: &str, run: &RunInfo, log: &'l Logger) -> Result<Ingest<'l>, StoreError> {
        let mut writer = store::open_write(db, run)?;
        // An import's new open lifetimes are in the tracker's table only (a recorder holds
        // its journal ones in the writer, for its journal: this does nothing for it).
        writer.let_tracker_hold();
        let unloaded = writer.open_keys()?;
        Ok(Ingest {
            tracker: Tracker::new(),
            unloaded,
            stats: DecodeStats::default(),
            counters: RunCounters::default(),
            log,
            events: Vec::new(),
            sink: Sink::Inline(Box::new(Committer::new(writer, log))),
            live: false,
            spans: Spans::default(),
            max_open: usize::MAX,
        })
    }

    /// Size the writer's page cache (`--cache-mib`); before [`Ingest::commit_on`].
    pub fn set_cache_mib(&self, mib: u32) -> Result<(), StoreError> {
        match &self.sink {
            Sink::Inline(c) => c.set_cache_mib(mib),
            _ => Ok(()),
        }
    }

    /// From now on commit on a thread of `scope`. Write errors are then the commit thread's
    /// to log and retry; its handle returns whether the final write went well.
    pub fn commit_on<'scope>(
        &mut self,
        scope: &'scope Scope<'scope, '_>,
    ) -> std::io::Result<ScopedJoinHandle<'scope, bool>>
    where
        'l: 'scope,
    {
        // The writer's connection goes to the commit thread: the tracker reads every stored
        // open lifetime it has not read yet, now (a recorder reads them once in months, in
        // one pass over the table; an import, in line, only those its messages name).
        if let Sink::Inline(c) = &mut self.sink {
            if !self.unloaded.is_empty() {
                for (g, max) in self.unloaded.unread_groups(None) {
                    let ids = c
                        .writer_mut()
                        .group_keys(g, max)
                        .map_err(std::io::Error::other)?;
                    self.unloaded.read(g, ids);
                }
                let rest = self.unloaded.take_all();
                let states = c
                    .writer_mut()
                    .load_open_where(&|k| {
                        rest.iter()
                            .any(|(c, ids)| *c == k.creator_id && ids.contains(k.id))
                    })
                    .map_err(std::io::Error::other)?;
                self.tracker.preload(states);
            }
        }
        let Sink::Inline(c) = std::mem::replace(&mut self.sink, Sink::Gone) else {
            return Err(std::io::Error::other("the commit thread runs already"));
        };
        let mut c = *c;
        c.counters = self.counters.clone();
        let (tx, handle) = commit::spawn(scope, c)?;
        self.sink = Sink::Thread {
            tx,
            outbox: Vec::new(),
            since: None,
            sent: Instant::now(),
        };
        Ok(handle)
    }

    /// Whether what is decoded can still be stored (false once the commit thread stopped:
    /// the database is damaged, or the thread failed).
    pub fn storing(&self) -> bool {
        !matches!(self.sink, Sink::Gone)
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
            self.gap(f.ts_us, f.ts_us, "decode-error", new_errors, detail);
        }
        if let Outcome::Packet {
            pkt,
            trusted: false,
            ip,
        } = &o
        {
            let ttl = ip.map(|i| i.ttl).unwrap_or(0);
            let n = pkt.messages().count() as u64;
            let detail = format!("ttl {ttl}: not from the sync link, not applied");
            self.gap(f.ts_us, f.ts_us, "bad-ttl", n, detail);
        }
        if apply {
            if let Outcome::Packet { pkt, .. } = &o {
                for m in pkt.messages() {
                    self.load_named(m)?;
                    self.tracker.apply(m, f.ts_us, &mut self.events);
                }
            }
        }
        if self.log.wants_info() {
            for e in &self.events {
                if let Some(line) = event_line(e) {
                    self.log.info(&line);
                }
            }
        }
        self.counters.packets = self.stats.frames;
        self.counters.messages = self.stats.message_total();
        self.counters.decode_errors = self.stats.error_total();
        self.counters.skipped = self.stats.not_pfsync + self.stats.untrusted_packets;
        self.counters.opened = self.tracker.stats.opened;
        self.counters.open_states = self.open_count();
        if apply {
            self.counters.last_packet_us = Some(f.ts_us);
        }
        if !self.live {
            self.counters.first_us = self.stats.first_us;
            self.counters.last_us = self.stats.last_us;
            self.spans.add(f.ts_us);
        }
        match &mut self.sink {
            Sink::Inline(c) => {
                c.counters = self.counters.clone();
                c.push(self.events.drain(..), Instant::now())?;
                self.evict()
            }
            Sink::Thread { outbox, since, .. } => {
                since.get_or_insert_with(Instant::now);
                outbox.append(&mut self.events);
                if outbox.len() >= HANDOFF_EVENTS {
                    self.hand_over();
                }
                self.evict()
            }
            Sink::Gone => {
                self.events.clear();
                Ok(())
            }
        }
    }

    /// Hold at most `n` open states in memory (`--max-open`): a state dropped from memory
    /// is read back from the store when a message names it.
    pub fn set_max_open(&mut self, n: usize) {
        self.max_open = n.max(1);
    }

    /// Past [`Ingest::set_max_open`]'s cap, store the longest idle open states and drop
    /// them from memory, down to 90 % of the cap (so a flood pays one flush per tenth of
    /// it). Flushed at once: a message may name one before the next flush.
    fn evict(&mut self) -> Result<(), StoreError> {
        if self.tracker.open_count() <= self.max_open {
            return Ok(());
        }
        if matches!(self.sink, Sink::Gone) {
            return Ok(());
        }
        let keep = self.max_open - self.max_open / 10;
        let out = self.tracker.evict_idle(self.max_open, keep);
        for o in &out {
            self.unloaded.stored(&crate::model::key_of(&o.state));
        }
        let n = out.len();
        match &mut self.sink {
            Sink::Inline(c) => {
                c.writer_mut().store_open(out);
                c.flush_now()?;
            }
            Sink::Thread { .. } => {
                // After every event about them, in the commit thread's order.
                self.hand_over();
                let keys = out.iter().map(|o| crate::model::key_of(&o.state)).collect();
                self.send(ToCommit::Evict(keys));
            }
            Sink::Gone => {}
        }
        self.log.info(&format!(
            "{n} idle open states written out of memory (--max-open {}); {} evicted so far",
            self.max_open, self.tracker.stats.evicted
        ));
        Ok(())
    }

    /// Open lifetimes in the store and in the tracker.
    pub fn open_count(&self) -> u64 {
        self.tracker.open_count() as u64 + self.unloaded.open_left()
    }

    /// Before the tracker applies `m`: the stored open lifetimes it applies to, if the
    /// tracker has not read them yet. A CLR ends states it does not name: all of its
    /// creator's.
    fn load_named(&mut self, m: &Decoded) -> Result<(), StoreError> {
        if self.unloaded.is_empty() {
            return Ok(());
        }
        // With a commit thread every stored open state was read before it started
        // (commit_on): what is left are those evicted since, read back through it.
        if let Sink::Thread { .. } = self.sink {
            self.load_evicted(m);
            return Ok(());
        }
        let Sink::Inline(c) = &mut self.sink else {
            return Ok(());
        };
        let (creator_id, ids) = match &m.msg {
            Message::Clr(clr) => {
                for (g, max) in self.unloaded.unread_groups(Some(clr.creator_id)) {
                    let ids = c.writer_mut().group_keys(g, max)?;
                    self.unloaded.read(g, ids);
                }
                (clr.creator_id, self.unloaded.take_creator(clr.creator_id))
            }
            // A request for updates: the tracker does nothing with it.
            Message::UpdReq(_) => return Ok(()),
            msg => match msg.state_ref() {
                Some(k) => {
                    if let Some((g, max)) = self.unloaded.unread_group(&k) {
                        let ids = c.writer_mut().group_keys(g, max)?;
                        self.unloaded.read(g, ids);
                    }
                    // Else not stored open, or the tracker has it (it read it, or met it
                    // here).
                    if !self.unloaded.take(&k) {
                        return Ok(());
                    }
                    (k.creator_id, std::iter::once(k.id).collect())
                }
                None => return Ok(()),
            },
        };
        if ids.is_empty() {
            return Ok(());
        }
        let states = c.writer_mut().load_open_of(creator_id, &ids)?;
        self.unloaded.found(states.len() as u64);
        self.tracker.preload(states);
        Ok(())
    }

    /// [`Ingest::load_named`] with a commit thread: the evicted states `m` applies to, asked
    /// of the commit thread after every event before them (a wait of one round trip, and
    /// of a commit the first time after an eviction).
    fn load_evicted(&mut self, m: &Decoded) {
        let (creator_id, ids) = match &m.msg {
            Message::Clr(clr) => (clr.creator_id, self.unloaded.take_creator(clr.creator_id)),
            Message::UpdReq(_) => return,
            msg => match msg.state_ref() {
                Some(k) if self.unloaded.take(&k) => {
                    (k.creator_id, std::iter::once(k.id).collect())
                }
                _ => return,
            },
        };
        if ids.is_empty() {
            return;
        }
        self.hand_over();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.send(ToCommit::Load(creator_id, ids, tx));
        // An error: the commit thread has gone (said by send, or at its end).
        if let Ok(states) = rx.recv() {
            self.unloaded.found(states.len() as u64);
            self.tracker.preload(states);
        }
    }

    /// One message to the commit thread, in order after the handed-over events.
    fn send(&mut self, msg: ToCommit) {
        let Sink::Thread { tx, .. } = &mut self.sink else {
            return;
        };
        if tx.send(msg).is_err() {
            self.log
                .error("the commit thread has stopped: nothing more can be stored");
            self.sink = Sink::Gone;
        }
    }

    /// Hand the outbox to the commit thread (waits while its queue is full: the capture
    /// queue then fills, and libpcap counts what the kernel drops).
    fn hand_over(&mut self) {
        let Sink::Thread {
            tx,
            outbox,
            since,
            sent,
        } = &mut self.sink
        else {
            return;
        };
        let events = std::mem::take(outbox);
        let since = since.take().unwrap_or_else(Instant::now);
        *sent = Instant::now();
        if tx
            .send(ToCommit::Events(events, self.counters.clone(), since))
            .is_err()
        {
            self.log
                .error("the commit thread has stopped: nothing more can be stored");
            self.sink = Sink::Gone;
        }
    }

    /// Flush if the oldest unflushed data has waited long enough (in line), or hand
    /// events over to the commit thread if they have waited [`HANDOFF_AGE`].
    pub fn tick(&mut self) -> Result<(), StoreError> {
        match &mut self.sink {
            Sink::Inline(c) => c.tick(),
            Sink::Thread { sent, .. } => {
                if sent.elapsed() >= HANDOFF_AGE {
                    self.hand_over();
                }
                Ok(())
            }
            Sink::Gone => Ok(()),
        }
    }

    /// Write what is pending now (in line), or hand it to the commit thread.
    pub fn flush_now(&mut self) -> Result<(), StoreError> {
        match &mut self.sink {
            Sink::Inline(c) => c.flush_now(),
            Sink::Thread { .. } => {
                self.hand_over();
                Ok(())
            }
            Sink::Gone => Ok(()),
        }
    }

    /// A live recorder: coverage runs from `wall` to its last heartbeat; it closes the
    /// days over by `digest_grace` (docs/integrity.md).
    pub fn live_since(&mut self, wall: i64, digest_grace: i64) {
        self.live = true;
        if let Sink::Inline(c) = &mut self.sink {
            c.set_live(digest_grace);
        }
        self.counters.first_us = Some(wall);
        self.counters.last_us = Some(wall);
    }

    pub fn gap(&mut self, from: i64, to: i64, kind: &'static str, count: u64, detail: String) {
        match &mut self.sink {
            Sink::Inline(c) => c.gap(from, to, kind, count, detail),
            Sink::Thread { tx, .. } => {
                let _ = tx.send(ToCommit::Gap(from, to, kind, count, detail));
            }
            Sink::Gone => {}
        }
    }

    /// Time jumps in the capture so far (frames more than [`TIME_JUMP_US`] from every
    /// other stretch of its packet time).
    pub fn time_jumps(&self) -> usize {
        self.spans.jumps()
    }

    fn time_jump_gaps(&mut self) {
        use crate::time::format_rfc3339;
        let (Some(first), Some(last)) = (self.stats.first_us, self.stats.last_us) else {
            return;
        };
        match self.spans.holes() {
            Some(holes) => {
                for (a, b) in holes {
                    let detail = format!(
                        "no packet from {} to {}: the capture's clock jumped (or it paused) by more than {} min; not watched",
                        format_rfc3339(a - 1),
                        format_rfc3339(b + 1),
                        TIME_JUMP_US / 60_000_000
                    );
                    self.gap(a, b, "time-jump", 1, detail);
                }
            }
            None => {
                let detail = format!(
                    "more than {MAX_SPANS} time jumps: the capture's clock cannot be trusted"
                );
                self.gap(first, last, "time-jump", MAX_SPANS as u64, detail);
            }
        }
    }

    /// Store what is pending and close the run. With a commit thread, hand it everything
    /// and the status; the thread's handle then says whether that went well.
    pub fn finish(mut self, status: &'static str) -> Result<(), StoreError> {
        // A capture's time jumps, written with its last commit: until then the whole
        // import is unfinished, its range a gap (store/query.rs, coverage).
        if !self.live {
            self.time_jump_gaps();
        }
        if let Sink::Thread { .. } = self.sink {
            self.hand_over();
        }
        if let Sink::Inline(c) = &mut self.sink {
            c.writer_mut().hold_tracked(self.tracker.take_open());
        }
        match self.sink {
            Sink::Inline(c) => c.finish(status),
            Sink::Thread { tx, .. } => {
                let _ = tx.send(ToCommit::Finish(status));
                Ok(())
            }
            Sink::Gone => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = TIME_JUMP_US;

    fn spans_of(ts: &[i64]) -> Spans {
        let mut s = Spans::default();
        for t in ts {
            s.add(*t);
        }
        s
    }

    #[test]
    fn one_far_frame_is_a_stretch_of_its_own() {
        let y2100 = 4_102_444_800_000_000;
        let s = spans_of(&[0, 10, 20, y2100, 30, 40]);
        assert_eq!(s.spans, vec![(0, 40), (y2100, y2100)]);
        assert_eq!(s.jumps(), 1);
        assert_eq!(s.holes(), Some(vec![(41, y2100 - 1)]));
    }

    #[test]
    fn frames_out_of_order_within_the_limit_join_and_bridge() {
        let s = spans_of(&[0, 3 * H, H / 2, 2 * H, H + H / 2]);
        assert_eq!(s.spans, vec![(0, 3 * H)]);
        assert_eq!(s.jumps(), 0);
        let s = spans_of(&[5 * H, 0, -3 * H]);
        assert_eq!(s.jumps(), 2);
        assert_eq!(s.holes(), Some(vec![(-3 * H + 1, -1), (1, 5 * H - 1)]));
    }

    #[test]
    fn too_many_stretches_give_up() {
        let ts: Vec<i64> = (0..=MAX_SPANS as i64).map(|i| i * 2 * H).collect();
        let s = spans_of(&ts);
        assert_eq!(s.holes(), None);
        assert_eq!(s.jumps(), MAX_SPANS);
    }
}
