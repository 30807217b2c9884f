-- pfstatelog schema 8: what `pfstatelog status` reads about a running recorder.
--
-- A live recorder writes, with every commit, its run's running totals into the row of the
-- current wall-clock minute (one row per run and minute, the last commit of the minute
-- wins). Rates over the last minute or hour are the difference of two rows, so a status
-- check never counts lifetimes. Rows older than eight days are deleted by the recorder.
CREATE TABLE health (
    run_id        INTEGER NOT NULL REFERENCES runs (id),
    minute        INTEGER NOT NULL,      -- wall clock, whole minutes since the epoch
    wall_us       INTEGER NOT NULL,      -- wall clock of the commit that wrote the row
    packets       INTEGER NOT NULL,      -- frames captured by this run so far
    opened        INTEGER NOT NULL,      -- lifetimes it saw begin
    open_states   INTEGER NOT NULL,      -- lifetimes open at that commit
    drops         INTEGER NOT NULL,      -- libpcap drops
    decode_errors INTEGER NOT NULL,
    last_packet_us INTEGER,              -- capture time of the newest pfsync frame
    db_bytes      INTEGER NOT NULL,      -- database file size (pages in use x page size)
    PRIMARY KEY (run_id, minute)
) WITHOUT ROWID;

-- Which process a run is, so `status` can name it.
ALTER TABLE runs ADD COLUMN pid INTEGER;
ALTER TABLE runs ADD COLUMN version TEXT;
