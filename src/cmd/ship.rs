//! `ship`: send a local database to the central ClickHouse database, once or (`--follow`)
//! as the recorder writes it.

use crate::cli::ShipArgs;
use crate::store::clickhouse::{password, ship};
use crate::syslog::{Facility, Logger};
use anyhow::Context;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub fn run(a: ShipArgs) -> anyhow::Result<u8> {
    let db = a.db.path();
    let name = a.name.clone().unwrap_or_else(ship::default_name);
    let pw = password(a.password_file.as_deref())?;
    let mut shipper = ship::Shipper::new(&db, &a.to, &name, pw)?;
    if a.follow {
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
        }
        // Like the recorder: syslog (facility daemon) and, for warnings, stderr.
        let log = Logger::new(!a.no_syslog, Facility::Daemon, a.verbose);
        log.info(&format!(
            "shipping {db} to {} as {name} as it is written",
            shipper.shown()
        ));
        ship::follow(&mut shipper, &stop, &log)?;
        log.info("stopped shipping");
        return Ok(0);
    }
    let s = shipper.once(&AtomicBool::new(false))?;
    eprintln!(
        "pfstatelog: shipped {} lifetimes, {} runs, {} gaps, {} creators of {db} to {} as {name}",
        s.lifetimes, s.runs, s.gaps, s.creators, a.to
    );
    Ok(0)
}
