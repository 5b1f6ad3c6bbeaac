#!/usr/bin/env bash
# Runs the whole test suite on a Debian machine: installs the real tools the tests talk to
# (a registry server, skopeo, umoci, podman, runc, buildah, busybox, Docker Engine: tests start
# their own private dockerd) and Go's archive/tar test
# archives (golang-1.19-src, with bzip2) and Go itself (golang-go: a test builds a layer with Go's
# archive/tar writer), then `cargo test`. Each test
# that needs a registry starts its own on 127.0.0.1 and stops it when done.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(docker-registry apache2-utils busybox-static skopeo umoci openssl runc podman buildah docker.io golang-1.19-src golang-go bzip2)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -q -- -D warnings
cargo test --workspace --locked "$@"
