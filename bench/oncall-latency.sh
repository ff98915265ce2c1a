#!/usr/bin/env bash
# On-call latency benchmark: starts a throwaway PostgreSQL cluster from the installed binaries (as
# scripts/test.sh does), then `cargo bench --bench oncall`, which measures commit → SMS and POST → SMS
# over 1,000 alerts on SQLite, on PostgreSQL, and with two relay instances on one PostgreSQL database.
set -euo pipefail
cd "$(dirname "$0")/.."

initdb_path=$(command -v initdb || ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1)
if [ -z "$initdb_path" ]; then
  echo "oncall-latency.sh: the PostgreSQL server binaries are needed (apt-get install postgresql); SQLite only" >&2
  exec cargo bench --bench oncall
fi
pg_bin=$(dirname "$(readlink -f "$initdb_path")")
pg_root=$(mktemp -d /tmp/schuilnaam-bench-pg.XXXXXX)
if [ "$(id -u)" = 0 ]; then
  chown postgres "$pg_root"
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
stop_cluster() {
  as_pg "$pg_bin/pg_ctl" -D "$pg_root/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$pg_root"
}
trap stop_cluster EXIT
as_pg "$pg_bin/initdb" -D "$pg_root/data" -U postgres --auth=trust -E UTF8 >/dev/null
# Durable settings (fsync on): the latency includes a real commit.
as_pg "$pg_bin/pg_ctl" -D "$pg_root/data" -l "$pg_root/postgres.log" -w \
  -o "-p $port -k $pg_root -c listen_addresses=127.0.0.1" start >/dev/null
export SCHUILNAAM_BENCH_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
cargo bench --bench oncall "$@"
