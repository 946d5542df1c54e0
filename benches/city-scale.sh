#!/usr/bin/env bash
# Builds the city-scale data set and store, measuring import rate and start-up time.
#   benches/city-scale.sh            → data/fixtures-city/, data/city.gpkg, figures on stdout
# Needs a release build (cargo build --release -p citytwin -p citytwin-benches --bins).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/citytwin
fixtures=data/fixtures-city
store=data/city.gpkg
[ -x "$bin" ] || cargo build --release -p citytwin --bins
if [ ! -f "$fixtures/manifest.json" ]; then
  echo "== generating the city-scale fixtures"
  /usr/bin/time -f "generated in %es (max RSS %M KiB)" "$bin" fixtures --scale city --out "$fixtures"
fi
echo "== import rate: buildings into a fresh GeoPackage"
rm -f data/import-bench.gpkg*
n=$(grep -c '"type":"Feature"' "$fixtures/buildings.geojson")
start=$(date +%s.%N)
"$bin" import "$fixtures/buildings.geojson" --layer buildings --store data/import-bench.gpkg 2>/dev/null
end=$(date +%s.%N)
awk -v n="$n" -v s="$start" -v e="$end" 'BEGIN { printf "imported %d features in %.2fs: %.0f features/s\n", n, e - s, n / (e - s) }'
if command -v ogr2ogr >/dev/null; then
  # the same buildings from binary sources (converted once with GDAL)
  for driver in FlatGeobuf GPKG; do
    src=$fixtures/buildings-source.$( [ "$driver" = GPKG ] && echo gpkg || echo fgb )
    [ -f "$src" ] || ogr2ogr -f "$driver" "$src" "$fixtures/buildings.geojson" -nln buildings
    echo "== import rate: buildings from $driver into a fresh GeoPackage"
    rm -f data/import-bench.gpkg*
    start=$(date +%s.%N)
    "$bin" import "$src" --layer buildings --store data/import-bench.gpkg 2>/dev/null
    end=$(date +%s.%N)
    awk -v n="$n" -v s="$start" -v e="$end" 'BEGIN { printf "imported %d features in %.2fs: %.0f features/s\n", n, e - s, n / (e - s) }'
  done
fi
if [ ! -f "$store" ]; then
  echo "== building the city-scale store"
  CITYTWIN_LOG_FORMAT=json timeout 900 "$bin" serve --demo --fixtures "$fixtures" --store "$store" --listen 127.0.0.1:18081 2>/dev/null &
  pid=$!
  until curl -sf http://127.0.0.1:18081/health >/dev/null; do sleep 1; done
  kill -TERM "$pid"; wait "$pid" || true
fi
echo "== start-up: process start to first /health answer, city-scale store"
for run in 1 2 3; do
  start=$(date +%s.%N)
  "$bin" serve --store "$store" --listen 127.0.0.1:18082 2>/dev/null &
  pid=$!
  until curl -sf http://127.0.0.1:18082/health >/dev/null 2>&1; do sleep 0.02; done
  end=$(date +%s.%N)
  kill -TERM "$pid"; wait "$pid" || true
  awk -v s="$start" -v e="$end" -v r="$run" 'BEGIN { printf "run %d: serving after %.2fs\n", r, e - s }'
done
