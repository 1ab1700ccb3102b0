#!/usr/bin/env bash
# Installs the Debian 12 packages blockcast's build, tests, benchmarks and tools need,
# skipping those already installed. Sourced by scripts/test.sh and scripts/demo.sh.
blockcast_packages=(
  cmake ninja-build g++ make
  libxsimd-dev libeigen3-dev            # core and PTQ headers
  catch2 libbenchmark-dev               # tests and benchmarks
  nlohmann-json3-dev libcli11-dev zlib1g-dev  # I/O and the command-line tool
  dataset-fashion-mnist                 # the demo's test images (and its float-accuracy test)
  python3-torch python3-numpy           # tools/collect_stats.py, checked against C++ by the tests
  libopenblas0-pthread                  # their BLAS: the reference one made that test 65 s slower
)

install_deps() {
  local missing=()
  for p in "${blockcast_packages[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "blockcast: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
