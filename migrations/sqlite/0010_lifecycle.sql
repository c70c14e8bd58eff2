-- Production lifecycle (issue #21): automatic release after an inspection window,
-- expiry of stale reservations and top-ups, scheduled reconciliation.

-- The inspection window of an order. `auto_release_after_secs`: the duration counted
-- from the seller's completion; `auto_release_at`: when the worker releases (set at
-- creation when absolute, else when the clock starts); `auto_release_status`: NULL (no
-- automatic release), PENDING (clock not started), SCHEDULED, STOPPED (a dispute was
-- opened), RELEASING (claimed by one daemon: the release saga runs), RELEASED, FAILED
-- (the release saga compensated), CANCELED (the order ended another way).
ALTER TABLE orders ADD COLUMN auto_release_after_secs INTEGER;
ALTER TABLE orders ADD COLUMN auto_release_at TEXT;
ALTER TABLE orders ADD COLUMN auto_release_status TEXT;
-- The worker's lookup: SCHEDULED orders whose time has come, oldest first.
CREATE INDEX orders_auto_release_due ON orders (auto_release_status, auto_release_at);
-- The expiry worker's lookup: FUNDS_RESERVED orders untouched since a cutoff.
CREATE INDEX orders_status_updated ON orders (status, updated_at);
-- Top-ups awaiting the buyer past Airtm's payin expiry.
CREATE INDEX topups_status_created ON topups (status, created_at);

-- Results of the daemon's scheduled reconciliation (`OFFERHUB_RECONCILE_EVERY`); the
-- newest row is what `offerhub reconcile --last` prints.
CREATE TABLE reconciliation_runs (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    scope           TEXT NOT NULL,           -- FULL or ACTIVITY
    started_at      TEXT NOT NULL,
    finished_at     TEXT NOT NULL,
    wallets_checked INTEGER NOT NULL,
    escrows_checked INTEGER NOT NULL,
    discrepancies   INTEGER NOT NULL,
    -- Horizon paging token of the last payment seen (activity since then is next run's).
    payments_cursor TEXT,
    report          TEXT NOT NULL            -- the report, JSON
);
CREATE INDEX reconciliation_runs_scope ON reconciliation_runs (scope, seq);

-- Discrepancies the scheduled reconciliation has announced and not yet seen resolved:
-- one row per wallet/escrow/platform subject, so a standing difference is announced once
-- (again only when it changes) even when activity runs skip that subject.
CREATE TABLE reconciliation_discrepancies (
    subject     TEXT PRIMARY KEY,            -- wallet:{id}, escrow:{id}, platform:{id}
    difference  TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL
);
