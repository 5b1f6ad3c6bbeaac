#!/usr/bin/env bash
# Make one layer from a large directory tree with imgtool, `tar | gzip -6` and `umoci insert`
# in the same run; print wall time, CPU time, peak RSS, output size and the ratios.
# Usage: bench/layer.sh [DIR]   (default /usr)
# IMGTOOL=path picks the binary (default: a release build of this checkout); IMGTOOL_BASE=path
# measures a second imgtool (an older build) in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-/usr}
command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install time"; exit 1; }
if [ -z "${IMGTOOL:-}" ]; then
  cargo build -q --release -p imgtool
  IMGTOOL=$PWD/target/release/imgtool
fi
BIN=$IMGTOOL
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT

measure() { # name, command...
  local name=$1; shift
  /usr/bin/time -f "%e %U %S %M" -o "$W/$name.time" "$@" >/dev/null 2>"$W/$name.err" || { cat "$W/$name.err"; exit 1; }
  read -r wall user sys rss < "$W/$name.time"
  printf '%-10s wall %6.2fs  cpu %6.2fs  peak RSS %7.1f MiB' "$name" "$wall" "$(echo "$user + $sys" | bc)" "$(echo "$rss / 1024" | bc -l)"
  echo "$wall" > "$W/$name.wall"
}

du -sh "$SRC" | awk '{print "input: " $2 " (" $1 ")"}'
measure imgtool "$BIN" append -q scratch "oci:$W/img:bench" --path "$SRC:/data"
printf '  size %s\n' "$(du -b "$W"/img/blobs/sha256 | tail -1 | cut -f1)"
if [ -n "${IMGTOOL_BASE:-}" ]; then
  measure imgtool-base "$IMGTOOL_BASE" append -q scratch "oci:$W/img-base:bench" --path "$SRC:/data"
  printf '  size %s\n' "$(du -b "$W"/img-base/blobs/sha256 | tail -1 | cut -f1)"
fi
measure tar-gzip sh -c "tar -C '$SRC' -cf - . | gzip -6 > '$W/tar.gz'"
printf '  size %s\n' "$(stat -c %s "$W/tar.gz")"
if command -v umoci >/dev/null; then
  umoci init --layout "$W/u" && umoci new --image "$W/u:b"
  before=$(du -b "$W"/u/blobs/sha256 | tail -1 | cut -f1)
  measure umoci umoci insert --image "$W/u:b" "$SRC" /data
  printf '  size %s\n' "$(( $(du -b "$W"/u/blobs/sha256 | tail -1 | cut -f1) - before ))"
fi
echo "ratio tar|gzip / imgtool (wall): $(echo "$(cat "$W/tar-gzip.wall") / $(cat "$W/imgtool.wall")" | bc -l | cut -c1-5)"
[ -f "$W/imgtool-base.wall" ] && echo "ratio imgtool-base / imgtool (wall): $(echo "$(cat "$W/imgtool-base.wall") / $(cat "$W/imgtool.wall")" | bc -l | cut -c1-5)"
[ -f "$W/umoci.wall" ] && echo "ratio umoci / imgtool (wall):    $(echo "$(cat "$W/umoci.wall") / $(cat "$W/imgtool.wall")" | bc -l | cut -c1-5)"
