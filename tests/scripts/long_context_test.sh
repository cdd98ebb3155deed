#!/usr/bin/env bash
# Issue #20 from the command line: a 32,768-token prompt on a random LLaMA-shaped model (4 layers x 8
# heads over 2 kv heads, d_model 256, context 131072). capture --heads 3 --rows 30000:30064 returns
# those rows of layer 0's pattern as an independent numpy reference computes them (every key), with
# the process's peak memory under 1.5 GB; a tile of a later layer equals the same cells of an explicit
# capture; the full pattern is refused with the way out; bad ranges are named.
set -eu
CLI=$1
SRC=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
REF="$SRC/tests/scripts/long_context_model.py"
/usr/bin/python3 "$REF" write "$tmp/model" 32768
/usr/bin/python3 - "$CLI" "$tmp" <<'PY'
import resource, subprocess, sys
cli, d = sys.argv[1:3]
subprocess.run([cli, "capture", "--model", d + "/model", "--ids-file", d + "/model/ids.txt", "--hooks", "blocks.0.attn.hook_pattern",
                "--heads", "3", "--rows", "30000:30064", "--out", d + "/rows.h5"], check=True, stdout=subprocess.DEVNULL)
peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print("capture of rows 30000:30064 at 32768 tokens: peak memory %.0f MB" % peak_mb)
assert peak_mb < 1536, "peak memory %.0f MB over 1.5 GB" % peak_mb
PY
/usr/bin/python3 "$REF" check "$tmp/model" "$tmp/rows.h5" 0 3 30000:30064
PYTHONPATH="$SRC/python" /usr/bin/python3 - "$tmp/rows.h5" <<'PY'
import json, sys, h5py, headlab
t = headlab.load(sys.argv[1])
assert t.selection("blocks.0.attn.hook_pattern") == {"heads": [3], "rows": (30000, 30064), "cols": (0, 32768)}, t.selection("blocks.0.attn.hook_pattern")
with h5py.File(sys.argv[1], "r") as f:
    assert json.loads(f.attrs["provenance"])["attention"] == "blockwise"
    assert f["inputs/tokens"].shape == (1, 32768)
PY
# The whole pattern would be 8 x 32768^2 floats: refused before any work, with the way out named.
err=$("$CLI" capture --model "$tmp/model" --ids-file "$tmp/model/ids.txt" --hooks 'blocks.0.attn.hook_pattern' --out "$tmp/all.h5" 2>&1 >/dev/null) && { echo "FAIL full pattern accepted"; exit 1; }
[[ "$err" == *"--heads/--rows/--cols"* && ! -e "$tmp/all.h5" ]] || { echo "FAIL full pattern: $err"; exit 1; }
err=$("$CLI" capture --model "$tmp/model" --ids-file "$tmp/model/ids.txt" --hooks 'blocks.0.attn.hook_pattern' --rows 30000:40000 --out "$tmp/bad.h5" 2>&1 >/dev/null) && { echo "FAIL rows past the prompt accepted"; exit 1; }
[[ "$err" == *"--rows 30000:40000"*"32768 positions"* && ! -e "$tmp/bad.h5" ]] || { echo "FAIL rows: $err"; exit 1; }
err=$("$CLI" capture --model "$tmp/model" --ids-file "$tmp/model/ids.txt" --hooks 'blocks.0.attn.hook_pattern' --heads 8 --out "$tmp/bad.h5" 2>&1 >/dev/null) && { echo "FAIL head 8 accepted"; exit 1; }
[[ "$err" == *"--heads: head 8 out of range [0, 8)"* ]] || { echo "FAIL heads: $err"; exit 1; }
err=$("$CLI" capture --model "$tmp/model" --ids-file "$tmp/model/ids.txt" --hooks 'blocks.0.hook_resid_pre' --rows 0:4 --out "$tmp/bad.h5" 2>&1 >/dev/null) && { echo "FAIL resid tile accepted"; exit 1; }
[[ "$err" == *"'blocks.0.hook_resid_pre' is not a blocks.L.attn.hook_pattern"* ]] || { echo "FAIL resid: $err"; exit 1; }
err=$("$CLI" capture --model "$tmp/model" --ids-file "$tmp/model/ids.txt" --hooks 'blocks.2.attn.hook_pattern' --rows 0:4 --edit 'uniform:2.1' --out "$tmp/bad.h5" 2>&1 >/dev/null) && { echo "FAIL pattern edit accepted"; exit 1; }
[[ "$err" == *"uniform on layer 2 changes the pattern being captured"* ]] || { echo "FAIL edit: $err"; exit 1; }
# Layers past 0 (their input from the blockwise forward) and score hooks, against an explicit capture
# of a 600-token prefix: the same cells, masked scores -inf and masked weights 0.
head -c 2400 "$tmp/model/ids.txt" | /usr/bin/python3 -c "import sys; print(' '.join(sys.stdin.read().split()[:600]))" > "$tmp/short.txt"
"$CLI" capture --model "$tmp/model" --ids-file "$tmp/short.txt" --hooks 'blocks.2.attn.hook_pattern,blocks.2.attn.hook_attn_scores' --out "$tmp/explicit.h5" >/dev/null 2>&1
"$CLI" capture --model "$tmp/model" --ids-file "$tmp/short.txt" --hooks 'blocks.2.attn.hook_pattern,blocks.2.attn.hook_attn_scores' --heads 6,1 --rows 400:450 --cols 380:600 --out "$tmp/tiles.h5" >/dev/null 2>&1
/usr/bin/python3 - "$tmp" <<'PY'
import json, sys
import numpy as np, h5py
d = sys.argv[1]
with h5py.File(d + "/explicit.h5", "r") as e, h5py.File(d + "/tiles.h5", "r") as t:
    assert json.loads(e.attrs["provenance"])["attention"] == "explicit", e.attrs["provenance"]
    for hook in ("pattern", "attn_scores"):
        name = "activations/blocks.2.attn.hook_" + hook
        want = e[name][0][[6, 1], 400:450, 380:600]
        got = t[name][0]
        assert json.loads(t[name].attrs["heads"]) == [6, 1] and t[name].attrs["q_start"] == 400 and t[name].attrs["k_start"] == 380
        assert np.array_equal(np.isfinite(got), np.isfinite(want)), hook + ": masked cells differ"
        fin = np.isfinite(want)
        err = np.abs(got[fin] - want[fin]).max()
        assert err < 1e-5 * max(1, np.abs(want[fin]).max()), (hook, err)
        print("layer 2 %s tile = the explicit capture's cells (max |difference| %.2g)" % (hook, err))
PY
# Probes that read column sums or window masses take the same numbers from tiles: stories260K's sinks,
# hidden-sinks, streaming and induction (each of its scores) with every pattern read blockwise
# (HEADLAB_EXPLICIT_PATTERN_MB=0), in blocks of 7 rows so that every sum crosses block edges.
SHARED=${HEADLAB_SHARED:-$(cd "$SRC/.." && pwd)/shared}
probe() {  # NAME SUFFIX PARAMS
  "$CLI" probe $1 --model "$SHARED/models/stories260k/stories260K.gguf" --params "$3" --json > "$tmp/$1$2-explicit.json" 2>/dev/null
  HEADLAB_EXPLICIT_PATTERN_MB=0 HEADLAB_PATTERN_BLOCK_ROWS=7 "$CLI" probe $1 --model "$SHARED/models/stories260k/stories260K.gguf" --params "$3" --json > "$tmp/$1$2-tiles.json" 2>/dev/null
}
for p in sinks hidden-sinks streaming induction; do probe $p "" '{}'; done
probe induction -abs '{"error_measure": "abs", "exclude_bos": true, "exclude_current_token": true}'
probe induction -mean '{"score": "mean"}'
/usr/bin/python3 - "$tmp" <<'PY'
import json, sys
d = sys.argv[1]
for p in ("sinks", "hidden-sinks", "streaming", "induction", "induction-abs", "induction-mean"):
    e, t = (json.load(open("%s/%s-%s.json" % (d, p, v))) for v in ("explicit", "tiles"))
    err = max(abs(a - b) for a, b in zip(e["grid"]["values"], t["grid"]["values"]))
    assert err < 1e-5 and max(abs(v) for v in e["grid"]["values"]) > 0, (p, err)
    for extra in ("previous_token", "duplicate_token"):
        if extra in e:
            assert max(abs(a - b) for a, b in zip(e[extra]["values"], t[extra]["values"])) < 1e-5, (p, extra)
    if p == "sinks":
        assert max(abs(a - b) for a, b in zip(e["sink_k"], t["sink_k"])) < 1e-9
    print("%s from tiles = explicit (max |difference| %.2g over the grid)" % (p, err))
PY
echo "ok   long-context captures and probes"
