#!/usr/bin/env bash
# Fuzzes for a bounded time (default 60 s). Needs a nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`).
#   scripts/fuzz.sh [SECS]           the Dockerfile parser and substitution, seeded with
#                                    fixtures/dockerfiles
#   scripts/fuzz.sh extract [SECS]   layer extraction, seeded with fixtures/hostile; every
#                                    input must leave /tmp/imgtool-fuzz/sentinel unchanged
# Every `cargo test` also runs the same checks on bounded sets of mutations
# (the_parser_survives_mutated_dockerfiles, extraction_survives_mutated_hostile_layers).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
target=dockerfile_parse
if [ "${1:-}" = extract ]; then target=extract; shift; fi
secs=${1:-60}
seeds=$(mktemp -d); trap 'rm -rf "$seeds"' EXIT
if [ $target = extract ]; then
  cp ../fixtures/hostile/*.tar "$seeds/"
  max_len=65536
else
  for d in ../fixtures/dockerfiles/*/; do cp "$d/Dockerfile" "$seeds/$(basename "$d")"; done
  max_len=4096
fi
mkdir -p "corpus-$target"
cargo +nightly fuzz run "$target" "corpus-$target" "$seeds" -- -max_total_time="$secs" -max_len="$max_len"
