-- Dry-run diffs (issue 21): a dry-run's staged changes, kept for an
-- editor to apply (kv_diffs), and their heads (status and count, without
-- the changes) for run listings (kv_diff_heads). Both keyed as kv_runs is.
CREATE TABLE kv_diffs (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE kv_diff_heads (k bytea PRIMARY KEY, v bytea NOT NULL);
