-- The shared run queue (issue 18, storage/src/queue.rs): runs accepted by
-- any api process, waiting for a worker process or held by one. A row
-- lives from enqueue to a day after the run's end (`done`, so its id
-- cannot be enqueued twice); history (kv_runs, kv_run_events) keeps the
-- run. Times are the database's clock, so the
-- processes' clocks never have to agree.
CREATE TABLE run_queue (
    run_id text PRIMARY KEY,
    workspace text NOT NULL,
    state text NOT NULL CHECK (state IN ('queued', 'claimed', 'running', 'done')),
    job jsonb NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    worker text,
    lease_until timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    cancel_requested boolean NOT NULL DEFAULT false,
    finished_at timestamptz
);
CREATE INDEX run_queue_by_lane ON run_queue (workspace, state, enqueued_at);
CREATE INDEX run_queue_by_worker ON run_queue (worker) WHERE worker IS NOT NULL;
CREATE INDEX run_queue_by_lease ON run_queue (lease_until) WHERE state IN ('claimed', 'running');
CREATE INDEX run_queue_done ON run_queue (finished_at) WHERE state = 'done';
-- What the counts of a workspace read: its runs not done.
CREATE INDEX run_queue_live ON run_queue (workspace, state) WHERE state <> 'done';

-- One row per workspace that ever queued a run: its concurrency limit,
-- and when it last had a run start (round robin). Claims lock it, so two
-- workers never both take a workspace's last free slot.
CREATE TABLE run_queue_lanes (
    workspace text PRIMARY KEY,
    max_concurrent integer NOT NULL,
    last_started_at timestamptz NOT NULL DEFAULT 'epoch'
);

-- Acceptance times of the last minute, per workspace (runs_per_minute).
CREATE TABLE run_queue_accepted (
    workspace text NOT NULL,
    at_ms bigint NOT NULL
);
CREATE INDEX run_queue_accepted_by_lane ON run_queue_accepted (workspace, at_ms);
