-- 64 shard rows per system account (was 16): a posting picks the shard of its
-- database session (pg_backend_pid() % 64), so concurrent writers on different
-- connections rarely meet on one row.
INSERT INTO ledger_account_shards (account_id, shard, balance)
SELECT a.account_id, s.shard, 0
FROM (SELECT DISTINCT account_id FROM ledger_account_shards) a
CROSS JOIN generate_series(16, 63) AS s (shard)
ON CONFLICT (account_id, shard) DO NOTHING;
