//! Importing the same capture twice, or overlapping pieces of it in any order, leaves the
//! database as after one import of the whole.

mod common;

use common::pfsync_capture as capture;
use pfstatelog::source::file::CaptureFile;
use pfstatelog::source::Frame;
use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pfstatelog")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn frames(p: &Path) -> Vec<Frame> {
    let mut c = CaptureFile::open(&p.display().to_string()).expect("open capture");
    let mut v = Vec::new();
    while let Some(f) = c.next_frame() {
        v.push(f.expect("frame"));
    }
    v
}

/// A classic little-endian microsecond pcap.
fn write_pcap(p: &Path, frames: &[Frame]) {
    let lt = frames.first().map(|f| f.linktype).unwrap_or(1);
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&65535u32.to_le_bytes());
    b.extend_from_slice(&lt.to_le_bytes());
    for f in frames {
        b.extend_from_slice(&((f.ts_us / 1_000_000) as u32).to_le_bytes());
        b.extend_from_slice(&((f.ts_us % 1_000_000) as u32).to_le_bytes());
        b.extend_from_slice(&(f.data.len() as u32).to_le_bytes());
        b.extend_from_slice(&f.orig_len.to_le_bytes());
        b.extend_from_slice(&f.data);
    }
    std::fs::write(p, b).expect("write pcap");
}

fn import(db: &Path, caps: &[&Path]) {
    let out = Command::new(bin())
        .arg("import")
        .arg("--db")
        .arg(db)
        .args(caps)
        .output()
        .expect("run import");
    assert!(
        out.status.success(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every lifetime, in a canonical order, without row ids.
fn dump(db: &Path) -> Vec<String> {
    let c = pfstatelog::store::sqlite::pagesum::open(db).expect("open db");
    pfstatelog::store::sqlite::unarchive_all(&c).expect("unarchive");
    let mut st = c
        .prepare(
            "SELECT creator_id, state_id, ifname, af, proto, direction,
                    hex(w_addr0), w_port0, hex(w_addr1), w_port1, w_rdomain,
                    hex(s_addr0), s_port0, hex(s_addr1), s_port1, s_rdomain, s_af, nat,
                    start_us, first_us, end_us, end_reason, last_us, updated_us, expire,
                    packets0, packets1, bytes0, bytes1, rule, flavor
             FROM states ORDER BY creator_id, state_id, start_us, end_us",
        )
        .expect("prepare");
    let n = st.column_count();
    let rows = st
        .query_map([], |r| {
            let mut s = String::new();
            for i in 0..n {
                let v: rusqlite::types::Value = r.get(i)?;
                s.push_str(&format!("{v:?}|"));
            }
            Ok(s)
        })
        .expect("query");
    rows.map(|r| r.expect("row")).collect()
}

/// Lifetimes held archived (packed) rather than one row each.
fn archived(db: &Path) -> i64 {
    pfstatelog::store::sqlite::pagesum::open(db)
        .and_then(|c| {
            c.query_row("SELECT coalesce(sum(n), 0) FROM archive_buckets", [], |r| {
                r.get(0)
            })
        })
        .expect("archived count")
}

/// Rows present on one side only, for a readable failure.
fn same(a: &[String], b: &[String], what: &str) {
    let only_a: Vec<_> = a.iter().filter(|r| !b.contains(r)).take(4).collect();
    let only_b: Vec<_> = b.iter().filter(|r| !a.contains(r)).take(4).collect();
    assert!(
        only_a.is_empty() && only_b.is_empty() && a.len() == b.len(),
        "{what}: {} vs {} rows\nonly in the first:\n{}\nonly in the second:\n{}",
        a.len(),
        b.len(),
        only_a
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        only_b
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn integrity(db: &Path) {
    let c = pfstatelog::store::sqlite::pagesum::open(db).expect("open db");
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(ok, "ok");
}

#[test]
fn importing_twice_equals_importing_once() {
    for name in [
        "all-features-l5-ether.pcap",
        "mixed-actions-l3-dlt246.pcapng",
        "freebsd-1400-ha-ether.pcap",
    ] {
        let tmp = tempfile::tempdir().expect("tmp");
        let once = tmp.path().join("once.db");
        let twice = tmp.path().join("twice.db");
        import(&once, &[&fixture(name)]);
        import(&twice, &[&fixture(name)]);
        import(&twice, &[&fixture(name)]);
        // The second import changes nothing, so what the first archived stays archived.
        let (archived_once, archived_twice) = (archived(&once), archived(&twice));
        assert!(archived_once > 100, "{name}: {archived_once} archived");
        assert_eq!(
            archived_once, archived_twice,
            "{name}: a re-import unarchived lifetimes"
        );
        let (a, b) = (dump(&once), dump(&twice));
        assert!(a.len() > 100, "{name}: too few rows ({})", a.len());
        same(
            &a,
            &b,
            &format!("{name}: a second import changed the database"),
        );
        let c = pfstatelog::store::sqlite::pagesum::open(&twice).expect("db");
        let runs: i64 = c
            .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
            .expect("runs");
        assert_eq!(runs, 1, "{name}: a re-import must reuse its run row");
        integrity(&twice);
    }
}

#[test]
fn overlapping_pieces_in_any_order_equal_the_whole() {
    for name in [
        "all-features-l5-ether.pcap",
        "ha-pair-clr-l5-ether.pcap",
        "bulk-transfer-l3-ether.pcap",
    ] {
        let tmp = tempfile::tempdir().expect("tmp");
        let all = frames(&fixture(name));
        let n = all.len();
        let first = tmp.path().join("first.pcap");
        let second = tmp.path().join("second.pcap");
        write_pcap(&first, &all[..n * 6 / 10]);
        write_pcap(&second, &all[n * 4 / 10..]);
        let whole = tmp.path().join("whole.db");
        import(&whole, &[&fixture(name)]);
        let forward = tmp.path().join("forward.db");
        import(&forward, &[&first, &second]);
        let backward = tmp.path().join("backward.db");
        import(&backward, &[&second, &first]);
        let w = dump(&whole);
        same(
            &w,
            &dump(&forward),
            &format!("{name}: first then second differs from the whole"),
        );
        same(
            &w,
            &dump(&backward),
            &format!("{name}: second then first differs from the whole"),
        );
        integrity(&backward);
    }
}

/// Every frame of `capture` through the recorder's pipeline as a run of `kind`, flushed
/// after every `flush_every` frames (small batches split lifetimes across flushes).
fn ingest_as(db: &Path, capture: &Path, kind: &'static str, flush_every: usize) {
    use pfstatelog::ingest::Ingest;
    use pfstatelog::store::sqlite::writer::RunInfo;
    let log = pfstatelog::syslog::Logger::console_only(false);
    let run = RunInfo {
        kind,
        source: capture.display().to_string(),
        fingerprint: None,
        started_wall: 0,
    };
    let db_s = db.display().to_string();
    let mut ing = Ingest::open(&db_s, &run, &log).expect("open");
    for (i, f) in frames(capture).iter().enumerate() {
        ing.frame(f).expect("frame");
        if i % flush_every == 0 {
            ing.flush_now().expect("flush");
        }
    }
    ing.finish("stopped").expect("finish");
}

#[test]
fn lifetimes_held_until_their_end_equal_the_merged_rows() {
    // An import keeps new lifetimes in memory until they end and writes each once, whole;
    // the recorder writes them at the next flush and merges every later message into the
    // row (flushed after every frame, almost every message takes that path). All must leave
    // the same rows, for every capture: CLRs, duplicates, orphans, HA pairs, FreeBSD,
    // hostile input.
    for entry in std::fs::read_dir(fixture("")).expect("fixtures") {
        let p = entry.expect("entry").path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if !(name.ends_with(".pcap") || name.ends_with(".pcapng")) {
            continue;
        }
        let tmp = tempfile::tempdir().expect("tmp");
        let held = tmp.path().join("held.db");
        let batched = tmp.path().join("batched.db");
        let merged = tmp.path().join("merged.db");
        ingest_as(&held, &p, "import", 7);
        ingest_as(&batched, &p, "record", 7);
        ingest_as(&merged, &p, "record", 1);
        let h = dump(&held);
        assert!(!h.is_empty(), "{name}: no rows");
        same(&h, &dump(&batched), &format!("{name}: held vs batched"));
        same(&h, &dump(&merged), &format!("{name}: held vs merged"));
    }
}

/// `import`'s summary line.
fn import_summary(db: &Path, cap: &Path) -> String {
    let out = Command::new(bin())
        .arg("import")
        .arg("--db")
        .arg(db)
        .arg(cap)
        .output()
        .expect("run import");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "import: {err}");
    err
}

/// The number after `words` in a summary line.
fn number_after(summary: &str, words: &str) -> u64 {
    let at = summary
        .find(words)
        .unwrap_or_else(|| panic!("no {words:?} in {summary}"))
        + words.len();
    summary[at..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {words:?} in {summary}"))
}

#[test]
fn a_later_capture_ends_and_clears_the_states_an_earlier_one_left_open() {
    // An import reads a stored open lifetime only when a message names it (or a CLR of its
    // creator comes), so the second half of a capture, imported on its own, must still end,
    // touch and clear what the first half left open, and count it as open until then.
    let mut cleared_later = 0;
    for name in [
        "all-features-l5-ether.pcap",
        "ha-pair-clr-l5-ether.pcap",
        "bulk-transfer-l3-ether.pcap",
    ] {
        let tmp = tempfile::tempdir().expect("tmp");
        let whole = tmp.path().join("whole.db");
        let w = import_summary(&whole, &fixture(name));
        let all = frames(&fixture(name));
        let n = all.len();
        for cut in [n / 4, n / 2, n * 3 / 4] {
            let first = tmp.path().join(format!("first-{cut}.pcap"));
            let second = tmp.path().join(format!("second-{cut}.pcap"));
            write_pcap(&first, &all[..cut]);
            write_pcap(&second, &all[cut..]);
            let db = tmp.path().join(format!("halves-{cut}.db"));
            let a = import_summary(&db, &first);
            let b = import_summary(&db, &second);
            let what = format!("{name} cut at frame {cut} of {n}");
            assert!(
                number_after(&a, "open now") > 0,
                "{what}: the first part leaves nothing open: {a}"
            );
            assert_eq!(
                cleared(&a) + cleared(&b),
                cleared(&w),
                "{what}: a CLR missed states the first part left open\n{a}\n{b}\n{w}"
            );
            cleared_later += cleared(&b);
            assert_eq!(
                number_after(&a, "unknown-state messages")
                    + number_after(&b, "unknown-state messages"),
                number_after(&w, "unknown-state messages"),
                "{what}: messages about states the first part left open were taken as unknown\n{a}\n{b}"
            );
            assert_eq!(
                number_after(&b, "open now"),
                number_after(&w, "open now"),
                "{what}\n{b}\n{w}"
            );
            same(
                &dump(&whole),
                &dump(&db),
                &format!("{what}: the halves differ from the whole"),
            );
        }
    }
    assert!(
        cleared_later > 0,
        "no second part cleared a state: the CLR case went untested"
    );
}

/// "closed N (K by CLR)": K.
fn cleared(summary: &str) -> u64 {
    let at = summary
        .find(" by CLR")
        .unwrap_or_else(|| panic!("no CLR count in {summary}"));
    summary[..at]
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no CLR count in {summary}"))
}

/// A NAT state of creator 5a3c1e07 (pfctl's text, parsed as pfsync would carry it).
fn nat_state(id: u64, port: u16, creation: u32) -> pfstatelog::model::FullState {
    let text = format!(
        "all tcp 203.0.113.1:{port} (192.168.1.10:{port}) -> 93.184.216.34:443       ESTABLISHED:ESTABLISHED
   age 00:00:00, expires in 23:59:58, 1:1 pkts, 10:20 bytes, rule 3
   id: {id:016x} creatorid: 5a3c1e07
"
    );
    let (s, e) = pfstatelog::pfctl::parse_str(&text);
    assert!(e.is_empty(), "{e:?}");
    let mut s = s[0].clone();
    s.creation = creation;
    s
}

#[test]
fn an_older_capture_into_a_newer_file_stores_what_it_stores_alone() {
    // Ids below the file's highest are not new: the writer looks for them in the store,
    // and holds in memory those it lacks. A state deleted and then announced again (an INS
    // one second after its DEL_C, for the same start) is one lifetime, as it is when the
    // capture is imported alone; so are UPD_C and DEL_C of the older states.
    use pfstatelog::model::StateRef;
    use pfstatelog::wire::Message;
    let del = |id: u64| {
        Message::DelC(StateRef {
            id,
            creator_id: 0x5a3c_1e07,
        })
    };
    let t0 = 1_767_225_600; // 2026-01-01
    let old_ids = |i: u64| 0x3f00_0000_0100 + i;
    let mut older = Vec::new();
    for i in 0..20u64 {
        older.push((
            t0 + i as i64,
            vec![Message::Ins(nat_state(old_ids(i), 40_000 + i as u16, 0))],
        ));
        older.push((t0 + 30 + i as i64, vec![del(old_ids(i))]));
    }
    // State 3 again after its end: same start (creation 31 s at t0 + 34).
    older.push((
        t0 + 34,
        vec![Message::Ins(nat_state(old_ids(3), 40_003, 31))],
    ));
    older.push((t0 + 36, vec![del(old_ids(3))]));
    older.sort_by_key(|(t, _)| *t);
    let mut newer = Vec::new();
    for i in 0..20u64 {
        let t = t0 + 30 * 86_400 + i as i64;
        newer.push((
            t,
            vec![Message::Ins(nat_state(
                0x4000_0000_0000 + i,
                50_000 + i as u16,
                0,
            ))],
        ));
        newer.push((t + 30, vec![del(0x4000_0000_0000 + i)]));
    }
    newer.sort_by_key(|(t, _)| *t);
    let tmp = tempfile::tempdir().expect("tmp");
    let (older_cap, newer_cap) = (tmp.path().join("older.pcap"), tmp.path().join("newer.pcap"));
    capture(&older_cap, &older);
    capture(&newer_cap, &newer);
    let (alone, newer_only, both) = (
        tmp.path().join("alone.db"),
        tmp.path().join("newer.db"),
        tmp.path().join("both.db"),
    );
    import(&alone, &[&older_cap]);
    import(&newer_only, &[&newer_cap]);
    import(&both, &[&newer_cap]);
    let summary = import_summary(&both, &older_cap);
    assert_eq!(number_after(&summary, "closed"), 21, "{summary}");
    let mut expected = dump(&alone);
    assert_eq!(expected.len(), 20, "state 3 is one lifetime: {expected:#?}");
    expected.extend(dump(&newer_only));
    expected.sort();
    let mut got = dump(&both);
    got.sort();
    same(&expected, &got, "older capture after a newer one");
    integrity(&both);
}
