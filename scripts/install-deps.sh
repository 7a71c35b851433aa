#!/usr/bin/env bash
# Installs the Debian packages keel needs, only those that are missing.
# Idempotent: a second run installs nothing and exits 0. `--fuzz` adds clang (with libFuzzer)
# for `make fuzz`.
set -euo pipefail

packages=(
  cmake ninja-build g++ make pkg-config
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev libboost-system1.81-dev
  libssl-dev libfmt-dev libspdlog-dev libcli11-dev libtomlplusplus-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  librocksdb-dev liblmdb-dev  # keel-bench store: the history tier's candidate stores
  curl jq  # the README tour
)
if [ "${1:-}" = --fuzz ]; then packages+=(clang libclang-rt-14-dev); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
