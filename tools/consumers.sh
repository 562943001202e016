#!/usr/bin/env bash
# Builds a small program against corio the five ways a user consumes it (a Meson subproject, a
# [wrap-file] over a `meson dist` tarball, pkg-config static, pkg-config shared, CMake find_package
# on both installs) and runs each: test/consumers/run.sh, in BUILD_DIR (default build-consumers).
# `meson dist` packs the last commit. About 4 minutes on this 2-core machine.
# Usage: tools/consumers.sh [BUILD_DIR]. Installs what is missing first (tools/deps.sh: cmake, pkg-config).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh
exec bash test/consumers/run.sh "${1:-build-consumers}"
