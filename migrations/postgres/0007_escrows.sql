-- Escrows (one per order), disputes with comments, and durable sagas.

CREATE TABLE escrows (
    seq              BIGSERIAL PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    order_id         TEXT NOT NULL UNIQUE REFERENCES orders (id),
    kind             TEXT NOT NULL,
    contract_id      TEXT UNIQUE,
    status           TEXT NOT NULL,
    amount           BIGINT NOT NULL CHECK (amount > 0),
    platform_fee_bps BIGINT NOT NULL,
    deploy_hash      TEXT,
    funded_at        TEXT,
    closed_at        TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX escrows_status ON escrows (status, seq);

CREATE TABLE disputes (
    seq             BIGSERIAL PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    order_id        TEXT NOT NULL REFERENCES orders (id),
    opened_by       TEXT NOT NULL,
    reason          TEXT NOT NULL,
    evidence        TEXT,
    status          TEXT NOT NULL,
    assigned_to     TEXT,
    decision        TEXT,
    release_amount  BIGINT,
    refund_amount   BIGINT,
    decision_note   TEXT,
    resolved_by     TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    resolved_at     TEXT
);
CREATE INDEX disputes_order ON disputes (order_id, seq);
CREATE INDEX disputes_status ON disputes (status, seq);

CREATE TABLE dispute_comments (
    seq        BIGSERIAL PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    dispute_id TEXT NOT NULL REFERENCES disputes (id),
    author     TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX dispute_comments_dispute ON dispute_comments (dispute_id, seq);

-- A saga runs the on-chain steps of one operation. `steps` is the JSON plan, `step`
-- the index of the next step; the signed envelope of that step and its hash are
-- stored before it is submitted, so a resume settles that envelope instead of signing
-- anew. `locked_until` is a lease: one executor at a time across daemons.
CREATE TABLE sagas (
    seq          BIGSERIAL PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    order_id     TEXT NOT NULL REFERENCES orders (id),
    dispute_id   TEXT,
    status       TEXT NOT NULL,
    steps        TEXT NOT NULL,
    step         BIGINT NOT NULL,
    envelope     TEXT,
    tx_hash      TEXT,
    done         TEXT NOT NULL,
    last_error   TEXT,
    attempts     BIGINT NOT NULL,
    next_run_at  TEXT NOT NULL,
    locked_until TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    finished_at  TEXT
);
CREATE INDEX sagas_status ON sagas (status, next_run_at);
CREATE INDEX sagas_order ON sagas (order_id, seq);

-- The saga that currently owns the order (NULL when none): every saga start is a
-- compare-and-set on it, so two operations on one order can never run together.
ALTER TABLE orders ADD COLUMN active_saga TEXT;
