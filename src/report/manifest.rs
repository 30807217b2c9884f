//! The evidence manifest of an export (`export --manifest FILE`): a small JSON that lets
//! whoever receives the export check it is complete and unaltered (`verify-export`). Its
//! fields are described in README ("Evidence manifest").

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::{self, Write};
use std::path::Path;

/// The manifest layout's version (`pfstatelog_manifest`).
pub(crate) const VERSION: u64 = 1;

/// A writer that passes everything through and keeps the SHA-256 and length of it: the
/// digest of exactly the bytes the export wrote, wherever they went.
pub(crate) struct Hashing<W: Write> {
    inner: W,
    sha: Sha256,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    pub fn new(inner: W) -> Self {
        Hashing {
            inner,
            sha: Sha256::new(),
            bytes: 0,
        }
    }

    /// The digest (lower-case hex) and length of what was written.
    pub fn finish(self) -> (String, u64, W) {
        (hex(&self.sha.finalize()), self.bytes, self.inner)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// SHA-256 (hex) and length of a file.
pub(crate) fn file_digest(path: &Path) -> io::Result<(String, u64)> {
    let mut sha = Sha256::new();
    let n = io::copy(&mut std::fs::File::open(path)?, &mut sha)?;
    Ok((hex(&sha.finalize()), n))
}

/// What an export knows when it ends.
pub(crate) struct Facts<'a> {
    pub database: &'a str,
    pub uuid: Option<String>,
    pub schema: i64,
    pub from: String,
    pub to: String,
    pub generated: String,
    pub selection: &'a str,
    pub format: &'a str,
    pub file: Option<String>,
    pub rows: u64,
    pub damaged: u64,
    pub sha256: String,
    pub bytes: u64,
    pub coverage: Value,
    /// `export --proof`: the roots used and how many rows have no proof.
    pub proof: Option<Value>,
}

pub(crate) fn manifest(f: &Facts) -> Value {
    let mut m = json!({
        "pfstatelog_manifest": VERSION,
        "pfstatelog": env!("CARGO_PKG_VERSION"),
        "generated": f.generated,
        "database": {
            "path": f.database,
            "uuid": f.uuid,
            "schema_version": f.schema,
        },
        "range": {"from": f.from, "to": f.to},
        "filters": {},
        "selection": f.selection,
        "format": f.format,
        "file": f.file,
        "rows": f.rows,
        "damaged_rows_skipped": f.damaged,
        "bytes": f.bytes,
        "sha256": f.sha256,
        "coverage": f.coverage,
    });
    if let Some(p) = &f.proof {
        m["proof"] = p.clone();
    }
    m
}

/// Write the manifest to a new file (never over an existing one).
pub(crate) fn write(path: &Path, m: &Value) -> anyhow::Result<()> {
    use anyhow::Context;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create the manifest {}", path.display()))?;
    serde_json::to_writer_pretty(&mut f, m)?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(())
}

/// Rows of a CSV export as its own lines say: (data records, the end line's count).
/// `Err` when it does not read as one.
pub(crate) fn csv_rows(path: &Path) -> Result<(u64, u64), String> {
    let text = std::fs::read(path).map_err(|e| e.to_string())?;
    let end = text
        .split(|b| *b == b'\n')
        .rev()
        .find(|l| !l.is_empty())
        .and_then(|l| std::str::from_utf8(l).ok())
        .and_then(|l| l.strip_prefix("# end: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or("no end line (# end: N rows): not a whole CSV export")?;
    let mut r = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .has_headers(true)
        .from_reader(&text[..]);
    let header = r.headers().map_err(|e| e.to_string())?.clone();
    if header.iter().ne(super::table::CSV_FIELDS.iter().copied()) {
        return Err("its header line is not pfstatelog's CSV header".into());
    }
    let mut n = 0u64;
    for rec in r.records() {
        let rec = rec.map_err(|e| e.to_string())?;
        if rec.len() != header.len() {
            return Err(format!("record {} has {} fields", n + 1, rec.len()));
        }
        n += 1;
    }
    Ok((n, end))
}

/// Rows of a JSON-lines export: (lifetime lines, the end object's count).
pub(crate) fn json_rows(path: &Path) -> Result<(u64, u64), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let parse = |l: &str| serde_json::from_str::<Value>(l).map_err(|e| e.to_string());
    let (Some(first), Some(last)) = (lines.first(), lines.last()) else {
        return Err("empty".into());
    };
    if parse(first)?.get("pfstatelog_export").is_none() {
        return Err("its first line is not a pfstatelog_export header".into());
    }
    let end = parse(last)?
        .get("pfstatelog_export_end")
        .and_then(|e| e["rows"].as_u64())
        .ok_or("no end object: not a whole JSON export")?;
    let mut n = 0u64;
    for l in &lines[1..lines.len() - 1] {
        if !parse(l)?.is_object() {
            return Err(format!("line {} is not a JSON object", n + 2));
        }
        n += 1;
    }
    Ok((n, end))
}
