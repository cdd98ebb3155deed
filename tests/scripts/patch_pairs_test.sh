#!/usr/bin/env bash
# patch --pairs: the mean over a pairs file equals the mean of the same sweeps run one pair at a time,
# per-pair metrics match, position sweeps refuse pairs of different lengths, a bad line is named.
set -eu
CLI=$1
SRC=$2
SHARED=${HEADLAB_SHARED:-$(cd "$SRC/.." && pwd)/shared}
M=$SHARED/models/stories260k/stories260K.gguf
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/pairs.jsonl" <<'PAIRS'
{"clean": "Lily had a red ball. Lily gave the ball to", "corrupted": "Tim had a red ball. Tim gave the ball to", "answer": "#317", "wrong": "#274"}
{"clean": "The cat sat on the mat. The cat was", "corrupted": "The dog sat on the mat. The dog was", "answer": "#425", "wrong": "#368"}

{"clean": "Ben saw a little bird. Ben gave it to", "corrupted": "Sam saw a little bird. Sam gave it to", "answer": "#392", "wrong": "#412"}
PAIRS
"$CLI" patch --model "$M" --pairs "$tmp/pairs.jsonl" --sweep heads --json > "$tmp/mean.json" 2>/dev/null
/usr/bin/python3 - "$CLI" "$M" "$tmp" <<'PY'
import json, subprocess, sys
cli, model, d = sys.argv[1:4]
j = json.load(open(d + "/mean.json"))
pairs = [json.loads(l) for l in open(d + "/pairs.jsonl") if l.strip()]
assert j["pairs"] == 3 and j["shape"] == [5, 8] and j["axes"] == ["layer", "head"], j["shape"]
assert [p["line"] for p in j["per_pair"]] == [1, 2, 4]
singles = []
for p in pairs:
    out = subprocess.run([cli, "patch", "--model", model, "--clean", p["clean"], "--corrupted", p["corrupted"], "--answer", p["answer"],
                          "--wrong", p["wrong"], "--sweep", "heads", "--json"], capture_output=True, text=True, check=True).stdout
    singles.append(json.loads(out))
for s, pp in zip(singles, j["per_pair"]):
    assert abs(s["clean_metric"] - pp["clean_metric"]) < 1e-9 and abs(s["corrupted_metric"] - pp["corrupted_metric"]) < 1e-9
mean = [sum(s["values"][k] for s in singles) / 3 for k in range(40)]
assert max(abs(a - b) for a, b in zip(mean, j["mean"])) < 1e-6, "mean over pairs"
assert all(v >= 0 for v in j["std"]) and max(j["std"]) > 0
print("ok   patch --pairs: mean and per-pair metrics equal three single runs")
PY
# Position sweeps average positions: pairs of different lengths are refused, naming the line.
err=$("$CLI" patch --model "$M" --pairs "$tmp/pairs.jsonl" --sweep resid-pos 2>&1 >/dev/null) && { echo "FAIL mixed lengths accepted"; exit 1; }
[[ "$err" == *"pairs.jsonl:2:"*"need one length"* ]] || { echo "FAIL mixed lengths: $err"; exit 1; }
echo '{"clean": "a", "corrupted": "b", "answer": "#1"}' > "$tmp/bad.jsonl"
err=$("$CLI" patch --model "$M" --pairs "$tmp/bad.jsonl" --sweep heads 2>&1 >/dev/null) && { echo "FAIL bad line accepted"; exit 1; }
[[ "$err" == *"bad.jsonl:1: missing string 'wrong'"* ]] || { echo "FAIL bad line: $err"; exit 1; }
echo "ok   patch --pairs refuses mixed lengths for position sweeps and names a bad line"

# A model without a tokenizer patches prompts given as ids (--clean-ids, --corrupted-ids, --answer #id):
# the same grid as the text prompts on the same weights with the tokenizer.
HF=$SHARED/models/stories260k-hf
mkdir "$tmp/notok" && cp "$HF/config.json" "$HF/model.safetensors" "$tmp/notok/"
clean=$("$CLI" tokenize --model "$HF" --text "Lily had a red ball. Lily gave the ball to" | tr ' ' ',')
corrupted=$("$CLI" tokenize --model "$HF" --text "Tim had a red ball. Tim gave the ball to" | tr ' ' ',')
"$CLI" patch --model "$tmp/notok" --clean-ids "$clean" --corrupted-ids "$corrupted" --answer "#317" --wrong "#274" --sweep heads --json > "$tmp/ids.json" 2>/dev/null
"$CLI" patch --model "$HF" --clean "Lily had a red ball. Lily gave the ball to" --corrupted "Tim had a red ball. Tim gave the ball to" \
  --answer "#317" --wrong "#274" --sweep heads --json > "$tmp/text.json" 2>/dev/null
/usr/bin/python3 - "$tmp" <<'PY'
import json, sys
a, b = (json.load(open(sys.argv[1] + f)) for f in ("/ids.json", "/text.json"))
assert a["values"] == b["values"] and a["clean_metric"] == b["clean_metric"], "ids and text prompts must patch alike"
assert a["pos_labels"][0] == "#1", a["pos_labels"][:3]
print("ok   patch on a model without a tokenizer, prompts as ids")
PY
err=$("$CLI" patch --model "$tmp/notok" --clean-ids "$clean" --corrupted-ids "$corrupted" --answer " Lily" --wrong "#274" 2>&1 >/dev/null) && { echo "FAIL a text answer without a tokenizer"; exit 1; }
[[ "$err" == *"give --answer as a token id"* ]] || { echo "FAIL text answer without a tokenizer: $err"; exit 1; }
