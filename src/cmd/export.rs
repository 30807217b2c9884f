//! `pfstatelog export --from T --to T --format csv|json`: every lifetime overlapping a range,
//! for archiving or handing over as evidence.
//!
//! Streamed: rows go from the SQLite cursor to stdout one at a time, so memory stays flat
//! whatever the range. The output says what it is: first which database and which coverage
//! (CSV: `#` comment lines; JSON: a `{"pfstatelog_export": {...}}` line), then the rows in
//! the format of `who`/`history` (the same functions make them), then an end marker with
//! the row count, so a truncated file can be told from a complete one. `--format sqlite`
//! writes a plain SQLite file instead (store/export_sqlite.rs); `--manifest` adds the
//! evidence manifest (report/manifest.rs) with the SHA-256 of the bytes written.

use crate::cli::{ExportArgs, ExportFormat};
use crate::report::manifest::{self, Hashing};
use crate::report::proof::Proofs;
use crate::report::table::{coverage_json, csv_record, lifetime_json, CSV_FIELDS};
use crate::store;
use crate::time::{format_rfc3339, parse_time, Zone};
use anyhow::{anyhow, bail, Context};
use serde_json::json;
use std::io::Write;

pub fn run(a: ExportArgs) -> anyhow::Result<u8> {
    let zin = match &a.tz.tz {
        Some(z) => Zone::parse(z).map_err(|e| anyhow!("--tz: {e}"))?,
        None => Zone::Local,
    };
    let from = parse_time(&a.from, &zin).map_err(|e| anyhow!("--from: {e}"))?;
    let to = parse_time(&a.to, &zin).map_err(|e| anyhow!("--to: {e}"))?;
    if from > to {
        bail!("--from is after --to");
    }
    if a.format == ExportFormat::Sqlite && a.out.is_none() {
        bail!("--format sqlite writes a file: give its name (export ... --format sqlite OUT.db)");
    }
    if a.proof && a.format != ExportFormat::Json {
        bail!("--proof needs --format json (the proofs are written into each JSON row)");
    }
    let db = a.db.path();
    let st = store::open_read(&db)?;
    // The days' trees are built, and checked against their roots, before anything is
    // written: a database that no longer matches its roots yields no export at all.
    let proofs = if a.proof {
        match Proofs::build(st.as_ref(), from, to)? {
            Ok(p) => Some(p),
            Err(why) => {
                eprintln!("pfstatelog: {why}");
                return Ok(super::NOTHING);
            }
        }
    } else {
        None
    };
    let (mut proven, mut unproven) = (0u64, 0u64);
    let cov = st
        .coverage(from, to)
        .with_context(|| format!("reading {db}"))?;
    let schema = st.schema_version()?;
    let database = std::fs::canonicalize(&db)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| db.clone());
    let generated = format_rfc3339(super::wall_us());
    let cov_json = coverage_json(&cov);
    let uuid = st.identity()?;
    const SELECTION: &str =
        "every lifetime whose [start, end] overlaps [from, to]; open lifetimes have no end";
    let header = json!({
        "pfstatelog_export": {
            "pfstatelog": env!("CARGO_PKG_VERSION"),
            "database": database,
            "schema_version": schema,
            "from": format_rfc3339(from),
            "to": format_rfc3339(to),
            "generated": generated,
            "database_uuid": uuid,
            "selection": SELECTION,
            "coverage": cov_json,
        }
    });
    let sink: Box<dyn Write> = match (&a.out, a.format) {
        (_, ExportFormat::Sqlite) | (None, _) => Box::new(super::out::stdout()),
        (Some(p), _) => Box::new(std::io::BufWriter::new(
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(p)
                .with_context(|| format!("cannot create {}", p.display()))?,
        )),
    };
    let mut out = Hashing::new(sink);
    let walked = match a.format {
        ExportFormat::Sqlite => {
            let file = a.out.as_deref().unwrap_or(std::path::Path::new(""));
            let info = [
                ("pfstatelog", env!("CARGO_PKG_VERSION").to_string()),
                ("database", database.clone()),
                ("database_uuid", uuid.clone().unwrap_or_default()),
                ("schema_version", schema.to_string()),
                ("from", format_rfc3339(from)),
                ("to", format_rfc3339(to)),
                ("generated", generated.clone()),
                ("selection", SELECTION.to_string()),
                ("coverage", cov_json.to_string()),
            ];
            st.export_sqlite(from, to, file, &info)?
        }
        ExportFormat::Json => {
            writeln!(out, "{header}")?;
            let (mut proof, mut buf) = (String::new(), Vec::new());
            let w = st.each_lifetime(from, to, &mut |l| -> anyhow::Result<()> {
                let row = lifetime_json(l);
                match &proofs {
                    None => serde_json::to_writer(&mut out, &row)?,
                    Some(p) => {
                        // The row's object with `"proof":…` as its last member.
                        proof.clear();
                        proof.push_str(",\"proof\":");
                        if p.proof(l, &mut proof)? {
                            proven += 1;
                        } else {
                            unproven += 1;
                            proof.push_str("null");
                        }
                        proof.push('}');
                        buf.clear();
                        serde_json::to_writer(&mut buf, &row)?;
                        buf.pop();
                        out.write_all(&buf)?;
                        out.write_all(proof.as_bytes())?;
                    }
                }
                out.write_all(b"\n")?;
                Ok(())
            })?;
            writeln!(
                out,
                "{}",
                json!({"pfstatelog_export_end": {"rows": w.rows, "damaged_rows_skipped": w.damaged}})
            )?;
            w
        }
        ExportFormat::Csv => {
            writeln!(
                out,
                "# pfstatelog export (pfstatelog {})",
                env!("CARGO_PKG_VERSION")
            )?;
            writeln!(out, "# database: {database} (schema {schema})")?;
            writeln!(out, "# from: {}", format_rfc3339(from))?;
            writeln!(out, "# to: {}", format_rfc3339(to))?;
            writeln!(out, "# generated: {generated}")?;
            writeln!(
                out,
                "# selection: every lifetime whose [start, end] overlaps [from, to]; an empty end is a lifetime still open"
            )?;
            writeln!(
                out,
                "# coverage: {}",
                if cov.is_clean() {
                    "complete: a recorder watched the whole range, with no known blind moment"
                } else {
                    "INCOMPLETE: see the uncovered and gap lines; no row there does not mean no state"
                }
            )?;
            for (x, y) in &cov.uncovered {
                writeln!(
                    out,
                    "# uncovered: {} .. {}",
                    format_rfc3339(*x),
                    format_rfc3339(*y)
                )?;
            }
            for (x, y, kind, n, d) in &cov.gaps {
                writeln!(
                    out,
                    "# gap: {} .. {} {kind} {n}: {}",
                    format_rfc3339(*x),
                    format_rfc3339(*y),
                    d.replace(['\n', '\r'], " ")
                )?;
            }
            for (kind, source, x, y) in &cov.runs {
                writeln!(
                    out,
                    "# run: {kind} {} {} .. {}",
                    source.replace(['\n', '\r'], " "),
                    format_rfc3339(*x),
                    format_rfc3339(*y)
                )?;
            }
            writeln!(out, "# coverage-json: {cov_json}")?;
            let mut w = csv::Writer::from_writer(out);
            w.write_record(CSV_FIELDS)?;
            let walked = st.each_lifetime(from, to, &mut |l| -> anyhow::Result<()> {
                w.write_record(csv_record(l))?;
                Ok(())
            })?;
            out = w
                .into_inner()
                .map_err(|e| anyhow!("writing the export: {}", e.error()))?;
            writeln!(
                out,
                "# end: {} rows{}",
                walked.rows,
                if walked.damaged > 0 {
                    format!(", {} damaged rows skipped", walked.damaged)
                } else {
                    String::new()
                }
            )?;
            walked
        }
    };
    out.flush()?;
    let (mut sha256, mut bytes, _) = out.finish();
    // The file's digest only for a manifest: reading back gigabytes costs as much as a
    // good part of writing them.
    if let (ExportFormat::Sqlite, Some(file), Some(_)) = (a.format, &a.out, &a.manifest) {
        (sha256, bytes) = manifest::file_digest(file)
            .with_context(|| format!("reading back {}", file.display()))?;
    }
    if let Some(m) = &a.manifest {
        let facts = manifest::Facts {
            database: &database,
            uuid: uuid.clone(),
            schema,
            from: format_rfc3339(from),
            to: format_rfc3339(to),
            generated: generated.clone(),
            selection: SELECTION,
            format: match a.format {
                ExportFormat::Csv => "csv",
                ExportFormat::Json => "json",
                ExportFormat::Sqlite => "sqlite",
            },
            file: a.out.as_ref().map(|p| p.display().to_string()),
            rows: walked.rows,
            damaged: walked.damaged,
            sha256,
            bytes,
            coverage: cov_json.clone(),
            proof: proofs.as_ref().map(|p| {
                json!({
                    "roots": p.roots(),
                    "rows_with_proof": proven,
                    "rows_without_proof": unproven,
                    "without_proof": "lifetimes of days not closed yet (no root to prove against)",
                })
            }),
        };
        manifest::write(m, &manifest::manifest(&facts))?;
    }
    if walked.damaged > 0 {
        eprintln!(
            "pfstatelog: warning: {} rows or groups of {db} could not be read (damaged) and were left out",
            walked.damaged
        );
    }
    for d in &walked.groups {
        eprintln!("pfstatelog: warning: {db}: damaged {d}");
    }
    for w in crate::report::table::coverage_warnings(&cov) {
        eprintln!("pfstatelog: {w}");
    }
    Ok(0)
}
