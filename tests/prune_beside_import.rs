//! `prune` while an `import` writes the same database: both must succeed (each waits for
//! the other's write lock), and the database must end as if the import had run first.

mod common;

use common::{bin, run_ok};
use pfstatelog_bench::gen::{write_capture, GenConfig, DEFAULT_START_US};
use std::path::Path;
use std::process::{Command, Stdio};

/// A classic pcap of generated traffic.
fn capture(path: &Path, cfg: &GenConfig) {
    let f = std::io::BufWriter::new(std::fs::File::create(path).expect("create capture"));
    write_capture(cfg, f, 1).expect("write capture");
}

/// Every lifetime of `db` as `export --format csv` gives it, without the lines that name
/// the file or the time of the export.
fn exported(db: &str) -> Vec<String> {
    common::export_all(db, "csv")
        .lines()
        .filter(|l| !l.starts_with("# database:") && !l.starts_with("# generated:"))
        .map(String::from)
        .collect()
}

#[test]
fn prune_waits_its_turn_beside_an_import() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = dir.path().join("old.pcap");
    let new = dir.path().join("new.pcap");
    // The old capture: every lifetime ends; the cut falls inside it, so each prune reads
    // many archived buckets it keeps (a read before its first write, the moment an
    // import's commit used to fail it).
    capture(
        &old,
        &GenConfig {
            states: 100_000,
            drain: true,
            ..GenConfig::default()
        },
    );
    // The new one, a day later, from other firewalls: nothing of it is pruned.
    capture(
        &new,
        &GenConfig {
            seed: 2,
            states: 250_000,
            start_us: DEFAULT_START_US + 86_400_000_000,
            creators: [0x0102_0304, 0x0506_0708],
            ..GenConfig::default()
        },
    );
    let before = format!("@{}", (DEFAULT_START_US + 60_000_000) / 1_000_000);
    let (old, new) = (old.display().to_string(), new.display().to_string());

    let db = dir.path().join("beside.db").display().to_string();
    run_ok(&["import", "--db", &db, &old]);
    let mut import = Command::new(bin())
        .args(["import", "--db", &db, &new])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start import");
    // Prune again and again while the import runs; a prune that ends before the import
    // does ran beside it for sure.
    let (mut beside, mut failures) = (0u32, Vec::new());
    for _ in 0..5_000 {
        let o = common::run(&["prune", "--db", &db, "--before", &before]);
        let running = import.try_wait().expect("try_wait").is_none();
        if !o.status.success() {
            failures.push(String::from_utf8_lossy(&o.stderr).into_owned());
        }
        if !running {
            break;
        }
        beside += 1;
    }
    let out = import.wait_with_output().expect("wait for import");
    let import_err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "import beside prune: {import_err}");
    assert!(
        failures.is_empty(),
        "prune beside import failed: {failures:?}"
    );
    assert!(beside > 0, "no prune ran while the import did");
    eprintln!("{beside} prunes ran beside the import");

    // The same, one after the other.
    let alone = dir.path().join("alone.db").display().to_string();
    run_ok(&["import", "--db", &alone, &old]);
    run_ok(&["import", "--db", &alone, &new]);
    run_ok(&["prune", "--db", &alone, "--before", &before]);
    let (got, want) = (exported(&db), exported(&alone));
    assert_eq!(got.len(), want.len(), "rows beside vs one after the other");
    assert!(got == want, "the database differs from import-then-prune");
    assert_eq!(common::integrity(Path::new(&db)), "ok");
}
