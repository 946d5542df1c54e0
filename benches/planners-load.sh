#!/usr/bin/env bash
# The planners' API over HTTP with wrk (Debian package wrk), 2 threads and 64 connections for
# 20 s each: point → grid (`/grids/locate`, 10,000 random points over the urban core) and
# OGC API items for z14-sized bboxes (`/collections/buildings/items?bbox=…`, limit 10, the
# 1,000 z14 tiles of the benchmark's tile list), against a running citytwin or one started on
# the city-scale store (`citytwin fixtures --scale city` + import, see benches/README.md).
#   benches/planners-load.sh [base-url]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "install wrk: apt-get install wrk" >&2; exit 1; }
store=${STORE:-data/city.gpkg}
tiles=data/tiles-z14.txt
[ -f "$tiles" ] || target/release/tile-list "$store" buildings 14 14 > "$tiles"
base=${1:-}
pid=
if [ -z "$base" ]; then
  benches/open-store.sh "$store"
  target/release/citytwin serve --store "$store" --listen 127.0.0.1:18084 2>/dev/null &
  pid=$!
  base=http://127.0.0.1:18084
  until curl -sf "$base/health" >/dev/null 2>&1; do sleep 0.2; done
fi
locate=$(mktemp)
items=$(mktemp)
trap 'rm -f "$locate" "$items"; [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true' EXIT
awk 'BEGIN { srand(7); for (i = 0; i < 10000; i++)
  printf "/grids/locate?lon=%.6f&lat=%.6f\n", 118.70 + rand() * 0.25, 31.95 + rand() * 0.20 }' > "$locate"
awk -F/ '{ n = 2 ^ $1; pi = 3.141592653589793
  w = $2 / n * 360 - 180; e = ($2 + 1) / n * 360 - 180
  # latitude = atan(sinh(v)), sinh(v) = (e^v - e^-v) / 2
  nl = atan2(exp(pi * (1 - 2 * $3 / n)) - exp(-pi * (1 - 2 * $3 / n)), 2) * 180 / pi
  sl = atan2(exp(pi * (1 - 2 * ($3 + 1) / n)) - exp(-pi * (1 - 2 * ($3 + 1) / n)), 2) * 180 / pi
  printf "/collections/buildings/items?bbox=%.6f,%.6f,%.6f,%.6f&limit=10\n", w, sl, e, nl }' "$tiles" > "$items"
echo "== warm-up (territory tree, id lookups)"
curl -sf -o /dev/null "$base$(head -1 "$locate")"
curl -sf -o /dev/null "$base$(head -1 "$items")"
echo "== point → grid: /grids/locate"
PATHS=$locate wrk -t2 -c64 -d20s --latency -s benches/paths.lua "$base" | tail -n 1
echo "== items for a z14 bbox, limit 10"
PATHS=$items wrk -t2 -c64 -d20s --latency -s benches/paths.lua "$base" | tail -n 1
