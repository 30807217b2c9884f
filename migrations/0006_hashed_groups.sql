-- pfstatelog schema 6: sealed groups of several public pairs, by hash.
--
-- Schema 4 filed each sealed lifetime in a row of its own public pair. Most pairs have one
-- or two lifetimes per class and bucket (pf picks NAT ports at random; a LAN host's own
-- address is its "public" side), so a row held 1.6 lifetimes on average: ~25 bytes of key
-- and cell per lifetime, and an insert per lifetime and a half (BENCHMARKS.md, session 8).
-- A bucket created now holds 2^bits rows: `w_addr1` one byte, bits, and `w_port1` the group
-- number (src/store/pack.rs, hashed_group: FNV-1a of the pair, fixed forever). Each row's blob
-- holds its pairs one after the other (pack_sections), so `who` skips the other pairs of a
-- row unread. `bits` is chosen when the bucket is first written, from the lifetimes the
-- writer expects in it, for about eight per row. Buckets written before (bits NULL) keep
-- one row per pair, and so do later seals into them; readers tell the two forms apart by
-- the address's length. A merge that finds a bucket holding far more than its first seal
-- foresaw regroups it under more bits (a row over ~1 KB spills into an overflow page,
-- mostly empty); a group's lifetimes then go to a contiguous range of the new groups. A
-- group still over 960 bytes (one pair reused hundreds of times in a bucket) is written as
-- several rows, told apart by `seal` (seal + k << 40 for the k-th; sealed.rs, put_rows).
ALTER TABLE sealed_buckets ADD COLUMN bits INTEGER;

-- Id lists written now take each bucket as a delta from the previous of the same class
-- (pack.rs, IdsForm::PerClass: form 1); those of schema 4 and 5 (form NULL) from the
-- previous id's whatever its class, ~4 bytes more per lifetime.
ALTER TABLE seals ADD COLUMN form INTEGER;
