#!/usr/bin/env bash
# Smoke for `quire serve` on a fresh data dir: it starts with the samples,
# prints its URL and admin token, runs a sample block over HTTP (in a
# sandboxed runner), and stops cleanly on SIGTERM.
set -euo pipefail
bin=${1:-target/release/quire}
data=$(mktemp -d)
log=$(mktemp)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$data" "$log"' EXIT
"$bin" serve --addr 127.0.0.1:0 --data "$data" 2> "$log" &
pid=$!
for _ in $(seq 100); do grep -q 'server admin token' "$log" && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*/' "$log" | head -1)
token=$(grep -o 'qt_[0-9a-f_]*' "$log" | head -1)
[ -n "$url" ] && [ -n "$token" ] || { cat "$log"; echo "serve printed no URL or token" >&2; exit 1; }
curl -fsS "${url}healthz" > /dev/null
auth="Authorization: Bearer $token"
run=$(curl -fsS -X POST -H "$auth" -H 'content-type: application/json' -d '{}' \
  "${url}api/v1/workspaces/default/blocks/tasks-summary/runs" | sed 's/.*"run":"\([^"]*\)".*/\1/')
for _ in $(seq 100); do
  body=$(curl -fsS -H "$auth" "${url}api/v1/workspaces/default/runs/$run")
  echo "$body" | grep -q '"status":"running"' || break
  sleep 0.1
done
echo "$body" | grep -q '"total":320' || { echo "$body"; echo "the sample run did not finish ok" >&2; exit 1; }
# Unknown tokens are refused.
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer qt_0000000000000000_00' "${url}api/v1/workspaces")
[ "$code" = 401 ] || { echo "expected 401, got $code" >&2; exit 1; }
kill -TERM "$pid"
wait "$pid"
grep -q 'quire stopped' "$log"
echo "serve smoke: ok"
