#!/usr/bin/env bash
# The Python reader (python/headlab, numpy + h5py only) on what headlab-cli writes: a capture, a probe
# result and a patching sweep; its values checked against h5py's own reading and the model's maths.
set -eu
CLI=$1
SRC=$2
SHARED=${HEADLAB_SHARED:-$(cd "$SRC/.." && pwd)/shared}
M=$SHARED/models/stories260k/stories260K.gguf
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$CLI" capture --model "$M" --prompt "Once upon a time, there was a little girl" \
  --hooks 'blocks.*.attn.hook_pattern,blocks.1.hook_resid_post' --out "$tmp/capture.h5" >/dev/null 2>&1
"$CLI" probe sinks --model "$M" --out "$tmp/sinks.h5" --json > "$tmp/sinks.json" 2>/dev/null
"$CLI" patch --model "$M" --clean "Lily had a red ball. Lily gave the ball to" --corrupted "Tim had a red ball. Tim gave the ball to" \
  --answer " Lily" --wrong " Tim" --sweep resid-pos --json --out "$tmp/patch.h5" > "$tmp/patch.json" 2>/dev/null
PYTHONPATH="$SRC/python" /usr/bin/python3 - "$tmp" <<'PY'
import json, sys
import h5py, numpy as np
import headlab

d = sys.argv[1]
t = headlab.load(d + "/capture.h5")
assert t.model["n_layers"] == 5 and t.model["arch"] == "llama", t.model
assert t.hooks() == ["blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern", "blocks.1.hook_resid_post",
                     "blocks.2.attn.hook_pattern", "blocks.3.attn.hook_pattern", "blocks.4.attn.hook_pattern"], t.hooks()
a = t.attention()
T = t.tokens.shape[1]
assert a.shape == (5, 8, T, T), a.shape
assert np.allclose(a.sum(-1), 1, atol=1e-5) and np.all(np.triu(a, 1) == 0)
with h5py.File(d + "/capture.h5") as f:
    assert np.array_equal(a[3, 2], f["activations/blocks.3.attn.hook_pattern"][0, 2])
assert t.axes("blocks.1.hook_resid_post") == ["batch", "pos", "d_model"]
assert t.token_strings[0] == "<s>" and len(t.token_strings) == T, t.token_strings
try:
    t["blocks.9.attn.hook_z"]
    raise SystemExit("a missing hook must raise")
except KeyError as e:
    assert "holds no activation" in str(e)

s = headlab.load(d + "/sinks.h5")
ref = json.load(open(d + "/sinks.json"))
g = s.probes["sinks"]["grid"]
assert g.shape == (5, 8) and np.allclose(g.ravel(), ref["grid"]["values"], atol=1e-6)
assert s.probes["sinks"].params["eps"] == 0.3 and s.probes["sinks"].params["max_tokens"] == 64, s.probes["sinks"].params

p = headlab.load(d + "/patch.h5")
pj = json.load(open(d + "/patch.json"))
grid = p.probes["patching"]["grid"]
assert grid.shape == tuple(pj["shape"]), (grid.shape, pj["shape"])
assert p.probes["patching"].params["sweep"] == "resid-pos" and p.probes["patching"].params["axes"] == ["layer", "pos"]
assert p.token_strings == pj["pos_labels"]

# A file from a newer HeadLab is refused, not misread.
with h5py.File(d + "/capture.h5", "a") as f:
    f.attrs["schema_version"] = 99
try:
    headlab.load(d + "/capture.h5")
    raise SystemExit("a newer schema_version must be refused")
except ValueError as e:
    assert "newer than this reader knows" in str(e)
print("headlab.load read a capture, a probe result and a patching sweep")

# Provenance: in every file, as the root attribute and the JSON sidecar.
for name in ("sinks.h5", "patch.h5"):
    rec = headlab.provenance(d + "/" + name)
    assert rec == json.load(open(d + "/" + name + ".provenance.json")), name
    for key in ("version", "git_commit", "command_line", "model", "config", "dtype", "device", "threads", "attention", "seed", "created"):
        assert key in rec, (name, key)
    assert rec["model"]["format"] == "gguf" and rec["model"]["files"][0]["path"].endswith("stories260K.gguf"), rec["model"]
    assert rec["config"]["n_layers"] == 5 and rec["attention"] == "explicit"
assert " probe sinks " in headlab.provenance(d + "/sinks.h5")["command_line"]
print("every file carries its provenance")
PY
# A capture from a copy of the Hugging Face folder: verify() matches every file's SHA-256 until one byte
# of the weights changes, then names that file.
cp -r "$SHARED/models/stories260k-hf" "$tmp/model"
"$CLI" capture --model "$tmp/model" --prompt "Once upon a time" --hooks 'blocks.0.attn.hook_pattern' --out "$tmp/copy.h5" >/dev/null 2>&1
PYTHONPATH="$SRC/python" /usr/bin/python3 - "$tmp" <<'PY'
import sys
import headlab

d = sys.argv[1]
t = headlab.load(d + "/copy.h5")
names = sorted(f["path"].rsplit("/", 1)[1] for f in t.provenance["model"]["files"])
assert names == ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"], names
assert headlab.verify(d + "/copy.h5") == [], headlab.verify(d + "/copy.h5")
with open(d + "/model/model.safetensors", "r+b") as f:
    f.seek(4096)
    b = f.read(1)
    f.seek(4096)
    f.write(bytes([b[0] ^ 1]))
problems = headlab.verify(d + "/copy.h5")
assert len(problems) == 1 and problems[0].startswith("changed: ") and "model.safetensors" in problems[0], problems
assert headlab.verify(d + "/copy.h5", model=d + "/elsewhere") and "missing" in headlab.verify(d + "/copy.h5", model=d + "/elsewhere")[0]
print("verify() finds the changed weight file:", problems[0][:60])
PY
# --format safetensors and npz: the same tensors as the HDF5 capture, bit for bit, read without HeadLab's
# code (safetensors by the format's own rules: an 8-byte length, a JSON header, raw little-endian data;
# npz by numpy), with the prompt and the provenance as metadata.
for fmt in hdf5 safetensors npz; do
  "$CLI" capture --model "$M" --prompt "Once upon a time" --hooks 'blocks.1.attn.hook_pattern,blocks.2.hook_resid_post' \
    --format "$fmt" --out "$tmp/cap.$fmt" --edit 'zero:0.1' >/dev/null 2>&1 || { echo "FAIL capture --format $fmt"; exit 1; }
done
PYTHONPATH="$SRC/python" /usr/bin/python3 - "$tmp" <<'PY'
import json, struct, sys
import h5py, numpy as np

d = sys.argv[1]
with h5py.File(d + "/cap.hdf5") as f:
    ref = {k: f["activations/" + k][...] for k in f["activations"]}
    tokens = f["inputs/tokens"][0].tolist()
with open(d + "/cap.safetensors", "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    data = f.read()
meta = header.pop("__metadata__")
st = {}
for name, e in header.items():
    a, b = e["data_offsets"]
    assert e["dtype"] == "F32"
    st[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(e["shape"])
npz = np.load(d + "/cap.npz")
nmeta = json.loads(npz["__metadata__"].item())
assert sorted(st) == sorted(ref) == sorted(k for k in npz.files if k != "__metadata__"), (sorted(st), sorted(ref), npz.files)
for k in ref:
    assert st[k].dtype == ref[k].dtype and np.array_equal(st[k], ref[k]), k
    assert np.array_equal(npz[k], ref[k]), k
for m in (meta, {k: json.dumps(v) if k != "schema" else v for k, v in nmeta.items()}):
    assert m["schema"] == "headlab.capture"
    assert json.loads(m["tokens"]) == tokens
    assert json.loads(m["interventions"])[0]["kind"] == "zero"
    assert "sha256" in m["provenance"] and json.loads(m["provenance"])["model"]["format"] == "gguf"
assert json.load(open(d + "/cap.npz.provenance.json"))["command_line"].endswith("--edit zero:0.1")
print("safetensors and npz hold the HDF5 capture's tensors bit for bit, with the prompt and provenance")
PY
# probe and patch results as safetensors / npz: the grids of the HDF5 files.
"$CLI" probe sinks --model "$M" --format safetensors --out "$tmp/sinks.safetensors" >/dev/null 2>&1 || { echo "FAIL probe --format safetensors"; exit 1; }
"$CLI" patch --model "$M" --clean "Lily had a red ball. Lily gave the ball to" --corrupted "Tim had a red ball. Tim gave the ball to" \
  --answer " Lily" --wrong " Tim" --sweep resid-pos --format npz --out "$tmp/patch.npz" >/dev/null 2>&1 || { echo "FAIL patch --format npz"; exit 1; }
PYTHONPATH="$SRC/python" /usr/bin/python3 - "$tmp" <<'PY'
import json, struct, sys
import numpy as np
import headlab

d = sys.argv[1]
with open(d + "/sinks.safetensors", "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    data = f.read()
e = header["grid"]
grid = np.frombuffer(data[e["data_offsets"][0]:e["data_offsets"][1]], dtype="<f4").reshape(e["shape"])
h5 = headlab.load(d + "/sinks.h5").probes["sinks"]["grid"]
assert np.array_equal(grid, h5.astype(np.float32)), (grid, h5)
meta = header["__metadata__"]
assert meta["schema"] == "headlab.probe" and json.loads(meta["probe"]) == "sinks" and json.loads(meta["params"])["eps"] == 0.3
z = np.load(d + "/patch.npz")
m = json.loads(z["__metadata__"].item())
assert m["schema"] == "headlab.patching" and m["params"]["sweep"] == "resid-pos"
assert np.allclose(z["grid"], headlab.load(d + "/patch.h5").probes["patching"]["grid"], equal_nan=True)
print("probe and patch results read back from safetensors and npz")
# headlab.load reads them too, with the same arrays and metadata as the HDF5 files.
for fmt in ("safetensors", "npz"):
    c = headlab.load(d + "/cap." + fmt)
    assert c.hooks() == ["blocks.1.attn.hook_pattern", "blocks.2.hook_resid_post"], c.hooks()
    assert np.array_equal(c.attention()[0], headlab.load(d + "/cap.hdf5").attention()[0])
    assert c.interventions[0]["kind"] == "zero" and c.model["n_layers"] == 5 and c.provenance["model"]["format"] == "gguf"
assert np.array_equal(headlab.load(d + "/sinks.safetensors").probes["sinks"]["grid"], grid)
assert headlab.load(d + "/patch.npz").probes["patching"].params["sweep"] == "resid-pos"
assert headlab.verify(d + "/cap.npz") == []
print("headlab.load reads safetensors and npz outputs")
PY
