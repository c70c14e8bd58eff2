-- System ledger accounts. external:* may go negative (money entering/leaving the
-- system); fee accounts may not.
INSERT INTO ledger_accounts (id, kind, owner_id, non_negative, balance, created_at) VALUES
    ('external:adjustments', 'external', NULL, 0, 0, '2026-01-01T00:00:00.000Z'),
    ('external:stellar',     'external', NULL, 0, 0, '2026-01-01T00:00:00.000Z'),
    ('external:airtm',       'external', NULL, 0, 0, '2026-01-01T00:00:00.000Z'),
    ('fees:platform',        'fees',     NULL, 1, 0, '2026-01-01T00:00:00.000Z'),
    ('fees:trustless',       'fees',     NULL, 1, 0, '2026-01-01T00:00:00.000Z');
