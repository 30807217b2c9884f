//! What this file has shipped to which central database, and what changed since
//! (migrations/0002_ship.sql): `ship` sends only that, and `prune` keeps it.

use super::archive::{self, HashSet, Names};
use super::journal::Journal;
use super::query::{lifetime, COLS};
use crate::model::Lifetime;
use crate::store::Walked;
use rusqlite::{params, Connection, OptionalExtension};

/// Where a destination's copy stands: the newest change of each place it holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// `states` rows written at clock values up to this.
    pub states_chg: i64,
    /// Journal rows of seqs up to this.
    pub journal_seq: i64,
    /// Archived batches up to this.
    pub batch: i64,
}

/// The cursor of destination `dest` (None: never shipped there).
pub fn load(conn: &Connection, dest: &str) -> rusqlite::Result<Option<Cursor>> {
    conn.query_row(
        "SELECT states_chg, journal_seq, batch FROM shipped WHERE dest = ?1",
        [dest],
        |r| {
            Ok(Cursor {
                states_chg: r.get(0)?,
                journal_seq: r.get(1)?,
                batch: r.get(2)?,
            })
        },
    )
    .optional()
}

/// Forget destination `dest` (its server lost what it was sent): the next ship sends all.
pub fn forget(conn: &Connection, dest: &str) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM shipped WHERE dest = ?1", [dest])
        .map(|_| ())
}

/// Advance the clock before a ship reads: the value before, which the ship's cursor takes.
/// Every `states` row written from now on carries a higher value, so none written while
/// the ship reads can be missed by the next one.
pub fn tick(conn: &Connection) -> rusqlite::Result<i64> {
    // One statement: it waits for the write lock (busy timeout) like any writer, where a
    // read then a write in one transaction could fail at once beside a recorder.
    conn.query_row(
        "UPDATE ship_clock SET n = n + 1 WHERE one = 1 RETURNING n - 1",
        [],
        |r| r.get(0),
    )
}

/// The newest journal seq and archived batch, read inside the ship's snapshot.
pub fn marks(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    let seq = Journal::newest_seq(conn)?;
    let batch: i64 = conn.query_row(
        "SELECT coalesce(max(batch), 0) FROM archive_batches",
        [],
        |r| r.get(0),
    )?;
    Ok((seq, batch))
}

/// Record that the server accepted everything up to `to`, and `sent` more lifetimes.
pub fn save(
    conn: &Connection,
    dest: &str,
    to: &Cursor,
    sent: u64,
    wall: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO shipped (dest, states_chg, journal_seq, batch, lifetimes, shipped_wall)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (dest) DO UPDATE SET states_chg = excluded.states_chg,
             journal_seq = excluded.journal_seq, batch = excluded.batch,
             lifetimes = lifetimes + excluded.lifetimes, shipped_wall = excluded.shipped_wall",
        params![
            dest,
            to.states_chg,
            to.journal_seq,
            to.batch,
            sent as i64,
            wall
        ],
    )
    .map(|_| ())
}

/// Every lifetime written since `since`, to `f`: rows of `states` changed after its clock
/// value, journal rows of later seqs, lifetimes of later batches. A lifetime may come more
/// than once (the server keeps one copy); evidence-only rows are left out, as export does.
pub fn each_changed<E>(
    conn: &Connection,
    since: &Cursor,
    mut f: impl FnMut(&Lifetime) -> Result<(), E>,
) -> Result<Walked, E>
where
    E: From<rusqlite::Error>,
{
    let _read = super::query::snapshot(conn)?;
    let _tolerant = archive::tolerate();
    let mut w = Walked::default();
    {
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLS} FROM states WHERE chg > ?1 AND start_us IS NOT NULL"
        ))?;
        let mut rows = stmt.query([since.states_chg])?;
        while let Some(r) = rows.next()? {
            super::export::pass(lifetime(r)?, &mut w, &mut f)?;
        }
    }
    let journal = Journal::open(conn)?;
    super::export::through_sqlite(&mut w, &mut f, |g| {
        journal.each_since(conn, since.journal_seq, g)
    })?;
    let mut failed: Option<E> = None;
    let names = Names::load(conn)?;
    let archived = archive::each_after_batch(conn, &names, since.batch, |s| {
        if let Err(e) = f(&Lifetime::from(&s)) {
            failed = Some(e);
            return Err(rusqlite::Error::InvalidQuery);
        }
        w.rows += 1;
        Ok(())
    });
    if let Some(e) = failed {
        return Err(e);
    }
    w.damaged += archived?;
    w.groups = archive::damage_seen();
    Ok(w)
}

/// What some destination has not been sent yet, for `prune` (None: this file never shipped,
/// or every destination holds everything): the oldest cursor, and the ids of the archived
/// lifetimes after its batch.
pub struct Unshipped {
    pub oldest: Cursor,
    pub archived: HashSet<(u32, u64)>,
}

pub fn unshipped(conn: &Connection) -> rusqlite::Result<Option<Unshipped>> {
    let oldest: Option<(i64, i64, i64)> = conn
        .query_row(
            "SELECT min(states_chg), min(journal_seq), min(batch) FROM shipped HAVING count(*) > 0",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((states_chg, journal_seq, batch)) = oldest else {
        return Ok(None);
    };
    Ok(Some(Unshipped {
        oldest: Cursor {
            states_chg,
            journal_seq,
            batch,
        },
        archived: archive::ids_after_batch(conn, batch)?,
    }))
}

/// One value of a row of `creators`, `gaps` or `runs`, as a shipper sends it.
#[derive(Debug, Clone, Copy)]
pub enum Field<'a> {
    U32(u32),
    I64(i64),
    OptI64(Option<i64>),
    Str(&'a str),
    OptStr(Option<&'a str>),
}

/// The small tables, in the order a shipper sends them: runs last, so a round cut short
/// never makes the server claim it watched a range whose lifetimes it does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Small {
    Creators,
    Gaps,
    Runs,
}

/// What one round read: the marks its cursor moves to once the server accepted it all.
pub struct Round {
    pub walked: Walked,
    pub to: Cursor,
}

/// A file as a shipper sees it: read in snapshots, with a writable connection of its own
/// for the cursor (the clock and the place of each destination).
pub struct Spool {
    db: String,
    local: super::reader::SqliteReader,
    cursor: Connection,
}

impl Spool {
    /// Refuses a missing file, another program's, a newer schema: before any write.
    pub fn open(db: &str) -> anyhow::Result<Spool> {
        use anyhow::Context;
        let local = super::reader::SqliteReader::open(db)?;
        let cursor = super::open_rw(db).with_context(|| {
            format!("{db}: ship keeps its place in the file, which must be writable")
        })?;
        Ok(Spool {
            db: db.to_string(),
            local,
            cursor,
        })
    }

    fn ctx(&self) -> impl Fn(rusqlite::Error) -> anyhow::Error + '_ {
        move |e| anyhow::Error::new(e).context(format!("{}: keeping the ship's place", self.db))
    }

    pub fn cursor(&self, dest: &str) -> anyhow::Result<Option<Cursor>> {
        load(&self.cursor, dest).map_err(self.ctx())
    }

    pub fn forget(&self, dest: &str) -> anyhow::Result<()> {
        forget(&self.cursor, dest).map_err(self.ctx())
    }

    pub fn save(&self, dest: &str, to: &Cursor, sent: u64, wall: i64) -> anyhow::Result<()> {
        save(&self.cursor, dest, to, sent, wall).map_err(self.ctx())
    }

    /// SQLite's count of commits to the file by other connections: it changes when a
    /// writer committed since the last look. Read on the cursor's connection, whose own
    /// commits (each round's) it does not count.
    pub fn data_version(&self) -> anyhow::Result<i64> {
        Ok(self
            .cursor
            .pragma_query_value(None, "data_version", |r| r.get(0))?)
    }

    /// One round in one read snapshot, so the runs given last describe exactly the
    /// lifetimes given before them, even while a recorder writes the file: every lifetime
    /// changed since `since` (all of them without) to `each`, then every row of the small
    /// tables to `small`. An error of `each` ends the round (the cursor stays).
    pub fn round(
        &self,
        since: Option<Cursor>,
        each: &mut dyn FnMut(&Lifetime) -> anyhow::Result<()>,
        small: &mut dyn FnMut(Small, &[Field<'_>]),
    ) -> anyhow::Result<Round> {
        use crate::store::ReadStore;
        use anyhow::Context;
        let db = &self.db;
        let clock = tick(&self.cursor).map_err(self.ctx())?;
        let conn = self.local.conn();
        let _snapshot = conn
            .unchecked_transaction()
            .with_context(|| format!("reading {db}"))?;
        let (journal_seq, batch) = marks(conn).with_context(|| format!("reading {db}"))?;
        let walked = match since {
            None => self.local.each_lifetime(i64::MIN, i64::MAX, each)?,
            Some(since) => each_changed(conn, &since, each)?,
        };
        small_tables(conn, db, small).with_context(|| format!("reading {db}"))?;
        // Seqs and batches only grow; an emptied journal must not take the cursor back.
        let to = Cursor {
            states_chg: clock,
            journal_seq: journal_seq.max(since.map_or(0, |c| c.journal_seq)),
            batch: batch.max(since.map_or(0, |c| c.batch)),
        };
        Ok(Round { walked, to })
    }
}

fn small_tables(
    conn: &Connection,
    db: &str,
    out: &mut dyn FnMut(Small, &[Field<'_>]),
) -> rusqlite::Result<()> {
    use Field::*;
    let mut st = conn.prepare(
        "SELECT creator_id, flavor, version, record_version, first_us, last_us FROM creators",
    )?;
    let mut q = st.query([])?;
    while let Some(r) = q.next()? {
        let flavor: String = r.get(1)?;
        out(
            Small::Creators,
            &[
                U32(r.get::<_, i64>(0)? as u32),
                Str(&flavor),
                I64(r.get(2)?),
                OptI64(r.get(3)?),
                I64(r.get(4)?),
                I64(r.get(5)?),
            ],
        );
    }
    let mut st = conn
        .prepare("SELECT run_id, start_us, end_us, kind, count, coalesce(detail, '') FROM gaps")?;
    let mut q = st.query([])?;
    while let Some(r) = q.next()? {
        let (kind, detail): (String, String) = (r.get(3)?, r.get(5)?);
        out(
            Small::Gaps,
            &[
                I64(r.get(0)?),
                I64(r.get(1)?),
                Str(&kind),
                I64(r.get(2)?),
                I64(r.get(4)?),
                Str(&detail),
            ],
        );
    }
    let newest: Option<i64> = conn.query_row("SELECT max(id) FROM runs", [], |r| r.get(0))?;
    let mut st = conn.prepare(
        "SELECT id, kind, source, first_us, last_us, started_wall, stopped_wall, packets,
                messages, drops, decode_errors, skipped, status, pid, version FROM runs",
    )?;
    let mut q = st.query([])?;
    while let Some(r) = q.next()? {
        let id: i64 = r.get(0)?;
        let mut status: String = r.get(12)?;
        // As a local reader takes it: `running` only while its writer is alive.
        if status == "running" && (Some(id) != newest || !super::writer_alive(db)) {
            status = "abnormal".into();
        }
        let (kind, source): (String, String) = (r.get(1)?, r.get(2)?);
        let version: Option<String> = r.get(14)?;
        out(
            Small::Runs,
            &[
                I64(id),
                Str(&kind),
                Str(&source),
                OptI64(r.get(3)?),
                OptI64(r.get(4)?),
                I64(r.get(5)?),
                OptI64(r.get(6)?),
                I64(r.get(7)?),
                I64(r.get(8)?),
                I64(r.get(9)?),
                I64(r.get(10)?),
                I64(r.get(11)?),
                Str(&status),
                OptI64(r.get(13)?),
                OptStr(version.as_deref()),
            ],
        );
    }
    Ok(())
}
