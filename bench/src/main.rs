//! pfstatelog-bench: synthetic captures and databases, and the benchmarks of BENCHMARKS.md.
//!
//! Every figure in BENCHMARKS.md comes from one of these subcommands; each prints the
//! command line it was run with, the machine, and what else was running, so its output can
//! be pasted as is.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use pfstatelog::model::Flavor;
use pfstatelog::model::{Event, Micros};
use pfstatelog::pipeline::{decode_frame, DecodeStats, Outcome};
use pfstatelog::report::line::event_line;
use pfstatelog::source::file::CaptureFile;
use pfstatelog::store::sqlite::query;
use pfstatelog::store::sqlite::writer::{RunCounters, RunInfo, Writer};
use pfstatelog::store::sqlite::{self as store, blob_addr};
use pfstatelog::store::WhoFilter;
use pfstatelog::track::Tracker;
use pfstatelog_bench::gen::{self, DbBuilder, GenConfig, LINKTYPE_ETHERNET, LINKTYPE_PFSYNC};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// The allocator the pfstatelog binary uses (src/main.rs), so in-process runs measure it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "pfstatelog-bench",
    about = "Generators and benchmarks for pfstatelog"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct GenArgs {
    /// State lifetimes to create.
    #[arg(long, default_value_t = 1_000_000)]
    states: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// New states per second of capture time.
    #[arg(long, default_value_t = 1200.0)]
    rate: f64,
    /// Start of the capture: epoch microseconds, or RFC 3339.
    #[arg(long)]
    start: Option<String>,
    /// INS and DEL_C only (no UPD_C).
    #[arg(long)]
    no_updates: bool,
    /// Delete every state before the end.
    #[arg(long)]
    drain: bool,
    /// INS only: no state is ever updated or deleted, all stay open (overrides --drain).
    #[arg(long)]
    never_end: bool,
    /// Hot static-port public pairs ...
    #[arg(long, default_value_t = 10)]
    hot_pairs: u32,
    /// ... each reused this many times (0: no hot pairs).
    #[arg(long, default_value_t = 0)]
    reuse: u64,
    /// Private IPv4 hosts.
    #[arg(long, default_value_t = 20_000)]
    hosts: u32,
    /// openbsd | freebsd
    #[arg(long, default_value = "openbsd")]
    flavor: String,
}

impl GenArgs {
    fn config(&self) -> anyhow::Result<GenConfig> {
        let start_us = match &self.start {
            None => gen::DEFAULT_START_US,
            Some(s) => match s.parse::<i64>() {
                Ok(v) => v,
                Err(_) => pfstatelog::time::parse_time(s, &pfstatelog::time::Zone::Utc)
                    .map_err(|e| anyhow::anyhow!("--start: {e}"))?,
            },
        };
        let flavor = match self.flavor.as_str() {
            "openbsd" => Flavor::OpenBsd,
            "freebsd" => Flavor::FreeBsd,
            f => bail!("--flavor {f}: openbsd or freebsd"),
        };
        Ok(GenConfig {
            seed: self.seed,
            states: self.states,
            rate: self.rate,
            start_us,
            updates: !self.no_updates,
            hot_pairs: self.hot_pairs,
            reuse: self.reuse,
            drain: self.drain,
            never_end: self.never_end,
            private_hosts: self.hosts,
            flavor,
            ..GenConfig::default()
        })
    }

    /// The generator's share when `copies` shifted copies make up the whole (`--copies`):
    /// N/K states, drained so that every copy is closed. Returns the config and K (≥ 1).
    fn config_for_copies(&self, copies: u32) -> anyhow::Result<(GenConfig, u32)> {
        let mut cfg = self.config()?;
        let copies = copies.max(1);
        if copies > 1 {
            if cfg.never_end {
                bail!("--copies needs closed states: it cannot be used with --never-end");
            }
            cfg.states /= copies as u64;
            cfg.reuse /= copies as u64;
            cfg.drain = true;
        }
        Ok((cfg, copies))
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Close every day of a database (docs/integrity.md) and report the CPU time it took:
    /// every creator's days from its first to its last message are marked, then sealed.
    SealBench {
        #[arg(long)]
        db: String,
    },
    /// Write a synthetic pfsync capture (classic pcap).
    GenCapture {
        #[command(flatten)]
        g: GenArgs,
        #[arg(long)]
        out: String,
        /// 1 (Ethernet + IPv4) or 246 (LINKTYPE_PFSYNC, pfsync header first).
        #[arg(long, default_value_t = 1)]
        linktype: u32,
    },
    /// Build a database of generated states directly (bulk load of the recorder's rows).
    GenDb {
        #[command(flatten)]
        g: GenArgs,
        #[arg(long)]
        db: String,
        /// Generate --states / K states and append K - 1 time-shifted copies of them
        /// (--reuse is the total over all copies; implies --drain).
        #[arg(long, default_value_t = 1)]
        copies: u32,
    },
    /// Check that gen-db writes exactly the rows `pfstatelog import` writes for the same
    /// seed (small sizes).
    VerifyDb {
        #[command(flatten)]
        g: GenArgs,
        #[arg(long, default_value = "/work/bench-data/verify")]
        dir: String,
    },
    /// Time an import of a capture into a database (optionally a copy of a pre-filled one).
    ImportBench {
        #[arg(long)]
        db: String,
        #[arg(long)]
        capture: String,
        /// Copy this database to --db first.
        #[arg(long)]
        base: Option<String>,
        /// binary: run `pfstatelog import` (the figure); inproc: the same pipeline in this
        /// process with per-phase timings.
        #[arg(long, default_value = "binary")]
        mode: String,
        /// The pfstatelog binary [default: next to this one].
        #[arg(long)]
        pfstatelog: Option<String>,
        /// Drop the OS page cache before the run (root).
        #[arg(long)]
        cold: bool,
        /// inproc only: enable SQLITE_DBCONFIG_ENABLE_QPSG on the writer's connection.
        #[arg(long)]
        qpsg: bool,
        /// inproc only: PRAGMA cache_size for the writer, MiB.
        #[arg(long, default_value_t = 0)]
        cache_mib: i64,
        /// inproc only: events per transaction (default 20,000 as the recorder).
        #[arg(long, default_value_t = 0)]
        batch_events: usize,
        /// inproc only: write as `record` does (new lifetimes held only until the next
        /// commit) and commit every this many ms of capture time, as a live recorder
        /// commits every second of wall time; the recorder's write cost without the
        /// network and its timing.
        #[arg(long, default_value_t = 0)]
        record_every_ms: u64,
        /// inproc with --record-every-ms: how long new lifetimes stay journal (journaled)
        /// before they move into states, seconds (default: the recorder's).
        #[arg(long)]
        young_secs: Option<u64>,
        /// inproc with --record-every-ms: rewrite a journal run this many seconds after it
        /// was written (default: the recorder's).
        #[arg(long)]
        rewrite_secs: Option<u64>,
    },
    /// `pfstatelog sql` in process: the `lifetimes` table asked for a public ip:port at a
    /// time (against store::query::who on the same probes), and a full count.
    SqlBench {
        #[arg(long)]
        db: String,
        #[arg(long, default_value_t = 2000)]
        queries: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Latency of store::query::who on known public ip:port at times inside lifetimes.
    WhoBench {
        #[arg(long)]
        db: String,
        #[arg(long, default_value_t = 2000)]
        queries: usize,
        /// Cold queries (each after dropping the page cache, root only; 0 = skip).
        #[arg(long, default_value_t = 0)]
        cold: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// --window for every query, seconds.
        #[arg(long, default_value_t = 0)]
        window: i64,
        /// Enable SQLITE_DBCONFIG_ENABLE_QPSG on the query connection.
        #[arg(long)]
        qpsg: bool,
    },
    /// Latency of store::query::history of one host over a day.
    HistoryBench {
        #[arg(long)]
        db: String,
        #[arg(long, default_value_t = 200)]
        queries: usize,
        #[arg(long, default_value_t = 0)]
        cold: usize,
        #[arg(long, default_value_t = 8)]
        seed: u64,
        #[arg(long, default_value_t = 20_000)]
        hosts: u32,
    },
    /// `pfstatelog who --batch` of N complaints.
    BatchBench {
        #[arg(long)]
        db: String,
        #[arg(long, default_value_t = 10_000)]
        lines: usize,
        #[arg(long, default_value_t = 9)]
        seed: u64,
        /// The pfstatelog binary [default: next to this one].
        #[arg(long)]
        pfstatelog: Option<String>,
        #[arg(long)]
        cold: bool,
        /// Complaints about any state (LAN, rdr, untranslated IPv6 too), not only NAT.
        #[arg(long)]
        any: bool,
    },
    /// Size of a database: bytes per state, per table and index (dbstat).
    Size {
        #[arg(long)]
        db: String,
    },
    /// EXPLAIN QUERY PLAN of the who and history queries, and rows visited per query.
    Explain {
        #[arg(long)]
        db: String,
        #[arg(long, default_value_t = 200)]
        queries: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    banner();
    match cli.cmd {
        Cmd::GenCapture { g, out, linktype } => gen_capture(&g, &out, linktype),
        Cmd::SealBench { db } => seal_bench(&db),
        Cmd::GenDb { g, db, copies } => gen_db(&g, &db, copies),
        Cmd::VerifyDb { g, dir } => verify_db(&g, &dir),
        Cmd::ImportBench {
            db,
            capture,
            base,
            mode,
            pfstatelog,
            cold,
            qpsg,
            cache_mib,
            batch_events,
            record_every_ms,
            young_secs,
            rewrite_secs,
        } => import_bench(
            &db,
            &capture,
            base.as_deref(),
            &mode,
            &sibling(pfstatelog),
            cold,
            ConnTweaks {
                qpsg,
                cache_mib,
                batch_events,
                record_every_ms,
                young_secs,
                rewrite_secs,
            },
        ),
        Cmd::SqlBench { db, queries, seed } => sql_bench(&db, queries, seed),
        Cmd::WhoBench {
            db,
            queries,
            cold,
            seed,
            window,
            qpsg,
        } => who_bench(&db, queries, cold, seed, window, qpsg),
        Cmd::HistoryBench {
            db,
            queries,
            cold,
            seed,
            hosts,
        } => history_bench(&db, queries, cold, seed, hosts),
        Cmd::BatchBench {
            db,
            lines,
            seed,
            pfstatelog,
            cold,
            any,
        } => batch_bench(&db, lines, seed, &sibling(pfstatelog), cold, any),
        Cmd::Size { db } => size(&db),
        Cmd::Explain { db, queries, seed } => explain(&db, queries, seed),
    }
}

// ---------------------------------------------------------------------------------------
// Environment.

fn banner() {
    let args: Vec<String> = std::env::args().collect();
    println!("# {}", args.join(" "));
    let head = Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short",
            "HEAD",
        ])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("# pfstatelog repository HEAD at run time: {head}");
    println!(
        "# {} | {} | {} | load {}",
        pfstatelog::time::format_rfc3339(pfstatelog::time::wall_us()),
        cpu_model(),
        mem_total(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}

/// The pfstatelog binary: as given, else the one next to this executable.
fn seal_bench(db: &str) -> anyhow::Result<()> {
    let conn = store::open_rw(db)?;
    conn.execute_batch(
        "DELETE FROM digests; DELETE FROM digest_dirty;
         WITH RECURSIVE d(c, day, last) AS (
             SELECT creator_id, first_us / 86400000000, last_us / 86400000000 FROM creators
             UNION ALL SELECT c, day + 1, last FROM d WHERE day < last)
         INSERT INTO digest_dirty SELECT c, day, 'close' FROM d;",
    )?;
    let (c0, t0) = (cpu_secs(false), Instant::now());
    let roots = store::digest::seal(&conn, Some(i64::MAX / 2), 0, 0)?;
    let (cpu, wall) = (cpu_secs(false) - c0, t0.elapsed().as_secs_f64());
    let n: u64 = roots.iter().map(|r| r.count).sum();
    let days = roots.iter().filter(|r| r.count > 0).count();
    println!(
        "seal: {n} lifetimes in {days} creator-days closed in {cpu:.2} s CPU ({wall:.2} s wall): {:.0} lifetimes per CPU-second",
        n as f64 / cpu.max(1e-9)
    );
    Ok(())
}

fn sibling(given: Option<String>) -> String {
    given.unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("pfstatelog")))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "pfstatelog".into())
    })
}

fn cpu_model() -> String {
    let s = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = s
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_string();
    let n = s.lines().filter(|l| l.starts_with("processor")).count();
    format!("{n} x {model}")
}

fn mem_total() -> String {
    let s = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kb: u64 = s
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    format!("{:.1} GiB RAM", kb as f64 / 1048576.0)
}

fn vm_hwm_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn children_maxrss_kb() -> u64 {
    // SAFETY: getrusage fills the struct we pass.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru.ru_maxrss as u64
    }
}

/// CPU seconds (user + system) of this process, or of its waited-for children.
fn cpu_secs(children: bool) -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(
            if children {
                libc::RUSAGE_CHILDREN
            } else {
                libc::RUSAGE_SELF
            },
            &mut ru,
        );
        let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
        t(ru.ru_utime) + t(ru.ru_stime)
    }
}

/// CPU time of the calling thread, seconds (phase timings that CPU contention does not
/// inflate).
fn tcpu() -> f64 {
    // SAFETY: clock_gettime fills the struct we pass.
    unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
        ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
    }
}

fn drop_caches() -> bool {
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

fn file_size(p: &str) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn db_bytes(p: &str) -> u64 {
    file_size(p) + file_size(&format!("{p}-wal"))
}

fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

fn remove_db(p: &str) {
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{p}{s}"));
    }
}

fn progress_line(msg: &str) {
    eprint!("\r{msg}    ");
    let _ = std::io::stderr().flush();
}

// ---------------------------------------------------------------------------------------
// Generators.

fn print_gen(st: &gen::GenStats) {
    let names = [
        "nat4-udp",
        "nat4-tcp",
        "nat4-long",
        "icmp4",
        "rdr",
        "lan",
        "nat66",
        "v6",
        "hot",
    ];
    let mix: Vec<String> = names
        .iter()
        .zip(st.by_kind.iter())
        .map(|(n, c)| format!("{n} {c}"))
        .collect();
    println!(
        "states {} ({}); peak open {}; messages INS {} UPD_C {} DEL_C {}; packets {}; span {} .. {}",
        st.states,
        mix.join(", "),
        st.peak_open,
        st.ins,
        st.upd_c,
        st.del_c,
        st.packets,
        st.first_us
            .map(pfstatelog::time::format_rfc3339)
            .unwrap_or_default(),
        st.last_us
            .map(pfstatelog::time::format_rfc3339)
            .unwrap_or_default(),
    );
}

fn gen_capture(g: &GenArgs, out: &str, linktype: u32) -> anyhow::Result<()> {
    if linktype != LINKTYPE_ETHERNET && linktype != LINKTYPE_PFSYNC {
        bail!("--linktype: 1 or 246");
    }
    let cfg = g.config()?;
    if let Some(d) = Path::new(out).parent() {
        std::fs::create_dir_all(d).ok();
    }
    let t0 = Instant::now();
    let f = std::fs::File::create(out).with_context(|| out.to_string())?;
    let (st, w) = gen::write_capture(&cfg, BufWriter::with_capacity(1 << 20, f), linktype)?;
    w.into_inner()
        .map_err(|e| anyhow::anyhow!("{out}: {e}"))?
        .sync_all()
        .ok();
    print_gen(&st);
    println!(
        "wrote {out}: {:.1} MiB in {:.1}s ({:.0} states/s generated)",
        mib(file_size(out)),
        t0.elapsed().as_secs_f64(),
        st.states as f64 / t0.elapsed().as_secs_f64()
    );
    Ok(())
}

fn gen_db(g: &GenArgs, db: &str, copies: u32) -> anyhow::Result<()> {
    let (cfg, copies) = g.config_for_copies(copies)?;
    if Path::new(db).exists() {
        bail!("{db} exists: gen-db builds a fresh database (delete it first)");
    }
    let t0 = Instant::now();
    let total = cfg.states;
    let mut last = Instant::now();
    let mut cb = |created: u64, rows: u64| {
        if last.elapsed() > Duration::from_secs(5) {
            last = Instant::now();
            let el = t0.elapsed().as_secs_f64();
            let eta = el / created.max(1) as f64 * (total.saturating_sub(created)) as f64;
            let created = created.min(total);
            progress_line(&format!(
                "gen-db: {created}/{total} states, {rows} rows, {el:.0}s, load ETA {eta:.0}s"
            ));
        }
    };
    let st = DbBuilder::build_replicated(&cfg, db, copies, &mut cb)?;
    eprintln!();
    print_gen(&st.gen);
    let size = db_bytes(db);
    println!(
        "built {db}: {} rows ({} open) in {:.1}s (load {:.1}s, {:.0} rows/s; indexes + ANALYZE {:.1}s); {:.1} MiB = {:.1} bytes/state (sort-built indexes)",
        st.rows,
        st.open_rows,
        t0.elapsed().as_secs_f64(),
        st.load_secs,
        st.rows as f64 / st.load_secs,
        st.index_secs,
        mib(size),
        size as f64 / st.rows.max(1) as f64
    );
    Ok(())
}

/// Columns compared between a recorder-written and a gen-db database.
const CMP_COLS: &str = "id, creator_id, state_id, ifname, af, proto, direction,
    w_addr0, w_port0, w_addr1, w_port1, w_rdomain, s_addr0, s_port0, s_addr1, s_port1,
    s_rdomain, s_af, nat, start_us, first_us, end_us, end_reason, last_us, updated_us, expire,
    packets0, packets1, bytes0, bytes1, rule, flavor";

fn verify_db(g: &GenArgs, dir: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let cfg = g.config()?;
    let cap = format!("{dir}/verify.pcap");
    let a = format!("{dir}/imported.db");
    let b = format!("{dir}/generated.db");
    remove_db(&a);
    remove_db(&b);
    let f = std::fs::File::create(&cap)?;
    let (st, w) = gen::write_capture(&cfg, BufWriter::new(f), LINKTYPE_ETHERNET)?;
    drop(w);
    print_gen(&st);
    let r = run_import_inproc(&a, &cap, false, ConnTweaks::default())?;
    println!("imported: {} states opened, {} closed", r.opened, r.closed);
    DbBuilder::build(&cfg, &b, &mut |_, _| {})?;
    let ca = pfstatelog::store::sqlite::pagesum::open(&a)?;
    let cb = pfstatelog::store::sqlite::pagesum::open(&b)?;
    let dump = |c: &Connection| -> anyhow::Result<Vec<Vec<rusqlite::types::Value>>> {
        let mut st = c.prepare(&format!("SELECT {CMP_COLS} FROM states ORDER BY id"))?;
        let n = st.column_count();
        let rows = st
            .query_map([], |r| {
                (0..n)
                    .map(|i| r.get::<_, rusqlite::types::Value>(i))
                    .collect::<rusqlite::Result<Vec<_>>>()
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    };
    let (ra, rb) = (dump(&ca)?, dump(&cb)?);
    let diff = ra.iter().zip(rb.iter()).filter(|(x, y)| x != y).count();
    println!(
        "rows: imported {}, generated {}; rows that differ: {diff}",
        ra.len(),
        rb.len()
    );
    if let Some((x, y)) = ra.iter().zip(rb.iter()).find(|(x, y)| x != y) {
        println!("first difference:\n  import  {x:?}\n  gen-db  {y:?}");
    }
    if diff != 0 || ra.len() != rb.len() {
        bail!("gen-db does not reproduce the recorder's rows");
    }
    println!("OK: gen-db rows are identical to `import` rows (all {CMP_COLS_N} columns, id order)");
    Ok(())
}

const CMP_COLS_N: usize = 32;

// ---------------------------------------------------------------------------------------
// Import.

#[derive(Debug, Default)]
struct ImportResult {
    frames: u64,
    opened: u64,
    closed: u64,
    open_at_end: usize,
    preloaded: usize,
    secs: f64,
    t_read: f64,
    t_decode: f64,
    t_track: f64,
    t_log: f64,
    t_flush: f64,
    t_open: f64,
    flushes: u64,
    hwm_kb: u64,
}

/// The recorder's import pipeline (as `ingest::Ingest` runs it: decode, track, the log
/// line of every event, batched writer flushes at 20,000 events or 1 s), timed per phase.
/// Changes tried on the recorder's own connection (prototypes of store fixes).
#[derive(Debug, Clone, Copy, Default)]
struct ConnTweaks {
    /// SQLITE_DBCONFIG_ENABLE_QPSG: bound values never trigger re-preparation.
    qpsg: bool,
    /// PRAGMA cache_size in MiB (0: SQLite's default 2 MiB).
    cache_mib: i64,
    /// Events per transaction (the recorder: 20,000).
    batch_events: usize,
    /// Write as the recorder and commit every this many ms of capture time (0: import).
    record_every_ms: u64,
    /// The recorder's journal time, seconds (None: its default).
    young_secs: Option<u64>,
    /// When a journal run is rewritten, seconds (None: the recorder's).
    rewrite_secs: Option<u64>,
}

impl ConnTweaks {
    fn apply(&self, c: &Connection) -> anyhow::Result<()> {
        if self.qpsg {
            c.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
                true,
            )?;
        }
        if self.cache_mib > 0 {
            c.pragma_update(None, "cache_size", -1024 * self.cache_mib)?;
        }
        Ok(())
    }
}

fn run_import_inproc(
    db: &str,
    cap: &str,
    quiet: bool,
    tw: ConnTweaks,
) -> anyhow::Result<ImportResult> {
    let batch_events = if tw.batch_events == 0 {
        20_000
    } else {
        tw.batch_events
    };
    let mut r = ImportResult::default();
    let t0 = Instant::now();
    let conn = store::open_rw(db)?;
    let record_every_us = tw.record_every_ms as i64 * 1000;
    let run = RunInfo {
        kind: if record_every_us > 0 {
            "record"
        } else {
            "import"
        },
        source: cap.to_string(),
        fingerprint: Some(format!("import:{cap}:{}", file_size(cap))),
        started_wall: pfstatelog::time::wall_us(),
    };
    let mut writer = Writer::new(conn, db, &run)?;
    tw.apply(writer.conn())?;
    if let Some(s) = tw.young_secs {
        writer.set_young_for(s as i64 * 1_000_000);
    }
    if let Some(s) = tw.rewrite_secs {
        writer.set_rewrite_after(s as i64 * 1_000_000);
    }
    // As `Ingest` does: the WAL is checkpointed on a thread of its own.
    let checkpointer = store::Checkpointer::start(db, writer.conn())?;
    let mut tracker = Tracker::new();
    tracker.preload(writer.load_open()?);
    // As `Ingest` does: an import's open lifetimes are the tracker's alone.
    writer.let_tracker_hold();
    r.preloaded = tracker.open_count();
    r.t_open = t0.elapsed().as_secs_f64();
    let mut stats = DecodeStats::default();
    let mut counters = RunCounters::default();
    let mut events: Vec<Event> = Vec::new();
    let mut cf = CaptureFile::open(cap)?;
    let mut oldest: Option<Instant> = None;
    let mut oldest_ts: Option<i64> = None;
    let mut sink = 0usize;
    loop {
        let a = tcpu();
        let Some(f) = cf.next_frame() else { break };
        let f = f?;
        let b = tcpu();
        r.t_read += b - a;
        let o = decode_frame(&f);
        let apply = stats.count(&f, &o);
        let c = tcpu();
        r.t_decode += c - b;
        if apply {
            if let Outcome::Packet { pkt, .. } = &o {
                for m in pkt.messages() {
                    tracker.apply(m, f.ts_us, &mut events);
                }
            }
        }
        let d = tcpu();
        r.t_track += d - c;
        for e in &events {
            if let Some(line) = event_line(e) {
                sink += line.len();
            }
        }
        let e2 = tcpu();
        r.t_log += e2 - d;
        for e in events.drain(..) {
            writer.push(e);
        }
        counters.packets = stats.frames;
        counters.messages = stats.message_total();
        counters.first_us = stats.first_us;
        counters.last_us = stats.last_us;
        r.frames += 1;
        oldest.get_or_insert_with(Instant::now);
        let first_ts = *oldest_ts.get_or_insert(f.ts_us);
        let age = if record_every_us > 0 {
            f.ts_us - first_ts >= record_every_us
        } else {
            oldest.is_some_and(|t| r.frames % 4096 == 0 && t.elapsed() >= Duration::from_secs(1))
        };
        if writer.batch_len() >= batch_events || age {
            let s = tcpu();
            writer.flush(&counters)?;
            r.t_flush += tcpu() - s;
            r.flushes += 1;
            oldest = None;
            oldest_ts = None;
        }
        if !quiet && r.frames % 100_000 == 0 {
            progress_line(&format!(
                "import: {} frames, {} states, {:.0}s",
                r.frames,
                tracker.stats.opened,
                t0.elapsed().as_secs_f64()
            ));
        }
    }
    let s = tcpu();
    r.open_at_end = tracker.open_count();
    writer.hold_tracked(tracker.take_open());
    drop(checkpointer);
    writer.finish(&counters, "stopped", pfstatelog::time::wall_us())?;
    r.t_flush += tcpu() - s;
    r.secs = t0.elapsed().as_secs_f64();
    r.opened = tracker.stats.opened;
    r.closed = tracker.stats.closed;
    r.hwm_kb = vm_hwm_kb();
    if !quiet {
        eprintln!();
    }
    std::hint::black_box(sink);
    Ok(r)
}

fn count_states(db: &str) -> anyhow::Result<(i64, i64)> {
    let c =
        pfstatelog::store::sqlite::pagesum::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    // A count, not max(id): the recorder takes the rows of lifetimes that end out of states
    // to batch them (max(id) counted those twice: 89 instead of 169 bytes per state).
    let n: i64 = c.query_row("SELECT count(*) FROM states", [], |r| r.get(0))?;
    let open: i64 = c.query_row(
        "SELECT count(*) FROM states WHERE dur_class = 14",
        [],
        |r| r.get(0),
    )?;
    Ok((n + archived_count(&c)?, open))
}

/// Archived lifetimes.
fn archived_count(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row("SELECT coalesce(sum(n), 0) FROM archive_buckets", [], |r| {
        r.get(0)
    })
}

fn import_bench(
    db: &str,
    cap: &str,
    base: Option<&str>,
    mode: &str,
    bin: &str,
    cold: bool,
    tw: ConnTweaks,
) -> anyhow::Result<()> {
    if mode == "inproc" {
        println!("writer connection tweaks: {tw:?}");
    }
    if let Some(b) = base {
        let t = Instant::now();
        remove_db(db);
        std::fs::copy(b, db).with_context(|| format!("copying {b}"))?;
        if Path::new(&format!("{b}-wal")).exists() {
            std::fs::copy(format!("{b}-wal"), format!("{db}-wal"))?;
        }
        println!(
            "copied {b} -> {db} ({:.1} MiB) in {:.1}s",
            mib(file_size(db)),
            t.elapsed().as_secs_f64()
        );
    }
    let (before_n, before_open) = if Path::new(db).exists() {
        count_states(db)?
    } else {
        (0, 0)
    };
    let before_size = db_bytes(db);
    if cold {
        println!("page cache dropped: {}", drop_caches());
    }
    println!(
        "before: {before_n} states ({before_open} open), {:.1} MiB; capture {cap} {:.1} MiB",
        mib(before_size),
        mib(file_size(cap))
    );
    let cpu0 = (cpu_secs(false), cpu_secs(true));
    let (opened, closed, secs, hwm, phases) = match mode {
        "binary" => {
            let t = Instant::now();
            let out = Command::new(bin)
                .args(["import", "--db", db, cap])
                .stdin(Stdio::null())
                .output()
                .with_context(|| format!("running {bin}"))?;
            let secs = t.elapsed().as_secs_f64();
            let err = String::from_utf8_lossy(&out.stderr);
            println!("pfstatelog import: {}", err.trim());
            if !out.status.success() {
                bail!("pfstatelog import failed: {}", out.status);
            }
            let grab = |k: &str| -> u64 {
                err.split(k)
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                    .and_then(|s| s.trim_end_matches(',').parse().ok())
                    .unwrap_or(0)
            };
            (
                grab("states opened "),
                grab(", closed "),
                secs,
                children_maxrss_kb(),
                None,
            )
        }
        "inproc" => {
            let r = run_import_inproc(db, cap, false, tw)?;
            (r.opened, r.closed, r.secs, r.hwm_kb, Some(r))
        }
        m => bail!("--mode {m}: binary or inproc"),
    };
    let cpu = (cpu_secs(false) - cpu0.0) + (cpu_secs(true) - cpu0.1);
    let (after_n, after_open) = count_states(db)?;
    let after_size = db_bytes(db);
    println!(
        "imported {opened} lifetimes ({closed} closed) in {secs:.2}s wall: {:.0} states/s; CPU {cpu:.2}s (user+sys): {:.0} states per CPU-second",
        opened as f64 / secs,
        opened as f64 / cpu
    );
    println!(
        "after: {after_n} states ({after_open} open), {:.1} MiB = {:.1} bytes/state overall; growth {:.1} MiB = {:.1} bytes per new state",
        mib(after_size),
        after_size as f64 / after_n.max(1) as f64,
        mib(after_size.saturating_sub(before_size)),
        after_size.saturating_sub(before_size) as f64 / (after_n - before_n).max(1) as f64
    );
    println!(
        "peak RSS (VmHWM / ru_maxrss): {:.1} MiB",
        hwm as f64 / 1024.0
    );
    if let Some(r) = phases {
        let pct = |x: f64| 100.0 * x / r.secs;
        println!(
            "phases (thread CPU time): open+load_open {:.2}s wall ({} open states preloaded) | read {:.2}s ({:.0}%) | decode {:.2}s ({:.0}%) | track {:.2}s ({:.0}%) | log lines {:.2}s ({:.0}%) | writer flush {:.2}s ({:.0}%, {} flushes, {:.1} ms each) | {} frames",
            r.t_open,
            r.preloaded,
            r.t_read,
            pct(r.t_read),
            r.t_decode,
            pct(r.t_decode),
            r.t_track,
            pct(r.t_track),
            r.t_log,
            pct(r.t_log),
            r.t_flush,
            pct(r.t_flush),
            r.flushes,
            1000.0 * r.t_flush / r.flushes.max(1) as f64,
            r.frames
        );
        println!("open states at end: {}", r.open_at_end);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Queries.

struct Stat {
    v: Vec<f64>,
}

impl Stat {
    fn new(mut v: Vec<f64>) -> Stat {
        v.sort_by(|a, b| a.total_cmp(b));
        Stat { v }
    }
    fn p(&self, q: f64) -> f64 {
        if self.v.is_empty() {
            return f64::NAN;
        }
        let i = ((q * self.v.len() as f64).ceil() as usize).clamp(1, self.v.len()) - 1;
        self.v[i]
    }
    fn line(&self, label: &str) -> String {
        format!(
            "{label:<34} n={:<6} p50 {:>8.3} ms  p90 {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms",
            self.v.len(),
            self.p(0.5),
            self.p(0.9),
            self.p(0.99),
            self.v.last().copied().unwrap_or(f64::NAN)
        )
    }
}

/// A probe, the private address of its row, its start and end.
type Sampled = (Probe, IpAddr, i64, Option<i64>);
/// A public pair and how many lifetimes used it.
type PairCount = (IpAddr, u16, i64);

#[derive(Debug, Clone)]
struct Probe {
    ip: IpAddr,
    port: u16,
    at: Micros,
}

fn open_ro(db: &str) -> anyhow::Result<Connection> {
    Ok(store::open_ro(db)?)
}

/// Random rows with keys: (public ip, port, a time inside the lifetime, private ip).
/// Random rows (any kind), or with `nat_only` outbound NAT rows only, whose public side is
/// one of our addresses: what an abuse complaint names.
fn sample_rows(
    c: &Connection,
    n: usize,
    rng: &mut gen::Rng,
    nat_only: bool,
) -> anyhow::Result<Vec<Sampled>> {
    let mut max: i64 = c.query_row("SELECT coalesce(max(id), 0) FROM states", [], |r| r.get(0))?;
    // A database built by imports holds most lifetimes archived: sample those.
    let archived = archived_count(c)?;
    if archived > max {
        return sample_archived(c, n, rng, nat_only, archived);
    }
    // Rows a later import added are not in a twin built from the same generator run.
    if let Some(cap) = std::env::var("BENCH_MAX_ID")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
    {
        max = max.min(cap);
    }
    let mut st = c.prepare(&format!(
        "SELECT w_addr1, w_port1, start_us, end_us, last_us, s_addr1 FROM states
         WHERE id = ?1 AND start_us IS NOT NULL{}",
        if nat_only {
            " AND nat = 1 AND direction = 2"
        } else {
            ""
        }
    ))?;
    let mut out = Vec::with_capacity(n);
    let mut tries = 0;
    while out.len() < n && tries < n * 50 {
        tries += 1;
        let id = 1 + rng.below(max as u64) as i64;
        let row = st
            .query_row([id], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Vec<u8>>(5)?,
                ))
            })
            .optional()?;
        let Some((w, port, start, end, last, s)) = row else {
            continue;
        };
        let (Some(ip), Some(priv_ip)) = (blob_addr(&w), blob_addr(&s)) else {
            continue;
        };
        let stop = end.unwrap_or(last).max(start);
        let at = start + rng.below((stop - start) as u64 + 1) as i64;
        out.push((
            Probe {
                ip,
                port: port as u16,
                at,
            },
            priv_ip,
            start,
            end,
        ));
    }
    Ok(out)
}

/// `sample_rows` over archived lifetimes: every k-th lifetime of a walk over all of them
/// (export order), k chosen for about `n` samples.
fn sample_archived(
    c: &Connection,
    n: usize,
    rng: &mut gen::Rng,
    nat_only: bool,
    total: i64,
) -> anyhow::Result<Vec<Sampled>> {
    let every = (total as u64 / (n as u64 * 4).max(1)).max(1);
    let mut seen = 0u64;
    let mut out: Vec<Sampled> = Vec::new();
    pfstatelog::store::sqlite::export::each_lifetime(c, i64::MIN / 4, i64::MAX / 4, |l| {
        seen += 1;
        if seen % every != 0 || (nat_only && !(l.nat && l.direction == 2)) {
            return Ok::<(), rusqlite::Error>(());
        }
        let stop = l.end.unwrap_or(l.last_seen).max(l.start);
        let at = l.start + rng.below((stop - l.start) as u64 + 1) as i64;
        out.push((
            Probe {
                ip: l.public_ip,
                port: l.public_port,
                at,
            },
            l.private_ip,
            l.start,
            l.end,
        ));
        Ok(())
    })?;
    // A random n of them.
    for i in (1..out.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        out.swap(i, j);
    }
    out.truncate(n);
    Ok(out)
}

/// Probes on given pairs at random times inside one of their lifetimes.
fn sample_pair(
    c: &Connection,
    pairs: &[(IpAddr, u16)],
    n: usize,
    rng: &mut gen::Rng,
) -> anyhow::Result<Vec<Probe>> {
    // With BENCH_MAX_ID (a twin built from the same generator run), only the first run's span.
    let span_sql = if std::env::var("BENCH_MAX_ID").is_ok() {
        "SELECT first_us, last_us FROM runs WHERE id = (SELECT min(id) FROM runs)"
    } else {
        "SELECT min(first_us), max(last_us) FROM runs"
    };
    let (t0, t1): (i64, i64) = c.query_row(span_sql, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let mut out = Vec::new();
    let mut tries = 0;
    let f = WhoFilter::default();
    while out.len() < n && !pairs.is_empty() && tries < n * 10 {
        tries += 1;
        let (ip, port) = pairs[rng.below(pairs.len() as u64) as usize];
        let t = t0 + rng.below((t1 - t0).max(1) as u64) as i64;
        // The first lifetime of the pair starting in the hour after t (through the who
        // index: the database has no (pair, start) index).
        let row = query::who(c, &ip, port, t, t + 3_600_000_000, t, &f)?
            .into_iter()
            .filter(|l| l.start >= t)
            .min_by_key(|l| (l.start, l.state_id))
            .map(|l| (l.start, l.end.unwrap_or(l.last_seen)));
        if let Some((s, e)) = row {
            out.push(Probe {
                ip,
                port,
                at: s + rng.below((e - s).max(0) as u64 + 1) as i64,
            });
        }
    }
    Ok(out)
}

/// Lifetimes of a public pair, counted through the who index (class by class, bucket by
/// bucket over all time).
fn pair_count(c: &Connection, ip: &IpAddr, port: u16) -> anyhow::Result<i64> {
    let mut st = c.prepare_cached(
        "SELECT count(*) FROM states INDEXED BY states_who
          WHERE dur_class = ?1 AND start_bucket = ?2 AND w_addr1 = ?3 AND w_port1 = ?4",
    )?;
    let mut n = 0i64;
    query::each_range(
        c,
        query::Ranges::Who,
        i64::MIN / 4,
        i64::MAX / 4,
        |cls, b, _| {
            n += st.query_row(params![cls, b, store::addr_blob(ip), port as i64], |r| {
                r.get::<_, i64>(0)
            })?;
            Ok(())
        },
    )?;
    Ok(n)
}

/// Public pairs used most, among the known hot ranges (static-port pairs and rdr ports).
fn find_pairs(c: &Connection) -> anyhow::Result<(Vec<PairCount>, Vec<PairCount>)> {
    let mut hot = Vec::new();
    let pool0 = IpAddr::V4(gen::NAT_POOL_V4[0]);
    for p in gen::HOT_PORT_BASE..gen::HOT_PORT_BASE + 10 {
        let n = pair_count(c, &pool0, p)?;
        if n >= 100 {
            hot.push((pool0, p, n));
        }
    }
    let mut rdr = Vec::new();
    let rdr_ip = IpAddr::V4(gen::RDR_PUBLIC);
    for p in gen::RDR_PORTS {
        let n = pair_count(c, &rdr_ip, p)?;
        if n > 0 {
            rdr.push((rdr_ip, p, n));
        }
    }
    Ok((hot, rdr))
}

/// Time each probe (a fresh statement cache is not needed: who() uses prepare_cached, as
/// the CLI's single query would after its first statement).
fn run_who(
    c: &Connection,
    probes: &[Probe],
    window: i64,
) -> anyhow::Result<(Vec<f64>, Vec<usize>)> {
    let f = WhoFilter::default();
    let mut lat = Vec::with_capacity(probes.len());
    let mut n = Vec::with_capacity(probes.len());
    for p in probes {
        let t = Instant::now();
        let rows = query::who(c, &p.ip, p.port, p.at - window, p.at + window, p.at, &f)?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        n.push(rows.len());
    }
    Ok((lat, n))
}

fn run_who_cov(c: &Connection, probes: &[Probe], window: i64) -> anyhow::Result<Vec<f64>> {
    let f = WhoFilter::default();
    let mut lat = Vec::with_capacity(probes.len());
    for p in probes {
        let t = Instant::now();
        let (t0, t1) = (p.at - window, p.at + window);
        let rows = query::who(c, &p.ip, p.port, t0, t1, p.at, &f)?;
        let cov = query::coverage(c, t0, t1)?;
        std::hint::black_box((rows, cov));
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(lat)
}

fn found_line(label: &str, n: &[usize]) -> String {
    let hits = n.iter().filter(|&&x| x > 0).count();
    let mut v = n.to_vec();
    v.sort();
    format!(
        "{label:<34} found {hits}/{} ; rows per answer p50 {} p99 {} max {}",
        n.len(),
        v.get(v.len() / 2).copied().unwrap_or(0),
        v.get((v.len() * 99 / 100).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0),
        v.last().copied().unwrap_or(0)
    )
}

fn who_bench(
    db: &str,
    queries: usize,
    cold: usize,
    seed: u64,
    window_s: i64,
    qpsg: bool,
) -> anyhow::Result<()> {
    let tw = ConnTweaks {
        qpsg,
        ..Default::default()
    };
    let window = window_s * 1_000_000;
    let (n_states, _) = count_states(db)?;
    println!(
        "database {db}: {n_states} states, {:.1} MiB",
        mib(db_bytes(db))
    );
    let c = open_ro(db)?;
    let mut rng = gen::Rng::new(seed);
    let rand: Vec<Probe> = sample_rows(&c, queries, &mut rng, false)?
        .into_iter()
        .map(|x| x.0)
        .collect();
    let nat: Vec<Probe> = sample_rows(&c, queries, &mut rng, true)?
        .into_iter()
        .map(|x| x.0)
        .collect();
    let (hot, rdr) = find_pairs(&c)?;
    for (ip, p, n) in hot.iter().chain(rdr.iter()) {
        println!("reused pair {ip}:{p}: {n} lifetimes");
    }
    let hotp: Vec<(IpAddr, u16)> = hot.iter().map(|x| (x.0, x.1)).collect();
    let rdrp: Vec<(IpAddr, u16)> = rdr.iter().map(|x| (x.0, x.1)).collect();
    let hot_probes = sample_pair(&c, &hotp, queries / 2, &mut rng)?;
    let rdr_probes = sample_pair(&c, &rdrp, queries / 10, &mut rng)?;
    drop(c);

    // First touch: probes never run before (index and rows as the OS cache has them now).
    let c = open_ro(db)?;
    tw.apply(&c)?;
    let (first, _) = run_who(&c, &nat, window)?;
    println!("{}", Stat::new(first).line("who NAT public, first touch"));
    for _ in 0..2 {
        run_who(&c, &nat, window)?;
    }
    let (warm, n) = run_who(&c, &nat, window)?;
    println!("{}", Stat::new(warm).line("who NAT public, warm"));
    println!("{}", found_line("who NAT public", &n));
    let (first, _) = run_who(&c, &rand, window)?;
    println!("{}", Stat::new(first).line("who random, first touch"));
    // Warm: the same probes again, everything they need in the page cache.
    for _ in 0..2 {
        run_who(&c, &rand, window)?;
    }
    let (warm, n) = run_who(&c, &rand, window)?;
    println!("{}", Stat::new(warm).line("who random, warm"));
    println!("{}", found_line("who random", &n));
    let cov = run_who_cov(&c, &rand, window)?;
    println!("{}", Stat::new(cov).line("who + coverage random, warm"));
    if !hot_probes.is_empty() {
        let (first, _) = run_who(&c, &hot_probes, window)?;
        println!("{}", Stat::new(first).line("who hot pairs, first touch"));
        run_who(&c, &hot_probes, window)?;
        let (warm, n) = run_who(&c, &hot_probes, window)?;
        println!("{}", Stat::new(warm).line("who hot pairs, warm"));
        println!("{}", found_line("who hot pairs", &n));
    }
    if !rdr_probes.is_empty() {
        let (first, _) = run_who(&c, &rdr_probes, window)?;
        println!("{}", Stat::new(first).line("who rdr pairs, first touch"));
        run_who(&c, &rdr_probes, window)?;
        let (warm, n) = run_who(&c, &rdr_probes, window)?;
        println!("{}", Stat::new(warm).line("who rdr pairs, warm"));
        println!("{}", found_line("who rdr pairs", &n));
    }
    drop(c);
    if cold > 0 {
        let mut lat = Vec::new();
        let mut lat_hot = Vec::new();
        let mut open_ms = Vec::new();
        for (i, p) in nat.iter().take(cold).enumerate() {
            if !drop_caches() {
                println!("cold: cannot drop the page cache (not root?)");
                break;
            }
            let t = Instant::now();
            let c = open_ro(db)?;
            tw.apply(&c)?;
            open_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            lat.extend(run_who(&c, std::slice::from_ref(p), window)?.0);
            if let Some(h) = hot_probes.get(i) {
                drop(c);
                drop_caches();
                let c = open_ro(db)?;
                lat_hot.extend(run_who(&c, std::slice::from_ref(h), window)?.0);
            }
        }
        println!(
            "{}",
            Stat::new(open_ms).line("cold: open_ro (identity checks)")
        );
        println!("{}", Stat::new(lat).line("who NAT public, cold"));
        if !lat_hot.is_empty() {
            println!("{}", Stat::new(lat_hot).line("who hot pairs, cold"));
        }
    }
    Ok(())
}

fn history_bench(
    db: &str,
    queries: usize,
    cold: usize,
    seed: u64,
    hosts: u32,
) -> anyhow::Result<()> {
    let (n_states, _) = count_states(db)?;
    println!(
        "database {db}: {n_states} states, {:.1} MiB",
        mib(db_bytes(db))
    );
    let c = open_ro(db)?;
    // Days that hold traffic: a random moment of a random run, inside a random day window
    // (imports of captures weeks apart leave empty days between them).
    let runs: Vec<(i64, i64)> = c
        .prepare(
            "SELECT first_us, last_us FROM runs WHERE first_us IS NOT NULL AND last_us > first_us",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    anyhow::ensure!(!runs.is_empty(), "{db}: no runs");
    let day = 86_400_000_000i64;
    let mut rng = gen::Rng::new(seed);
    let pick_range = |rng: &mut gen::Rng| {
        let (t0, t1) = runs[rng.below(runs.len() as u64) as usize];
        let at = t0 + rng.below((t1 - t0) as u64) as i64;
        let from = at - rng.below(day as u64) as i64;
        (from, from + day)
    };
    // Typical hosts: uniform over the private hosts; the busiest host; a /24; an IPv6 /64.
    let typical: Vec<(IpAddr, IpAddr, i64, i64)> = (0..queries)
        .map(|_| {
            let ip = IpAddr::V4(gen::private_v4(rng.below(hosts as u64) as u32));
            let (a, b) = pick_range(&mut rng);
            (ip, ip, a, b)
        })
        .collect();
    let (a, b) = pick_range(&mut rng);
    let top = IpAddr::V4(gen::private_v4(0));
    let run = |c: &Connection,
               qs: &[(IpAddr, IpAddr, i64, i64)]|
     -> anyhow::Result<(Vec<f64>, Vec<usize>)> {
        let mut lat = Vec::new();
        let mut n = Vec::new();
        for (lo, hi, a, b) in qs {
            let t = Instant::now();
            let rows = query::history(c, lo, hi, *a, *b, None)?;
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
            n.push(rows.len());
        }
        Ok((lat, n))
    };
    let (first, _) = run(&c, &typical)?;
    println!("{}", Stat::new(first).line("history host/day, first touch"));
    run(&c, &typical)?;
    let (warm, n) = run(&c, &typical)?;
    println!("{}", Stat::new(warm).line("history host/day, warm"));
    println!("{}", found_line("history host/day", &n));
    let heavy = vec![(top, top, a, b); 5];
    let (lat, n) = run(&c, &heavy)?;
    println!(
        "{}",
        Stat::new(lat).line(&format!("history busiest host {top}"))
    );
    println!("{}", found_line("history busiest host", &n));
    let net = vec![
        (
            IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 40, 0)),
            IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 40, 255)),
            a,
            b,
        );
        3
    ];
    let (lat, n) = run(&c, &net)?;
    println!("{}", Stat::new(lat).line("history 10.0.40.0/24 day"));
    println!("{}", found_line("history 10.0.40.0/24 day", &n));
    if cold > 0 {
        let mut lat = Vec::new();
        for q in typical.iter().take(cold) {
            if !drop_caches() {
                println!("cold: cannot drop the page cache (not root?)");
                break;
            }
            let c = open_ro(db)?;
            lat.extend(run(&c, std::slice::from_ref(q))?.0);
        }
        println!("{}", Stat::new(lat).line("history host/day, cold"));
    }
    Ok(())
}

fn batch_bench(
    db: &str,
    lines: usize,
    seed: u64,
    bin: &str,
    cold: bool,
    any: bool,
) -> anyhow::Result<()> {
    let (n_states, _) = count_states(db)?;
    println!(
        "database {db}: {n_states} states, {:.1} MiB",
        mib(db_bytes(db))
    );
    let c = open_ro(db)?;
    let mut rng = gen::Rng::new(seed);
    let rows = sample_rows(&c, lines, &mut rng, !any)?;
    drop(c);
    let dir = Path::new(db).parent().unwrap_or(Path::new("."));
    let csv = dir.join("batch-complaints.csv");
    {
        let mut w = BufWriter::new(std::fs::File::create(&csv)?);
        writeln!(w, "ip,port,time")?;
        for (p, ..) in &rows {
            // Complaints give whole seconds.
            let secs = p.at.div_euclid(1_000_000) * 1_000_000;
            let t = pfstatelog::time::format_rfc3339(secs);
            let t = t.replace(".000000Z", "Z");
            writeln!(w, "{},{},{}", p.ip, p.port, t)?;
        }
    }
    if cold {
        println!("page cache dropped: {}", drop_caches());
    }
    let out_path = dir.join("batch-answers.csv");
    let t = Instant::now();
    let st = Command::new(bin)
        .args(["who", "--db", db, "--batch"])
        .arg(&csv)
        .args(["--format", "csv"])
        .stdout(std::fs::File::create(&out_path)?)
        .status()?;
    let secs = t.elapsed().as_secs_f64();
    let out = std::fs::read_to_string(&out_path)?;
    let answered = out.lines().count().saturating_sub(1);
    let unmatched = out
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(5) == Some("0"))
        .count();
    println!(
        "who --batch {} lines: {secs:.2}s ({:.0} lines/s), exit {:?}; {answered} output rows, {unmatched} complaints without a match; {} {}",
        rows.len(),
        rows.len() as f64 / secs,
        st.code(),
        csv.display(),
        if cold { "(cold)" } else { "(warm)" }
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Where the bytes and the time go.

fn size(db: &str) -> anyhow::Result<()> {
    let c =
        pfstatelog::store::sqlite::pagesum::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let n = count_states(db)?.0;
    let free: i64 = c.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let page: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    println!(
        "free pages: {free} ({:.1} MiB, {:.1} B/state)",
        mib((free * page) as u64),
        (free * page) as f64 / n.max(1) as f64
    );
    let total = db_bytes(db);
    println!(
        "{db}: {:.1} MiB, {n} states, {:.1} bytes/state",
        mib(total),
        total as f64 / n.max(1) as f64
    );
    let has_dbstat = c
        .prepare("SELECT name, sum(pgsize), sum(payload), sum(unused), count(*) FROM dbstat GROUP BY name ORDER BY 2 DESC")
        .is_ok();
    if !has_dbstat {
        println!("(dbstat not compiled in)");
        return Ok(());
    }
    let mut st = c.prepare(
        "SELECT name, sum(pgsize), sum(payload), sum(unused), count(*) FROM dbstat
         GROUP BY name ORDER BY 2 DESC",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    for r in rows {
        let (name, sz, payload, unused, pages) = r?;
        println!(
            "  {name:<18} {:>10.1} MiB {:>7.1} B/state (payload {:>6.1}, unused {:>5.1}%) {pages} pages",
            mib(sz as u64),
            sz as f64 / n.max(1) as f64,
            payload as f64 / n.max(1) as f64,
            100.0 * unused as f64 / sz.max(1) as f64
        );
    }
    Ok(())
}

fn explain(db: &str, queries: usize, seed: u64) -> anyhow::Result<()> {
    let c = open_ro(db)?;
    // The statements of store::query::who and ::history (one host), without filters.
    let q = "SELECT 1 FROM states INDEXED BY states_who
           WHERE dur_class = ?5 AND start_bucket = ?7 AND w_addr1 = ?1 AND w_port1 = ?2
             AND start_us >= ?3 - ?6 AND start_us <= ?4
             AND (end_us IS NULL OR end_us >= ?3)";
    let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {q}"))?;
    println!("who, per duration class and bucket (as in store::query::who):");
    let rows = st.query_map(params![vec![0u8; 4], 0, 0, 0, 0, 0, 0], |r| {
        r.get::<_, String>(3)
    })?;
    for r in rows {
        println!("  {}", r?);
    }
    let h = "SELECT 1 FROM states INDEXED BY states_private
               WHERE dur_class = ?4 AND start_bucket = ?6 AND s_addr1 = ?1
                 AND start_us >= ?2 - ?5 AND start_us <= ?3 AND (end_us IS NULL OR end_us >= ?2)";
    let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {h}"))?;
    println!("history of one host, per duration class and bucket:");
    let rows = st.query_map(params![vec![0u8; 4], 0, 0, 0, 0, 0], |r| {
        r.get::<_, String>(3)
    })?;
    for r in rows {
        println!("  {}", r?);
    }
    // Index entries each who probe walks (the start range [at - 1 h, at]) vs rows returned.
    let mut rng = gen::Rng::new(seed);
    let rand: Vec<Probe> = sample_rows(&c, queries, &mut rng, false)?
        .into_iter()
        .map(|x| x.0)
        .collect();
    let (hot, rdr) = find_pairs(&c)?;
    let hotp: Vec<(IpAddr, u16)> = hot.iter().map(|x| (x.0, x.1)).collect();
    let rdrp: Vec<(IpAddr, u16)> = rdr.iter().map(|x| (x.0, x.1)).collect();
    let hot_probes = sample_pair(&c, &hotp, queries / 2, &mut rng)?;
    let rdr_probes = sample_pair(&c, &rdrp, queries / 10, &mut rng)?;
    let mut scan = c.prepare(
        "SELECT count(*) FROM states INDEXED BY states_who
         WHERE dur_class = ?4 AND start_bucket = ?6 AND w_addr1 = ?1 AND w_port1 = ?2
           AND start_us >= ?3 - ?5 AND start_us <= ?3",
    )?;
    for (label, ps) in [
        ("random", &rand),
        ("hot pairs", &hot_probes),
        ("rdr pairs", &rdr_probes),
    ] {
        let mut visited = Vec::new();
        for p in ps.iter() {
            let mut v = 0i64;
            query::each_range(&c, query::Ranges::Who, p.at, p.at, |cls, b, max| {
                v += scan.query_row(
                    params![store::addr_blob(&p.ip), p.port as i64, p.at, cls, max, b],
                    |r| r.get::<_, i64>(0),
                )?;
                Ok(())
            })?;
            visited.push(v as usize);
        }
        println!(
            "{}",
            found_line(
                &format!("who {label}: index entries read (all classes)"),
                &visited
            )
        );
    }
    Ok(())
}

/// `sql` against `who` on the same probes, warm, both in process; then the rate of a full
/// `SELECT count(*) FROM lifetimes`.
fn sql_bench(db: &str, queries: usize, seed: u64) -> anyhow::Result<()> {
    let c = open_ro(db)?;
    let mut rng = gen::Rng::new(seed);
    let nat: Vec<Probe> = sample_rows(&c, queries, &mut rng, true)?
        .into_iter()
        .map(|x| x.0)
        .collect();
    let (hot, _) = find_pairs(&c)?;
    let hotp: Vec<(IpAddr, u16)> = hot.iter().map(|x| (x.0, x.1)).collect();
    let hot_probes = sample_pair(&c, &hotp, queries / 2, &mut rng)?;
    let (sqlc, _shared) = store::vtab::open(open_ro(db)?, db)?;
    let mut st = sqlc.prepare(
        "SELECT * FROM lifetimes WHERE public_ip = ?1 AND public_port = ?2
           AND start_us <= ?3 AND until_us >= ?3",
    )?;
    let cols = st.column_count();
    for (label, probes) in [("NAT public", &nat), ("hot pairs", &hot_probes)] {
        if probes.is_empty() {
            continue;
        }
        let mut who_ms = Vec::new();
        let mut sql_ms = Vec::new();
        for round in 0..3 {
            for p in probes.iter() {
                let t = Instant::now();
                let rows = query::who(&c, &p.ip, p.port, p.at, p.at, p.at, &WhoFilter::default())?;
                let w = t.elapsed().as_secs_f64() * 1000.0;
                let t = Instant::now();
                let mut n = 0usize;
                let mut q = st.query(rusqlite::params![p.ip.to_string(), p.port, p.at])?;
                while let Some(r) = q.next()? {
                    for i in 0..cols {
                        std::hint::black_box(r.get_ref(i)?);
                    }
                    n += 1;
                }
                let s = t.elapsed().as_secs_f64() * 1000.0;
                anyhow::ensure!(n == rows.len(), "sql found {n}, who {}", rows.len());
                if round == 2 {
                    who_ms.push(w);
                    sql_ms.push(s);
                }
            }
        }
        let (w, s) = (Stat::new(who_ms), Stat::new(sql_ms));
        println!("{}", w.line(&format!("who {label}, warm")));
        println!("{}", s.line(&format!("sql {label}, warm")));
        println!(
            "sql / who {label}: p50 {:.2}x, p90 {:.2}x",
            s.p(0.5) / w.p(0.5),
            s.p(0.9) / w.p(0.9)
        );
    }
    // The store's own walk alone (what `export` reads), for scale.
    let t = Instant::now();
    let w = store::export::each_lifetime(&c, i64::MIN, i64::MAX, |l| {
        std::hint::black_box(l);
        Ok::<(), rusqlite::Error>(())
    })?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "store::export::each_lifetime alone: {} in {secs:.2} s, {:.0} lifetimes/s",
        w.rows,
        w.rows as f64 / secs
    );
    for _ in 0..2 {
        let t = Instant::now();
        let n: i64 = sqlc.query_row("SELECT count(*) FROM lifetimes", [], |r| r.get(0))?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "sql SELECT count(*) FROM lifetimes: {n} in {secs:.2} s, {:.0} lifetimes/s",
            n as f64 / secs
        );
    }
    Ok(())
}
