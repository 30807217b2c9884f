//! Inclusion proofs in an export, through the binary (docs/integrity.md, "Proofs in an
//! export"): `export --proof` gives each lifetime of a closed day its audit path and lists
//! the day roots in the manifest; `verify-export --proof` checks them with no database, and
//! catches a changed field the file's digest alone no longer would.
//!
//! 2025-03-14 is closed by importing the 2025-05-20 capture after its fixture (imports
//! close days by the newest message time stored); 2025-05-20 stays open.

mod common;

use common::{fixture, run};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;

const FROM: &str = "2025-03-14T00:00:00Z";
const TO: &str = "2025-05-21T00:00:00Z";

/// A database with 2025-03-14 closed for both its creators, and the root lines printed.
fn closed_db(dir: &Path) -> (String, Vec<String>) {
    let db = dir.join("t.db").display().to_string();
    let mut roots = Vec::new();
    for f in ["all-features-l5-ether.pcap", "freebsd-1301-nat-dlt246.pcap"] {
        let o = run(&["import", "--db", &db, &fixture(f).display().to_string()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        roots.extend(
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .filter(|l| l.starts_with("digest creator="))
                .map(String::from),
        );
    }
    assert_eq!(roots.len(), 2, "{roots:?}");
    (db, roots)
}

/// `export --proof` of [FROM, TO] into `dir`: (exit code, stderr, file, manifest).
fn export(
    dir: &Path,
    db: &str,
    name: &str,
) -> (i32, String, std::path::PathBuf, std::path::PathBuf) {
    let (file, manifest) = (
        dir.join(format!("{name}.json")),
        dir.join(format!("{name}.manifest")),
    );
    let o = run(&[
        "export",
        "--db",
        db,
        "--from",
        FROM,
        "--to",
        TO,
        "--format",
        "json",
        "--proof",
        "--manifest",
        &manifest.display().to_string(),
        &file.display().to_string(),
    ]);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        file,
        manifest,
    )
}

fn verify_export(file: &Path, manifest: &Path, extra: &[&str]) -> (i32, String) {
    let f = file.display().to_string();
    let m = manifest.display().to_string();
    let o = run(&[&["verify-export", &f, "--manifest", &m], extra].concat());
    (
        o.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn rows(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .expect("read")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json"))
        .filter(|v| v.get("state_id").is_some())
        .collect()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json")
}

#[test]
fn an_excerpt_with_proofs_verifies_without_the_database_and_open_days_are_counted() {
    let dir = tempfile::tempdir().expect("tmp");
    let (db, published) = closed_db(dir.path());
    let (code, err, file, manifest) = export(dir.path(), &db, "x");
    assert_eq!(code, 0, "{err}");
    // The manifest lists the roots the import published, as published.
    let m = json(&manifest);
    let listed: Vec<String> = m["proof"]["roots"]
        .as_array()
        .expect("roots")
        .iter()
        .map(|r| {
            format!(
                "digest creator={} day={} lifetimes={} root={} version={}",
                r["creator"].as_str().unwrap(),
                r["day"].as_str().unwrap(),
                r["lifetimes"],
                r["root"].as_str().unwrap(),
                r["version"]
            )
        })
        .collect();
    let mut want = published.clone();
    want.sort();
    assert_eq!(listed, want);
    // Every row of the closed day has a proof; the rows of the open day have none, and the
    // manifest counts them.
    let rows = rows(&file);
    let open: Vec<&Value> = rows
        .iter()
        .filter(|r| !r["start"].as_str().unwrap().starts_with("2025-03-14"))
        .collect();
    assert!(!open.is_empty() && open.len() < rows.len());
    assert!(open.iter().all(|r| r["proof"].is_null()));
    for r in rows
        .iter()
        .filter(|r| r["start"].as_str().unwrap().starts_with("2025-03-14"))
    {
        let p = &r["proof"];
        assert_eq!(p["day"], "2025-03-14", "{r}");
        assert_eq!(p["creator"], r["creator_id"]);
        assert!(!p["path"].as_array().unwrap().is_empty());
    }
    assert_eq!(m["proof"]["rows_without_proof"], open.len() as u64);
    assert_eq!(
        m["proof"]["rows_with_proof"],
        (rows.len() - open.len()) as u64
    );
    // The recipient: the whole check, then against the published lines.
    std::fs::remove_file(&db).expect("no database");
    let (code, out) = verify_export(&file, &manifest, &["--proof"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "{} rows verify against 2 day roots",
            rows.len() - open.len()
        )),
        "{out}"
    );
    let syslog = dir.path().join("syslog");
    let lines: String = published
        .iter()
        .map(|l| format!("Mar 15 02:00:01 loghost pfstatelog[7]: {l}\n"))
        .collect();
    std::fs::write(&syslog, &lines).expect("write");
    let s = syslog.display().to_string();
    let (code, out) = verify_export(&file, &manifest, &["--proof", "--roots", &s]);
    assert_eq!(code, 0, "{out}");
    // A published root that differs from the manifest's names the day.
    let mut changed = published[0].clone();
    let at = changed.find("root=").unwrap() + 5;
    let c = if &changed[at..at + 1] == "0" {
        "1"
    } else {
        "0"
    };
    changed.replace_range(at..at + 1, c);
    std::fs::write(&syslog, format!("{}\n{}\n", changed, published[1])).expect("write");
    let (code, out) = verify_export(&file, &manifest, &["--proof", "--roots", &s]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("day 2025-03-14 version 1 differs from the published one"),
        "{out}"
    );
}

#[test]
fn one_changed_field_fails_its_proof_though_the_digest_is_fixed_up() {
    let dir = tempfile::tempdir().expect("tmp");
    let (db, _) = closed_db(dir.path());
    let (code, err, file, manifest) = export(dir.path(), &db, "x");
    assert_eq!(code, 0, "{err}");
    // Change the private address of the tenth row with a proof, and give the manifest the
    // new file's digest and length: only the proof can tell.
    let text = std::fs::read_to_string(&file).expect("read");
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let (at, state) = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let v: Value = serde_json::from_str(l).ok()?;
            let state = v["state_id"].as_str()?.to_string();
            (!v.get("proof")?.is_null()).then_some((i, state))
        })
        .nth(9)
        .expect("ten rows with proofs");
    let mut row: Value = serde_json::from_str(&lines[at]).expect("json");
    let ip = row["private_ip"].as_str().unwrap().to_string();
    let other = if ip == "10.9.9.9" {
        "10.9.9.8"
    } else {
        "10.9.9.9"
    };
    row["private_ip"] = Value::from(other);
    lines[at] = row.to_string();
    let changed = lines.join("\n") + "\n";
    std::fs::write(&file, &changed).expect("write");
    let mut m = json(&manifest);
    m["sha256"] = Value::from(hex(&Sha256::digest(changed.as_bytes())));
    m["bytes"] = Value::from(changed.len() as u64);
    std::fs::write(&manifest, m.to_string()).expect("write");
    let (code, out) = verify_export(&file, &manifest, &[]);
    assert_eq!(code, 0, "the digest alone is fooled: {out}");
    let (code, out) = verify_export(&file, &manifest, &["--proof"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("row on line {} (state {state}", at + 1))
            && out.contains(&format!("private {other}"))
            && out.contains("is not leaf"),
        "{out}"
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn a_database_that_no_longer_matches_its_root_exports_no_proof() {
    let dir = tempfile::tempdir().expect("tmp");
    let (db, _) = closed_db(dir.path());
    let c = pfstatelog::store::sqlite::open_rw(&db).expect("open");
    pfstatelog::store::sqlite::unarchive_all(&c).expect("unarchive");
    let n = c
        .execute(
            "UPDATE states SET s_addr1 = X'0a636363' WHERE id = (SELECT min(id) FROM states
              WHERE start_us >= 1741910400000000 AND start_us < 1741996800000000
                AND length(s_addr1) = 4)",
            [],
        )
        .expect("tamper");
    assert_eq!(n, 1);
    drop(c);
    let (code, err, file, manifest) = export(dir.path(), &db, "x");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("database does not match its published root for creator")
            && err.contains("day 2025-03-14"),
        "{err}"
    );
    assert!(!file.exists() && !manifest.exists());
}

#[test]
fn proofs_need_json_and_a_manifest() {
    let dir = tempfile::tempdir().expect("tmp");
    let (db, _) = closed_db(dir.path());
    let m = dir.path().join("m").display().to_string();
    for (args, says) in [
        (
            vec!["--format", "csv", "--proof", "--manifest", &m],
            "--proof needs --format json",
        ),
        (vec!["--format", "json", "--proof"], "--manifest"),
    ] {
        let o = run(&[
            &["export", "--db", &db, "--from", FROM, "--to", TO],
            &args[..],
        ]
        .concat());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(
            err.contains(says) && err.trim().lines().count() == 1,
            "{err}"
        );
    }
    // A manifest without proofs cannot be checked for them.
    let (file, plain) = (dir.path().join("p.csv"), dir.path().join("p.manifest"));
    let o = run(&[
        "export",
        "--db",
        &db,
        "--from",
        FROM,
        "--to",
        TO,
        "--manifest",
        &plain.display().to_string(),
        &file.display().to_string(),
    ]);
    assert!(o.status.success());
    let (code, out) = verify_export(&file, &plain, &["--proof"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("carries no proofs"), "{out}");
}
