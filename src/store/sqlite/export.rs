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
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLS} FROM states
          WHERE start_us IS NOT NULL AND start_us <= ?2 AND (end_us IS NULL OR end_us >= ?1)
          ORDER BY id"
    ))?;
    let mut rows = stmt.query(params![from, to])?;
    let mut w = Walked::default();
    let mut failed: Option<E> = None;
    while let Some(r) = rows.next()? {
        match lifetime(r)? {
            Some(l) => {
                f(&l)?;
                w.rows += 1;
            }
            None => w.damaged += 1,
        }
    }
    drop(rows);
    // Then the recorder's journal open lifetimes (journal)...
    let journal = super::journal::Journal::open(conn)?.each(conn, from, to, |l| {
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
