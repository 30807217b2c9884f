-- pfstatelog schema 3: the roots of closed days (docs/integrity.md).

-- Every version of every closed day's root, per creator; a later change to a day adds a
-- version and keeps the earlier ones (their history is evidence too).
CREATE TABLE digests (
    creator_id  INTEGER NOT NULL,
    day         INTEGER NOT NULL,        -- UTC day of the lifetimes' start, days since 1970-01-01
    version     INTEGER NOT NULL,        -- 1, then 2, 3... for each later change
    count       INTEGER NOT NULL,        -- lifetimes (leaves)
    open        INTEGER NOT NULL,        -- of them, without an end then (a CLR may end them)
    root        BLOB NOT NULL,           -- RFC 6962 Merkle tree hash, 32 bytes
    closed_wall INTEGER NOT NULL,        -- wall time the version was computed, µs
    reason      TEXT NOT NULL,           -- close | import | late | clear | prune
    PRIMARY KEY (creator_id, day, version)
) WITHOUT ROWID;

-- Days written to since their root was last computed (and days not closed yet), with why:
-- the next close recomputes them. Creator -1 asks it to find the days of a file that held
-- lifetimes before this table existed.
CREATE TABLE digest_dirty (
    creator_id  INTEGER NOT NULL,
    day         INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    PRIMARY KEY (creator_id, day)
) WITHOUT ROWID;
INSERT INTO digest_dirty SELECT -1, 0, 'close' WHERE EXISTS (SELECT 1 FROM runs);
