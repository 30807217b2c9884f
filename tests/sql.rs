//! `pfstatelog sql`: the `lifetimes` table holds what `export` holds, a public ip:port and a
//! time answer exactly what `who` answers (through who's own read), a private host what
//! `history` answers, and nothing can be written.

mod common;

use common::{export_all, fixture, run, run_ok, sorted, who_shape};
use serde_json::{json, Value};
use std::path::PathBuf;

/// Every capture of tests/fixtures.
fn captures() -> Vec<PathBuf> {
    let dir = fixture("");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    v.sort();
    v
}

fn imported(dir: &tempfile::TempDir, cap: &std::path::Path) -> String {
    let stem = cap.file_stem().and_then(|s| s.to_str()).unwrap_or("x");
    let db = dir.path().join(format!("{stem}.db")).display().to_string();
    run_ok(&["import", "--db", &db, &cap.display().to_string()]);
    db
}

fn sql_json(db: &str, q: &str) -> Vec<Value> {
    let out = run_ok(&["sql", "--db", db, "--format", "json", q]);
    serde_json::from_str(&out).expect("sql --format json prints one JSON array")
}

#[test]
fn lifetimes_holds_what_export_holds_on_every_fixture() {
    let caps = captures();
    assert!(caps.len() >= 13, "fixtures missing: {}", caps.len());
    let dir = tempfile::tempdir().expect("tempdir");
    for cap in caps {
        let db = imported(&dir, &cap);
        let exported: Vec<Value> = export_all(&db, "json")
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        let rows: Vec<Value> = exported[1..exported.len() - 1].to_vec();
        let n = exported[exported.len() - 1]["pfstatelog_export_end"]["rows"]
            .as_u64()
            .expect("end rows");
        assert_eq!(rows.len() as u64, n);
        let count = sql_json(&db, "SELECT count(*) AS n FROM lifetimes");
        assert_eq!(
            count[0]["n"].as_u64(),
            Some(n),
            "{}: sql count vs export",
            cap.display()
        );
        let all = sql_json(&db, "SELECT * FROM lifetimes");
        assert_eq!(
            sorted(all.iter().map(who_shape)),
            sorted(rows),
            "{}: rows differ from export's",
            cap.display()
        );
        // start_us and end_us are the integer form of start and end.
        for r in &all {
            let start = chrono::DateTime::parse_from_rfc3339(r["start"].as_str().expect("start"))
                .expect("RFC 3339");
            assert_eq!(r["start_us"].as_i64(), Some(start.timestamp_micros()));
            assert_eq!(r["end"].is_null(), r["end_us"].is_null());
        }
    }
}

#[test]
fn a_public_pair_and_a_time_give_exactly_whos_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut asked = 0;
    let mut nonempty = 0;
    for cap in captures() {
        let exp = cap.with_extension("expected.json");
        let Ok(text) = std::fs::read_to_string(&exp) else {
            continue;
        };
        let doc: Value = serde_json::from_str(&text).expect("expected.json");
        let db = imported(&dir, &cap);
        for q in doc["queries"].as_array().into_iter().flatten() {
            let (ip, port, at) = (
                q["ip"].as_str().expect("ip"),
                q["port"].as_u64().expect("port"),
                q["at"].as_str().expect("at"),
            );
            let w = q["window_s"].as_i64().unwrap_or(0);
            let who = run(&[
                "who",
                "--db",
                &db,
                "--ip",
                ip,
                "--port",
                &port.to_string(),
                "--at",
                at,
                "--window",
                &w.to_string(),
                "--format",
                "json",
            ]);
            assert!(matches!(who.status.code(), Some(0 | 1)), "who failed");
            let who: Vec<Value> = serde_json::from_slice(&who.stdout).expect("who json");
            let ipn: std::net::IpAddr = ip.parse().expect("ip");
            let q = format!(
                "SELECT * FROM lifetimes WHERE public_ip = '{ipn}' AND public_port = {port}
                   AND start_us <= us('{at}') + {w} * 1000000
                   AND (end_us >= us('{at}') - {w} * 1000000 OR end_us IS NULL)"
            );
            let got = sql_json(&db, &q);
            assert_eq!(
                sorted(got.iter().map(who_shape)),
                sorted(who.clone()),
                "{}: {q}",
                cap.display()
            );
            asked += 1;
            nonempty += usize::from(!who.is_empty());
            // until_us says the same in one column, and both are who's read.
            let q2 = format!(
                "SELECT * FROM lifetimes WHERE public_ip = '{ipn}' AND public_port = {port}
                   AND start_us <= us('{at}') + {w} * 1000000
                   AND until_us >= us('{at}') - {w} * 1000000"
            );
            assert_eq!(sorted(sql_json(&db, &q2)), sorted(got.clone()), "{q2}");
            let plan = run_ok(&[
                "sql",
                "--db",
                &db,
                "--format",
                "csv",
                &format!("EXPLAIN QUERY PLAN {q2}"),
            ]);
            assert!(
                plan.contains("INDEX 1:IPUL"),
                "not who's read with both bounds: {plan}"
            );
            // And it is who's read, not a scan filtered afterwards.
            let plan = run_ok(&[
                "sql",
                "--db",
                &db,
                "--format",
                "csv",
                &format!("EXPLAIN QUERY PLAN {q}"),
            ]);
            assert!(plan.contains("INDEX 1:"), "not who's read: {plan}");
        }
    }
    assert!(
        asked > 20 && nonempty > 10,
        "{asked} queries, {nonempty} answered"
    );
}

#[test]
fn a_private_host_gives_historys_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = imported(&dir, &fixture("all-features-l5-ether.pcap"));
    let hosts = sql_json(
        &db,
        "SELECT private_ip, count(*) AS n FROM lifetimes GROUP BY private_ip ORDER BY n DESC LIMIT 3",
    );
    assert_eq!(hosts.len(), 3);
    for h in hosts {
        let host = h["private_ip"].as_str().expect("host");
        let hist: Vec<Value> = serde_json::from_str(&run_ok(&[
            "history", "--db", &db, "--host", host, "--format", "json",
        ]))
        .expect("history json");
        let got = sql_json(
            &db,
            &format!("SELECT * FROM lifetimes WHERE private_ip = '{host}'"),
        );
        assert_eq!(h["n"].as_u64(), Some(hist.len() as u64));
        assert_eq!(sorted(got.iter().map(who_shape)), sorted(hist));
    }
}

#[test]
fn writes_are_refused_and_the_file_is_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = imported(&dir, &fixture("all-features-l5-ether.pcap"));
    let before = std::fs::read(&db).expect("read db");
    for q in [
        "DELETE FROM lifetimes",
        "UPDATE runs SET status = 'stopped'",
        "INSERT INTO gaps (id) VALUES (1000)",
        "CREATE TABLE notes (x)",
        "DROP TABLE creators",
        "ATTACH 'other.db' AS o",
        "PRAGMA query_only = 0",
        "SELECT 1; DELETE FROM runs",
    ] {
        let o = run(&["sql", "--db", &db, q]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{q}: {err}");
        assert_eq!(err.lines().count(), 1, "{q}: {err}");
        assert!(err.contains("read-only"), "{q}: {err}");
    }
    assert!(
        before == std::fs::read(&db).expect("read db"),
        "database changed"
    );
    let rows = sql_json(&db, "SELECT count(*) AS n FROM runs");
    assert_eq!(rows[0]["n"], json!(1));
    // Temp tables are the analyst's own: a list of complaints joined with the lifetimes.
    let joined = sql_json(
        &db,
        "CREATE TEMP TABLE complaints (ip TEXT, port INTEGER, at TEXT);
         INSERT INTO complaints VALUES ('203.0.113.20', 50017, '2025-03-14T08:06:09Z');
         SELECT l.private_ip FROM complaints c JOIN lifetimes l
           ON l.public_ip = c.ip AND l.public_port = c.port
          AND l.start_us <= us(c.at) AND (l.end_us >= us(c.at) OR l.end_us IS NULL)",
    );
    assert_eq!(joined, vec![json!({"private_ip": "192.168.2.17"})]);
}

#[test]
fn a_query_from_stdin_and_a_csv_file_joined() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = imported(&dir, &fixture("all-features-l5-ether.pcap"));
    let csv = dir.path().join("complaints.csv");
    std::fs::write(
        &csv,
        "ip,port,at\n203.0.113.20,50017,2025-03-14T08:06:09Z\n",
    )
    .expect("csv");
    let q = format!(
        "CREATE VIRTUAL TABLE temp.c USING csv(filename='{}', header=yes);
         SELECT l.private_ip, l.private_port FROM c JOIN lifetimes l
           ON l.public_ip = c.ip AND l.public_port = CAST(c.port AS INTEGER)
          AND l.start_us <= us(c.at) AND (l.end_us >= us(c.at) OR l.end_us IS NULL);",
        csv.display()
    );
    let mut child = std::process::Command::new(common::bin())
        .args(["sql", "--db", &db, "--format", "csv", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(q.as_bytes())
        .expect("write query");
    let o = child.wait_with_output().expect("wait");
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "private_ip,private_port\n192.168.2.17,47952\n"
    );
}

/// Every lifetime's rowid, sorted, as one query reads them.
fn rowids(db: &str, q: &str) -> Vec<i64> {
    let mut v: Vec<i64> = sql_json(db, q)
        .iter()
        .map(|r| r["r"].as_i64().expect("rowid"))
        .collect();
    v.sort_unstable();
    v
}

/// The rows of `states` with a start, and the archived groups, as plain SQLite reads them.
fn places(db: &str) -> (i64, i64) {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open");
    let n = |q: &str| c.query_row(q, [], |r| r.get::<_, i64>(0)).expect(q);
    (
        n("SELECT count(*) FROM states WHERE start_us IS NOT NULL"),
        n("SELECT count(*) FROM archive"),
    )
}

#[test]
fn a_count_reads_no_row_yet_gives_exports_count_and_the_rowids_of_the_rows() {
    // `count(*)` and a bare `rowid` name no column: the table counts rows instead of
    // building them, and builds them only when the rowid is asked.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut both = 0;
    for cap in captures() {
        let db = imported(&dir, &cap);
        let (hot, packed) = places(&db);
        both += usize::from(hot > 0 && packed > 0);
        let end = export_all(&db, "json");
        let n = serde_json::from_str::<Value>(end.lines().last().expect("end line")).expect("JSON")
            ["pfstatelog_export_end"]["rows"]
            .as_u64()
            .expect("rows");
        let count = sql_json(&db, "SELECT count(*) AS n FROM lifetimes");
        assert_eq!(count[0]["n"].as_u64(), Some(n), "{}", cap.display());
        // Twice through the table in one statement: each scan counts all.
        let twice = sql_json(
            &db,
            "SELECT count(*) AS n FROM lifetimes, (SELECT 1 UNION ALL SELECT 2)",
        );
        assert_eq!(twice[0]["n"].as_u64(), Some(2 * n), "{}", cap.display());
        let bare = rowids(&db, "SELECT rowid AS r FROM lifetimes");
        let full = rowids(&db, "SELECT rowid AS r, proto FROM lifetimes");
        assert_eq!(bare.len() as u64, n, "{}", cap.display());
        assert_eq!(bare, full, "{}: rowids", cap.display());
    }
    assert!(
        both > 0,
        "no fixture has lifetimes both in states and archived"
    );
}

#[test]
fn a_count_in_a_file_without_page_checksums_is_exports_count() {
    // A file of an older version keeps no checksum in its pages: there the count reads
    // every row of `states` through the store's decoder.
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = captures()
        .into_iter()
        .max_by_key(|c| std::fs::metadata(c).map(|m| m.len()).unwrap_or(0))
        .expect("a capture");
    let db = imported(&dir, &cap);
    let old = dir.path().join("old.db").display().to_string();
    copy_without_reserve(&db, &old);
    let header = std::fs::read(&old).expect("read copy");
    assert_eq!(header[20], 0, "the copy still reserves bytes per page");
    let (hot, _) = places(&old);
    assert!(hot > 0, "no row of states to count");
    let end = export_all(&old, "json");
    let n = serde_json::from_str::<Value>(end.lines().last().expect("end line")).expect("JSON")
        ["pfstatelog_export_end"]["rows"]
        .as_u64()
        .expect("rows");
    let count = sql_json(&old, "SELECT count(*) AS n FROM lifetimes");
    assert_eq!(count[0]["n"].as_u64(), Some(n));
}

/// A copy of the database `src` at `dst` written by plain SQLite with no byte reserved per
/// page (VACUUM would keep the reserve): tables, rows, indexes and version pragmas.
fn copy_without_reserve(src: &str, dst: &str) {
    let c = rusqlite::Connection::open(dst).expect("create copy");
    c.execute("ATTACH ?1 AS src", [src]).expect("attach");
    let schema: Vec<(String, String, String)> = {
        let mut st = c
            .prepare(
                "SELECT type, name, sql FROM src.sqlite_schema
                  WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'
                  ORDER BY type = 'index', rowid",
            )
            .expect("schema");
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("schema rows");
        rows.map(|r| r.expect("schema row")).collect()
    };
    let tx = c.unchecked_transaction().expect("tx");
    for (ty, name, sql) in &schema {
        tx.execute_batch(sql).expect(sql);
        if ty == "table" {
            // Generated columns (hidden 2 or 3) are computed, not copied.
            let cols: Vec<String> = {
                let mut st = tx
                    .prepare(&format!("PRAGMA src.table_xinfo(\"{name}\")"))
                    .expect("xinfo");
                let rows = st
                    .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, i64>(6)?)))
                    .expect("xinfo rows");
                rows.map(|r| r.expect("column"))
                    .filter(|(_, hidden)| *hidden < 2)
                    .map(|(n, _)| format!("\"{n}\""))
                    .collect()
            };
            let cols = cols.join(", ");
            tx.execute_batch(&format!(
                "INSERT INTO main.\"{name}\" ({cols}) SELECT {cols} FROM src.\"{name}\""
            ))
            .expect(name);
        }
    }
    tx.commit().expect("commit");
    for p in ["user_version", "application_id"] {
        let v: i64 = c
            .query_row(&format!("PRAGMA src.{p}"), [], |r| r.get(0))
            .expect(p);
        c.execute_batch(&format!("PRAGMA main.{p} = {v}")).expect(p);
    }
    c.execute_batch("DETACH src").expect("detach");
}
