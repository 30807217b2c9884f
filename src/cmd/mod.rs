//! One file per subcommand; each returns the exit code (errors become exit 2 in main).

pub mod check;
pub mod decode;
pub mod export;
pub mod import;
pub mod import_pfctl;
pub mod man;
pub mod migrate;
pub mod out;
pub mod query;
pub mod record;
pub mod ship;
pub mod sql;
pub mod status;
pub mod verify;
pub mod verify_export;

use crate::cli::Command;

/// Exit codes, as grep: something found, nothing found; errors are 2 (main).
pub const FOUND: u8 = 0;
pub const NOTHING: u8 = 1;
/// Nothing intact matched, and the range holds damaged data that may hold the answer: not
/// "nothing" (a script must not read it as "nobody"), not a failure to run either.
pub const DAMAGED: u8 = 3;

pub fn run(c: Command) -> anyhow::Result<u8> {
    match c {
        Command::Record(a) if a.check_args => man::check_record_args(a),
        Command::Record(a) => record::run(a),
        Command::Import(a) => import::run(a),
        Command::Decode(a) => decode::run(a),
        Command::Who(a) => query::who(a),
        Command::History(a) => query::history(a),
        Command::Stats(a) => query::stats(a),
        Command::Status(a) => status::run(a),
        Command::Prune(a) => query::prune(a),
        Command::ImportPfctl(a) => import_pfctl::run(a),
        Command::Export(a) => export::run(a),
        Command::Sql(a) => sql::run(a),
        Command::Verify(a) => verify::run(a),
        Command::VerifyExport(a) => verify_export::run(a),
        Command::Ship(a) => ship::run(a),
        Command::Migrate(a) => migrate::run(a),
        Command::Check(a) => check::run(a),
        Command::Man(a) => man::man(a),
        Command::Completions(a) => man::completions(a),
    }
}

pub use crate::time::wall_us;
