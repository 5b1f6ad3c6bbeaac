#!/usr/bin/env bash
# imgtool build vs buildah bud (--layers, vfs, chroot isolation) on the same Dockerfile,
# context and busybox base, in one run: a cold build, a no-change rebuild, and a rebuild
# after one copied file changed. Then the no-change rebuild of the corpus's largest
# Dockerfile. Needs buildah, runc and busybox-static.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v buildah >/dev/null || { echo "needs buildah (apt-get install buildah)"; exit 1; }
cargo build -q --release -p imgtool
BIN=$PWD/target/release/imgtool
# buildah names images after oci: paths, which must be lower case: no mktemp letters.
W=/var/tmp/imgtool-bench-dockerfile-$$; rm -rf "$W"; mkdir -p "$W"; trap 'rm -rf "$W"' EXIT

# A busybox base, made by imgtool itself.
mkdir -p "$W/rootfs"/{bin,etc,tmp,root}; cp "$(command -v busybox)" "$W/rootfs/bin/"
for a in $("$W/rootfs/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$W/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$W/rootfs/etc/passwd"; chmod 1777 "$W/rootfs/tmp"
"$BIN" -q append scratch "oci:$W/base:bb" --path "$W/rootfs:/" >/dev/null

# The context: 64 files of 2 MiB (half random, half text) and a small app file.
mkdir -p "$W/ctx/data"
python3 - "$W/ctx/data" <<'EOP'
import os, sys
for i in range(64):
    with open(os.path.join(sys.argv[1], f"f{i:02}.bin"), "wb") as f:
        f.write(os.urandom(1 << 20) + (f"line {i}\n" * 120000).encode()[: 1 << 20])
EOP
echo v1 > "$W/ctx/app.txt"
cat > "$W/ctx/Dockerfile" <<EOD
FROM oci:$W/base:bb
RUN mkdir -p /opt/app && echo prepared > /opt/app/stamp
COPY data/ /data/
RUN cat /data/* | wc -c > /data-size
COPY app.txt /opt/app/
RUN cp /opt/app/app.txt /opt/app/copy && rm /opt/app/stamp
CMD ["cat", "/opt/app/copy"]
EOD
echo "context: $(du -sh "$W/ctx" | cut -f1)"

measure() { # label, command...
  local label=$1; shift
  local t0 t1; t0=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$W/t" "$@" >/dev/null 2>"$W/err" || { cat "$W/err"; exit 1; }
  t1=$(date +%s.%N)
  local wall rss; wall=$(echo "$t1 - $t0" | bc -l); read -r rss < "$W/t"
  printf '  %-24s wall %7.3fs  peak RSS %7.1f MiB\n' "$label" "$wall" "$(echo "$rss / 1024" | bc -l)"
  echo "$wall" > "$W/wall.$(echo "$label" | tr ' ' '_')"
}
ours() { "$BIN" -q build --cache-dir "$W/cache" -o "oci:$W/out:latest" "$W/ctx"; }
theirs() { buildah --root "$W/bstore" --runroot "$W/brun" --storage-driver vfs bud --layers --isolation chroot -t bench:latest "$W/ctx"; }
export -f ours theirs; export BIN W

echo "cold"
measure "imgtool cold" bash -c ours
measure "buildah cold" bash -c theirs
echo "no change"
measure "imgtool no-change" bash -c ours
measure "buildah no-change" bash -c theirs
echo "one copied file changed"
echo v2 > "$W/ctx/app.txt"
measure "imgtool changed" bash -c ours
measure "buildah changed" bash -c theirs
r() { echo "$(cat "$W/wall.$1") / $(cat "$W/wall.$2")" | bc -l | cut -c1-5; }
echo "ratios buildah/imgtool: cold $(r buildah_cold imgtool_cold), no-change $(r buildah_no-change imgtool_no-change), changed $(r buildah_changed imgtool_changed)"

# The corpus's largest Dockerfile: cold, then a rebuild with nothing changed.
big=$(ls -S fixtures/dockerfiles/*/Dockerfile | head -1); case_dir=$(dirname "$big")
echo "corpus: $(basename "$case_dir")"
corpus() { "$BIN" -q build --cache-dir "$W/cache2" --build-arg "BASE=oci:$W/base:bb" -o "oci:$W/out2:latest" "$case_dir"; }
export -f corpus; export case_dir
measure "imgtool corpus cold" bash -c corpus
measure "imgtool corpus no-change" bash -c corpus
