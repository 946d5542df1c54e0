#!/usr/bin/env bash
# Export rate: `citytwin export` of the city-scale buildings (1.05 M) at z10–z16 into PMTiles
# and MBTiles, as the owner department's key (tiles/s over every tile of the range, empty
# ones included; archive size). Builds the city-scale store first when missing
# (benches/city-scale.sh). Figures in benches/README.md.
#   cargo build --release -p citytwin && benches/export-rate.sh [zooms]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/citytwin
store=data/city.gpkg
zooms=${1:-10-16}
[ -f "$store" ] || benches/city-scale.sh >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
key=$("$bin" keys create --store "$store" --name export-bench --roles reporter --department planning)
for format in pmtiles mbtiles; do
  out="$work/buildings.$format"
  summary=$("$bin" export --store "$store" --format "$format" --layers buildings --zooms "$zooms" \
    --key "$key" --out "$out" 2>/dev/null)
  echo "$summary" | python3 -c '
import json, sys
s = json.load(sys.stdin)
rate = s["tiles"] / s["seconds"]
print("%s: %d tiles (%d with features) in %.1f s: %.0f tiles/s, archive %.1f MB"
      % (sys.argv[1], s["tiles"], s["written"], s["seconds"], rate, s["bytes"] / 1e6))' "$format"
done
"$bin" keys revoke --store "$store" "$(echo "$key" | cut -d_ -f2)" >/dev/null 2>&1 || true
