#!/usr/bin/env bash
# Write a docker-archive of a ~1 GiB image from an OCI layout, with imgtool and with
# `skopeo copy oci:... docker-archive:...`, in the same run; print times, peak RSS and the ratio.
# Usage: bench/archive.sh [gzip|none]   (layer compression of the source image; default gzip)
set -euo pipefail
cd "$(dirname "$0")/.."
COMP=${1:-gzip}
command -v skopeo >/dev/null || { echo "needs skopeo: apt-get install skopeo"; exit 1; }
cargo build -q --release -p imgtool
BIN=$PWD/target/release/imgtool
W=$(mktemp -d /var/tmp/imgtool-bench.XXXXXX); trap 'rm -rf "$W"' EXIT

# The source: four layers of 256 MiB of random data (about 1 GiB compressed) and 64 MiB of
# text, so gzip has work to do.
args=()
for i in 1 2 3 4; do
  mkdir -p "$W/in$i"
  head -c $((256 << 20)) /dev/urandom > "$W/in$i/random"
  (yes "line $i of a text file that compresses well" || true) | head -c $((64 << 20)) > "$W/in$i/text"
  args+=(--path "$W/in$i:/data$i")
done
"$BIN" append -q --compression "$COMP" scratch "oci:$W/src:bench" "${args[@]}" >/dev/null
echo "source: $(du -sh "$W/src" | cut -f1) OCI layout, 4 layers ($COMP)"
sync

measure() { # name, command...
  local name=$1; shift
  /usr/bin/time -f "%e %U %S %M" -o "$W/$name.time" "$@" >/dev/null 2>"$W/$name.err" || { cat "$W/$name.err"; exit 1; }
  read -r wall user sys rss < "$W/$name.time"
  printf '%-8s wall %6.2fs  cpu %6.2fs  peak RSS %7.1f MiB\n' "$name" "$wall" "$(echo "$user + $sys" | bc)" "$(echo "$rss / 1024" | bc -l)"
  echo "$wall" > "$W/$name.wall"
}
measure imgtool "$BIN" copy -q "oci:$W/src:bench" "docker-archive:$W/imgtool.tar:bench:latest"
measure skopeo skopeo copy -q "oci:$W/src:bench" "docker-archive:$W/skopeo.tar:bench:latest"
echo "sizes: imgtool $(stat -c %s "$W/imgtool.tar"), skopeo $(stat -c %s "$W/skopeo.tar")"
echo "ratio skopeo / imgtool (wall): $(echo "$(cat "$W/skopeo.wall") / $(cat "$W/imgtool.wall")" | bc -l | cut -c1-5)"
