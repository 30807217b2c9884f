//! Sealing what older versions stored one row per lifetime (`pfstatelog migrate --seal`):
//! the closed lifetimes of `states` become seals, as an import or the recorder writes them
//! now. The database gets smaller and `states` keeps little more than the open states.

use rusqlite::{params, Connection};

use super::pack::Stored;
use super::sealed::{self, Names};
use super::writer::{stored_of, STORED_COLS};

/// What a pass sealed and left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sealed {
    pub lifetimes: u64,
    /// Closed rows left in `states`: evidence (no start) or a column without a value.
    pub kept: u64,
}

/// Seal the closed lifetimes of `states`, `batch` rows per transaction (an interrupted pass
/// loses nothing and the next one carries on), calling `progress` after each.
pub fn seal_closed_rows(
    conn: &Connection,
    batch: usize,
    mut progress: impl FnMut(&Sealed),
) -> rusqlite::Result<Sealed> {
    let mut names = Names::load(conn)?;
    let mut done = Sealed::default();
    let mut after = 0i64;
    // The history buckets written, merged at the end (several passes write into each).
    let mut history = Vec::new();
    loop {
        let tx = conn.unchecked_transaction()?;
        let mut rows: Vec<(i64, Option<Stored>)> = Vec::with_capacity(batch);
        {
            let mut st = tx.prepare_cached(&format!(
                "SELECT id, {STORED_COLS} FROM states
                  WHERE id > ?1 AND end_us IS NOT NULL ORDER BY id LIMIT ?2"
            ))?;
            let mut q = st.query(params![after, batch as i64])?;
            while let Some(r) = q.next()? {
                let id: i64 = r.get(0)?;
                rows.push((id, stored_of(r, 1)));
            }
        }
        let Some(&(last, _)) = rows.last() else {
            tx.commit()?;
            break;
        };
        after = last;
        let mut seal = Vec::with_capacity(rows.len());
        let mut del = tx.prepare_cached("DELETE FROM states WHERE id = ?1")?;
        for (id, s) in rows {
            match s {
                Some(s) if s.start <= s.end => {
                    del.execute([id])?;
                    seal.push(s);
                }
                _ => done.kept += 1,
            }
        }
        drop(del);
        if !seal.is_empty() {
            let no = sealed::next_seal(&tx)?;
            history.extend(sealed::write_seal(&tx, &seal, no, &mut names, &|_, n| n)?);
            done.lifetimes += seal.len() as u64;
        }
        tx.commit()?;
        progress(&done);
    }
    // Buckets that several passes (or earlier seals) wrote into: one row per pair.
    let tx = conn.unchecked_transaction()?;
    for (c, b) in sealed::buckets_to_merge(&tx, None)? {
        sealed::merge_bucket(&tx, &names, c, b)?;
    }
    history.sort_unstable();
    history.dedup();
    for (c, hb) in history {
        sealed::merge_private(&tx, c, hb)?;
    }
    tx.commit()?;
    Ok(done)
}
