//! `verify`: recompute every closed day's Merkle roots from the stored lifetimes and compare
//! them with the stored roots, and with roots published to a syslog file (`--roots`).
//! docs/integrity.md says what each comparison proves.

use crate::cli::VerifyArgs;
use crate::model::digest::{day_name, day_of, day_range, day_root, DayRoot};
use crate::store;
use anyhow::Context;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::BufRead;

/// A difference: (day, creator) first, so the earliest is the one named.
type Differs = BTreeMap<(i64, u32), String>;

pub fn run(a: VerifyArgs) -> anyhow::Result<u8> {
    let db = a.db.path();
    let store = store::open_read(&db)?;
    let stored = store.day_roots()?;
    let mut differs = Differs::new();
    let mut say = |day: i64, creator: u32, why: String| {
        differs.entry((day, creator)).or_insert(why);
    };
    // The history of each day: versions 1..=V, none missing.
    let mut newest: BTreeMap<(i64, u32), &DayRoot> = BTreeMap::new();
    for r in &stored {
        let prev = newest.insert((r.day, r.creator_id), r);
        if r.version != prev.map_or(1, |p| p.version + 1) {
            say(
                r.day,
                r.creator_id,
                format!("version {} follows a missing one", r.version),
            );
        }
    }
    // Published roots: each must be stored as published; a day the file holds must have
    // every stored version in it.
    let mut published = 0;
    if let Some(path) = &a.roots {
        let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
        let mut lines: HashMap<(u32, i64, u32), DayRoot> = HashMap::new();
        // A syslog file may hold bytes that are not UTF-8: such a line is read as well as it
        // can be (a root line is ASCII).
        for line in std::io::BufReader::new(file).split(b'\n') {
            let line = line.with_context(|| format!("reading {}", path.display()))?;
            if let Some(r) = DayRoot::parse(&String::from_utf8_lossy(&line)) {
                lines.insert((r.creator_id, r.day, r.version), r);
            }
        }
        published = lines.len();
        let days: BTreeSet<(u32, i64)> = lines.keys().map(|&(c, d, _)| (c, d)).collect();
        let mut by_version: HashMap<(u32, i64, u32), &DayRoot> = HashMap::new();
        for r in &stored {
            by_version.insert((r.creator_id, r.day, r.version), r);
            if days.contains(&(r.creator_id, r.day))
                && !lines.contains_key(&(r.creator_id, r.day, r.version))
            {
                say(
                    r.day,
                    r.creator_id,
                    format!("stored version {} was never published", r.version),
                );
            }
        }
        for (k, p) in &lines {
            match by_version.get(k) {
                Some(s) if s.root == p.root && s.count == p.count => {}
                Some(_) => say(
                    p.day,
                    p.creator_id,
                    format!("version {} differs from the published root", p.version),
                ),
                None => say(
                    p.day,
                    p.creator_id,
                    format!("published version {} is not stored", p.version),
                ),
            }
        }
    }
    // What is stored now: every closed day recomputed, against its newest version; and no
    // lifetime in a closed day without a root (its creator's day deleted from the roots).
    let Some(&last) = newest.keys().map(|(d, _)| d).max() else {
        println!("{db}: no closed day yet; nothing to verify");
        return Ok(if differs.is_empty() { 0 } else { 1 });
    };
    let mut present: BTreeSet<(i64, u32)> = BTreeSet::new();
    store.each_lifetime(i64::MIN, day_range(last).1 - 1, &mut |l| {
        let day = day_of(l.start);
        if day <= last {
            present.insert((day, l.creator_id));
        }
        Ok(())
    })?;
    let days: BTreeSet<i64> = newest
        .keys()
        .map(|(d, _)| *d)
        .chain(present.iter().map(|(d, _)| *d))
        .collect();
    for day in days {
        let (mut leaves, damaged) = store.day_leaves(day)?;
        let creators: BTreeSet<u32> = leaves
            .keys()
            .copied()
            .chain(
                newest
                    .range((day, 0)..=(day, u32::MAX))
                    .map(|((_, c), _)| *c),
            )
            .collect();
        for c in creators {
            let l = leaves.remove(&c).unwrap_or_default();
            let count = l.len() as u64;
            let (root, damage) = (day_root(l), damaged);
            match newest.get(&(day, c)) {
                _ if damage => say(
                    day,
                    c,
                    "damaged data in the day (see `pfstatelog check`)".into(),
                ),
                None => say(
                    day,
                    c,
                    format!("{count} lifetimes in a closed day without a root"),
                ),
                Some(r) if r.root != root || r.count != count => say(
                    day,
                    c,
                    format!(
                        "stored lifetimes ({count}) do not match version {} ({} lifetimes)",
                        r.version, r.count
                    ),
                ),
                Some(_) => {}
            }
        }
    }
    if let Some(((day, c), why)) = differs.into_iter().next() {
        println!("differs: creator={c:08x} day={}: {why}", day_name(day));
        return Ok(1);
    }
    let changed = newest.values().filter(|r| r.version > 1).count();
    println!(
        "{db}: {} days of {} creators match their roots ({} versions stored, {published} published ones compared); {changed} days changed after their close",
        newest.len(),
        newest.keys().map(|(_, c)| c).collect::<BTreeSet<_>>().len(),
        stored.len(),
    );
    Ok(0)
}
