#!/usr/bin/env bash
# The GPU check of issue #24, for a machine with a CUDA GPU and PyTorch but no Qt, HDF5 or PCRE2
# (the device tool's machine): builds the core runtime, the CUDA agreement check (tests/cuda) and the
# GPU benchmarks (bench/gpu_bench.cpp) with g++ against the installed PyTorch's libtorch, runs them,
# and writes OUT/gpu-check.log and OUT/table.md (OUT: first argument, default docs/gpu).
#   NLOHMANN_INCLUDE=DIR  folder holding nlohmann/json.hpp (default /usr/include; carry a copy to the
#                         GPU machine, e.g. .gpu/include, when it has none)
#   GPU_CHECK_SECONDS=N   stop after N seconds (default 450: the issue asks for under 8 minutes)
#   GPU_BENCH_ARGS        the benchmark's options (default --device both)
#   TORCH_INCLUDE, TORCH_LIB, CUDA_LIBS= another libtorch, as tests/cuda/run.sh takes them (a CPU-only
#                         dry run here: TORCH_INCLUDE=/usr/include TORCH_LIB=/usr/lib/x86_64-linux-gnu CUDA_LIBS=)
# What needs Qt (the window, headlab-cli's image reading and report figures) and HDF5 (traces) is not
# built here: the README's "CUDA" section says which tests that leaves out.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/gpu}
mkdir -p "$OUT"
LOG="$OUT/gpu-check.log"
BUILD=${GPU_CHECK_BUILD:-/tmp/headlab-gpu-check}
LIMIT=${GPU_CHECK_SECONDS:-450}
start=$(date +%s)
left() { echo $(( LIMIT - ($(date +%s) - start) )); }
{
  echo "# headlab gpu-check, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | sed 's/^/gpu: /'
  # Build and run the CPU/CUDA agreement check (it compiles the runtime objects the benchmark reuses).
  export CUDA_CHECK_BUILD=$BUILD
  echo "== tests/cuda/run.sh"
  timeout "$(left)" bash tests/cuda/run.sh
  echo "exit $?"
  if [ -n "${TORCH_INCLUDE:-}" ]; then INC=$TORCH_INCLUDE LIB=$TORCH_LIB ABI=${TORCH_ABI:-1}; else
  read -r INC LIB ABI < <(python3 -c "import torch, os; d = os.path.dirname(torch.__file__); print(d + '/include', d + '/lib', int(torch._C._GLIBCXX_USE_CXX11_ABI))"); fi
  echo "== bench/gpu_bench.cpp"
  g++ -std=c++17 -O2 -D_GLIBCXX_USE_CXX11_ABI="$ABI" -Icore/include -Ibench -I"${NLOHMANN_INCLUDE:-/usr/include}" -I"$INC" \
    -I"$INC/torch/csrc/api/include" -c bench/gpu_bench.cpp -o "$BUILD/gpu_bench.o" &&
    g++ -o "$BUILD/headlab-gpu-bench" "$BUILD/gpu_bench.o" $(ls "$BUILD"/*.o | grep -v -e cuda_check.o -e gpu_bench.o -e plugin_) \
      -L"$LIB" -Wl,-rpath,"$LIB" -Wl,--no-as-needed ${CUDA_LIBS--ltorch_cuda -lc10_cuda} -ltorch -ltorch_cpu -lc10
  echo "exit $?"
  timeout "$(left)" "$BUILD/headlab-gpu-bench" ${GPU_BENCH_ARGS:---device both} > "$OUT/table.md"
  echo "exit $?"
  echo "finished in $(( $(date +%s) - start )) s"
} 2>&1 | tee "$LOG"
cat "$OUT/table.md"
