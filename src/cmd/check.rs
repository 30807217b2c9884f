//! `check`: is the database sound? Every stored lifetime read back through the store's
//! decoder (each packed group's checksum checked), the store's other structures, and its
//! own integrity check (SQLite's `PRAGMA integrity_check` of pages and indexes).

use crate::cli::CheckArgs;
use crate::store;

/// Lines of the integrity check shown; SQLite stops at 100 anyway.
const SHOWN: usize = 20;

pub fn run(a: CheckArgs) -> anyhow::Result<u8> {
    let db = a.db.path();
    let r = store::open_read(&db)?.check()?;
    let sound_pages = r.integrity == ["ok"];
    let others: Vec<String> = r
        .structures
        .iter()
        .map(|(what, n)| format!("{n} {what}"))
        .collect();
    println!(
        "{db}: {} lifetimes read, {}; SQLite integrity check: {}",
        r.lifetimes,
        others.join(", "),
        if sound_pages { "ok" } else { "FAILED" }
    );
    for l in r.integrity.iter().filter(|_| !sound_pages).take(SHOWN) {
        println!("damaged: SQLite: {l}");
    }
    for e in &r.stopped {
        println!("damaged: reading stopped: {e}");
    }
    for d in &r.damage {
        println!("damaged: {d}");
    }
    if r.unnamed > 0 {
        println!(
            "damaged: {} rows of states or the journal whose addresses do not decode",
            r.unnamed
        );
    }
    if r.sound() {
        println!("sound");
        Ok(0)
    } else {
        eprintln!("pfstatelog: {db} is damaged (see above)");
        Ok(1)
    }
}
