//! The batched writer: lifetime events from the tracker into SQLite, one transaction per
//! batch. Every write is a merge that commutes and repeats harmlessly, so importing a capture
//! twice, or overlapping captures in any order, leaves the same rows as one import:
//! start comes from the earliest full message, counters from the newest, the end is the
//! earliest end event, "last seen" the latest message.

use super::archive::{self, BatchIndex, Names};
use super::codec::{Stored, REASONS};
use super::{addr_blob, blob_addr, sq, Result};
use crate::model::lifetime::{self, clear_names};
use crate::model::{key_of, CompactState, End, EndReason, Event, Micros, OpenState, OrphanKind};
use crate::model::{Af, Direction, Flavor, FullState, Key, StateMap, StateRef, StateSet};
use crate::store::lazy_open::{group_of, group_range, Group, Unloaded};
use roaring::RoaringTreemap;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use std::collections::VecDeque;

/// Maps looked up per event, keyed by small integers: ahash (SipHash costs more than the
/// lookup).
type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
type HashSet<K> = std::collections::HashSet<K, ahash::RandomState>;
use std::net::{IpAddr, Ipv4Addr};

/// Two sightings of one (creator, id) belong to the same lifetime when the state was alive
/// at both; this slack absorbs `creation`'s whole-second rounding and transmit latency.
const SLACK_US: Micros = 2_000_000;

/// "Last seen" of a stored open lifetime is rewritten at most this often: each UPD_C
/// rewrote its row, the recorder's costliest write after the lifetime itself (at 20,000
/// states/s, 18,000 a second). Its end writes the latest value, as does the recorder's
/// stop; a crash can lose at most this much of an open state's "last seen", never a start
/// or an end.
const TOUCH_EVERY_US: Micros = 60_000_000;

/// Keys remembered as already looked for in the batches (~40 bytes each).
const LOOKED_MAX: usize = 1 << 20;

/// The recorder batches the journal lifetimes that ended at most this often (event time):
/// meanwhile each is journaled, ended, in `journal`. A batch files its lifetimes among those of
/// earlier batches of the same buckets, so each batch rewrites most leaves of the buckets it
/// touches whatever its size: archived every second, that was ~100 MB/s of page writes at
/// 20,000 states/s (measured then; git log -p BENCHMARKS.md).
const SEAL_EVERY_US: Micros = 30_000_000;
/// ...or when this many wait (memory: about 350 bytes each).
const UNSEALED_MAX: usize = 1_000_000;

/// Ids a writer remembers having seen open, per group (dense ids: about a bit each).
const OPENED_MAX: u64 = 1 << 26;

/// How long the recorder keeps a new open lifetime in memory, journaled in `journal`
/// (migrations/0001_schema.sql), before it moves into `states`. Most states end within
/// it and are archived without ever costing `states` an insert and a delete, each of which
/// touches four B-trees at places spread over all open states (measured then; git log -p BENCHMARKS.md).
pub const YOUNG_FOR_US: Micros = 600_000_000;

/// A journal lifetime seen this long after the "last seen" its journal row has is journaled
/// again, as it is now, in the current run (the rule of [`TOUCH_EVERY_US`] for stored
/// ones): a crash loses no more of its "last seen" and counters than that. Rows nothing
/// new happened to are never rewritten (rewriting every run each minute was the journal's
/// largest cost, measured then; git log -p BENCHMARKS.md).
const REJOURNAL_US: Micros = TOUCH_EVERY_US;

/// The columns [`write_stored`] binds, in its order, and their placeholders (a macro, so
/// the statements below are constants).
macro_rules! stored_insert {
    ($into:literal, $extra_col:literal, $extra_val:literal) => {
        concat!(
            $into,
            " (creator_id, state_id, ifname, af, proto, direction,
               w_addr0, w_port0, w_addr1, w_port1, w_rdomain,
               s_addr0, s_port0, s_addr1, s_port1, s_rdomain, s_af, nat,
               start_us, first_us, last_us, updated_us, end_us, end_reason, expire,
               packets0, packets1, bytes0, bytes1, rule, flavor",
            $extra_col,
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
               ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31",
            $extra_val,
            ")"
        )
    };
}

/// What a run is, for the coverage table.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub kind: &'static str,
    pub source: String,
    pub fingerprint: Option<String>,
    pub started_wall: Micros,
}

/// Counters of a run, written with every flush (the live recorder's heartbeat).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunCounters {
    pub first_us: Option<Micros>,
    pub last_us: Option<Micros>,
    pub packets: u64,
    pub messages: u64,
    pub drops: u64,
    pub decode_errors: u64,
    pub skipped: u64,
    /// Lifetimes seen to begin, and open now (for `status`).
    pub opened: u64,
    pub open_states: u64,
    /// Capture time of the newest pfsync frame.
    pub last_packet_us: Option<Micros>,
}

pub struct Writer {
    conn: Connection,
    /// Days written to since the last flush, for the digests (docs/integrity.md), and
    /// what to call a change they make to a closed day.
    touched: super::digest::Touched,
    touched_why: &'static str,
    /// A live recorder: each flush also writes the minute's `health` row (`status`).
    health: bool,
    path: String,
    run_id: i64,
    /// Events to apply by the next flush (new lifetimes are in `held` instead).
    pending: Vec<Event>,
    gaps: Vec<(Micros, Micros, &'static str, u64, String)>,
    /// Lifetimes replaced since the last flush (creator, id, end): counted in
    /// `replacements` (migrations/0001_schema.sql).
    replaced: Vec<(u32, u64, Micros)>,
    /// Row of every open state this writer knows: proportional to open states only.
    rows: StateMap<i64>,
    /// Creators named by full states since the last flush: flavour, record version, first
    /// and last time.
    creators: HashMap<u32, (Flavor, u16, Micros, Micros)>,
    /// Highest state id that is in the store or on its way there, per creator and top byte
    /// of the id (FreeBSD puts the CPU there). pf counts ids upwards, so a state above it is
    /// new: no lookup, no merge, a plain INSERT.
    known_max: HashMap<(u32, u8), Option<i64>>,
    /// Per creator and top byte: the highest id stored when this writer first met the
    /// group, and the ids above it this writer has seen open. A message about an id above
    /// that which this writer never saw open (its INS was dropped, or it is made up) can
    /// have no archived lifetime, so it costs no look in the batches: after packet drops those
    /// messages came by the thousand a second, each reading hundreds of id lists.
    opened: Opened,
    /// Per creator, the ids at or below their group's highest stored id that this writer's
    /// events named: the first full state of such an id that the store holds nothing of is
    /// held as a new lifetime ([`Writer::absent`]); any later event about it finds it held,
    /// or merges.
    met_old: HashMap<u32, RoaringTreemap>,
    /// Latest stored CLR per creator: a state opened after it cannot be ended by one.
    last_clear: HashMap<u32, Option<Micros>>,
    /// New lifetimes are kept in memory and written once, whole, when they end: an INSERT
    /// and then UPDATEs that move every index entry cost several times more. An import
    /// holds them until they end (memory proportional to open states; the rest is written
    /// at its end), in the tracker's table (`tracked`); the recorder for their first ten
    /// minutes, here (`held`), journaled from the next flush on (at most 1 s of data
    /// unflushed; [`Young`]).
    hold_open: bool,
    /// Boxed: the tables stay small (24-byte entries), so growing them moves pointers, not
    /// ~250-byte rows (perf: rehashing was ~4 % of an import), and a row that ends moves
    /// into `ready` as a pointer.
    held: HeldRows,
    /// An import's new lifetimes while open are the tracker's alone
    /// ([`Writer::let_tracker_hold`]): their keys only, here. The end event carries the
    /// whole lifetime; those still open at the end come back through
    /// [`Writer::hold_tracked`].
    tracker_holds: bool,
    tracked: StateSet,
    /// Tracked lifetimes still open at the end ([`Writer::hold_tracked`]).
    #[allow(clippy::vec_box)]
    tracked_open: Vec<Box<Compact>>,
    /// Tracked lifetimes the tracker dropped from memory (`--max-open`), stored open by
    /// the next flush ([`Writer::store_open`]).
    #[allow(clippy::vec_box)]
    evicted: Vec<Box<Row>>,
    /// Tracked lifetimes a DEL_C stamped before their start ends in the store (the tracker
    /// keeps them open): the earliest such time, applied when their row is made.
    early_end: StateMap<Micros>,
    /// Held lifetimes that ended, written first by the next flush (boxes from `held`).
    #[allow(clippy::vec_box)]
    ready: Vec<Box<Row>>,
    /// An empty list kept for its capacity (the next flush's rows that do not wait).
    #[allow(clippy::vec_box)]
    ready_spare: Vec<Box<Row>>,
    /// The list a flush batches, kept empty between flushes for its capacity: allocated anew,
    /// its pages (~200 bytes a lifetime) were faulted in and zeroed at every batch (perf: ~7 %
    /// of an import).
    archive_buf: Vec<Stored>,
    /// The lists a batch sorts, kept the same way.
    archive_lists: archive::ArchiveLists,
    /// Whether the lookups since the last flush share a read transaction (see
    /// [`Writer::begin_read`]).
    reading: bool,
    /// Stored open lifetimes whose "last seen" is written lazily ([`TOUCH_EVERY_US`]).
    lazy_last: StateMap<LastSeen>,
    /// Lifetimes that end are archived (archived.rs): held ones instead of being inserted, stored
    /// open ones taken out of `states`, which so holds little more than the open states and
    /// stays small and hot in the cache however large the database grows. The next batch's
    /// number, once known.
    next_batch: Option<i64>,
    names: Names,
    batch_index: BatchIndex,
    /// Whether any batch exists, so messages about known states look there first.
    any_archived: Option<bool>,
    /// Lifetimes this writer archived per duration class: the rate a new bucket's layout is
    /// sized by (archive::expected_in_bucket).
    archived_by_class: [u64; 16],
    /// History buckets (class, 72-minute bucket) this writer archived into, whose rows per
    /// private host are merged once complete ([`archive::merge_private`]).
    private_pending: HashSet<(i64, i64)>,
    /// An import's ended lifetimes, waiting until no later packet can add to their archived
    /// bucket: each bucket is then written once, whole, in key order, and no merge reads
    /// and rewrites it ([`Waiting`]).
    waiting: Waiting,
    /// Keys whose archived lifetimes were already looked for (a key that was not new never
    /// becomes new, so it can never be archived later by this writer).
    looked: StateSet,
    journal: Young,
    /// The last flush archived the recorder's journal lifetimes (every 30 s: a longer commit).
    archived_journal: bool,
}

/// The recorder's journal lifetimes ([`YOUNG_FOR_US`]): held rows, journaled in `journal`.
///
/// A row is journaled once, at the first commit that sees it open, and written again only
/// when it has been seen [`REJOURNAL_US`] past what its journal row says (the newer row
/// supersedes the older through `journal_ends`). Runs leave the journal from the front: when
/// none of their rows is live any more, or when they are [`YOUNG_FOR_US`] old (their live
/// rows then move into `states`).
#[derive(Debug)]
struct Young {
    /// How long they stay journal (0: into `states` at the first commit).
    young_for: Micros,
    /// How far past its journal row a journal lifetime may be seen before the row is
    /// rewritten ([`REJOURNAL_US`]).
    rewrite_after: Micros,
    /// Held rows not journaled yet...
    fresh: StateSet,
    /// ...journaled rows seen [`REJOURNAL_US`] past their journal row...
    stale: StateSet,
    /// ...(held rows journaled say the seq of their live journal row, [`Row::seq`])...
    /// ...and the runs of the journal, oldest first.
    runs: VecDeque<YoungRun>,
    /// Young lifetimes that ended, journaled ended at a seq, waiting for the next batch.
    unarchived: StateMap<(Row, i64)>,
    /// The clock at the last batch of `unarchived`.
    archived_at: Micros,
    next_seq: Option<i64>,
    /// Latest time any event named: journal lifetimes move when this much older than it.
    clock: Micros,
    /// Held rows the tracker dropped from memory (`record --max-open`): into `states` at
    /// the next commit, whatever their age, where the tracker reads them back.
    evict: StateSet,
    /// Lifetimes were evicted since the last commit: until it, `states` may lack their
    /// latest (events pending before the eviction).
    evicted_since: bool,
}

impl Young {
    /// An event about held row `k`: whether its journal row now lags too far behind.
    fn seen(&mut self, k: StateRef, row: &Row) {
        if row.end.is_none()
            && row.last_seen > row.journaled_last.saturating_add(self.rewrite_after)
            && row.journaled()
        {
            self.stale.insert(k);
        }
    }

    /// One row of run `seq` is no longer live there.
    fn left(&mut self, seq: i64) {
        if let Ok(i) = self.runs.binary_search_by_key(&seq, |r| r.seq) {
            self.runs[i].live = self.runs[i].live.saturating_sub(1);
        }
    }

    /// Memory after a commit's journal work is durable: lifetimes now in `states` are
    /// stored open (later UPD_C rewrite "last seen" lazily), journaled ones are journal, ended
    /// ones are gone.
    #[allow(clippy::vec_box)] // `Writer::ready`
    fn commit(
        &mut self,
        j: Journal,
        ended: &mut Vec<Box<Row>>,
        held: &mut HeldRows,
        lazy_last: &mut StateMap<LastSeen>,
    ) {
        for run in self.runs.drain(..j.moved_runs) {
            for k in run.keys {
                if let Some(r) = held.get_mut(&k).filter(|r| r.seq == run.seq) {
                    r.seq = NOT_JOURNALED;
                }
            }
        }
        for k in &j.unjournaled {
            if let Some((_, seq)) = self.unarchived.remove(k) {
                self.left(seq);
            }
        }
        if j.archived_journal {
            self.archived_at = self.clock;
        }
        let deferred: StateSet = j.deferred.iter().copied().collect();
        let run_seq = j.run.as_ref().map(|r| r.seq);
        for r in ended.drain(..) {
            let k = r.key();
            if r.journaled() {
                self.left(r.seq);
            }
            if let (true, Some(seq)) = (deferred.contains(&k), run_seq) {
                self.unarchived.insert(k, (*r, seq));
            }
        }
        for k in j.stored {
            if let Some(r) = held.remove(&k) {
                if r.journaled() {
                    self.left(r.seq);
                }
                // An evicted row was written as it is: nothing is left to write lazily,
                // and nothing of it stays in memory.
                if self.evict.contains(&k) {
                    continue;
                }
                let l = LastSeen {
                    written: r.last_seen,
                    known: r.last_seen,
                };
                lazy_last.insert(k, l);
            }
        }
        self.evict.clear();
        self.evicted_since = false;
        if let Some(run) = j.run {
            for k in &run.keys {
                if let Some(r) = held.get_mut(k) {
                    if r.journaled() {
                        self.left(r.seq);
                    }
                    r.seq = run.seq;
                    r.journaled_last = r.last_seen;
                }
            }
            self.runs.push_back(run);
        }
        if let Some(seq) = j.seq {
            self.next_seq = Some(seq + 1);
        }
        self.fresh.clear();
        self.stale.clear();
    }

    /// The recorder's part of a commit: journal lifetimes that ended leave the journal's
    /// "open"; runs at the front that are dead or old leave the journal (their live rows
    /// into `states`); rows that lag are journaled again, fresh ones for the first time.
    /// `defer`: journal lifetimes that ended, journaled ended until the next batch; `unjournal`:
    /// keys of unarchived lifetimes leaving the journal (archived now, or into states).
    fn write(
        &self,
        tx: &Connection,
        ready: &[Box<Row>],
        defer: &[&Row],
        unjournal: &[StateRef],
        held: &HeldRows,
        rows: &mut StateMap<i64>,
    ) -> rusqlite::Result<Journal> {
        let mut j = Journal::default();
        let seq = match self.next_seq {
            Some(n) => n,
            None => tx.query_row(
                // Above any seq a destination was sent (`ship` takes higher seqs for
                // new), even once the journal emptied on a clean stop.
                "SELECT max(coalesce((SELECT max(seq) FROM journal), 0),
                            coalesce((SELECT max(seq) FROM journal_ends), 0),
                            coalesce((SELECT max(journal_seq) FROM shipped), 0)) + 1",
                [],
                |r| r.get(0),
            )?,
        };
        // A key in journal_ends at seq closes its journal rows of earlier seqs: ended, or
        // superseded by a newer row, or moved into states.
        let close = |k: &StateRef| -> rusqlite::Result<()> {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO journal_ends (seq, creator_id, state_id) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![seq, k.creator_id, u64_to_i64(k.id)])?;
            Ok(())
        };
        for r in ready {
            let k = r.key();
            if r.journaled() {
                close(&k)?;
                j.seq = Some(seq);
            }
        }
        for k in unjournal {
            close(k)?;
            j.seq = Some(seq);
        }
        let due = self.clock.saturating_sub(self.young_for);
        let mut to_store: Vec<(&StateRef, &Row)> = Vec::new();
        let mut journal: Vec<(&StateRef, &Row)> = Vec::new();
        let mut gone_upto = i64::MIN;
        for run in &self.runs {
            let old = self.young_for == 0 || run.written <= due;
            if !old && run.live > 0 {
                break;
            }
            // (A dead run has no live row; were one left, it would be kept, in states.)
            for (k, r) in run
                .keys
                .iter()
                .filter_map(|k| held.get(k).filter(|r| r.seq == run.seq).map(|r| (k, r)))
            {
                to_store.push((k, r));
                j.stored.push(*k);
            }
            tx.prepare_cached("DELETE FROM journal WHERE seq = ?1")?
                .execute([run.seq])?;
            j.moved_runs += 1;
            gone_upto = run.seq;
        }
        for (k, r) in self
            .stale
            .iter()
            .filter_map(|k| held.get(k).map(|r| (k, r)))
        {
            if !r.journaled() || r.seq <= gone_upto {
                continue;
            }
            close(k)?;
            j.seq = Some(seq);
            if self.young_for == 0 || r.first_full <= due || self.evict.contains(k) {
                to_store.push((k, r));
                j.stored.push(*k);
            } else {
                journal.push((k, r));
            }
        }
        for (k, r) in self
            .fresh
            .iter()
            .filter_map(|k| held.get(k).map(|r| (k, r)))
        {
            if self.young_for == 0 || r.first_full <= due || self.evict.contains(k) {
                to_store.push((k, r));
                j.stored.push(*k);
            } else {
                journal.push((k, r));
            }
        }
        // Into states in the order they were first seen, as an import writes them.
        to_store.sort_by_key(|(k, r)| (r.first_full, k.creator_id, k.id));
        for (k, r) in to_store {
            insert_row(tx, r)?;
            rows.insert(*k, tx.last_insert_rowid());
        }
        // An end at seq e closes journal rows of seqs before e: once the oldest run left is
        // at or after e, it closes none.
        let oldest = match self.runs.get(j.moved_runs) {
            Some(run) => run.seq,
            None if journal.is_empty() && defer.is_empty() => i64::MAX,
            None => seq,
        };
        tx.prepare_cached("DELETE FROM journal_ends WHERE seq <= ?1")?
            .execute([oldest])?;
        if !journal.is_empty() || !defer.is_empty() {
            // In about key order, so the run is appended page by page (IpAddr's order is
            // the blobs' within a family; without allocating a blob per comparison).
            let mut all: Vec<&Row> = journal.iter().map(|(_, r)| *r).collect();
            all.extend_from_slice(defer);
            all.sort_unstable_by_key(|r| {
                let public = r.state.key(0);
                (
                    public.addr[1],
                    public.port[1],
                    r.state.creator_id,
                    r.state.id,
                )
            });
            for r in all {
                journal_stored(tx, seq, &r.stored(), r.end.is_some())?;
            }
            j.run = Some(YoungRun {
                seq,
                written: self.clock,
                live: journal.len() + defer.len(),
                keys: journal.iter().map(|(k, _)| **k).collect(),
            });
            j.deferred = defer.iter().map(|r| r.key()).collect();
            j.seq = Some(seq);
        }
        Ok(j)
    }
}

/// One commit's run of the journal journal.
#[derive(Debug)]
struct YoungRun {
    seq: i64,
    /// The writer's clock when it was written: its live rows move into `states`
    /// [`YOUNG_FOR_US`] later.
    written: Micros,
    keys: Vec<StateRef>,
    /// Its rows still live: open ones not ended, superseded or moved, and ended ones not
    /// archived yet (a run leaves the journal only once none is left).
    live: usize,
}

/// What a commit did to the journal journal, applied to memory once it is durable.
#[derive(Debug, Default)]
struct Journal {
    /// The run written, if any.
    run: Option<YoungRun>,
    /// Runs deleted (from the front of `runs`).
    moved_runs: usize,
    /// Lifetimes that went into `states`.
    stored: Vec<StateRef>,
    /// The seq this commit used, if it wrote anything under one.
    seq: Option<i64>,
    /// Young lifetimes that ended, journaled ended in the run written.
    deferred: Vec<StateRef>,
    /// Unarchived lifetimes that left the journal.
    unjournaled: Vec<StateRef>,
    /// Whether the unarchived lifetimes were archived.
    archived_journal: bool,
    /// Waiting lifetimes this commit archived or stored.
    /// Waiting lifetimes that went into states, by place, and the lists archived.
    unwaited: Vec<(Micros, u32)>,
    archived_lists: Vec<Micros>,
    /// Indices into `ready` of the lifetimes that wait from this commit on.
    wait: Vec<usize>,
    /// History buckets this commit archived into, and those whose private rows it merged.
    history: Vec<(i64, i64)>,
    history_merged: Vec<(i64, i64)>,
}

/// Lifetimes an import waits to batch, by when their bucket is complete.
///
/// Kept as the rows they will be archived as, in lists by that time, and archived where they
/// are: held in a map of whole rows, up to a million of them cost ~550 MB (a table twice
/// their number), and moving each into the batch's own list touched ~200 MB more per batch
/// (perf: page faults, copies).
///
/// There is no index by key: each waiting lifetime paid three probes of a table as large as
/// the list (a look before its insert, the insert, the removal: ~6 % of an import) for the
/// rare message about a waiting lifetime (an overlapping capture). A flush with such
/// messages finds them in one pass over the list ([`Waiting::find`]).
#[derive(Debug, Default)]
struct Waiting {
    /// Lifetimes by that time, in the order they came; `None` where one left.
    by_time: std::collections::BTreeMap<Micros, Slots>,
    /// Rows waiting.
    len: usize,
    /// Emptied chunks of lists that left, kept for the next rows (at most [`SPARE_CHUNKS`]):
    /// freed, their ~2 MB went back to the system, and the next chunk's pages were faulted
    /// in and zeroed again (perf: ~4 % of an import).
    spare: Vec<Vec<Option<Stored>>>,
}

/// Chunks [`Waiting`] keeps for reuse: ~60 MB.
const SPARE_CHUNKS: usize = 32;

/// A list of waiting rows in chunks of [`Slots::CHUNK`]: most of an import's lifetimes can
/// wait for the same time, and one growing `Vec` of them was copied whole at each doubling
/// (perf: ~4 % of an import in realloc, its new pages faulted in).
#[derive(Debug, Default)]
struct Slots {
    chunks: Vec<Vec<Option<Stored>>>,
    len: usize,
    /// Slots still holding a row: the list goes when none does.
    live: usize,
}

impl Slots {
    /// ~1.7 MB of rows.
    const CHUNK: usize = 8192;

    /// Add a row; a new chunk comes from `spare` if it has one.
    fn push(&mut self, r: Stored, spare: &mut Vec<Vec<Option<Stored>>>) {
        if self.len % Self::CHUNK == 0 {
            let chunk = spare
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(Self::CHUNK));
            self.chunks.push(chunk);
        }
        if let Some(c) = self.chunks.last_mut() {
            c.push(Some(r));
            self.len += 1;
            self.live += 1;
        }
    }

    fn get(&self, i: usize) -> Option<&Stored> {
        self.chunks
            .get(i / Self::CHUNK)?
            .get(i % Self::CHUNK)?
            .as_ref()
    }

    /// Empty slot `i`; whether it held a row.
    fn clear(&mut self, i: usize) -> bool {
        let slot = self
            .chunks
            .get_mut(i / Self::CHUNK)
            .and_then(|c| c.get_mut(i % Self::CHUNK));
        match slot {
            Some(s) if s.is_some() => {
                *s = None;
                self.live -= 1;
                true
            }
            _ => false,
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Stored> {
        self.places().map(|(_, r)| r)
    }

    /// Rows with their places.
    fn places(&self) -> impl Iterator<Item = (usize, &Stored)> {
        self.chunks
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().map(|r| (i, r)))
    }
}

impl Waiting {
    fn len(&self) -> usize {
        self.len
    }

    /// Where the waiting lifetimes `named` are (time, place): one pass over the list, none
    /// when nothing is named.
    fn find(&self, named: &StateSet) -> StateMap<(Micros, u32)> {
        let mut at = StateMap::default();
        if named.is_empty() || self.len == 0 {
            return at;
        }
        for (t, list) in &self.by_time {
            for (i, r) in list.places() {
                let k = r.key();
                if named.contains(&k) {
                    at.insert(k, (*t, i as u32));
                }
            }
        }
        at
    }

    fn get(&self, (t, i): (Micros, u32)) -> Option<&Stored> {
        self.by_time.get(&t)?.get(i as usize)
    }

    fn insert(&mut self, r: Stored, complete: Micros) {
        self.by_time
            .entry(complete)
            .or_default()
            .push(r, &mut self.spare);
        self.len += 1;
    }

    /// Keep the chunks of a list that left, emptied, while there is room.
    fn recycle(&mut self, list: Slots) {
        for mut chunk in list.chunks {
            if self.spare.len() >= SPARE_CHUNKS {
                break;
            }
            chunk.clear();
            self.spare.push(chunk);
        }
    }

    /// Let the lifetime at (t, i) leave (into states); a list left empty goes.
    fn remove(&mut self, (t, i): (Micros, u32)) {
        if let std::collections::btree_map::Entry::Occupied(mut list) = self.by_time.entry(t) {
            if list.get_mut().clear(i as usize) {
                self.len -= 1;
                if list.get().live == 0 {
                    let list = list.remove();
                    self.recycle(list);
                }
            }
        }
    }

    /// Let every lifetime of the lists of `times` leave (archived, or into states).
    fn remove_lists(&mut self, times: &[Micros]) {
        for t in times {
            if let Some(list) = self.by_time.remove(t) {
                self.len -= list.live;
                self.recycle(list);
            }
        }
    }

    /// Into `to`, the lifetimes whose bucket is complete at `watermark`, and beyond it the
    /// `over` that complete first (counting those `named`, which go into states instead),
    /// in that order; the times of their lists into `times`. They stay here until their
    /// lists are removed once their batch is durable, so a batch that fails leaves them as
    /// they were.
    fn due<'a>(
        &'a self,
        (watermark, over): (Micros, usize),
        named: &StateSet,
        to: &mut Vec<&'a Stored>,
        times: &mut Vec<Micros>,
    ) {
        let mut seen = 0;
        for (t, list) in &self.by_time {
            if *t > watermark && seen >= over {
                break;
            }
            seen += list.live;
            times.push(*t);
            // Filtered, the extend cannot size the list: grown one doubling at a time, it
            // was copied and faulted in again and again (an import's last flush lists
            // nearly every lifetime of the capture).
            to.reserve(list.live);
            to.extend(list.iter().filter(|r| !named.contains(&r.key())));
        }
    }
}

/// Lifetimes an import keeps waiting for their bucket, at most (~250 bytes each); beyond,
/// those whose bucket completes first are archived early (and merged later).
const WAITING_MAX: usize = 1_000_000;
/// An import batches a bucket once packets this much past its last possible end were read
/// (later lifetimes of the bucket, from a disordered capture, go into a second batch).
const WAIT_SLACK_US: Micros = 60_000_000;

/// "Last seen" of a stored open lifetime: as written, and as known.
#[derive(Debug, Clone, Copy)]
struct LastSeen {
    written: Micros,
    known: Micros,
}

/// A lifetime kept in memory: the row the merges in [`apply`] would leave in the store
/// (both follow [`crate::model::lifetime`]).
#[derive(Debug, Clone)]
struct Row {
    /// Compact (model/compact.rs): the recorder holds every journal lifetime as a row.
    life: Compact,
    end: Option<End>,
    /// "Last seen" as its journal row has it (journal lifetimes).
    journaled_last: Micros,
    /// The seq of its live journal row, or [`NOT_JOURNALED`]. Here rather than in a map
    /// of its own: a journal lifetime then costs no table entry more.
    seq: i64,
}

/// [`Row::seq`] of a row with no live journal row.
const NOT_JOURNALED: i64 = i64::MIN;

/// A lifetime as memory holds it.
type Compact = OpenState<CompactState>;

/// Held rows by key, the key the row's own: 8-byte table entries, not 24 (the recorder
/// holds each journal lifetime here, and a table has up to twice as many entries as rows).
#[derive(Default)]
struct HeldRows {
    table: hashbrown::HashTable<Box<Row>>,
    /// Keyed at random: the ids come from the network.
    hasher: ahash::RandomState,
}

impl HeldRows {
    fn get(&self, k: &StateRef) -> Option<&Row> {
        self.table
            .find(self.hasher.hash_one(k), |r| r.key() == *k)
            .map(|r| &**r)
    }

    fn get_mut(&mut self, k: &StateRef) -> Option<&mut Row> {
        self.table
            .find_mut(self.hasher.hash_one(k), |r| r.key() == *k)
            .map(|r| &mut **r)
    }

    fn find_entry(
        &mut self,
        k: &StateRef,
    ) -> std::result::Result<
        hashbrown::hash_table::OccupiedEntry<'_, Box<Row>>,
        hashbrown::hash_table::AbsentEntry<'_, Box<Row>>,
    > {
        self.table
            .find_entry(self.hasher.hash_one(k), |r| r.key() == *k)
    }

    fn remove(&mut self, k: &StateRef) -> Option<Box<Row>> {
        self.find_entry(k).ok().map(|e| e.remove().0)
    }

    /// Hold `r`, in place of any row of its key.
    fn insert(&mut self, r: Box<Row>) {
        let hasher = &self.hasher;
        let k = r.key();
        match self.table.entry(
            hasher.hash_one(k),
            |o| o.key() == k,
            |o| hasher.hash_one(o.key()),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut e) => *e.get_mut() = r,
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert(r);
            }
        }
    }

    fn keys(&self) -> impl Iterator<Item = StateRef> + '_ {
        self.table.iter().map(|r| r.key())
    }
}

impl std::ops::Deref for Row {
    type Target = Compact;
    fn deref(&self) -> &Compact {
        &self.life
    }
}

impl std::ops::DerefMut for Row {
    fn deref_mut(&mut self) -> &mut Compact {
        &mut self.life
    }
}

impl Row {
    fn new(life: Compact) -> Row {
        Row {
            life,
            end: None,
            journaled_last: Micros::MIN,
            seq: NOT_JOURNALED,
        }
    }

    fn journaled(&self) -> bool {
        self.seq != NOT_JOURNALED
    }

    fn key(&self) -> StateRef {
        StateRef {
            id: self.state.id,
            creator_id: self.state.creator_id,
        }
    }

    /// Every column the row of this lifetime has (end 0 while open).
    fn stored(&self) -> Stored {
        let s = &self.state;
        let (wire, stack) = (s.key(0), s.key(1));
        let (end, reason) = self.end.unwrap_or((0, EndReason::Delete));
        Stored {
            creator_id: s.creator_id,
            state_id: s.id,
            ifname: s.ifname,

            af: s.af.to_openbsd(),
            proto: s.proto,
            direction: s.direction.to_u8(),
            w_addr: wire.addr,
            w_port: wire.port,
            w_rdomain: wire.rdomain,
            s_addr: stack.addr,
            s_port: stack.port,
            s_rdomain: stack.rdomain,
            s_af: stack.af.to_openbsd(),
            nat: wire != stack,
            start: self.start,
            first: self.first_full,
            updated: self.updated,
            last: self.last_seen,
            end,
            reason: reason_code(reason),
            expire: s.expire,
            packets: s.packets,
            bytes: s.bytes,
            rule: s.rule,
            flavor: self.flavor.header_version(),
        }
    }

    /// A archived lifetime as a row; None if a column is not one a row can have (damage, or
    /// a lifetime the rules cannot merge: the caller then merges it in SQL).
    fn of_stored(l: &Stored) -> Option<Row> {
        let af = Af::from_openbsd(l.af);
        let key = |addr, port, rdomain, af| Key {
            addr,
            port,
            rdomain,
            af,
        };
        let state = FullState {
            id: l.state_id,
            creator_id: l.creator_id,
            ifname: l.ifname,
            key: [
                key(l.w_addr, l.w_port, l.w_rdomain, af),
                key(l.s_addr, l.s_port, l.s_rdomain, Af::from_openbsd(l.s_af)),
            ],
            af,
            proto: l.proto,
            direction: Direction::from_u8(l.direction),
            creation: 0,
            expire: l.expire,
            packets: l.packets,
            bytes: l.bytes,
            rule: l.rule,
            timeout: 0,
            peer_state: [0, 0],
        };
        let flavor = match l.flavor {
            6 => Flavor::OpenBsd,
            5 => Flavor::FreeBsd,
            _ => return None,
        };
        let reason = EndReason::from_name(REASONS.get(usize::from(l.reason))?)?;
        Some(Row {
            life: OpenState {
                state: CompactState::new(&state),
                start: l.start,
                first_full: l.first,
                updated: l.updated,
                last_seen: l.last,
                flavor,
            },
            end: Some((l.end, reason)),
            journaled_last: Micros::MIN,
            seq: NOT_JOURNALED,
        })
    }

    /// [`end_row`]: the earliest end wins.
    fn end(&mut self, end: Micros, reason: EndReason) {
        self.life.end(&mut self.end, end, reason);
    }
}

/// The code of an end reason in packed data: its place in [`REASONS`].
fn reason_code(r: EndReason) -> u8 {
    REASONS.iter().position(|n| *n == r.name()).unwrap_or(0) as u8
}

/// Ids a writer has seen open above what the store held, per group (`Writer::opened`), and
/// how many (a treemap counts by walking its bitmaps: ~1 % of an import, once per INS).
type Opened = HashMap<(u32, u8), (Option<i64>, RoaringTreemap, u64)>;

/// Whether `k` can have no archived lifetime: an id above what the store held when the writer
/// met its group, never seen open by that writer.
fn never_archived(opened: &Opened, k: &StateRef) -> bool {
    opened.get(&group_of(k)).is_some_and(|(base, ids, _)| {
        base.is_none_or(|b| u64_to_i64(k.id) > b) && !ids.contains(k.id)
    })
}

fn u64_to_i64(v: u64) -> i64 {
    v as i64
}

impl Writer {
    /// Take over an open read-write connection and register a run.
    pub fn new(conn: Connection, path: &str, run: &RunInfo) -> Result<Writer> {
        // The caller holds the writer's lock: a run still marked running has no writer left
        // (SIGKILL, OOM, power loss). It ends at its last commit, which wrote its last
        // activity (`last_us`); the time after it is not watched.
        conn.execute(
            "UPDATE runs SET status = 'abnormal' WHERE status = 'running'",
            [],
        )
        .map_err(sq(path))?;
        let run_id = {
            let existing: Option<i64> = match &run.fingerprint {
                Some(fp) => conn
                    .query_row("SELECT id FROM runs WHERE fingerprint = ?1", [fp], |r| {
                        r.get(0)
                    })
                    .optional()
                    .map_err(sq(path))?,
                None => None,
            };
            match existing {
                Some(id) => {
                    conn.execute(
                        "UPDATE runs SET status = 'running', started_wall = ?2, stopped_wall = NULL,
                                         pid = ?3, version = ?4 WHERE id = ?1",
                        params![id, run.started_wall, std::process::id(), env!("CARGO_PKG_VERSION")],
                    )
                    .map_err(sq(path))?;
                    id
                }
                None => {
                    conn.execute(
                        "INSERT INTO runs (kind, source, fingerprint, started_wall, status, pid, version)
                         VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6)",
                        params![
                            run.kind,
                            run.source,
                            run.fingerprint,
                            run.started_wall,
                            std::process::id(),
                            env!("CARGO_PKG_VERSION")
                        ],
                    )
                    .map_err(sq(path))?;
                    conn.last_insert_rowid()
                }
            }
        };
        // A recorder stopped by a crash left its journal lifetimes in the journal.
        promote_journal(&conn).map_err(sq(path))?;
        let names = Names::load(&conn).map_err(sq(path))?;
        Ok(Writer {
            conn,
            path: path.into(),
            run_id,
            pending: Vec::new(),
            gaps: Vec::new(),
            replaced: Vec::new(),
            rows: StateMap::default(),
            creators: HashMap::default(),
            known_max: HashMap::default(),
            opened: HashMap::default(),
            met_old: HashMap::default(),
            last_clear: HashMap::default(),
            hold_open: run.kind == "import",
            touched: Default::default(),
            touched_why: if run.kind == "record" {
                "late"
            } else {
                "import"
            },
            health: false,
            held: HeldRows::default(),
            tracker_holds: false,
            tracked: StateSet::default(),
            tracked_open: Vec::new(),
            early_end: StateMap::default(),
            evicted: Vec::new(),
            ready: Vec::new(),
            ready_spare: Vec::new(),
            archive_buf: Vec::new(),
            archive_lists: archive::ArchiveLists::default(),
            reading: false,
            lazy_last: StateMap::default(),
            next_batch: None,
            names,
            batch_index: BatchIndex::default(),
            any_archived: None,
            archived_by_class: [0; 16],
            waiting: Waiting::default(),
            private_pending: HashSet::default(),
            looked: StateSet::default(),
            journal: Young {
                young_for: if run.kind == "import" {
                    0
                } else {
                    YOUNG_FOR_US
                },
                rewrite_after: REJOURNAL_US,
                fresh: StateSet::default(),
                stale: StateSet::default(),
                runs: VecDeque::new(),
                unarchived: StateMap::default(),
                archived_at: Micros::MIN,
                next_seq: None,
                clock: Micros::MIN,
                evict: StateSet::default(),
                evicted_since: false,
            },
            archived_journal: false,
        })
    }

    /// The recorder batches its journal lifetimes that ended every SEAL_EVERY_US (an import,
    /// and a recorder without journal lifetimes, at every flush).
    fn defers_batches(&self) -> bool {
        !self.hold_open && self.journal.young_for > 0
    }

    /// Whether the last flush was the recorder's periodic batch of its journal lifetimes.
    pub fn archived_journal(&self) -> bool {
        self.archived_journal
    }

    /// How long new open lifetimes stay journal (tests; 0: none do).
    pub fn set_young_for(&mut self, us: Micros) {
        self.journal.young_for = us.max(0);
    }

    /// How long after it was written a run of the journal is rewritten (benchmarks).
    pub fn set_rewrite_after(&mut self, us: Micros) {
        self.journal.rewrite_after = us.max(0);
    }

    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    /// The open lifetimes in the store, for the tracker to carry on with.
    pub fn load_open(&mut self) -> Result<Vec<OpenState>> {
        self.load_open_where(|_| true)
    }

    /// The open lifetimes in the store whose keys `keep` keeps.
    pub fn load_open_where(&mut self, keep: impl Fn(&StateRef) -> bool) -> Result<Vec<OpenState>> {
        let (open, mostly_open) = self.count_open()?;
        self.read_open(keep, open, mostly_open)
    }

    /// [`Writer::load_open_where`], with room made for `expect` of them.
    fn read_open(
        &mut self,
        keep: impl Fn(&StateRef) -> bool,
        expect: i64,
        mostly_open: bool,
    ) -> Result<Vec<OpenState>> {
        // Through the index, each row is a random read of the table: 2.8 s for 804 k open
        // states of a 55 M-state file, against 0.3 s for reading the table in order.
        let from = if mostly_open {
            "states NOT INDEXED"
        } else {
            "states"
        };
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {OPEN_COLS} FROM {from} WHERE dur_class = 14"
            ))
            .map_err(sq(&self.path))?;
        // Sized once (a count the file gave; bounded, as any number read from it).
        let n = usize::try_from(expect).unwrap_or(0).min(1 << 26);
        let mut out = Vec::with_capacity(n);
        self.rows.reserve(n);
        let mut rows = stmt.query([]).map_err(sq(&self.path))?;
        while let Some(r) = rows.next().map_err(sq(&self.path))? {
            let (id, o) = open_row(r);
            let k = key_of(&o.state);
            if keep(&k) {
                self.rows.insert(k, id);
                out.push(o);
            }
        }
        Ok(out)
    }

    /// How many lifetimes are open in the store, and whether they are most of `states`
    /// (they are once lifetimes are archived: `states` then holds little but the open ones).
    fn count_open(&self) -> Result<(i64, bool)> {
        // Open ones are every row but the closed (class below 14) and the evidence-only (no
        // class): two short index ranges when most are open, where counting class 14 read
        // the whole class index (0.3 s for 1.2 M open; the count of all reads the small
        // (creator, id) index).
        let (all, closed, evidence): (i64, i64, i64) = self
            .conn
            .query_row(
                "SELECT (SELECT count(*) FROM states), (SELECT count(*) FROM states WHERE dur_class < 14),
                        (SELECT count(*) FROM states WHERE dur_class IS NULL)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(sq(&self.path))?;
        let open = all.saturating_sub(closed).saturating_sub(evidence).max(0);
        Ok((open, open.saturating_mul(2) >= all))
    }

    /// What the store holds open: how many, and the id groups of `states` with their
    /// highest ids (a few index seeks). Keys are read per group when a message names one
    /// ([`Writer::group_keys`]), a lifetime whole when a message names it
    /// ([`Writer::load_open_of`]).
    pub fn open_keys(&mut self) -> Result<Unloaded> {
        let (open, _) = self.count_open()?;
        let mut groups = Vec::new();
        let mut creator: Option<i64> = None;
        // Each creator, then each of its groups from the highest id down (ids are stored as
        // i64: a group's range is contiguous, whatever its top bit).
        while let Some(c) = self
            .conn
            .query_row(
                "SELECT min(creator_id) FROM states WHERE creator_id > ?1",
                [creator.unwrap_or(i64::MIN)],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map_err(sq(&self.path))?
        {
            creator = Some(c);
            let mut upto = i64::MAX;
            while let Some(max) = self
                .conn
                .query_row(
                    "SELECT max(state_id) FROM states WHERE creator_id = ?1 AND state_id <= ?2",
                    params![c, upto],
                    |r| r.get::<_, Option<i64>>(0),
                )
                .map_err(sq(&self.path))?
            {
                let id = max as u64;
                let g = group_of(&StateRef {
                    id,
                    creator_id: c as u32,
                });
                groups.push((g, id));
                match group_range(g).0.checked_sub(1) {
                    Some(u) => upto = u,
                    None => break,
                }
            }
        }
        Ok(Unloaded::new(u64::try_from(open).unwrap_or(0), groups))
    }

    /// The state ids `states` holds in group `g` up to `max` (open ones, and the few closed
    /// ones not archived yet: those read as nothing when a message names them).
    pub fn group_keys(&mut self, g: Group, max: u64) -> Result<Vec<u64>> {
        self.begin_read();
        let (lo, hi) = group_range(g);
        let hi = hi.min(u64_to_i64(max));
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT state_id FROM states WHERE creator_id = ?1 AND state_id BETWEEN ?2 AND ?3",
            )
            .map_err(sq(&self.path))?;
        let ids = stmt
            .query_map(params![g.0, lo, hi], |r| r.get::<_, i64>(0))
            .map_err(sq(&self.path))?
            .filter_map(|id| id.ok().map(|id| id as u64))
            .collect();
        Ok(ids)
    }

    /// The stored open lifetimes of creator `creator_id` with these ids (taken from
    /// [`Writer::open_keys`]).
    pub fn load_open_of(
        &mut self,
        creator_id: u32,
        ids: &RoaringTreemap,
    ) -> Result<Vec<OpenState>> {
        // A state a message names is read like an older capture's lookups: in the read
        // transaction the lookups between two flushes share.
        self.begin_read();
        // Many (a CLR): one pass over the open ones, room made for these only.
        if ids.len() > 64 {
            let (_, mostly_open) = self.count_open()?;
            let expect = i64::try_from(ids.len()).unwrap_or(i64::MAX);
            return self.read_open(
                |k| k.creator_id == creator_id && ids.contains(k.id),
                expect,
                mostly_open,
            );
        }
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {OPEN_COLS} FROM states
                 WHERE creator_id = ?1 AND state_id = ?2 AND dur_class = 14"
            ))
            .map_err(sq(&self.path))?;
        let mut out = Vec::new();
        for id in ids {
            let mut rows = stmt
                .query(params![creator_id, u64_to_i64(id)])
                .map_err(sq(&self.path))?;
            while let Some(r) = rows.next().map_err(sq(&self.path))? {
                let (row, o) = open_row(r);
                self.rows.insert(key_of(&o.state), row);
                out.push(o);
            }
        }
        Ok(out)
    }

    pub fn push(&mut self, e: Event) {
        if let Some(t) = event_time(&e) {
            self.journal.clock = self.journal.clock.max(t);
        }
        match &e {
            Event::Open { state, start, .. } | Event::End { state, start, .. } => {
                let day = crate::model::digest::day_of(*start);
                self.touched.days.insert((state.creator_id, day));
            }
            Event::Clear { creator_id, .. } => {
                self.touched.cleared.insert(*creator_id);
            }
            _ => {}
        }
        if let Event::End {
            state,
            end,
            reason: EndReason::Replaced,
            ..
        } = &e
        {
            self.replaced.push((state.creator_id, state.id, *end));
        }
        if let Event::Open {
            state,
            seen,
            flavor,
            record_version,
            ..
        } = &e
        {
            let c = self.creators.entry(state.creator_id).or_insert((
                *flavor,
                *record_version,
                *seen,
                *seen,
            ));
            c.2 = c.2.min(*seen);
            c.3 = c.3.max(*seen);
        }
        if self.tracker_holds {
            if let Some(k) = event_key(&e) {
                let tracked = match &e {
                    Event::End { .. } => self.tracked.remove(&k),
                    _ => self.tracked.contains(&k),
                };
                if tracked {
                    self.tracked_event(k, e);
                    return;
                }
            }
        }
        // Lifetimes held in memory take every event about them here.
        if let Some(k) = event_key(&e) {
            // One lookup, and the removal of an ended row without a second.
            if let Ok(mut slot) = self.held.find_entry(&k) {
                let row = slot.get_mut();
                match &e {
                    Event::Open {
                        state,
                        start,
                        seen,
                        flavor,
                        ..
                    } => row.merge_open(state, *start, *seen, *flavor),
                    Event::Refresh { state, seen } => row.refresh(state, *seen),
                    Event::Touch { seen, .. } => row.touch(*seen),
                    Event::End { end, reason, .. } => row.end(*end, *reason),
                    Event::Orphan { seen, kind, .. } => {
                        row.touch(*seen);
                        if *kind == OrphanKind::DelC {
                            row.end(*seen, EndReason::Delete);
                        }
                    }
                    Event::Clear { .. } | Event::Bus { .. } => {}
                }
                if row.end.is_some() {
                    self.ready.push(slot.remove().0);
                } else {
                    self.journal.seen(k, row);
                }
                return;
            }
        }
        if let Some(k) = event_key(&e) {
            if let Some(l) = self.lazy_last.get_mut(&k) {
                // The "last seen" the event itself stores: an end's (unless a CLR's, which
                // is no sighting), a full update's, a touch's once it is due.
                let raises = match &e {
                    Event::Touch { seen, .. } if *seen <= l.written + TOUCH_EVERY_US => {
                        l.known = l.known.max(*seen);
                        return;
                    }
                    Event::Touch { seen, .. } | Event::Refresh { seen, .. } => Some(*seen),
                    Event::End { end, reason, .. } if *reason != EndReason::Clear => Some(*end),
                    _ => None,
                };
                // Anything else about the lifetime comes after its latest "last seen".
                if l.known > l.written && raises.is_none_or(|t| t < l.known) {
                    self.pending.push(Event::Touch {
                        key: k,
                        seen: l.known,
                    });
                    l.written = l.known;
                }
                if let Some(t) = raises {
                    l.written = l.written.max(t);
                    l.known = l.known.max(t);
                }
                if matches!(e, Event::End { .. }) {
                    self.lazy_last.remove(&k);
                }
            }
        }
        // Counts every id in, so a later INS of the same id takes the merge path.
        let fresh = self.is_new(&e) || self.absent(&e);
        match e {
            Event::Open {
                state,
                start,
                seen,
                flavor,
                ..
            } if fresh => {
                let k = StateRef {
                    id: state.id,
                    creator_id: state.creator_id,
                };
                if self.tracker_holds {
                    self.tracked.insert(k);
                    return;
                }
                self.held.insert(Box::new(Row::new(OpenState::new(
                    CompactState::new(&state),
                    start,
                    seen,
                    flavor,
                ))));
                if !self.hold_open {
                    self.journal.fresh.insert(k);
                }
            }
            e => self.pending.push(e),
        }
    }

    /// From now on the tracker holds this import's new lifetimes while they are open: the
    /// writer keeps their keys, not a second copy of each (a table probe, an allocation and
    /// ~230 bytes a lifetime: perf, ~10 % of an import). Their end event carries the whole
    /// lifetime; [`Writer::hold_tracked`] must hand back those still open before
    /// [`Writer::finish`]. The recorder holds its journal lifetimes itself (journaled).
    pub fn let_tracker_hold(&mut self) {
        self.tracker_holds = self.hold_open;
    }

    /// An event about a lifetime the tracker holds: its end makes the row; the rest the
    /// tracker has merged already.
    fn tracked_event(&mut self, k: StateRef, e: Event) {
        match e {
            Event::End {
                state,
                start,
                end,
                reason,
                first_full,
                updated,
                last_seen,
                flavor,
            } => {
                let seen = (first_full, updated, last_seen);
                let mut row = self.tracked_row(k, state, flavor, start, seen);
                row.end(end, reason);
                self.ready.push(row);
            }
            // A DEL_C stamped before the lifetime began: the tracker keeps the state open,
            // the store ends the lifetime there (the earliest end wins), as for a row it holds.
            Event::Orphan {
                seen,
                kind: OrphanKind::DelC,
                ..
            } => {
                let t = self.early_end.entry(k).or_insert(seen);
                *t = (*t).min(seen);
            }
            _ => {}
        }
    }

    /// The tracker's open lifetimes at the end of an import, taken from it
    /// ([`crate::track::Tracker::take_open`]): those it held for this writer are stored open
    /// by [`Writer::finish`] (or ended, after an early DEL_C), as any held lifetime is. Not
    /// as held rows: each is written from its box and freed, so an import with many open
    /// does not hold them twice (and more) while the page cache fills.
    pub fn hold_tracked(&mut self, open: impl IntoIterator<Item = Box<Compact>>) {
        for o in open {
            let k = o.state_ref();
            if !self.tracked.remove(&k) {
                continue;
            }
            if self.early_end.contains_key(&k) {
                let o = o.to_full();
                let seen = (o.first_full, o.updated, o.last_seen);
                let row = self.tracked_row(k, o.state, o.flavor, o.start, seen);
                self.ready.push(row);
            } else {
                self.tracked_open.push(o);
            }
        }
    }

    /// [`Writer::hold_tracked`]'s open lifetimes into states, in the order they were first
    /// seen (as the recorder's journal ones move there), each freed once written.
    fn store_tracked_open(&mut self) -> Result<()> {
        let mut open = std::mem::take(&mut self.tracked_open);
        open.sort_unstable_by_key(|o| (o.first_full, o.state.creator_id, o.state.id));
        let tx = self.conn.transaction().map_err(sq(&self.path))?;
        for o in open {
            insert_row(&tx, &Row::new(*o)).map_err(sq(&self.path))?;
        }
        tx.commit().map_err(sq(&self.path))
    }

    /// Open lifetimes the tracker drops from memory: those it held for this writer are
    /// stored open by the next flush, where a later message finds them (as a state a
    /// previous run left open); the others are stored already.
    pub fn store_open(&mut self, open: impl IntoIterator<Item = OpenState>) {
        for o in open {
            let k = key_of(&o.state);
            if !self.tracked.remove(&k) {
                continue;
            }
            let seen = (o.first_full, o.updated, o.last_seen);
            let row = self.tracked_row(k, o.state, o.flavor, o.start, seen);
            if row.end.is_some() {
                self.ready.push(row);
            } else {
                self.evicted.push(row);
            }
        }
    }

    /// Open lifetimes the recorder's tracker dropped from memory (`record --max-open`): the
    /// next commit leaves each whole in `states` and nothing of it here but its row id, so
    /// that [`Writer::load_open_of`] reads it back as the tracker had it. Held (journal) ones
    /// are written early; a stored one gets its lazily kept "last seen".
    pub fn evict_open(&mut self, keys: impl IntoIterator<Item = StateRef>) {
        self.journal.evicted_since = true;
        for k in keys {
            if let Some(r) = self.held.get(&k) {
                if r.journaled() {
                    // Its journal row is closed and the row stored, as a stale one's.
                    self.journal.stale.insert(k);
                } else {
                    self.journal.fresh.insert(k);
                }
                self.journal.evict.insert(k);
            } else if let Some(l) = self.lazy_last.remove(&k) {
                if l.known > l.written {
                    self.pending.push(Event::Touch {
                        key: k,
                        seen: l.known,
                    });
                }
            }
        }
    }

    /// Whether evicted lifetimes wait for the next commit to be readable in `states`.
    pub fn evictions_pending(&self) -> bool {
        self.journal.evicted_since
    }

    /// The row of a lifetime the tracker held: as it reports it, (first full message,
    /// newest full message, last seen), ended already if an early DEL_C came for it.
    fn tracked_row(
        &mut self,
        k: StateRef,
        state: FullState,
        flavor: Flavor,
        start: Micros,
        (first_full, updated, last_seen): (Micros, Micros, Micros),
    ) -> Box<Row> {
        let mut row = Box::new(Row::new(OpenState {
            state: CompactState::new(&state),
            start,
            first_full,
            updated,
            last_seen,
            flavor,
        }));
        if let Some(t) = self.early_end.remove(&k) {
            row.end(t, EndReason::Delete);
        }
        row
    }

    /// Whether `e` opens a lifetime the store cannot hold yet: an id above every id stored
    /// or on its way, for a creator with no CLR stored at or after it. Counts the id in.
    fn is_new(&mut self, e: &Event) -> bool {
        if let Event::Clear { creator_id, at, .. } = e {
            let c = self.last_clear(*creator_id);
            self.last_clear
                .insert(*creator_id, Some(c.map_or(*at, |m| m.max(*at))));
        }
        let Some(k) = event_key(e) else {
            return false;
        };
        let id = u64_to_i64(k.id);
        let group = group_of(&k);
        let max = match self.known_max.get(&group) {
            Some(m) => *m,
            None => {
                let (lo, hi) = group_range(group);
                // Unknown on error: then nothing is new, and the merge path decides.
                let stored = self
                    .conn
                    .query_row(
                        "SELECT max(state_id) FROM states WHERE creator_id = ?1 AND state_id BETWEEN ?2 AND ?3",
                        params![k.creator_id, lo, hi],
                        |r| r.get::<_, Option<i64>>(0),
                    )
                    .unwrap_or(Some(i64::MAX));
                let archived =
                    archive::max_id(&self.conn, k.creator_id, group.1).unwrap_or(Some(i64::MAX));
                let base = stored.max(archived);
                self.opened.insert(group, (base, RoaringTreemap::new(), 0));
                base
            }
        };
        self.known_max
            .insert(group, Some(max.map_or(id, |m| m.max(id))));
        if let (Event::Open { .. }, Some((base, ids, n))) = (e, self.opened.get_mut(&group)) {
            if base.is_none_or(|b| id > b) {
                if *n >= OPENED_MAX {
                    // Bounded: older ids take the look in the batches again.
                    *base = ids.max().map(u64_to_i64).max(*base);
                    ids.clear();
                    *n = 0;
                } else if ids.insert(k.id) {
                    *n += 1;
                }
            }
        }
        let Event::Open { seen, .. } = e else {
            return false;
        };
        if max.is_some_and(|m| id <= m) {
            return false;
        }
        self.last_clear(k.creator_id).is_none_or(|c| c < *seen)
    }

    /// Whether `e` opens a lifetime at or below the stored ids (an older capture imported
    /// into a newer file) of which the store holds nothing, and that no earlier event of
    /// this writer named: it is then held as a new one, not written into `states` and
    /// taken out again to be archived (an INSERT and a DELETE in four indexes per lifetime:
    /// such imports ran at a sixth of the speed of new ones, measured then; git log -p BENCHMARKS.md).
    /// Run after [`Writer::is_new`], which knows the group's stored maximum.
    fn absent(&mut self, e: &Event) -> bool {
        let Some(k) = event_key(e) else {
            return false;
        };
        let group = group_of(&k);
        let below = self
            .opened
            .get(&group)
            .is_some_and(|(base, ..)| base.is_some_and(|b| u64_to_i64(k.id) <= b));
        if !below || !self.met_old.entry(k.creator_id).or_default().insert(k.id) {
            return false;
        }
        let Event::Open { seen, .. } = e else {
            return false;
        };
        // A CLR stored since it began ends it: the merge path applies that.
        if self.last_clear(k.creator_id).is_some_and(|c| c >= *seen) {
            return false;
        }
        self.begin_read();
        // Unknown on error: then it is stored, and the merge path decides.
        let in_states = self
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM states WHERE creator_id = ?1 AND state_id = ?2)",
            )
            .and_then(|mut st| {
                st.query_row(params![k.creator_id, u64_to_i64(k.id)], |r| {
                    r.get::<_, bool>(0)
                })
            })
            .unwrap_or(true);
        !in_states
            && archive::find(&self.conn, &mut self.batch_index, &self.names, &k)
                .is_ok_and(|v| v.is_empty())
    }

    /// Lookups between flushes (an older capture's states, looked for in `states` and in
    /// the batches; stored open states a message names) share one read transaction, ended
    /// by the next flush before it writes (`finish` flushes first): each on its own took
    /// and released the WAL's read lock, two fcntl calls (~10 % of an older capture's
    /// import).
    fn begin_read(&mut self) {
        if !self.reading && self.conn.is_autocommit() {
            self.reading = self.conn.execute_batch("BEGIN").is_ok();
        }
    }

    /// End the read transaction of [`Writer::begin_read`], if one is open.
    pub(crate) fn end_read(&mut self) {
        if std::mem::take(&mut self.reading) && self.conn.execute_batch("COMMIT").is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    /// The latest CLR of a creator stored or on its way (unknown on error: then every
    /// state might be cleared, and the merge path decides).
    fn last_clear(&mut self, creator_id: u32) -> Option<Micros> {
        if let Some(c) = self.last_clear.get(&creator_id) {
            return *c;
        }
        let c = self
            .conn
            .query_row(
                "SELECT max(ts_us) FROM clears WHERE creator_id = ?1",
                [creator_id],
                |r| r.get::<_, Option<i64>>(0),
            )
            .unwrap_or(Some(Micros::MAX));
        self.last_clear.insert(creator_id, c);
        c
    }

    /// Events waiting for the next flush: a held lifetime that ended counts its start and
    /// its end, one still open (recorder) its start.
    pub fn pending(&self) -> usize {
        self.batch_len() + self.ready.len()
    }

    /// Statements the next flush will run, about: one per pending event and per held row
    /// (what sizes a batch).
    pub fn batch_len(&self) -> usize {
        self.pending.len() + self.ready.len() + self.journal.fresh.len()
    }

    /// Record a moment of partial blindness (written with the next flush).
    pub fn gap(
        &mut self,
        from: Micros,
        to: Micros,
        kind: &'static str,
        count: u64,
        detail: String,
    ) {
        self.gaps.push((from, to, kind, count, detail));
    }

    /// Write everything pending, and the run's counters, in one transaction. On failure
    /// (disk full, I/O error) nothing pending is dropped: the same batch is tried again by
    /// the next flush.
    pub fn flush(&mut self, counters: &RunCounters) -> Result<()> {
        self.end_read();
        let path = self.path.clone();
        // Waiting lifetimes this flush batches stay in `waiting` until it is durable.
        let mut to_archive = std::mem::take(&mut self.archive_buf);
        self.archived_journal = false;
        let done = self.write_pending(counters, &mut to_archive);
        to_archive.clear();
        self.archive_buf = to_archive;
        match done {
            Ok(mut j) => {
                self.archived_journal = j.archived_journal && self.defers_batches();
                self.pending.clear();
                for at in std::mem::take(&mut j.unwaited) {
                    self.waiting.remove(at);
                }
                self.waiting.remove_lists(&j.archived_lists);
                self.private_pending.extend(std::mem::take(&mut j.history));
                for h in std::mem::take(&mut j.history_merged) {
                    self.private_pending.remove(&h);
                }
                // Both lists keep their capacity from flush to flush: grown anew each time,
                // they were copied and their memory faulted in again (perf: ~4 %).
                let mut ended = std::mem::take(&mut self.ready);
                if !j.wait.is_empty() {
                    // Indices ascending: the rows that wait move out, the others stay.
                    let wait = std::mem::take(&mut j.wait);
                    let mut next = wait.iter().peekable();
                    let mut stay = std::mem::take(&mut self.ready_spare);
                    for (i, r) in ended.drain(..).enumerate() {
                        if next.next_if(|w| **w == i).is_none() {
                            stay.push(r);
                            continue;
                        }
                        match r.end.and_then(|e| archive::complete_at(r.start, e.0)) {
                            Some(t) => self
                                .waiting
                                .insert(r.stored(), t.saturating_add(WAIT_SLACK_US)),
                            None => stay.push(r),
                        }
                    }
                    self.ready_spare = std::mem::replace(&mut ended, stay);
                }
                self.journal
                    .commit(j, &mut ended, &mut self.held, &mut self.lazy_last);
                self.ready = ended;
                self.creators.clear();
                self.gaps.clear();
                self.replaced.clear();
                self.evicted.clear();
                Ok(())
            }
            Err(e) => {
                // Row ids learnt inside the rolled-back transaction may not exist: forget
                // them all; lookups fall back to the (creator, id) index. The same for
                // names, batch numbers and what was taken out of batches.
                self.rows.clear();
                self.next_batch = None;
                self.batch_index.reset();
                self.looked.clear();
                self.any_archived = None;
                let _ = self.names.reload(&self.conn);
                Err(sq(&path)(e))
            }
        }
    }

    /// `to_archive`: an empty list for the lifetimes archived that are not waiting ones.
    fn write_pending(
        &mut self,
        counters: &RunCounters,
        to_archive: &mut Vec<Stored>,
    ) -> rusqlite::Result<Journal> {
        let deferring = self.defers_batches();
        let tx = self.conn.transaction()?;
        for r in &self.evicted {
            insert_row(&tx, r)?;
            self.rows.insert(r.key(), tx.last_insert_rowid());
        }
        // Held lifetimes first: every pending event about their key came after their end.
        // They are archived, except those a pending event names: that event merges into
        // their row in states.
        let named: StateSet = self.pending.iter().filter_map(event_key).collect();
        // The recorder batches its journal lifetimes that ended every SEAL_EVERY_US; until then
        // they are journaled, ended.
        let archive_journal = !deferring
            || self.journal.unarchived.len() >= UNSEALED_MAX
            || self.journal.clock >= self.journal.archived_at.saturating_add(SEAL_EVERY_US);
        // Room for every lifetime that may be archived but the waiting ones (archived where they
        // are): grown row by row, the list was copied at each doubling.
        archive::emptied(to_archive, self.ready.len() + self.journal.unarchived.len());
        // An unarchived lifetime a pending event names goes into states, where it merges.
        let mut unjournal = store_named(
            &tx,
            &named,
            |k| self.journal.unarchived.get(k).map(|(r, _)| r),
            insert_row,
        )?;
        if archive_journal {
            for (k, (r, _)) in &self.journal.unarchived {
                if !named.contains(k) {
                    to_archive.push(r.stored());
                    unjournal.push(*k);
                }
            }
        }
        // An import's waiting lifetimes: into states if a pending event names them (it
        // merges there), archived once their bucket is complete (or memory is short, or the
        // import ends).
        // (Ended: stored closed.)
        let waiting_named = self.waiting.find(&named);
        let unwaited: Vec<(Micros, u32)> = store_named(
            &tx,
            &named,
            |k| waiting_named.get(k).and_then(|at| self.waiting.get(*at)),
            |tx, r| insert_stored(tx, r, true),
        )?
        .iter()
        .filter_map(|k| waiting_named.get(k).copied())
        .collect();
        let watermark = if self.hold_open {
            counters.last_us.unwrap_or(Micros::MIN)
        } else {
            Micros::MAX
        };
        let over = (self.waiting.len() + self.ready.len()).saturating_sub(WAITING_MAX / 2);
        let over = if self.waiting.len() + self.ready.len() > WAITING_MAX {
            over
        } else {
            0
        };
        // Archived in this order: journal ones, waiting ones (where they are), then the others.
        let young_n = to_archive.len();
        let mut due: Vec<&Stored> = Vec::new();
        let mut archived_lists = Vec::new();
        self.waiting
            .due((watermark, over), &named, &mut due, &mut archived_lists);
        let mut defer = Vec::new();
        let mut wait = Vec::new();
        for (i, r) in self.ready.iter().enumerate() {
            match r.end {
                Some(e) if !named.contains(&r.key()) => {
                    let complete = archive::complete_at(r.start, e.0)
                        .map_or(Micros::MAX, |t| t.saturating_add(WAIT_SLACK_US));
                    if self.hold_open && complete > watermark && over == 0 {
                        wait.push(i);
                    } else if archive_journal {
                        to_archive.push(r.stored());
                    } else {
                        defer.push(&**r);
                    }
                }
                _ => insert_row(&tx, r)?,
            }
        }
        // The recorder: open lifetimes are in the store at every commit, journal ones in the
        // journal; later events about stored ones update their rows.
        let mut journal = if self.hold_open {
            Journal::default()
        } else {
            self.journal.write(
                &tx,
                &self.ready,
                &defer,
                &unjournal,
                &self.held,
                &mut self.rows,
            )?
        };
        journal.unjournaled = unjournal;
        journal.archived_journal = archive_journal;
        journal.unwaited = unwaited;
        journal.archived_lists = archived_lists;
        journal.wait = wait;
        if self.any_archived.is_none() {
            let any: bool =
                tx.query_row("SELECT EXISTS (SELECT 1 FROM archive_batches)", [], |r| {
                    r.get(0)
                })?;
            self.any_archived = Some(any);
        }
        // Archived lifetimes of the keys met in this batch, read once.
        let mut archived_of: StateMap<Vec<Stored>> = StateMap::default();
        // Stored open lifetimes that ended in this batch, taken out of states to be archived.
        let mut closing: StateMap<Stored> = StateMap::default();
        for e in &self.pending {
            if let Some(k) = event_key(e) {
                // Another message about a lifetime that just ended (a repeated DEL_C): back
                // into states, where the merges below apply to it; it stays there.
                if let Some(s) = closing.remove(&k) {
                    insert_stored(&tx, &s, true)?;
                }
            }
            // A message about a lifetime that may be archived: if it would change nothing (a
            // re-import, an overlapping capture) it is done; else the lifetime goes back into
            // states first, where the merges below apply to it as to any stored row.
            if self.any_archived == Some(true) {
                if let Some(k) = event_key(e) {
                    if self.looked.len() >= LOOKED_MAX {
                        // Forgetting only costs a second look: memory stays bounded.
                        self.looked.clear();
                    }
                    if !self.rows.contains_key(&k)
                        && !self.looked.contains(&k)
                        && !never_archived(&self.opened, &k)
                    {
                        let mine = match archived_of.entry(k) {
                            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                            std::collections::hash_map::Entry::Vacant(v) => v.insert(
                                archive::find(&tx, &mut self.batch_index, &self.names, &k)?,
                            ),
                        };
                        if mine.is_empty() {
                            self.looked.insert(k);
                        } else if changes_nothing(&tx, &k, mine, e)? {
                            continue;
                        } else {
                            for s in archive::take(&tx, &mut self.batch_index, &self.names, &k)? {
                                insert_stored(&tx, &s, true)?;
                            }
                            archived_of.remove(&k);
                            self.looked.insert(k);
                        }
                    }
                }
            }
            apply(&tx, &mut self.rows, &mut closing, e)?;
        }
        for (k, s) in closing {
            self.looked.remove(&k);
            to_archive.push(s);
        }
        if !to_archive.is_empty() || !due.is_empty() {
            let no = match self.next_batch {
                Some(n) => n,
                None => archive::next_batch(&tx)?,
            };
            let (from_journal, rest) = to_archive.split_at(young_n);
            let mut rows: Vec<&Stored> = Vec::with_capacity(to_archive.len() + due.len());
            rows.extend(from_journal);
            rows.append(&mut due);
            rows.extend(rest);
            for r in &rows {
                let c = archive::filed(r).0;
                self.archived_by_class[c.clamp(0, 15) as usize] += 1;
            }
            let by_class = self.archived_by_class;
            let span = match (counters.first_us, counters.last_us) {
                (Some(a), Some(b)) => b.saturating_sub(a),
                _ => 0,
            };
            let expect = |c: i64, n: u64| {
                archive::expected_in_bucket(c, n, by_class[c.clamp(0, 15) as usize], span)
            };
            journal.history = archive::write_batch_with(
                &tx,
                &rows,
                no,
                &mut self.names,
                &expect,
                &mut self.archive_lists,
            )?;
            self.next_batch = Some(no + 1);
            self.batch_index.reset();
            self.any_archived = Some(true);
            // Buckets no later packet can add to become one row per pair now.
            if let Some(w) = counters.last_us {
                for (c, b) in archive::buckets_to_merge(&tx, Some(w))? {
                    archive::merge_bucket(&tx, &self.names, c, b)?;
                }
            }
        }
        // History buckets no later packet can add to: one row per private host.
        let watermark = counters.last_us;
        let mut complete: Vec<(i64, i64)> = self
            .private_pending
            .iter()
            .chain(journal.history.iter())
            .filter(|(c, hb)| watermark.is_some_and(|w| archive::history_complete(*c, *hb, w)))
            .copied()
            .collect();
        complete.sort_unstable();
        complete.dedup();
        for &(c, hb) in &complete {
            archive::merge_private(&tx, c, hb)?;
        }
        journal.history_merged = complete;
        for (c, (flavor, rv, first, last)) in &self.creators {
            tx.prepare_cached(
                "INSERT INTO creators (creator_id, flavor, version, record_version, first_us, last_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (creator_id) DO UPDATE SET
                    flavor = excluded.flavor, version = excluded.version,
                    record_version = coalesce(excluded.record_version, record_version),
                    first_us = min(first_us, excluded.first_us),
                    last_us = max(last_us, excluded.last_us)",
            )?
            .execute(params![
                c,
                flavor.name(),
                flavor.header_version(),
                if *rv == 0 { None } else { Some(*rv) },
                first,
                last
            ])?;
        }
        for (creator_id, id, at) in &self.replaced {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO replacements (creator_id, state_id, ts_us) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![creator_id, u64_to_i64(*id), at])?;
        }
        for (from, to, kind, count, detail) in &self.gaps {
            tx.prepare_cached(
                "INSERT INTO gaps (run_id, start_us, end_us, kind, count, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (run_id, start_us, kind) DO UPDATE SET end_us = max(end_us, excluded.end_us), count = max(count, excluded.count)",
            )?
            .execute(params![self.run_id, from, to, kind, *count as i64, detail])?;
        }
        tx.prepare_cached(
            "UPDATE runs SET first_us = CASE WHEN first_us IS NULL OR ?2 < first_us THEN ?2 ELSE first_us END,
                             last_us = CASE WHEN last_us IS NULL OR ?3 > last_us THEN ?3 ELSE last_us END,
                             packets = max(packets, ?4), messages = max(messages, ?5), drops = max(drops, ?6),
                             decode_errors = max(decode_errors, ?7), skipped = max(skipped, ?8)
             WHERE id = ?1",
        )?
        .execute(params![
            self.run_id,
            counters.first_us,
            counters.last_us,
            counters.packets as i64,
            counters.messages as i64,
            counters.drops as i64,
            counters.decode_errors as i64,
            counters.skipped as i64
        ])?;
        if self.health {
            super::health::sample(&tx, self.run_id, counters)?;
        }
        self.touched.mark(&tx, self.touched_why)?;
        tx.commit()?;
        self.touched.clear();
        Ok(journal)
    }

    /// Close the run: flush, mark it stopped (or failed), checkpoint the WAL.
    pub fn finish(mut self, counters: &RunCounters, status: &str, wall: Micros) -> Result<()> {
        if !self.tracked.is_empty() {
            // A caller's mistake, not the data's: refuse rather than lose those lifetimes.
            return Err(super::StoreError::Io {
                path: self.path.clone(),
                why: format!(
                    "{} open lifetimes held by the tracker were not handed back",
                    self.tracked.len()
                ),
            });
        }
        // Lifetimes still open at the end of an import are stored open, as the recorder
        // stores them at every flush; the recorder's journal ones move into states.
        if self.hold_open {
            self.journal.fresh.extend(self.held.keys());
        }
        self.hold_open = false;
        self.journal.young_for = 0;
        let late: Vec<Event> = self
            .lazy_last
            .drain()
            .filter(|(_, l)| l.known > l.written)
            .map(|(key, l)| Event::Touch { key, seen: l.known })
            .collect();
        self.pending.extend(late);
        self.flush(counters)?;
        self.store_tracked_open()?;
        // Every bucket this import wrote into several times becomes one row per pair.
        if self.next_batch.is_some() {
            let tx = self.conn.transaction().map_err(sq(&self.path))?;
            for (c, b) in archive::buckets_to_merge(&tx, None).map_err(sq(&self.path))? {
                archive::merge_bucket(&tx, &self.names, c, b).map_err(sq(&self.path))?;
            }
            let mut history: Vec<(i64, i64)> = self.private_pending.iter().copied().collect();
            history.sort_unstable();
            for (c, hb) in history {
                archive::merge_private(&tx, c, hb).map_err(sq(&self.path))?;
            }
            tx.commit().map_err(sq(&self.path))?;
        }
        self.conn
            .execute(
                "UPDATE runs SET status = ?2, stopped_wall = ?3 WHERE id = ?1",
                params![self.run_id, status, wall],
            )
            .map_err(sq(&self.path))?;
        super::hand_back(&self.conn);
        Ok(())
    }

    /// A live recorder's writer: every flush records the run's health (`status`).
    pub fn set_live(&mut self) {
        self.health = true;
    }

    /// The page cache of the writer's connection, MiB.
    pub fn set_cache_mib(&self, mib: u32) -> Result<()> {
        self.conn
            .pragma_update(None, "cache_size", -1024 * i64::from(mib))
            .map_err(sq(&self.path))
    }

    /// The connection, for tests and maintenance.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }
}

/// Whether [`apply`] of `e` would leave the one archived lifetime of `k` alive at the event's
/// time as it is (then it stays archived). Anything less certain (several alive, a stored row
/// alive too) answers no, and the lifetime is unarchived and merged as any row.
fn changes_nothing(
    tx: &Connection,
    k: &StateRef,
    archived: &[Stored],
    e: &Event,
) -> rusqlite::Result<bool> {
    let ts = match e {
        Event::Open { seen, .. }
        | Event::Refresh { seen, .. }
        | Event::Touch { seen, .. }
        | Event::Orphan { seen, .. } => *seen,
        Event::End { end, .. } => *end,
        Event::Clear { .. } | Event::Bus { .. } => return Ok(false),
    };
    // find_alive's rule, over the archived lifetimes (find_alive_as's for a full state).
    let keys = match e {
        Event::Open { state, .. } | Event::Refresh { state, .. } | Event::End { state, .. } => {
            Some(state)
        }
        _ => None,
    };
    let mut alive = archived.iter().filter(|l| {
        l.end >= ts - SLACK_US
            && l.start <= ts + SLACK_US
            && keys.is_none_or(|s| stored_same_keys(l, s))
    });
    let (Some(l), None) = (alive.next(), alive.next()) else {
        return Ok(false);
    };
    let in_states = match keys {
        Some(s) => find_alive_as(tx, s, ts)?,
        None => find_alive(tx, k, ts)?,
    };
    if in_states.is_some() {
        return Ok(false);
    }
    // Merged by the rules apply's SQL mirrors (model::lifetime), the lifetime comes out as
    // it went in.
    let Some(mut row) = Row::of_stored(l) else {
        return Ok(false);
    };
    match e {
        Event::Open {
            state,
            start,
            seen,
            flavor,
            ..
        } => {
            // apply: a CLR stored after it ends the lifetime there.
            if first_clear(tx, state, *seen)?.is_some_and(|c| c < l.end) {
                return Ok(false);
            }
            row.merge_open(state, *start, *seen, *flavor);
        }
        Event::Refresh { state, seen } => row.refresh(state, *seen),
        Event::Touch { seen, .. } => row.touch(*seen),
        Event::End { end, reason, .. } => row.end(*end, *reason),
        Event::Orphan { seen, kind, .. } => {
            row.touch(*seen);
            if *kind == OrphanKind::DelC {
                row.end(*seen, EndReason::Delete);
            }
        }
        Event::Clear { .. } | Event::Bus { .. } => return Ok(false),
    }
    Ok(row.stored() == *l)
}

/// Find the row of the lifetime of `k` that was alive at `ts` (the newest such row).
///
/// Hot path of every import: no ORDER BY and no bound value compared with a time column in
/// SQL, because either makes SQLite re-plan the statement on every call (measured: most of
/// an import's time); the few candidate rows are filtered here instead.
fn find_alive(tx: &Connection, k: &StateRef, ts: Micros) -> rusqlite::Result<Option<i64>> {
    let mut st = tx.prepare_cached(
        "SELECT id, start_us, end_us FROM states WHERE creator_id = ?1 AND state_id = ?2",
    )?;
    let mut rows = st.query(params![k.creator_id, u64_to_i64(k.id)])?;
    let mut best = None;
    while let Some(r) = rows.next()? {
        let (id, start, end): (i64, Option<i64>, Option<i64>) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let ended_before = end.is_some_and(|e| e < ts - SLACK_US);
        let began_after = start.is_some_and(|s| s > ts + SLACK_US);
        if !ended_before && !began_after && best.is_none_or(|b| id > b) {
            best = Some(id);
        }
    }
    Ok(best)
}

/// [`find_alive`] for a full state: only a row with its keys (or an evidence row, which has
/// none) is its lifetime; another state under the same id ended where this one began
/// (track.rs, "replaced"), however close in time.
fn find_alive_as(tx: &Connection, s: &FullState, ts: Micros) -> rusqlite::Result<Option<i64>> {
    let mut st = tx.prepare_cached(
        "SELECT id, start_us, end_us, af, proto, w_addr0, w_port0, w_addr1, w_port1, w_rdomain,
                s_addr0, s_port0, s_addr1, s_port1, s_rdomain, s_af
         FROM states WHERE creator_id = ?1 AND state_id = ?2",
    )?;
    let mut rows = st.query(params![s.creator_id, u64_to_i64(s.id)])?;
    let (w, k) = (key_cols(&s.key[0]), key_cols(&s.key[1]));
    let mut best = None;
    while let Some(r) = rows.next()? {
        let (id, start, end): (i64, Option<i64>, Option<i64>) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let ended_before = end.is_some_and(|e| e < ts - SLACK_US);
        let began_after = start.is_some_and(|s| s > ts + SLACK_US);
        if ended_before || began_after || best.is_some_and(|b| id <= b) {
            continue;
        }
        let int = |i: usize| r.get::<_, Option<i64>>(i).ok().flatten();
        let blob = |i: usize| r.get::<_, Option<Vec<u8>>>(i).ok().flatten();
        let same = start.is_none()
            || (int(3) == Some(i64::from(s.af.to_openbsd()))
                && int(4) == Some(i64::from(s.proto))
                && blob(5).as_ref() == Some(&w.0)
                && int(6) == Some(w.1)
                && blob(7).as_ref() == Some(&w.2)
                && int(8) == Some(w.3)
                && int(9) == Some(w.4)
                && blob(10).as_ref() == Some(&k.0)
                && int(11) == Some(k.1)
                && blob(12).as_ref() == Some(&k.2)
                && int(13) == Some(k.3)
                && int(14) == Some(k.4)
                && int(15) == Some(i64::from(s.key[1].af.to_openbsd())));
        if same {
            best = Some(id);
        }
    }
    Ok(best)
}

/// Whether archived lifetime `l` has the keys of full state `s` ([`find_alive_as`]).
fn stored_same_keys(l: &Stored, s: &FullState) -> bool {
    l.af == s.af.to_openbsd()
        && l.proto == s.proto
        && l.w_addr == s.key[0].addr
        && l.w_port == s.key[0].port
        && l.w_rdomain == s.key[0].rdomain
        && l.s_addr == s.key[1].addr
        && l.s_port == s.key[1].port
        && l.s_rdomain == s.key[1].rdomain
        && l.s_af == s.key[1].af.to_openbsd()
}

fn key_cols(k: &Key) -> (Vec<u8>, i64, Vec<u8>, i64, i64) {
    (
        addr_blob(&k.addr[0]),
        k.port[0] as i64,
        addr_blob(&k.addr[1]),
        k.port[1] as i64,
        k.rdomain as i64,
    )
}

/// The key an event is about, if it names one state.
fn event_key(e: &Event) -> Option<StateRef> {
    match e {
        Event::Open { state, .. } | Event::Refresh { state, .. } | Event::End { state, .. } => {
            Some(StateRef {
                id: state.id,
                creator_id: state.creator_id,
            })
        }
        Event::Touch { key, .. } | Event::Orphan { key, .. } => Some(*key),
        Event::Clear { .. } | Event::Bus { .. } => None,
    }
}

/// The time an event happened at (a CLR's or BUS's none: they name no state).
fn event_time(e: &Event) -> Option<Micros> {
    match e {
        Event::Open { seen, .. }
        | Event::Refresh { seen, .. }
        | Event::Touch { seen, .. }
        | Event::Orphan { seen, .. } => Some(*seen),
        Event::End { end, .. } => Some(*end),
        Event::Clear { .. } | Event::Bus { .. } => None,
    }
}

/// A journal lifetime into the journal, under the commit's `seq` (columns as in states; with
/// its end if `closed`).
fn journal_stored(tx: &Connection, seq: i64, s: &Stored, closed: bool) -> rusqlite::Result<()> {
    write_stored(
        tx,
        stored_insert!("INSERT OR REPLACE INTO journal", ", seq", ", ?32"),
        s,
        closed,
        Some(seq),
    )
}

/// The journal lifetimes a crashed recorder left in the journal, into `states` (open, or
/// closed if they had ended and were waiting for a batch),
/// and the journal emptied, in one transaction. A row that does not read back whole is
/// damage: dropped with the journal (its state's later messages are kept as evidence).
/// How many moved.
pub(crate) fn promote_journal(conn: &Connection) -> rusqlite::Result<u64> {
    let any: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM journal) OR EXISTS (SELECT 1 FROM journal_ends)",
        [],
        |r| r.get(0),
    )?;
    if !any {
        return Ok(0);
    }
    let tx = conn.unchecked_transaction()?;
    let mut n = 0;
    {
        let mut st = tx.prepare(&format!(
            "SELECT {STORED_COLS} FROM journal y
              WHERE NOT EXISTS (SELECT 1 FROM journal_ends e WHERE e.creator_id = y.creator_id
                                   AND e.state_id = y.state_id AND e.seq > y.seq)
              ORDER BY first_us, creator_id, state_id"
        ))?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            if let Some(s) = stored_of(r, 0) {
                // Young lifetimes that ended are journaled with their end until archived.
                let closed = r.get::<_, Option<i64>>(29).ok().flatten().is_some();
                insert_stored(&tx, &s, closed)?;
                n += 1;
            }
        }
    }
    tx.execute_batch("DELETE FROM journal; DELETE FROM journal_ends;")?;
    tx.commit()?;
    Ok(n)
}

/// Insert into `states`, in key order, the lifetimes held back from archiving (`held` finds
/// them; `insert` writes one) that a pending event in `named` is about: the event merges
/// with them there. Their keys.
fn store_named<'a, T: 'a>(
    tx: &Connection,
    named: &StateSet,
    held: impl Fn(&StateRef) -> Option<&'a T>,
    insert: impl Fn(&Connection, &T) -> rusqlite::Result<()>,
) -> rusqlite::Result<Vec<StateRef>> {
    let mut found: Vec<(&StateRef, &T)> = named
        .iter()
        .filter_map(|k| held(k).map(|r| (k, r)))
        .collect();
    found.sort_by_key(|(k, _)| (k.creator_id, k.id));
    let mut keys = Vec::with_capacity(found.len());
    for (k, r) in found {
        insert(tx, r)?;
        keys.push(*k);
    }
    Ok(keys)
}

/// A held lifetime, whole, in one INSERT.
fn insert_row(tx: &Connection, r: &Row) -> rusqlite::Result<()> {
    insert_stored(tx, &r.stored(), r.end.is_some())
}

/// One lifetime as a row of states; `closed`: with its end (else the end is NULL, open).
pub(crate) fn insert_stored(tx: &Connection, s: &Stored, closed: bool) -> rusqlite::Result<()> {
    write_stored(
        tx,
        stored_insert!("INSERT INTO states", "", ""),
        s,
        closed,
        None,
    )
}

/// Run `sql` (a `stored_insert!`, then `extra` as ?32 if given) for one lifetime.
fn write_stored(
    tx: &Connection,
    sql: &str,
    s: &Stored,
    closed: bool,
    extra: Option<i64>,
) -> rusqlite::Result<()> {
    use rusqlite::ToSql;
    let ab = addr_blob;
    let (w0, w1, s0, s1) = (
        ab(&s.w_addr[0]),
        ab(&s.w_addr[1]),
        ab(&s.s_addr[0]),
        ab(&s.s_addr[1]),
    );
    let id = u64_to_i64(s.state_id);
    let end = closed.then_some(s.end);
    let reason = closed.then(|| REASONS[usize::from(s.reason).min(REASONS.len() - 1)]);
    let counts = [s.packets[0], s.packets[1], s.bytes[0], s.bytes[1]].map(u64_to_i64);
    let ifname = s.ifname.as_str();
    let mut values: Vec<&dyn ToSql> = vec![
        &s.creator_id,
        &id,
        &ifname,
        &s.af,
        &s.proto,
        &s.direction,
        &w0,
        &s.w_port[0],
        &w1,
        &s.w_port[1],
        &s.w_rdomain,
        &s0,
        &s.s_port[0],
        &s1,
        &s.s_port[1],
        &s.s_rdomain,
        &s.s_af,
        &s.nat,
        &s.start,
        &s.first,
        &s.last,
        &s.updated,
        &end,
        &reason,
        &s.expire,
        &counts[0],
        &counts[1],
        &counts[2],
        &counts[3],
        &s.rule,
        &s.flavor,
    ];
    if let Some(x) = &extra {
        values.push(x);
    }
    tx.prepare_cached(sql)?.execute(&values[..])?;
    Ok(())
}

/// The columns of `states` that [`open_row`] reads, in its order.
const OPEN_COLS: &str = "id, creator_id, state_id, ifname, af, proto, direction,
    w_addr0, w_port0, w_addr1, w_port1, w_rdomain,
    s_addr0, s_port0, s_addr1, s_port1, s_rdomain, s_af,
    start_us, last_us, expire, packets0, packets1, bytes0, bytes1, rule, flavor, first_us,
    updated_us";

/// A stored open lifetime ([`OPEN_COLS`]) as the tracker holds it, with its row id. Values
/// are borrowed (29 columns of ~1 M rows, no Vec per address); any missing or mistyped
/// column reads as zero: database content is not trusted, and a wrong value here costs at
/// most a lifetime's details, not the import.
fn open_row(r: &rusqlite::Row) -> (i64, OpenState) {
    let get_i = |i: usize| -> i64 {
        r.get_ref(i)
            .ok()
            .and_then(|v| v.as_i64_or_null().ok().flatten())
            .unwrap_or(0)
    };
    let get_b = |i: usize| -> IpAddr {
        r.get_ref(i)
            .ok()
            .and_then(|v| v.as_blob_or_null().ok().flatten())
            .and_then(blob_addr)
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    };
    let af = Af::from_openbsd(get_i(4) as u8);
    let s_af = Af::from_openbsd(get_i(17) as u8);
    let state = FullState {
        id: get_i(2) as u64,
        creator_id: get_i(1) as u32,
        ifname: r
            .get::<_, Option<String>>(3)
            .ok()
            .flatten()
            .unwrap_or_default()
            .into(),
        key: [
            Key {
                addr: [get_b(7), get_b(9)],
                port: [get_i(8) as u16, get_i(10) as u16],
                rdomain: get_i(11) as u16,
                af,
            },
            Key {
                addr: [get_b(12), get_b(14)],
                port: [get_i(13) as u16, get_i(15) as u16],
                rdomain: get_i(16) as u16,
                af: s_af,
            },
        ],
        af,
        proto: get_i(5) as u8,
        direction: Direction::from_u8(get_i(6) as u8),
        creation: 0,
        expire: get_i(20) as u32,
        packets: [get_i(21) as u64, get_i(22) as u64],
        bytes: [get_i(23) as u64, get_i(24) as u64],
        rule: get_i(25) as u32,
        timeout: 0,
        peer_state: [0, 0],
    };
    let flavor = if get_i(26) == 5 {
        Flavor::FreeBsd
    } else {
        Flavor::OpenBsd
    };
    let o = OpenState {
        start: get_i(18),
        first_full: get_i(27),
        // NULL (never updated) reads as 0: any full message is newer.
        updated: get_i(28),
        last_seen: get_i(19),
        state,
        flavor,
    };
    (get_i(0), o)
}

/// The row of the lifetime of state `s` alive at `ts` that an end applies to (forgotten as
/// open).
fn row_of(
    tx: &Connection,
    rows: &mut StateMap<i64>,
    s: &FullState,
    ts: Micros,
) -> rusqlite::Result<Option<i64>> {
    match rows.remove(&key_of(s)) {
        Some(id) => Ok(Some(id)),
        None => find_alive_as(tx, s, ts),
    }
}

/// Take the open lifetime stored as row `id` out of states, ended at `end` (as
/// [`end_row`] would end it), to be archived. None, and the row untouched, if it is closed
/// already or lacks a column a archived lifetime has (then the SQL merges keep it).
fn take_open(
    tx: &Connection,
    id: i64,
    end: Micros,
    reason: EndReason,
) -> rusqlite::Result<Option<Stored>> {
    let mut st = tx.prepare_cached(&format!(
        "SELECT {STORED_COLS} FROM states WHERE id = ?1 AND end_us IS NULL"
    ))?;
    let Some(mut s) = st
        .query_row([id], |r| Ok(stored_of(r, 0)))
        .optional()?
        .flatten()
    else {
        return Ok(None);
    };
    let mut ended = None;
    lifetime::end_at(s.start, &mut s.last, &mut ended, end, reason);
    s.end = ended.map_or(end, |(at, _)| at);
    s.reason = reason_code(reason);
    tx.prepare_cached("DELETE FROM states WHERE id = ?1")?
        .execute([id])?;
    Ok(Some(s))
}

/// The columns of `states` that [`stored_of`] reads, in its order.
pub(crate) const STORED_COLS: &str = "creator_id, state_id, ifname, af, proto, direction,
    w_addr0, w_port0, w_addr1, w_port1, w_rdomain,
    s_addr0, s_port0, s_addr1, s_port1, s_rdomain, s_af, nat,
    start_us, first_us, last_us, updated_us, expire,
    packets0, packets1, bytes0, bytes1, rule, flavor, end_us, end_reason";

/// A row of [`STORED_COLS`] (from column `at` on) as a archived lifetime (end 0 while open), if every column has a
/// value of its type and a closed one a known end reason: database content is not trusted.
pub(crate) fn stored_of(r: &rusqlite::Row, at: usize) -> Option<Stored> {
    let int = |i: usize| r.get::<_, Option<i64>>(at + i).ok().flatten();
    let num = |i: usize| int(i).and_then(|v| u32::try_from(v).ok());
    let small = |i: usize| int(i).and_then(|v| u8::try_from(v).ok());
    let port = |i: usize| int(i).and_then(|v| u16::try_from(v).ok());
    let text = |i: usize| r.get::<_, Option<String>>(at + i).ok().flatten();
    let addr = |i: usize| {
        r.get::<_, Option<Vec<u8>>>(at + i)
            .ok()
            .flatten()
            .and_then(|b| blob_addr(&b))
    };
    let (end, reason) = match int(29) {
        None => (0, 0),
        Some(end) => {
            let name = text(30)?;
            (end, REASONS.iter().position(|n| *n == name)? as u8)
        }
    };
    Some(Stored {
        creator_id: num(0)?,
        state_id: int(1)? as u64,
        ifname: text(2)?.into(),
        af: small(3)?,
        proto: small(4)?,
        direction: small(5)?,
        w_addr: [addr(6)?, addr(8)?],
        w_port: [port(7)?, port(9)?],
        w_rdomain: port(10)?,
        s_addr: [addr(11)?, addr(13)?],
        s_port: [port(12)?, port(14)?],
        s_rdomain: port(15)?,
        s_af: small(16)?,
        nat: int(17)? != 0,
        start: int(18)?,
        first: int(19)?,
        last: int(20)?,
        updated: int(21)?,
        end,
        reason,
        expire: num(22)?,
        packets: [int(23)? as u64, int(24)? as u64],
        bytes: [int(25)? as u64, int(26)? as u64],
        rule: num(27)?,
        flavor: small(28)?,
    })
}

/// One event into the store, merged into the row of its lifetime if there is one. A stored
/// open lifetime that ends is taken out of states into `closing`, to be archived.
fn apply(
    tx: &Connection,
    rows: &mut StateMap<i64>,
    closing: &mut StateMap<Stored>,
    e: &Event,
) -> rusqlite::Result<()> {
    match e {
        Event::Open {
            state: s,
            start,
            seen,
            flavor,
            ..
        } => {
            let k = StateRef {
                id: s.id,
                creator_id: s.creator_id,
            };
            let (w0, wp0, w1, wp1, wrd) = key_cols(&s.key[0]);
            let (s0, sp0, s1, sp1, srd) = key_cols(&s.key[1]);
            let flavor_v = flavor.header_version();
            let existing = match rows.get(&k) {
                Some(id) => Some(*id),
                None => find_alive_as(tx, s, *seen)?,
            };
            // One value list serves both statements: ?2.. of the UPDATE, ?1.. of the INSERT.
            let vals: [Value; 25] = [
                Value::from(*seen),
                Value::from(s.ifname.to_string()),
                Value::from(s.af.to_openbsd()),
                Value::from(s.proto),
                Value::from(s.direction.to_u8()),
                Value::from(w0),
                Value::from(wp0),
                Value::from(w1),
                Value::from(wp1),
                Value::from(wrd),
                Value::from(s0),
                Value::from(sp0),
                Value::from(s1),
                Value::from(sp1),
                Value::from(srd),
                Value::from(s.key[1].af.to_openbsd()),
                Value::from(s.is_nat()),
                Value::from(*start),
                Value::from(flavor_v),
                Value::from(s.expire),
                Value::from(u64_to_i64(s.packets[0])),
                Value::from(u64_to_i64(s.packets[1])),
                Value::from(u64_to_i64(s.bytes[0])),
                Value::from(u64_to_i64(s.bytes[1])),
                Value::from(s.rule),
            ];
            let id = match existing {
                Some(id) => {
                    // Keys and start from the earliest full message; counters from the newest:
                    // the SQL mirrors model::lifetime (OpenState::merge_open; a test checks
                    // they agree), so that a row on disk is merged without reading it back.
                    tx.prepare_cached(
                        "UPDATE states SET
                           ifname = CASE WHEN first_us IS NULL OR ?2 < first_us THEN ?3 ELSE ifname END,
                           af = CASE WHEN first_us IS NULL OR ?2 < first_us THEN ?4 ELSE af END,
                           proto = CASE WHEN first_us IS NULL OR ?2 < first_us THEN ?5 ELSE proto END,
                           direction = CASE WHEN first_us IS NULL OR ?2 < first_us THEN ?6 ELSE direction END,
                           w_addr0 = CASE WHEN first_us IS NULL OR ?2 < first_us THEN ?7 ELSE w_addr0 END,
                           w_port0 = CASE WHEN first_us IS NULL OR ?2 < first_us THEN ?8 ELSE w_port0 END,
                           w_addr1 = CASE WHEN first_us IS NULL OR ?2 < first_us THEN ?9 ELSE w_addr1 END,
                           w_port1 = CASE WHEN first_us IS NULL OR ?2 < first_us THEN ?10 ELSE w_port1 END,
                           w_rdomain = CASE WHEN first_us IS NULL OR ?2 < first_us THEN ?11 ELSE w_rdomain END,
                           s_addr0 = CASE WHEN first_us IS NULL OR ?2 < first_us THEN ?12 ELSE s_addr0 END,
                           s_port0 = CASE WHEN first_us IS NULL OR ?2 < first_us THEN ?13 ELSE s_port0 END,
                           s_addr1 = CASE WHEN first_us IS NULL OR ?2 < first_us THEN ?14 ELSE s_addr1 END,
                           s_port1 = CASE WHEN first_us IS NULL OR ?2 < first_us THEN ?15 ELSE s_port1 END,
                           s_rdomain = CASE WHEN first_us IS NULL OR ?2 < first_us THEN ?16 ELSE s_rdomain END,
                           s_af = CASE WHEN first_us IS NULL OR ?2 < first_us THEN ?17 ELSE s_af END,
                           nat = CASE WHEN first_us IS NULL OR ?2 < first_us THEN ?18 ELSE nat END,
                           start_us = CASE WHEN first_us IS NULL OR ?2 < first_us THEN ?19 ELSE start_us END,
                           flavor = CASE WHEN first_us IS NULL OR ?2 < first_us THEN ?20 ELSE flavor END,
                           expire = CASE WHEN updated_us IS NULL OR ?2 >= updated_us THEN ?21 ELSE expire END,
                           packets0 = CASE WHEN updated_us IS NULL OR ?2 >= updated_us THEN ?22 ELSE packets0 END,
                           packets1 = CASE WHEN updated_us IS NULL OR ?2 >= updated_us THEN ?23 ELSE packets1 END,
                           bytes0 = CASE WHEN updated_us IS NULL OR ?2 >= updated_us THEN ?24 ELSE bytes0 END,
                           bytes1 = CASE WHEN updated_us IS NULL OR ?2 >= updated_us THEN ?25 ELSE bytes1 END,
                           rule = CASE WHEN updated_us IS NULL OR ?2 >= updated_us THEN ?26 ELSE rule END,
                           updated_us = max(coalesce(updated_us, ?2), ?2),
                           first_us = min(coalesce(first_us, ?2), ?2),
                           last_us = max(last_us, ?2)
                         WHERE id = ?1",
                    )?
                    .execute(params_from_iter(std::iter::once(&Value::from(id)).chain(&vals)))?;
                    id
                }
                None => {
                    tx.prepare_cached(
                        "INSERT INTO states (creator_id, state_id, ifname, af, proto, direction,
                            w_addr0, w_port0, w_addr1, w_port1, w_rdomain,
                            s_addr0, s_port0, s_addr1, s_port1, s_rdomain, s_af, nat,
                            start_us, first_us, last_us, updated_us, expire,
                            packets0, packets1, bytes0, bytes1, rule, flavor)
                         VALUES (?26, ?27, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                                 ?18, ?1, ?1, ?1, ?20, ?21, ?22, ?23, ?24, ?25, ?19)",
                    )?
                    .execute(params_from_iter(vals.iter().chain(&[
                        Value::from(s.creator_id),
                        Value::from(u64_to_i64(s.id)),
                    ])))?;
                    tx.last_insert_rowid()
                }
            };
            rows.insert(k, id);
            // A CLR already stored (from a capture imported earlier but recorded later)
            // ends this lifetime as it would have if the state had been known then.
            let clear = first_clear(tx, s, *seen)?;
            if let Some(at) = clear {
                end_row(tx, id, at, EndReason::Clear)?;
            }
        }
        Event::Clear {
            creator_id,
            ifname,
            by_ifname,
            at,
        } => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO clears (creator_id, ts_us, ifname, flavor) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![creator_id, at, if *by_ifname { ifname.as_str() } else { "" }, if *by_ifname { 6 } else { 5 }])?;
        }
        Event::Refresh { state: s, seen } => {
            let k = StateRef {
                id: s.id,
                creator_id: s.creator_id,
            };
            let id = match rows.get(&k) {
                Some(id) => Some(*id),
                None => find_alive_as(tx, s, *seen)?,
            };
            if let Some(id) = id {
                // Mirrors OpenState::refresh (model::lifetime; a test checks they agree).
                tx.prepare_cached(
                    "UPDATE states SET
                       expire = CASE WHEN updated_us IS NULL OR ?2 >= updated_us THEN ?3 ELSE expire END,
                       packets0 = CASE WHEN updated_us IS NULL OR ?2 >= updated_us THEN ?4 ELSE packets0 END,
                       packets1 = CASE WHEN updated_us IS NULL OR ?2 >= updated_us THEN ?5 ELSE packets1 END,
                       bytes0 = CASE WHEN updated_us IS NULL OR ?2 >= updated_us THEN ?6 ELSE bytes0 END,
                       bytes1 = CASE WHEN updated_us IS NULL OR ?2 >= updated_us THEN ?7 ELSE bytes1 END,
                       rule = CASE WHEN updated_us IS NULL OR ?2 >= updated_us THEN ?8 ELSE rule END,
                       updated_us = max(coalesce(updated_us, ?2), ?2),
                       last_us = max(last_us, ?2)
                     WHERE id = ?1",
                )?
                .execute(params![
                    id,
                    seen,
                    s.expire,
                    u64_to_i64(s.packets[0]),
                    u64_to_i64(s.packets[1]),
                    u64_to_i64(s.bytes[0]),
                    u64_to_i64(s.bytes[1]),
                    s.rule,
                ])?;
            }
        }
        Event::Touch { key, seen } => {
            let id = match rows.get(key) {
                Some(id) => Some(*id),
                None => find_alive(tx, key, *seen)?,
            };
            if let Some(id) = id {
                tx.prepare_cached("UPDATE states SET last_us = max(last_us, ?2) WHERE id = ?1")?
                    .execute(params![id, seen])?;
            }
        }
        Event::End {
            state: s,
            end,
            reason,
            ..
        } => {
            let k = StateRef {
                id: s.id,
                creator_id: s.creator_id,
            };
            if let Some(id) = row_of(tx, rows, s, *end)? {
                match take_open(tx, id, *end, *reason)? {
                    Some(s) => {
                        closing.insert(k, s);
                    }
                    None => end_row(tx, id, *end, *reason)?,
                }
            }
        }
        Event::Orphan { key, seen, kind } => {
            match find_alive(tx, key, *seen)? {
                Some(id) => {
                    tx.prepare_cached(
                        "UPDATE states SET last_us = max(last_us, ?2) WHERE id = ?1",
                    )?
                    .execute(params![id, seen])?;
                    if *kind == OrphanKind::DelC {
                        end_row(tx, id, *seen, EndReason::Delete)?;
                    }
                }
                None => {
                    // Evidence: an id, a creator and a time, without addresses.
                    let end = (*kind == OrphanKind::DelC).then_some(*seen);
                    let reason = end.map(|_| EndReason::Delete.name());
                    tx.prepare_cached(
                        "INSERT INTO states (creator_id, state_id, end_us, end_reason, last_us)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![
                        key.creator_id,
                        u64_to_i64(key.id),
                        end,
                        reason,
                        seen
                    ])?;
                }
            }
        }
        Event::Bus { bus, seen } => {
            let status = match bus.status {
                crate::model::BusStatus::Start => 1,
                crate::model::BusStatus::End => 2,
                crate::model::BusStatus::Other(o) => o as i64,
            };
            tx.prepare_cached(
                "INSERT OR IGNORE INTO bus (creator_id, ts_us, status, endtime) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![bus.creator_id, seen, status, bus.endtime])?;
        }
    }
    Ok(())
}

/// The first stored CLR at or after `seen` that applies to the state. CLRs are rare; the
/// interface test and the minimum are done here (see `find_alive` on why not in SQL).
fn first_clear(tx: &Connection, s: &FullState, seen: Micros) -> rusqlite::Result<Option<Micros>> {
    let mut st = tx.prepare_cached(
        "SELECT ts_us, ifname, flavor FROM clears WHERE creator_id = ?1 AND ts_us >= ?2",
    )?;
    let mut rows = st.query(params![s.creator_id, seen])?;
    let mut first: Option<Micros> = None;
    while let Some(r) = rows.next()? {
        let (at, ifname, flavor): (i64, String, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        // A FreeBSD CLR is stored with flavour 5: its name does not limit it.
        if clear_names(s.creator_id, &ifname, flavor != 5, s.creator_id, &s.ifname)
            && first.is_none_or(|f| at < f)
        {
            first = Some(at);
        }
    }
    Ok(first)
}

/// The earliest end event wins (re-imports and overlapping captures agree on it). A CLR
/// names no state, nor does the state that replaced this one: neither counts as the
/// state's last sighting. Mirrors [`OpenState::end`] (a test checks they agree).
fn end_row(tx: &Connection, id: i64, end: Micros, reason: EndReason) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE states SET
           end_reason = CASE WHEN end_us IS NULL OR ?2 < end_us THEN ?3 ELSE end_reason END,
           last_us = CASE WHEN ?3 NOT IN ('clear', 'replaced') AND (end_us IS NULL OR ?2 < end_us) THEN max(last_us, ?2) ELSE last_us END,
           end_us = CASE WHEN end_us IS NULL OR ?2 < end_us THEN max(?2, coalesce(start_us, ?2)) ELSE end_us END
         WHERE id = ?1",
    )?
    .execute(params![id, end, reason.name()])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Lifetime;
    use crate::model::{Flavor, FullState};

    const S: Micros = 1_000_000;

    #[test]
    fn waiting_lifetimes_due_for_a_seal_stay_until_it_is_durable() {
        let mut w = Waiting::default();
        // Each time's list longer than a chunk, so places cross from one into the next.
        let n = 3 * Slots::CHUNK as u64 + 9;
        let rows: Vec<Stored> = (0..n)
            .map(crate::store::sqlite::codec::tests::stored)
            .collect();
        for (i, r) in rows.iter().enumerate() {
            w.insert(r.clone(), 100 + (i as Micros % 3) * 10);
        }
        // Due at 110: those of times 100 and 110, except the ones a pending event names
        // (row 1 at time 100, and one past the first chunk of time 120's list).
        let late_named = 3 * Slots::CHUNK + 5;
        assert_eq!(late_named % 3, 2);
        let named: StateSet = [rows[1].key(), rows[late_named].key()]
            .into_iter()
            .collect();
        let due = |w: &Waiting| {
            let (mut to, mut times) = (Vec::new(), Vec::new());
            w.due((110, 0), &named, &mut to, &mut times);
            let mut ids: Vec<u64> = to.iter().map(|r| r.state_id).collect();
            ids.sort();
            (ids, times)
        };
        let want: Vec<u64> = (0..n as usize)
            .filter(|i| i % 3 != 2 && *i != 1)
            .map(|i| rows[i].state_id)
            .collect();
        let (ids, times) = due(&w);
        assert_eq!(ids, want);
        assert_eq!(times, [100, 110]);
        // The named ones are found by place, wherever they are.
        let at = w.find(&named);
        assert_eq!(at.len(), 2);
        for i in [1, late_named] {
            let place = at[&rows[i].key()];
            assert_eq!(w.get(place), Some(&rows[i]));
        }
        assert!(w.find(&StateSet::default()).is_empty());
        // A batch that fails changes nothing: the next try batches the same.
        assert_eq!(w.len(), n as usize);
        assert_eq!(due(&w).0, want);
        // Once durable, the named ones (gone into states) and the archived lists leave.
        for place in at.values() {
            w.remove(*place);
        }
        w.remove_lists(&times);
        assert_eq!(w.len(), n as usize - want.len() - 2);
        assert_eq!(w.by_time.len(), 1, "times 100 and 110 went");
        assert!(w.find(&named).is_empty());
        assert_eq!(due(&w).0, Vec::<u64>::new());
        let late: Vec<u64> = {
            let (mut to, mut times) = (Vec::new(), Vec::new());
            w.due((120, 0), &StateSet::default(), &mut to, &mut times);
            to.iter().map(|r| r.state_id).collect()
        };
        assert_eq!(late.len(), n as usize - want.len() - 2);
        w.remove_lists(&[120]);
        assert_eq!((w.len(), w.by_time.len()), (0, 0));
        // Their chunks are kept, emptied, and the next rows go into one of them.
        let spare = w.spare.len();
        assert!(spare > 0 && spare <= SPARE_CHUNKS);
        assert!(w
            .spare
            .iter()
            .all(|c| c.is_empty() && c.capacity() >= Slots::CHUNK));
        w.insert(rows[7].clone(), 130);
        assert_eq!(w.spare.len(), spare - 1);
        let at = w.find(&[rows[7].key()].into_iter().collect());
        assert_eq!(
            at.values().map(|p| w.get(*p)).collect::<Vec<_>>(),
            [Some(&rows[7])]
        );
        assert_eq!(w.len(), 1);
    }

    fn state(id: u64) -> FullState {
        crate::track::tests::state(7, id, "em0", 0)
    }

    fn last_us(w: &Writer, id: u64) -> Micros {
        let l = lifetimes(w.conn());
        let mine: Vec<&Lifetime> = l.iter().filter(|l| l.state_id == id).collect();
        assert_eq!(mine.len(), 1, "one lifetime of state {id}: {l:?}");
        mine[0].last_seen
    }

    /// Every lifetime stored, from states and from batches (as `export` reads them).
    fn lifetimes(conn: &Connection) -> Vec<Lifetime> {
        let mut out = Vec::new();
        crate::store::sqlite::export::each_lifetime(conn, 0, Micros::MAX, |l| {
            out.push(l.clone());
            Ok::<(), rusqlite::Error>(())
        })
        .expect("walk");
        out
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).expect("count")
    }

    /// The end of a lifetime seen only at its start and end (as the tracker reports it).
    fn end(w: &mut Writer, id: u64, start: Micros, at: Micros) {
        end_as(w, id, (start, at), EndReason::Delete, (start, start, start));
    }

    /// The end of a lifetime as the tracker reports it: (first full message, newest full
    /// message, last seen).
    fn end_as(
        w: &mut Writer,
        id: u64,
        (start, end): (Micros, Micros),
        reason: EndReason,
        (first_full, updated, last_seen): (Micros, Micros, Micros),
    ) {
        w.push(Event::End {
            state: state(id),
            start,
            end,
            reason,
            first_full,
            updated,
            last_seen,
            flavor: Flavor::OpenBsd,
        });
    }

    /// A recorder that stores open lifetimes at the first commit (no journal journal): the
    /// paths of stored open rows.
    fn recorder(dir: &tempfile::TempDir) -> Writer {
        let mut w = young_recorder(dir);
        w.set_young_for(0);
        w
    }

    /// A writer of a run of `kind` on a new database in `dir`; its database path.
    fn writer(dir: &tempfile::TempDir, kind: &'static str, source: &str) -> (Writer, String) {
        let db = dir.path().join("t.db").display().to_string();
        let conn = crate::store::sqlite::open_rw(&db).expect("open");
        let run = RunInfo {
            kind,
            source: source.into(),
            fingerprint: None,
            started_wall: 0,
        };
        (Writer::new(conn, &db, &run).expect("writer"), db)
    }

    /// A writer as `import` runs it (new lifetimes held until they end); its database path.
    fn importer(dir: &tempfile::TempDir) -> (Writer, String) {
        let (mut w, db) = writer(dir, "import", "x.pcap");
        w.let_tracker_hold();
        (w, db)
    }

    /// A recorder as `record` runs it, new lifetimes journal for [`YOUNG_FOR_US`].
    fn young_recorder(dir: &tempfile::TempDir) -> Writer {
        writer(dir, "record", "pfsync0").0
    }

    fn open(w: &mut Writer, id: u64, at: Micros) {
        w.push(Event::Open {
            state: state(id),
            start: at,
            seen: at,
            flavor: Flavor::OpenBsd,
            record_version: 0,
        });
    }

    fn touch(w: &mut Writer, id: u64, at: Micros) {
        w.push(Event::Touch {
            key: StateRef { id, creator_id: 7 },
            seen: at,
        });
    }

    /// `who` for the pair every test state holds, as the CLI asks it.
    fn who_at(conn: &Connection, at: Micros) -> Vec<(u64, Option<Micros>)> {
        let ip: IpAddr = "203.0.113.1".parse().expect("ip");
        let f = crate::store::WhoFilter::default();
        crate::store::sqlite::query::who(conn, &ip, 61234, at, at, at, &f)
            .expect("who")
            .iter()
            .map(|l| (l.state_id, l.end))
            .collect()
    }

    /// `history` of the private host every test state has.
    fn history_at(conn: &Connection, at: Micros) -> Vec<u64> {
        let ip: IpAddr = "192.168.1.10".parse().expect("ip");
        crate::store::sqlite::query::history(conn, &ip, &ip, at, at, None)
            .expect("history")
            .iter()
            .map(|l| l.state_id)
            .collect()
    }

    #[test]
    fn young_lifetimes_are_journaled_rewritten_when_seen_then_stored() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut w = young_recorder(&dir);
        let c = RunCounters::default();
        let t0 = 1_700_000_000 * S;
        open(&mut w, 1, t0);
        open(&mut w, 2, t0);
        w.flush(&c).expect("flush");
        // Durable in the journal, not in states; every reader sees both as open.
        assert_eq!(count(w.conn(), "SELECT count(*) FROM journal"), 2);
        assert_eq!(count(w.conn(), "SELECT count(*) FROM states"), 0);
        assert_eq!(who_at(w.conn(), t0 + 5 * S), vec![(1, None), (2, None)]);
        assert_eq!(history_at(w.conn(), t0 + 5 * S), vec![1, 2]);
        assert_eq!(lifetimes(w.conn()).len(), 2);
        let st = crate::store::sqlite::query::stats(w.conn(), "t.db").expect("stats");
        assert_eq!((st.states, st.open), (2, 2));

        // A journal state that ends is journaled again, ended, until the next batch (at most
        // SEAL_EVERY_US later); the journal stops calling it open.
        end(&mut w, 1, t0, t0 + 10 * S);
        w.flush(&c).expect("flush");
        assert_eq!(count(w.conn(), "SELECT count(*) FROM journal_ends"), 1);
        assert_eq!(
            count(
                w.conn(),
                "SELECT count(*) FROM journal WHERE end_us IS NOT NULL"
            ),
            1
        );
        let ended_answers = |w: &Writer| {
            assert_eq!(
                who_at(w.conn(), t0 + 5 * S),
                vec![(1, Some(t0 + 10 * S)), (2, None)]
            );
            assert_eq!(who_at(w.conn(), t0 + 30 * S), vec![(2, None)]);
            assert_eq!(history_at(w.conn(), t0 + 5 * S), vec![1, 2]);
            assert_eq!(history_at(w.conn(), t0 + 30 * S), vec![2]);
            let st = crate::store::sqlite::query::stats(w.conn(), "t.db").expect("stats");
            assert_eq!((st.states, st.open), (2, 1));
            assert_eq!(lifetimes(w.conn()).len(), 2);
        };
        ended_answers(&w);
        assert_eq!(count(w.conn(), "SELECT count(*) FROM archive_batches"), 0);
        assert_eq!(count(w.conn(), "SELECT count(*) FROM states"), 0);

        // Seen less than a minute past its journal row, state 2 is not rewritten; state 1 is
        // archived now (half a minute has passed) and leaves the journal: the same answers.
        touch(&mut w, 2, t0 + 59 * S);
        w.flush(&c).expect("flush");
        assert_eq!(
            count(
                w.conn(),
                "SELECT max(last_us) FROM journal WHERE state_id = 2"
            ),
            t0
        );
        assert_eq!(count(w.conn(), "SELECT sum(n) FROM archive"), 1);
        let st = crate::store::sqlite::query::stats(w.conn(), "t.db").expect("stats");
        assert_eq!(st.archived, 1);
        ended_answers(&w);
        // ...seen more, it is journaled again, as it is now (a crash loses at most a minute
        // of its "last seen"), and the newer row closes the older.
        touch(&mut w, 2, t0 + 61 * S);
        w.flush(&c).expect("flush");
        assert_eq!(
            count(
                w.conn(),
                "SELECT max(last_us) FROM journal WHERE state_id = 2"
            ),
            t0 + 61 * S
        );
        assert_eq!(who_at(w.conn(), t0 + 70 * S), vec![(2, None)]);
        assert_eq!(history_at(w.conn(), t0 + 70 * S), vec![2]);
        // The first run, now without a live row, leaves the journal with the next commit,
        // and so do the keys that closed its rows.
        w.flush(&c).expect("flush");
        assert_eq!(count(w.conn(), "SELECT count(*) FROM journal"), 1);
        assert_eq!(count(w.conn(), "SELECT count(*) FROM journal_ends"), 0);
        assert_eq!(count(w.conn(), "SELECT count(*) FROM states"), 0);
        assert_eq!(who_at(w.conn(), t0 + 70 * S), vec![(2, None)]);
        // Once no longer journal, it moves into states with what it learnt since, and the
        // journal empties.
        let old = t0 + YOUNG_FOR_US + S;
        touch(&mut w, 2, old);
        w.flush(&c).expect("flush");
        assert_eq!(
            count(w.conn(), "SELECT count(*) FROM states WHERE dur_class = 14"),
            1
        );
        assert_eq!(who_at(w.conn(), t0 + 70 * S), vec![(2, None)]);
        w.flush(&c).expect("flush");
        assert_eq!(count(w.conn(), "SELECT count(*) FROM journal"), 0);
        assert_eq!(count(w.conn(), "SELECT count(*) FROM journal_ends"), 0);
        assert_eq!(last_us(&w, 2), old);
        assert_eq!(who_at(w.conn(), t0 + 70 * S), vec![(2, None)]);
        // From there on it is a stored open state: its end takes it out to be archived.
        end(&mut w, 2, t0, old + 30 * S);
        w.flush(&c).expect("flush");
        assert_eq!(count(w.conn(), "SELECT count(*) FROM states"), 0);
        assert_eq!(who_at(w.conn(), t0 + 70 * S), vec![(2, Some(old + 30 * S))]);
    }

    #[test]
    fn a_young_lifetime_nothing_happens_to_is_journaled_once_and_moved_at_ten_minutes() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut w = young_recorder(&dir);
        let c = RunCounters::default();
        let t0 = 1_700_000_000 * S;
        open(&mut w, 1, t0);
        w.flush(&c).expect("flush");
        // Other states keep the clock going, a minute apart; state 1 hears nothing.
        for m in 1..10i64 {
            open(&mut w, 100 + m as u64, t0 + m * 60 * S);
            w.flush(&c).expect("flush");
        }
        assert_eq!(
            count(w.conn(), "SELECT count(*) FROM journal WHERE state_id = 1"),
            1,
            "written once, never rewritten"
        );
        assert_eq!(count(w.conn(), "SELECT count(*) FROM journal"), 10);
        assert_eq!(count(w.conn(), "SELECT count(*) FROM states"), 0);
        // Ten minutes after its run was written, it moves into states, run and all.
        open(&mut w, 200, t0 + YOUNG_FOR_US + S);
        w.flush(&c).expect("flush");
        assert_eq!(
            count(w.conn(), "SELECT count(*) FROM journal WHERE state_id = 1"),
            0
        );
        assert_eq!(
            count(
                w.conn(),
                "SELECT count(*) FROM states WHERE state_id = 1 AND end_us IS NULL"
            ),
            1
        );
        assert_eq!(count(w.conn(), "SELECT count(*) FROM journal"), 10);
        assert_eq!(who_at(w.conn(), t0 + 5 * S), vec![(1, None)]);
    }

    #[test]
    fn a_restart_after_a_crash_stores_what_the_journal_holds() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = RunCounters::default();
        let t0 = 1_700_000_000 * S;
        {
            let mut w = young_recorder(&dir);
            open(&mut w, 1, t0);
            open(&mut w, 2, t0);
            open(&mut w, 3, t0 + S);
            w.flush(&c).expect("flush");
            end(&mut w, 1, t0, t0 + 10 * S);
            w.flush(&c).expect("flush");
            // State 1 waits, ended, in the journal for its batch.
            assert_eq!(
                count(
                    w.conn(),
                    "SELECT count(*) FROM journal WHERE end_us IS NOT NULL"
                ),
                1
            );
            // Killed: no finish, state 3's end never committed.
            end(&mut w, 3, t0, t0 + 11 * S);
        }
        let mut w = young_recorder(&dir);
        assert_eq!(count(w.conn(), "SELECT count(*) FROM journal"), 0);
        assert_eq!(count(w.conn(), "SELECT count(*) FROM journal_ends"), 0);
        let open: Vec<u64> = w
            .load_open()
            .expect("load")
            .iter()
            .map(|o| o.state.id)
            .collect();
        assert_eq!(open, vec![2, 3], "carried on with the open ones only");
        assert_eq!(
            who_at(w.conn(), t0 + 5 * S),
            vec![(1, Some(t0 + 10 * S)), (2, None), (3, None)]
        );
        // The restarted recorder ends a carried-over state as any stored one.
        end(&mut w, 3, t0 + S, t0 + 20 * S);
        w.flush(&c).expect("flush");
        assert_eq!(
            who_at(w.conn(), t0 + 15 * S),
            vec![(2, None), (3, Some(t0 + 20 * S))]
        );
    }

    #[test]
    fn a_clean_stop_stores_every_young_lifetime() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = RunCounters::default();
        let t0 = 1_700_000_000 * S;
        let mut w = young_recorder(&dir);
        open(&mut w, 1, t0);
        w.flush(&c).expect("flush");
        open(&mut w, 2, t0 + S);
        let db = dir.path().join("t.db").display().to_string();
        w.finish(&c, "stopped", 0).expect("finish");
        let conn = crate::store::sqlite::open_ro(&db).expect("ro");
        assert_eq!(
            count(&conn, "SELECT count(*) FROM states WHERE dur_class = 14"),
            2
        );
        assert_eq!(count(&conn, "SELECT count(*) FROM journal"), 0);
        assert_eq!(count(&conn, "SELECT count(*) FROM journal_ends"), 0);
    }

    #[test]
    fn a_held_row_fits_a_192_byte_block() {
        // The recorder holds one per journal lifetime; mimalloc's classes around it are
        // 160, 192 and 224 bytes, so a byte more would cost 32 a lifetime.
        assert_eq!(std::mem::size_of::<Row>(), 192);
    }

    #[test]
    fn cache_size_is_the_one_asked_for() {
        let dir = tempfile::tempdir().expect("tmp");
        let w = recorder(&dir);
        let size = |w: &Writer| -> i64 {
            w.conn()
                .pragma_query_value(None, "cache_size", |r| r.get(0))
                .expect("pragma")
        };
        assert_eq!(size(&w), -256 * 1024, "open_rw's default");
        w.set_cache_mib(1024).expect("set");
        assert_eq!(size(&w), -1024 * 1024);
    }

    #[test]
    fn last_seen_of_open_states_is_written_lazily_but_never_lost() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut w = recorder(&dir);
        let c = RunCounters::default();
        let t0 = 1_700_000_000 * S;
        open(&mut w, 1, t0);
        open(&mut w, 2, t0);
        w.flush(&c).expect("flush");
        assert_eq!(last_us(&w, 1), t0);

        // Within TOUCH_EVERY_US of what is stored: kept in memory, no write.
        touch(&mut w, 1, t0 + 10 * S);
        touch(&mut w, 2, t0 + 20 * S);
        assert_eq!(w.pending(), 0);
        w.flush(&c).expect("flush");
        assert_eq!(last_us(&w, 1), t0);

        // Past it: written.
        touch(&mut w, 1, t0 + 70 * S);
        w.flush(&c).expect("flush");
        assert_eq!(last_us(&w, 1), t0 + 70 * S);

        // An end writes the latest "last seen" known, even a CLR's (which is no sighting).
        touch(&mut w, 2, t0 + 30 * S);
        let seen = (t0, t0, t0 + 30 * S);
        end_as(&mut w, 2, (t0, t0 + 40 * S), EndReason::Clear, seen);
        w.flush(&c).expect("flush");
        assert_eq!(last_us(&w, 2), t0 + 30 * S);

        // The recorder's stop writes what is still held back.
        touch(&mut w, 1, t0 + 80 * S);
        w.finish(&c, "stopped", 0).expect("finish");
        let db = dir.path().join("t.db");
        let conn = crate::store::sqlite::pagesum::open(db).expect("reopen");
        let last: Micros = conn
            .query_row("SELECT last_us FROM states WHERE state_id = 1", [], |r| {
                r.get(0)
            })
            .expect("row");
        assert_eq!(last, t0 + 80 * S);
    }

    #[test]
    fn an_import_writes_each_bucket_once_when_no_later_packet_can_add_to_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut w, db) = importer(&dir);
        let t0 = 1_700_000_000 * S;
        let at = |t: Micros| RunCounters {
            first_us: Some(t0),
            last_us: Some(t),
            ..RunCounters::default()
        };
        for id in 1..=3 {
            open(&mut w, id, t0);
            end(&mut w, id, t0, t0 + 5 * S);
        }
        w.flush(&at(t0 + 6 * S)).expect("flush");
        let archived = "SELECT count(*) FROM archive";
        assert_eq!(
            count(w.conn(), archived),
            0,
            "the bucket may still get lifetimes"
        );

        // A later message about a waiting lifetime (an earlier end, as from an overlapping
        // capture) merges into it in states: the earliest end wins, nothing is duplicated.
        end(&mut w, 1, t0, t0 + 4 * S);
        w.flush(&at(t0 + 7 * S)).expect("flush");
        assert_eq!(count(w.conn(), archived), 0);
        assert_eq!(count(w.conn(), "SELECT count(*) FROM states"), 1);

        // Past the archived bucket's last possible end, but not past the 72-minute history
        // bucket's: they still wait, so that the host's history is written once too.
        w.flush(&at(t0 + 600 * S)).expect("flush");
        assert_eq!(
            count(w.conn(), archived),
            0,
            "the history bucket may still grow"
        );
        // Packets well past both: 2 and 3 archived, in one batch.
        let past = t0 + (1 << 32) + 600 * S;
        w.flush(&at(past)).expect("flush");
        assert_eq!(count(w.conn(), "SELECT sum(n) FROM archive"), 2);
        assert_eq!(
            count(w.conn(), "SELECT max(batches) FROM archive_buckets"),
            1,
            "written once: nothing to merge"
        );
        w.finish(&at(past), "done", 0).expect("finish");
        let conn = crate::store::sqlite::pagesum::open(&db).expect("open");
        let mut l: Vec<(u64, Option<Micros>)> = lifetimes(&conn)
            .iter()
            .map(|l| (l.state_id, l.end))
            .collect();
        l.sort();
        assert_eq!(
            l,
            vec![
                (1, Some(t0 + 4 * S)),
                (2, Some(t0 + 5 * S)),
                (3, Some(t0 + 5 * S))
            ]
        );
        assert_eq!(who_at(&conn, t0 + 2 * S).len(), 3);
    }

    /// Three 5-s lifetimes of one private host, 200 s apart from the start of a 72-minute
    /// history bucket, each followed by a commit; then the end of the run. Returns the
    /// (batches, history rows) after the three commits, and the ids `history` finds.
    fn three_lifetimes_of_one_host(mut w: Writer, db: &str) -> ((i64, i64), Vec<u64>, Connection) {
        let t0 = ((1_700_000_000 * S) >> 32) << 32;
        for i in 0..3u64 {
            let at = t0 + i as Micros * 200 * S;
            open(&mut w, i + 1, at);
            end(&mut w, i + 1, at, at + 5 * S);
            let c = RunCounters {
                first_us: Some(t0),
                last_us: Some(at + 190 * S),
                ..RunCounters::default()
            };
            w.flush(&c).expect("flush");
        }
        let rows = "SELECT count(*) FROM archive_hosts";
        let batches = "SELECT count(DISTINCT batch) FROM archive";
        let before = (count(w.conn(), batches), count(w.conn(), rows));
        let c = RunCounters {
            first_us: Some(t0),
            last_us: Some(t0 + 700 * S),
            ..RunCounters::default()
        };
        w.finish(&c, "done", 0).expect("finish");
        let conn = crate::store::sqlite::pagesum::open(db).expect("open");
        let mut h = history_at(&conn, t0 + 2 * S);
        h.extend(history_at(&conn, t0 + 402 * S));
        (before, h, conn)
    }

    #[test]
    fn a_hosts_history_rows_from_several_seals_become_one() {
        // The recorder batches each commit's ended lifetimes (every 30 s): three batches, three
        // history rows of one host, merged into one at the end.
        let dir = tempfile::tempdir().expect("tmp");
        let (mut w, db) = writer(&dir, "record", "pfsync0");
        w.set_young_for(0);
        let (before, h, conn) = three_lifetimes_of_one_host(w, &db);
        assert_eq!(before, (3, 3));
        let rows = "SELECT count(*) FROM archive_hosts";
        assert_eq!(count(&conn, rows), 1, "one row for the host and its bucket");
        assert_eq!(h, vec![1, 3]);
    }

    #[test]
    fn an_import_writes_a_hosts_history_bucket_in_one_seal() {
        // An import keeps them waiting until their history bucket is complete (here: the
        // end of the run), and then batches them together: one history row, nothing to merge.
        let dir = tempfile::tempdir().expect("tmp");
        let (w, db) = importer(&dir);
        let (before, h, conn) = three_lifetimes_of_one_host(w, &db);
        assert_eq!(before, (0, 0), "nothing archived while the bucket can grow");
        let one = "SELECT count(DISTINCT batch), count(*) FROM archive";
        let (batches, rows): (i64, i64) = conn
            .query_row(one, [], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("count");
        assert_eq!(batches, 1, "{rows} rows");
        let rows = "SELECT count(*) FROM archive_hosts";
        assert_eq!(count(&conn, rows), 1);
        assert_eq!(h, vec![1, 3]);
    }

    #[test]
    fn an_import_stores_its_lifetimes_as_the_tracker_hands_them_over() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut w, db) = importer(&dir);
        let t0 = 1_700_000_000 * S;
        let c = RunCounters {
            first_us: Some(t0),
            last_us: Some(t0 + 100 * S),
            ..RunCounters::default()
        };
        for id in 1..=3 {
            open(&mut w, id, t0);
        }
        // A touch is the tracker's to merge; the end carries what the tracker made of it
        // (a touch this writer did not see, at 55 s).
        touch(&mut w, 1, t0 + 50 * S);
        let seen = (t0, t0 + 20 * S, t0 + 55 * S);
        end_as(&mut w, 1, (t0, t0 + 60 * S), EndReason::Clear, seen);
        // A DEL_C stamped before state 3 began: the tracker keeps it open, the store ends
        // it at its start.
        w.push(Event::Orphan {
            key: StateRef {
                id: 3,
                creator_id: 7,
            },
            seen: t0 - 5 * S,
            kind: OrphanKind::DelC,
        });
        w.flush(&c).expect("flush");
        let still = |id: u64| OpenState {
            state: state(id),
            start: t0,
            first_full: t0,
            updated: t0,
            last_seen: t0 + 70 * S,
            flavor: Flavor::OpenBsd,
        };
        w.hold_tracked([2, 3].map(|id| Box::new(Compact::compact(&still(id)))));
        w.finish(&c, "stopped", 0).expect("finish");
        let conn = crate::store::sqlite::pagesum::open(&db).expect("open");
        let mut got: Vec<(u64, Option<Micros>, Micros)> = lifetimes(&conn)
            .iter()
            .map(|l| (l.state_id, l.end, l.last_seen))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                (1, Some(t0 + 60 * S), t0 + 55 * S),
                (2, None, t0 + 70 * S),
                (3, Some(t0), t0 + 70 * S),
            ]
        );
    }

    #[test]
    fn an_import_refuses_to_finish_without_the_trackers_open_lifetimes() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut w, _) = importer(&dir);
        open(&mut w, 1, 1_700_000_000 * S);
        let e = w
            .finish(&RunCounters::default(), "stopped", 0)
            .expect_err("one lifetime would be lost");
        assert!(e.to_string().contains("not handed back"), "{e}");
    }

    #[test]
    fn a_recorded_state_that_ends_leaves_states_for_a_seal() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut w = recorder(&dir);
        let c = RunCounters::default();
        let t0 = 1_700_000_000 * S;
        open(&mut w, 1, t0);
        open(&mut w, 2, t0);
        w.flush(&c).expect("flush");
        let open_rows = "SELECT count(*) FROM states WHERE end_us IS NULL";
        assert_eq!(count(w.conn(), open_rows), 2);

        end(&mut w, 1, t0, t0 + 5 * S);
        w.flush(&c).expect("flush");
        assert_eq!(
            count(w.conn(), "SELECT count(*) FROM states"),
            1,
            "only 2 is left"
        );
        assert_eq!(count(w.conn(), "SELECT sum(n) FROM archive"), 1);
        let l = lifetimes(w.conn());
        let one = l.iter().find(|l| l.state_id == 1).expect("archived 1");
        assert_eq!(
            (one.start, one.end, one.last_seen),
            (t0, Some(t0 + 5 * S), t0 + 5 * S)
        );
        assert_eq!(one.end_reason.as_deref(), Some("delete"));

        // A repeated DEL_C, later: changes nothing, adds no evidence row.
        end(&mut w, 1, t0, t0 + 6 * S);
        w.flush(&c).expect("flush");
        assert_eq!(count(w.conn(), "SELECT count(*) FROM states"), 1);
        assert_eq!(lifetimes(w.conn()).len(), 2);

        // An earlier end than the one archived (an overlapping capture): the earliest wins.
        end(&mut w, 1, t0, t0 + 4 * S);
        w.flush(&c).expect("flush");
        let l = lifetimes(w.conn());
        let ones: Vec<_> = l.iter().filter(|l| l.state_id == 1).collect();
        assert_eq!(ones.len(), 1, "{ones:?}");
        assert_eq!(ones[0].end, Some(t0 + 4 * S));
    }

    #[test]
    fn an_orphan_is_looked_for_in_the_seals_only_if_this_writer_saw_its_id_open() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut w = young_recorder(&dir);
        let c = RunCounters::default();
        let t0 = 1_700_000_000 * S;
        let del_c = |w: &mut Writer, id: u64, at: Micros| {
            w.push(Event::Orphan {
                key: StateRef { id, creator_id: 7 },
                seen: at,
                kind: OrphanKind::DelC,
            })
        };
        // 1 and 3 were seen open and archived; 2 (its INS dropped) and 9 never were.
        for id in [1, 3] {
            open(&mut w, id, t0);
            end(&mut w, id, t0, t0 + 5 * S);
        }
        w.flush(&c).expect("flush");
        assert_eq!(count(w.conn(), "SELECT sum(n) FROM archive"), 2);
        // A late DEL_C of a archived lifetime is found there (and merged into it)...
        del_c(&mut w, 3, t0 + 6 * S);
        // ...one for an id never seen open is kept as evidence, below or above the others.
        del_c(&mut w, 2, t0 + 6 * S);
        del_c(&mut w, 9, t0 + 6 * S);
        w.flush(&c).expect("flush");
        let evidence: Vec<i64> = w
            .conn()
            .prepare("SELECT state_id FROM states WHERE start_us IS NULL ORDER BY state_id")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        assert_eq!(evidence, vec![2, 9]);
        let l = lifetimes(w.conn());
        let three: Vec<_> = l.iter().filter(|l| l.state_id == 3).collect();
        assert_eq!(three.len(), 1, "{three:?}");
        assert_eq!((three[0].start, three[0].end), (t0, Some(t0 + 5 * S)));
        // A writer started later knows 1..9 from the store: it looks in the batches again.
        drop(w);
        let mut w = young_recorder(&dir);
        del_c(&mut w, 1, t0 + 7 * S);
        w.flush(&c).expect("flush");
        assert_eq!(
            count(
                w.conn(),
                "SELECT count(*) FROM states WHERE start_us IS NULL"
            ),
            2
        );
        let l = lifetimes(w.conn());
        let one: Vec<_> = l.iter().filter(|l| l.state_id == 1).collect();
        assert_eq!(one.len(), 1, "{one:?}");
        assert_eq!((one[0].start, one[0].end), (t0, Some(t0 + 5 * S)));
    }

    #[test]
    fn two_ends_in_one_batch_keep_the_earliest() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut w = recorder(&dir);
        let c = RunCounters::default();
        let t0 = 1_700_000_000 * S;
        open(&mut w, 1, t0);
        w.flush(&c).expect("flush");
        end(&mut w, 1, t0, t0 + 9 * S);
        end(&mut w, 1, t0, t0 + 7 * S);
        w.flush(&c).expect("flush");
        let l = lifetimes(w.conn());
        assert_eq!(l.len(), 1, "{l:?}");
        assert_eq!(l[0].end, Some(t0 + 7 * S));
        assert_eq!(l[0].last_seen, t0 + 9 * S);
    }

    #[test]
    fn a_restarted_recorder_seals_what_the_last_one_left_open() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = RunCounters::default();
        let t0 = 1_700_000_000 * S;
        {
            let mut w = recorder(&dir);
            open(&mut w, 1, t0);
            w.finish(&c, "stopped", 0).expect("finish");
        }
        let mut w = recorder(&dir);
        let open_now = w.load_open().expect("load");
        assert_eq!(open_now.len(), 1);
        end(&mut w, 1, t0, t0 + 3 * S);
        w.flush(&c).expect("flush");
        assert_eq!(count(w.conn(), "SELECT count(*) FROM states"), 0);
        let l = lifetimes(w.conn());
        assert_eq!(l.len(), 1);
        assert_eq!((l[0].start, l[0].end), (t0, Some(t0 + 3 * S)));
    }

    #[test]
    fn the_recorder_says_which_flush_was_its_periodic_seal() {
        // The committer paces commits by their duration, except the batch's (commit.rs).
        let dir = tempfile::tempdir().expect("tmp");
        let c = RunCounters::default();
        let t0 = 1_700_000_000 * S;
        let mut w = young_recorder(&dir);
        let mut archived = Vec::new();
        for (i, at) in [0, 1, 10, 29, 31, 32, 40, 62].into_iter().enumerate() {
            open(&mut w, i as u64 + 1, t0 + at * S);
            end(&mut w, i as u64 + 1, t0 + at * S, t0 + at * S + S / 2);
            w.flush(&c).expect("flush");
            archived.push(w.archived_journal());
        }
        assert_eq!(
            archived,
            [true, false, false, false, true, false, false, true],
            "a batch at the first flush, then once 30 s of traffic have passed since the last"
        );
        let (mut imp, _) = writer(&dir, "import", "x.pcap");
        open(&mut imp, 100, t0 + 100 * S);
        imp.flush(&c).expect("flush");
        assert!(
            !imp.archived_journal(),
            "an import has no journal lifetimes"
        );
    }

    #[test]
    fn stored_open_lifetimes_are_read_by_key_few_or_many() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = RunCounters::default();
        let t0 = 1_700_000_000 * S;
        {
            let mut w = recorder(&dir);
            for id in 1..=200 {
                open(&mut w, id, t0 + id as i64);
            }
            end(&mut w, 50, t0 + 50, t0 + 60 * S);
            w.finish(&c, "stopped", 0).expect("finish");
        }
        let mut w = recorder(&dir);
        let mut keys = w.open_keys().expect("keys");
        assert_eq!(keys.open_left(), 199);
        let ids = |v: &[OpenState]| v.iter().map(|o| o.state.id).collect::<Vec<_>>();
        // A few: one look each; the ended one and one never stored read as nothing.
        let few: RoaringTreemap = [3, 50, 7, 999].into_iter().collect();
        let got = w.load_open_of(7, &few).expect("few");
        assert_eq!(ids(&got), [3, 7]);
        assert_eq!(got[0].start, t0 + 3);
        // Many (a CLR): one pass, only those asked for.
        let many: RoaringTreemap = (100..=200).collect();
        let mut got = ids(&w.load_open_of(7, &many).expect("many"));
        got.sort_unstable();
        assert_eq!(got, (100..=200).collect::<Vec<_>>());
        assert!(w.load_open_of(8, &many).expect("other creator").is_empty());
        // Keys are read per id group, when a message names an id at or below the group's
        // highest stored one.
        let k3 = StateRef {
            id: 3,
            creator_id: 7,
        };
        let above = StateRef {
            id: 201,
            creator_id: 7,
        };
        assert_eq!(keys.unread_group(&above), None, "above every stored id");
        assert!(!keys.take(&k3), "its group is not read yet");
        let (g, max) = keys.unread_group(&k3).expect("unread group");
        assert_eq!(max, 200);
        let group = w.group_keys(g, max).expect("group keys");
        assert_eq!(group.len(), 199, "all but the archived one");
        keys.read(g, group);
        assert_eq!(keys.unread_group(&k3), None);
        // What was read is known: its end closes its row.
        assert!(keys.take(&k3));
        end(&mut w, 3, t0 + 3, t0 + 9 * S);
        w.flush(&c).expect("flush");
        let l = lifetimes(w.conn());
        assert_eq!(l.iter().filter(|l| l.end.is_some()).count(), 2);
    }

    #[test]
    fn open_keys_finds_every_id_group_and_its_highest_id_by_seeks() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = RunCounters::default();
        let t0 = 1_700_000_000 * S;
        // Groups are the ids' top byte; stored as i64, those from 0x80 up are negative.
        let ids = [
            (7, 3u64),
            (7, 0x05 << 56 | 9),
            (7, 0x05 << 56 | 4),
            (7, 0x87 << 56 | 2),
            (7, 0xff << 56 | u64::from(u32::MAX)),
            (7, 0x80 << 56),
            (9, 0x87 << 56 | 6),
        ];
        {
            let mut w = recorder(&dir);
            for (creator, id) in ids {
                let mut st = state(id);
                st.creator_id = creator;
                w.push(Event::Open {
                    state: st,
                    start: t0,
                    seen: t0,
                    flavor: Flavor::OpenBsd,
                    record_version: 0,
                });
            }
            w.finish(&c, "stopped", 0).expect("finish");
        }
        let mut w = recorder(&dir);
        let keys = w.open_keys().expect("keys");
        assert_eq!(keys.open_left(), ids.len() as u64);
        let groups: Vec<Group> = keys.unread_groups(None).iter().map(|g| g.0).collect();
        assert_eq!(
            groups,
            [
                (7, 0),
                (7, 0x05),
                (7, 0x80),
                (7, 0x87),
                (7, 0xff),
                (9, 0x87)
            ]
        );
        let k = |creator_id, id| StateRef { id, creator_id };
        for (creator, highest) in [
            (7, 3),
            (7, 0x05 << 56 | 9),
            (7, 0x80 << 56),
            (7, 0x87 << 56 | 2),
            (9, 0x87 << 56 | 6),
        ] {
            assert!(keys.unread_group(&k(creator, highest)).is_some());
            assert_eq!(keys.unread_group(&k(creator, highest + 1)), None);
        }
        // A state this run writes above a group's highest id is the tracker's, not the
        // file's: a group read later leaves it out.
        open(&mut w, 0x05 << 56 | 10, t0);
        open(&mut w, 0x80 << 56 | 1, t0);
        w.flush(&c).expect("flush");
        let five = keys.unread_group(&k(7, 0x05 << 56)).expect("unread");
        assert_eq!(five, ((7, 0x05), 0x05 << 56 | 9));
        let mut group = w.group_keys(five.0, five.1).expect("group");
        group.sort_unstable();
        assert_eq!(group, [0x05 << 56 | 4, 0x05 << 56 | 9]);
        let top = keys.unread_group(&k(7, 0x80 << 56)).expect("unread");
        assert_eq!(w.group_keys(top.0, top.1).expect("group"), [0x80 << 56]);
    }

    #[test]
    fn a_stored_row_missing_a_column_is_ended_in_place() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut w = recorder(&dir);
        let c = RunCounters::default();
        let t0 = 1_700_000_000 * S;
        open(&mut w, 1, t0);
        w.flush(&c).expect("flush");
        // Damage (or a row from an older version): a NULL where a archived lifetime has a value.
        w.conn()
            .execute("UPDATE states SET rule = NULL", [])
            .expect("damage");
        end(&mut w, 1, t0, t0 + 3 * S);
        w.flush(&c).expect("flush");
        assert_eq!(count(w.conn(), "SELECT count(*) FROM archive_batches"), 0);
        let ended = "SELECT count(*) FROM states WHERE end_us IS NOT NULL";
        assert_eq!(count(w.conn(), ended), 1);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// The SQL merges of a stored row (`apply`'s UPDATEs, `end_row`) leave the row that
        /// the same messages merged by model::lifetime give, in any mix.
        #[test]
        fn the_sql_merge_agrees_with_the_lifetime_rules(
            all in crate::model::lifetime::tests::messages()
        ) {
            use crate::model::lifetime::tests::{merged, Msg};
            let dir = tempfile::tempdir().expect("tempdir");
            let (w, _) = writer(&dir, "import", "x.pcap");
            let tx = w.conn();
            let (mut rows, mut closing) = (StateMap::default(), StateMap::default());
            let mut id = None;
            for m in &all {
                let e = match m {
                    Msg::Open(s, start, seen, flavor) => Event::Open {
                        state: s.clone(),
                        start: *start,
                        seen: *seen,
                        flavor: *flavor,
                        record_version: 0,
                    },
                    Msg::Refresh(s, seen) => Event::Refresh { state: s.clone(), seen: *seen },
                    Msg::Touch(seen) => Event::Touch {
                        key: key_of(&merged(&all[..1]).0.state),
                        seen: *seen,
                    },
                    Msg::End(at, reason) => {
                        let id = id.expect("opened first");
                        end_row(tx, id, *at, *reason).expect("end");
                        continue;
                    }
                };
                apply(tx, &mut rows, &mut closing, &e).expect("apply");
                id = rows.values().next().copied();
            }
            let (life, end) = merged(&all);
            let life = Compact::compact(&life);
            let want = Row { life, end, journaled_last: 0, seq: NOT_JOURNALED }.stored();
            let got = tx
                .query_row(&format!("SELECT {STORED_COLS} FROM states"), [], |r| {
                    Ok(stored_of(r, 0))
                })
                .expect("one row");
            proptest::prop_assert_eq!(got, Some(want));
        }
    }
}
