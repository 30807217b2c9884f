//! Every command-line type, in one place, so the man page and completions can be generated
//! from it. Scripts and runbooks rely on these forms: extend them, never break them.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "pfstatelog",
    version,
    about = "Record pf state lifetimes from pfsync into SQLite, and answer who held a public ip:port at a given time",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Capture pfsync live and record state lifetimes until SIGINT/SIGTERM.
    Record(RecordArgs),
    /// Ingest capture files (pcap, pcapng) through the recorder's pipeline.
    Import(ImportArgs),
    /// Print pfsync messages from a capture file or an interface.
    Decode(DecodeArgs),
    /// Which inside host held a public ip:port at a time.
    Who(WhoArgs),
    /// Every state of an inside host (or prefix) over a time range.
    History(HistoryArgs),
    /// Database size, states, coverage, creators, gaps.
    Stats(StatsArgs),
    /// Is a recorder writing this database, and is it healthy (exit 0 healthy, 1 degraded).
    Status(StatusArgs),
    /// Delete lifetimes that ended before a time (retention).
    Prune(PruneArgs),
    /// Load states older than the recorder from `pfctl -ss -vv` output.
    ImportPfctl(ImportPfctlArgs),
    /// Every lifetime overlapping a time range, streamed as CSV or JSON lines (archives,
    /// evidence).
    Export(ExportArgs),
    /// Read-only SQL (SQLite's dialect) over every lifetime, run, gap and creator, in a
    /// readable form.
    Sql(SqlArgs),
    /// Recompute every closed day's Merkle roots from what is stored and compare them with
    /// the stored roots and those published to syslog (exit 0 all match, 1 one differs,
    /// 2 error).
    Verify(VerifyArgs),
    /// Check an export against its manifest: same bytes (SHA-256), same row count, the
    /// format it claims (exit 0 matches, 1 does not, 2 error).
    VerifyExport(VerifyExportArgs),
    /// Send what a local database holds to a central ClickHouse database, where `who`,
    /// `history`, `export` and `stats` answer for every firewall shipped there.
    Ship(ShipArgs),
    /// Upgrade a database to this pfstatelog's schema (record, import and prune also do).
    Migrate(MigrateArgs),
    /// Read every stored lifetime and SQLite's integrity check: is the file sound? (exit 0
    /// sound, 1 damaged, 2 error).
    Check(CheckArgs),
    /// Write the man pages: pfstatelog.8 (every command) and one page per command.
    Man(ManArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
}

#[derive(Debug, Args, Clone)]
pub struct DbArg {
    /// Database path [default: $PFSTATELOG_DB, else /var/db/pfstatelog/pfstatelog.db on
    /// OpenBSD, /var/lib/pfstatelog/pfstatelog.db elsewhere]; who, history, export, stats
    /// and prune also read clickhouse://[USER@]HOST[:PORT]/DATABASE, or clickhouses:// for
    /// HTTPS (docs/clickhouse.md)
    #[arg(long, value_name = "PATH", env = "PFSTATELOG_DB")]
    pub db: Option<PathBuf>,
}

/// The writer's page cache, for `record` and `import`.
#[derive(Debug, Args, Clone)]
pub struct CacheArg {
    /// The writer's SQLite page cache, MiB (16-65536): the recently written parts of the
    /// indexes it keeps in memory. At 10,000 new states/s for 10 minutes, 1024 cut libpcap
    /// drops from 7 % to 1 % (BENCHMARKS.md, "The live recorder").
    #[arg(long = "cache-mib", value_name = "MIB", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(16..=65536))]
    pub mib: u32,
}

impl DbArg {
    pub fn path(&self) -> String {
        match &self.db {
            Some(p) => p.display().to_string(),
            None => default_db().into(),
        }
    }
}

pub fn default_db() -> &'static str {
    if cfg!(target_os = "openbsd") {
        "/var/db/pfstatelog/pfstatelog.db"
    } else {
        "/var/lib/pfstatelog/pfstatelog.db"
    }
}

/// `import` and `record`: the cap on open states in memory.
#[derive(Debug, Args)]
pub struct MaxOpenArg {
    /// Open states held in memory at most; past it the longest idle are written to the
    /// database (still open) and read back when a message names them, so a flood of INS
    /// with unique ids cannot exhaust memory [default: a quarter of physical memory at
    /// ~1 KiB an open state]
    #[arg(long = "max-open", value_name = "N",
          value_parser = clap::value_parser!(u64).range(1000..))]
    pub max_open: Option<u64>,
}

impl MaxOpenArg {
    /// The cap: as given, or sized from physical memory.
    pub fn get(&self) -> usize {
        self.max_open
            .map_or_else(crate::cmd::import::default_max_open, |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            })
    }
}

/// libpcap's ring for live capture, MiB, unless `record --pcap-buffer-mib` says otherwise.
pub const PCAP_BUFFER_MIB: u32 = 64;

#[derive(Debug, Args)]
pub struct RecordArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Mirror log lines to stderr.
    #[arg(short, long)]
    pub verbose: bool,
    /// Syslog facility for state lines and warnings.
    #[arg(long, value_name = "NAME", default_value = "daemon")]
    pub syslog_facility: String,
    /// Do not log to syslog.
    #[arg(long)]
    pub no_syslog: bool,
    /// BPF filter [default on non-pfsync interfaces: "ip proto 240 or ip6 proto 240"].
    #[arg(long, value_name = "BPF")]
    pub filter: Option<String>,
    /// After opening the capture as root, run as this unprivileged user (the database
    /// directory is created 0750 and the file 0640, owned by it).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Also chroot into DIR (which must contain --db) before dropping privileges.
    #[arg(long, value_name = "DIR", requires = "user")]
    pub chroot: Option<PathBuf>,
    /// At start-up, load the states pf already holds (`pfctl -ss -vv`, run before privileges
    /// are dropped), so connections older than the recorder are known. OpenBSD (and FreeBSD)
    /// only; elsewhere a warning, and recording goes on.
    #[arg(long)]
    pub snapshot: bool,
    #[command(flatten)]
    pub cache: CacheArg,
    #[command(flatten)]
    pub max_open: MaxOpenArg,
    /// libpcap's capture ring, MiB (1-1024): what absorbs a burst while decoding or a
    /// commit lags. 64 MiB holds ~40,000 pfsync packets (~2 s at 20,000 new states/s).
    #[arg(long = "pcap-buffer-mib", value_name = "MIB", default_value_t = PCAP_BUFFER_MIB,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub pcap_buffer_mib: u32,
    /// Warn in the log when no pfsync packet has arrived for this long (a firewall down, a
    /// cable out, pfsync0 without its syncdev), and say when traffic resumes.
    #[arg(long, value_name = "DUR", default_value = "5m", value_parser = duration_arg)]
    pub silent_after: i64,
    #[command(flatten)]
    pub digest: DigestArg,
    /// Parse and resolve the arguments, print them, and exit 0 without capturing (used by
    /// the examples' test).
    /// Also ship to this central database as the recorder writes:
    /// clickhouse://[USER@]HOST[:PORT]/DATABASE (as `pfstatelog ship --follow` does, on a
    /// thread of the recorder; password from $PFSTATELOG_CLICKHOUSE_PASSWORD or
    /// --password-file).
    #[arg(long, value_name = "URL")]
    pub ship_to: Option<String>,
    /// With --ship-to: this recorder's name on the server [default: the host name].
    #[arg(long, value_name = "NAME", requires = "ship_to")]
    pub name: Option<String>,
    /// With --ship-to: read the password from the first line of FILE (read before
    /// privileges are dropped).
    #[arg(long, value_name = "FILE", requires = "ship_to")]
    pub password_file: Option<PathBuf>,
    #[arg(long, hide = true)]
    pub check_args: bool,
    /// Interface to capture on: pfsync0, or the sync network interface.
    #[arg(value_name = "IFACE")]
    pub iface: String,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Log every state start and end to stderr.
    #[arg(short, long)]
    pub verbose: bool,
    #[command(flatten)]
    pub cache: CacheArg,
    #[command(flatten)]
    pub max_open: MaxOpenArg,
    #[command(flatten)]
    pub digest: DigestArg,
    /// Also publish the day roots to syslog with this facility (they always go to stderr).
    #[arg(long, value_name = "NAME")]
    pub syslog_facility: Option<String>,
    /// Capture files (classic pcap in either byte order, micro or nano; pcapng).
    #[arg(value_name = "CAPTURE", required = true)]
    pub captures: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DecodeFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct DecodeArgs {
    #[arg(long, value_enum, default_value_t = DecodeFormat::Text)]
    pub format: DecodeFormat,
    /// Stop after N packets.
    #[arg(long, short = 'c', value_name = "N")]
    pub count: Option<u64>,
    /// Capture live on this interface instead of reading a file.
    #[arg(
        short = 'i',
        long = "interface",
        value_name = "IFACE",
        conflicts_with = "capture"
    )]
    pub iface: Option<String>,
    /// BPF filter for live capture.
    #[arg(long, value_name = "BPF", requires = "iface")]
    pub filter: Option<String>,
    /// Capture file to read.
    #[arg(value_name = "CAPTURE", required_unless_present = "iface")]
    pub capture: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutFormat {
    Table,
    Json,
    Csv,
    /// JSON object: the matches plus the coverage facts.
    JsonReport,
}

#[derive(Debug, Args)]
pub struct TzArg {
    /// Zone for times shown to people and for naive input times: utc, local, or a name
    /// like Europe/Paris [default: utc for output; naive input is local time].
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
}

// Negative numbers are values here, so that `--port -1` is told it is out of range rather
// than taken for an unknown option.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct WhoArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Public (translated) address from the report.
    #[arg(long, value_name = "IP", required_unless_present = "batch")]
    pub ip: Option<String>,
    /// Public port (the ICMP id for ICMP).
    #[arg(long, value_name = "PORT", required_unless_present = "batch")]
    pub port: Option<String>,
    /// Time from the report: RFC 3339, "YYYY-MM-DD HH:MM:SS" (local), or @EPOCH.
    #[arg(
        long,
        value_name = "TIME",
        required_unless_present = "batch",
        allow_hyphen_values = true
    )]
    pub at: Option<String>,
    /// Also match lifetimes within this distance of TIME: 90s, 2m, 1h, or seconds.
    #[arg(
        long,
        value_name = "DUR",
        default_value = "0",
        allow_hyphen_values = true
    )]
    pub window: String,
    /// Only this protocol: tcp, udp, icmp, ipv6-icmp, or a number.
    #[arg(long, value_name = "P")]
    pub proto: Option<String>,
    /// Only states with this remote peer: IP or IP:PORT ([v6]:port).
    #[arg(long, value_name = "IP[:PORT]")]
    pub remote: Option<String>,
    /// Answer every line of a CSV file: ip,port,time[,window[,remote]] ("-" for stdin).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["ip", "port", "at"])]
    pub batch: Option<String>,
    #[arg(long, value_enum, default_value_t = OutFormat::Table)]
    pub format: OutFormat,
    #[command(flatten)]
    pub tz: TzArg,
}

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Inside host address, or a prefix (192.168.1.0/24, 2001:db8:1:2::/64).
    #[arg(long, value_name = "IP|CIDR")]
    pub host: String,
    /// Start of the range: states whose lifetime overlaps it are listed. RFC 3339,
    /// "YYYY-MM-DD HH:MM:SS" (local), or @EPOCH [default: no lower bound].
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub from: Option<String>,
    /// End of the range (inclusive), in the same forms as --from [default: no upper bound].
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub to: Option<String>,
    /// Only states with this private port.
    #[arg(long, value_name = "P")]
    pub port: Option<String>,
    /// Only this protocol: tcp, udp, icmp, ipv6-icmp, or a number.
    #[arg(long, value_name = "P")]
    pub proto: Option<String>,
    /// Only states with this remote peer: IP or IP:PORT ([v6]:port), as for `who`.
    #[arg(long, value_name = "IP[:PORT]")]
    pub remote: Option<String>,
    #[arg(long, value_enum, default_value_t = OutFormat::Table)]
    pub format: OutFormat,
    #[command(flatten)]
    pub tz: TzArg,
}

#[derive(Debug, Args)]
pub struct ShipArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// The central database: clickhouse://[USER@]HOST[:PORT]/DATABASE (HTTP, port 8123 by
    /// default), or clickhouses:// (HTTPS, port 8443; a private CA's PEM file in
    /// $PFSTATELOG_CLICKHOUSE_CA). The password comes from $PFSTATELOG_CLICKHOUSE_PASSWORD or
    /// --password-file, never from the command line.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// This recorder's name on the server, which its runs and gaps carry [default: the
    /// host name].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Read the password from the first line of FILE.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Keep shipping as the recorder writes, until SIGTERM or SIGINT; while the server
    /// cannot be reached, retry with backoff (up to 30 s) and log the outage once.
    #[arg(long)]
    pub follow: bool,
    /// With --follow: log to stderr only, not syslog.
    #[arg(long, requires = "follow")]
    pub no_syslog: bool,
    /// With --follow: also log each round's count.
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    Text,
    Json,
    /// Prometheus text exposition format (node_exporter's textfile collector).
    Prometheus,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub db: DbArg,
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub format: StatusFormat,
    /// Degraded when the newest pfsync packet is older than this (90s, 5m, 1h).
    #[arg(long, value_name = "DUR", default_value = "5m", value_parser = duration_arg)]
    pub silent_after: i64,
}

/// A duration argument (`90s`, `5m`, `1h30m`, plain seconds), in microseconds.
fn duration_arg(s: &str) -> Result<i64, String> {
    match crate::time::parse_duration(s) {
        Ok(us) if us > 0 => Ok(us),
        Ok(_) => Err("must be longer than zero".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub db: DbArg,
}

/// When a day is closed (docs/integrity.md).
#[derive(Debug, Args)]
pub struct DigestArg {
    /// Close a UTC day (compute, store and publish its Merkle root) once it ended this long
    /// ago: by the wall clock for record, by the newest message time stored for import.
    #[arg(long = "digest-grace", value_name = "DUR", default_value = "2h", value_parser = duration_arg)]
    pub grace: i64,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// A syslog file: its `digest creator=…` lines are compared with the stored roots too.
    #[arg(long, value_name = "FILE")]
    pub roots: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub db: DbArg,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Delete lifetimes that ended before this time.
    #[arg(
        long,
        value_name = "TIME",
        conflicts_with = "older_than",
        required_unless_present = "older_than"
    )]
    pub before: Option<String>,
    /// Delete lifetimes that ended more than DUR ago.
    #[arg(long, value_name = "DUR")]
    pub older_than: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImportPfctlArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Only states of this creator id (8 hex digits, as pfctl prints it).
    #[arg(long, value_name = "HEX")]
    pub creator: Option<String>,
    /// When the snapshot was taken: each state starts at this time minus its age
    /// [default: now].
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub taken: Option<String>,
    /// Log every state loaded to stderr.
    #[arg(short, long)]
    pub verbose: bool,
    /// Output of `pfctl -ss -vv` ("-" for stdin).
    #[arg(value_name = "FILE")]
    pub file: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// `#` comment lines (database, range, coverage), a header line, one line per lifetime.
    Csv,
    /// One JSON object per line: a header object, one per lifetime, an end object.
    Json,
    /// A plain SQLite file OUT (tables lifetimes, runs, gaps, creators, export_info), for
    /// any SQLite tool.
    Sqlite,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Start of the range: RFC 3339, "YYYY-MM-DD HH:MM:SS" (local), or @EPOCH.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub from: String,
    /// End of the range (inclusive).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub to: String,
    #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
    pub format: ExportFormat,
    /// Also write an evidence manifest (JSON: tool version, database path and UUID, range,
    /// row count, coverage, SHA-256 of the exported bytes) that `verify-export` checks.
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Give each lifetime of a closed day its inclusion proof against the day's published
    /// root, and list those roots in the manifest (`verify-export --proof` checks them
    /// without the database). JSON only; needs --manifest.
    #[arg(long, requires = "manifest")]
    pub proof: bool,
    #[command(flatten)]
    pub tz: TzArg,
    /// Write the export to this new file instead of standard output (required for
    /// --format sqlite); an existing file is never replaced.
    #[arg(value_name = "OUT")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SqlFormat {
    Table,
    /// A JSON array of objects per statement that returns rows.
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    #[command(flatten)]
    pub db: DbArg,
    #[arg(long, value_enum, default_value_t = SqlFormat::Table)]
    pub format: SqlFormat,
    /// SQL statements ("-" for stdin): tables lifetimes, runs, gaps, creators; functions
    /// us(TIME) and rfc3339(US). Only temp tables may be written.
    #[arg(value_name = "QUERY", allow_hyphen_values = true)]
    pub query: String,
}

#[derive(Debug, Args)]
pub struct VerifyExportArgs {
    /// The manifest `export --manifest` wrote.
    #[arg(long, value_name = "FILE")]
    pub manifest: PathBuf,
    /// The exported file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Also check every row's inclusion proof (`export --proof`) against the day roots
    /// the manifest lists, with no database.
    #[arg(long)]
    pub proof: bool,
    /// With --proof: a file of published root lines (a syslog file); every root the
    /// manifest lists must be among them.
    #[arg(long, value_name = "FILE", requires = "proof")]
    pub roots: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write pfstatelog.8 and pfstatelog-COMMAND.8 into DIR [default: pfstatelog.8 to
    /// stdout].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: CompletionShell,
}
