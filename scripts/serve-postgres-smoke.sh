#!/usr/bin/env bash
# `quire serve --postgres` against the test cluster: a new database gets
# the samples, a sample block runs over HTTP, and after a restart the run
# is still in history and the sample secret still listed.
#
#   QUIRE_TEST_POSTGRES_URL=postgres://… ./scripts/serve-postgres-smoke.sh target/release/quire
set -euo pipefail
bin=${1:-target/release/quire}
base=${QUIRE_TEST_POSTGRES_URL:?set by scripts/test.sh}
db="quire_serve_$$"
psql -q "$base" -c "CREATE DATABASE $db"
url="${base%/*}/$db"
log=$(mktemp)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -f "$log"; psql -q "$base" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
export QUIRE_SECRET_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export QUIRE_ADMIN_TOKEN="smoke-admin-$$-$RANDOM"
auth="Authorization: Bearer $QUIRE_ADMIN_TOKEN"
start() {
  : > "$log"
  "$bin" serve --addr 127.0.0.1:0 --postgres "$url" --isolation in-process 2> "$log" &
  pid=$!
  for _ in $(seq 100); do grep -q 'serving on' "$log" && break; sleep 0.1; done
  srv=$(grep -o 'http://[0-9.:]*/' "$log" | head -1)
  [ -n "$srv" ] || { cat "$log"; echo "serve --postgres did not start" >&2; exit 1; }
  grep -q 'data in PostgreSQL' "$log" || { cat "$log"; exit 1; }
}
stop() { kill -TERM "$pid"; wait "$pid"; pid=; grep -q 'quire stopped' "$log"; }
start
run=$(curl -fsS -X POST -H "$auth" -H 'content-type: application/json' -d '{}' \
  "${srv}api/v1/workspaces/default/blocks/tasks-summary/runs" | sed 's/.*"run":"\([^"]*\)".*/\1/')
for _ in $(seq 100); do
  body=$(curl -fsS -H "$auth" "${srv}api/v1/workspaces/default/runs/$run")
  echo "$body" | grep -q '"status":"running"' || break
  sleep 0.1
done
echo "$body" | grep -q '"total":320' || { echo "$body"; echo "the sample run did not finish ok" >&2; exit 1; }
stop
start
curl -fsS -H "$auth" "${srv}api/v1/workspaces/default/runs/$run" | grep -q '"total":320' \
  || { echo "the run is gone after a restart" >&2; exit 1; }
secrets=$(curl -fsS -H "$auth" "${srv}api/v1/workspaces/default/secrets")
echo "$secrets" | grep -q 'DEMO_TOKEN' || { echo "$secrets"; echo "the sample secret is gone" >&2; exit 1; }
stop
echo "serve --postgres smoke: ok"
