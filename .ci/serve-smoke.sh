#!/usr/bin/env bash
# Smoke for `quire serve` on a fresh data dir: it starts with the samples,
# prints its URL and admin token, runs a sample block over HTTP (in a
# sandboxed runner), keeps /metrics behind a token on its address and
# open on --metrics-addr, and stops cleanly on SIGTERM.
set -euo pipefail
bin=${1:-target/release/quire}
data=$(mktemp -d)
log=$(mktemp)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$data" "$log"' EXIT
"$bin" serve --addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 --data "$data" 2> "$log" &
pid=$!
for _ in $(seq 100); do grep -q 'metrics also on' "$log" && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*/' "$log" | head -1)
metrics_url=$(grep '^metrics also on ' "$log" | grep -o 'http://[0-9.:]*/metrics' | head -1)
token=$(grep -o 'qt_[0-9a-f_]*' "$log" | head -1)
[ -n "$url" ] && [ -n "$token" ] && [ -n "$metrics_url" ] || { cat "$log"; echo "serve printed no URL, token or metrics URL" >&2; exit 1; }
curl -fsS "${url}healthz" > /dev/null
auth="Authorization: Bearer $token"
# /metrics: 401 without a token, Prometheus text for the server admin, and
# tokenless on the metrics address, which serves nothing else.
code=$(curl -s -o /dev/null -w '%{http_code}' "${url}metrics")
[ "$code" = 401 ] || { echo "/metrics without a token: expected 401, got $code" >&2; exit 1; }
m=$(curl -fsS -H "$auth" "${url}metrics")
grep -q '^quire_active_runs ' <<< "$m" || { echo "/metrics with the admin token gave no metrics" >&2; exit 1; }
m=$(curl -fsS "$metrics_url")
grep -q '^quire_active_runs ' <<< "$m" || { echo "--metrics-addr gave no metrics" >&2; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' -H "$auth" "${metrics_url%/metrics}/api/v1/workspaces")
[ "$code" = 404 ] || { echo "--metrics-addr served the API: $code" >&2; exit 1; }
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
