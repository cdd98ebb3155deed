#!/usr/bin/env bash
# Builds the fuzz targets with clang (sanitizers on) into build-fuzz/ and runs each for a bounded
# time on seeds copied from ../shared at run time (never committed). Prints executions per target.
#   make fuzz                     FUZZ_SECONDS=60 by default
# Environment: FUZZ_TARGETS (a subset), FUZZ_SEED (a fixed libFuzzer seed, as the CI pass uses),
# FUZZ_RUNS (stop after this many executions, e.g. 1000000, or at FUZZ_SECONDS, whichever first),
# FUZZ_BUILD (the build folder), HEADLAB_CLI (writes the trace reader's seed),
# FUZZ_SHORT=1 (the CI pass: a fresh corpus, seed 1 and a fixed count of executions per target, about
# 20 s each on a 2-core machine, so the pass runs the same inputs on any machine: a crash it finds
# reproduces here, and a pass here passes in CI. FUZZ_SECONDS then only caps a very slow machine).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${HEADLAB_SHARED:-$(cd "$ROOT/.." && pwd)/shared}
SECONDS_EACH=${FUZZ_SECONDS:-60}
B=${FUZZ_BUILD:-$ROOT/build-fuzz}
CC=clang-14 CXX=clang++-14 cmake -S "$ROOT/fuzz" -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$B" -j "$(nproc)"
# Executions per target in the short pass (FUZZ_SHORT=1).
declare -A SHORT_RUNS=(
  [safetensors]=10000 [gguf]=10000 [llama2c]=60000 [tokenizer_json]=30000 [llama2c_tokenizer]=100000
  [sentencepiece]=1200 [gpt2_vocab]=150000 [trace]=250 [hf_config]=50000
)
seed() {  # target, files...
  local d=$B/corpus/$1; shift
  if [ "${FUZZ_SHORT:-0}" = 1 ]; then rm -rf "$d"; fi
  mkdir -p "$d"
  # Named by their path, so the many config.json seeds do not overwrite each other.
  for f in "$@"; do [ -f "$f" ] && cp "$f" "$d/$(basename "$(dirname "$f")")_$(basename "$f")"; done
  echo "$d"
}
M=$SHARED/models
# The reference models the main build's tests write (when they exist): a few-kilobyte GGUF with one
# block of every ggml quantised type, GPT-2's GGUF layout, and a config.json of every family and
# rope_scaling type (small seeds, so the fixed run counts stay well inside the time cap).
REF=${HEADLAB_REFERENCE_DIR:-$ROOT/build/tests/ReferenceModels}
REF_CONFIGS=$(ls "$REF"/{rope_*,qwen2,qwen3,olmo2,gemma,gemma2,gemma3_text,phi3,gpt_neox,gpt2,mistral}/config.json 2>/dev/null | grep -v _edited_ || true)
declare -A SEEDS=(
  [safetensors]="$M/stories260k-hf/model.safetensors"
  [gguf]="$M/stories260k/stories260K.gguf $REF/quants/all_types_seed.gguf $REF/gpt2_gguf/gpt2.gguf"
  [llama2c]="$M/stories260k/stories260K.bin $M/stories260k/stories260K_v1.bin"
  [tokenizer_json]="$M/stories260k-hf/tokenizer.json"
  [llama2c_tokenizer]="$M/stories260k/tok512.bin"
  [sentencepiece]="$M/llama2-tokenizer/tokenizer.model"
  [gpt2_vocab]=""
  [trace]="$ROOT/fuzz/regressions/trace/*.h5"
  [hf_config]="$M/stories260k-hf/config.json $REF_CONFIGS"
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
  touch "$B/.started-$t"
  runs=${FUZZ_RUNS:-}
  fuzz_seed=${FUZZ_SEED:-}
  if [ "${FUZZ_SHORT:-0}" = 1 ]; then runs=${SHORT_RUNS[$t]}; fuzz_seed=${FUZZ_SEED:-1}; fi
  if ASAN_OPTIONS=detect_leaks=0:suppressions=$ROOT/fuzz/asan_suppressions.txt "$B/fuzz_$t" -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 -timeout=60 -max_len=2000000 \
       -artifact_prefix="$B/crash-$t-" ${fuzz_seed:+-seed=$fuzz_seed} ${runs:+-runs=$runs} "$dir" >"$log" 2>&1; then
    echo "fuzz_$t: $(grep -o 'Done [0-9]* runs' "$log" | tail -1) in $(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o '[0-9]* second' | tail -1)s, no crash"
  else
    echo "fuzz_$t: FOUND A CRASH (see $log and $B/crash-$t-*)"; status=1
    # What a CI log needs to reproduce it: the sanitizer's report and the input, hex-dumped.
    grep -m1 -A14 -E 'ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|runtime error:|==ERROR' "$log" || tail -20 "$log"
    find "$B" -maxdepth 1 -name "crash-$t-*" -newer "$B/.started-$t" -print | while read -r f; do
      echo "input $f:"; head -c 2048 "$f" | od -A d -c | head -40
    done
  fi
done
exit $status
