#!/usr/bin/env bash
# Builds the fuzz targets with clang (sanitizers on) into build-fuzz/ and runs each for a bounded
# time on seeds copied from ../shared at run time (never committed). Prints executions per target.
#   scripts: make fuzz            FUZZ_SECONDS=60 by default
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${HEADLAB_SHARED:-$(cd "$ROOT/.." && pwd)/shared}
SECONDS_EACH=${FUZZ_SECONDS:-60}
B=$ROOT/build-fuzz
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
)
status=0
for t in safetensors gguf llama2c tokenizer_json llama2c_tokenizer sentencepiece gpt2_vocab; do
  dir=$(seed "$t" ${SEEDS[$t]})
  if [ "$t" = gpt2_vocab ]; then printf '{"a": 0, "b": 1, "ab": 2}\0#version: 0.2\na b\n' > "$dir/small"; fi
  log=$B/$t.log
  if ASAN_OPTIONS=detect_leaks=0 "$B/fuzz_$t" -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 -max_len=2000000 \
       -artifact_prefix="$B/crash-$t-" "$dir" >"$log" 2>&1; then
    echo "fuzz_$t: $(grep -o 'Done [0-9]* runs' "$log" | tail -1), no crash"
  else
    echo "fuzz_$t: FOUND A CRASH (see $log and $B/crash-$t-*)"; status=1
  fi
done
exit $status
