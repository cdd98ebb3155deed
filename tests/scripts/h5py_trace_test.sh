#!/usr/bin/env bash
# A trace written by headlab-cli capture, read by Python's h5py (Debian python3-h5py).
set -eu
CLI=$1
SRC=$2
SHARED=${HEADLAB_SHARED:-$(cd "$SRC/.." && pwd)/shared}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$CLI" capture --model "$SHARED/models/stories260k/stories260K.gguf" --prompt "Once upon a time, there was a little girl" \
  --hooks 'blocks.*.attn.hook_pattern,blocks.2.hook_resid_post' --out "$tmp/trace.h5" --gzip 4
/usr/bin/python3 - "$tmp/trace.h5" <<'PY'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
assert f.attrs["schema"] == "headlab.trace", f.attrs["schema"]
assert int(f.attrs["schema_version"]) == 1
assert "created" in f.attrs and "app_version" in f.attrs
assert f["model"].attrs["n_layers"] == 5 and f["model"].attrs["n_kv_heads"] == 4
tokens = f["inputs/tokens"][...]
assert tokens.shape[0] == 1 and tokens[0, 0] == 1, tokens
assert len(f["inputs/token_strings"]) == tokens.shape[1]
for l in range(5):
    d = f[f"activations/blocks.{l}.attn.hook_pattern"]
    assert list(d.attrs["axes"]) == ["batch", "head", "q_pos", "k_pos"], list(d.attrs["axes"])
    assert d.chunks == (1, 1, d.shape[2], d.shape[3]), d.chunks
    head = d[0, 3]                      # one head, one chunk
    assert np.allclose(head.sum(-1), 1.0, atol=1e-5), head.sum(-1)
    assert np.all(np.triu(head, 1) == 0)
r = f["activations/blocks.2.hook_resid_post"]
assert list(r.attrs["axes"]) == ["batch", "pos", "d_model"] and r.shape[2] == 64
print("h5py read the trace: schema, axes, rows sum to 1")
PY
