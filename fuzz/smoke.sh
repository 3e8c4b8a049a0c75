#!/usr/bin/env bash
# Fuzz smoke: run every target for a short while (default 20 s each).
# Needs the nightly toolchain and cargo-fuzz. The engine target starts from
# the hostile programs and sample blocks as seeds. Leak detection is off for
# it: the target keeps one engine (and its pooled isolates) for the whole
# process on purpose.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-20}
seed=$(mktemp -d)
trap 'rm -rf "$seed"' EXIT
# First byte selects the language (even: JavaScript, odd: TypeScript).
for f in ../tests/hostile/*.js ../samples/blocks/*.js; do
  { printf '\000'; cat "$f"; } > "$seed/$(basename "$f")"
done
for f in ../samples/blocks/*.ts; do
  { printf '\001'; cat "$f"; } > "$seed/$(basename "$f")"
done
cargo +nightly fuzz run runner_protocol -- -max_total_time="$secs"
cargo +nightly fuzz run json_inputs -- -max_total_time="$secs"
ASAN_OPTIONS=detect_leaks=0 cargo +nightly fuzz run engine_run "$seed" -- -max_total_time="$secs" -timeout=10 -max_len=4096 -rss_limit_mb=4096 -detect_leaks=0
