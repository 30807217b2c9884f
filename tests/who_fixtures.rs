//! Every query of every fixture's NAME.expected.json, answered through the built binary
//! (`import` then `who --format json`), compared as the acceptance check does: the same set
//! of states by (private, remote, proto, creator, id), start and end within 1 s.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pfstatelog")
}

fn fixtures() -> Vec<(PathBuf, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).expect("tests/fixtures") {
        let p = e.expect("entry").path();
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        if let Some(stem) = name.strip_suffix(".expected.json") {
            let cap = ["pcap", "pcapng"]
                .iter()
                .map(|x| dir.join(format!("{stem}.{x}")))
                .find(|c| c.exists())
                .expect("capture beside expected.json");
            out.push((cap, p));
        }
    }
    out.sort();
    out
}

/// RFC 3339 (UTC, as we and the fixtures print it) to microseconds.
fn micros(v: &Value) -> Option<i64> {
    let s = v.as_str()?;
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    Some(t.timestamp_micros())
}

type MatchKey = (String, u64, String, u64, String, u64, u64);

fn key(o: &Value) -> MatchKey {
    let ip = |k: &str| {
        o[k].as_str()
            .and_then(|s| s.parse::<std::net::IpAddr>().ok())
            .map(|a| a.to_string())
            .unwrap_or_default()
    };
    let hex = |k: &str| u64::from_str_radix(o[k].as_str().unwrap_or(""), 16).unwrap_or(u64::MAX);
    (
        ip("private_ip"),
        o["private_port"].as_u64().unwrap_or(u64::MAX),
        ip("remote_ip"),
        o["remote_port"].as_u64().unwrap_or(u64::MAX),
        o["proto"].as_str().unwrap_or("").to_string(),
        hex("creator_id"),
        hex("state_id"),
    )
}

fn compare(expected: &[Value], got: &[Value]) -> Vec<String> {
    let mut probs = Vec::new();
    let exp: BTreeMap<_, _> = expected.iter().map(|o| (key(o), o)).collect();
    let mut seen = BTreeMap::new();
    for o in got {
        if seen.insert(key(o), o).is_some() {
            probs.push(format!("duplicate {:?}", key(o)));
        }
    }
    for (k, e) in &exp {
        let Some(g) = seen.get(k) else {
            probs.push(format!("missing {k:?}"));
            continue;
        };
        let close = |a: Option<i64>, b: Option<i64>| matches!((a, b), (Some(a), Some(b)) if (a - b).abs() <= 1_000_000);
        if !close(micros(&e["start"]), micros(&g["start"])) {
            probs.push(format!(
                "start of {k:?}: got {}, expected {}",
                g["start"], e["start"]
            ));
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
        for f in [
            "public_ip",
            "public_port",
            "af",
            "direction",
            "ifname",
            "nat",
        ] {
            let (ev, gv) = (&e[f], &g[f]);
            let same = match f {
                "public_ip" => {
                    ev.as_str().and_then(|s| s.parse::<std::net::IpAddr>().ok())
                        == gv.as_str().and_then(|s| s.parse::<std::net::IpAddr>().ok())
                }
                _ => ev == gv,
            };
            if !same {
                probs.push(format!("{f} of {k:?}: got {gv}, expected {ev}"));
            }
        }
    }
    for k in seen.keys() {
        if !exp.contains_key(k) {
            probs.push(format!("extra {k:?}"));
        }
    }
    probs
}

#[test]
fn every_fixture_query_is_answered_right() {
    let fx = fixtures();
    assert!(
        fx.len() >= 13,
        "expected every fixture in tests/fixtures, found {}",
        fx.len()
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut wrong = Vec::new();
    let mut total = 0;
    for (cap, exp) in fx {
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(&exp).expect("read")).expect("json");
        let name = cap
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        let db = tmp.path().join(format!("{name}.db"));
        let st = Command::new(bin())
            .args(["import", "--db"])
            .arg(&db)
            .arg(&cap)
            .output()
            .expect("run import");
        assert!(
            st.status.success(),
            "import {name}: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        for q in doc["queries"].as_array().expect("queries") {
            total += 1;
            let out = Command::new(bin())
                .args(["who", "--db"])
                .arg(&db)
                .args(["--ip", q["ip"].as_str().unwrap_or_default()])
                .args(["--port", &q["port"].to_string()])
                .args(["--at", q["at"].as_str().unwrap_or_default()])
                .args(["--window", &format!("{}s", q["window_s"])])
                .args(["--format", "json"])
                .output()
                .expect("run who");
            let expected = q["expected"].as_array().cloned().unwrap_or_default();
            let code = out.status.code();
            let got: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let mut probs = compare(&expected, &got);
            match (expected.is_empty(), code) {
                (true, Some(1)) | (false, Some(0)) => {}
                _ => probs.push(format!("exit {code:?} with {} expected", expected.len())),
            }
            if !probs.is_empty() {
                wrong.push(format!(
                    "{name} [{}] {} {} at {}: {}",
                    q["kind"],
                    q["ip"],
                    q["port"],
                    q["at"],
                    probs.join("; ")
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {total} queries wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
