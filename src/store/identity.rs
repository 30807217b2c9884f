//! The database's identity (migrations/0002_identity.sql): a random UUID given once, so
//! an export's manifest can name the database it came from wherever the file is copied.

use rusqlite::{Connection, OptionalExtension};

/// The database's UUID; `None` for a file from before schema 2 that no writer upgraded.
pub fn uuid(conn: &Connection) -> rusqlite::Result<Option<String>> {
    let has: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'identity'",
        [],
        |r| r.get(0),
    )?;
    if !has {
        return Ok(None);
    }
    conn.query_row("SELECT uuid FROM identity WHERE one = 1", [], |r| r.get(0))
        .optional()
}

/// Give the database its UUID, in the migration's transaction; `created`: a new file,
/// else one upgraded from schema 1.
pub(crate) fn give(conn: &Connection, created: bool) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO identity (one, uuid, created_us, how) VALUES (1, ?1, ?2, ?3)",
        rusqlite::params![
            uuid::Uuid::new_v4().hyphenated().to_string(),
            crate::time::wall_us(),
            if created { "created" } else { "upgraded" },
        ],
    )?;
    Ok(())
}
