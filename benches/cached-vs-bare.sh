#!/usr/bin/env bash
# Cached tiles over HTTP, side by side with their floor: citytwin serving the benchmark's
# 1,000 z10–z16 buildings tiles from its cache, and a bare axum server (bench binary
# bare-tiles) answering the same paths with the same gzip bodies straight from memory — no
# access check, metrics, cache lookup or ETag. The same wrk command (2 threads, 64
# connections, gzip) runs against each in turn, ROUNDS times (default 3, DURATION seconds
# each, default 20), on the city-scale store.
#   benches/cached-vs-bare.sh        (builds the release binaries; wrk: apt-get install wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "install wrk: apt-get install wrk" >&2; exit 1; }
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-20}
store=${STORE:-data/city.gpkg}
cargo build --release -q -p citytwin -p citytwin-benches --bins
[ -f "$store" ] || benches/city-scale.sh
tiles=data/tiles-z10-z16.txt
[ -f "$tiles" ] || target/release/tile-list "$store" buildings 10 16 > "$tiles"
benches/open-store.sh "$store"
# open to all, as the bare server serves it (and as benches/vs-martin does)
target/release/citytwin catalog set buildings --owner planning --share unconditional \
  --open unconditional --level 1 --store "$store" >/dev/null

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
up() { until curl -sf -o /dev/null "$1"; do sleep 0.1; done; }

target/release/citytwin serve --store "$store" --listen 127.0.0.1:18083 --cache-mb 1024 2>"$work/citytwin.log" &
pids+=($!)
up http://127.0.0.1:18083/health

echo "== warming citytwin's cache and keeping its gzip bodies for the bare server"
bytes=0
while IFS=/ read -r z x y; do
  mkdir -p "$work/tiles/$z/$x"
  out="$work/tiles/$z/$x/$y.mvt.gz"
  head=$(curl -s -H 'Accept-Encoding: gzip' -o "$out" -D - "http://127.0.0.1:18083/tiles/buildings/$z/$x/$y.mvt" | tr -d '\r')
  code=$(echo "$head" | awk 'NR == 1 { print $2 }')
  enc=$(echo "$head" | awk -F': ' 'tolower($1) == "content-encoding" { print $2 }')
  # a body citytwin sent unencoded is sent gzip by both (the same bytes on both sides)
  [ "$enc" = gzip ] || { gzip -n -c "$out" > "$out.tmp"; mv "$out.tmp" "$out"; }
  [ "$code" = 200 ] || { echo "tile $z/$x/$y: HTTP $code" >&2; exit 1; }
  bytes=$((bytes + $(stat -c %s "$out")))
done < "$tiles"
n=$(wc -l < "$tiles")
echo "$n tiles, mean gzip body $((bytes / n)) bytes"

target/release/bare-tiles "$work/tiles" 127.0.0.1:18084 2>"$work/bare.log" &
pids+=($!)
up http://127.0.0.1:18084/tiles/buildings/$(head -1 "$tiles").mvt

load() { # $1: name, $2: base
  TILES=$tiles LAYER=buildings wrk -t2 -c64 -d"${DURATION}s" --latency -s benches/tiles.lua "$2" \
    | tail -n 1 | tee -a "$work/$1.txt" | sed "s/^/$1: /"
}
for _ in $(seq "$ROUNDS"); do
  load bare http://127.0.0.1:18084
  load citytwin http://127.0.0.1:18083
done
rate() { awk '{ for (i = 1; i < NF; i++) if ($(i + 1) == "req/s;") { s += $i; n++ } } END { printf "%.0f", s / n }' "$work/$1.txt"; }
b=$(rate bare)
c=$(rate citytwin)
awk -v b="$b" -v c="$c" 'BEGIN { printf "mean over the rounds: bare axum %d req/s, citytwin %d req/s: %.0f %%\n", b, c, 100 * c / b }'
