//! `migrate`: bring a database to this binary's schema, and say what changed.

use crate::cli::MigrateArgs;
use crate::store;

pub fn run(a: MigrateArgs) -> anyhow::Result<u8> {
    let db = a.db.path();
    let started = std::time::Instant::now();
    let (before, now) = store::migrate(&db)?;
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
