-- Invisible Stellar wallets. The secret is sealed by the vault (key id kept beside it
-- for rotation); activation is a saga whose envelope and hash are stored before
-- submission, so a restart resubmits the identical envelope instead of signing anew.
CREATE TABLE wallets (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    id                  TEXT NOT NULL UNIQUE,
    user_id             TEXT UNIQUE,
    kind                TEXT NOT NULL,
    public_key          TEXT NOT NULL UNIQUE,
    sealed_secret       TEXT NOT NULL,
    key_id              TEXT NOT NULL,
    status              TEXT NOT NULL,
    failure_reason      TEXT,
    activation_envelope TEXT,
    activation_hash     TEXT,
    activation_attempts INTEGER NOT NULL DEFAULT 0,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);
CREATE INDEX wallets_status ON wallets (status, seq);
CREATE INDEX wallets_key_id ON wallets (key_id, seq);
