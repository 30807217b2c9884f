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
use crate::store::sqlite::shipped::{Field, Small, Spool};
use crate::syslog::Logger;
use anyhow::bail;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Rows per INSERT: few, large inserts are what ClickHouse wants (each is a part on disk).
const BATCH_ROWS: usize = 100_000;

/// What one ship sent.
#[derive(Debug, Default, Clone, Copy)]
pub struct Shipped {
    pub lifetimes: u64,
    pub runs: u64,
    pub gaps: u64,
    pub creators: u64,
    /// The round was ended by a stop before it was all sent (the cursor did not move).
    pub stopped: bool,
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

/// A database being shipped to one server: the server's client, and the file as the
/// SQLite store lends it to a shipper (read in snapshots, the cursor kept in it).
pub struct Shipper {
    c: Client,
    db: String,
    name: String,
    /// The cursor's key: the server and database, whoever logs in.
    dest: String,
    spool: Spool,
    /// The schema was checked and the server asked whether it still holds what the cursor
    /// says (once per process: a server whose database was dropped gets everything again).
    checked: bool,
    /// The runs, gaps and creators last accepted, as sent (without their version): unchanged,
    /// they are not sent again.
    small_sent: [Vec<u8>; 3],
}

impl Shipper {
    /// Check the arguments and open the file; nothing is sent yet.
    pub fn new(
        db: &str,
        url: &str,
        name: &str,
        password: Option<String>,
    ) -> anyhow::Result<Shipper> {
        if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
            bail!("--name: 1 to 255 printable characters");
        }
        let target = Target::parse(url)?;
        let dest = format!("{}:{}/{}", target.host, target.port, target.database);
        let c = Client::new(target, password)?;
        Ok(Shipper {
            c,
            db: db.to_string(),
            name: name.to_string(),
            dest,
            spool: Spool::open(db)?,
            checked: false,
            small_sent: Default::default(),
        })
    }

    /// The server, as messages name it.
    pub fn shown(&self) -> String {
        self.c.target.shown()
    }

    /// Send what the server does not have yet: what changed in the file since the last
    /// ship the server accepted, then runs, gaps and creators. The cursor moves only once
    /// the server accepted it all; `stop` set between two inserts ends the round there, the
    /// cursor where it was.
    pub fn once(&mut self, stop: &AtomicBool) -> anyhow::Result<Shipped> {
        let db = self.db.clone();
        if !self.checked {
            schema::ensure(&self.c)?;
            if self.spool.cursor(&self.dest)?.is_some() && !self.server_holds_any()? {
                self.spool.forget(&self.dest)?;
            }
            self.checked = true;
        }
        let since = self.spool.cursor(&self.dest)?;
        let c = &self.c;
        let name = self.name.as_str();
        let version = crate::time::wall_us().max(0) as u64;
        let mut sent = Shipped::default();

        let cols = format!("{LIFETIME_COLS}, recorder, version");
        let mut e = Encoder::default();
        let mut n = 0usize;
        let mut stopped = false;
        let mut each = |l: &Lifetime| -> anyhow::Result<()> {
            encode_lifetime(&mut e, l, name);
            n += 1;
            if n >= BATCH_ROWS {
                c.insert("lifetimes", &cols, &e.buf)?;
                e.buf.clear();
                sent.lifetimes += n as u64;
                n = 0;
                if stop.load(Ordering::Relaxed) {
                    stopped = true;
                    // Not an error the user sees: the round ends here, unrecorded.
                    bail!(STOPPED);
                }
            }
            Ok(())
        };
        // Creators, gaps, runs: each row encoded without its version.
        let mut small: [(Vec<Vec<u8>>, u64); 3] = Default::default();
        let mut keep = |t: Small, fields: &[Field<'_>]| {
            let mut e = Encoder::default();
            e.str(name);
            for f in fields {
                match *f {
                    Field::U32(v) => e.u32(v),
                    Field::I64(v) => e.i64(v),
                    Field::OptI64(v) => e.opt_i64(v),
                    Field::Str(v) => e.str(v),
                    Field::OptStr(v) => e.opt_str(v),
                }
            }
            let i = t as usize;
            small[i].0.push(e.buf);
            small[i].1 += 1;
        };
        let round = match self.spool.round(since, &mut each, &mut keep) {
            Err(_) if stopped => {
                return Ok(Shipped {
                    stopped: true,
                    ..sent
                })
            }
            r => r?,
        };
        if n > 0 {
            c.insert("lifetimes", &cols, &e.buf)?;
            sent.lifetimes += n as u64;
        }
        let walked = round.walked;
        if walked.damaged > 0 || !walked.groups.is_empty() {
            bail!(
                "{db}: database damaged: {} lifetime(s) or group(s) could not be read; the rest was shipped, its runs were not (pfstatelog check {db})",
                walked.damaged + walked.groups.len() as u64
            );
        }
        for (i, ((rows, count), (table, cols))) in small.iter().zip(SMALL).enumerate() {
            if rows.is_empty() || self.small_sent[i] == rows.concat() {
                continue;
            }
            let mut body = Vec::new();
            for r in rows {
                body.extend_from_slice(r);
                body.extend_from_slice(&version.to_le_bytes());
                if body.len() > 16 << 20 {
                    c.insert(table, cols, &body)?;
                    body.clear();
                }
            }
            if !body.is_empty() {
                c.insert(table, cols, &body)?;
            }
            self.small_sent[i] = rows.concat();
            match i {
                0 => sent.creators = *count,
                1 => sent.gaps = *count,
                _ => sent.runs = *count,
            }
        }
        // Everything above was accepted (HTTP 200): only now does the cursor move.
        self.spool
            .save(&self.dest, &round.to, sent.lifetimes, version as i64)?;
        Ok(sent)
    }

    /// Whether the file changed since the last look (see [`Spool::data_version`]).
    pub fn data_version(&self) -> anyhow::Result<i64> {
        self.spool.data_version()
    }

    /// Whether the server holds anything this recorder shipped: its runs (sent by every
    /// completed ship; a key lookup, where lifetimes would be a scan).
    fn server_holds_any(&self) -> anyhow::Result<bool> {
        let body = self.c.select_all(&format!(
            "SELECT toUInt8(1) FROM runs WHERE recorder = {} LIMIT 1",
            super::quote(&self.name)
        ))?;
        Ok(!body.is_empty())
    }
}

/// The marker of a round ended by `stop` (never shown).
const STOPPED: &str = "stopped";

/// Ship what the file at `db` holds and `url` does not, as recorder `name`.
pub fn ship(db: &str, url: &str, name: &str, password: Option<String>) -> anyhow::Result<Shipped> {
    Shipper::new(db, url, name, password)?.once(&AtomicBool::new(false))
}

/// The server's table and columns of each small table, in [`Small`]'s order.
const SMALL: [(&str, &str); 3] = [
    (
        "creators",
        "recorder, creator_id, flavor, header_version, record_version, first_us, last_us, version",
    ),
    (
        "gaps",
        "recorder, run_id, start_us, kind, end_us, count, detail, version",
    ),
    (
        "runs",
        "recorder, id, kind, source, first_us, last_us, started_wall, stopped_wall, \
         packets, messages, drops, decode_errors, skipped, status, pid, sw_version, version",
    ),
];

/// How often `--follow` looks for new writes.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);
/// The longest wait between two attempts while the server cannot be reached.
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// Keep shipping what the recorder writes until `stop` is set: a round whenever the file
/// changed (and at least every 30 s, for the running run's progress), retrying with
/// exponential backoff while the server cannot be reached. An outage is logged once when it
/// begins and once when it ends; a stop finishes the insert in flight, then returns.
pub fn follow(s: &mut Shipper, stop: &AtomicBool, log: &Logger) -> anyhow::Result<()> {
    let mut failing: Option<(std::time::Instant, String)> = None;
    let mut wait = FOLLOW_EVERY;
    let mut last_version: Option<i64> = None;
    let mut last_round = std::time::Instant::now();
    let mut first = true;
    while !stop.load(Ordering::Relaxed) {
        let version = s.data_version().ok();
        let due = first
            || failing.is_some()
            || version.is_none()
            || version != last_version
            || last_round.elapsed() >= BACKOFF_CAP;
        if due {
            last_round = std::time::Instant::now();
            match s.once(stop) {
                Ok(sent) => {
                    first = false;
                    last_version = version;
                    wait = FOLLOW_EVERY;
                    if let Some((since, _)) = failing.take() {
                        log.warn_everywhere(&format!(
                            "{}: shipping again after {} (the spool kept everything meanwhile)",
                            s.shown(),
                            crate::time::format_duration(since.elapsed().as_micros() as i64)
                        ));
                    }
                    if sent.lifetimes > 0 && log.verbose() {
                        log.info(&format!(
                            "shipped {} lifetimes to {}",
                            sent.lifetimes,
                            s.shown()
                        ));
                    }
                }
                Err(e) => {
                    let why = format!("{e:#}");
                    if failing.is_none() {
                        log.warn_everywhere(&format!(
                            "cannot ship: {why}; the spool keeps everything, retrying with backoff up to {} s",
                            BACKOFF_CAP.as_secs()
                        ));
                        failing = Some((std::time::Instant::now(), why));
                        wait = FOLLOW_EVERY;
                    } else {
                        wait = (wait * 2).min(BACKOFF_CAP);
                    }
                }
            }
        }
        // Sleep in short steps: a stop is heard within a tenth of a second.
        let until = std::time::Instant::now() + wait;
        while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}
