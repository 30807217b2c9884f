//! The SQLite store's write side: [`LifetimeSink`] over the batched [`Writer`], with the
//! file's writer lock and its checkpoint thread.

use super::writer::Writer;
use super::{Checkpointer, Result, WriterLock};
use crate::model::digest::DayRoot;
use crate::model::{CompactState, Event, Flavor, Micros, OpenState, StateRef};
use crate::store::lazy_open::{Group, Unloaded};
use crate::store::{LifetimeSink, RunCounters, RunInfo};
use roaring::RoaringTreemap;
use std::collections::HashMap;

pub struct SqliteSink {
    writer: Writer,
    path: String,
    /// Stopped (joined) before the lock is released: fields drop in declaration order.
    checkpointer: Option<Checkpointer>,
    _lock: WriterLock,
}

impl SqliteSink {
    /// Lock the file for writing, open it (creating and migrating as needed), start its
    /// checkpoint thread and register the run.
    pub fn open(db: &str, run: &RunInfo) -> Result<SqliteSink> {
        let lock = WriterLock::acquire(db)?;
        let conn = super::open_rw(db)?;
        let checkpointer = Checkpointer::start(db, &conn)?;
        let writer = Writer::new(conn, db, run)?;
        Ok(SqliteSink {
            writer,
            path: db.to_string(),
            checkpointer: Some(checkpointer),
            _lock: lock,
        })
    }
}

impl LifetimeSink for SqliteSink {
    fn push(&mut self, e: Event) {
        self.writer.push(e)
    }
    fn gap(&mut self, from: Micros, to: Micros, kind: &'static str, count: u64, detail: String) {
        self.writer.gap(from, to, kind, count, detail)
    }
    fn flush(&mut self, counters: &RunCounters) -> Result<()> {
        self.writer.flush(counters)
    }
    fn finish(
        mut self: Box<Self>,
        counters: &RunCounters,
        status: &str,
        wall: Micros,
    ) -> Result<()> {
        // The writer's last checkpoint (TRUNCATE) must not meet the checkpointer's.
        self.checkpointer = None;
        let SqliteSink { writer, _lock, .. } = *self;
        writer.finish(counters, status, wall)
    }
    fn pending(&self) -> usize {
        self.writer.pending()
    }
    fn batch_len(&self) -> usize {
        self.writer.batch_len()
    }
    fn archived_in_flush(&self) -> bool {
        self.writer.archived_journal()
    }
    fn set_live(&mut self) {
        self.writer.set_live()
    }
    fn set_cache_mib(&self, mib: u32) -> Result<()> {
        self.writer.set_cache_mib(mib)
    }
    fn let_tracker_hold(&mut self) {
        self.writer.let_tracker_hold()
    }
    fn open_keys(&mut self) -> Result<Unloaded> {
        self.writer.open_keys()
    }
    fn group_keys(&mut self, g: Group, max: u64) -> Result<Vec<u64>> {
        self.writer.group_keys(g, max)
    }
    fn load_open_where(&mut self, keep: &dyn Fn(&StateRef) -> bool) -> Result<Vec<OpenState>> {
        self.writer.load_open_where(keep)
    }
    fn load_open_of(&mut self, creator_id: u32, ids: &RoaringTreemap) -> Result<Vec<OpenState>> {
        self.writer.load_open_of(creator_id, ids)
    }
    fn hold_tracked(&mut self, open: Vec<Box<OpenState<CompactState>>>) {
        self.writer.hold_tracked(open)
    }
    fn store_open(&mut self, open: Vec<OpenState>) {
        self.writer.store_open(open)
    }
    fn evict_open(&mut self, keys: Vec<StateRef>) {
        self.writer.evict_open(keys)
    }
    fn evictions_pending(&self) -> bool {
        self.writer.evictions_pending()
    }
    fn seal(&mut self, now: Micros, grace: Micros) -> Result<Vec<DayRoot>> {
        // The writer's lazy read transaction, if one is open, ends first: closing writes.
        self.writer.end_read();
        super::digest::seal(self.writer.conn(), Some(now), grace, crate::time::wall_us())
            .map_err(super::sq(&self.path))
    }
    fn creator_flavors(&mut self) -> Result<HashMap<u32, Flavor>> {
        super::export::creator_flavors(self.writer.conn()).map_err(super::sq(&self.path))
    }
}
