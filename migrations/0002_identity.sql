-- pfstatelog schema 2: the database's identity. An export's evidence manifest names the
-- database it came from by this UUID as well as by its path, which changes when a file is
-- copied or moved. One row, written by pfstatelog when the file is created (or, for a file
-- of schema 1, when a writer upgrades it); a file without it reports the UUID as absent.
CREATE TABLE identity (
    one        INTEGER PRIMARY KEY CHECK (one = 1),
    uuid       TEXT NOT NULL,        -- random UUID (version 4), lower-case hyphenated
    created_us INTEGER NOT NULL,     -- wall clock when it was given, µs UTC
    how        TEXT NOT NULL         -- created (a new file) | upgraded (from schema 1)
);
