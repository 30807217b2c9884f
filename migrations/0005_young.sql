-- pfstatelog schema 5: the recorder's young open states, in a journal written in order.
--
-- Every open lifetime in `states` costs an insert into four B-trees and, when it ends, a
-- delete from the same four, at places spread over all open states: at 20,000 states/s a
-- commit rewrote most pages of those B-trees (BENCHMARKS.md, session 6). Most states end
-- within minutes, so the recorder keeps a new state in memory for its first ten minutes
-- (src/store/writer.rs, YOUNG_FOR_US) and journals it here at the commit that first sees
-- it open, keyed by that commit's number `seq`: each commit appends one run of rows at the
-- end of the table and of its index. A young state that ends is sealed like any other and
-- its key appended to young_ends. A young state seen more than a minute past what its row
-- says is journaled again, as it is now, in the current run, and its key appended to
-- young_ends, which so closes the older row (a crash loses at most a minute of its "last
-- seen" and counters); rows nothing new happened to are not rewritten. Runs leave from the
-- front: deleted once none of their rows is live, or after ten minutes, when their live
-- states move into `states` in the same commit. Readers (who, history, export, stats) read
-- the journal run by run, leaving out rows young_ends closes at a later seq. A clean stop
-- moves everything still young into `states`; a recorder started after a crash does so
-- first.
-- Columns as in `states` (end_us and end_reason are set on the rows of young states that
-- ended, journaled so until the next seal, at most 30 s later), so readers share
-- one column list.
CREATE TABLE young (
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
CREATE INDEX young_private ON young (seq, s_addr1, start_us);

-- Keys whose journal rows of earlier seqs no longer say "open" as of commit `seq`: the state
-- ended (and was sealed, or closed in states), was journaled again at `seq`, or moved into
-- states.
CREATE TABLE young_ends (
    seq         INTEGER NOT NULL,
    creator_id  INTEGER NOT NULL,
    state_id    INTEGER NOT NULL,
    PRIMARY KEY (seq, creator_id, state_id)
) WITHOUT ROWID;
