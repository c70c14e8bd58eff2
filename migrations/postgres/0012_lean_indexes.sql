-- Fewer index entries per write (issue #15). Every event and audit row is written
-- twice on PostgreSQL: inserted unnumbered, then numbered by the sequencer. The
-- numbering UPDATE changes an indexed column, so it adds an entry to every index of
-- the table; the indexes below were most of the database's work per adjustment.
--
-- Unused: no reader looks events up by type or resource (`/events/history` and the
-- webhook dispatcher scan by sequence number and filter in memory).
DROP INDEX events_type;
DROP INDEX events_resource;
-- The sequencer finds and numbers unnumbered rows by (txid, ins) in the partial
-- `*_unsequenced` indexes; nothing else looks rows up by `ins`.
DROP INDEX events_ins;
DROP INDEX audit_logs_ins;
-- Readers only look at numbered rows: an unnumbered row gets entries in these
-- indexes once, when it is numbered (and ordered scans from the head no longer walk
-- over the entries of rows still unnumbered).
DROP INDEX events_seq;
CREATE UNIQUE INDEX events_seq ON events (seq) WHERE seq IS NOT NULL;
DROP INDEX audit_logs_seq;
CREATE UNIQUE INDEX audit_logs_seq ON audit_logs (seq) WHERE seq IS NOT NULL;
DROP INDEX audit_logs_resource;
CREATE INDEX audit_logs_resource ON audit_logs (resource_type, resource_id, seq) WHERE seq IS NOT NULL;
DROP INDEX audit_logs_action;
CREATE INDEX audit_logs_action ON audit_logs (action, seq) WHERE seq IS NOT NULL;
DROP INDEX audit_logs_actor;
CREATE INDEX audit_logs_actor ON audit_logs (actor_id, seq) WHERE seq IS NOT NULL;
DROP INDEX audit_logs_time;
CREATE INDEX audit_logs_time ON audit_logs (occurred_at) WHERE seq IS NOT NULL;
