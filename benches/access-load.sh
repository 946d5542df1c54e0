#!/usr/bin/env bash
# What the access check costs the tile path: cached tiles over HTTP with wrk (2 threads, 64
# connections, 20 s, gzip), side by side in one run, for the public, a person signed in
# through the OpenID Provider (a JWT, checked against the provider's keys), and an API key —
# the same 1,000 z12–z16 buildings tiles of a demo store, after one warming pass.
#   cargo build --release -p citytwin -p citytwin-benches && benches/access-load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "install wrk: apt-get install wrk" >&2; exit 1; }
work=$(mktemp -d)
port=18095
idp_port=18096
base=http://127.0.0.1:$port
store=$work/demo.gpkg
pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT
node web/idp/provider.mjs --port "$idp_port" --keys "$work/idp-keys.json" --redirect "$base/" >/dev/null 2>&1 &
pids+=($!)
target/release/citytwin serve --demo --store "$store" --listen "127.0.0.1:$port" --cache-mb 1024 \
  --oidc-issuer "http://127.0.0.1:$idp_port" --refresh-secs 1 2>"$work/server.log" &
pids+=($!)
until curl -sf "$base/health" >/dev/null 2>&1; do sleep 0.2; done
# the demo shares buildings between departments only: open them, so all three see the same
target/release/citytwin catalog set buildings --open unconditional --store "$store" >/dev/null
until curl -sf -o /dev/null "$base/catalog/buildings"; do sleep 0.2; done
key=$(target/release/citytwin keys create --store "$store" --name bench --roles reporter --department planning)
jwt=$(node web/idp/token.mjs "http://127.0.0.1:$idp_port" planner planner-2026 "$base/")
curl -sf -o /dev/null -H "Authorization: Bearer $jwt" "$base/me" || { echo "the token was refused" >&2; exit 1; }
target/release/tile-list "$store" buildings 12 16 > "$work/tiles.txt"
echo "== warming the cache (one uncached pass over $(wc -l < "$work/tiles.txt") tiles)"
while read -r t; do curl -s -o /dev/null -H 'Accept-Encoding: gzip' "$base/tiles/buildings/$t.mvt"; done < "$work/tiles.txt"
run() { # $1: label, $2: credentials
  printf '%-22s ' "$1"
  AUTH=$2 TILES=$work/tiles.txt LAYER=buildings wrk -t2 -c64 -d20s --latency -s benches/tiles.lua "$base" | tail -n 1
}
echo "== cached, gzip, 2 threads, 64 connections, 20 s each"
run "public" ""
run "signed in (JWT)" "$jwt"
run "API key" "$key"
run "public, again" ""
