#!/usr/bin/env bash
# Records what headlab-cli prints for a fixed set of commands on the real models, the demo model and
# a random GPT-2-architecture model, one file per command, so that a refactor can be checked for
# byte-identical behaviour: run it before and after, then `diff -r BEFORE AFTER`.
#   scripts/cli_outputs.sh CLI OUT_DIR [REFERENCE_DIR]
# REFERENCE_DIR: the ReferenceModels fixture folder (build/tests/ReferenceModels), for the random GPT-2.
set -uo pipefail
CLI=$1 OUT=$2 REF=${3:-}
SHARED=${HEADLAB_SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
mkdir -p "$OUT"
run() {  # run NAME ARGS...: stdout and stderr and the exit status into OUT/NAME
  local name=$1; shift
  { "$CLI" "$@" 2>&1; echo "exit $?"; } > "$OUT/$name.txt"
}
models=("stories=$SHARED/models/stories260k/stories260K.bin" "stories_gguf=$SHARED/models/stories260k/stories260K.gguf"
        "stories_hf=$SHARED/models/stories260k-hf" "nanosort=$SHARED/models/nanosort-gpt2" "demo=demo")
[ -n "$REF" ] && models+=("gpt2_random=$REF/gpt2")
for m in "${models[@]}"; do
  name=${m%%=*} path=${m#*=}
  run "$name.info" info --model "$path"
  case $name in
    nanosort) prompt="0 2 1 0 1 2" answer=" 0" wrong=" 2" corrupt="0 2 1 0 1 0";;
    gpt2_random) continue;;
    demo) prompt="the secret code of anna is 4 7 2 . the code of anna is" answer=" 4" wrong=" 7"
          corrupt="the secret code of anna is 7 4 2 . the code of anna is";;
    *) prompt="Once upon a time there was a little girl" answer="#280" wrong="#281" corrupt="Once upon a time there was a little boy";;
  esac
  run "$name.tokenize" tokenize --model "$path" --text "$prompt"
  run "$name.generate" generate --model "$path" --prompt "$prompt" --max-tokens 12 --greedy
  run "$name.sinks" probe sinks --model "$path" --json
  run "$name.induction" probe induction --model "$path" --json
  run "$name.patch_heads" patch --model "$path" --clean "$prompt" --corrupted "$corrupt" --answer "$answer" --wrong "$wrong" --sweep heads --json
  run "$name.patch_resid" patch --model "$path" --clean "$prompt" --corrupted "$corrupt" --answer "$answer" --wrong "$wrong" --sweep resid-pos --method both --json
  run "$name.patch_headpos" patch --model "$path" --clean "$prompt" --corrupted "$corrupt" --answer "$answer" --wrong "$wrong" --sweep head-pos --method both --json
  run "$name.patch_layerpos" patch --model "$path" --clean "$prompt" --corrupted "$corrupt" --answer "$answer" --wrong "$wrong" --sweep layer-pos --method attribution --json
  run "$name.patch_noising" patch --model "$path" --clean "$prompt" --corrupted "$corrupt" --answer "$answer" --wrong "$wrong" --sweep heads --noising --json
  run "$name.patch_path" patch --model "$path" --clean "$prompt" --corrupted "$corrupt" --answer "$answer" --wrong "$wrong" --sweep path --receiver 1.0 --input v --json
done
echo "wrote $(ls "$OUT" | wc -l) outputs to $OUT"
