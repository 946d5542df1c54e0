#!/usr/bin/env bash
# Versions of the city-scale buildings (1.05 M): import as a first version, then a second
# version with 5 % of the features changed (1/3 removed, 1/3 new, 1/3 raised), timed against
# a plain full import of the same file; then tiles/s of the past version against the current
# one (1,000 z10–z16 tiles, uncached, in process). Figures in benches/README.md.
#   cargo build --release -p citytwin -p citytwin-benches --bins --examples && benches/versions.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/citytwin
profile=target/release/examples/versions-profile
fixtures=data/fixtures-city
work=data/versions-bench
[ -f "$fixtures/buildings.geojson" ] || benches/city-scale.sh >/dev/null
mkdir -p "$work"
if [ ! -f "$work/v2025.geojson" ]; then
  echo "== two versions of $fixtures/buildings.geojson (a stable code on each; 5 % changed in the second)"
  python3 - "$fixtures/buildings.geojson" "$work" <<'PY'
import re, sys
src, out = sys.argv[1], sys.argv[2]
ident = re.compile(r'"id":(\d+),"properties":\{')
height = re.compile(r'"height":([0-9.]+)')
with open(src) as f, open(f"{out}/v2020.geojson", "w") as a, open(f"{out}/v2025.geojson", "w") as b:
    first_a = first_b = True
    a.write('{"type":"FeatureCollection","features":[\n'); b.write('{"type":"FeatureCollection","features":[\n')
    def put(w, line, first):
        if not first: w.write(",\n")
        w.write(line)
    for line in f:
        line = line.strip().rstrip(",")
        m = ident.search(line)
        if not m: continue
        i = int(m.group(1))
        line = line[:m.end()] + f'"code":"NJB{i:07d}",' + line[m.end():]
        put(a, line, first_a); first_a = False
        k = i % 60
        if k == 0:
            continue                      # demolished
        if k == 20:                       # raised by a floor
            line = height.sub(lambda h: '"height":%s' % (float(h.group(1)) + 3), line, 1)
        put(b, line, first_b); first_b = False
        if k == 40:                       # a new building beside it
            put(b, line.replace(f'"code":"NJB{i:07d}"', f'"code":"NJN{i:07d}"'), False)
    a.write("\n]}\n"); b.write("\n]}\n")
PY
fi
timed() { local s e; s=$(date +%s.%N); "$@" 2>/dev/null; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f", e - s }'; }
n=$(grep -c '"type":"Feature"' "$work/v2025.geojson")
rm -f "$work"/plain.gpkg* "$work"/versions.gpkg*
t0=$(timed "$bin" import "$work/v2025.geojson" --layer buildings --store "$work/plain.gpkg")
echo "full import (no versions) of $n features: $t0 s"
t1=$(timed "$bin" import "$work/v2020.geojson" --layer buildings --store "$work/versions.gpkg" --as-of 2020-01-01 --version-key code)
echo "first version (2020): $t1 s"
t2=$(timed "$bin" import "$work/v2025.geojson" --layer buildings --store "$work/versions.gpkg" --as-of 2025-01-01)
echo "second version (2025, 5 % changed): $t2 s"
sqlite3 "$work/versions.gpkg" "SELECT 'rows stored: ' || count(*) || ', of them past: ' || count(valid_to) FROM buildings"
ls -l "$work/plain.gpkg" "$work/versions.gpkg" | awk '{ printf "%s: %.1f MB\n", $9, $5 / 1e6 }'
"$profile" "$work/versions.gpkg" buildings 2020-06-01
