-- Scale-out (issue #15). SQLite has one writer connection, so nothing here is shared
-- by concurrent writers: events take their sequence number from the rowid at insert
-- (transactions are serialised, so rowid order is commit order) and system accounts
-- are not sharded. The shard table exists so the ledger's checks read the same schema
-- on both backends; it stays empty.
CREATE TABLE ledger_account_shards (
    account_id TEXT NOT NULL REFERENCES ledger_accounts (id),
    shard      INTEGER NOT NULL,
    balance    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, shard)
);

-- Request budgets shared by the daemons on one database (src/budget.rs): a GCRA bucket
-- per key (`api:<key id>`, `tw:<key digest>`), its theoretical arrival time in
-- microseconds since the Unix epoch. (SQLite keeps them in memory; the table is unused.)
CREATE TABLE rate_budgets (
    id  TEXT PRIMARY KEY,
    tat BIGINT NOT NULL
);
