#!/usr/bin/env bash
# The CLI contract of PRODUCT.md §6 on the real stories260K files.
set -u
CLI=$1
SRC=$2
SHARED=${HEADLAB_SHARED:-$(cd "$SRC/.." && pwd)/shared}
M=$SHARED/models/stories260k
fail=0
check() { if [ "$2" != "$3" ]; then echo "FAIL $1: expected [$3] got [$2]"; fail=1; else echo "ok   $1"; fi; }

v=$("$CLI" --version); check "--version" "${v%% *}" "headlab-cli"
"$CLI" --help | grep -q "generate" || { echo "FAIL --help lists generate"; fail=1; }
for c in info tokenize generate capture probe patch demo; do
  "$CLI" --help | grep -q "^  $c" || { echo "FAIL --help lists $c"; fail=1; }
done

arch=$("$CLI" info --model "$M/stories260K.gguf" | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["arch"], d["n_layers"], d["n_heads"], d["n_kv_heads"], d["d_model"], d["d_head"], d["d_vocab"])')
check "info" "$arch" "llama 5 8 4 64 8 512"

ids=$("$CLI" tokenize --tokenizer "$M/tok512.bin" --text "Once upon a time")
check "tokenize" "$ids" "$("$CLI" tokenize --model "$M/stories260K.gguf" --text "Once upon a time")"
nobos=$("$CLI" tokenize --tokenizer "$M/tok512.bin" --text "Once upon a time" --no-bos)
check "tokenize --no-bos" "1 $nobos" "$ids"

ref=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stories260k_greedy_64"]["text"])' "$SHARED/testdata/stories260k-reference.json")
out=$("$CLI" generate --model "$M/stories260K.bin" --tokenizer "$M/tok512.bin" --prompt "Once upon a time" --greedy --steps 64)
check "generate --steps 64 (llama2.c -n 64)" "$out" "$ref"

# lens and dla: the last layer's lens is the model's next token; the attribution's parts add up to the logit.
PYTHON=/usr/bin/python3
lens=$("$CLI" lens --model "$M/stories260K.bin" --prompt "Once upon a time, there was a little" --json)
echo "$lens" | $PYTHON -c 'import json,sys; j=json.load(sys.stdin); top=j["layers"][-1]["positions"][0]["top"][0]; assert top["id"] == 298 and top["prob"] > 0.5, top' \
  || { echo "FAIL lens: the last layer predicts the next token"; fail=1; }
dla=$("$CLI" dla --model "$M/stories260K.bin" --prompt "Once upon a time, there was a little" --token "#315" --wrong "#261" --json)
echo "$dla" | $PYTHON -c 'import json,sys; j=json.load(sys.stdin); t=j["embed"]+sum(j["heads"]["values"])+sum(j["mlps"])+j["biases"]; assert abs(t-j["logit"]) < 1e-3, (t, j["logit"])' \
  || { echo "FAIL dla: parts add up to the logit difference"; fail=1; }
# --edit: interventions from the command line change the generation; a bad one is a one-line error.
plain=$("$CLI" generate --model "$M/stories260K.bin" --prompt "Once upon a time" --greedy --max-tokens 20)
edited=$("$CLI" generate --model "$M/stories260K.bin" --prompt "Once upon a time" --greedy --max-tokens 20 --edit 'zero:1.*;scale:3.2:alpha=2')
[ -n "$edited" ] && [ "$plain" != "$edited" ] || { echo "FAIL --edit zero/scale changes the generation"; fail=1; }
err=$("$CLI" generate --model "$M/stories260K.bin" --prompt "Once" --edit 'zero:9.1' 2>&1 >/dev/null); rc=$?
[ $rc -ne 0 ] && [ "$err" = "error: edit 'zero:9.1': layer 9 out of range [0, 5)" ] || { echo "FAIL --edit bad layer: rc=$rc '$err'"; fail=1; }
err=$("$CLI" generate --model "$M/stories260K.bin" --prompt "" 2>&1 >/dev/null); rc=$?
check "empty prompt exit" "$rc" "1"
check "empty prompt message" "$err" "error: empty prompt (--prompt \"\")"
err=$("$CLI" info --model /nonexistent/model.bin 2>&1 >/dev/null); rc=$?
[ $rc -ne 0 ] && [[ "$err" == error:*nonexistent* ]] && echo "ok   missing model" || { echo "FAIL missing model: $rc $err"; fail=1; }
# patch: a head sweep and a residual x position sweep on stories260K give finite, normalised grids.
P=(--model "$M/stories260K.bin" --clean "Lily had a red ball. Lily gave the ball to" --corrupted "Tim had a red ball. Tim gave the ball to" --answer " Lily" --wrong " Tim")
for sweep in heads resid-pos; do
  "$CLI" patch "${P[@]}" --sweep $sweep --method both --json 2>/dev/null > "${TMPDIR:-/tmp}/patch_$$.json" || { echo "FAIL patch $sweep exited non-zero"; fail=1; }
  /usr/bin/python3 - "${TMPDIR:-/tmp}/patch_$$.json" $sweep <<'PY' || fail=1
import json, math, sys
j = json.load(open(sys.argv[1]))
shape = {"heads": [5, 8], "resid-pos": [5, 17]}[sys.argv[2]]
assert j["shape"] == shape, j["shape"]
assert len(j["values"]) == shape[0] * shape[1]
assert all(math.isfinite(v) for v in j["values"])
assert j["normalisation"] == "0 = corrupted run, 1 = clean run"
assert j["clean_metric"] != j["corrupted_metric"]
c = j["attribution_vs_exact_correlation"]
print(f"ok   patch {sys.argv[2]}: {len(j['values'])} finite values, attribution vs exact r = {c:.3f}")
PY
done
rm -f "${TMPDIR:-/tmp}/patch_$$.json"
out=$("$CLI" patch "${P[@]}" --sweep path --receiver 4.2 --input v --json 2>/dev/null | /usr/bin/python3 -c 'import json,sys; j=json.load(sys.stdin); v=j["values"]; print(j["method"], j["shape"], sum(x is None for x in v))')
check "path patching sender grid (layer 4 heads are not senders)" "$out" "path-v [5, 8] 8"
# The text summary ranks only computed cells: the receiver's own layer (NaN) never comes first.
out=$("$CLI" patch "${P[@]}" --sweep path --receiver 4.2 --input v 2>/dev/null | sed -n 2p)
[[ "$out" == *"sender_layer "[0-3]","* ]] && [[ "$out" != *nan* ]] && echo "ok   path summary ranks senders only" || { echo "FAIL path summary: $out"; fail=1; }
err=$("$CLI" patch "${P[@]}" --corrupted "Tim had a ball" --sweep heads 2>&1 >/dev/null); rc=$?
[ $rc -ne 0 ] && [[ "$err" == *"patching needs equal lengths"* ]] && echo "ok   mismatched lengths" || { echo "FAIL mismatched lengths: $err"; fail=1; }

# probe: every built-in probe runs on stories260K and prints JSON with its parameters.
for probe in sinks hidden-sinks massive streaming induction retrieval; do
  "$CLI" probe $probe --model "$M/stories260K.gguf" --json 2>/dev/null > "${TMPDIR:-/tmp}/probe_$$.json" || { echo "FAIL probe $probe exited non-zero"; fail=1; continue; }
  /usr/bin/python3 - "${TMPDIR:-/tmp}/probe_$$.json" $probe <<'PY' || fail=1
import json, math, sys
j = json.load(open(sys.argv[1])); name = sys.argv[2]
assert j["probe"] == name and isinstance(j["params"], dict)
if "grid" in j:
    g = j["grid"]
    assert (g["layers"], g["heads"]) == (5, 8) and len(g["values"]) == 40 and all(math.isfinite(v) for v in g["values"])
if name == "sinks":
    assert j["params"]["eps"] == 0.3 and j["params"]["max_tokens"] == 64
    assert 0 < max(j["grid"]["values"]) <= 1 and len(j["sink_k"]) == 64, len(j["sink_k"])
if name == "retrieval":
    assert j["tests"] == 10 and 0 <= j["niah_accuracy"] <= 1 and j["params"]["head_threshold"] == 0.1
if name == "induction":
    assert len(j["previous_token"]["values"]) == 40 and "best" in j
print(f"ok   probe {name}")
PY
done
rm -f "${TMPDIR:-/tmp}/probe_$$.json"
err=$("$CLI" probe sinks --model "$M/stories260K.gguf" --params '{"epsilon": 1}' 2>&1 >/dev/null); rc=$?
[ $rc -ne 0 ] && [[ "$err" == *"has no parameter 'epsilon'"* ]] && echo "ok   unknown probe parameter" || { echo "FAIL unknown parameter: $err"; fail=1; }

out=$("$CLI" check --model "$M/stories260K.bin" 2>&1); rc=$?
[ $rc -eq 0 ] && [[ "$out" == *"all checks passed"* ]] && [[ "$out" == *"ok    kv_cache"* ]] && echo "ok   check passes on stories260K" || { echo "FAIL check: $out"; fail=1; }

"$CLI" frobnicate >/dev/null 2>&1; rc=$?
[ $rc -ne 0 ] && echo "ok   unknown command exits non-zero" || { echo "FAIL unknown command should exit non-zero"; fail=1; }
exit $fail
