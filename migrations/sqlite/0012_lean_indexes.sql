-- Fewer index entries per write (issue #15): no reader looks events up by type or
-- resource (`/events/history` and the webhook dispatcher scan by sequence number and
-- filter in memory). (0011 is PostgreSQL's shard rows; SQLite has none.)
DROP INDEX events_type;
DROP INDEX events_resource;
