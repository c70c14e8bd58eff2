-- Withdrawals. The payment envelope and hash are stored before submission (saga).
CREATE TABLE withdrawals (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    user_id          TEXT NOT NULL REFERENCES users (id),
    amount           INTEGER NOT NULL CHECK (amount > 0),
    currency         TEXT NOT NULL,
    destination_type TEXT NOT NULL,
    destination_ref  TEXT NOT NULL,
    status           TEXT NOT NULL,
    hold_id          TEXT,
    envelope         TEXT,
    tx_hash          TEXT,
    failure_reason   TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    completed_at     TEXT
);
CREATE INDEX withdrawals_user ON withdrawals (user_id, seq);
CREATE INDEX withdrawals_status ON withdrawals (status, seq);
