-- keysync schema v6: the views run on SQLite 3.31 and later (Ubuntu 22.04's sqlite3 and Python
-- ship 3.37; `unixepoch()` came with 3.38). Only `clock` named a newer function; it now reads
-- the time with `strftime('%s', 'now')`, cast so that `now` stays an INTEGER, as before.
-- Keep every view free of functions and syntax newer than 3.31 (src/store/views.rs checks).
DROP VIEW clock;
CREATE VIEW clock AS SELECT CAST(strftime('%s', 'now') AS INTEGER) AS now;
