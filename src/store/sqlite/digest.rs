//! Closing days (docs/integrity.md): the writer marks the days it writes into
//! (`digest_dirty`); [`seal`] computes the root of every marked day that is over, per
//! creator, and stores it as a new version when it differs from the newest one.

use super::export::each_lifetime;
use crate::model::digest::{day_of, day_range, leaf, DayRoot, Leaf, RootBuilder};
use crate::model::{Lifetime, Micros};
use rusqlite::{params, Connection, Transaction};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Days written to in a flush: (creator, day) with why, and creators a CLR named (their
/// closed days with lifetimes open then may have changed).
#[derive(Default)]
pub struct Touched {
    pub days: ahash::AHashSet<(u32, i64)>,
    pub cleared: ahash::AHashSet<u32>,
}

impl Touched {
    /// Record them in the flush's transaction; `reason` says who wrote (`late`, `import`).
    pub fn mark(&self, tx: &Transaction, reason: &str) -> rusqlite::Result<()> {
        let mut day = tx.prepare_cached(
            "INSERT OR IGNORE INTO digest_dirty (creator_id, day, reason) VALUES (?1, ?2, ?3)",
        )?;
        for (c, d) in &self.days {
            day.execute(params![c, d, reason])?;
        }
        let mut clr = tx.prepare_cached(
            "INSERT OR IGNORE INTO digest_dirty (creator_id, day, reason)
             SELECT DISTINCT creator_id, day, 'clear' FROM digests WHERE creator_id = ?1 AND open > 0",
        )?;
        for c in &self.cleared {
            clr.execute([c])?;
        }
        Ok(())
    }

    pub fn clear(&mut self) {
        self.days.clear();
        self.cleared.clear();
    }
}

/// Every (creator, day) that has lifetimes, with their count, among lifetimes starting
/// before `to` (one walk over them).
fn days_with_lifetimes(conn: &Connection, to: Micros) -> rusqlite::Result<BTreeSet<(u32, i64)>> {
    let mut days = BTreeSet::new();
    each_lifetime(conn, i64::MIN, to, |l: &Lifetime| {
        if l.start <= to {
            days.insert((l.creator_id, day_of(l.start)));
        }
        Ok::<_, rusqlite::Error>(())
    })?;
    Ok(days)
}

/// A day's leaves by creator, and how many of them are open.
type ByCreator = HashMap<u32, (Vec<Leaf>, u64)>;

/// The leaves of `day`. Damage met is sealed as read: `verify` names it (it recomputes
/// through the same walk, which counts it).
fn day_leaves(conn: &Connection, day: i64) -> rusqlite::Result<ByCreator> {
    let (from, to) = day_range(day);
    let mut by = ByCreator::new();
    // Room for as many lifetimes as the creator's newest closed day had: a list of tens of
    // millions grown by doubling spent a third of the close copying and faulting in pages.
    let mut hint = conn.prepare_cached(
        "SELECT count FROM digests WHERE creator_id = ?1 AND day <= ?2 ORDER BY day DESC, version DESC LIMIT 1",
    )?;
    each_lifetime(conn, from, to - 1, |l: &Lifetime| {
        if (from..to).contains(&l.start) {
            let e = by.entry(l.creator_id).or_insert_with(|| {
                let n: i64 = hint
                    .query_row(params![l.creator_id, day], |r| r.get(0))
                    .unwrap_or(0);
                (
                    Vec::with_capacity(n.clamp(0, 1 << 30) as usize * 11 / 10),
                    0,
                )
            });
            e.0.push(leaf(l));
            e.1 += u64::from(l.end.is_none());
        }
        Ok::<_, rusqlite::Error>(())
    })?;
    Ok(by)
}

/// Close every marked day that ended more than `grace` before `now` (None: the newest
/// message time the file holds, for imports of old captures): store each root that
/// differs from the day's newest, as its next version. Returns the new versions, to be
/// published.
pub fn seal(
    conn: &Connection,
    now: Option<Micros>,
    grace: Micros,
    wall: Micros,
) -> rusqlite::Result<Vec<DayRoot>> {
    let now = match now {
        Some(t) => t,
        None => match conn.query_row("SELECT max(last_us) FROM creators", [], |r| {
            r.get::<_, Option<i64>>(0)
        })? {
            Some(t) => t,
            None => return Ok(Vec::new()),
        },
    };
    // The last day over by more than the grace.
    let last = day_of(now.saturating_sub(grace)) - 1;
    let discover: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM digest_dirty WHERE creator_id = -1)",
        [],
        |r| r.get(0),
    )?;
    if discover {
        let found = days_with_lifetimes(conn, day_range(last).1 - 1)?;
        let tx = conn.unchecked_transaction()?;
        let mut ins = tx.prepare(
            "INSERT OR IGNORE INTO digest_dirty (creator_id, day, reason) VALUES (?1, ?2, 'close')",
        )?;
        for (c, d) in found {
            ins.execute(params![c, d])?;
        }
        drop(ins);
        tx.execute("DELETE FROM digest_dirty WHERE creator_id = -1", [])?;
        tx.commit()?;
    }
    let mut due: BTreeMap<i64, Vec<(u32, String)>> = BTreeMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT day, creator_id, reason FROM digest_dirty WHERE day <= ?1 AND creator_id >= 0",
        )?;
        let rows = stmt.query_map([last], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        for r in rows {
            let (d, c, why): (i64, u32, String) = r?;
            due.entry(d).or_default().push((c, why));
        }
    }
    let mut published = Vec::new();
    for (day, creators) in due {
        let mut leaves = day_leaves(conn, day)?;
        let tx = conn.unchecked_transaction()?;
        for (c, why) in creators {
            let (l, open) = leaves.remove(&c).unwrap_or_default();
            let count = l.len() as u64;
            let mut b = RootBuilder::default();
            crate::model::digest::ordered(l)
                .into_iter()
                .for_each(|h| b.push(h));
            let root = b.root();
            let newest = newest(&tx, c, day)?;
            if newest
                .as_ref()
                .is_none_or(|n| n.root != root || n.count != count)
            {
                let version = newest.map_or(1, |n| n.version + 1);
                let reason = if version == 1 { "close".into() } else { why };
                tx.execute(
                    "INSERT INTO digests (creator_id, day, version, count, open, root, closed_wall, reason)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![c, day, version, count as i64, open as i64, &root[..], wall, reason],
                )?;
                published.push(DayRoot {
                    creator_id: c,
                    day,
                    count,
                    root,
                    version,
                    reason,
                });
            } else {
                // Unchanged (a capture imported twice): only its open count may be news.
                tx.execute(
                    "UPDATE digests SET open = ?4 WHERE creator_id = ?1 AND day = ?2 AND version = ?3",
                    params![c, day, newest.map_or(0, |n| n.version), open as i64],
                )?;
            }
            tx.execute(
                "DELETE FROM digest_dirty WHERE creator_id = ?1 AND day = ?2",
                params![c, day],
            )?;
        }
        tx.commit()?;
    }
    Ok(published)
}

fn newest(conn: &Connection, creator: u32, day: i64) -> rusqlite::Result<Option<DayRoot>> {
    let mut stmt = conn.prepare_cached(
        "SELECT version, count, root, reason FROM digests WHERE creator_id = ?1 AND day = ?2
         ORDER BY version DESC LIMIT 1",
    )?;
    let mut rows = stmt.query_map(params![creator, day], |r| {
        Ok((
            r.get::<_, u32>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, Vec<u8>>(2)?,
            r.get(3)?,
        ))
    })?;
    rows.next().transpose().map(|o| {
        o.map(|(version, count, root, reason)| row(creator, day, version, count, &root, reason))
    })
}

fn row(
    creator_id: u32,
    day: i64,
    version: u32,
    count: i64,
    root: &[u8],
    reason: String,
) -> DayRoot {
    DayRoot {
        creator_id,
        day,
        count: count.max(0) as u64,
        // A stored root of the wrong length is damage: it matches nothing.
        root: root.try_into().unwrap_or([0; 32]),
        version,
        reason,
    }
}

/// Every stored version of every day's root, by creator, day and version.
pub fn roots(conn: &Connection) -> rusqlite::Result<Vec<DayRoot>> {
    let mut stmt = conn.prepare(
        "SELECT creator_id, day, version, count, root, reason FROM digests
         ORDER BY creator_id, day, version",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(row(
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            &r.get::<_, Vec<u8>>(4)?,
            r.get(5)?,
        ))
    })?;
    rows.collect()
}
