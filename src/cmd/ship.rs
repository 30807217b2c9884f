//! `ship`: send a local database to the central ClickHouse database.

use crate::cli::ShipArgs;
use crate::store::clickhouse::{password, ship};

pub fn run(a: ShipArgs) -> anyhow::Result<u8> {
    let db = a.db.path();
    let name = a.name.clone().unwrap_or_else(ship::default_name);
    let pw = password(a.password_file.as_deref())?;
    let s = ship::ship(&db, &a.to, &name, pw)?;
    eprintln!(
        "pfstatelog: shipped {} lifetimes, {} runs, {} gaps, {} creators of {db} to {} as {name}",
        s.lifetimes, s.runs, s.gaps, s.creators, a.to
    );
    Ok(0)
}
