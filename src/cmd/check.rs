//! `check`: is the database file sound? Every stored lifetime read back through the store's
//! decoder (each packed group's checksum checked), every history row and id list, and
//! SQLite's own `PRAGMA integrity_check` of its pages and indexes.

use crate::cli::CheckArgs;
use crate::store::sqlite::{self as store, archive, export};
use anyhow::Context;

/// Lines of `integrity_check` shown; SQLite stops at 100 anyway.
const SHOWN: usize = 20;

pub fn run(a: CheckArgs) -> anyhow::Result<u8> {
    let db = a.db.path();
    let conn = store::open_ro(&db)?;
    let _tolerant = archive::tolerate();
    // SQLite's own check first: a file it calls malformed is damaged, whatever reads back.
    let integrity: Vec<String> = match conn.prepare("PRAGMA integrity_check").and_then(|mut st| {
        st.query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<String>>>()
    }) {
        Ok(lines) => lines,
        Err(e) if archive::is_damage(&e) => vec![store::pagesum::describe(&e)],
        Err(e) => return Err(e).with_context(|| format!("checking {db}")),
    };
    let sound_pages = integrity == ["ok"];
    // Then every lifetime, as export reads them (damage counted and named, not fatal).
    let walked =
        export::each_lifetime(&conn, i64::MIN, i64::MAX, |_| Ok::<(), rusqlite::Error>(()));
    let (read, skipped, walk_error) = match walked {
        Ok(w) => (w.rows, w.damaged, None),
        Err(e) if archive::is_damage(&e) => (0, 0, Some(store::pagesum::describe(&e))),
        Err(e) => return Err(e).with_context(|| format!("reading {db}")),
    };
    let (history, lists, list_error) = match archive::check_lists(&conn) {
        Ok((h, l)) => (h, l, None),
        Err(e) if archive::is_damage(&e) => (0, 0, Some(store::pagesum::describe(&e))),
        Err(e) => return Err(e).with_context(|| format!("reading {db}")),
    };
    let damage = archive::damage_seen();
    println!(
        "{db}: {read} lifetimes read, {history} history rows, {lists} id lists; SQLite integrity check: {}",
        if sound_pages { "ok" } else { "FAILED" }
    );
    for l in integrity.iter().filter(|_| !sound_pages).take(SHOWN) {
        println!("damaged: SQLite: {l}");
    }
    for e in walk_error.iter().chain(list_error.iter()) {
        println!("damaged: reading stopped: {e}");
    }
    for d in &damage {
        println!("damaged: {d}");
    }
    // Rows of `states` whose addresses do not decode are counted by the walk, not named.
    let unnamed = skipped.saturating_sub(
        damage
            .iter()
            .filter(|d| d.what.starts_with("sealed group"))
            .count() as u64,
    );
    if unnamed > 0 {
        println!("damaged: {unnamed} rows of states or the journal whose addresses do not decode");
    }
    let sound = sound_pages
        && walk_error.is_none()
        && list_error.is_none()
        && damage.is_empty()
        && unnamed == 0;
    if sound {
        println!("sound");
        Ok(0)
    } else {
        eprintln!("pfstatelog: {db} is damaged (see above)");
        Ok(1)
    }
}
