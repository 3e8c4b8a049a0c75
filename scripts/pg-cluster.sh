#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the tests, on a free loopback
# port in a temp dir, and prints its URL. Needs Debian's `postgresql`
# package (scripts/test.sh installs it). As root it runs the server as the
# `postgres` user, which initdb requires.
#
#   url=$(./scripts/pg-cluster.sh start DIR)    # DIR: empty, will be created
#   ./scripts/pg-cluster.sh stop DIR
set -euo pipefail
cmd=${1:?start or stop}
dir=${2:?a directory for the cluster}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "PostgreSQL's server is not installed: apt-get install postgresql" >&2; exit 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "$cmd" in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_pg "$bin/initdb" -D "$dir/data" -U quire --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start >/dev/null \
      || { cat "$dir/server.log" >&2; exit 1; }
    as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U quire quire_test
    echo "postgres://quire@127.0.0.1:$port/quire_test"
    ;;
  stop)
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    ;;
esac
