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
  [hf_config]="$M/stories260k-hf/config.json"
)
# The config target loads its fuzzed config.json against real weights (a scratch copy of these).
export HEADLAB_FUZZ_WEIGHTS=$M/stories260k-hf/model.safetensors
# A small real trace as the seed of the trace reader, written by the main build's CLI when it exists.
CLI=${HEADLAB_CLI:-$ROOT/build/app/headlab-cli}
trace_seed() {
  [ -x "$CLI" ] || return 0
  "$CLI" capture --model "$M/stories260k/stories260K.bin" --prompt "Once upon a time" \
    --hooks "blocks.0.attn.hook_pattern" --out "$1/stories260k_pattern.h5" --force >/dev/null 2>&1 || true
}
status=0
TARGETS=${FUZZ_TARGETS:-safetensors gguf llama2c tokenizer_json llama2c_tokenizer sentencepiece gpt2_vocab trace hf_config}
for t in $TARGETS; do
  dir=$(seed "$t" ${SEEDS[$t]})
  if [ "$t" = trace ]; then trace_seed "$dir"; fi
  if [ "$t" = gpt2_vocab ]; then printf '{"a": 0, "b": 1, "ab": 2}\0#version: 0.2\na b\n' > "$dir/small"; fi
  if [ "$t" = hf_config ]; then
    # The sharded layout (config, NUL, index) and a LLaVA config, next to stories260K's own config.
    { cat "$M/stories260k-hf/config.json"; printf '\0{"weight_map": {"tok_embeddings.weight": "shard.safetensors"}}'; } > "$dir/sharded"
    printf '%s' '{"model_type": "llava", "image_token_index": 63, "vision_feature_layer": -2, "vision_feature_select_strategy": "default", "text_config": {"model_type": "llama", "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 5, "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 512}, "vision_config": {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 12, "patch_size": 4}}' > "$dir/llava"
  fi
  log=$B/$t.log
  if ASAN_OPTIONS=detect_leaks=0:suppressions=$ROOT/fuzz/asan_suppressions.txt "$B/fuzz_$t" -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 -timeout=60 -max_len=2000000 \
       -artifact_prefix="$B/crash-$t-" ${FUZZ_SEED:+-seed=$FUZZ_SEED} ${FUZZ_RUNS:+-runs=$FUZZ_RUNS} "$dir" >"$log" 2>&1; then
    echo "fuzz_$t: $(grep -o 'Done [0-9]* runs' "$log" | tail -1), no crash"
  else
    echo "fuzz_$t: FOUND A CRASH (see $log and $B/crash-$t-*)"; status=1
  fi
done
exit $status
