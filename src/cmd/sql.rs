//! `pfstatelog sql [--format table|json|csv] QUERY`: the analyst's own questions, in
//! SQLite's SQL, over a readable view of the store (src/store/sqlite/vtab.rs). Read-only:
//! a statement that would write anything but a temp table is refused before it runs (exit
//! 2, one line). The store runs the statements (src/store/sqlite/sql.rs); this formats.

use crate::cli::{SqlArgs, SqlFormat};
use crate::store::sqlite::sql::{self, SqlOut, SqlValue};
use anyhow::{bail, Context};
use std::io::{Read, Write};

pub fn run(a: SqlArgs) -> anyhow::Result<u8> {
    let query = if a.query == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the query from standard input")?;
        s
    } else {
        a.query.clone()
    };
    if query.trim().is_empty() {
        bail!("empty query");
    }
    let db = a.db.path();
    let mut out = Printer {
        csv: (a.format == SqlFormat::Csv).then(|| csv::Writer::from_writer(super::out::stdout())),
        out: super::out::stdout(),
        format: a.format,
        names: Vec::new(),
        table: None,
        rows: 0,
    };
    let ran = sql::run(&db, &query, &mut out);
    out.out.flush()?;
    if let Some(w) = &mut out.csv {
        w.flush()?;
    }
    for d in ran? {
        eprintln!("pfstatelog: warning: {db}: damaged data, left out of this answer: {d}");
    }
    Ok(super::FOUND)
}

/// The rows of each statement in the format asked.
struct Printer {
    out: super::out::Out,
    format: SqlFormat,
    names: Vec<String>,
    table: Option<comfy_table::Table>,
    /// CSV's own writer over standard output, for the whole run.
    csv: Option<csv::Writer<super::out::Out>>,
    rows: u64,
}

impl SqlOut for Printer {
    fn columns(&mut self, names: &[String]) -> anyhow::Result<()> {
        self.names = names.to_vec();
        self.rows = 0;
        match self.format {
            SqlFormat::Table => {
                let mut t = comfy_table::Table::new();
                t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED)
                    .set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
                t.set_header(names.to_vec());
                self.table = Some(t);
            }
            SqlFormat::Csv => {
                if let Some(w) = &mut self.csv {
                    w.write_record(names)?;
                }
            }
            SqlFormat::Json => self.out.write_all(b"[")?,
        }
        Ok(())
    }

    fn row(&mut self, values: &[SqlValue<'_>]) -> anyhow::Result<()> {
        match self.format {
            SqlFormat::Table => {
                if let Some(t) = &mut self.table {
                    t.add_row(values.iter().map(|v| text(v, "NULL")));
                }
            }
            SqlFormat::Csv => {
                if let Some(w) = &mut self.csv {
                    w.write_record(values.iter().map(|v| text(v, "")))?;
                }
            }
            SqlFormat::Json => {
                let mut o = serde_json::Map::new();
                for (n, v) in self.names.iter().zip(values) {
                    o.insert(n.clone(), json(v));
                }
                self.out
                    .write_all(if self.rows == 0 { b"\n" } else { b",\n" })?;
                serde_json::to_writer(&mut self.out, &o)?;
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn end(&mut self) -> anyhow::Result<()> {
        match self.format {
            SqlFormat::Table => {
                if let Some(t) = self.table.take() {
                    let n = self.rows;
                    writeln!(self.out, "{t}")?;
                    writeln!(self.out, "({n} row{})", if n == 1 { "" } else { "s" })?;
                }
            }
            SqlFormat::Csv => {}
            SqlFormat::Json => {
                self.out
                    .write_all(if self.rows == 0 { b"]\n" } else { b"\n]\n" })?;
            }
        }
        Ok(())
    }
}

fn text(v: &SqlValue<'_>, null: &str) -> String {
    match *v {
        SqlValue::Null => null.to_string(),
        SqlValue::Int(i) => i.to_string(),
        SqlValue::Real(f) => f.to_string(),
        SqlValue::Text(t) => String::from_utf8_lossy(t).into_owned(),
        SqlValue::Blob(b) => hex(b),
    }
}

fn json(v: &SqlValue<'_>) -> serde_json::Value {
    use serde_json::Value as J;
    match *v {
        SqlValue::Null => J::Null,
        SqlValue::Int(i) => J::from(i),
        SqlValue::Real(f) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
        SqlValue::Text(t) => J::String(String::from_utf8_lossy(t).into_owned()),
        SqlValue::Blob(b) => J::String(hex(b)),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
