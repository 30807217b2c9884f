//! The SQLite store's read side: [`ReadStore`] and [`Retention`] over one database file.

use super::{archive, export, health, pagesum, query};
use crate::model::{Lifetime, Micros};
use crate::store::{
    Answer, CheckReport, Coverage, DamageKind, Health, Pruned, ReadStore, Retention, Stats, Walked,
    WhoFilter,
};
use anyhow::Context;
use rusqlite::Connection;
use std::net::IpAddr;

/// A database opened read-only (queries never write, and work on read-only evidence).
pub struct SqliteReader {
    conn: Connection,
    path: String,
}

impl SqliteReader {
    pub fn open(path: &str) -> anyhow::Result<SqliteReader> {
        Ok(SqliteReader {
            conn: super::open_ro(path)?,
            path: path.to_string(),
        })
    }

    /// The connection, for the SQL face (`sql`, `export --format sqlite`), which is
    /// SQLite's own.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }
}

impl ReadStore for SqliteReader {
    fn location(&self) -> &str {
        &self.path
    }

    fn identity(&self) -> anyhow::Result<Option<String>> {
        super::identity::uuid(&self.conn).with_context(|| format!("reading {}", self.path))
    }

    fn export_sqlite(
        &self,
        from: Micros,
        to: Micros,
        out: &std::path::Path,
        info: &[(&str, String)],
    ) -> anyhow::Result<Walked> {
        super::export_sqlite::write(&self.conn, &self.path, from, to, out, info)
    }

    fn day_roots(&self) -> anyhow::Result<Vec<crate::model::digest::DayRoot>> {
        // The roots came with schema 3; an older file is read as it is by the other
        // queries, but has none until a writer upgrades it.
        let (found, known) =
            super::schema_versions(&self.conn).with_context(|| format!("reading {}", self.path))?;
        if found < 3 {
            return Err(super::StoreError::TooOld {
                path: self.path.clone(),
                found,
                known,
            }
            .into());
        }
        super::digest::roots(&self.conn).with_context(|| format!("reading {}", self.path))
    }

    fn schema_version(&self) -> anyhow::Result<i64> {
        export::schema_version(&self.conn).with_context(|| format!("reading {}", self.path))
    }

    fn who(
        &self,
        ip: &IpAddr,
        port: u16,
        (t0, t1): (Micros, Micros),
        at: Micros,
        filter: &WhoFilter,
    ) -> anyhow::Result<Answer> {
        let rows = query::who(&self.conn, ip, port, t0, t1, at, filter)
            .with_context(|| format!("querying {}", self.path))?;
        Ok(Answer {
            rows,
            damage: archive::damage_seen(),
        })
    }

    fn history(
        &self,
        (lo, hi): (&IpAddr, &IpAddr),
        (from, to): (Micros, Micros),
        port: Option<u16>,
    ) -> anyhow::Result<Answer> {
        let rows = query::history(&self.conn, lo, hi, from, to, port)
            .with_context(|| format!("querying {}", self.path))?;
        Ok(Answer {
            rows,
            damage: archive::damage_seen(),
        })
    }

    fn coverage(&self, from: Micros, to: Micros) -> anyhow::Result<Coverage> {
        Ok(query::coverage(&self.conn, from, to)?)
    }

    fn each_lifetime(
        &self,
        from: Micros,
        to: Micros,
        f: &mut dyn FnMut(&Lifetime) -> anyhow::Result<()>,
    ) -> anyhow::Result<Walked> {
        let mut w = export::each_lifetime(&self.conn, from, to, f)?;
        w.groups = archive::damage_seen();
        Ok(w)
    }

    fn stats(&self) -> anyhow::Result<Stats> {
        query::stats(&self.conn, &self.path).with_context(|| format!("reading {}", self.path))
    }

    fn health(&self, now_us: Micros) -> anyhow::Result<Health> {
        Ok(health::read(&self.conn, &self.path, now_us)?)
    }

    fn check(&self) -> anyhow::Result<CheckReport> {
        let (conn, db) = (&self.conn, &self.path);
        let _tolerant = archive::tolerate();
        let mut r = CheckReport::default();
        // SQLite's own check first: a file it calls malformed is damaged, whatever reads back.
        r.integrity = match conn.prepare("PRAGMA integrity_check").and_then(|mut st| {
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        }) {
            Ok(lines) => lines,
            Err(e) if archive::is_damage(&e) => vec![pagesum::describe(&e)],
            Err(e) => return Err(e).with_context(|| format!("checking {db}")),
        };
        // Then every lifetime, as export reads them (damage counted and named, not fatal).
        let walked =
            export::each_lifetime(conn, i64::MIN, i64::MAX, |_| Ok::<(), rusqlite::Error>(()));
        let skipped = match walked {
            Ok(w) => {
                r.lifetimes = w.rows;
                w.damaged
            }
            Err(e) if archive::is_damage(&e) => {
                r.stopped.push(pagesum::describe(&e));
                0
            }
            Err(e) => return Err(e).with_context(|| format!("reading {db}")),
        };
        match archive::check_lists(conn) {
            Ok((h, l)) => {
                r.structures.push(("history rows".into(), h));
                r.structures.push(("id lists".into(), l));
            }
            Err(e) if archive::is_damage(&e) => r.stopped.push(pagesum::describe(&e)),
            Err(e) => return Err(e).with_context(|| format!("reading {db}")),
        }
        r.damage = archive::damage_seen();
        // Rows of `states` whose addresses do not decode are counted by the walk, not named.
        let named = r
            .damage
            .iter()
            .filter(|d| d.kind == DamageKind::ArchiveGroup)
            .count() as u64;
        r.unnamed = skipped.saturating_sub(named);
        Ok(r)
    }
}

/// A database opened to prune (read-write).
pub struct SqlitePruner {
    conn: Connection,
    path: String,
}

impl SqlitePruner {
    pub fn open(path: &str) -> anyhow::Result<SqlitePruner> {
        if !std::path::Path::new(path).exists() {
            return Err(super::StoreError::Missing { path: path.into() }.into());
        }
        Ok(SqlitePruner {
            conn: super::open_rw(path)?,
            path: path.to_string(),
        })
    }
}

impl Retention for SqlitePruner {
    fn prune(&self, before: Micros) -> anyhow::Result<Pruned> {
        let (lifetimes, kept_unshipped) =
            query::prune(&self.conn, before).with_context(|| format!("pruning {}", self.path))?;
        super::hand_back(&self.conn);
        Ok(Pruned {
            lifetimes,
            kept_unshipped,
        })
    }
}
