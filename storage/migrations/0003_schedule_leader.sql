-- One scheduler leads at a time (issue 19; storage/src/leader.rs): it holds
-- a PostgreSQL advisory lock on a connection of its own, and on taking it
-- raises `epoch`. Every fire is claimed in `schedule_fires` with the
-- leader's epoch, only while that epoch is still current (fencing: a
-- deposed leader that has not noticed yet claims nothing), and once per
-- (workspace, schedule, fire time).
CREATE TABLE schedule_leader (
    id integer PRIMARY KEY CHECK (id = 1),
    epoch bigint NOT NULL,
    holder text NOT NULL,
    heartbeat_at timestamptz NOT NULL
);

CREATE TABLE schedule_fires (
    workspace text NOT NULL,
    schedule text NOT NULL,
    fire_ms bigint NOT NULL,
    epoch bigint NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (workspace, schedule, fire_ms)
);
CREATE INDEX schedule_fires_by_age ON schedule_fires (claimed_at);
