#!/usr/bin/env bash
# imgtool vs skopeo on registry work, same machine, same ~1 GiB image (4 layers), one run:
# registry -> same registry (another repository), registry -> another registry,
# registry -> docker-archive, docker-archive -> registry. Prints wall time, peak RSS, ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
for t in skopeo docker-registry; do command -v $t >/dev/null || { echo "needs $t (apt-get install skopeo docker-registry)"; exit 1; }; done
cargo build -q --release -p imgtool
BIN=$PWD/target/release/imgtool
W=$(mktemp -d /var/tmp/imgtool-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT

registry() { # name port
  mkdir -p "$W/$1"
  cat > "$W/$1/cfg.yml" <<EOC
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $W/$1/data}}
http: {addr: 127.0.0.1:$2, secret: fixed}
EOC
  docker-registry serve "$W/$1/cfg.yml" >/dev/null 2>&1 & PIDS+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$2/v2/" >/dev/null && return; sleep 0.05; done
  echo "registry $1 did not start"; exit 1
}
A=127.0.0.1:5801; B=127.0.0.1:5802; C=127.0.0.1:5803; D=127.0.0.1:5804
registry a 5801; registry b 5802; registry c 5803; registry d 5804

args=()
for i in 1 2 3 4; do
  mkdir -p "$W/in$i"; head -c $((256 << 20)) /dev/urandom > "$W/in$i/random"; args+=(--path "$W/in$i:/data$i")
done
"$BIN" append -q scratch "docker-archive:$W/src.tar:bench:latest" "${args[@]}" >/dev/null
"$BIN" push -q "docker-archive:$W/src.tar" "$A/src:latest" >/dev/null
echo "image: $(du -sh "$W/src.tar" | cut -f1), 4 layers"

T="--src-tls-verify=false --dest-tls-verify=false"
measure() { # label, name, command...
  local label=$1 name=$2; shift 2
  /usr/bin/time -f "%e %M" -o "$W/t" "$@" >/dev/null 2>"$W/err" || { cat "$W/err"; exit 1; }
  read -r wall rss < "$W/t"
  printf '  %-8s wall %6.2fs  peak RSS %7.1f MiB\n' "$name" "$wall" "$(echo "$rss / 1024" | bc -l)"
  echo "$wall" > "$W/$label.$name"
}
ratio() { echo "  ratio skopeo/imgtool: $(echo "$(cat "$W/$1.skopeo") / $(cat "$W/$1.imgtool")" | bc -l | cut -c1-5)"; }

echo "registry -> same registry, another repository"
measure same imgtool "$BIN" copy -q "docker://$A/src:latest" "docker://$A/copy-imgtool:latest"
measure same skopeo skopeo copy -q $T "docker://$A/src:latest" "docker://$A/copy-skopeo:latest"
ratio same
echo "registry -> another registry"
measure other imgtool "$BIN" copy -q "docker://$A/src:latest" "docker://$B/copy:latest"
measure other skopeo skopeo copy -q $T "docker://$A/src:latest" "docker://$C/copy:latest"
ratio other
echo "registry -> docker-archive"
measure pull imgtool "$BIN" copy -q "docker://$A/src:latest" "docker-archive:$W/pulled-imgtool.tar:x:y"
measure pull skopeo skopeo copy -q $T "docker://$A/src:latest" "docker-archive:$W/pulled-skopeo.tar:x:y"
ratio pull
echo "docker-archive -> registry"
measure push imgtool "$BIN" copy -q "docker-archive:$W/src.tar" "docker://$D/pushed-imgtool:latest"
measure push skopeo skopeo copy -q $T "docker-archive:$W/src.tar" "docker://$D/pushed-skopeo:latest"
ratio push
