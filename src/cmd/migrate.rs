//! `migrate`: bring a database to this binary's schema, and say what changed.

use crate::cli::MigrateArgs;
use crate::store::sqlite as store;

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
    Ok(0)
}
