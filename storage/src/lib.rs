//! quire-storage: sled-backed workspaces, documents, databases, blocks, grants, runs, schedules, quotas and usage. Knows nothing of JavaScript. Not built yet: it lands with the host-API issue.
