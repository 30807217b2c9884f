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
            match lifetime(r)? {
                Some(l) => {
                    f(&l)?;
                    w.rows += 1;
                }
                None => w.damaged += 1,
            }
        }
    }
    let mut failed: Option<E> = None;
    let journal = Journal::open(conn)?.each_since(conn, since.journal_seq, |l| {
        match l {
            Some(l) => {
                if let Err(e) = f(&l) {
                    failed = Some(e);
                    return Err(rusqlite::Error::InvalidQuery);
                }
                w.rows += 1;
            }
            None => w.damaged += 1,
        }
        Ok(())
    });
    if let Some(e) = failed.take() {
        return Err(e);
    }
    journal?;
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
