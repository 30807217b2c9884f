-- pfstatelog schema 4: closed lifetimes written in bulk ("sealed"), a few bytes each.
--
-- A B-tree row per lifetime with three indexes costs ~25-35 µs and ~245 bytes per state
-- (BENCHMARKS.md). An import knows a lifetime whole once it has ended, so it writes each
-- flush's closed new lifetimes ("a seal") grouped by what `who` asks for: one row per duration
-- class (dcls of states, migrations/0002), time bucket (of the start, four times the class's
-- longest duration wide: src/store/query.rs, sealed_shift) and public ip:port,
-- holding every lifetime of that group packed (src/store/pack.rs). Groups of the same key
-- from several seals are merged once their bucket can get no more lifetimes (and at the end
-- of every import), so `who` reads one row per class and bucket, as it reads states_who.
-- Open states, evidence rows, and every lifetime an earlier import already knows stay in
-- `states`; a later message about a sealed lifetime moves it back there first ("unseal"),
-- so every merge rule of the writer applies unchanged.
CREATE TABLE sealed (
    dcls     INTEGER NOT NULL,
    tb       INTEGER NOT NULL,
    w_addr1  BLOB NOT NULL,
    w_port1  INTEGER NOT NULL,
    seal     INTEGER NOT NULL,
    n        INTEGER NOT NULL,           -- lifetimes in rows
    rows     BLOB NOT NULL,
    PRIMARY KEY (dcls, tb, w_addr1, w_port1, seal)
) WITHOUT ROWID;

-- history: per class, bucket and private host, the public pairs its sealed lifetimes are
-- filed under (src/store/pack.rs, pairs).
CREATE TABLE sealed_private (
    dcls     INTEGER NOT NULL,
    tb       INTEGER NOT NULL,
    s_addr1  BLOB NOT NULL,
    seal     INTEGER NOT NULL,
    pairs    BLOB NOT NULL,
    PRIMARY KEY (dcls, tb, s_addr1, seal)
) WITHOUT ROWID;

-- Per class and bucket: how many seals wrote into it since its last merge, how many
-- lifetimes it holds, the earliest start, the latest last-seen and end (stats, prune).
CREATE TABLE sealed_buckets (
    dcls     INTEGER NOT NULL,
    tb       INTEGER NOT NULL,
    seals    INTEGER NOT NULL,
    n        INTEGER NOT NULL,
    first_us INTEGER NOT NULL,
    last_us  INTEGER NOT NULL,
    end_us   INTEGER NOT NULL,
    PRIMARY KEY (dcls, tb)
) WITHOUT ROWID;

-- The buckets waiting for a merge, found without reading every bucket of every class.
CREATE INDEX sealed_buckets_pending ON sealed_buckets (dcls, tb) WHERE seals > 1;

-- Sealed lifetimes per creator (stats).
CREATE TABLE sealed_creators (
    creator_id INTEGER PRIMARY KEY,
    n          INTEGER NOT NULL
);

-- Per seal, creator and top byte of the state id (FreeBSD puts the CPU there), in chunks of
-- 4,096 consecutive ids: the ids it holds and where each one is filed (pack.rs, ids), so a
-- later message about one of them finds it without an index entry per lifetime; end_us is
-- the latest end of the seal's lifetimes of that creator (prune).
CREATE TABLE seals (
    seal       INTEGER NOT NULL,
    creator_id INTEGER NOT NULL,
    grp        INTEGER NOT NULL,
    min_id     INTEGER NOT NULL,
    max_id     INTEGER NOT NULL,
    end_us     INTEGER NOT NULL,
    ids        BLOB NOT NULL,
    PRIMARY KEY (seal, creator_id, grp, min_id)
) WITHOUT ROWID;

-- Names that would repeat in every packed row: creators' ifnames.
CREATE TABLE names (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE
);
