#!/usr/bin/env bash
# Fuzzes every parser of outside input with cargo fuzz (libFuzzer; nightly Rust, not CI):
# the import readers (GeoJSON, CSV, FlatGeobuf, GeoPackage, Shapefile), CQL2 filters and WKT,
# query and tile parameters, styles and dashboard layouts, MQTT payloads — the harnesses are
# in server/src/fuzzing.rs, the targets in fuzz/fuzz_targets.
#
#   benches/fuzz.sh [seconds per target, default 600] [target …]
#
# Each target runs from its committed corpus (fuzz/corpus/<target>) with a hang limit (10 s
# an input), a memory limit (2 GiB resident; one allocation at most 512 MiB) and a length
# limit; inputs that reach new code are merged back into fuzz/corpus (commit them), failing
# inputs land in fuzz/artifacts/<target> (fix the bug, then move the input to
# fuzz/regressions/<target>). `cargo test --test fuzz_corpus` replays both directories on
# every test run. Prints one line per target: runs, coverage, corpus size, findings.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(import cql2 params styles mqtt)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
# Rust is memory-safe; the sanitizer would only slow the runs (the C parts, SQLite, are not
# instrumented by it either): coverage-guided fuzzing without ASan
cargo +nightly fuzz build --sanitizer none
# the built targets are run directly: editing the sources meanwhile does not rebuild them
bin="fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release"
work=fuzz/work
mkdir -p "$work"
status=0
for t in "${targets[@]}"; do
  max_len=65536
  [ "$t" = import ] && max_len=262144
  mkdir -p "$work/$t" "fuzz/artifacts/$t"
  log="$work/$t.log"
  set +e
  "$bin/$t" "$work/$t" "fuzz/corpus/$t" -artifact_prefix="fuzz/artifacts/$t/" \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
    -max_len="$max_len" -print_final_stats=1 > "$log" 2>&1
  rc=$?
  set -e
  # keep what reached new code: merge the run's corpus into the committed one
  "$bin/$t" -merge=1 -max_len="$max_len" "fuzz/corpus/$t" "$work/$t" > "$work/$t.merge.log" 2>&1 || true
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
  found=$(find "fuzz/artifacts/$t" -type f | wc -l)
  echo "$t: ${secs}s, $runs runs, coverage $cov edges, corpus $(find "fuzz/corpus/$t" -type f | wc -l) inputs, exit $rc, $found findings"
  [ "$rc" -eq 0 ] || { status=1; tail -30 "$log"; }
done
exit $status
