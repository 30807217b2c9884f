//! The store: where lifetimes, runs and gaps are kept, and read back for the queries.
//!
//! Two faces, as traits, so that more than one store can sit side by side:
//! - the write side, [`LifetimeSink`], takes the tracker's events, run counters and gaps
//!   from the pipeline (`ingest`, `commit`);
//! - the read side, [`ReadStore`] (and [`Retention`] for `prune`), answers the query
//!   commands (`cmd/`) and feeds the printers (`report/`).
//!
//! `sqlite` is the embedded store: one file, written by `record` and `import`. Nothing
//! outside its folder names SQLite, except `clickhouse::ship`, which reads such a file to
//! send it to `clickhouse`, the central store many recorders ship to.

pub mod clickhouse;
pub mod coverage;
pub mod lazy_open;
pub mod sqlite;

use crate::model::digest::DayRoot;
use crate::model::{CompactState, Event, Flavor, Lifetime, Micros, OpenState, StateRef};
use lazy_open::{Group, Unloaded};
use roaring::RoaringTreemap;
use std::collections::HashMap;
use std::net::IpAddr;

pub use sqlite::writer::{RunCounters, RunInfo};
pub use sqlite::StoreError;

/// The write side of a store: what the pipeline hands it. Every write is a merge that
/// commutes and repeats harmlessly (docs/pfsync.md §8), so importing a capture twice, or
/// overlapping captures in any order, leaves what one import leaves.
///
/// Besides the events, a store and the tracker share the open lifetimes: the store holds
/// those of earlier runs (and those the tracker evicts), and hands them back when a message
/// names them, so a restarted recorder or a later import carries on.
pub trait LifetimeSink: Send {
    /// One event from the tracker, in order; written by the next flush.
    fn push(&mut self, e: Event);
    /// A blind moment in the run (drops, damage, untrusted packets, time jumps).
    fn gap(&mut self, from: Micros, to: Micros, kind: &'static str, count: u64, detail: String);
    /// Write what is pending, with the run's counters, as one transaction.
    fn flush(&mut self, counters: &RunCounters) -> Result<(), StoreError>;
    /// Write what is pending and close the run with `status` at wall time `wall`.
    fn finish(
        self: Box<Self>,
        counters: &RunCounters,
        status: &str,
        wall: Micros,
    ) -> Result<(), StoreError>;
    /// Events (and held lifetimes) not yet written.
    fn pending(&self) -> usize;
    /// Events in the batch being built.
    fn batch_len(&self) -> usize;
    /// Whether the last flush was also a periodic archive pass (a longer commit by design).
    fn archived_in_flush(&self) -> bool;
    /// A live recorder: also write health samples.
    fn set_live(&mut self);
    /// Size the write cache, MiB (`--cache-mib`).
    fn set_cache_mib(&self, mib: u32) -> Result<(), StoreError>;

    /// The tracker holds the run's new open lifetimes (an import); the store need not.
    fn let_tracker_hold(&mut self);
    /// The keys of the open lifetimes stored by earlier runs, by group, for lazy loading.
    fn open_keys(&mut self) -> Result<Unloaded, StoreError>;
    /// The ids of one group's stored open lifetimes, up to `max`.
    fn group_keys(&mut self, g: Group, max: u64) -> Result<Vec<u64>, StoreError>;
    /// Every stored open lifetime.
    fn load_open(&mut self) -> Result<Vec<OpenState>, StoreError> {
        self.load_open_where(&|_| true)
    }
    /// The stored open lifetimes that `keep` selects.
    fn load_open_where(
        &mut self,
        keep: &dyn Fn(&StateRef) -> bool,
    ) -> Result<Vec<OpenState>, StoreError>;
    /// The stored open lifetimes of one creator with these ids.
    fn load_open_of(
        &mut self,
        creator_id: u32,
        ids: &RoaringTreemap,
    ) -> Result<Vec<OpenState>, StoreError>;
    /// Before finish: the lifetimes the tracker still holds open, to be stored open.
    fn hold_tracked(&mut self, open: Vec<Box<OpenState<CompactState>>>);
    /// Open lifetimes the tracker evicted, stored whole by the next flush.
    fn store_open(&mut self, open: Vec<OpenState>);
    /// Keys of evicted open lifetimes whose events the store has (commit thread).
    fn evict_open(&mut self, keys: Vec<StateRef>);
    /// Whether evictions wait for a flush.
    fn evictions_pending(&self) -> bool;
    /// The flavour each known creator spoke (so a pfctl snapshot does not relabel a
    /// FreeBSD firewall).
    fn creator_flavors(&mut self) -> Result<HashMap<u32, Flavor>, StoreError>;
    /// Close the days over by more than `grace` at `now` (docs/integrity.md): the root
    /// versions stored, to be published.
    fn seal(&mut self, now: Micros, grace: Micros) -> Result<Vec<DayRoot>, StoreError>;
}

/// Close the days of the file at `db` over by more than `grace` before the newest message
/// time it holds (an import of old captures closes their days): the root versions stored.
pub fn seal(db: &str, grace: Micros) -> Result<Vec<DayRoot>, StoreError> {
    refuse_url(db)?;
    let _lock = sqlite::WriterLock::acquire(db)?;
    let conn = sqlite::open_rw(db)?;
    let roots =
        sqlite::digest::seal(&conn, None, grace, crate::time::wall_us()).map_err(sqlite::sq(db))?;
    sqlite::hand_back(&conn);
    Ok(roots)
}

/// Open a store to write a run into: today the SQLite file at `db`, created if missing.
pub fn open_write(db: &str, run: &RunInfo) -> Result<Box<dyn LifetimeSink>, StoreError> {
    refuse_url(db)?;
    Ok(Box::new(sqlite::sink::SqliteSink::open(db, run)?))
}

/// What a query found: the lifetimes, and the stored groups that did not read back whole
/// (left out of the rows, and named so the answer can say it is incomplete).
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub rows: Vec<Lifetime>,
    pub damage: Vec<DamagedGroup>,
}

/// The read side of a store: everything the query commands ask.
pub trait ReadStore {
    /// Where the answers come from, as the user named it (a path or a URL).
    fn location(&self) -> &str;
    /// The store's schema version, for export headers.
    fn schema_version(&self) -> anyhow::Result<i64>;
    /// Lifetimes whose public (translated) address and port are `ip:port` and whose
    /// `[start, end]` overlaps `[t0, t1]`, nearest to `at` first (README, "What the answers
    /// mean").
    fn who(
        &self,
        ip: &IpAddr,
        port: u16,
        range: (Micros, Micros),
        at: Micros,
        filter: &WhoFilter,
    ) -> anyhow::Result<Answer>;
    /// Lifetimes of the private (inside) addresses `lo..=hi` overlapping `[from, to]`,
    /// optionally of one private port, by start.
    fn history(
        &self,
        hosts: (&IpAddr, &IpAddr),
        range: (Micros, Micros),
        port: Option<u16>,
    ) -> anyhow::Result<Answer>;
    /// What the recorders saw of `[from, to]`: runs, the parts no run watched, and gaps.
    fn coverage(&self, from: Micros, to: Micros) -> anyhow::Result<Coverage>;
    /// Hand every lifetime overlapping `[from, to]` to `f`, one at a time (memory does not
    /// grow with the range), and say what the walk met.
    fn each_lifetime(
        &self,
        from: Micros,
        to: Micros,
        f: &mut dyn FnMut(&Lifetime) -> anyhow::Result<()>,
    ) -> anyhow::Result<Walked>;
    /// Counts for `stats`.
    fn stats(&self) -> anyhow::Result<Stats>;
    /// The newest recorder's health for `status`, at wall time `now_us`.
    fn health(&self, now_us: Micros) -> anyhow::Result<Health>;
    /// Read every stored lifetime back and check the store's own structures (`check`).
    fn check(&self) -> anyhow::Result<CheckReport>;
    /// The UUID the store was given at creation, for evidence manifests.
    fn identity(&self) -> anyhow::Result<Option<String>>;
    /// Write every lifetime overlapping `[from, to]`, with the runs, gaps and creators,
    /// into a new plain SQLite file `out` (`export --format sqlite`), `info` as its
    /// `export_info` rows.
    fn export_sqlite(
        &self,
        from: Micros,
        to: Micros,
        out: &std::path::Path,
        info: &[(&str, String)],
    ) -> anyhow::Result<Walked>;
    /// Every stored version of every closed day's root (docs/integrity.md).
    fn day_roots(&self) -> anyhow::Result<Vec<DayRoot>>;
    /// The leaves of one UTC day (lifetimes starting in it), by creator, as `verify`
    /// recomputes a day's roots; `true` when the walk met damage in it.
    fn day_leaves(
        &self,
        day: i64,
    ) -> anyhow::Result<(HashMap<u32, Vec<crate::model::digest::Leaf>>, bool)> {
        use crate::model::digest::{day_range, leaf};
        let (from, to) = day_range(day);
        let mut leaves: HashMap<u32, Vec<crate::model::digest::Leaf>> = HashMap::new();
        let w = self.each_lifetime(from, to - 1, &mut |l| {
            if (from..to).contains(&l.start) {
                leaves.entry(l.creator_id).or_default().push(leaf(l));
            }
            Ok(())
        })?;
        Ok((leaves, w.damaged > 0 || !w.groups.is_empty()))
    }
}

/// Retention: `prune` deletes what ended before a time.
pub trait Retention {
    /// Delete every lifetime that ended before `before`.
    fn prune(&self, before: Micros) -> anyhow::Result<Pruned>;
}

/// What a prune did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pruned {
    /// Lifetimes deleted.
    pub lifetimes: u64,
    /// Lifetimes old enough to go but kept: not yet shipped to a central database this
    /// file ships to.
    pub kept_unshipped: u64,
}

/// Open a store to read: a ClickHouse database for a URL (`clickhouse://…`), else the
/// SQLite file at `db`.
pub fn open_read(db: &str) -> anyhow::Result<Box<dyn ReadStore>> {
    if clickhouse::is_url(db) {
        return Ok(Box::new(clickhouse::reader::ClickhouseReader::open(db)?));
    }
    Ok(Box::new(sqlite::reader::SqliteReader::open(db)?))
}

/// Bring a store to this binary's schema: (schema before, schema after).
pub fn migrate(db: &str) -> Result<(i32, i32), StoreError> {
    refuse_url(db)?;
    sqlite::migrate_file(db)
}

/// The writers (record, import, migrate) write a local file; a server is fed by `ship`.
fn refuse_url(db: &str) -> Result<(), StoreError> {
    if clickhouse::is_url(db) {
        return Err(StoreError::Io {
            path: db.into(),
            why: "a server is written by `pfstatelog ship --db FILE --to URL`; this command writes a local database file".into(),
        });
    }
    Ok(())
}

/// Open a store to prune.
pub fn open_retention(db: &str) -> anyhow::Result<Box<dyn Retention>> {
    if clickhouse::is_url(db) {
        return Ok(Box::new(clickhouse::reader::ClickhousePruner::open(db)?));
    }
    Ok(Box::new(sqlite::reader::SqlitePruner::open(db)?))
}

/// Whether an error is damage in the stored data, and a note naming it (a page that fails
/// its checksum), for the one line the user sees.
pub fn damage_in(e: &anyhow::Error) -> Option<String> {
    sqlite::damage_in(e)
}

/// What `check` found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Lifetimes read back whole.
    pub lifetimes: u64,
    /// Other structures read back (history rows, id lists), by name.
    pub structures: Vec<(String, u64)>,
    /// The store's own integrity check: `["ok"]` when sound.
    pub integrity: Vec<String>,
    /// Reading stopped at these errors.
    pub stopped: Vec<String>,
    /// Damaged groups, named.
    pub damage: Vec<DamagedGroup>,
    /// Damaged rows counted but not named.
    pub unnamed: u64,
}

impl CheckReport {
    pub fn sound(&self) -> bool {
        self.integrity == ["ok"]
            && self.stopped.is_empty()
            && self.damage.is_empty()
            && self.unnamed == 0
    }
}

#[derive(Debug, Clone, Default)]
pub struct WhoFilter {
    pub proto: Option<u8>,
    pub remote_ip: Option<IpAddr>,
    pub remote_port: Option<u16>,
}

/// What the recorder saw of a time range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Parts of the range no run watched.
    pub uncovered: Vec<(Micros, Micros)>,
    /// Known blind moments inside the range: (start, end, kind, count, detail).
    pub gaps: Vec<(Micros, Micros, String, i64, String)>,
    /// Runs touching the range: (kind, source, first, last).
    pub runs: Vec<(String, String, Micros, Micros)>,
}

impl Coverage {
    pub fn is_clean(&self) -> bool {
        self.uncovered.is_empty() && self.gaps.is_empty()
    }
}

/// What `stats` reports.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    pub path: String,
    pub size_bytes: u64,
    pub states: i64,
    pub open: i64,
    /// Closed lifetimes held packed (batches), of `states`.
    pub archived: i64,
    /// Closed lifetimes not archived yet, of `states`: rows of `states` a later message
    /// brought back or ended there, and a recorder's journal ones that ended (journal), which
    /// its next start batches. open + archived + ended_unarchived = states.
    pub ended_unarchived: i64,
    /// Lifetimes another state under the same (creator, id) replaced (track.rs).
    pub replaced: i64,
    pub evidence_only: i64,
    pub first_start: Option<String>,
    pub last_seen: Option<String>,
    pub creators: Vec<serde_json::Value>,
    pub runs: Vec<serde_json::Value>,
    pub gaps: i64,
    /// Breaks in imported captures' packet time (kind `time-jump` gaps).
    pub time_jumps: i64,
    pub decode_errors: i64,
    pub pcap_drops: i64,
}

/// What a damaged group held: the walk of lifetimes skips an archived group's lifetimes;
/// the other kinds are indexes and structures beside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DamageKind {
    ArchiveBucket,
    ArchiveGroup,
    HistoryRow,
    IdList,
}

/// A stored group that does not read back whole (its checksum or its packing is wrong):
/// which one, and the starts of the lifetimes it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedGroup {
    pub kind: DamageKind,
    /// The table and key, for a person.
    pub what: String,
    /// Lifetimes that started in [from, to] are filed there (None: no bound that way).
    pub from: Option<Micros>,
    pub to: Option<Micros>,
    pub why: &'static str,
}

impl std::fmt::Display for DamagedGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::time::format_rfc3339;
        write!(f, "{}", self.what)?;
        match (self.from, self.to) {
            (Some(a), Some(b)) => write!(
                f,
                ", lifetimes started {} to {}",
                format_rfc3339(a),
                format_rfc3339(b)
            )?,
            (None, Some(b)) => write!(f, ", lifetimes ended by {}", format_rfc3339(b))?,
            _ => write!(f, ", lifetimes of any time")?,
        }
        write!(f, " ({})", self.why)
    }
}

/// The newest recorder run and what its health rows say.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    /// A writer holds the database's lock now, and its pid (from the lock file).
    pub writer_pid: Option<u32>,
    /// The newest `record` run, if any.
    pub run: Option<RunFacts>,
    /// New lifetimes per second over the last minute and the last hour (None: no rows yet).
    pub states_per_s_minute: Option<f64>,
    pub states_per_s_hour: Option<f64>,
    pub open_states: Option<i64>,
    /// Capture time of the newest pfsync frame of the newest recorder run.
    pub last_packet_us: Option<i64>,
    pub drops_hour: i64,
    pub decode_errors_hour: i64,
    /// Gaps (drops, damage, untrusted packets) that end within the last hour, and day.
    pub gaps_hour: i64,
    pub gaps_day: i64,
    /// Database file plus its WAL, bytes.
    pub db_bytes: u64,
    /// Growth per day, from the recorder's rows of the last day (None: under an hour of rows).
    pub growth_per_day: Option<f64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RunFacts {
    pub id: i64,
    pub source: String,
    pub pid: Option<i64>,
    pub version: Option<String>,
    pub started_wall: i64,
    pub stopped_wall: Option<i64>,
    pub status: String,
}

/// What a walk over the range met.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Walked {
    /// Lifetimes handed to the callback.
    pub rows: u64,
    /// Rows in the range whose addresses could not be decoded (damage), skipped.
    pub damaged: u64,
    /// The damaged groups it met, named.
    pub groups: Vec<DamagedGroup>,
}
