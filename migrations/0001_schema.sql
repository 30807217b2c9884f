-- pfstatelog schema 1.
--
-- Times are integer microseconds since the Unix epoch (UTC). Addresses are BLOBs of 4 bytes
-- (IPv4) or 16 bytes (IPv6), so equality and prefix ranges compare as bytes for both.
-- A lifetime is in one of three places, read together by every query: `states` (open
-- lifetimes the recorder keeps past their first ten minutes, evidence rows, lifetimes a
-- later message changed), `journal` (the running recorder's journal of new open states) and
-- the archived tables (closed lifetimes, packed by what `who` asks for).

-- One row per state lifetime. w_* is the WIRE key (key[0]), s_* the STACK key (key[1]).
-- public = w_addr1:w_port1, private = s_addr1:s_port1, remote = w_addr0:w_port0.
-- Evidence rows (a DEL_C or UPD_C for a state never seen in full) have NULL keys and start.
CREATE TABLE states (
    id          INTEGER PRIMARY KEY,
    creator_id  INTEGER NOT NULL,
    state_id    INTEGER NOT NULL,        -- u64 stored as its i64 bit pattern
    ifname      TEXT,
    af          INTEGER,                 -- 2 inet, 24 inet6 (normalised; FreeBSD's 28 maps to 24)
    proto       INTEGER,
    direction   INTEGER,                 -- 1 in, 2 out
    w_addr0     BLOB, w_port0 INTEGER, w_addr1 BLOB, w_port1 INTEGER, w_rdomain INTEGER,
    s_addr0     BLOB, s_port0 INTEGER, s_addr1 BLOB, s_port1 INTEGER, s_rdomain INTEGER,
    s_af        INTEGER,                 -- stack key family (differs from af only with af-to)
    nat         INTEGER NOT NULL DEFAULT 0,
    start_us    INTEGER,                 -- first full message's time minus its creation age
    first_us    INTEGER,                 -- time of that first full message
    end_us      INTEGER,                 -- DEL_C / DEL / CLR time; NULL while open
    end_reason  TEXT,                    -- delete | delete-full | clear | replaced
    last_us     INTEGER NOT NULL,        -- last message that named the state (a CLR names none)
    updated_us  INTEGER,                 -- time of the full message the counters come from
    expire      INTEGER,
    packets0    INTEGER, packets1 INTEGER, bytes0 INTEGER, bytes1 INTEGER,
    rule        INTEGER,
    flavor      INTEGER,                 -- header version it came in: 6 OpenBSD, 5 FreeBSD
    -- Duration class. A lifetime overlaps [t0, t1] when start <= t1 and end >= t0; an index
    -- on (pair, start) alone would read every earlier start of the pair. A lifetime of class
    -- c lasts at most 2^(20+2c) µs (1 s, 4 s, 17 s, 67 s, 4.5 min, 18 min, 72 min, 4.8 h,
    -- 19 h, 3.2 d, 13 d, 51 d, 203 d), so for each class only starts in [t0 - max(c), t1]
    -- can overlap. Class 13 is longer, class 14 still open. Evidence rows have none. The same
    -- constants are in src/store/query.rs (CLASS_MAX_US).
    dur_class INTEGER GENERATED ALWAYS AS (
    CASE
        WHEN start_us IS NULL THEN NULL
        WHEN end_us IS NULL THEN 14
        WHEN end_us - start_us <= 1048576 THEN 0
        WHEN end_us - start_us <= 4194304 THEN 1
        WHEN end_us - start_us <= 16777216 THEN 2
        WHEN end_us - start_us <= 67108864 THEN 3
        WHEN end_us - start_us <= 268435456 THEN 4
        WHEN end_us - start_us <= 1073741824 THEN 5
        WHEN end_us - start_us <= 4294967296 THEN 6
        WHEN end_us - start_us <= 17179869184 THEN 7
        WHEN end_us - start_us <= 68719476736 THEN 8
        WHEN end_us - start_us <= 274877906944 THEN 9
        WHEN end_us - start_us <= 1099511627776 THEN 10
        WHEN end_us - start_us <= 4398046511104 THEN 11
        WHEN end_us - start_us <= 17592186044416 THEN 12
        ELSE 13
    END) VIRTUAL,
    -- Time bucket of the start, a width per class: 2^32 µs (72 min) up to class 5, then four
    -- times the class's longest duration; one bucket for classes 13 and 14. Leading the
    -- indexes with (class, bucket) keeps every insert in the recent buckets, which stay in
    -- the page cache however large the database grows (BENCHMARKS.md).
    start_bucket INTEGER GENERATED ALWAYS AS (
    CASE
        WHEN dur_class IS NULL THEN NULL
        WHEN dur_class >= 13 THEN 0
        WHEN dur_class <= 5 THEN start_us >> 32
        ELSE start_us >> (22 + 2 * dur_class)
    END) VIRTUAL
);
CREATE INDEX states_key ON states (creator_id, state_id);

-- Which firewalls spoke, in which flavour.
CREATE TABLE creators (
    creator_id  INTEGER PRIMARY KEY,
    flavor      TEXT NOT NULL,
    version     INTEGER NOT NULL,        -- header version; FreeBSD record version in record_version
    record_version INTEGER,
    first_us    INTEGER NOT NULL,
    last_us     INTEGER NOT NULL
);

-- Recorder runs and imports: what was watched, when. Coverage = union of [first_us, last_us].
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,           -- record | import
    source      TEXT NOT NULL,           -- interface or capture path
    fingerprint TEXT,                    -- imports: path + size, so a re-import reuses its row
    started_wall INTEGER NOT NULL,
    stopped_wall INTEGER,
    first_us    INTEGER,                 -- first packet time
    last_us     INTEGER,                 -- last packet time (live: last heartbeat)
    packets     INTEGER NOT NULL DEFAULT 0,
    messages    INTEGER NOT NULL DEFAULT 0,
    drops       INTEGER NOT NULL DEFAULT 0,
    decode_errors INTEGER NOT NULL DEFAULT 0,
    skipped     INTEGER NOT NULL DEFAULT 0,
    status      TEXT NOT NULL,           -- running | stopped | failed
    pid         INTEGER,                 -- the process, so `status` can name it
    version     TEXT                     -- its pfstatelog version
);
CREATE UNIQUE INDEX runs_fingerprint ON runs (fingerprint) WHERE fingerprint IS NOT NULL;

-- Moments the recorder was partly blind: pcap drops, decode errors, untrusted packets.
CREATE TABLE gaps (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs (id),
    start_us    INTEGER NOT NULL,
    end_us      INTEGER NOT NULL,
    kind        TEXT NOT NULL,           -- pcap-drop | decode-error | bad-ttl
    count       INTEGER NOT NULL,
    detail      TEXT
);
CREATE INDEX gaps_time ON gaps (start_us);
CREATE UNIQUE INDEX gaps_dedup ON gaps (run_id, start_us, kind);

-- CLR messages (`pfctl -F states`): kept so that a state learnt later from an older capture
-- still ends at the CLR that ended it (imports in any order give the same answer).
CREATE TABLE clears (
    creator_id  INTEGER NOT NULL,
    ts_us       INTEGER NOT NULL,
    ifname      TEXT NOT NULL,           -- '' = every interface
    flavor      INTEGER NOT NULL,        -- 6 OpenBSD (filters by ifname), 5 FreeBSD (ignores it)
    PRIMARY KEY (creator_id, ts_us, ifname)
) WITHOUT ROWID;

-- Bulk update status messages (BUS start / end).
CREATE TABLE bus (
    creator_id  INTEGER NOT NULL,
    ts_us       INTEGER NOT NULL,
    status      INTEGER NOT NULL,        -- 1 start, 2 end
    endtime     INTEGER NOT NULL,
    PRIMARY KEY (creator_id, ts_us, status)
) WITHOUT ROWID;

-- who: class, bucket, public ip:port, start, end (overlap decided inside the index).
CREATE INDEX states_who ON states (dur_class, start_bucket, w_addr1, w_port1, start_us, end_us);
-- history: class, bucket, the private host (or a prefix's range), start.
CREATE INDEX states_private ON states (dur_class, start_bucket, s_addr1, start_us);

-- Closed lifetimes written in bulk ("archived"), a few bytes each. An import or the recorder
-- knows a lifetime whole once it has ended, so it writes each flush's closed lifetimes ("a
-- batch") grouped by what `who` asks for: per duration class and time bucket (of the start,
-- four times the class's longest duration wide: src/store/query.rs, archive_shift), a bucket
-- holds 2^bits rows (`archive_buckets.bits`): `w_addr1` is one byte, bits, and `w_port1` the
-- group number, a fixed hash of the public pair (src/store/pack.rs, hashed_group). Each
-- row's blob holds its pairs' lifetimes one pair after the other (pack_sections), so `who`
-- skips the other pairs of a row unread. A merge that finds a bucket holding far more than
-- its first batch foresaw regroups it under more bits; a group still over 960 bytes is
-- written as several rows, told apart by `batch` (batch + k << 40 for the k-th). Groups of
-- several batches are merged once their bucket can get no more lifetimes. A later message
-- about a archived lifetime moves it back to `states` first ("unarchive").
-- Every packed blob (`archived.rows`, `archive_hosts.pairs`, `batches.ids`) ends with four
-- bytes: the CRC-32 (little-endian) of the row's key and of the packed bytes before it
-- (src/store/pack.rs, summed), checked before it is decoded.
CREATE TABLE archive (
    dur_class     INTEGER NOT NULL,
    start_bucket       INTEGER NOT NULL,
    w_addr1  BLOB NOT NULL,
    w_port1  INTEGER NOT NULL,
    batch     INTEGER NOT NULL,
    n        INTEGER NOT NULL,           -- lifetimes in rows
    rows     BLOB NOT NULL,
    PRIMARY KEY (dur_class, start_bucket, w_addr1, w_port1, batch)
) WITHOUT ROWID;

-- history: per class, bucket and private host, where its archived lifetimes are filed: per
-- lifetime the top 24 bits of its public pair's hash (src/store/pack.rs, pack_pairs), with
-- buckets as deltas from the row's own history bucket. `form` is always 1.
CREATE TABLE archive_hosts (
    dur_class     INTEGER NOT NULL,
    start_bucket       INTEGER NOT NULL,
    s_addr1  BLOB NOT NULL,
    batch     INTEGER NOT NULL,
    pairs    BLOB NOT NULL,
    form     INTEGER NOT NULL,
    PRIMARY KEY (dur_class, start_bucket, s_addr1, batch)
) WITHOUT ROWID;

-- Per class and bucket: how many batches wrote into it since its last merge, how many
-- lifetimes it holds, the earliest start, the latest last-seen and end (stats, prune), and
-- its number of hash bits (2^bits group rows).
CREATE TABLE archive_buckets (
    dur_class     INTEGER NOT NULL,
    start_bucket       INTEGER NOT NULL,
    batches    INTEGER NOT NULL,
    n        INTEGER NOT NULL,
    first_us INTEGER NOT NULL,
    last_us  INTEGER NOT NULL,
    end_us   INTEGER NOT NULL,
    bits     INTEGER NOT NULL,
    PRIMARY KEY (dur_class, start_bucket)
) WITHOUT ROWID;

-- The buckets waiting for a merge, found without reading every bucket of every class.
CREATE INDEX archive_buckets_pending ON archive_buckets (dur_class, start_bucket) WHERE batches > 1;

-- Archived lifetimes per creator (stats).
CREATE TABLE archive_creators (
    creator_id INTEGER PRIMARY KEY,
    n          INTEGER NOT NULL
);

-- Per batch, creator and top byte of the state id (FreeBSD puts the CPU there), in chunks of
-- 4,096 consecutive ids: the ids it holds and where each one is filed (class, bucket and
-- hash spot: pack.rs, pack_ids), so a later message about one of them finds it without an
-- index entry per lifetime; end_us is the latest end of the batch's lifetimes of that
-- creator (prune). `form` is always 2.
CREATE TABLE archive_batches (
    batch       INTEGER NOT NULL,
    creator_id INTEGER NOT NULL,
    grp        INTEGER NOT NULL,
    min_id     INTEGER NOT NULL,
    max_id     INTEGER NOT NULL,
    end_us     INTEGER NOT NULL,
    ids        BLOB NOT NULL,
    form       INTEGER NOT NULL,
    PRIMARY KEY (batch, creator_id, grp, min_id)
) WITHOUT ROWID;

-- Names that would repeat in every packed row: creators' ifnames.
CREATE TABLE names (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE
);

-- The recorder's journal open states, in a journal written in order. Most states end within
-- minutes, so the recorder keeps a new state in memory for its first ten minutes
-- (src/store/writer.rs, YOUNG_FOR_US) and journals it here at the commit that first sees
-- it open, keyed by that commit's number `seq`: each commit appends one run of rows at the
-- end of the table and of its index. A journal state that ends is archived like any other and
-- its key appended to journal_ends. A journal state seen more than a minute past what its row
-- says is journaled again in the current run, and its key appended to journal_ends, which so
-- closes the older row. Runs leave from the front: deleted once none of their rows is live,
-- or after ten minutes, when their live states move into `states` in the same commit.
-- Readers read the journal run by run, leaving out rows journal_ends closes at a later seq. A
-- clean stop moves everything still journal into `states`; a recorder started after a crash
-- does so first. Columns as in `states`, so readers share one column list.
CREATE TABLE journal (
    seq         INTEGER NOT NULL,
    creator_id  INTEGER NOT NULL,
    state_id    INTEGER NOT NULL,
    ifname      TEXT,
    af          INTEGER,
    proto       INTEGER,
    direction   INTEGER,
    w_addr0     BLOB, w_port0 INTEGER, w_addr1 BLOB NOT NULL, w_port1 INTEGER NOT NULL, w_rdomain INTEGER,
    s_addr0     BLOB, s_port0 INTEGER, s_addr1 BLOB, s_port1 INTEGER, s_rdomain INTEGER,
    s_af        INTEGER,
    nat         INTEGER NOT NULL DEFAULT 0,
    start_us    INTEGER NOT NULL,
    first_us    INTEGER,
    end_us      INTEGER,
    end_reason  TEXT,
    last_us     INTEGER NOT NULL,
    updated_us  INTEGER,
    expire      INTEGER,
    packets0    INTEGER, packets1 INTEGER, bytes0 INTEGER, bytes1 INTEGER,
    rule        INTEGER,
    flavor      INTEGER,
    PRIMARY KEY (seq, w_addr1, w_port1, creator_id, state_id)
) WITHOUT ROWID;
-- history: per seq, the private host.
CREATE INDEX young_private ON journal (seq, s_addr1, start_us);

-- Keys whose journal rows of earlier seqs no longer say "open" as of commit `seq`: the state
-- ended (and was archived, or closed in states), was journaled again at `seq`, or moved into
-- states.
CREATE TABLE journal_ends (
    seq         INTEGER NOT NULL,
    creator_id  INTEGER NOT NULL,
    state_id    INTEGER NOT NULL,
    PRIMARY KEY (seq, creator_id, state_id)
) WITHOUT ROWID;

-- What `pfstatelog status` reads about a running recorder: with every commit, its run's
-- running totals, in the row of the current wall-clock minute (the last commit of the
-- minute wins). Rates over the last minute or hour are the difference of two rows, so a
-- status check never counts lifetimes. Rows older than eight days are deleted.
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

-- Lifetimes ended because another state took over their (creator, id): a full state whose
-- keys differ from those of the open lifetime of its id ends that lifetime where the new
-- one begins (end_reason 'replaced'). Kept so that `stats` counts them without unpacking
-- the batches; the key makes a re-import of the same capture count nothing twice.
CREATE TABLE replacements (
    creator_id  INTEGER NOT NULL,
    state_id    INTEGER NOT NULL,        -- u64 stored as its i64 bit pattern
    ts_us       INTEGER NOT NULL,        -- the end of the replaced lifetime
    PRIMARY KEY (creator_id, state_id, ts_us)
) WITHOUT ROWID;
