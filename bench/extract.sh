#!/usr/bin/env bash
# Unpack one large gzip layer into an empty directory with `imgtool export`, `umoci unpack`
# and `tar -xzf`, alternately, cold page cache not forced (the layer is read once before);
# print the median wall time, CPU time and peak RSS of each and the ratios.
# Usage: bench/extract.sh [DIR] [RUNS]   (default /usr/share, 3)
# IMGTOOL=path picks the binary (default: a release build of this checkout); IMGTOOL_BASE=path
# adds a second imgtool (an older build, say) so a change to extraction is measured before/after
# in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-/usr/share}
RUNS=${2:-3}
command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install time"; exit 1; }
if [ -z "${IMGTOOL:-}" ]; then
  cargo build -q --release -p imgtool
  IMGTOOL=$PWD/target/release/imgtool
fi
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT

"$IMGTOOL" append -q scratch "oci:$W/img:bench" --path "$SRC:/data" >/dev/null
layer=$(find "$W/img/blobs/sha256" -type f -size +1M | head -1)
du -sh "$SRC" | awk '{print "input: " $2 " (" $1 "), one gzip layer of " }' | tr -d '\n'
stat -c '%s bytes' "$layer"
cat "$layer" >/dev/null

tools=(imgtool tar-xzf)
[ -n "${IMGTOOL_BASE:-}" ] && tools+=(imgtool-base)
command -v umoci >/dev/null && tools+=(umoci)

run() { # tool, destination
  case $1 in
    imgtool) "$IMGTOOL" export "oci:$W/img:bench" "$2" ;;
    imgtool-base) "$IMGTOOL_BASE" export "oci:$W/img:bench" "$2" ;;
    tar-xzf) mkdir "$2" && tar -C "$2" -xzf "$layer" ;;
    umoci) umoci unpack --image "$W/img:bench" "$2" ;;
  esac
}

for i in $(seq "$RUNS"); do
  for t in "${tools[@]}"; do
    rm -rf "$W/out"; sync
    /usr/bin/time -f "%e %U %S %M" -o "$W/time.$t.$i" bash -c "$(declare -f run); IMGTOOL='$IMGTOOL' IMGTOOL_BASE='${IMGTOOL_BASE:-}' W='$W' layer='$layer' run $t '$W/out'" \
      >/dev/null 2>"$W/$t.err" || { echo "$t failed:"; cat "$W/$t.err"; exit 1; }
  done
done
rm -rf "$W/out"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for t in "${tools[@]}"; do
  wall=$(cat "$W/time.$t".* | awk '{print $1}' | median)
  cpu=$(cat "$W/time.$t".* | awk '{print $2 + $3}' | median)
  rss=$(cat "$W/time.$t".* | awk '{print $4 / 1024}' | median)
  printf '%-13s wall %6.2fs  cpu %6.2fs  peak RSS %7.1f MiB  (median of %s)\n' "$t" "$wall" "$cpu" "$rss" "$RUNS"
  echo "$wall" > "$W/$t.wall"
done
for t in "${tools[@]}"; do
  [ "$t" = imgtool ] && continue
  echo "ratio $t / imgtool (wall): $(echo "$(cat "$W/$t.wall") / $(cat "$W/imgtool.wall")" | bc -l | cut -c1-5)"
done
