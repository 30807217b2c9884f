-- pfstatelog schema 2: who and history read a bounded range of start times, and new
-- lifetimes land in a small, recent part of each index.
--
-- A lifetime overlaps [t0, t1] when start <= t1 and end >= t0. An index on (pair, start)
-- alone must read every earlier start of the pair, because any of them might still be
-- running: on a public ip:port reused 100,000 times that is the pair's whole history.
-- Grouping lifetimes by duration class fixes it: a lifetime of class c lasts at most
-- 2^(20+2c) µs (1 s, 4 s, 17 s, 67 s, 4.5 min, 18 min, 72 min, 4.8 h, 19 h, 3.2 d, 13 d,
-- 51 d, 203 d), so for each class only starts in [t0 - max(c), t1] can overlap, and the
-- end time in the index settles the overlap without reading the row. Class 13 is longer,
-- class 14 still open (both unbounded, and rare). Evidence rows (no start) have none.
-- The same constants are in src/store/query.rs (CLASS_MAX_US).
ALTER TABLE states ADD COLUMN dcls INTEGER GENERATED ALWAYS AS (
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
    END) VIRTUAL;

-- Time bucket of the start, a width per class: 2^32 µs (72 min) up to class 5, then four
-- times the class's longest duration; one bucket for classes 13 and 14. Leading the indexes
-- with (class, bucket) keeps every insert of a recorder or an import in the recent buckets,
-- which stay in the page cache, however large the database grows: with the address first,
-- each new lifetime dirtied a random leaf of a multi-gigabyte index (BENCHMARKS.md).
-- A query reads, per class, the one to three buckets its start range covers.
ALTER TABLE states ADD COLUMN tb INTEGER GENERATED ALWAYS AS (
    CASE
        WHEN dcls IS NULL THEN NULL
        WHEN dcls >= 13 THEN 0
        WHEN dcls <= 5 THEN start_us >> 32
        ELSE start_us >> (22 + 2 * dcls)
    END) VIRTUAL;

DROP INDEX states_who;
DROP INDEX states_who_long;
DROP INDEX states_private;
-- who: class, bucket, public ip:port, start, end (overlap decided inside the index).
CREATE INDEX states_who ON states (dcls, tb, w_addr1, w_port1, start_us, end_us);
-- history: class, bucket, the private host (or a prefix's range), start.
CREATE INDEX states_private ON states (dcls, tb, s_addr1, start_us);
