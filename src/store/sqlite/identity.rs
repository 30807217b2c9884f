//! The database's identity (the `identity` table): a random UUID given once, so
//! an export's manifest can name the database it came from wherever the file is copied.

use rusqlite::{Connection, OptionalExtension};

/// The database's UUID; `None` when its row is missing.
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

/// Give a new database its UUID, in the transaction that creates its schema.
pub(crate) fn give(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO identity (one, uuid, created_us, how) VALUES (1, ?1, ?2, ?3)",
        rusqlite::params![
            uuid::Uuid::new_v4().hyphenated().to_string(),
            crate::time::wall_us(),
            "created",
        ],
    )?;
    Ok(())
}
