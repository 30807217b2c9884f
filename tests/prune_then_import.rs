//! `import` of a capture whose lifetimes a `prune` removed: it must succeed and store them
//! again. The rule tested: a prune only forgets lifetimes that ended before its time, and an
//! import states every lifetime its capture shows; so once every capture is imported again
//! after a prune, the database holds exactly what importing them into a fresh file gives
//! (the pruned lifetimes are back, the kept ones are not doubled).

mod common;

use common::run_ok;
use pfstatelog_bench::gen::{write_capture, GenConfig, DEFAULT_START_US};
use std::path::Path;

/// A classic pcap of generated traffic.
fn capture(path: &Path, cfg: &GenConfig) {
    let f = std::io::BufWriter::new(std::fs::File::create(path).expect("create capture"));
    write_capture(cfg, f, 1).expect("write capture");
}

/// Every lifetime of `db` as `export --format csv` gives it (without the comment lines,
/// which name the file and the time of the export), sorted.
fn exported(db: &str) -> Vec<String> {
    let mut v: Vec<String> = common::export_all(db, "csv")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(String::from)
        .collect();
    v.sort();
    v
}

/// A fresh database holding `captures` imported in that order.
fn imported(dir: &Path, name: &str, captures: &[&str]) -> String {
    let db = dir.join(name).display().to_string();
    for c in captures {
        run_ok(&["import", "--db", &db, c]);
    }
    db
}

/// `--before` as the CLI takes it, `s` seconds after the generator's default start.
fn at(s: i64) -> String {
    format!("@{}", DEFAULT_START_US / 1_000_000 + s)
}

fn small(seed: u64, start_us: i64) -> GenConfig {
    GenConfig {
        seed,
        states: 2_000,
        start_us,
        ..GenConfig::default()
    }
}

/// The capture imported, pruned past every lifetime it closed, imported again: the prune
/// emptied the id lists the next batch is numbered from, and the second import's history rows
/// met those the first one left under the same number.
#[test]
fn a_capture_imported_again_after_a_prune_of_all_it_closed_is_stored_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = dir.path().join("c.pcap");
    capture(&cap, &small(1, DEFAULT_START_US));
    let cap = cap.display().to_string();

    let db = imported(dir.path(), "pruned.db", &[&cap]);
    let before = exported(&db);
    // An hour on: after every end of this ~1-minute capture, before its history is old
    // enough for prune to drop it.
    run_ok(&["prune", "--db", &db, "--before", &at(3_600)]);
    assert_ne!(exported(&db), before, "the prune removed nothing");
    run_ok(&["import", "--db", &db, &cap]);

    let fresh = imported(dir.path(), "fresh.db", &[&cap]);
    assert_eq!(exported(&db), exported(&fresh));
}

/// An older capture imported after a newer one (a backfill), then a prune inside the
/// database's range that removes the older one's lifetimes, then the older one imported
/// again.
#[test]
fn a_backfilled_capture_pruned_and_imported_again_is_stored_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (early, late) = (dir.path().join("early.pcap"), dir.path().join("late.pcap"));
    capture(&early, &small(1, DEFAULT_START_US));
    capture(&late, &small(2, DEFAULT_START_US + 86_400_000_000));
    let (early, late) = (early.display().to_string(), late.display().to_string());

    let db = imported(dir.path(), "pruned.db", &[&late, &early]);
    // Ten minutes in: after every end of the early capture, a day before the late one.
    let before = exported(&db);
    run_ok(&["prune", "--db", &db, "--before", &at(600)]);
    assert_ne!(exported(&db), before, "the prune removed nothing");
    run_ok(&["import", "--db", &db, &early]);

    let fresh = imported(dir.path(), "fresh.db", &[&late, &early]);
    assert_eq!(exported(&db), exported(&fresh));
}
