//! `ship`: send what a local database holds to the central ClickHouse database. Every row
//! carries a version, and reads keep the newest copy of each identity, so shipping twice,
//! resending after a crash, or two log hosts shipping the same states leave each lifetime
//! answered once.
//!
//! Order matters for what the answers vouch for: lifetimes (and gaps) first, runs last, so
//! a ship cut short never makes the server claim it watched a range whose lifetimes it
//! does not hold.

use super::reader::class_of;
use super::rowbinary::Encoder;
use super::schema::{self, LIFETIME_COLS};
use super::{Client, Target};
use crate::model::Lifetime;
use crate::store::sqlite::reader::SqliteReader;
use crate::store::ReadStore;
use anyhow::{bail, Context};

/// Rows per INSERT: few, large inserts are what ClickHouse wants (each is a part on disk).
const BATCH_ROWS: usize = 100_000;

/// What one ship sent.
#[derive(Debug, Default, Clone, Copy)]
pub struct Shipped {
    pub lifetimes: u64,
    pub runs: u64,
    pub gaps: u64,
    pub creators: u64,
}

/// A recorder's name: the host's name unless given.
pub fn default_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it
    // or truncates, and we stop at the first NUL or the end.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let n = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let s = String::from_utf8_lossy(&buf[..n]).into_owned();
    if s.is_empty() {
        "localhost".into()
    } else {
        s
    }
}

/// Which copy of a lifetime wins: one whose end is known over an open one, then the one
/// seen last.
pub fn lifetime_version(l: &Lifetime) -> u64 {
    let seen = l.last_seen.clamp(0, (1 << 62) - 1) as u64;
    if l.end.is_some() {
        (1 << 62) | seen
    } else {
        seen
    }
}

fn encode_lifetime(e: &mut Encoder, l: &Lifetime, recorder: &str) {
    e.addr(&l.public_ip);
    e.u16(l.public_port);
    e.u8(class_of(l.start, l.end));
    e.i64(l.start);
    e.u32(l.creator_id);
    e.u64(l.state_id);
    e.opt_i64(l.end);
    e.opt_str(l.end_reason.as_deref());
    e.i64(l.last_seen);
    e.addr(&l.private_ip);
    e.u16(l.private_port);
    e.addr(&l.remote_ip);
    e.u16(l.remote_port);
    e.u8(l.proto);
    e.u8(l.af);
    e.u8(l.direction);
    e.str(&l.ifname);
    e.u8(u8::from(l.nat));
    e.u64(l.packets[0]);
    e.u64(l.packets[1]);
    e.u64(l.bytes[0]);
    e.u64(l.bytes[1]);
    e.str(recorder);
    e.u64(lifetime_version(l));
}

/// Ship everything the file at `db` holds to `url` as recorder `name`.
pub fn ship(db: &str, url: &str, name: &str, password: Option<String>) -> anyhow::Result<Shipped> {
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        bail!("--name: 1 to 255 printable characters");
    }
    let c = Client::new(Target::parse(url)?, password)?;
    let local = SqliteReader::open(db)?;
    schema::ensure(&c)?;
    // One read snapshot for the whole ship: the runs sent last describe exactly the
    // lifetimes sent before them, even while a recorder writes the file.
    let conn = local.conn();
    let _snapshot = conn
        .unchecked_transaction()
        .with_context(|| format!("reading {db}"))?;
    let version = crate::time::wall_us().max(0) as u64;
    let mut sent = Shipped::default();

    let mut e = Encoder::default();
    {
        let mut st = conn.prepare(
            "SELECT creator_id, flavor, version, record_version, first_us, last_us FROM creators",
        )?;
        let mut q = st.query([])?;
        while let Some(r) = q.next()? {
            e.str(name);
            e.u32(r.get::<_, i64>(0)? as u32);
            e.str(&r.get::<_, String>(1)?);
            e.i64(r.get(2)?);
            e.opt_i64(r.get(3)?);
            e.i64(r.get(4)?);
            e.i64(r.get(5)?);
            e.u64(version);
            sent.creators += 1;
        }
    }
    if !e.buf.is_empty() {
        c.insert(
            "creators",
            "recorder, creator_id, flavor, header_version, record_version, first_us, last_us, version",
            &e.buf,
        )?;
    }

    let cols = format!("{LIFETIME_COLS}, recorder, version");
    let mut e = Encoder::default();
    let mut n = 0usize;
    let walked = local.each_lifetime(i64::MIN, i64::MAX, &mut |l| {
        encode_lifetime(&mut e, l, name);
        n += 1;
        if n >= BATCH_ROWS {
            c.insert("lifetimes", &cols, &e.buf)?;
            e.buf.clear();
            sent.lifetimes += n as u64;
            n = 0;
        }
        Ok(())
    })?;
    if n > 0 {
        c.insert("lifetimes", &cols, &e.buf)?;
        sent.lifetimes += n as u64;
    }
    if walked.damaged > 0 || !walked.groups.is_empty() {
        bail!(
            "{db}: database damaged: {} lifetime(s) or group(s) could not be read; the rest was shipped, its runs were not (pfstatelog check {db})",
            walked.damaged + walked.groups.len() as u64
        );
    }

    let mut e = Encoder::default();
    {
        let mut st = conn.prepare(
            "SELECT run_id, start_us, end_us, kind, count, coalesce(detail, '') FROM gaps",
        )?;
        let mut q = st.query([])?;
        while let Some(r) = q.next()? {
            e.str(name);
            e.i64(r.get(0)?);
            e.i64(r.get(1)?);
            e.str(&r.get::<_, String>(3)?);
            e.i64(r.get(2)?);
            e.i64(r.get(4)?);
            e.str(&r.get::<_, String>(5)?);
            e.u64(version);
            sent.gaps += 1;
            if e.buf.len() > 16 << 20 {
                c.insert("gaps", GAP_COLS, &e.buf)?;
                e.buf.clear();
            }
        }
    }
    if !e.buf.is_empty() {
        c.insert("gaps", GAP_COLS, &e.buf)?;
    }

    let mut e = Encoder::default();
    {
        let newest: Option<i64> = conn.query_row("SELECT max(id) FROM runs", [], |r| r.get(0))?;
        let mut st = conn.prepare(
            "SELECT id, kind, source, first_us, last_us, started_wall, stopped_wall, packets,
                    messages, drops, decode_errors, skipped, status, pid, version FROM runs",
        )?;
        let mut q = st.query([])?;
        while let Some(r) = q.next()? {
            let id: i64 = r.get(0)?;
            let mut status: String = r.get(12)?;
            // As a local reader takes it: `running` only while its writer is alive.
            if status == "running"
                && (Some(id) != newest || !crate::store::sqlite::writer_alive(db))
            {
                status = "abnormal".into();
            }
            e.str(name);
            e.i64(id);
            e.str(&r.get::<_, String>(1)?);
            e.str(&r.get::<_, String>(2)?);
            e.opt_i64(r.get(3)?);
            e.opt_i64(r.get(4)?);
            e.i64(r.get(5)?);
            e.opt_i64(r.get(6)?);
            for i in 7..12 {
                e.i64(r.get(i)?);
            }
            e.str(&status);
            e.opt_i64(r.get(13)?);
            e.opt_str(r.get::<_, Option<String>>(14)?.as_deref());
            e.u64(version);
            sent.runs += 1;
        }
    }
    if !e.buf.is_empty() {
        c.insert(
            "runs",
            "recorder, id, kind, source, first_us, last_us, started_wall, stopped_wall, \
             packets, messages, drops, decode_errors, skipped, status, pid, sw_version, version",
            &e.buf,
        )?;
    }
    Ok(sent)
}

const GAP_COLS: &str = "recorder, run_id, start_us, kind, end_us, count, detail, version";
