#!/usr/bin/env bash
# Sharded prompt sets (issue #21): patch --pairs over 24 generated IOI pairs run whole and as three shards (given
# by --shard and by Slurm's array variables); merge joins the shards, in any order, into a file whose
# every dataset equals the unsharded run's bit for bit, and headlab.load reads it. Shards of another
# experiment, a missing or duplicated shard and bad --shard values are refused with their reason; a
# shard killed mid-run leaves no file.
set -eu
CLI=$(realpath "$1")
SRC=$(realpath "$2")
SHARED=${HEADLAB_SHARED:-$(cd "$SRC/.." && pwd)/shared}
M=$SHARED/models/stories260k/stories260K.gguf
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
# 24 IOI pairs from the generator (ABBA and BABA alternating, ABC corruption), deterministic per seed.
"$CLI" pairs ioi --model "$M" --n 24 --seed 3 --out pairs.jsonl >/dev/null 2>&1
"$CLI" pairs ioi --model "$M" --n 24 --seed 3 > again.jsonl 2>/dev/null
"$CLI" pairs ioi --model "$M" --n 24 --seed 4 > other.jsonl 2>/dev/null
cmp -s pairs.jsonl again.jsonl || { echo "FAIL pairs ioi: the same seed gave other pairs"; exit 1; }
! cmp -s pairs.jsonl other.jsonl || { echo "FAIL pairs ioi: another seed gave the same pairs"; exit 1; }
/usr/bin/python3 - <<'PY'
import json, re
pairs = [json.loads(l) for l in open("pairs.jsonl")]
assert len(pairs) == 24 and [p["variant"] for p in pairs[:4]] == ["ABBA", "BABA", "ABBA", "BABA"]
for p in pairs:
    assert p["answer"] != p["wrong"] and p["clean"] != p["corrupted"]
    c, k = p["clean"].split(), p["corrupted"].split()
    assert len(c) == len(k) and sum(a != b for a, b in zip(c, k)) == 1, p   # only the second subject changes
print("pairs ioi: 24 pairs, ABBA/BABA alternating, one name changed per pair, deterministic per seed")
PY
run() { "$CLI" patch --model "$M" --pairs pairs.jsonl --sweep heads "$@" >/dev/null 2>&1; }
run --out all.h5
run --out s0.h5 --shard 0/3
SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=3 run --out s1.h5
SLURM_ARRAY_TASK_ID=7 SLURM_ARRAY_TASK_MIN=5 SLURM_ARRAY_TASK_COUNT=3 run --out s2.h5   # --array=5-7
run --out s2.h5 --shard 2/3 --force   # re-running a shard is safe: the same file again
"$CLI" merge merged.h5 s2.h5 s0.h5 s1.h5 >/dev/null
PYTHONPATH="$SRC/python" /usr/bin/python3 - <<'PY'
import json
import h5py, numpy as np, headlab
def datasets(f):
    out = {}
    f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out
with h5py.File("all.h5", "r") as a, h5py.File("merged.h5", "r") as m, h5py.File("s1.h5", "r") as s1:
    da, dm = datasets(a), datasets(m)
    assert sorted(da) == sorted(dm), (sorted(da), sorted(dm))
    for k in da:
        assert da[k].dtype == dm[k].dtype and da[k].shape == dm[k].shape and da[k].tobytes() == dm[k].tobytes(), k
    g = "probes/patching_pairs"
    for k in a[g].attrs:
        assert a[g].attrs[k] == m[g].attrs[k], k
    assert dict(s1[g].attrs)["pair_begin"] == 8 and dict(s1[g].attrs)["pair_end"] == 16 and "mean" not in s1[g]
    assert json.loads(m.attrs["provenance"])["merged_from"] == ["s0.h5", "s1.h5", "s2.h5"]
    print("merge of 3 shards = the unsharded run, bit for bit in %d datasets" % len(da))
t = headlab.load("merged.h5")
p = t.probes["patching_pairs"]
assert p["grids"].shape == (24, 5, 8) and np.allclose(p["mean"], p["grids"].astype(np.float64).mean(0), atol=1e-6)
assert p.params["shard_count"] == 1 and p.params["pairs_total"] == 24
print("headlab.load reads the merged file")
PY
fail() { echo "FAIL $1: $2"; exit 1; }
err=$("$CLI" merge m.h5 s0.h5 s2.h5 2>&1 >/dev/null) && fail "missing shard" "accepted"
[[ "$err" == *"shard 1/3 missing"* && ! -e m.h5 ]] || fail "missing shard" "$err"
err=$("$CLI" merge m.h5 s0.h5 s1.h5 s1.h5 s2.h5 2>&1 >/dev/null) && fail "duplicate" "accepted"
[[ "$err" == *"shard 1/3 given twice: s1.h5 and s1.h5"* ]] || fail "duplicate" "$err"
run --out n1.h5 --shard 1/3 --noising
err=$("$CLI" merge m.h5 s0.h5 n1.h5 s2.h5 2>&1 >/dev/null) && fail "other experiment" "accepted"
[[ "$err" == *"n1.h5: from another experiment than s0.h5 (direction denoising vs noising)"* ]] || fail "other experiment" "$err"
run --out h1.h5 --shard 1/2
err=$("$CLI" merge m.h5 s0.h5 h1.h5 2>&1 >/dev/null) && fail "other count" "accepted"
[[ "$err" == *"h1.h5: shard of 2, s0.h5 of 3"* ]] || fail "other count" "$err"
err=$("$CLI" merge m.h5 all.h5.provenance.json 2>&1 >/dev/null) && fail "not a shard" "accepted"
err=$("$CLI" patch --model "$M" --pairs pairs.jsonl --sweep heads --shard 3/3 2>&1 >/dev/null) && fail "shard 3/3" "accepted"
[[ "$err" == *"--shard 3/3: i must be in [0, N)"* ]] || fail "shard 3/3" "$err"
err=$("$CLI" patch --model "$M" --pairs pairs.jsonl --sweep heads --shard 0/25 2>&1 >/dev/null) && fail "25 shards of 24" "accepted"
[[ "$err" == *"more shards than the 24 pairs"* ]] || fail "25 shards" "$err"
# A shard stopped mid-run (Slurm sends SIGTERM) leaves no file: its writer opens only after the sweeps.
"$CLI" patch --model "$M" --pairs pairs.jsonl --sweep head-pos --out killed.h5 --shard 0/1 >/dev/null 2>&1 &
pid=$!
sleep 1
kill -TERM $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
[[ -z "$(ls -A | grep killed)" ]] || fail "killed shard" "$(ls -A | grep killed)"
# probe --prompts-file keeps each prompt's grid and reports the mean with its standard deviation and a
# 95% t-interval: for sinks, whose grid averages the prompts, the mean over prompts is the grid itself.
cat > prompts.txt <<'TXT'
Once upon a time there was a little girl named Lily. She liked to play outside.
Tim had a big red ball. He played with it every day in the park with his dog.
The sun was hot and the birds were singing in the tall green trees by the river.
Ben and Mia went to the shop to buy some milk and a cake for their mother.
One day a small cat found a box. The cat jumped into the box and went to sleep.
TXT
"$CLI" probe sinks --model "$M" --prompts-file prompts.txt --params '{"max_tokens": 16}' --json > sinks.json 2>/dev/null
"$CLI" probe sinks --model "$M" --prompts-file prompts.txt --params '{"max_tokens": 16}' --out sinks.h5 2>/dev/null | tail -1 | grep -q "± .* (95% interval" || fail "probe summary" "no interval line"
/usr/bin/python3 - <<'PY'
import json
import numpy as np, h5py
r = json.load(open("sinks.json"))
per = np.array(r["per_prompt"]["values"])
assert per.shape == (5, 40) and r["per_prompt"]["prompts"] == [0, 1, 2, 3, 4] and r["per_prompt"]["skipped"] == []
assert np.abs(per.mean(0) - np.array(r["grid"]["values"])).max() < 1e-9, "sinks' grid is the mean of its prompts"
sd = per.std(0, ddof=1)
assert np.abs(sd - np.array(r["grid_std"]["values"])).max() < 1e-12 and sd.max() > 0
assert np.abs(2.776 * sd / np.sqrt(5) - np.array(r["grid_ci95"]["values"])).max() < 1e-12
with h5py.File("sinks.h5", "r") as f:
    assert f["probes/sinks/per_prompt_grid"].shape == (5, 5, 8)
    assert np.allclose(f["probes/sinks/per_prompt_grid"][()].reshape(5, 40), per, atol=1e-6)
print("probe --prompts-file: per-prompt grids, mean, std and 95% interval")
PY
echo "ok   shards and merge"
