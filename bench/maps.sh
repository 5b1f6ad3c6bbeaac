#!/usr/bin/env bash
# A six-container map with three levels of dependencies (volumes shared down the levels),
# brought up by `imgtool map` and by Debian's docker-compose 1.29.2 from the equivalent
# compose file, on one private dockerd, alternately. Prints median times and ratios for:
# startup from nothing (containers and volumes removed before each run: "cold" for the
# engine's state; images stay loaded), an update with nothing changed ("warm": both only
# compare), and an update after one container's command changed.
# Usage: bench/maps.sh [RUNS]   (default 5). Needs root (dockerd), docker.io, docker-compose.
# IMGTOOL=path picks the binary (default: a release build of this checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
command -v dockerd >/dev/null || { echo "needs dockerd: apt-get install docker.io"; exit 1; }
command -v docker-compose >/dev/null || { echo "needs docker-compose: apt-get install docker-compose"; exit 1; }
command -v busybox >/dev/null || { echo "needs busybox: apt-get install busybox-static"; exit 1; }
if [ -z "${IMGTOOL:-}" ]; then
  cargo build -q --release -p imgtool
  IMGTOOL=$PWD/target/release/imgtool
fi
W=$(mktemp -d /tmp/imgtool-maps.XXXXXX)
cleanup() { [ -f "$W/pid" ] && kill "$(cat "$W/pid")" 2>/dev/null; sleep 2; rm -rf "$W" 2>/dev/null || true; }
trap cleanup EXIT
dockerd --data-root "$W/root" --exec-root "$W/exec" --pidfile "$W/pid" -H "unix://$W/sock" \
  --storage-driver vfs --iptables=false --bridge=none >"$W/dockerd.log" 2>&1 &
export DOCKER_HOST=unix://$W/sock
for _ in $(seq 60); do /usr/bin/docker version >/dev/null 2>&1 && break; sleep 0.5; done

mkdir -p "$W/rootfs/bin" "$W/rootfs/etc" "$W/rootfs/tmp"
cp "$(command -v busybox)" "$W/rootfs/bin/busybox"
for a in $(busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$W/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$W/rootfs/etc/passwd"
"$IMGTOOL" append -q scratch "docker-archive:$W/bb.tar:busybox:latest" --path "$W/rootfs:/" --env PATH=/bin >/dev/null
/usr/bin/docker load -q -i "$W/bb.tar" >/dev/null

# Level 1: db, cache; level 2: api (uses db's volume), worker (uses cache's); level 3: web
# (uses api's), proxy (uses worker's).
mkdir -p "$W/imgtool" "$W/compose"
{
  echo "name: bench"
  for c in db:dbdata: cache:cachedata: api:apidata:dbdata worker:workerdata:cachedata web::apidata proxy::workerdata; do
    IFS=: read -r name owns uses <<<"$c"
    echo "$name:"
    echo "  image: busybox"
    echo "  network_mode: none"
    echo "  stop_signal: SIGKILL"
    [ -n "$owns" ] && echo "  attaches: $owns"
    [ -n "$uses" ] && echo "  uses: $uses"
    echo "  create_options: {command: sleep 3600}"
  done
  echo "volumes: {dbdata: /db, cachedata: /cache, apidata: /api, workerdata: /worker}"
} >"$W/imgtool/map.yml"
{
  echo "version: '2.4'"
  echo "services:"
  for c in db:dbdata:/db:: cache:cachedata:/cache:: api:apidata:/api:dbdata:/db worker:workerdata:/worker:cachedata:/cache web:::apidata:/api proxy:::workerdata:/worker; do
    IFS=: read -r name owns opath uses upath <<<"$c"
    echo "  $name:"
    echo "    image: busybox"
    echo "    network_mode: none"
    echo "    stop_signal: SIGKILL"
    echo "    command: sleep 3600"
    vols=()
    [ -n "$owns" ] && vols+=("$owns:$opath")
    [ -n "$uses" ] && vols+=("$uses:$upath")
    if [ ${#vols[@]} -gt 0 ]; then echo "    volumes:"; for v in "${vols[@]}"; do echo "      - $v"; done; fi
    if [ -n "$uses" ]; then
      dep=$(case $uses in dbdata) echo db ;; cachedata) echo cache ;; apidata) echo api ;; workerdata) echo worker ;; esac)
      echo "    depends_on: [$dep]"
    fi
  done
  echo "volumes: {dbdata: {}, cachedata: {}, apidata: {}, workerdata: {}}"
} >"$W/compose/docker-compose.yml"
echo "six containers, three levels; busybox on a private dockerd (vfs); median of $RUNS, alternating"

reset() { # remove every container and volume
  /usr/bin/docker rm -f $(/usr/bin/docker ps -aq) >/dev/null 2>&1 || true
  /usr/bin/docker volume rm $(/usr/bin/docker volume ls -q) >/dev/null 2>&1 || true
}
step() { # tool, what
  case "$1:$2" in
    imgtool:up) "$IMGTOOL" -q map startup "$W/imgtool/map.yml" ;;
    imgtool:update) "$IMGTOOL" -q map update "$W/imgtool/map.yml" ;;
    compose:up | compose:update) docker-compose -p bench -f "$W/compose/docker-compose.yml" up -d ;;
  esac >/dev/null 2>&1
}
change() { # tool, n: give web another command
  sed -i "s/sleep 36[0-9][0-9]/sleep 3600/g; " "$W/$1/"* 2>/dev/null || true
  if [ "$1" = imgtool ]; then
    awk -v n="$2" '/^web:/{w=1} /^proxy:/{w=0} { if (w && /command/) sub(/sleep 3600/, "sleep " 3600+n); print }' "$W/imgtool/map.yml" >"$W/m" && mv "$W/m" "$W/imgtool/map.yml"
  else
    awk -v n="$2" '/^  web:/{w=1} /^  proxy:/{w=0} { if (w && /command/) sub(/sleep 3600/, "sleep " 3600+n); print }' "$W/compose/docker-compose.yml" >"$W/m" && mv "$W/m" "$W/compose/docker-compose.yml"
  fi
}
timed() { local s e; s=$(date +%s%N); "$@"; e=$(date +%s%N); echo "scale=3; ($e - $s) / 1000000000" | bc; }

for i in $(seq "$RUNS"); do
  if [ $((i % 2)) = 1 ]; then order="imgtool compose"; else order="compose imgtool"; fi
  for t in $order; do
    reset
    change "$t" 0
    timed step "$t" up >>"$W/$t.up"
    timed step "$t" update >>"$W/$t.noop"
    change "$t" "$i"
    timed step "$t" update >>"$W/$t.change"
  done
done
reset
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for what in up noop change; do
  a=$(median <"$W/imgtool.$what"); b=$(median <"$W/compose.$what")
  label=$(case $what in up) echo "startup (cold)" ;; noop) echo "update, nothing changed (warm)" ;; change) echo "update, one changed (web)" ;; esac)
  printf '%-32s imgtool %6.3fs  docker-compose %6.3fs  ratio %.2fx\n' "$label" "$a" "$b" "$(echo "$a / $b" | bc -l)"
done
