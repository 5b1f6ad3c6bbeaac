#!/usr/bin/env bash
# Fuzzes the Dockerfile parser and substitution for a bounded time (default 60 s), seeded
# with the corpus in fixtures/dockerfiles. Needs a nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`). Every `cargo test` also runs the same check on a bounded
# set of mutations (the_parser_survives_mutated_dockerfiles), without nightly.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-60}
seeds=$(mktemp -d); trap 'rm -rf "$seeds"' EXIT
for d in ../fixtures/dockerfiles/*/; do cp "$d/Dockerfile" "$seeds/$(basename "$d")"; done
mkdir -p corpus
cargo +nightly fuzz run dockerfile_parse corpus "$seeds" -- -max_total_time="$secs" -max_len=4096
