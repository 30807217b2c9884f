//! Bulk reads: every lifetime overlapping a range, one row at a time (`export`), and the
//! few facts the export header and the snapshot import need from the store.

use super::archive::{self, Names};
use super::query::{each_range, lifetime, Ranges, COLS};
use crate::model::Flavor;
use crate::model::Lifetime;
use crate::model::Micros;
use crate::store::Walked;
use rusqlite::{params, Connection};
use std::collections::HashMap;

/// Hand every lifetime whose `[start, end]` overlaps `[from, to]` (an open one has no end)
/// to `f`, one at a time, straight off the SQLite cursor: memory does not grow with the
/// range. Rows of `states` come in the order they were first written (rowid), which needs
/// no sort, then archived lifetimes by duration class and time bucket;
/// evidence-only rows (no keys, no start) are not lifetimes and are left out.
pub fn each_lifetime<E>(
    conn: &Connection,
    from: Micros,
    to: Micros,
    mut f: impl FnMut(&Lifetime) -> Result<(), E>,
) -> Result<Walked, E>
where
    E: From<rusqlite::Error>,
{
    let _read = super::query::snapshot(conn)?;
    // A damaged group is counted and left out, as a damaged row is (archive::damage_seen).
    let _tolerant = archive::tolerate();
    let mut w = Walked::default();
    let mut failed: Option<E> = None;
    if let Some(mut ids) = ids_in_range(conn, from, to)? {
        // Few rows of a large table: read those alone, in the same order as the scan.
        ids.sort_unstable();
        let mut one = conn.prepare_cached(&format!("SELECT {COLS} FROM states WHERE id = ?1"))?;
        for id in ids {
            let mut rows = one.query([id])?;
            if let Some(r) = rows.next()? {
                pass(lifetime(r)?, &mut w, &mut f)?;
            }
        }
    } else {
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLS} FROM states
              WHERE start_us IS NOT NULL AND start_us <= ?2 AND (end_us IS NULL OR end_us >= ?1)
              ORDER BY id"
        ))?;
        let mut rows = stmt.query(params![from, to])?;
        while let Some(r) = rows.next()? {
            pass(lifetime(r)?, &mut w, &mut f)?;
        }
    }
    // Then the recorder's journal open lifetimes (journal)...
    let journal = super::journal::Journal::open(conn)?;
    through_sqlite(&mut w, &mut f, |g| journal.each(conn, from, to, g))?;
    // ...then the archived lifetimes, bucket by bucket (class, then time).
    let names = Names::load(conn)?;
    let walked = each_range(conn, Ranges::Archived, from, to, |c, b, _| {
        w.damaged += archive::each_in_bucket(conn, &names, c, b, |s| {
            if s.start <= to && s.end >= from {
                if let Err(e) = f(&Lifetime::from(&s)) {
                    failed = Some(e);
                    return Err(rusqlite::Error::InvalidQuery);
                }
                w.rows += 1;
            }
            Ok(())
        })?;
        Ok(())
    });
    if let Some(e) = failed {
        return Err(e);
    }
    walked?;
    Ok(w)
}

/// The ids of the rows of `states` overlapping [from, to], found through who's index
/// (classes and time buckets, as `who` finds them), when they are few: at most an eighth
/// of the table (or 4,096), past which reading the whole table in order is cheaper than
/// reading rows one by one. `None`: read the table.
fn ids_in_range(conn: &Connection, from: Micros, to: Micros) -> rusqlite::Result<Option<Vec<i64>>> {
    if from == Micros::MIN && to == Micros::MAX {
        return Ok(None);
    }
    let span: i64 = conn.query_row(
        "SELECT coalesce(max(id) - min(id) + 1, 0) FROM states",
        [],
        |r| r.get(0),
    )?;
    let limit = usize::try_from(span / 8).unwrap_or(usize::MAX).max(4096);
    let mut st = conn.prepare_cached(
        "SELECT id FROM states INDEXED BY states_who
          WHERE dur_class = ?1 AND start_bucket = ?2
            AND start_us <= ?4 AND (end_us IS NULL OR end_us >= ?3)",
    )?;
    let mut ids = Vec::new();
    let mut over = false;
    each_range(conn, Ranges::Who, from, to, |c, b, _| {
        if over {
            return Ok(());
        }
        let mut rows = st.query(params![c, b, from, to])?;
        while let Some(r) = rows.next()? {
            ids.push(r.get(0)?);
            if ids.len() > limit {
                over = true;
                break;
            }
        }
        Ok(())
    })?;
    Ok((!over).then_some(ids))
}

/// Ids of `states` counted per statement by [`count_lifetimes`]: counts reach the caller
/// while the rest is still being counted.
const COUNT_CHUNK: i64 = 1 << 20;

/// What [`each_lifetime`] would hand over, counted without building a lifetime: `f(n)` for
/// every `n` lifetimes met, in the same order of places (states, journal, archive), under the
/// same rules (range, damage), and the same [`Walked`] at the end. For `count(*)` and other
/// queries that read no column of `lifetimes`.
pub fn count_lifetimes<E>(
    conn: &Connection,
    from: Micros,
    to: Micros,
    mut f: impl FnMut(u64) -> Result<(), E>,
) -> Result<Walked, E>
where
    E: From<rusqlite::Error>,
{
    let _read = super::query::snapshot(conn)?;
    let _tolerant = archive::tolerate();
    let mut w = Walked::default();
    // In a file whose pages carry checksums every row is one the store wrote, and the store
    // writes the three addresses of every row that has a start: no row of `states` can be
    // left out as damage, and SQLite counts the whole table from its indexes without
    // reading a row. A range, or an older file, is counted row by row with the walk's own
    // decoder.
    if from == Micros::MIN && to == Micros::MAX && super::pagesum::checksummed(conn) {
        // Every row that has a start (dur_class is NULL exactly when start_us is).
        let n: i64 = conn.query_row(
            "SELECT (SELECT count(*) FROM states)
                  - (SELECT count(*) FROM states WHERE dur_class IS NULL)",
            [],
            |r| r.get(0),
        )?;
        let n = n.max(0) as u64;
        if n > 0 {
            f(n)?;
            w.rows += n;
        }
    } else {
        let (lo, hi): (Option<i64>, Option<i64>) =
            conn.query_row("SELECT min(id), max(id) FROM states", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLS} FROM states
              WHERE id >= ?3 AND id < ?4 AND start_us IS NOT NULL AND start_us <= ?2
                AND (end_us IS NULL OR end_us >= ?1)"
        ))?;
        if let (Some(mut a), Some(hi)) = (lo, hi) {
            while a <= hi {
                let b = a.saturating_add(COUNT_CHUNK);
                let mut rows = stmt.query(params![from, to, a, b])?;
                let mut n = 0u64;
                while let Some(r) = rows.next()? {
                    match lifetime(r)? {
                        Some(_) => n += 1,
                        None => w.damaged += 1,
                    }
                }
                drop(rows);
                if n > 0 {
                    f(n)?;
                    w.rows += n;
                }
                if b == i64::MAX {
                    break;
                }
                a = b;
            }
        }
    }
    let mut n = 0u64;
    super::journal::Journal::open(conn)?.each(conn, from, to, |l| {
        match l {
            Some(_) => n += 1,
            None => w.damaged += 1,
        }
        Ok(())
    })?;
    if n > 0 {
        f(n)?;
        w.rows += n;
    }
    let names = Names::load(conn)?;
    let mut failed: Option<E> = None;
    let walked = each_range(conn, Ranges::Archived, from, to, |c, b, _| {
        let mut n = 0u64;
        w.damaged += archive::each_in_bucket(conn, &names, c, b, |s| {
            n += u64::from(s.start <= to && s.end >= from);
            Ok(())
        })?;
        if n > 0 {
            if let Err(e) = f(n) {
                failed = Some(e);
                return Err(rusqlite::Error::InvalidQuery);
            }
            w.rows += n;
        }
        Ok(())
    });
    if let Some(e) = failed {
        return Err(e);
    }
    walked?;
    Ok(w)
}

/// The schema the database is at.
pub fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    Ok(i64::from(super::schema_versions(conn)?.0))
}

/// The flavour each known creator spoke (so a snapshot does not relabel a FreeBSD box).
pub fn creator_flavors(conn: &Connection) -> rusqlite::Result<HashMap<u32, Flavor>> {
    let mut stmt = conn.prepare("SELECT creator_id, flavor FROM creators")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, i64>(0)? as u32, r.get::<_, String>(1)?))
    })?;
    let mut out = HashMap::new();
    for r in rows {
        let (c, f) = r?;
        out.insert(
            c,
            if f == Flavor::FreeBsd.name() {
                Flavor::FreeBsd
            } else {
                Flavor::OpenBsd
            },
        );
    }
    Ok(out)
}

/// One row's lifetime to `f`, counted in `w` (a row that does not decode counted as
/// damaged).
pub(super) fn pass<E>(
    l: Option<Lifetime>,
    w: &mut Walked,
    f: &mut impl FnMut(&Lifetime) -> Result<(), E>,
) -> Result<(), E> {
    match l {
        Some(l) => {
            f(&l)?;
            w.rows += 1;
        }
        None => w.damaged += 1,
    }
    Ok(())
}

/// A walk whose callback must return SQLite's errors (the journal's): each lifetime to `f`,
/// counted in `w` (a row that does not decode counted as damaged); an error of `f` ends
/// the walk and is returned as it was.
pub(super) fn through_sqlite<E: From<rusqlite::Error>>(
    w: &mut Walked,
    f: &mut impl FnMut(&Lifetime) -> Result<(), E>,
    walk: impl FnOnce(&mut dyn FnMut(Option<Lifetime>) -> rusqlite::Result<()>) -> rusqlite::Result<()>,
) -> Result<(), E> {
    let mut failed = None;
    let walked = walk(&mut |l| {
        if let Err(e) = pass(l, w, f) {
            failed = Some(e);
            return Err(rusqlite::Error::InvalidQuery);
        }
        Ok(())
    });
    match failed {
        Some(e) => Err(e),
        None => Ok(walked?),
    }
}
