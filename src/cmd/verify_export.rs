//! `pfstatelog verify-export FILE --manifest M` (filled in with the manifest).

use crate::cli::VerifyExportArgs;

pub fn run(_a: VerifyExportArgs) -> anyhow::Result<u8> {
    anyhow::bail!("verify-export: not available yet")
}
