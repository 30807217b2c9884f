//! `pfstatelog verify-export FILE --manifest M`: is FILE the export M describes, whole and
//! unaltered? The SHA-256 and length of FILE are computed again, FILE is read as the format
//! M names and its rows counted (against M and against FILE's own end marker). Exit 0 when
//! everything matches, 1 when anything does not (each difference on its own line), 2 when
//! M or FILE cannot be read at all.

use crate::cli::VerifyExportArgs;
use crate::report::manifest;
use crate::store::sqlite::export_sqlite;
use anyhow::{anyhow, bail, Context};
use serde_json::Value;
use std::io::Write;

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
