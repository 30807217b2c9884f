-- pfstatelog schema 1: state lifetimes, creators, coverage.
-- Times are integer microseconds since the Unix epoch (UTC). Addresses are BLOBs of 4 bytes
-- (IPv4) or 16 bytes (IPv6), so equality and prefix ranges compare as bytes for both.

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
    end_reason  TEXT,                    -- delete | delete-full | clear | replaced (schema 8)
    last_us     INTEGER NOT NULL,        -- last message that named the state (a CLR names none)
    updated_us  INTEGER,                 -- time of the full message the counters come from
    expire      INTEGER,
    packets0    INTEGER, packets1 INTEGER, bytes0 INTEGER, bytes1 INTEGER,
    rule        INTEGER,
    flavor      INTEGER                  -- header version it came in: 6 OpenBSD, 5 FreeBSD
);

CREATE INDEX states_key ON states (creator_id, state_id);
-- who: public ip:port at a time. Lifetimes up to an hour are found by a bounded start range;
-- longer (and open) ones sit in a small partial index of their own.
CREATE INDEX states_who ON states (w_addr1, w_port1, start_us);
CREATE INDEX states_who_long ON states (w_addr1, w_port1, start_us)
    WHERE end_us IS NULL OR end_us - start_us > 3600000000;
-- history / reverse lookups: the private host.
CREATE INDEX states_private ON states (s_addr1, start_us);
CREATE INDEX states_open ON states (creator_id) WHERE end_us IS NULL AND start_us IS NOT NULL;

-- Which firewalls spoke, in which flavour.
CREATE TABLE creators (
    creator_id  INTEGER PRIMARY KEY,
    flavor      TEXT NOT NULL,
    version     INTEGER NOT NULL,        -- header version; FreeBSD record version in record_version
    record_version INTEGER,
    first_us    INTEGER NOT NULL,
    last_us     INTEGER NOT NULL
);

-- Recorder runs: what was watched, when. Coverage = union of [first_us, last_us] of runs.
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
    status      TEXT NOT NULL            -- running | stopped | failed
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
