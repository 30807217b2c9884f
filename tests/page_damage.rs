//! A flipped byte in any page of the database (a B-tree index page, a table page), not only
//! in an archived group: `who` says "database damaged" (exit 2), never a silent "no state
//! matched" or another answer than the intact file gives.

mod common;

use common::{fixture, run, run_ok};
use rusqlite::OpenFlags;
use std::process::Output;

const CAPTURE: &str = "nat-outbound-l3-dlt246.pcap";

/// A database with the capture imported (import ends with the WAL copied into the file).
fn imported() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("d.db").display().to_string();
    run_ok(&[
        "import",
        "--db",
        &db,
        &fixture(CAPTURE).display().to_string(),
    ]);
    (dir, db)
}

/// `who` questions (public ip, port, start) of the lifetimes still open at the capture's
/// end, which stay in `states` and its index `states_who`, and of a few closed ones.
fn questions(db: &str) -> Vec<(String, String, String)> {
    let o = common::export_all(db, "csv");
    let rows: Vec<Vec<String>> = o
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("private_ip,"))
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    // public_ip, public_port, start, end: columns 2, 3, 11, 12.
    let open = rows.iter().filter(|r| r[12].is_empty()).take(6);
    let closed = rows.iter().filter(|r| !r[12].is_empty()).take(2);
    let q: Vec<_> = open
        .chain(closed)
        .map(|r| (r[2].clone(), r[3].clone(), r[11].clone()))
        .collect();
    assert!(q.len() >= 6, "the capture has open and closed lifetimes");
    q
}

fn who(db: &str, q: &(String, String, String)) -> Output {
    run(&[
        "who", "--db", db, "--ip", &q.0, "--port", &q.1, "--at", &q.2, "--format", "csv",
    ])
}

/// The page size and the first byte of the root page of table or index `name`.
fn root_page(db: &str, name: &str) -> (u64, u64) {
    let c =
        pfstatelog::store::sqlite::pagesum::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open");
    let size: i64 = c
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .expect("page_size");
    let root: i64 = c
        .query_row(
            "SELECT rootpage FROM sqlite_master WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .expect("rootpage");
    assert!(root > 1, "{name} has a root page");
    let (size, root) = (size as u64, root as u64);
    (size, (root - 1) * size)
}

/// Flip the bits of one byte of the file, as a disk or a copy might.
fn flip(db: &str, at: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(db)
        .expect("open file");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).expect("read byte");
    b[0] ^= 0x5a;
    f.write_all_at(&b, at).expect("write byte");
}

/// Every answer after damage is the intact one or one "database damaged" line (exit 2);
/// how many were reported as damage.
fn answers_after_damage(db: &str, qs: &[(String, String, String)], intact: &[Output]) -> usize {
    let mut reported = 0;
    for (q, before) in qs.iter().zip(intact) {
        let o = who(db, q);
        let err = String::from_utf8_lossy(&o.stderr);
        if o.status.code() == Some(2) {
            assert!(
                err.contains("database damaged") && err.trim().lines().count() == 1,
                "{q:?}: one 'database damaged' line, got: {err}"
            );
            reported += 1;
        } else {
            assert_eq!(
                (o.status.code(), &o.stdout),
                (before.status.code(), &before.stdout),
                "{q:?}: a silently different answer; stderr: {err}"
            );
        }
    }
    reported
}

fn intact_answers(db: &str, qs: &[(String, String, String)]) -> Vec<Output> {
    let intact: Vec<Output> = qs.iter().map(|q| who(db, q)).collect();
    for (q, o) in qs.iter().zip(&intact) {
        assert_eq!(o.status.code(), Some(0), "{q:?} answers on the intact file");
    }
    intact
}

#[test]
fn a_flipped_byte_in_the_who_index_is_damage_not_no_match() {
    let (_dir, db) = imported();
    let qs = questions(&db);
    let intact = intact_answers(&db, &qs);
    let (size, start) = root_page(&db, "states_who");
    flip(&db, start + size / 2);
    let reported = answers_after_damage(&db, &qs, &intact);
    assert_eq!(reported, qs.len(), "every question read the damaged page");
}

#[test]
fn a_flipped_byte_in_a_states_page_is_damage() {
    let (_dir, db) = imported();
    let qs = questions(&db);
    let intact = intact_answers(&db, &qs);
    let (size, start) = root_page(&db, "states");
    flip(&db, start + size / 2);
    let reported = answers_after_damage(&db, &qs, &intact);
    assert!(
        reported > 0,
        "the open lifetimes' rows are read from the page"
    );
}

#[test]
fn no_byte_of_the_who_index_page_gives_a_silent_answer() {
    let (dir, db) = imported();
    let qs = questions(&db);
    let intact = intact_answers(&db, &qs);
    let (size, start) = root_page(&db, "states_who");
    let pristine = std::fs::read(&db).expect("read db");
    let copy = dir.path().join("c.db").display().to_string();
    // 32 positions over the page: its header, cell pointers, free space, cells, and the
    // last bytes (where the checksum itself is kept).
    let positions: Vec<u64> = (0..31)
        .map(|i| i * size / 31 + i % 7)
        .chain([size - 1])
        .collect();
    for p in positions {
        std::fs::write(&copy, &pristine).expect("copy");
        flip(&copy, start + p);
        let reported = answers_after_damage(&copy, &qs, &intact);
        assert_eq!(
            reported,
            qs.len(),
            "byte {p} of the states_who page: damage not reported by every answer"
        );
    }
}
