//! Reading the recorder's journal of journal open lifetimes (migrations/0001_schema.sql).
//!
//! The journal is a run of rows per commit (`seq`); a journal row is closed by its key in
//! `journal_ends` at a later seq (the lifetime ended, was journaled again, or moved into
//! `states`). Runs leave from the front, when dead or ten minutes old, so it holds up to ten
//! minutes of runs, and readers probe it run by run: an index lookup per run, and none when
//! it is empty (no recorder running, or stopped cleanly).

use super::addr_blob;
use super::query::{lifetime, COLS};
use crate::model::Lifetime;
use crate::model::Micros;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::net::IpAddr;

/// The seqs present in `table` (journal or journal_ends), ascending.
fn seqs(conn: &Connection, table: &str) -> rusqlite::Result<Vec<i64>> {
    let mut next = conn.prepare_cached(&format!(
        "SELECT seq FROM {table} WHERE seq > ?1 ORDER BY seq LIMIT 1"
    ))?;
    let mut out = Vec::new();
    let mut after = i64::MIN;
    while let Some(s) = next.query_row([after], |r| r.get::<_, i64>(0)).optional()? {
        out.push(s);
        after = s;
    }
    Ok(out)
}

/// The journal as a reader sees it: its runs, and the seqs at which journal lifetimes ended.
pub struct Journal {
    runs: Vec<i64>,
    ends: Vec<i64>,
}

impl Journal {
    pub fn open(conn: &Connection) -> rusqlite::Result<Journal> {
        let runs = seqs(conn, "journal")?;
        let ends = if runs.is_empty() {
            Vec::new()
        } else {
            seqs(conn, "journal_ends")?
        };
        Ok(Journal { runs, ends })
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Whether the row journaled at `seq` was closed at a later commit.
    fn ended(&self, conn: &Connection, seq: i64, creator: u32, id: u64) -> rusqlite::Result<bool> {
        let mut probe = conn.prepare_cached(
            "SELECT 1 FROM journal_ends WHERE seq = ?1 AND creator_id = ?2 AND state_id = ?3",
        )?;
        for e in self.ends.iter().filter(|e| **e > seq) {
            if probe.exists(params![e, creator, id as i64])? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Young lifetimes from one statement per run (`sql` takes the seq as ?1 and selects
    /// [`COLS`] then seq), rows closed later left out, and those that ended before `from`.
    fn collect(
        &self,
        conn: &Connection,
        sql: &str,
        args: &[rusqlite::types::Value],
        from: Micros,
    ) -> rusqlite::Result<Vec<Lifetime>> {
        let mut stmt = conn.prepare_cached(sql)?;
        let mut out = Vec::new();
        for seq in &self.runs {
            let mut all = vec![rusqlite::types::Value::from(*seq)];
            all.extend_from_slice(args);
            let mut rows = stmt.query(rusqlite::params_from_iter(all.iter()))?;
            while let Some(r) = rows.next()? {
                if let Some(l) = lifetime(r)? {
                    if l.end.is_none_or(|e| e >= from)
                        && !self.ended(conn, *seq, l.creator_id, l.state_id)?
                    {
                        out.push(l);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Young lifetimes of a public ip:port that overlap [t0, t1] (open ones overlap anything
    /// after their start; ended ones wait here for their batch).
    pub fn who(
        &self,
        conn: &Connection,
        ip: &IpAddr,
        port: u16,
        t0: Micros,
        t1: Micros,
    ) -> rusqlite::Result<Vec<Lifetime>> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        self.collect(
            conn,
            &format!(
                "SELECT {COLS} FROM journal
                  WHERE seq = ?1 AND w_addr1 = ?2 AND w_port1 = ?3 AND start_us <= ?4"
            ),
            &[addr_blob(ip).into(), i64::from(port).into(), t1.into()],
            t0,
        )
    }

    /// Young lifetimes of private hosts in [lo, hi] (one family) that overlap [from, to].
    pub fn history(
        &self,
        conn: &Connection,
        lo: &IpAddr,
        hi: &IpAddr,
        from: Micros,
        to: Micros,
        port: Option<u16>,
    ) -> rusqlite::Result<Vec<Lifetime>> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        let (lo_b, hi_b) = (addr_blob(lo), addr_blob(hi));
        let found = self.collect(
            conn,
            &format!(
                "SELECT {COLS} FROM journal INDEXED BY young_private
                  WHERE seq = ?1 AND s_addr1 >= ?2 AND s_addr1 <= ?3 AND length(s_addr1) = ?4
                    AND start_us <= ?5"
            ),
            &[
                lo_b.clone().into(),
                hi_b.into(),
                (lo_b.len() as i64).into(),
                to.into(),
            ],
            from,
        )?;
        Ok(found
            .into_iter()
            .filter(|l| port.is_none_or(|p| p == l.private_port))
            .collect())
    }

    /// Every journal lifetime that overlaps [from, to], in journal order (export).
    pub fn each(
        &self,
        conn: &Connection,
        from: Micros,
        to: Micros,
        f: impl FnMut(Option<Lifetime>) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<()> {
        self.each_row(conn, "start_us <= ?1 ORDER BY seq, first_us", to, from, f)
    }

    /// Journal lifetimes written at seqs after `after` and not closed since (`ship`: a
    /// closed row's lifetime was written again elsewhere, where it is seen as new).
    pub fn each_since(
        &self,
        conn: &Connection,
        after: i64,
        f: impl FnMut(Option<Lifetime>) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<()> {
        self.each_row(conn, "seq > ?1 ORDER BY seq", after, i64::MIN, f)
    }

    /// The journal rows `filter` (bound to `bound`) selects, but those closed since they
    /// were written and those that ended before `ended_after`.
    fn each_row(
        &self,
        conn: &Connection,
        filter: &str,
        bound: i64,
        ended_after: Micros,
        mut f: impl FnMut(Option<Lifetime>) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let ended = ended_at(conn)?;
        let mut stmt = conn.prepare(&format!("SELECT {COLS}, seq FROM journal WHERE {filter}"))?;
        let mut rows = stmt.query([bound])?;
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(super::query::COLS_N)?;
            let l = lifetime(r)?;
            let gone = l.as_ref().is_some_and(|l| {
                l.end.is_some_and(|e| e < ended_after)
                    || ended
                        .get(&(l.creator_id, l.state_id))
                        .is_some_and(|e| *e > seq)
            });
            if !gone {
                f(l)?;
            }
        }
        Ok(())
    }

    /// The newest seq the journal and its ends hold (0: none).
    pub fn newest_seq(conn: &Connection) -> rusqlite::Result<i64> {
        conn.query_row(
            "SELECT max(coalesce((SELECT max(seq) FROM journal), 0),
                        coalesce((SELECT max(seq) FROM journal_ends), 0))",
            [],
            |r| r.get(0),
        )
    }

    /// How many journal lifetimes there are and how many of them are open, the earliest
    /// start and the latest sighting.
    pub fn summary(&self, conn: &Connection) -> rusqlite::Result<Summary> {
        let mut s = Summary::default();
        self.each(conn, Micros::MIN, Micros::MAX, |l| {
            if let Some(l) = l {
                s.n += 1;
                s.open += i64::from(l.end.is_none());
                s.first = Some(s.first.map_or(l.start, |f| f.min(l.start)));
                s.last = Some(s.last.map_or(l.last_seen, |x| x.max(l.last_seen)));
            }
            Ok(())
        })?;
        Ok(s)
    }
}

/// What [`Journal::summary`] counts.
#[derive(Debug, Default)]
pub struct Summary {
    pub n: i64,
    pub open: i64,
    pub first: Option<Micros>,
    pub last: Option<Micros>,
}

/// The latest seq at which each journal lifetime ended.
fn ended_at(conn: &Connection) -> rusqlite::Result<HashMap<(u32, u64), i64>> {
    let mut stmt = conn.prepare("SELECT creator_id, state_id, seq FROM journal_ends")?;
    let mut rows = stmt.query([])?;
    let mut out = HashMap::new();
    while let Some(r) = rows.next()? {
        let (c, id, seq): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let e = out.entry((c as u32, id as u64)).or_insert(seq);
        *e = (*e).max(seq);
    }
    Ok(out)
}
