//! The central store on a real ClickHouse server (Debian's 18.16, the oldest we support):
//! captures imported into local files, shipped to one database, and every expected query
//! of their fixtures answered from the server as from the local file, however often and
//! from however many log hosts the same states were shipped.
//!
//! Needs `clickhouse-server` (tests/common/clickhouse.rs).

mod common;

use common::clickhouse::{free_port, start, PASSWORD};
use common::{bin, fixture, read_frames, write_pcap};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

/// Run the binary with the server's password in the environment.
fn pf(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("PFSTATELOG_CLICKHOUSE_PASSWORD", PASSWORD)
        .env_remove("PFSTATELOG_DB")
        .output()
        .expect("run pfstatelog")
}

fn pf_ok(args: &[&str]) {
    let o = pf(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn import(db: &Path, captures: &[&Path]) {
    let mut args = vec!["import", "--db", db.to_str().expect("utf-8 path")];
    args.extend(captures.iter().map(|c| c.to_str().expect("utf-8 path")));
    pf_ok(&args);
}

fn ship(db: &Path, url: &str, name: &str) {
    pf_ok(&[
        "ship",
        "--db",
        db.to_str().expect("utf-8 path"),
        "--to",
        url,
        "--name",
        name,
    ]);
}

fn expected_queries(stem: &str) -> Vec<Value> {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture(&format!("{stem}.expected.json"))).expect("read"),
    )
    .expect("json");
    doc["queries"].as_array().cloned().expect("queries")
}

fn who(db: &str, q: &Value) -> Output {
    pf(&[
        "who",
        "--db",
        db,
        "--ip",
        q["ip"].as_str().unwrap_or_default(),
        "--port",
        &q["port"].to_string(),
        "--at",
        q["at"].as_str().unwrap_or_default(),
        "--window",
        &format!("{}s", q["window_s"]),
        "--format",
        "json",
    ])
}

/// RFC 3339 to microseconds.
fn micros(v: &Value) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.timestamp_micros())
}

type MatchKey = (String, u64, String, u64, String, String, String);

fn key(o: &Value) -> MatchKey {
    let ip = |k: &str| {
        o[k].as_str()
            .and_then(|s| s.parse::<std::net::IpAddr>().ok())
            .map(|a| a.to_string())
            .unwrap_or_default()
    };
    let s = |k: &str| o[k].as_str().unwrap_or("").to_string();
    (
        ip("private_ip"),
        o["private_port"].as_u64().unwrap_or(u64::MAX),
        ip("remote_ip"),
        o["remote_port"].as_u64().unwrap_or(u64::MAX),
        s("proto"),
        s("creator_id"),
        s("state_id"),
    )
}

/// What differs between an answer and the fixture's expected lifetimes (as
/// tests/who_fixtures.rs compares: same states, start and end within 1 s).
fn against_expected(expected: &[Value], got: &[Value]) -> Vec<String> {
    let mut probs = Vec::new();
    let exp: BTreeMap<_, _> = expected.iter().map(|o| (key(o), o)).collect();
    let mut seen = BTreeMap::new();
    for o in got {
        if seen.insert(key(o), o).is_some() {
            probs.push(format!("duplicate {:?}", key(o)));
        }
    }
    let close = |a: Option<i64>, b: Option<i64>| matches!((a, b), (Some(a), Some(b)) if (a - b).abs() <= 1_000_000);
    for (k, e) in &exp {
        let Some(g) = seen.get(k) else {
            probs.push(format!("missing {k:?}"));
            continue;
        };
        if !close(micros(&e["start"]), micros(&g["start"])) {
            probs.push(format!("start of {k:?}"));
        }
        let end_ok = if e["end"].is_null() {
            g["end"].is_null()
        } else {
            close(micros(&e["end"]), micros(&g["end"]))
        };
        if !end_ok {
            probs.push(format!(
                "end of {k:?}: got {}, expected {}",
                g["end"], e["end"]
            ));
        }
    }
    for k in seen.keys() {
        if !exp.contains_key(k) {
            probs.push(format!("extra {k:?}"));
        }
    }
    probs
}

/// Every expected query of `stem`, from the server and from the local file: the server's
/// answer must be the expected one, and byte for byte what the file answers (rows, order,
/// coverage warnings, exit code).
fn check_queries(stem: &str, local: &Path, url: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    let local = local.to_str().expect("utf-8 path");
    for q in expected_queries(stem) {
        let from_server = who(url, &q);
        let from_file = who(local, &q);
        let what = format!("{stem} {} {} at {}", q["ip"], q["port"], q["at"]);
        let got: Vec<Value> = serde_json::from_slice(&from_server.stdout).unwrap_or_default();
        let expected = q["expected"].as_array().cloned().unwrap_or_default();
        let mut probs = against_expected(&expected, &got);
        match (expected.is_empty(), from_server.status.code()) {
            (true, Some(1)) | (false, Some(0)) => {}
            (_, code) => probs.push(format!(
                "exit {code:?} with {} expected: {}",
                expected.len(),
                String::from_utf8_lossy(&from_server.stderr)
            )),
        }
        if from_server.stdout != from_file.stdout {
            probs.push("rows differ from the local file's".into());
        }
        if from_server.stderr != from_file.stderr {
            probs.push(format!(
                "warnings differ: server {:?}, file {:?}",
                String::from_utf8_lossy(&from_server.stderr),
                String::from_utf8_lossy(&from_file.stderr)
            ));
        }
        if from_server.status.code() != from_file.status.code() {
            probs.push("exit code differs from the local file's".into());
        }
        if !probs.is_empty() {
            wrong.push(format!("{what}: {}", probs.join("; ")));
        }
    }
    wrong
}

const OPENBSD: &str = "ha-pair-clr-l5-ether";
const FREEBSD: &str = "freebsd-1400-ha-ether";

#[test]
fn two_firewalls_shipped_to_one_server_answer_every_fixture_query() {
    let Some(srv) = start("two_firewalls_shipped_to_one_server_answer_every_fixture_query") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b) = (tmp.path().join("a.db"), tmp.path().join("b.db"));
    import(&a, &[&fixture(&format!("{OPENBSD}.pcap"))]);
    import(&b, &[&fixture(&format!("{FREEBSD}.pcap"))]);
    let url = srv.url("pf");
    ship(&a, &url, "loghost-a");
    ship(&b, &url, "loghost-b");
    let mut wrong = check_queries(OPENBSD, &a, &url);
    wrong.extend(check_queries(FREEBSD, &b, &url));
    assert!(wrong.is_empty(), "after one ship:\n{}", wrong.join("\n"));

    // Shipping again, and a second log host shipping the same states, change no answer.
    ship(&a, &url, "loghost-a");
    ship(&b, &url, "loghost-b");
    ship(&a, &url, "loghost-a2");
    let mut wrong = check_queries(OPENBSD, &a, &url);
    wrong.extend(check_queries(FREEBSD, &b, &url));
    assert!(
        wrong.is_empty(),
        "after shipping again:\n{}",
        wrong.join("\n")
    );

    // history and export answer as the file does (export's header names the store: the
    // rows are compared, in the order each store walks them, sorted).
    let a_path = a.to_str().expect("utf-8 path");
    let (from, to) = ("2025-03-14T00:00:00Z", "2025-03-15T00:00:00Z");
    for host in ["192.168.0.0/16", "198.51.100.107"] {
        let args = |db: &str| -> Output {
            pf(&[
                "history", "--db", db, "--host", host, "--from", from, "--to", to, "--format",
                "csv",
            ])
        };
        let (s, f) = (args(&url), args(a_path));
        assert_eq!(
            (s.stdout, s.stderr, s.status.code()),
            (f.stdout, f.stderr, f.status.code()),
            "history --host {host}"
        );
    }
    let rows = |db: &str| -> Vec<String> {
        let o = pf(&[
            "export", "--db", db, "--from", from, "--to", to, "--format", "csv",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    let exported = rows(&url);
    assert!(exported.len() > 100, "{} rows exported", exported.len());
    assert_eq!(exported, rows(a_path), "export");

    // stats counts each lifetime once, whatever was shipped twice.
    let states = |db: &str| -> i64 {
        let o = pf(&["stats", "--db", db, "--json"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).expect("stats json");
        v["states"].as_i64().expect("states")
    };
    assert_eq!(
        states(&url),
        states(a.to_str().expect("path")) + states(b.to_str().expect("path"))
    );
}

#[test]
fn an_open_lifetime_shipped_is_replaced_by_its_end() {
    let Some(srv) = start("an_open_lifetime_shipped_is_replaced_by_its_end") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let frames = read_frames(&fixture(&format!("{OPENBSD}.pcap")));
    let half = frames.len() / 2;
    let (first, rest) = (tmp.path().join("first.pcap"), tmp.path().join("rest.pcap"));
    write_pcap(&first, &frames[..half]);
    write_pcap(&rest, &frames[half..]);
    let db = tmp.path().join("split.db");
    let url = srv.url("split");
    let open = |db: &str| -> i64 {
        let o = pf(&["stats", "--db", db, "--json"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).expect("stats json");
        v["open"].as_i64().expect("open")
    };
    let dbs = db.to_str().expect("utf-8 path");
    import(&db, &[&first]);
    ship(&db, &url, "loghost");
    let open_then = open(&url);
    let before = lifetimes(dbs);
    import(&db, &[&rest]);
    ship(&db, &url, "loghost");
    assert!(
        open(&url) < open_then,
        "the second half ends lifetimes the first left open ({open_then} open after the first ship)"
    );
    // The server holds both copies of those lifetimes; every answer is the file's.
    let mut wrong = check_queries(OPENBSD, &db, &url);
    // Asked well after such a lifetime ended, its open copy must not answer: a read bounded
    // by duration class does not meet its ended copy there.
    let mut asked = 0;
    for l in lifetimes(dbs) {
        let k = (
            l["creator_id"].clone(),
            l["state_id"].clone(),
            l["start"].clone(),
        );
        let was_open = before.iter().any(|b| {
            b["end"].is_null()
                && (
                    b["creator_id"].clone(),
                    b["state_id"].clone(),
                    b["start"].clone(),
                ) == k
        });
        let (Some(start), Some(end)) = (micros(&l["start"]), micros(&l["end"])) else {
            continue;
        };
        if !was_open {
            continue;
        }
        asked += 1;
        let at = end + 4 * (end - start) + 60_000_000;
        let at = chrono::DateTime::from_timestamp_micros(at)
            .expect("time")
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let q = serde_json::json!({"ip": l["public_ip"], "port": l["public_port"], "at": at, "window_s": 1});
        let (s, f) = (who(&url, &q), who(dbs, &q));
        if (s.stdout.clone(), s.status.code()) != (f.stdout.clone(), f.status.code()) {
            wrong.push(format!(
                "{q}: server answered {}, the file {}",
                String::from_utf8_lossy(&s.stdout),
                String::from_utf8_lossy(&f.stdout)
            ));
        }
    }
    assert!(asked > 0, "no lifetime was open after the first half");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Every lifetime of a database, as `export --format json` writes them.
fn lifetimes(db: &str) -> Vec<Value> {
    let o = pf(&[
        "export",
        "--db",
        db,
        "--format",
        "json",
        "--from",
        "@0",
        "--to",
        "@4000000000",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("state_id").is_some())
        .collect()
}

#[test]
fn a_wrong_password_or_no_server_is_one_line_and_exit_2() {
    let Some(srv) = start("a_wrong_password_or_no_server_is_one_line_and_exit_2") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("a.db");
    import(&db, &[&fixture(&format!("{FREEBSD}.pcap"))]);
    let db = db.to_str().expect("path");
    let pw_file = tmp.path().join("pw");
    std::fs::write(&pw_file, "not-the-password\n").expect("write");
    let closed = format!("clickhouse://pfs@127.0.0.1:{}/pf", free_port());
    for (args, says) in [
        (
            vec![
                "ship",
                "--db",
                db,
                "--to",
                &srv.url("pf"),
                "--password-file",
                pw_file.to_str().expect("path"),
            ],
            "refused the user or password",
        ),
        (
            vec!["ship", "--db", db, "--to", &closed],
            "cannot reach the server",
        ),
        (
            vec![
                "who",
                "--db",
                &closed,
                "--ip",
                "192.0.2.1",
                "--port",
                "1",
                "--at",
                "2025-05-20T14:00:00Z",
            ],
            "cannot reach the server",
        ),
        (
            vec!["ship", "--db", db, "--to", "http://127.0.0.1/pf"],
            "unknown scheme",
        ),
        (
            vec!["ship", "--db", db, "--to", "clickhouse://127.0.0.1:0/pf"],
            "bad port",
        ),
    ] {
        let o = pf(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // Nothing was shipped by the refused attempts: the database was never created.
    let o = pf(&["stats", "--db", &srv.url("pf")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no database"));
}

/// `clickhouses://`: HTTPS to a server whose certificate a private CA signed, trusted through
/// $PFSTATELOG_CLICKHOUSE_CA; without it the certificate is refused, in one line, exit 2,
/// and nothing is shipped.
#[test]
fn https_with_a_private_ca_ships_and_answers_as_http_does() {
    let Some(srv) = common::clickhouse::configured_tls(
        "https_with_a_private_ca_ships_and_answers_as_http_does",
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("a.db");
    import(&db, &[&fixture(&format!("{FREEBSD}.pcap"))]);
    let db = db.to_str().expect("path");
    let https = format!(
        "clickhouses://pfs@127.0.0.1:{}/pf",
        srv.https_port.expect("an https port")
    );
    let ca = srv.dir.path().join("ca.crt");
    let with_ca = |args: &[&str], ca: Option<&Path>| -> Output {
        let mut c = Command::new(bin());
        c.args(args)
            .env("PFSTATELOG_CLICKHOUSE_PASSWORD", PASSWORD)
            .env_remove("PFSTATELOG_DB")
            .env_remove("PFSTATELOG_CLICKHOUSE_CA");
        if let Some(ca) = ca {
            c.env("PFSTATELOG_CLICKHOUSE_CA", ca);
        }
        c.output().expect("run pfstatelog")
    };
    let o = with_ca(&["ship", "--db", db, "--to", &https], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot reach the server"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    let o = pf(&["stats", "--db", &srv.url("pf")]);
    assert_eq!(o.status.code(), Some(2), "nothing was shipped");

    let o = with_ca(&["ship", "--db", db, "--to", &https], Some(&ca));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let over_https = with_ca(&["stats", "--db", &https, "--json"], Some(&ca));
    let over_http = pf(&["stats", "--db", &srv.url("pf"), "--json"]);
    assert!(over_https.status.success());
    // The same answer, but for the store's name.
    let without_path = |o: &Output| -> Value {
        let mut v: Value = serde_json::from_slice(&o.stdout).expect("stats json");
        v.as_object_mut().map(|m| m.remove("path"));
        v
    };
    assert_eq!(without_path(&over_https), without_path(&over_http));
    assert!(without_path(&over_https)["states"].as_i64().unwrap_or(0) > 100);
    let mut wrong = Vec::new();
    for q in expected_queries(FREEBSD) {
        let args = [
            "who",
            "--db",
            &https,
            "--ip",
            q["ip"].as_str().unwrap_or_default(),
            "--port",
            &q["port"].to_string(),
            "--at",
            q["at"].as_str().unwrap_or_default(),
            "--window",
            &format!("{}s", q["window_s"]),
            "--format",
            "json",
        ];
        let (s, f) = (with_ca(&args, Some(&ca)), who(db, &q));
        if (s.stdout.clone(), s.status.code()) != (f.stdout.clone(), f.status.code()) {
            wrong.push(format!("{q}: {}", String::from_utf8_lossy(&s.stderr)));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
