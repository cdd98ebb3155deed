#!/usr/bin/env bash
# Installs every Debian bookworm package HeadLab needs to build, test and run.
# Idempotent: packages already present are skipped without touching apt.
# Works as root or through sudo.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config git
  # runtime stack fixed by the customer
  libtorch-dev libopenblas0-openmp
  qt6-base-dev qt6-base-dev-tools libqcustomplot-dev libqcustomplot2.1-qt6 libgl-dev
  libhdf5-dev
  # parsing helpers
  nlohmann-json3-dev libpcre2-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  xvfb xauth poppler-utils
  # fuzzing (libFuzzer and the sanitizers' runtimes come with clang's runtime package)
  clang-14 libclang-rt-14-dev
  python3 python3-h5py python3-nltk python3-numpy python3-torch
  # the single-node Slurm cluster of tests/scripts/slurm_test.sh (issue #21)
  slurm-wlm munge
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "error: install-deps needs root or sudo to install: ${missing[*]}" >&2; exit 1
  fi
fi

echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
