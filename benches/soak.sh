#!/usr/bin/env bash
# A long run of everything at once against a release server on a fresh demo store, reporting
# errors, p99 and the server's resident memory over time (figures in benches/README.md):
#
#   - tiles and queries: wrk, 1 thread, 8 connections, in one-minute rounds over a mix of every
#     demo layer's z10–z16 tiles, items with a bbox, the events, sensors and units lists, the
#     live state, territories and catalogue (p99 and errors per minute);
#   - readings and the feed: RATE readings/s (default 500) written over HTTP in batches every
#     10 ms, with SUBSCRIBERS WebSocket subscribers (default 200; 10 probes take every reading,
#     the rest a district's events): readings taken, failed batches, write → delivery p99 and
#     the server's RSS every minute (bench binary live-load, mode soak);
#   - a dashboard's MJPEG stream (1280×720, 2 frames/s at most) held open the whole time.
#
#   benches/soak.sh [minutes, default 30]      (wrk: apt-get install wrk)
#
# Ends with the totals: errors, the worst minute's p99, the stream's frames, and resident
# memory after the warm-up (the first 5 minutes) against the end.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "install wrk: apt-get install wrk" >&2; exit 1; }
minutes=${1:-30}
RATE=${RATE:-500}
SUBSCRIBERS=${SUBSCRIBERS:-200}
secs=$((minutes * 60))
cargo build --release -q -p citytwin -p citytwin-benches --bins
bin=target/release/citytwin
work=$(mktemp -d)
port=18095
base=http://127.0.0.1:$port
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# the load's subscribers share one key: its cap of open streams is raised to hold them all
# and its rate of queries (items are rate-limited per principal) is raised for the mix
printf '[limits]\nstreams_per_caller = %d\n[rates]\nqueries_per_sec = 100000\nwrites_per_sec = 100000\n' \
  $((SUBSCRIBERS + 10)) > "$work/soak.toml"
"$bin" serve --demo --config "$work/soak.toml" --store "$work/soak.gpkg" --listen "127.0.0.1:$port" 2>"$work/server.log" &
server=$!
pids+=("$server")
until curl -sf -o /dev/null "$base/health"; do sleep 0.2; done
key=$("$bin" keys create --store "$work/soak.gpkg" --name soak --department ops --sensors '*' \
  --roles reporter,dispatcher,handler,verifier,commander,sensor-admin,gateway,tracker,system-admin)
export CITYTWIN_KEY=$key

# the request mix: every layer's tiles, and the queries a screen and a planner make
paths=$work/paths.txt
layers=$("$bin" layers --store "$work/soak.gpkg" | awk '{ print $1 }')
for l in $layers; do
  # only the layers this key may read (a classified layer of another department is refused)
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" "$base/collections/$l/items?limit=1")
  [ "$code" = 200 ] || { echo "layer $l left out: HTTP $code for this key"; continue; }
  # the first 200 of each layer's tiles (the lister stops early on the closed pipe)
  (target/release/tile-list "$work/soak.gpkg" "$l" 10 16 2>/dev/null || true) | head -200 |
    sed "s|^|/tiles/$l/|; s|$|.mvt|" >> "$paths"
  for bbox in 118.70,31.95,118.85,32.10 118.75,32.00,118.80,32.05; do
    echo "/collections/$l/items?limit=50&bbox=$bbox" >> "$paths"
  done
done
cat >> "$paths" <<PATHS
/events?limit=100
/sensors?alarm=true
/units
/live/state
/territories
/catalog
PATHS
shuf --random-source=<(yes) "$paths" -o "$paths"
# every path of the mix answers 200 before the run (a soak over refusals would measure them)
while read -r path; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" "$base$path")
  [ "$code" = 200 ] || { echo "$path: HTTP $code" >&2; exit 1; }
done < <(grep -v '^/tiles/' "$paths")
echo "== soak: $minutes min; $(wc -l < "$paths") request paths over $(grep -c '^/tiles/' "$paths") tiles and the queries; $RATE readings/s; $SUBSCRIBERS subscribers; one MJPEG stream"

start=$(date +%s)
stamp() { awk -v s="$start" -v n="$(date +%s)" 'BEGIN { printf "%5.1f min", (n - s) / 60 }'; }
(
  while [ $(($(date +%s) - start)) -lt "$secs" ]; do
    line=$(TILES=$paths PREFIX= SUFFIX= AUTH=$key wrk -t1 -c8 -d60s --latency -s benches/tiles.lua "$base" | tail -n 1)
    echo "http $(stamp): $line"
  done
) > "$work/http.txt" &
pids+=($!)
curl -sN -m "$secs" -H "Authorization: Bearer $key" -o "$work/stream.bin" \
  "$base/dashboards/nanjing/stream?width=1280&height=720&fps=2" 2>/dev/null &
stream=$!
pids+=("$stream")
target/release/live-load soak "$base" "$server" "$SUBSCRIBERS" "$RATE" "$secs" 60 | tee "$work/live.txt"
wait "$stream" 2>/dev/null || true
sleep 65 # the last wrk round
cat "$work/http.txt"

echo "== totals"
awk '/^http/ { for (i = 1; i <= NF; i++) { if ($i == "errors") e += $(i + 1); if ($i == "p99") { p = $(i + 1) + 0; if (p > m) m = p }; if ($i == "requests") r += $(i + 1) } }
  END { printf "tiles and queries: %d requests, %d errors, worst minute p99 %.2f ms\n", r, e, m }' "$work/http.txt"
awk '/^soak/ { for (i = 1; i <= NF; i++) { if ($i == "readings") t += $(i - 1); if ($i == "batches") f += $(i - 1); if ($i == "p99") { p = $(i + 1) + 0; if (p > m) m = p } } }
  END { printf "readings (the whole minutes): %d taken, %d batches failed, worst minute delivery p99 %.2f ms\n", t, f, m }' "$work/live.txt"
frames=$(grep -ac 'Content-Type: image/jpeg' "$work/stream.bin" || true)
echo "dashboard stream: $frames frames over $minutes min ($(stat -c %s "$work/stream.bin") bytes)"
awk '/^soak/ { for (i = 1; i <= NF; i++) if ($i == "RSS") { r = $(i + 1); n++; if (n == 5) w = r; last = r; if (n >= 5 && r > peak) peak = r } }
  END { if (n < 5) print "RSS: the run was shorter than the 5-minute warm-up"; else printf "RSS after the warm-up (minute 5) %d MiB, peak after it %d MiB, at the end %d MiB\n", w, peak, last }' "$work/live.txt"
grep -c ' ERROR ' "$work/server.log" | sed 's/^/server log ERROR lines: /' || true
