//! `pfstatelog verify-export FILE --manifest M`: is FILE the export M describes, whole and
//! unaltered? The SHA-256 and length of FILE are computed again, FILE is read as the format
//! M names and its rows counted (against M and against FILE's own end marker). Exit 0 when
//! everything matches, 1 when anything does not (each difference on its own line), 2 when
//! M or FILE cannot be read at all.

use crate::cli::VerifyExportArgs;
use crate::model::digest::{day_name, DayRoot};
use crate::report::manifest;
use crate::report::proof;
use crate::store::sqlite::export_sqlite;
use anyhow::{anyhow, bail, Context};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, Write};

pub fn run(a: VerifyExportArgs) -> anyhow::Result<u8> {
    let text = std::fs::read_to_string(&a.manifest)
        .with_context(|| format!("cannot read the manifest {}", a.manifest.display()))?;
    let m: Value = serde_json::from_str(&text)
        .map_err(|e| anyhow!("{}: not a JSON manifest: {e}", a.manifest.display()))?;
    if m["pfstatelog_manifest"].as_u64() != Some(manifest::VERSION) {
        bail!(
            "{}: not a pfstatelog export manifest (version {} expected)",
            a.manifest.display(),
            manifest::VERSION
        );
    }
    let field = |k: &str| {
        m.get(k)
            .filter(|v| !v.is_null())
            .ok_or_else(|| anyhow!("{}: no \"{k}\" in the manifest", a.manifest.display()))
    };
    let format = field("format")?.as_str().unwrap_or("").to_string();
    let sha = field("sha256")?.as_str().unwrap_or("").to_string();
    let bytes = field("bytes")?.as_u64();
    let rows = field("rows")?.as_u64();
    let (got_sha, got_bytes) = manifest::file_digest(&a.file)
        .with_context(|| format!("cannot read {}", a.file.display()))?;
    let mut wrong: Vec<String> = Vec::new();
    if got_sha != sha {
        wrong.push(format!("SHA-256 is {got_sha}, the manifest says {sha}"));
    }
    if Some(got_bytes) != bytes {
        wrong.push(format!(
            "{got_bytes} bytes, the manifest says {}",
            bytes.map_or("none".into(), |b| b.to_string())
        ));
    }
    let counted = match format.as_str() {
        "csv" => manifest::csv_rows(&a.file),
        "json" => manifest::json_rows(&a.file),
        "sqlite" => export_sqlite::rows_of(&a.file),
        other => bail!(
            "{}: unknown format \"{other}\" (csv, json or sqlite)",
            a.manifest.display()
        ),
    };
    match counted {
        Ok((n, said)) => {
            if Some(n) != rows {
                wrong.push(format!(
                    "{n} rows, the manifest says {}",
                    rows.map_or("none".into(), |r| r.to_string())
                ));
            }
            if n != said {
                wrong.push(format!("{n} rows, its own end marker says {said}"));
            }
        }
        Err(e) => wrong.push(format!("does not read as a {format} export: {e}")),
    }
    let mut proven = None;
    if a.proof {
        let (n, why) = proofs(&a, &m, &format)?;
        wrong.extend(why);
        proven = Some(n);
    }
    let mut out = super::out::stdout();
    let name = a.file.display();
    if wrong.is_empty() {
        writeln!(
            out,
            "{name}: matches its manifest ({format}, {} rows, {got_bytes} bytes, SHA-256 {got_sha}; database {} {})",
            rows.unwrap_or(0),
            m["database"]["path"].as_str().unwrap_or("?"),
            m["database"]["uuid"].as_str().unwrap_or("(no UUID)"),
        )?;
        if let Some((yes, no, roots)) = proven {
            writeln!(
                out,
                "{name}: {yes} rows verify against {roots} day roots the manifest lists; {no} rows of days not closed have no proof"
            )?;
        }
    } else {
        for w in &wrong {
            writeln!(out, "{name}: DOES NOT MATCH: {w}")?;
        }
    }
    out.flush()?;
    Ok(if wrong.is_empty() {
        super::FOUND
    } else {
        super::NOTHING
    })
}

/// `--proof`: every row's proof against the manifest's roots, the count of rows without one
/// against the manifest's, and (`--roots`) the roots against the published lines. Returns
/// (rows proven, rows without proof, roots) and the differences (the first failing row
/// only: one is enough to reject the file).
fn proofs(
    a: &VerifyExportArgs,
    m: &Value,
    format: &str,
) -> anyhow::Result<((u64, u64, usize), Vec<String>)> {
    if format != "json" {
        bail!("--proof: a {format} export carries no proofs (export --proof writes JSON)");
    }
    let p = &m["proof"];
    let listed = p["roots"].as_array().ok_or_else(|| {
        anyhow!(
            "{}: no proof roots in the manifest (was the export made with --proof?)",
            a.manifest.display()
        )
    })?;
    let mut roots = HashMap::new();
    for r in listed {
        let r = proof::root_of(r)
            .ok_or_else(|| anyhow!("{}: a proof root does not read: {r}", a.manifest.display()))?;
        if let Some(was) = roots.insert((r.creator_id, r.day, r.version), r.clone()) {
            if was != r {
                bail!(
                    "{}: two different roots listed for creator {:08x} day {} version {}",
                    a.manifest.display(),
                    r.creator_id,
                    day_name(r.day),
                    r.version
                );
            }
        }
    }
    let mut wrong = Vec::new();
    if let Some(path) = &a.roots {
        let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
        let mut published = HashMap::new();
        for line in std::io::BufReader::new(file).split(b'\n') {
            let line = line.with_context(|| format!("reading {}", path.display()))?;
            if let Some(r) = DayRoot::parse(&String::from_utf8_lossy(&line)) {
                published.insert((r.creator_id, r.day, r.version), r);
            }
        }
        let mut listed: Vec<&DayRoot> = roots.values().collect();
        listed.sort_by_key(|r| (r.day, r.creator_id, r.version));
        for r in listed {
            match published.get(&(r.creator_id, r.day, r.version)) {
                Some(p) if p.root == r.root && p.count == r.count => {}
                Some(_) => wrong.push(format!(
                    "the manifest's root of creator {:08x} day {} version {} differs from the published one",
                    r.creator_id,
                    day_name(r.day),
                    r.version
                )),
                None => wrong.push(format!(
                    "the manifest's root of creator {:08x} day {} version {} is not among the published lines of {}",
                    r.creator_id,
                    day_name(r.day),
                    r.version,
                    path.display()
                )),
            }
        }
    }
    let file = std::fs::File::open(&a.file)
        .with_context(|| format!("cannot read {}", a.file.display()))?;
    let (mut yes, mut no) = (0u64, 0u64);
    // By bytes: a line that is not UTF-8 does not parse, and the row count has said so.
    for (i, line) in std::io::BufReader::new(file).split(b'\n').enumerate() {
        let line = line.with_context(|| format!("reading {}", a.file.display()))?;
        let Ok(v) = serde_json::from_slice::<Value>(&line) else {
            continue; // counted as not reading by the row count above
        };
        if v.get("pfstatelog_export").is_some() || v.get("pfstatelog_export_end").is_some() {
            continue;
        }
        match proof::check_row(&v, &roots) {
            Ok(true) => yes += 1,
            Ok(false) => no += 1,
            Err(why) => {
                wrong.push(format!(
                    "row on line {} (state {} of creator {}, private {}): {why}",
                    i + 1,
                    v["state_id"].as_str().unwrap_or("?"),
                    v["creator_id"].as_str().unwrap_or("?"),
                    v["private_ip"].as_str().unwrap_or("?"),
                ));
                return Ok(((yes, no, roots.len()), wrong));
            }
        }
    }
    let said = p["rows_without_proof"].as_u64();
    if said != Some(no) {
        wrong.push(format!(
            "{no} rows have no proof, the manifest says {}",
            said.map_or("none".into(), |n| n.to_string())
        ));
    }
    Ok(((yes, no, roots.len()), wrong))
}
