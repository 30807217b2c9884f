//! `migrate`: bring a database to this binary's schema, and say what changed.

use crate::cli::MigrateArgs;
use crate::store;

pub fn run(a: MigrateArgs) -> anyhow::Result<u8> {
    let db = a.db.path();
    if !std::path::Path::new(&db).exists() {
        return Err(store::StoreError::Missing { path: db }.into());
    }
    // A migration rebuilds indexes: no recorder may write meanwhile.
    let _lock = store::WriterLock::acquire(&db)?;
    let before = {
        let conn = store::open_ro(&db);
        match conn {
            Ok(c) => store::schema_versions(&c)?.0,
            Err(store::StoreError::TooOld { found, .. }) => found,
            Err(e) => return Err(e.into()),
        }
    };
    let started = std::time::Instant::now();
    let conn = store::open_rw(&db)?;
    let (now, _) = store::schema_versions(&conn)?;
    if before == now {
        eprintln!("pfstatelog: {db}: schema {now}, already current");
    } else {
        eprintln!(
            "pfstatelog: {db}: schema {before} -> {now} in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
    if a.seal {
        let started = std::time::Instant::now();
        // A line per million or so: kept rows make the counts uneven.
        let mut report_at = REPORT_EVERY;
        let done = store::compact::seal_closed_rows(&conn, SEAL_BATCH, |d| {
            if d.lifetimes >= report_at {
                eprintln!("pfstatelog: {db}: {} lifetimes sealed", d.lifetimes);
                report_at = d.lifetimes + REPORT_EVERY;
            }
        })
        .map_err(|source| store::StoreError::Sqlite {
            path: db.clone(),
            source,
        })?;
        eprintln!(
            "pfstatelog: {db}: {} lifetimes sealed in {:.1}s; {} closed rows kept as they are (evidence without a start, or damaged)",
            done.lifetimes,
            started.elapsed().as_secs_f64(),
            done.kept
        );
    }
    Ok(0)
}

/// Rows per transaction of `migrate --seal`.
const SEAL_BATCH: usize = 250_000;
/// Sealed lifetimes between two progress lines of `migrate --seal`.
const REPORT_EVERY: u64 = 1_000_000;
