#!/usr/bin/env bash
# imgtool conda build vs the pipeline a user would script without it (py-rattler solve +
# install into a prefix, then `umoci insert`), on a generated channel of 60 packages
# (~500 MB unpacked): cold cache, warm cache, one package changed. Also times a plain copy
# of the unpacked bytes. Needs python3 (py-rattler is installed into a venv from PyPI) and umoci.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v umoci >/dev/null || { echo "needs umoci (apt-get install umoci)"; exit 1; }
cargo build -q --release -p imgtool
cargo build -q --release -p imgtool-conda --example bench_channel
BIN=$PWD/target/release/imgtool
GEN=$PWD/target/release/examples/bench_channel
W=$(mktemp -d /var/tmp/imgtool-bench.XXXXXX); trap 'rm -rf "$W"' EXIT
python3 -m venv "$W/venv" && "$W/venv/bin/pip" install -q py-rattler
cat > "$W/ref.py" <<'EOP'
import asyncio, sys
import rattler
async def main(channel, prefix, cache):
    records = await rattler.solve(sources=[rattler.Channel(channel)], specs=["bench-all"], platforms=["linux-64", "noarch"])
    await rattler.install(records, target_prefix=prefix, cache_dir=cache, show_progress=False)
asyncio.run(main(*sys.argv[1:]))
EOP
"$GEN" "$W/channel"
"$GEN" "$W/channel2" --changed
echo "channel: $(du -sh "$W/channel" | cut -f1) of packages"

measure() { # label, command...
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$W/t" "$@" >/dev/null 2>"$W/err" || { cat "$W/err"; exit 1; }
  read -r wall rss < "$W/t"
  printf '  %-28s wall %7.2fs  peak RSS %7.1f MiB\n' "$label" "$wall" "$(echo "$rss / 1024" | bc -l)"
  echo "$wall" > "$W/wall.$(echo "$label" | tr ' /' '__')"
}
reference() { # channel, cache, name
  rm -rf "$W/prefix" "$W/layout"
  "$W/venv/bin/python" "$W/ref.py" "file://$1" "$W/prefix" "$2"
  umoci init --layout "$W/layout" && umoci new --image "$W/layout:b"
  umoci insert --image "$W/layout:b" "$W/prefix" /opt/conda
}
imgtool_build() { # channel, cache, out
  "$BIN" conda build -q -b scratch -i bench:1 -o "oci:$3:1" -c "$1" --cache-dir "$2" --platform linux-64 bench-all
}
export -f reference imgtool_build; export W BIN

echo "cold cache"
measure "imgtool cold" bash -c "imgtool_build $W/channel $W/cache-i $W/out1"
measure "py-rattler+umoci cold" bash -c "reference $W/channel $W/cache-r"
echo "warm cache"
measure "imgtool warm" bash -c "imgtool_build $W/channel $W/cache-i $W/out2"
measure "py-rattler+umoci warm" bash -c "reference $W/channel $W/cache-r"
echo "one package changed"
# The channel publishes a new build of one package (same channel, as a user's would).
rm -rf "$W/channel" && mv "$W/channel2" "$W/channel"
measure "imgtool changed" bash -c "imgtool_build $W/channel $W/cache-i $W/out3"
measure "py-rattler+umoci changed" bash -c "reference $W/channel $W/cache-r"
echo "plain copy of the unpacked bytes"
measure "cp -a prefix" cp -a "$W/prefix" "$W/copied"
r() { echo "$(cat "$W/wall.$1") / $(cat "$W/wall.$2")" | bc -l | cut -c1-5; }
echo "ratios: reference/imgtool cold $(r py-rattler+umoci_cold imgtool_cold), warm $(r py-rattler+umoci_warm imgtool_warm), changed $(r py-rattler+umoci_changed imgtool_changed); imgtool warm / copy $(r imgtool_warm cp_-a_prefix)"
