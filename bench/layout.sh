#!/usr/bin/env bash
# Copy an ~835 MiB image (4 uncompressed layers) into an existing OCI layout, with imgtool and
# with `skopeo copy`, alternately, cold (page cache dropped before each run, as root); print
# median times, peak RSS and the ratio. The layout's
# writer locks (index.json's and the writers' one, an flock per blob) are on imgtool's path.
# Usage: bench/layout.sh [RUNS]   (default 5)
# IMGTOOL=path picks the binary (default: a release build of this checkout); IMGTOOL_BASE=path
# adds a second imgtool (a build from before a change) measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
command -v skopeo >/dev/null || { echo "needs skopeo: apt-get install skopeo"; exit 1; }
command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install time"; exit 1; }
if [ -z "${IMGTOOL:-}" ]; then
  cargo build -q --release -p imgtool
  IMGTOOL=$PWD/target/release/imgtool
fi
W=$(mktemp -d /var/tmp/imgtool-bench.XXXXXX); trap 'rm -rf "$W"' EXIT

args=()
for i in 1 2 3 4; do
  mkdir -p "$W/in$i"
  head -c $((200 << 20)) /dev/urandom > "$W/in$i/random"
  (yes "line $i of a text file" || true) | head -c $((9 << 20)) > "$W/in$i/text"
  args+=(--path "$W/in$i:/data$i")
done
"$IMGTOOL" append -q --compression none scratch "oci:$W/src:big" "${args[@]}" >/dev/null
"$IMGTOOL" append -q scratch "oci:$W/base:small" --contents /x=1 >/dev/null
echo "source: $(du -sh "$W/src/blobs" | cut -f1) of blobs, 4 uncompressed layers; into a layout holding one small image"
[ -w /proc/sys/vm/drop_caches ] && echo "cold: the page cache is dropped before each run" || echo "warm: not root, caches stay"
sync

tools=(imgtool skopeo)
[ -n "${IMGTOOL_BASE:-}" ] && tools+=(imgtool-base)
run() { # tool, layout
  case $1 in
    imgtool) "$IMGTOOL" copy -q "oci:$W/src:big" "oci:$2:big" ;;
    imgtool-base) "$IMGTOOL_BASE" copy -q "oci:$W/src:big" "oci:$2:big" ;;
    skopeo) skopeo copy -q "oci:$W/src:big" "oci:$2:big" ;;
  esac
}
for i in $(seq "$RUNS"); do
  # Forwards, then backwards: no tool always runs right after the same other one.
  n=${#tools[@]}
  for k in $(seq 0 $((n - 1))); do
    if [ $((i % 2)) = 1 ]; then t=${tools[$k]}; else t=${tools[$((n - 1 - k))]}; fi
    rm -rf "$W/dst"; cp -r "$W/base" "$W/dst"; sync
    # Cold: every run reads the source from disk (as root; otherwise runs are warm and
    # depend on what ran before them).
    [ -w /proc/sys/vm/drop_caches ] && echo 3 > /proc/sys/vm/drop_caches
    /usr/bin/time -f "%e %U %S %M" -o "$W/$t.$i" bash -c "$(declare -f run); W=$W IMGTOOL=$IMGTOOL IMGTOOL_BASE=${IMGTOOL_BASE:-}; run $t $W/dst" >/dev/null
  done
done
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for t in "${tools[@]}"; do
  wall=$(for i in $(seq "$RUNS"); do cut -d' ' -f1 "$W/$t.$i"; done | median)
  cpu=$(for i in $(seq "$RUNS"); do awk '{print $2 + $3}' "$W/$t.$i"; done | median)
  rss=$(for i in $(seq "$RUNS"); do cut -d' ' -f4 "$W/$t.$i"; done | median)
  range=$(for i in $(seq "$RUNS"); do cut -d' ' -f1 "$W/$t.$i"; done | sort -n | sed -n '1p;$p' | paste -sd-)
  printf '%-13s wall %6.2fs (%s)  cpu %6.2fs  peak RSS %7.1f MiB  (median of %d)\n' "$t" "$wall" "$range" "$cpu" "$(echo "$rss / 1024" | bc -l)" "$RUNS"
  echo "$wall" > "$W/$t.wall"
done
echo "ratio skopeo / imgtool (wall): $(echo "$(cat "$W/skopeo.wall") / $(cat "$W/imgtool.wall")" | bc -l | cut -c1-5)"
# The locks' own cost, which whole-run times are too noisy to show: the time imgtool spends
# in flock (index, writers, each blob's temporary file) and in the dead-writer scan.
if command -v strace >/dev/null; then
  rm -rf "$W/dst"; cp -r "$W/base" "$W/dst"
  strace -f -c -e trace=flock,getdents64 -o "$W/strace" "$IMGTOOL" copy -q "oci:$W/src:big" "oci:$W/dst:big" >/dev/null
  awk '$NF == "flock" || $NF == "getdents64" {printf "lock cost: %s %s calls, %s s\n", $NF, $4, $2}' "$W/strace"
fi
[ -n "${IMGTOOL_BASE:-}" ] && echo "ratio imgtool-base / imgtool (wall): $(echo "$(cat "$W/imgtool-base.wall") / $(cat "$W/imgtool.wall")" | bc -l | cut -c1-5)"
exit 0
