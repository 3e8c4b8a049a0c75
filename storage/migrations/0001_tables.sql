-- quire's tables on PostgreSQL: one ordered key-value table per table of
-- the store (storage/src/backend.rs, `Table`); keys and values are the
-- same bytes sled holds, compared bytewise (bytea order is memcmp order).

CREATE TABLE kv_meta (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE kv_workspaces (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE kv_workspace_names (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE kv_docs (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE kv_rows (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE kv_kv (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE kv_secrets (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE kv_blocks (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE kv_runs (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE kv_runs_by_block (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE kv_tokens (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE kv_runs_active (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE kv_schedules (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE kv_runs_queued (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE kv_webhooks (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE kv_quotas (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE kv_usage (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE kv_history_bytes (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE kv_run_events (k bytea PRIMARY KEY, v bytea NOT NULL);
