//! pfstatelog-bench: synthetic captures and databases, and the benchmarks of BENCHMARKS.md.
//!
//! Every figure in BENCHMARKS.md comes from one of these subcommands; each prints the
//! command line it was run with, the machine, and what else was running, so its output can
//! be pasted as is.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use pfstatelog::gen::{self, DbBuilder, GenConfig, LINKTYPE_ETHERNET, LINKTYPE_PFSYNC};
use pfstatelog::pipeline::{decode_frame, DecodeStats, Outcome};
use pfstatelog::report::line::event_line;
use pfstatelog::source::file::CaptureFile;
use pfstatelog::store::query::{self, WhoFilter};
use pfstatelog::store::writer::{RunCounters, RunInfo, Writer};
use pfstatelog::store::{self, blob_addr};
use pfstatelog::track::{Event, Micros, Tracker};
use pfstatelog::wire::Flavor;
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
        /// inproc with --record-every-ms: how long new lifetimes stay young (journaled)
        /// before they move into states, seconds (default: the recorder's).
        #[arg(long)]
        young_secs: Option<u64>,
        /// inproc with --record-every-ms: rewrite a journal run this many seconds after it
        /// was written (default: the recorder's).
        #[arg(long)]
        rewrite_secs: Option<u64>,
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
    /// Prototype store: build a database of generated states through the v2 writer.
    V2Build {
        #[command(flatten)]
        g: GenArgs,
        #[arg(long)]
        db: String,
        #[arg(long, default_value_t = 1)]
        copies: u32,
        #[arg(long, default_value_t = 2_000_000)]
        seal_rows: u64,
        /// Sealed partitions WITHOUT ROWID, clustered on the who key.
        #[arg(long)]
        clustered: bool,
    },
    /// Prototype store: import a capture (decode, track, v2 writer), timed.
    V2Import {
        #[arg(long)]
        db: String,
        #[arg(long)]
        capture: String,
        #[arg(long)]
        base: Option<String>,
        #[arg(long, default_value_t = 2_000_000)]
        seal_rows: u64,
        /// Events per transaction (the recorder uses 20,000).
        #[arg(long, default_value_t = 20_000)]
        batch_events: usize,
        /// Do not persist open states (measures the open table's cost).
        #[arg(long)]
        no_open_table: bool,
        #[arg(long)]
        clustered: bool,
        /// Seal by renaming the hot table and indexing it in place.
        #[arg(long)]
        seal_rename: bool,
        /// Keep a who index (pub, pport, start) on the hot table.
        #[arg(long)]
        hot_index: bool,
    },
    /// Prototype store: who and history latency, probes taken from a current-schema
    /// database built from the same generator run (answers cross-checked).
    V2Query {
        #[arg(long)]
        db: String,
        #[arg(long)]
        probes_from: String,
        #[arg(long, default_value_t = 2000)]
        queries: usize,
        #[arg(long, default_value_t = 0)]
        cold: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, default_value_t = 20_000)]
        hosts: u32,
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
        Cmd::V2Build {
            g,
            db,
            copies,
            seal_rows,
            clustered,
        } => v2_build(&g, &db, copies, seal_rows, clustered),
        Cmd::V2Import {
            db,
            capture,
            base,
            seal_rows,
            batch_events,
            no_open_table,
            clustered,
            seal_rename,
            hot_index,
        } => v2_import(
            &db,
            &capture,
            base.as_deref(),
            V2Opts {
                seal_rows,
                batch_events,
                open_table: !no_open_table,
                clustered,
                seal_rename,
                hot_index,
            },
        ),
        Cmd::V2Query {
            db,
            probes_from,
            queries,
            cold,
            seed,
            hosts,
        } => v2_query(&db, &probes_from, queries, cold, seed, hosts),
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
        pfstatelog::time::format_rfc3339(pfstatelog::cmd::wall_us()),
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
    let ca = pfstatelog::store::pagesum::open(&a)?;
    let cb = pfstatelog::store::pagesum::open(&b)?;
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
    /// The recorder's young time, seconds (None: its default).
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
        started_wall: pfstatelog::cmd::wall_us(),
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
    writer.hold_tracked(tracker.open_states());
    drop(checkpointer);
    writer.finish(&counters, "stopped", pfstatelog::cmd::wall_us())?;
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
    let c = pfstatelog::store::pagesum::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    // A count, not max(id): the recorder takes the rows of lifetimes that end out of states
    // to seal them (max(id) counted those twice: 89 instead of 169 bytes per state).
    let n: i64 = c.query_row("SELECT count(*) FROM states", [], |r| r.get(0))?;
    let open: i64 = c.query_row("SELECT count(*) FROM states WHERE dcls = 14", [], |r| {
        r.get(0)
    })?;
    Ok((n + sealed_count(&c), open))
}

/// Sealed lifetimes (schema 4; an older database has none).
fn sealed_count(c: &Connection) -> i64 {
    c.query_row("SELECT coalesce(sum(n), 0) FROM sealed_buckets", [], |r| {
        r.get(0)
    })
    .unwrap_or(0)
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
    // A database built by imports holds most lifetimes sealed (schema 4): sample those.
    let sealed = sealed_count(c);
    if sealed > max {
        return sample_sealed(c, n, rng, nat_only, sealed);
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

/// `sample_rows` over sealed lifetimes: every k-th lifetime of a walk over all of them
/// (export order), k chosen for about `n` samples.
fn sample_sealed(
    c: &Connection,
    n: usize,
    rng: &mut gen::Rng,
    nat_only: bool,
    total: i64,
) -> anyhow::Result<Vec<Sampled>> {
    let every = (total as u64 / (n as u64 * 4).max(1)).max(1);
    let mut seen = 0u64;
    let mut out: Vec<Sampled> = Vec::new();
    pfstatelog::store::export::each_lifetime(c, i64::MIN / 4, i64::MAX / 4, |l| {
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
    let f = query::WhoFilter::default();
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
          WHERE dcls = ?1 AND tb = ?2 AND w_addr1 = ?3 AND w_port1 = ?4",
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
    let c = pfstatelog::store::pagesum::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let is_v2: bool = c.query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE name = 'v2_parts'",
        [],
        |r| r.get(0),
    )?;
    let n = if is_v2 {
        v2::count(&c)?
    } else {
        count_states(db)?.0
    };
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
    // v2 partitions v2_p<N>, v2_p<N>_who, v2_p<N>_priv are summed per kind.
    let mut st = c.prepare(
        "SELECT CASE WHEN name GLOB 'v2_p[0-9]*_who' THEN 'v2_p*_who'
                     WHEN name GLOB 'v2_p[0-9]*_priv' THEN 'v2_p*_priv'
                     WHEN name GLOB 'v2_p[0-9]*' THEN 'v2_p*'
                     WHEN name GLOB 'sqlite_autoindex_v2_p[0-9]*' THEN 'v2_p* (key)'
                     ELSE name END AS n,
                sum(pgsize), sum(payload), sum(unused), count(*) FROM dbstat GROUP BY n ORDER BY 2 DESC",
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
           WHERE dcls = ?5 AND tb = ?7 AND w_addr1 = ?1 AND w_port1 = ?2
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
               WHERE dcls = ?4 AND tb = ?6 AND s_addr1 = ?1
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
         WHERE dcls = ?4 AND tb = ?6 AND w_addr1 = ?1 AND w_port1 = ?2
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

// ---------------------------------------------------------------------------------------
// Prototype of an alternative store ("v2"), to measure what a schema/writer change buys.
//
// - Rows are written once, when the state ends (no INSERT-then-UPDATE); open states live in
//   a small table of their own (restart continuity) and in the tracker.
// - Closed states go to an append-only `v2_hot` table (no secondary index: commits dirty
//   only the pages appended to). Every `seal_rows` rows the hot table is sealed into a
//   partition `v2_p<N>`: copied in who-key order (pub, pport, dcls, start) and indexed for
//   history; partitions are never written again (prune = DROP TABLE).
// - `dcls` is a duration class (powers of 4 of ~1 s): who scans, per class, only the starts
//   that can reach the asked time, so a reused pair costs about its concurrency, not its
//   history. States longer than class 6 (~72 min) go to `v2_long` (1 % of rows).
// - Compact columns: start relative to the partition base, duration instead of end,
//   proto/af/dir/nat/reason/creator/ifname packed in one integer, the stack key's far side
//   and rdomains only when they differ (NULL / 0 cost no payload bytes), no last/updated
//   times for closed rows (last = end; first = start + creation).

mod v2 {
    use super::*;
    use pfstatelog::track::EndReason;
    use pfstatelog::wire::FullState;
    use std::collections::HashMap;

    pub const LONG_CLASS: i64 = 7;

    /// (private address, private port, start, end) of a who match.
    pub type Answer = (Vec<u8>, i64, i64, i64);

    pub fn dcls(dur_us: i64) -> i64 {
        let s = (dur_us.max(0) as u64) >> 20;
        let bits = 64 - s.leading_zeros() as i64;
        (bits + 1) / 2
    }

    /// Longest duration a class holds, µs.
    pub fn class_max(c: i64) -> i64 {
        (1i64 << (20 + 2 * c)) - 1
    }

    pub const SCHEMA: &str = "
        CREATE TABLE IF NOT EXISTS v2_dict (kind TEXT NOT NULL, value TEXT NOT NULL, code INTEGER NOT NULL,
            PRIMARY KEY (kind, value)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS v2_parts (part INTEGER PRIMARY KEY, base INTEGER NOT NULL,
            min_start INTEGER NOT NULL, max_end INTEGER NOT NULL, rows INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS v2_open (creator_id INTEGER NOT NULL, state_id INTEGER NOT NULL,
            pub BLOB, pport INTEGER, start INTEGER, priv BLOB, privport INTEGER, remote BLOB, rport INTEGER,
            sremote BLOB, srport INTEGER, info INTEGER, rd INTEGER, first_d INTEGER, last_us INTEGER,
            expire INTEGER, p0 INTEGER, p1 INTEGER, b0 INTEGER, b1 INTEGER, rule INTEGER,
            PRIMARY KEY (creator_id, state_id)) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS v2_open_who ON v2_open (pub, pport);
        CREATE INDEX IF NOT EXISTS v2_open_priv ON v2_open (priv);
        CREATE TABLE IF NOT EXISTS v2_hot (id INTEGER PRIMARY KEY, pub BLOB NOT NULL, pport INTEGER NOT NULL,
            dcls INTEGER NOT NULL, start INTEGER NOT NULL, dur INTEGER NOT NULL, priv BLOB, privport INTEGER,
            remote BLOB, rport INTEGER, sremote BLOB, srport INTEGER, info INTEGER, sid INTEGER, rd INTEGER,
            first_d INTEGER, p0 INTEGER, p1 INTEGER, b0 INTEGER, b1 INTEGER, rule INTEGER);
        CREATE TABLE IF NOT EXISTS v2_long (id INTEGER PRIMARY KEY, pub BLOB NOT NULL, pport INTEGER NOT NULL,
            dcls INTEGER NOT NULL, start INTEGER NOT NULL, dur INTEGER NOT NULL, priv BLOB, privport INTEGER,
            remote BLOB, rport INTEGER, sremote BLOB, srport INTEGER, info INTEGER, sid INTEGER, rd INTEGER,
            first_d INTEGER, p0 INTEGER, p1 INTEGER, b0 INTEGER, b1 INTEGER, rule INTEGER);
        CREATE INDEX IF NOT EXISTS v2_long_who ON v2_long (pub, pport, start);
        CREATE INDEX IF NOT EXISTS v2_long_priv ON v2_long (priv, start);";

    pub const COLS: &str =
        "pub, pport, dcls, start, dur, priv, privport, remote, rport, sremote, srport,
        info, sid, rd, first_d, p0, p1, b0, b1, rule";

    /// One closed lifetime, compact.
    #[derive(Debug, Clone)]
    pub struct Life {
        pub pub_: Vec<u8>,
        pub pport: i64,
        pub start: i64,
        pub dur: i64,
        pub priv_: Vec<u8>,
        pub privport: i64,
        pub remote: Vec<u8>,
        pub rport: i64,
        pub sremote: Option<Vec<u8>>,
        pub srport: Option<i64>,
        pub info: i64,
        pub sid: i64,
        pub rd: i64,
        pub first_d: i64,
        pub ctr: [i64; 4],
        pub rule: i64,
    }

    pub struct Dict {
        codes: HashMap<(u8, String), i64>,
        new: Vec<(u8, String, i64)>,
    }

    impl Dict {
        pub fn load(c: &Connection) -> anyhow::Result<Dict> {
            let mut codes = HashMap::new();
            let mut st = c.prepare("SELECT kind, value, code FROM v2_dict")?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            for r in rows {
                let (k, v, code) = r?;
                codes.insert((if k == "creator" { 0 } else { 1 }, v), code);
            }
            Ok(Dict {
                codes,
                new: Vec::new(),
            })
        }
        pub fn code(&mut self, kind: u8, v: &str) -> i64 {
            if let Some((_, c)) = self.codes.iter().find(|((k, s), _)| *k == kind && s == v) {
                return *c;
            }
            let n = self.codes.keys().filter(|k| k.0 == kind).count() as i64;
            self.codes.insert((kind, v.to_string()), n);
            self.new.push((kind, v.to_string(), n));
            n
        }
        pub fn save(&mut self, c: &Connection) -> anyhow::Result<()> {
            for (k, v, code) in self.new.drain(..) {
                c.execute(
                    "INSERT OR IGNORE INTO v2_dict (kind, value, code) VALUES (?1, ?2, ?3)",
                    params![if k == 0 { "creator" } else { "ifname" }, v, code],
                )?;
            }
            Ok(())
        }
    }

    pub fn life(
        s: &FullState,
        start: Micros,
        end: Micros,
        reason: EndReason,
        flavor6: bool,
        dict: &mut Dict,
    ) -> Life {
        let w = &s.key[0];
        let k = &s.key[1];
        let af_code = match (s.af.to_openbsd(), k.af.to_openbsd()) {
            (2, 2) => 0,
            (24, 24) => 1,
            _ => 2,
        };
        let reason_code = match reason {
            EndReason::Delete => 0,
            EndReason::DeleteFull => 1,
            EndReason::Clear => 2,
            EndReason::Replaced => 3,
        };
        let mut hex = [0u8; 8];
        for (i, b) in hex.iter_mut().enumerate() {
            *b = b"0123456789abcdef"[(s.creator_id >> (28 - 4 * i) & 15) as usize];
        }
        let creator = dict.code(0, std::str::from_utf8(&hex).unwrap_or("?"));
        let ifname = dict.code(1, &s.ifname);
        let info = s.proto as i64
            | af_code << 8
            | (s.direction.to_u8() as i64 & 3) << 10
            | (s.is_nat() as i64) << 12
            | reason_code << 13
            | (flavor6 as i64) << 15
            | ifname << 16
            | creator << 24;
        let remote = store::addr_blob(&w.addr[0]);
        let sremote = store::addr_blob(&k.addr[0]);
        let same_far = sremote == remote && k.port[0] == w.port[0];
        let end = end.max(start);
        Life {
            pub_: store::addr_blob(&w.addr[1]),
            pport: w.port[1] as i64,
            start,
            dur: end - start,
            priv_: store::addr_blob(&k.addr[1]),
            privport: k.port[1] as i64,
            sremote: (!same_far).then_some(sremote),
            srport: (!same_far).then_some(k.port[0] as i64),
            remote,
            rport: w.port[0] as i64,
            info,
            sid: s.id as i64,
            rd: w.rdomain as i64 | (k.rdomain as i64) << 16,
            first_d: s.creation as i64 * 1_000_000,
            ctr: [
                s.packets[0] as i64,
                s.packets[1] as i64,
                s.bytes[0] as i64,
                s.bytes[1] as i64,
            ],
            rule: s.rule as i64,
        }
    }

    pub struct Writer {
        pub conn: Connection,
        pub dict: Dict,
        pub seal_rows: u64,
        pub hot_rows: u64,
        pub open_table: bool,
        pub seals: u64,
        pub seal_secs: f64,
        pub clustered: bool,
        /// Seal by renaming the hot table and indexing it (no copy, no sort of the rows).
        pub rename: bool,
        /// Keep a who index on the hot table (queries of recent data need one).
        pub hot_index: bool,
    }

    impl Writer {
        pub fn open(
            db: &str,
            seal_rows: u64,
            open_table: bool,
            clustered: bool,
        ) -> anyhow::Result<Writer> {
            let conn = pfstatelog::store::pagesum::open(db)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.pragma_update(None, "cache_size", -262_144i64)?;
            conn.execute_batch(SCHEMA)?;
            let hot_rows: i64 = conn.query_row("SELECT count(*) FROM v2_hot", [], |r| r.get(0))?;
            let dict = Dict::load(&conn)?;
            Ok(Writer {
                conn,
                dict,
                seal_rows,
                hot_rows: hot_rows as u64,
                open_table,
                seals: 0,
                seal_secs: 0.0,
                clustered,
                rename: false,
                hot_index: false,
            })
        }

        /// Apply a batch of tracker events in one transaction.
        pub fn apply(&mut self, events: &[Event]) -> anyhow::Result<()> {
            let tx = self.conn.transaction()?;
            {
                let mut ins_open = tx.prepare_cached(
                    "INSERT OR REPLACE INTO v2_open (creator_id, state_id, pub, pport, start, priv, privport,
                        remote, rport, info, first_d, last_us, expire, p0, p1, b0, b1, rule)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
                )?;
                let mut del_open = tx.prepare_cached(
                    "DELETE FROM v2_open WHERE creator_id = ?1 AND state_id = ?2",
                )?;
                let mut ins_hot = tx.prepare_cached(&format!(
                    "INSERT INTO v2_hot ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"
                ))?;
                let mut ins_long = tx.prepare_cached(&format!(
                    "INSERT INTO v2_long ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"
                ))?;
                for e in events {
                    match e {
                        Event::Open {
                            state: s,
                            start,
                            seen,
                            ..
                        } if self.open_table => {
                            ins_open.execute(params![
                                s.creator_id,
                                s.id as i64,
                                store::addr_blob(&s.key[0].addr[1]),
                                s.key[0].port[1],
                                start,
                                store::addr_blob(&s.key[1].addr[1]),
                                s.key[1].port[1],
                                store::addr_blob(&s.key[0].addr[0]),
                                s.key[0].port[0],
                                s.proto,
                                seen - start,
                                seen,
                                s.expire,
                                s.packets[0] as i64,
                                s.packets[1] as i64,
                                s.bytes[0] as i64,
                                s.bytes[1] as i64,
                                s.rule
                            ])?;
                        }
                        Event::End {
                            state: s,
                            start,
                            end,
                            reason,
                            ..
                        } => {
                            if self.open_table {
                                del_open.execute(params![s.creator_id, s.id as i64])?;
                            }
                            let l = life(s, *start, *end, *reason, true, &mut self.dict);
                            let c = dcls(l.dur);
                            let stmt = if c >= LONG_CLASS {
                                &mut ins_long
                            } else {
                                self.hot_rows += 1;
                                &mut ins_hot
                            };
                            stmt.execute(params![
                                l.pub_, l.pport, c, l.start, l.dur, l.priv_, l.privport, l.remote,
                                l.rport, l.sremote, l.srport, l.info, l.sid, l.rd, l.first_d,
                                l.ctr[0], l.ctr[1], l.ctr[2], l.ctr[3], l.rule
                            ])?;
                        }
                        _ => {}
                    }
                }
            }
            self.dict.save(&tx)?;
            tx.commit()?;
            if self.hot_rows >= self.seal_rows {
                self.seal()?;
            }
            Ok(())
        }

        /// Turn the hot table into a sealed, who-ordered, indexed partition.
        pub fn seal(&mut self) -> anyhow::Result<()> {
            let t = tcpu();
            let tx = self.conn.transaction()?;
            let (n, min_start, max_end): (i64, Option<i64>, Option<i64>) = tx.query_row(
                "SELECT count(*), min(start), max(start + dur) FROM v2_hot",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            if n == 0 {
                return Ok(());
            }
            let (min_start, max_end) = (min_start.unwrap_or(0), max_end.unwrap_or(0));
            let part: i64 =
                tx.query_row("SELECT coalesce(max(part), 0) + 1 FROM v2_parts", [], |r| {
                    r.get(0)
                })?;
            if self.rename {
                // Seal in place: the hot table (rows in close order, absolute starts) becomes
                // the partition; only the two indexes are built.
                tx.execute_batch(&format!(
                    "DROP INDEX IF EXISTS v2_hot_who;
                     ALTER TABLE v2_hot RENAME TO v2_p{part};
                     CREATE INDEX v2_p{part}_who ON v2_p{part} (pub, pport, dcls, start, dur);
                     CREATE INDEX v2_p{part}_priv ON v2_p{part} (priv, start);
                     CREATE TABLE v2_hot (id INTEGER PRIMARY KEY, pub BLOB NOT NULL, pport INTEGER NOT NULL,
                        dcls INTEGER NOT NULL, start INTEGER NOT NULL, dur INTEGER NOT NULL, priv BLOB,
                        privport INTEGER, remote BLOB, rport INTEGER, sremote BLOB, srport INTEGER,
                        info INTEGER, sid INTEGER, rd INTEGER, first_d INTEGER, p0 INTEGER, p1 INTEGER,
                        b0 INTEGER, b1 INTEGER, rule INTEGER);"
                ))?;
                if self.hot_index {
                    tx.execute_batch("CREATE INDEX v2_hot_who ON v2_hot (pub, pport, start);")?;
                }
                tx.execute(
                    "INSERT INTO v2_parts (part, base, min_start, max_end, rows) VALUES (?1, 0, ?2, ?3, ?4)",
                    params![part, min_start, max_end, n],
                )?;
                tx.commit()?;
                self.hot_rows = 0;
                self.seals += 1;
                self.seal_secs += tcpu() - t;
                return Ok(());
            }
            let base = min_start;
            let body = "pub BLOB NOT NULL, pport INTEGER NOT NULL, dcls INTEGER NOT NULL, start INTEGER NOT NULL,
                dur INTEGER NOT NULL, priv BLOB, privport INTEGER, remote BLOB, rport INTEGER, sremote BLOB,
                srport INTEGER, info INTEGER, sid INTEGER NOT NULL, rd INTEGER, first_d INTEGER, p0 INTEGER,
                p1 INTEGER, b0 INTEGER, b1 INTEGER, rule INTEGER";
            let ddl = if self.clustered {
                format!(
                    "CREATE TABLE v2_p{part} ({body}, PRIMARY KEY (pub, pport, dcls, start, sid)) WITHOUT ROWID;"
                )
            } else {
                format!("CREATE TABLE v2_p{part} (id INTEGER PRIMARY KEY, {body});")
            };
            tx.execute_batch(&ddl)?;
            tx.execute(
                &format!(
                    "INSERT INTO v2_p{part} ({COLS})
                     SELECT pub, pport, dcls, start - ?1, dur, priv, privport, remote, rport, sremote, srport,
                            info, sid, rd, first_d, p0, p1, b0, b1, rule
                     FROM v2_hot ORDER BY pub, pport, dcls, start, sid"
                ),
                [base],
            )?;
            if !self.clustered {
                tx.execute_batch(&format!(
                    "CREATE INDEX v2_p{part}_who ON v2_p{part} (pub, pport, dcls, start, dur);"
                ))?;
            }
            tx.execute_batch(&format!(
                "CREATE INDEX v2_p{part}_priv ON v2_p{part} (priv, start);
                 DELETE FROM v2_hot;"
            ))?;
            tx.execute(
                "INSERT INTO v2_parts (part, base, min_start, max_end, rows) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![part, base, min_start, max_end, n],
            )?;
            tx.commit()?;
            self.hot_rows = 0;
            self.seals += 1;
            self.seal_secs += tcpu() - t;
            Ok(())
        }
    }

    /// who: (private ip, private port, start, end) of lifetimes on pub:pport overlapping [t0, t1].
    pub fn who(
        c: &Connection,
        parts: &[(i64, i64, i64, i64)],
        ip: &IpAddr,
        port: u16,
        t0: i64,
        t1: i64,
    ) -> anyhow::Result<Vec<Answer>> {
        let blob = store::addr_blob(ip);
        let mut out = Vec::new();
        let max_short = class_max(LONG_CLASS - 1);
        for &(part, base, min_start, max_end) in parts {
            if min_start > t1 || max_end < t0 {
                continue;
            }
            let mut st = c.prepare_cached(&format!(
                "SELECT priv, privport, start, dur FROM v2_p{part}
                 WHERE pub = ?1 AND pport = ?2 AND dcls = ?3 AND start >= ?4 AND start <= ?5 AND start + dur >= ?6"
            ))?;
            for cl in 0..LONG_CLASS {
                let lo = t0 - class_max(cl).min(max_short) - base;
                let mut rows =
                    st.query(params![blob, port as i64, cl, lo, t1 - base, t0 - base])?;
                while let Some(r) = rows.next()? {
                    let s: i64 = r.get(2)?;
                    let d: i64 = r.get(3)?;
                    out.push((r.get(0)?, r.get(1)?, s + base, s + base + d));
                }
            }
        }
        for table in ["v2_long", "v2_hot"] {
            let mut st = c.prepare_cached(&format!(
                "SELECT priv, privport, start, dur FROM {table}
                 WHERE pub = ?1 AND pport = ?2 AND start <= ?3 AND start + dur >= ?4"
            ))?;
            let mut rows = st.query(params![blob, port as i64, t1, t0])?;
            while let Some(r) = rows.next()? {
                let s: i64 = r.get(2)?;
                let d: i64 = r.get(3)?;
                out.push((r.get(0)?, r.get(1)?, s, s + d));
            }
        }
        let mut st = c.prepare_cached(
            "SELECT priv, privport, start FROM v2_open WHERE pub = ?1 AND pport = ?2 AND start <= ?3",
        )?;
        let mut rows = st.query(params![blob, port as i64, t1])?;
        while let Some(r) = rows.next()? {
            out.push((r.get(0)?, r.get(1)?, r.get(2)?, i64::MAX));
        }
        Ok(out)
    }

    /// history: lifetimes whose private address is in [lo, hi] overlapping [t0, t1].
    pub fn history(
        c: &Connection,
        parts: &[(i64, i64, i64, i64)],
        lo: &IpAddr,
        hi: &IpAddr,
        t0: i64,
        t1: i64,
    ) -> anyhow::Result<usize> {
        let (lo, hi) = (store::addr_blob(lo), store::addr_blob(hi));
        let max_short = class_max(LONG_CLASS - 1);
        let mut n = 0;
        for &(part, base, min_start, max_end) in parts {
            if min_start > t1 || max_end < t0 {
                continue;
            }
            let mut st = c.prepare_cached(&format!(
                "SELECT pub, pport, start, dur, remote, rport, info, sid, p0, p1, b0, b1 FROM v2_p{part}
                 WHERE priv >= ?1 AND priv <= ?2 AND start >= ?3 AND start <= ?4 AND start + dur >= ?5"
            ))?;
            let mut rows =
                st.query(params![lo, hi, t0 - max_short - base, t1 - base, t0 - base])?;
            while rows.next()?.is_some() {
                n += 1;
            }
        }
        for table in ["v2_long", "v2_hot"] {
            let mut st = c.prepare_cached(&format!(
                "SELECT pub, pport, start, dur, remote, rport, info, sid, p0, p1, b0, b1 FROM {table}
                 WHERE priv >= ?1 AND priv <= ?2 AND start <= ?3 AND start + dur >= ?4"
            ))?;
            let mut rows = st.query(params![lo, hi, t1, t0])?;
            while rows.next()?.is_some() {
                n += 1;
            }
        }
        Ok(n)
    }

    pub fn parts(c: &Connection) -> anyhow::Result<Vec<(i64, i64, i64, i64)>> {
        let mut st =
            c.prepare("SELECT part, base, min_start, max_end FROM v2_parts ORDER BY part")?;
        let v = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(v)
    }

    pub fn count(c: &Connection) -> anyhow::Result<i64> {
        let mut n: i64 = 0;
        for (p, ..) in parts(c)? {
            n += c.query_row(
                &format!("SELECT rows FROM v2_parts WHERE part = {p}"),
                [],
                |r| r.get::<_, i64>(0),
            )?;
        }
        for t in ["v2_hot", "v2_long", "v2_open"] {
            n += c.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| {
                r.get::<_, i64>(0)
            })?;
        }
        Ok(n)
    }

    /// Copy every partition (and the long table) `copies - 1` more times, shifted in time by
    /// `shift` µs each (state ids by `id_shift`): the v2 twin of gen-db --copies.
    pub fn replicate(c: &Connection, copies: i64, shift: i64, id_shift: i64) -> anyhow::Result<()> {
        let ps = parts(c)?;
        let long0: i64 =
            c.query_row("SELECT coalesce(max(id), 0) FROM v2_long", [], |r| r.get(0))?;
        let mut next: i64 = ps.iter().map(|p| p.0).max().unwrap_or(0) + 1;
        let clustered: bool = c
            .query_row(
                "SELECT sql LIKE '%WITHOUT ROWID%' FROM sqlite_schema WHERE name = 'v2_p1'",
                [],
                |r| r.get(0),
            )
            .unwrap_or(false);
        for k in 1..copies {
            for &(part, base, min_start, max_end) in &ps {
                let sql: String = c.query_row(
                    "SELECT sql FROM sqlite_schema WHERE name = ?1",
                    [format!("v2_p{part}")],
                    |r| r.get(0),
                )?;
                let tx = c.unchecked_transaction()?;
                tx.execute_batch(&sql.replacen(&format!("v2_p{part}"), &format!("v2_p{next}"), 1))?;
                tx.execute(
                    &format!(
                        "INSERT INTO v2_p{next} ({COLS}) SELECT pub, pport, dcls, start, dur, priv, privport, remote,
                           rport, sremote, srport, info, sid + ?1, rd, first_d, p0, p1, b0, b1, rule
                         FROM v2_p{part} ORDER BY {}",
                        if clustered { "pub, pport, dcls, start, sid" } else { "id" }
                    ),
                    [k * id_shift],
                )?;
                if !clustered {
                    tx.execute_batch(&format!(
                        "CREATE INDEX v2_p{next}_who ON v2_p{next} (pub, pport, dcls, start, dur);"
                    ))?;
                }
                tx.execute_batch(&format!(
                    "CREATE INDEX v2_p{next}_priv ON v2_p{next} (priv, start);"
                ))?;
                let rows: i64 = tx.query_row(
                    &format!("SELECT rows FROM v2_parts WHERE part = {part}"),
                    [],
                    |r| r.get(0),
                )?;
                tx.execute(
                    "INSERT INTO v2_parts (part, base, min_start, max_end, rows) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![next, base + k * shift, min_start + k * shift, max_end + k * shift, rows],
                )?;
                tx.commit()?;
                next += 1;
            }
            c.execute(
                &format!(
                    "INSERT INTO v2_long ({COLS}) SELECT pub, pport, dcls, start + ?1, dur, priv, privport, remote,
                       rport, sremote, srport, info, sid + ?2, rd, first_d, p0, p1, b0, b1, rule
                     FROM v2_long WHERE id <= ?3 ORDER BY id"
                ),
                params![k * shift, k * id_shift, long0],
            )?;
            progress_line(&format!("v2 replicate: copy {} of {copies}", k + 1));
        }
        eprintln!();
        Ok(())
    }
}

fn v2_build(
    g: &GenArgs,
    db: &str,
    copies: u32,
    seal_rows: u64,
    clustered: bool,
) -> anyhow::Result<()> {
    let (cfg, copies) = g.config_for_copies(copies)?;
    if Path::new(db).exists() {
        bail!("{db} exists");
    }
    let t0 = Instant::now();
    let mut w = v2::Writer::open(db, seal_rows, true, clustered)?;
    let mut gen = gen::Generator::new(cfg.clone());
    let mut tracker = Tracker::new();
    let mut events = Vec::new();
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    let mut n_events = 0u64;
    let mut t_write = 0.0;
    while let Some(p) = gen.next_packet() {
        let from = events.len();
        for m in p.msgs {
            let d = pfstatelog::wire::Decoded {
                flavor: Flavor::OpenBsd,
                action: 0,
                record_version: 0,
                msg: m,
            };
            tracker.apply(&d, p.ts_us, &mut events);
        }
        for e in &events[from..] {
            if let Event::Open { seen, .. } = e {
                lo = lo.min(*seen);
                hi = hi.max(*seen);
            }
        }
        if events.len() >= 20_000 {
            let t = Instant::now();
            w.apply(&events)?;
            t_write += t.elapsed().as_secs_f64();
            n_events += events.len() as u64;
            events.clear();
            progress_line(&format!("v2-build: {} states", gen.stats.states));
        }
    }
    let t = Instant::now();
    w.apply(&events)?;
    w.seal()?;
    t_write += t.elapsed().as_secs_f64();
    n_events += events.len() as u64;
    eprintln!();
    let base_secs = t0.elapsed().as_secs_f64();
    println!(
        "v2 base: {} states, {n_events} events in {base_secs:.1}s; writer {t_write:.1}s ({:.0} lifetimes/s through the writer alone, {} seals {:.1}s)",
        gen.stats.states,
        gen.stats.states as f64 / t_write,
        w.seals,
        w.seal_secs
    );
    if copies > 1 {
        let t = Instant::now();
        let shift = hi - lo + 1_000_000;
        v2::replicate(&w.conn, copies as i64, shift, gen.stats.states as i64)?;
        println!("replicated x{copies} in {:.1}s", t.elapsed().as_secs_f64());
    }
    w.conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let n = v2::count(&w.conn)?;
    let size = db_bytes(db);
    println!(
        "built {db}: {n} states in {:.1}s, {:.1} MiB = {:.1} bytes/state",
        t0.elapsed().as_secs_f64(),
        mib(size),
        size as f64 / n.max(1) as f64
    );
    Ok(())
}

/// Writer options of the v2 prototype.
struct V2Opts {
    seal_rows: u64,
    batch_events: usize,
    open_table: bool,
    clustered: bool,
    seal_rename: bool,
    hot_index: bool,
}

fn v2_import(db: &str, cap: &str, base: Option<&str>, o: V2Opts) -> anyhow::Result<()> {
    let V2Opts {
        seal_rows,
        batch_events,
        open_table,
        clustered,
        seal_rename,
        hot_index,
    } = o;
    if let Some(b) = base {
        let t = Instant::now();
        remove_db(db);
        std::fs::copy(b, db)?;
        println!("copied {b} -> {db} in {:.1}s", t.elapsed().as_secs_f64());
    }
    let before_size = db_bytes(db);
    let t0 = Instant::now();
    let cpu0 = cpu_secs(false);
    let mut w = v2::Writer::open(db, seal_rows, open_table, clustered)?;
    w.rename = seal_rename;
    w.hot_index = hot_index;
    if hot_index {
        w.conn.execute_batch(
            "CREATE INDEX IF NOT EXISTS v2_hot_who ON v2_hot (pub, pport, start);",
        )?;
    }
    let before_n = v2::count(&w.conn)?;
    println!("before: {before_n} states, {:.1} MiB", mib(before_size));
    let mut tracker = Tracker::new();
    // Carry on from the open table (restart continuity): only the keys matter here.
    let mut stats = DecodeStats::default();
    let mut events = Vec::new();
    let mut cf = CaptureFile::open(cap)?;
    let (mut t_dec, mut t_write) = (0.0, 0.0);
    let mut frames = 0u64;
    loop {
        let a = tcpu();
        let Some(f) = cf.next_frame() else { break };
        let f = f?;
        let o = decode_frame(&f);
        let apply = stats.count(&f, &o);
        if apply {
            if let Outcome::Packet { pkt, .. } = &o {
                for m in pkt.messages() {
                    tracker.apply(m, f.ts_us, &mut events);
                }
            }
        }
        frames += 1;
        t_dec += tcpu() - a;
        if events.len() >= batch_events {
            let t = tcpu();
            w.apply(&events)?;
            t_write += tcpu() - t;
            events.clear();
        }
    }
    let t = tcpu();
    w.apply(&events)?;
    t_write += tcpu() - t;
    let secs = t0.elapsed().as_secs_f64();
    let after_n = v2::count(&w.conn)?;
    let (seals, seal_secs) = (w.seals, w.seal_secs);
    drop(w);
    let after_size = db_bytes(db);
    let opened = tracker.stats.opened;
    let cpu = cpu_secs(false) - cpu0;
    println!(
        "v2 import: {opened} lifetimes ({} closed), {frames} frames in {secs:.2}s wall: {:.0} states/s; CPU {cpu:.2}s: {:.0} states per CPU-second (CPU: read+decode+track {t_dec:.2}s, writer {t_write:.2}s incl. {} seals {:.2}s)",
        tracker.stats.closed,
        opened as f64 / secs,
        opened as f64 / cpu,
        seals,
        seal_secs
    );
    println!(
        "after: {after_n} states, {:.1} MiB = {:.1} bytes/state overall; growth {:.1} bytes per new state (WAL included: {:.1} MiB); peak RSS {:.1} MiB",
        mib(after_size),
        after_size as f64 / after_n.max(1) as f64,
        after_size.saturating_sub(before_size) as f64 / (after_n - before_n).max(1) as f64,
        mib(file_size(&format!("{db}-wal"))),
        vm_hwm_kb() as f64 / 1024.0
    );
    Ok(())
}

fn v2_query(
    db: &str,
    from: &str,
    queries: usize,
    cold: usize,
    seed: u64,
    hosts: u32,
) -> anyhow::Result<()> {
    let src = open_ro(from)?;
    let mut rng = gen::Rng::new(seed);
    let rand: Vec<Probe> = sample_rows(&src, queries, &mut rng, true)?
        .into_iter()
        .map(|x| x.0)
        .collect();
    let (hot, rdr) = find_pairs(&src)?;
    let hotp: Vec<(IpAddr, u16)> = hot.iter().map(|x| (x.0, x.1)).collect();
    let rdrp: Vec<(IpAddr, u16)> = rdr.iter().map(|x| (x.0, x.1)).collect();
    let hot_probes = sample_pair(&src, &hotp, queries / 2, &mut rng)?;
    let rdr_probes = sample_pair(&src, &rdrp, queries / 10, &mut rng)?;
    let c = pfstatelog::store::pagesum::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    c.pragma_update(None, "cache_size", -262_144i64)?;
    let parts = v2::parts(&c)?;
    let n = v2::count(&c)?;
    println!(
        "v2 database {db}: {n} states in {} partitions, {:.1} MiB",
        parts.len(),
        mib(db_bytes(db))
    );
    // Cross-check: same answers as store::query::who on the current-schema database.
    let mut mismatch = 0;
    for p in rand.iter().take(300).chain(hot_probes.iter().take(100)) {
        let a = query::who(&src, &p.ip, p.port, p.at, p.at, p.at, &WhoFilter::default())?;
        let b = v2::who(&c, &parts, &p.ip, p.port, p.at, p.at)?;
        let mut x: Vec<(i64, i64)> = a
            .iter()
            .map(|l| (l.start, l.end.unwrap_or(i64::MAX)))
            .collect();
        let mut y: Vec<(i64, i64)> = b.iter().map(|r| (r.2, r.3)).collect();
        x.sort();
        y.sort();
        if x != y {
            mismatch += 1;
        }
    }
    println!("cross-check vs store::query::who on {from}: {mismatch} of 400 probes differ");
    let mut rdr_mismatch = 0;
    for p in rdr_probes.iter() {
        let a = query::who(&src, &p.ip, p.port, p.at, p.at, p.at, &WhoFilter::default())?;
        let b = v2::who(&c, &parts, &p.ip, p.port, p.at, p.at)?;
        if a.len() != b.len() {
            rdr_mismatch += 1;
            if rdr_mismatch <= 2 {
                println!(
                    "  rdr probe {}:{} at {}: current {} rows (first {:?}), v2 {} rows",
                    p.ip,
                    p.port,
                    p.at,
                    a.len(),
                    a.first().map(|l| (l.start, l.end, l.state_id)),
                    b.len()
                );
            }
        }
    }
    println!(
        "cross-check rdr probes: {rdr_mismatch} of {} differ",
        rdr_probes.len()
    );
    drop(src);
    let run = |qs: &[Probe]| -> anyhow::Result<(Vec<f64>, Vec<usize>)> {
        let mut lat = Vec::new();
        let mut ns = Vec::new();
        for p in qs {
            let t = Instant::now();
            let r = v2::who(&c, &parts, &p.ip, p.port, p.at, p.at)?;
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
            ns.push(r.len());
        }
        Ok((lat, ns))
    };
    for (label, ps) in [
        ("NAT public", &rand),
        ("hot pairs", &hot_probes),
        ("rdr pairs", &rdr_probes),
    ] {
        if ps.is_empty() {
            continue;
        }
        let (first, _) = run(ps)?;
        println!(
            "{}",
            Stat::new(first).line(&format!("v2 who {label}, first touch"))
        );
        run(ps)?;
        let (warm, ns) = run(ps)?;
        println!("{}", Stat::new(warm).line(&format!("v2 who {label}, warm")));
        println!("{}", found_line(&format!("v2 who {label}"), &ns));
    }
    // history of one host over a day
    let (t0, t1): (i64, i64) = {
        let (a, b) = parts.iter().fold((i64::MAX, i64::MIN), |acc, p| {
            (acc.0.min(p.2), acc.1.max(p.3))
        });
        (a, b)
    };
    let day = 86_400_000_000i64;
    let hq: Vec<(IpAddr, i64)> = (0..200)
        .map(|_| {
            let ip = IpAddr::V4(gen::private_v4(rng.below(hosts as u64) as u32));
            let from = if t1 - t0 > day {
                t0 + rng.below((t1 - t0 - day) as u64) as i64
            } else {
                t0
            };
            (ip, from)
        })
        .collect();
    let hrun = |qs: &[(IpAddr, i64)]| -> anyhow::Result<(Vec<f64>, Vec<usize>)> {
        let mut lat = Vec::new();
        let mut ns = Vec::new();
        for (ip, from) in qs {
            let t = Instant::now();
            let k = v2::history(&c, &parts, ip, ip, *from, from + day)?;
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
            ns.push(k);
        }
        Ok((lat, ns))
    };
    let (first, _) = hrun(&hq)?;
    println!(
        "{}",
        Stat::new(first).line("v2 history host/day, first touch")
    );
    let (warm, ns) = hrun(&hq)?;
    println!("{}", Stat::new(warm).line("v2 history host/day, warm"));
    println!("{}", found_line("v2 history host/day", &ns));
    let top = IpAddr::V4(gen::private_v4(0));
    let (lat, ns) = hrun(&[(top, t0); 3])?;
    println!("{}", Stat::new(lat).line("v2 history busiest host"));
    println!("{}", found_line("v2 history busiest host", &ns));
    drop(c);
    if cold > 0 {
        let mut lat = Vec::new();
        for p in rand.iter().take(cold) {
            if !drop_caches() {
                println!("cold: cannot drop the page cache");
                break;
            }
            let c =
                pfstatelog::store::pagesum::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            let parts = v2::parts(&c)?;
            let t = Instant::now();
            v2::who(&c, &parts, &p.ip, p.port, p.at, p.at)?;
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        println!("{}", Stat::new(lat).line("v2 who NAT public, cold"));
    }
    Ok(())
}
