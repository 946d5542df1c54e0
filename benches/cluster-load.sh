#!/usr/bin/env bash
# Several instances against one: durable reading ingest and change-feed latency (write
# acknowledged → delivered to WebSocket subscribers) for one release server on PostGIS, and
# for two instances on the same PostGIS with NATS JetStream — written through the writer or
# through the other instance, the feed read on the other instance. Figures in
# benches/README.md.
#   scripts/setup-test-deps && cargo build --release -p citytwin -p citytwin-benches \
#     && benches/cluster-load.sh [secs]
set -euo pipefail
cd "$(dirname "$0")/.."
export PGOPTIONS='-c client_min_messages=warning'
secs=${1:-15}
work=$(mktemp -d)
nats_port=$((20000 + RANDOM % 20000))
schema="ct_bench_$$"
db="${CITYTWIN_TEST_DATABASE_URL:-postgres://$(id -un)@localhost/citytwin_test?host=/var/run/postgresql}"
sep='&'; case "$db" in *\?*) ;; *) sep='?' ;; esac
store="$db${sep}schema=$schema"
pids=()
nats=
cleanup() {
  kill -TERM "${pids[@]}" $nats 2>/dev/null || true
  wait 2>/dev/null || true
  psql "${db}" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
nats_bin=$(command -v nats-server || echo /usr/sbin/nats-server)
"$nats_bin" -js -a 127.0.0.1 -p "$nats_port" -sd "$work/nats" 2>"$work/nats.log" &
nats=$!
start() { # name port [flags...]
  local name=$1 port=$2; shift 2
  target/release/citytwin serve --demo --store "$store" --listen "127.0.0.1:$port" \
    --audit-key "$work/audit.key" --refresh-secs 0 "$@" 2>"$work/$name.log" &
  pids+=($!)
  until curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1; do sleep 0.2; done
}
key() {
  CITYTWIN_KEY=$(target/release/citytwin keys create --store "$store" --audit-key "$work/audit.key" \
    --name load --roles reporter,dispatcher,sensor-admin,gateway,tracker,system-admin \
    --department ops --sensors '*')
  export CITYTWIN_KEY
}
stop_all() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; pids=(); }

echo "== one instance on PostGIS"
start one 18091
key
target/release/live-load http http://127.0.0.1:18091 "$secs"
target/release/live-load feed http://127.0.0.1:18091 "${pids[0]}" 100 2000 "$secs"
stop_all
psql "$db" -qc "DROP SCHEMA $schema CASCADE" >/dev/null

echo "== two instances on PostGIS + NATS JetStream (A writes, B forwards)"
start a 18092 --nats "nats://127.0.0.1:$nats_port"
until curl -sf http://127.0.0.1:18092/health | grep -q '"writes":true'; do sleep 0.2; done
start b 18093 --nats "nats://127.0.0.1:$nats_port"
key
echo "-- ingest through A (the writer, publishing to JetStream)"
target/release/live-load http http://127.0.0.1:18092 "$secs"
echo "-- ingest through B (forwarded to A)"
target/release/live-load http http://127.0.0.1:18093 "$secs"
echo "-- written on A, feed on B"
CITYTWIN_FEED_URL=http://127.0.0.1:18093 target/release/live-load feed http://127.0.0.1:18092 "${pids[1]}" 100 2000 "$secs"
echo "-- written on B, feed on B"
target/release/live-load feed http://127.0.0.1:18093 "${pids[1]}" 100 2000 "$secs"
