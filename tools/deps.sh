#!/usr/bin/env bash
# Installs the Debian packages corio needs that are missing. Usage: tools/deps.sh [extra packages]
# Uses sudo when not root. Nothing is downloaded beyond Debian's archive.
set -euo pipefail
packages=(g++ meson ninja-build cmake pkg-config liburing-dev libc-ares-dev libasio-dev libfmt-dev doctest-dev
          libbenchmark-dev curl redis-tools gdb python3-prometheus-client "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -ne 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
