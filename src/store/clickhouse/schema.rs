//! The tables of a pfstatelog database on ClickHouse, and their schema version.
//!
//! Every table is a ReplacingMergeTree whose rows carry a version: shipping the same rows
//! again, resending after a crash, or two log hosts shipping the same states only add
//! copies, and every read keeps the newest copy of each identity itself (`LIMIT 1 BY`),
//! never waiting for background merges. Only types and clauses an 18.16 server accepts.

use super::Client;
use anyhow::bail;

/// The schema this pfstatelog writes and reads; a later release migrates from it.
pub const SCHEMA_VERSION: i64 = 1;

/// The columns of a lifetime, in the order rows are written and read.
pub const LIFETIME_COLS: &str =
    "public_ip, public_port, dur_class, start_us, creator_id, state_id, \
     end_us, end_reason, last_us, private_ip, private_port, remote_ip, remote_port, \
     proto, af, direction, ifname, nat, packets0, packets1, bytes0, bytes1";

/// What identifies one lifetime, whoever shipped it.
pub const IDENTITY: &str = "creator_id, state_id, start_us";

const TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS pfstatelog_meta (
        key String, value String, version UInt64
    ) ENGINE = ReplacingMergeTree(version) ORDER BY key",
    // Sorted by the public pair `who` asks, then the duration class, then the start: a pair
    // reused 100,000 times is read one bounded start range per class. An open lifetime is
    // class 14; once its end is known a row of its closed class and a higher version is
    // added, and reads keep that one.
    "CREATE TABLE IF NOT EXISTS lifetimes (
        public_ip FixedString(16), public_port UInt16, dur_class UInt8, start_us Int64,
        creator_id UInt32, state_id UInt64,
        end_us Nullable(Int64), end_reason Nullable(String), last_us Int64,
        private_ip FixedString(16), private_port UInt16,
        remote_ip FixedString(16), remote_port UInt16,
        proto UInt8, af UInt8, direction UInt8, ifname String, nat UInt8,
        packets0 UInt64, packets1 UInt64, bytes0 UInt64, bytes1 UInt64,
        recorder String, version UInt64
    ) ENGINE = ReplacingMergeTree(version)
      PARTITION BY toYYYYMM(toDateTime(intDiv(start_us, 1000000)))
      ORDER BY (public_ip, public_port, dur_class, start_us, creator_id, state_id)",
    "CREATE TABLE IF NOT EXISTS runs (
        recorder String, id Int64, kind String, source String,
        first_us Nullable(Int64), last_us Nullable(Int64),
        started_wall Int64, stopped_wall Nullable(Int64),
        packets Int64, messages Int64, drops Int64, decode_errors Int64, skipped Int64,
        status String, pid Nullable(Int64), sw_version Nullable(String), version UInt64
    ) ENGINE = ReplacingMergeTree(version) ORDER BY (recorder, id)",
    "CREATE TABLE IF NOT EXISTS gaps (
        recorder String, run_id Int64, start_us Int64, kind String,
        end_us Int64, count Int64, detail String, version UInt64
    ) ENGINE = ReplacingMergeTree(version)
      PARTITION BY toYYYYMM(toDateTime(intDiv(start_us, 1000000)))
      ORDER BY (recorder, run_id, start_us, kind)",
    "CREATE TABLE IF NOT EXISTS creators (
        recorder String, creator_id UInt32, flavor String, header_version Int64,
        record_version Nullable(Int64), first_us Int64, last_us Int64, version UInt64
    ) ENGINE = ReplacingMergeTree(version) ORDER BY (recorder, creator_id)",
];

/// Create the database and its tables if missing, and check (or set) the schema version.
pub fn ensure(c: &Client) -> anyhow::Result<()> {
    c.exec_server(&format!(
        "CREATE DATABASE IF NOT EXISTS {}",
        c.target.database
    ))?;
    for t in TABLES {
        c.exec(t)?;
    }
    match read_version(c)? {
        Some(v) if v > SCHEMA_VERSION => bail!(
            "{}: the tables are at schema {v}, newer than this pfstatelog knows ({SCHEMA_VERSION}): upgrade pfstatelog",
            c.target.shown()
        ),
        Some(_) => Ok(()),
        None => {
            let mut e = super::rowbinary::Encoder::default();
            e.str("schema");
            e.str(&SCHEMA_VERSION.to_string());
            e.u64(SCHEMA_VERSION as u64);
            c.insert("pfstatelog_meta", "key, value, version", &e.buf)
        }
    }
}

/// The schema version the meta table records (None: not yet set).
pub fn read_version(c: &Client) -> anyhow::Result<Option<i64>> {
    let body = c.select_all(
        "SELECT value FROM pfstatelog_meta WHERE key = 'schema' ORDER BY version DESC LIMIT 1",
    )?;
    let mut d = super::rowbinary::Decoder::new(&body[..]);
    if body.is_empty() {
        return Ok(None);
    }
    let v = d.str()?;
    match v.parse::<i64>() {
        Ok(v) => Ok(Some(v)),
        Err(_) => bail!("{}: unreadable schema version \"{v}\"", c.target.shown()),
    }
}
