-- Position of the deposit monitor in Horizon's payments stream (a paging token);
-- NULL means "start at the tip" (a new deployment has no earlier deposits).
CREATE TABLE monitor_state (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    cursor TEXT
);
INSERT INTO monitor_state (id, cursor) VALUES (1, NULL);
