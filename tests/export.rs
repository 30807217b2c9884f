//! `pfstatelog export`: a header naming the database and the coverage, every lifetime that
//! overlaps the range in the row format of `who`/`history`, an end marker; empty ranges work.

mod common;

use common::{fixture, run, run_ok};
use pfstatelog::report::table::CSV_FIELDS;
use serde_json::Value;
use std::collections::BTreeSet;

/// A database with one fixture imported, and the fixture's time span.
fn imported(name: &str) -> (tempfile::TempDir, String, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("e.db").display().to_string();
    run_ok(&["import", "--db", &db, &fixture(name).display().to_string()]);
    let s: Value = serde_json::from_str(&run_ok(&["stats", "--db", &db, "--json"])).expect("stats");
    let first = s["first_start"].as_str().expect("first_start").to_string();
    let last = s["last_seen"].as_str().expect("last_seen").to_string();
    (dir, db, first, last)
}

fn export(db: &str, from: &str, to: &str, format: &str) -> String {
    run_ok(&[
        "export", "--db", db, "--from", from, "--to", to, "--format", format,
    ])
}

/// JSON lines: (header, rows, end).
fn json_parts(out: &str) -> (Value, Vec<Value>, Value) {
    let mut lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let end = lines.pop().expect("end line");
    let header = lines.remove(0);
    (
        header["pfstatelog_export"].clone(),
        lines,
        end["pfstatelog_export_end"].clone(),
    )
}

/// What `history` answers for every address over the range, as a set of JSON texts.
fn history_all(db: &str, from: &str, to: &str) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for host in ["0.0.0.0/0", "::/0"] {
        let o = run(&[
            "history", "--db", db, "--host", host, "--from", from, "--to", to, "--format", "json",
        ]);
        assert!(o.status.code() == Some(0) || o.status.code() == Some(1));
        let v: Value = serde_json::from_slice(&o.stdout).expect("history json");
        for r in v.as_array().expect("array") {
            set.insert(r.to_string());
        }
    }
    set
}

#[test]
fn json_export_has_header_every_row_and_end() {
    let (_d, db, first, last) = imported("all-features-l5-ether.pcap");
    let out = export(&db, &first, &last, "json");
    let (h, rows, end) = json_parts(&out);
    let canon = std::fs::canonicalize(&db).expect("canonical");
    assert_eq!(h["database"], canon.display().to_string());
    assert_eq!(
        h["schema_version"],
        pfstatelog::store::sqlite::SCHEMA_VERSION
    );
    assert_eq!(h["from"], first.as_str());
    assert_eq!(h["to"], last.as_str());
    assert!(h["coverage"]["runs"]
        .as_array()
        .is_some_and(|r| !r.is_empty()));
    assert!(h["coverage"]["complete"].is_boolean());
    assert_eq!(end["rows"], rows.len());
    assert!(rows.len() > 100, "{}", rows.len());
    // The same objects `history` prints (same formatting code), and the same selection.
    let got: BTreeSet<String> = rows.iter().map(|r| r.to_string()).collect();
    assert_eq!(got.len(), rows.len(), "a row exported twice");
    assert_eq!(got, history_all(&db, &first, &last));
}

#[test]
fn csv_export_has_comment_header_fields_rows_and_end() {
    let (_d, db, first, last) = imported("nat-outbound-l3-dlt246.pcap");
    let out = export(&db, &first, &last, "csv");
    let comments: Vec<&str> = out.lines().filter(|l| l.starts_with('#')).collect();
    let canon = std::fs::canonicalize(&db).expect("canonical");
    assert!(comments[0].starts_with("# pfstatelog export"));
    let header = format!(
        "# database: {} (schema {})",
        canon.display(),
        pfstatelog::store::sqlite::SCHEMA_VERSION
    );
    assert!(comments.contains(&header.as_str()));
    assert!(comments.contains(&format!("# from: {first}").as_str()));
    assert!(comments.contains(&format!("# to: {last}").as_str()));
    assert!(comments.iter().any(|l| l.starts_with("# coverage: ")));
    assert!(comments.iter().any(|l| l.starts_with("# coverage-json: {")));
    // Comments first, then the header line, the rows, and the end line.
    let first_data = out.lines().position(|l| !l.starts_with('#')).expect("data");
    assert!(out.lines().take(first_data).all(|l| l.starts_with('#')));
    let mut r = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_reader(out.as_bytes());
    let header: Vec<String> = r
        .headers()
        .expect("header")
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(header, CSV_FIELDS);
    let recs: Vec<csv::StringRecord> = r.records().map(|x| x.expect("record")).collect();
    assert!(!recs.is_empty());
    assert!(out
        .trim_end()
        .ends_with(&format!("# end: {} rows", recs.len())));
    // Same rows as the JSON export.
    let (_, rows, _) = json_parts(&export(&db, &first, &last, "json"));
    assert_eq!(rows.len(), recs.len());
    let ids: BTreeSet<(String, String)> = recs
        .iter()
        .map(|r| (r[14].to_string(), r[13].to_string()))
        .collect();
    let jids: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["creator_id"].as_str().unwrap_or_default().to_string(),
                r["state_id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(ids, jids);
}

#[test]
fn a_partial_range_selects_overlapping_lifetimes_only() {
    let (_d, db, first, last) = imported("all-features-l5-ether.pcap");
    let (_, all, _) = json_parts(&export(&db, &first, &last, "json"));
    let (_, one, end) = json_parts(&export(&db, &first, &first, "json"));
    assert_eq!(end["rows"], one.len());
    assert!(!one.is_empty() && one.len() < all.len());
    for r in &one {
        assert!(r["start"].as_str().unwrap_or_default() <= first.as_str());
        if let Some(e) = r["end"].as_str() {
            assert!(e >= first.as_str());
        }
    }
}

#[test]
fn empty_range_still_says_what_it_is() {
    let (_d, db, _, _) = imported("nat-outbound-l3-dlt246.pcap");
    let out = export(&db, "1999-01-01T00:00:00Z", "1999-01-02T00:00:00Z", "json");
    let (h, rows, end) = json_parts(&out);
    assert!(rows.is_empty());
    assert_eq!(end["rows"], 0);
    assert_eq!(h["coverage"]["complete"], false);
    assert_eq!(
        h["coverage"]["uncovered"][0]["from"],
        "1999-01-01T00:00:00.000000Z"
    );
    let o = run(&[
        "export",
        "--db",
        &db,
        "--from",
        "1999-01-01T00:00:00Z",
        "--to",
        "1999-01-02T00:00:00Z",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let csv = String::from_utf8_lossy(&o.stdout);
    assert!(csv.contains("# coverage: INCOMPLETE"), "{csv}");
    assert!(csv.contains("# uncovered: 1999-01-01T00:00:00.000000Z .. 1999-01-02T00:00:00.000000Z"));
    assert!(csv.lines().any(|l| l == CSV_FIELDS.join(",")));
    assert!(csv.trim_end().ends_with("# end: 0 rows"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no recorder was watching"));
}

#[test]
fn bad_ranges_and_missing_databases_are_errors() {
    let (_d, db, _, _) = imported("nat-outbound-l3-dlt246.pcap");
    let o = run(&["export", "--db", &db, "--from", "@100", "--to", "@50"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--from is after --to"));
    let o = run(&["export", "--db", &db, "--from", "yesterday", "--to", "@50"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--from"));
    let o = run(&[
        "export",
        "--db",
        "/nonexistent/x.db",
        "--from",
        "@0",
        "--to",
        "@50",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no such database"));
}

/// Peak resident memory (KiB) of `pfstatelog ARGS`, its output thrown away: the child's
/// own VmHWM, sampled until it exits (wait4's ru_maxrss would include the test process's
/// memory at fork, which Linux carries across exec).
#[cfg(target_os = "linux")]
fn max_rss_kib(args: &[&str]) -> u64 {
    let mut child = std::process::Command::new(common::bin())
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn export");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            if let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kb);
            }
        }
        if let Some(st) = child.try_wait().expect("try_wait") {
            assert!(st.success(), "export failed: {st}");
            return peak;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Streamed: exporting 100 times the rows takes no more memory.
#[cfg(target_os = "linux")]
#[test]
fn export_memory_does_not_grow_with_rows() {
    use pfstatelog_bench::gen::{DbBuilder, GenConfig};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rss = Vec::new();
    for (name, states) in [("small.db", 2_000u64), ("large.db", 200_000)] {
        let db = dir.path().join(name).display().to_string();
        let cfg = GenConfig {
            states,
            ..GenConfig::default()
        };
        DbBuilder::build(&cfg, &db, &mut |_, _| {}).expect("build database");
        let all = ["--from", "@0", "--to", "@4000000000"];
        let mut json = vec!["export", "--db", &db, "--format", "json"];
        json.extend_from_slice(&all);
        let mut csv = vec!["export", "--db", &db, "--format", "csv"];
        csv.extend_from_slice(&all);
        rss.push((max_rss_kib(&json), max_rss_kib(&csv)));
    }
    let (small, large) = (rss[0], rss[1]);
    eprintln!("peak RSS (json, csv) KiB: 2k rows {small:?}, 200k rows {large:?}");
    assert!(
        large.0 < small.0 + 8 * 1024 && large.1 < small.1 + 8 * 1024,
        "peak RSS grew with the rows: small {small:?} KiB, large {large:?} KiB"
    );
}
