-- Foundation: API keys, the hash-chained audit log, users and the double-entry ledger.
-- Amounts are INTEGER USDC base units (10^-7); times are RFC 3339 UTC text (ms).

CREATE TABLE api_keys (
    seq          BIGSERIAL PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    key_hash     TEXT NOT NULL,
    key_hint     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);

CREATE TABLE audit_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq  BIGINT NOT NULL,
    last_hash TEXT NOT NULL
);
INSERT INTO audit_head (id, last_seq, last_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE audit_logs (
    seq             BIGINT PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    occurred_at     TEXT NOT NULL,
    actor_type      TEXT NOT NULL,
    actor_id        TEXT NOT NULL,
    action          TEXT NOT NULL,
    resource_type   TEXT NOT NULL,
    resource_id     TEXT NOT NULL,
    before_state    TEXT,
    after_state     TEXT,
    request_id      TEXT,
    idempotency_key TEXT,
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL
);
CREATE INDEX audit_logs_resource ON audit_logs (resource_type, resource_id, seq);
CREATE INDEX audit_logs_action ON audit_logs (action, seq);
CREATE INDEX audit_logs_actor ON audit_logs (actor_id, seq);
CREATE INDEX audit_logs_time ON audit_logs (occurred_at);

CREATE TABLE users (
    seq              BIGSERIAL PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    external_user_id TEXT NOT NULL UNIQUE,
    email            TEXT,
    user_type        TEXT NOT NULL,
    status           TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);

CREATE TABLE ledger_accounts (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    owner_id     TEXT,
    non_negative BIGINT NOT NULL,
    balance      BIGINT NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL,
    CHECK (non_negative = 0 OR balance >= 0)
);
CREATE INDEX ledger_accounts_owner ON ledger_accounts (owner_id);

CREATE TABLE journal_transactions (
    seq         BIGSERIAL PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    reference   TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (kind, reference)
);

CREATE TABLE postings (
    seq            BIGSERIAL PRIMARY KEY,
    transaction_id TEXT NOT NULL REFERENCES journal_transactions (id),
    account_id     TEXT NOT NULL REFERENCES ledger_accounts (id),
    amount         BIGINT NOT NULL,
    balance_after  BIGINT NOT NULL,
    created_at     TEXT NOT NULL
);
CREATE INDEX postings_account ON postings (account_id, seq);
CREATE INDEX postings_transaction ON postings (transaction_id);

CREATE TABLE holds (
    seq         BIGSERIAL PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    user_id     TEXT NOT NULL,
    amount      BIGINT NOT NULL CHECK (amount > 0),
    status      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    reference   TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    resolved_at TEXT,
    UNIQUE (kind, reference)
);
CREATE INDEX holds_user_status ON holds (user_id, status);
