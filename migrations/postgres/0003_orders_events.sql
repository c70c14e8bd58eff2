-- Orders and milestones, the event outbox, idempotency records, outbound webhooks.

CREATE TABLE orders (
    seq              BIGSERIAL PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    client_order_ref TEXT UNIQUE,
    buyer_id         TEXT NOT NULL REFERENCES users (id),
    seller_id        TEXT NOT NULL REFERENCES users (id),
    amount           BIGINT NOT NULL CHECK (amount > 0),
    currency         TEXT NOT NULL,
    title            TEXT NOT NULL,
    description      TEXT,
    metadata         TEXT,
    status           TEXT NOT NULL,
    hold_id          TEXT,
    cancel_reason    TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX orders_buyer ON orders (buyer_id, seq);
CREATE INDEX orders_seller ON orders (seller_id, seq);
CREATE INDEX orders_status ON orders (status, seq);

CREATE TABLE milestones (
    seq           BIGSERIAL PRIMARY KEY,
    order_id      TEXT NOT NULL REFERENCES orders (id),
    milestone_ref TEXT NOT NULL,
    title         TEXT NOT NULL,
    amount        BIGINT NOT NULL CHECK (amount > 0),
    status        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    UNIQUE (order_id, milestone_ref)
);

-- Event sequence numbers are assigned at commit under a lock on event_head, so they
-- increase in commit order: a reader that has seen seq N has seen every seq < N.
CREATE TABLE event_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq BIGINT NOT NULL
);
INSERT INTO event_head (id, last_seq) VALUES (1, 0);

CREATE TABLE events (
    seq           BIGINT PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    event_type    TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    data          TEXT NOT NULL,
    occurred_at   TEXT NOT NULL
);
CREATE INDEX events_type ON events (event_type, seq);
CREATE INDEX events_resource ON events (resource_type, resource_id, seq);

CREATE TABLE idempotency_keys (
    scope_hash      TEXT PRIMARY KEY,
    api_key_id      TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    method          TEXT NOT NULL,
    path            TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    state           TEXT NOT NULL,
    response_status BIGINT,
    response_body   TEXT,
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

CREATE TABLE webhook_endpoints (
    seq           BIGSERIAL PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    url           TEXT NOT NULL,
    event_filter  TEXT NOT NULL,
    secret        TEXT NOT NULL,
    status        TEXT NOT NULL,
    failing_since TEXT,
    disabled_at   TEXT,
    created_at    TEXT NOT NULL,
    deleted_at    TEXT
);

-- The dispatcher's position in the event stream (one row).
CREATE TABLE webhook_cursor (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq BIGINT NOT NULL
);
INSERT INTO webhook_cursor (id, last_seq) VALUES (1, 0);

CREATE TABLE webhook_deliveries (
    seq             BIGSERIAL PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id),
    event_id        TEXT NOT NULL REFERENCES events (id),
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    locked_until    TEXT,
    last_status     BIGINT,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    delivered_at    TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, seq);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
