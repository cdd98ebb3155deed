#!/usr/bin/env bash
# Builds the fuzz targets with clang (sanitizers on) into build-fuzz/ and runs each for a bounded
# time on seeds copied from ../shared at run time (never committed). Prints executions per target.
#   make fuzz                     FUZZ_SECONDS=60 by default
# Environment: FUZZ_TARGETS (a subset), FUZZ_SEED (a fixed libFuzzer seed, as the CI pass uses),
# FUZZ_RUNS (stop after this many executions, e.g. 1000000, or at FUZZ_SECONDS, whichever first),
# FUZZ_BUILD (the build folder), HEADLAB_CLI (writes the trace reader's seed).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${HEADLAB_SHARED:-$(cd "$ROOT/.." && pwd)/shared}
SECONDS_EACH=${FUZZ_SECONDS:-60}
B=${FUZZ_BUILD:-$ROOT/build-fuzz}
CC=clang-14 CXX=clang++-14 cmake -S "$ROOT/fuzz" -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$B" -j "$(nproc)"
seed() {  # target, files...
  local d=$B/corpus/$1; shift
  mkdir -p "$d"
  for f in "$@"; do [ -f "$f" ] && cp "$f" "$d/"; done
  echo "$d"
}
M=$SHARED/models
declare -A SEEDS=(
  [safetensors]="$M/stories260k-hf/model.safetensors"
  [gguf]="$M/stories260k/stories260K.gguf"
  [llama2c]="$M/stories260k/stories260K.bin $M/stories260k/stories260K_v1.bin"
  [tokenizer_json]="$M/stories260k-hf/tokenizer.json"
  [llama2c_tokenizer]="$M/stories260k/tok512.bin"
  [sentencepiece]="$M/llama2-tokenizer/tokenizer.model"
  [gpt2_vocab]=""
  [trace]="$ROOT/fuzz/regressions/trace/*.h5"
)
# A small real trace as the seed of the trace reader, written by the main build's CLI when it exists.
CLI=${HEADLAB_CLI:-$ROOT/build/app/headlab-cli}
trace_seed() {
  [ -x "$CLI" ] || return 0
  "$CLI" capture --model "$M/stories260k/stories260K.bin" --prompt "Once upon a time" \
    --hooks "blocks.0.attn.hook_pattern" --out "$1/stories260k_pattern.h5" --force >/dev/null 2>&1 || true
}
status=0
TARGETS=${FUZZ_TARGETS:-safetensors gguf llama2c tokenizer_json llama2c_tokenizer sentencepiece gpt2_vocab trace}
for t in $TARGETS; do
  dir=$(seed "$t" ${SEEDS[$t]})
  if [ "$t" = trace ]; then trace_seed "$dir"; fi
  if [ "$t" = gpt2_vocab ]; then printf '{"a": 0, "b": 1, "ab": 2}\0#version: 0.2\na b\n' > "$dir/small"; fi
  log=$B/$t.log
  if ASAN_OPTIONS=detect_leaks=0:suppressions=$ROOT/fuzz/asan_suppressions.txt "$B/fuzz_$t" -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 -timeout=60 -max_len=2000000 \
       -artifact_prefix="$B/crash-$t-" ${FUZZ_SEED:+-seed=$FUZZ_SEED} ${FUZZ_RUNS:+-runs=$FUZZ_RUNS} "$dir" >"$log" 2>&1; then
    echo "fuzz_$t: $(grep -o 'Done [0-9]* runs' "$log" | tail -1), no crash"
  else
    echo "fuzz_$t: FOUND A CRASH (see $log and $B/crash-$t-*)"; status=1
  fi
done
exit $status
