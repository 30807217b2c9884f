//! `export --format sqlite` and the evidence manifest: the SQLite file reads back with
//! plain SQL (rusqlite alone) as the same rows `export` writes; every format's manifest
//! verifies with `verify-export`, and no longer does once one byte of the export changes.

mod common;

use common::{export_all, fixture, run, run_ok, sorted, who_shape};
use serde_json::{json, Value};
use std::path::Path;

fn imported(dir: &Path, name: &str) -> String {
    let db = dir.join(format!("{name}.db")).display().to_string();
    run_ok(&["import", "--db", &db, &fixture(name).display().to_string()]);
    db
}

fn export_to(db: &str, format: &str, out: &Path, manifest: &Path) {
    run_ok(&[
        "export",
        "--db",
        db,
        "--from",
        "@0",
        "--to",
        "@4000000000",
        "--format",
        format,
        "--manifest",
        &manifest.display().to_string(),
        &out.display().to_string(),
    ]);
}

/// A row of the SQLite export in the shape `export --format json` writes a lifetime.
fn export_row_shape(cols: &[String], r: &rusqlite::Row) -> Value {
    let mut o = serde_json::Map::new();
    for (i, c) in cols.iter().enumerate() {
        let v = match r.get_ref(i).expect("value") {
            rusqlite::types::ValueRef::Null => Value::Null,
            rusqlite::types::ValueRef::Integer(n) => json!(n),
            rusqlite::types::ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
            other => panic!("unexpected value {other:?} in column {c}"),
        };
        o.insert(c.clone(), v);
    }
    who_shape(&Value::Object(o))
}

#[test]
fn the_sqlite_export_reads_back_with_plain_sql_as_exports_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in [
        "all-features-l5-ether.pcap",
        "freebsd-1400-ha-ether.pcap",
        "ipv6-icmp-l5-dlt246ip.pcap",
    ] {
        let db = imported(dir.path(), name);
        let out = dir.path().join(format!("{name}.export.db"));
        export_to(
            &db,
            "sqlite",
            &out,
            &dir.path().join(format!("{name}.m.json")),
        );
        let lines: Vec<Value> = export_all(&db, "json")
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        let expected = lines[1..lines.len() - 1].to_vec();
        assert!(!expected.is_empty(), "{name}: nothing exported");
        let c =
            rusqlite::Connection::open_with_flags(&out, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .expect("plain SQLite opens it");
        let mut st = c.prepare("SELECT * FROM lifetimes").expect("lifetimes");
        let cols: Vec<String> = st.column_names().map(|s| s.to_string()).collect();
        let got: Vec<Value> = st
            .query_map([], |r| Ok(export_row_shape(&cols, r)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(sorted(got), sorted(expected), "{name}");
        // The side tables are there in readable form, and it says what it is.
        let creators: i64 = c
            .query_row(
                "SELECT count(*) FROM creators WHERE length(creator_id) = 8",
                [],
                |r| r.get(0),
            )
            .expect("creators");
        assert!(creators >= 1, "{name}: creators");
        let runs: i64 = c
            .query_row("SELECT count(*) FROM runs WHERE kind = 'import' AND first_packet LIKE '____-__-__T%Z'", [], |r| r.get(0))
            .expect("runs");
        assert_eq!(runs, 1, "{name}: runs");
        let from_db: String = c
            .query_row(
                "SELECT value FROM export_info WHERE key = 'database'",
                [],
                |r| r.get(0),
            )
            .expect("export_info");
        assert!(from_db.ends_with(&format!("{name}.db")), "{from_db}");
    }
}

#[test]
fn an_export_file_is_never_replaced_and_sqlite_needs_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = imported(dir.path(), "all-features-l5-ether.pcap");
    let out = dir.path().join("there.db");
    std::fs::write(&out, b"keep me").expect("write");
    for format in ["sqlite", "csv", "json"] {
        let o = run(&[
            "export",
            "--db",
            &db,
            "--from",
            "@0",
            "--to",
            "@4000000000",
            "--format",
            format,
            &out.display().to_string(),
        ]);
        assert_eq!(o.status.code(), Some(2), "{format}");
        assert_eq!(std::fs::read(&out).expect("read"), b"keep me");
    }
    let o = run(&[
        "export",
        "--db",
        &db,
        "--from",
        "@0",
        "--to",
        "@4000000000",
        "--format",
        "sqlite",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("OUT.db"));
}

#[test]
fn every_formats_manifest_verifies_and_fails_after_one_byte_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = imported(dir.path(), "all-features-l5-ether.pcap");
    let rows = {
        let j = export_all(&db, "json");
        let end: Value = serde_json::from_str(j.lines().last().expect("end")).expect("end");
        end["pfstatelog_export_end"]["rows"].as_u64().expect("rows")
    };
    let mut uuids = Vec::new();
    for format in ["csv", "json", "sqlite"] {
        let out = dir.path().join(format!("e.{format}"));
        let m = dir.path().join(format!("e.{format}.manifest.json"));
        export_to(&db, format, &out, &m);
        let man: Value =
            serde_json::from_str(&std::fs::read_to_string(&m).expect("manifest")).expect("json");
        assert_eq!(man["format"], json!(format));
        assert_eq!(man["rows"].as_u64(), Some(rows), "{format}");
        assert_eq!(man["range"]["from"], json!("1970-01-01T00:00:00.000000Z"));
        assert_eq!(man["pfstatelog"], json!(env!("CARGO_PKG_VERSION")));
        assert!(man["coverage"]["runs"]
            .as_array()
            .is_some_and(|r| r.len() == 1));
        let bytes = std::fs::read(&out).expect("read export");
        let sha: String = {
            use sha2::Digest;
            sha2::Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        assert_eq!(man["sha256"], json!(sha));
        assert_eq!(man["bytes"].as_u64(), Some(bytes.len() as u64));
        uuids.push(man["database"]["uuid"].clone());
        let verify = |file: &Path| {
            run(&[
                "verify-export",
                &file.display().to_string(),
                "--manifest",
                &m.display().to_string(),
            ])
        };
        let ok = verify(&out);
        assert_eq!(ok.status.code(), Some(0), "{format}: {ok:?}");
        // One byte changed, anywhere: in a row, or in SQLite's own pages.
        for at in [bytes.len() / 2, bytes.len() - 3] {
            let mut changed = bytes.clone();
            changed[at] ^= 0x01;
            let f = dir.path().join(format!("changed.{format}"));
            std::fs::write(&f, &changed).expect("write");
            let o = verify(&f);
            assert_eq!(o.status.code(), Some(1), "{format} byte {at}: {o:?}");
            assert!(String::from_utf8_lossy(&o.stdout).contains("DOES NOT MATCH"));
        }
        // A file cut short is no match either.
        let f = dir.path().join(format!("short.{format}"));
        std::fs::write(&f, &bytes[..bytes.len() / 2]).expect("write");
        assert_eq!(verify(&f).status.code(), Some(1), "{format}: truncated");
        // No such export, no manifest: errors, not answers.
        assert_eq!(verify(&dir.path().join("none")).status.code(), Some(2));
    }
    // One database, one UUID (a version-4 UUID).
    let u = uuids[0].as_str().expect("uuid").to_string();
    assert!(uuids.iter().all(|x| x == &json!(u)));
    let parsed = uuid::Uuid::parse_str(&u).expect("a UUID");
    assert_eq!(parsed.get_version_num(), 4);
    // Another database, another UUID.
    let other = imported(dir.path(), "freebsd-1400-ha-ether.pcap");
    let m = dir.path().join("other.json");
    export_to(&other, "csv", &dir.path().join("other.csv"), &m);
    let man: Value = serde_json::from_str(&std::fs::read_to_string(&m).expect("m")).expect("json");
    assert_ne!(man["database"]["uuid"], json!(u));
}

#[test]
fn standard_output_is_hashed_as_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = imported(dir.path(), "all-features-l5-ether.pcap");
    let m = dir.path().join("m.json");
    let out = run_ok(&[
        "export",
        "--db",
        &db,
        "--from",
        "@0",
        "--to",
        "@4000000000",
        "--format",
        "json",
        "--manifest",
        &m.display().to_string(),
    ]);
    let f = dir.path().join("saved.json");
    std::fs::write(&f, out.as_bytes()).expect("write");
    let o = run(&[
        "verify-export",
        &f.display().to_string(),
        "--manifest",
        &m.display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
}
