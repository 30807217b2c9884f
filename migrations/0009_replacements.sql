-- pfstatelog schema 9: lifetimes ended because another state took over their (creator, id).
--
-- A full state whose keys differ from those of the open lifetime of its id (a DEL missed
-- after packet drops, or a hostile sender) ends that lifetime where the new one begins
-- (end_reason 'replaced', code 3 in packed data) and opens the new one. Each replacement is
-- kept here too, so that `stats` counts them without unpacking the seals; the key makes a
-- re-import of the same capture count nothing twice.
CREATE TABLE replacements (
    creator_id  INTEGER NOT NULL,
    state_id    INTEGER NOT NULL,        -- u64 stored as its i64 bit pattern
    ts_us       INTEGER NOT NULL,        -- the end of the replaced lifetime
    PRIMARY KEY (creator_id, state_id, ts_us)
) WITHOUT ROWID;
