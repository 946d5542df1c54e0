#!/usr/bin/env bash
# Classifies every layer of a bench store that has no catalogue entry yet as open to all
# (level 1): the benches' synthetic city is public data, and a layer nobody classified is
# served to no one.
#   benches/open-store.sh <store>
set -euo pipefail
cd "$(dirname "$0")/.."
store=$1
for layer in $(target/release/citytwin layers --store "$store" | awk '{ print $1 }'); do
  if target/release/citytwin catalog show "$layer" --store "$store" | grep -q '"owner":null'; then
    target/release/citytwin catalog set "$layer" --owner planning --share unconditional \
      --open unconditional --level 1 --update-frequency yearly --store "$store" >/dev/null
  fi
done
