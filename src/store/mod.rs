//! The store: where lifetimes, runs and gaps are kept, and read back for the queries.
//! `sqlite` is the embedded store (one file, written by `record` and `import`).

pub mod sqlite;
