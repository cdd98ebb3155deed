#!/usr/bin/env bash
# The CUDA check of the core runtime: random models of each architecture on CPU and on CUDA must
# agree (forward, KV-cache generation, generation from embeddings, batched and attribution patching,
# grown RoPE tables, click-to-ablate recompute). Builds tests/cuda/cuda_check.cpp and the core
# sources it needs against the installed PyTorch's libtorch (pip wheels ship its headers and
# libraries) with g++, then runs it. Needs nlohmann/json.hpp: NLOHMANN_INCLUDE (default /usr/include).
# With the device tool: copy /usr/include/nlohmann into an ignored folder (e.g. .gpu/include), carry it
# and run `NLOHMANN_INCLUDE=.gpu/include bash tests/cuda/run.sh`.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUTDIR=${CUDA_CHECK_BUILD:-/tmp/headlab-cuda-check}
if [ -n "${TORCH_INCLUDE:-}" ]; then  # another libtorch (e.g. Debian's, to check that it links: TORCH_INCLUDE=/usr/include ...)
  INC=$TORCH_INCLUDE LIB=$TORCH_LIB ABI=${TORCH_ABI:-1}
else
  read -r INC LIB ABI < <(python3 -c "import torch, os; d = os.path.dirname(torch.__file__); print(d + '/include', d + '/lib', int(torch._C._GLIBCXX_USE_CXX11_ABI))")
  echo "torch $(python3 -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)'), $(g++ --version | head -1)"
fi
mkdir -p "$OUTDIR/generated"
# The probes' built-in prompt set, as plugins/CMakeLists.txt generates it.
{ printf 'R"HLPROMPTS('; cat resources/prompts/sinks.txt; printf ')HLPROMPTS"\n'; } > "$OUTDIR/generated/sinks_prompts.inc"
# The runtime sources (libtorch and nlohmann-json only), as core/sources.cmake lists them.
SRC=$(sed -n '/^set(HEADLAB_CORE_RUNTIME_SOURCES/,/^)/p' core/sources.cmake | grep -o 'src/[a-z_/0-9]*\.cpp' | sed 's|^src/||; s|\.cpp$||')
[ -n "$SRC" ] || { echo "core/sources.cmake: no HEADLAB_CORE_RUNTIME_SOURCES list found" >&2; exit 1; }
# The probe folders, as plugins/CMakeLists.txt finds them, and their generated registration calls.
PROBE_FOLDERS=$(cd plugins && ls */*_probe*.cpp | xargs -n1 dirname | sort -u)
PROBE_SOURCES=$(cd plugins && for d in $PROBE_FOLDERS; do ls "$d"/*.cpp | sort; done)
{ for d in $PROBE_FOLDERS; do echo "void registerProbes_$d(ProbeRegistry& r);"; done
  echo "inline void registerEveryProbeFolder(ProbeRegistry& r) {"
  for d in $PROBE_FOLDERS; do echo "  registerProbes_$d(r);"; done
  echo "}"; } > "$OUTDIR/generated/probe_registrations.inc"
PLUGINS="registry.cpp common/probe_util.cpp $PROBE_SOURCES"
pids=()
JOBS=${JOBS:-$(nproc)}
throttle() { while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done; }  # at most JOBS compilers at once
for f in $SRC; do
  throttle
  g++ -std=c++17 -O1 -D_GLIBCXX_USE_CXX11_ABI="$ABI" -Icore/include -Icore/src -I"${NLOHMANN_INCLUDE:-/usr/include}" -I"$INC" \
    -I"$INC/torch/csrc/api/include" -c "core/src/$f.cpp" -o "$OUTDIR/${f//\//_}.o" & pids+=($!)
done
for f in $PLUGINS; do
  throttle
  g++ -std=c++17 -O1 -D_GLIBCXX_USE_CXX11_ABI="$ABI" -Icore/include -Iplugins/include -I"$OUTDIR/generated" -I"${NLOHMANN_INCLUDE:-/usr/include}" \
    -I"$INC" -I"$INC/torch/csrc/api/include" -c "plugins/$f" -o "$OUTDIR/plugin_$(basename "$f" .cpp).o" & pids+=($!)
done
g++ -std=c++17 -O1 -D_GLIBCXX_USE_CXX11_ABI="$ABI" -Icore/include -Icore/src -Iplugins/include -I"${NLOHMANN_INCLUDE:-/usr/include}" -I"$INC" \
  -I"$INC/torch/csrc/api/include" -c tests/cuda/cuda_check.cpp -o "$OUTDIR/cuda_check.o" & pids+=($!)
for p in "${pids[@]}"; do wait "$p"; done
g++ -o "$OUTDIR/cuda_check" "$OUTDIR"/*.o -L"$LIB" -Wl,-rpath,"$LIB" -Wl,--no-as-needed ${CUDA_LIBS--ltorch_cuda -lc10_cuda} -ltorch -ltorch_cpu -lc10
# With a LLaVA folder (LLAVA_FOLDER) the vision-language path and probes are checked too, and with a
# llama2.c checkpoint and tokenizer (CHECKPOINT, TOKENIZER: stories260K) every text probe.
"$OUTDIR/cuda_check" ${LLAVA_FOLDER:+"$LLAVA_FOLDER"} ${CHECKPOINT:+"$CHECKPOINT" "$TOKENIZER"}
