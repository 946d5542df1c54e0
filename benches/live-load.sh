#!/usr/bin/env bash
# Load on the live twin: durable reading ingest over HTTP and over MQTT (Mosquitto, Debian
# package mosquitto), and change-feed latency with many WebSocket subscribers, against a
# release server on a fresh demo store (figures in benches/README.md).
#   cargo build --release -p citytwin -p citytwin-benches && benches/live-load.sh [secs]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
cat > "$work/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
max_inflight_messages 0
max_queued_messages 1000000
persistence false
CONF
/usr/sbin/mosquitto -c "$work/mosquitto.conf" 2>/dev/null &
broker=$!
pid=
trap 'kill -TERM $broker ${pid:-} 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT
# the load's 1,000 subscribers share one key: its cap of open streams is raised to hold them
printf '[limits]\nstreams_per_caller = 2000\n' > "$work/limits.toml"
start() {
  target/release/citytwin serve --demo --config "$work/limits.toml" --store "$work/$1.gpkg" --listen 127.0.0.1:18090 \
    --mqtt "mqtt://127.0.0.1:$port" --refresh-secs 0 2>"$work/$1.log" &
  pid=$!
  until curl -sf http://127.0.0.1:18090/health >/dev/null 2>&1; do sleep 0.2; done
  # every operational role, all sensors: the load's own key
  CITYTWIN_KEY=$(target/release/citytwin keys create --store "$work/$1.gpkg" --name load \
    --roles reporter,dispatcher,sensor-admin,gateway,tracker,system-admin --department ops --sensors '*')
  export CITYTWIN_KEY
}
stop() { kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
start http; target/release/live-load http http://127.0.0.1:18090 "$secs"; stop
start mqtt; target/release/live-load mqtt http://127.0.0.1:18090 "mqtt://127.0.0.1:$port" "$secs"; stop
start feed; target/release/live-load feed http://127.0.0.1:18090 "$pid" 1000 10000 "$secs"; stop
