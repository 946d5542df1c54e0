#!/usr/bin/env bash
# Cached tiles over HTTP with wrk (Debian package wrk): the benchmark's 1,000 z10–z16 buildings
# tiles against a running citytwin with the city-scale store. Warms the cache with one pass,
# then loads it for 20 s with 2 threads and 64 connections.
#   benches/http-load.sh [base-url]   (default: starts citytwin on data/city.gpkg)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "install wrk: apt-get install wrk" >&2; exit 1; }
store=${STORE:-data/city.gpkg}
tiles=data/tiles-z10-z16.txt
[ -f "$tiles" ] || target/release/tile-list "$store" buildings 10 16 > "$tiles"
base=${1:-}
pid=
if [ -z "$base" ]; then
  benches/open-store.sh "$store"
  target/release/citytwin serve --store "$store" --listen 127.0.0.1:18083 --cache-mb 1024 2>/dev/null &
  pid=$!
  base=http://127.0.0.1:18083
  until curl -sf "$base/health" >/dev/null 2>&1; do sleep 0.1; done
fi
echo "== warming the cache (uncached pass over the 1,000 tiles)"
start=$(date +%s.%N)
while read -r t; do curl -s -o /dev/null -H 'Accept-Encoding: gzip' "$base/tiles/buildings/$t.mvt"; done < "$tiles"
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" 'BEGIN { printf "uncached pass (sequential curl): %.2fs for 1000 tiles\n", e - s }'
echo "== cached, gzip, 2 threads, 64 connections, 20 s"
TILES=$tiles LAYER=buildings wrk -t2 -c64 -d20s --latency -s benches/tiles.lua "$base" | tail -n 1
[ -n "$pid" ] && { kill -TERM "$pid"; wait "$pid" || true; }
