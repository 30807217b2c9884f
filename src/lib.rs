//! pfstatelog: a forensic index of pf state lifetimes, fed by pfsync.
//!
//! Data flows one way: `source` (live libpcap or capture files) -> `wire` (link framing and
//! pfsync decoding) -> `track` (state lifetimes) -> `store` (SQLite); the query commands
//! read the store and print through `report`.

pub mod cli;
pub mod cmd;
pub(crate) mod commit;
pub mod ingest;
pub mod model;
pub mod pfctl;
pub mod pipeline;
pub(crate) mod privdrop;
pub mod report;
pub mod source;
pub mod store;
pub mod syslog;
pub mod time;
pub mod track;
pub mod wire;
