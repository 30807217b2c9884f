-- pfstatelog schema 3: one index fewer for every state the recorder opens and ends.
-- The open lifetimes are class 14 of states_who (dcls = 14: start known, end NULL), so the
-- partial index states_open, which only served "load the open states" at start-up, is
-- redundant; it cost the recorder an insert and a delete per state.
DROP INDEX states_open;
