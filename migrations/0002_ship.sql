-- pfstatelog schema 2: what has been shipped to which central database (`pfstatelog ship`).
--
-- A lifetime needs sending again only when it changed. Where each place keeps its changes:
-- * `states` rows: `chg`, the value of `ship_clock` when the row was last written (triggers
--   below, so every writer path is covered). A ship advances the clock before it reads: a
--   row written after that carries a newer value and goes with the next ship.
-- * `journal` rows: their commit number `seq`, which only grows (a writer starts above the
--   highest seq any destination has been sent: src/store/sqlite/writer.rs).
-- * archived lifetimes: the number of the batch that archived them (`archive_batches`),
--   which only grows; a merge or a move between places keeps a lifetime's batch or
--   writes it elsewhere, where it is seen as new.
-- A destination's cursor holds, per place, the newest change the server accepted.

CREATE TABLE ship_clock (
    one  INTEGER PRIMARY KEY CHECK (one = 1),
    n    INTEGER NOT NULL
);
INSERT INTO ship_clock (one, n) VALUES (1, 1);

ALTER TABLE states ADD COLUMN chg INTEGER NOT NULL DEFAULT 0;
CREATE INDEX states_chg ON states (chg);

CREATE TRIGGER states_chg_insert AFTER INSERT ON states BEGIN
    UPDATE states SET chg = (SELECT n FROM ship_clock) WHERE id = NEW.id;
END;
-- Once per row and ship interval: a row already at the current clock is left alone.
CREATE TRIGGER states_chg_update AFTER UPDATE ON states
    WHEN NEW.chg = OLD.chg AND OLD.chg != (SELECT n FROM ship_clock) BEGIN
    UPDATE states SET chg = (SELECT n FROM ship_clock) WHERE id = NEW.id;
END;

-- Per destination (HOST:PORT/DATABASE), what it holds: states rows written at clock values
-- up to `states_chg`, journal rows up to `journal_seq`, archived batches up to `batch`.
CREATE TABLE shipped (
    dest         TEXT PRIMARY KEY,
    states_chg   INTEGER NOT NULL,
    journal_seq  INTEGER NOT NULL,
    batch        INTEGER NOT NULL,
    lifetimes    INTEGER NOT NULL,       -- sent so far (copies included)
    shipped_wall INTEGER NOT NULL        -- wall clock of the last accepted ship, µs UTC
);
