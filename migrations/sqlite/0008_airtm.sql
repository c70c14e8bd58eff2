-- Airtm: linked accounts, top-ups (payins), payout withdrawals, the inbound webhook inbox.
-- Amounts are INTEGER USDC base units (10^-7).

ALTER TABLE users ADD COLUMN airtm_user_id TEXT;
ALTER TABLE users ADD COLUMN airtm_email TEXT;
ALTER TABLE users ADD COLUMN airtm_linked_at TEXT;

-- A top-up is an Airtm payin whose `code` is the top-up id. Once Airtm confirms it, the
-- platform treasury sends `net_amount` USDC to the user's wallet (settlement envelope
-- stored before submission) and the ledger credits it, exactly once.
CREATE TABLE topups (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    id                  TEXT NOT NULL UNIQUE,
    user_id             TEXT NOT NULL REFERENCES users (id),
    amount              INTEGER NOT NULL CHECK (amount > 0),
    currency            TEXT NOT NULL,
    status              TEXT NOT NULL,
    payin_id            TEXT,
    airtm_status        TEXT,
    confirmation_uri    TEXT,
    return_url          TEXT NOT NULL,
    cancel_url          TEXT NOT NULL,
    net_amount          INTEGER,
    airtm_fee           INTEGER,
    airtm_user_email    TEXT,
    failure_reason      TEXT,
    settlement_envelope TEXT,
    settlement_tx_hash  TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    completed_at        TEXT
);
CREATE INDEX topups_user ON topups (user_id, seq);
CREATE INDEX topups_status ON topups (status, seq);
CREATE INDEX topups_payin ON topups (payin_id);
CREATE INDEX topups_settlement ON topups (settlement_tx_hash);

-- Airtm payout withdrawals share the withdrawals table (destination_type bank or
-- airtm_balance); the user's USDC is swept to the treasury once Airtm completes.
ALTER TABLE withdrawals ADD COLUMN payout_id TEXT;
ALTER TABLE withdrawals ADD COLUMN airtm_status TEXT;
ALTER TABLE withdrawals ADD COLUMN airtm_email TEXT;
ALTER TABLE withdrawals ADD COLUMN settlement_envelope TEXT;
ALTER TABLE withdrawals ADD COLUMN settlement_tx_hash TEXT;
CREATE INDEX withdrawals_payout ON withdrawals (payout_id);

-- Inbound provider webhooks, unique on the provider's event id (Svix: `svix-id`, the
-- same on every retry). Stored raw, processed asynchronously.
CREATE TABLE inbound_webhooks (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    provider     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    payload      TEXT NOT NULL,
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    received_at  TEXT NOT NULL,
    processed_at TEXT,
    UNIQUE (provider, event_id)
);
CREATE INDEX inbound_webhooks_status ON inbound_webhooks (status, seq);
