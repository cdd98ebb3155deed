"""Writes a random GPT-2-shaped Hugging Face folder with 12 heads (the window's layout must hold
12+ head columns without cropping) and the GPT-2 tokenizer from ../shared. numpy only.
Usage: write_random_gpt2.py OUT_DIR SHARED_DIR [layers] [heads]"""
import json
import os
import shutil
import struct
import sys

import numpy as np

if len(sys.argv) < 3:
    sys.exit(__doc__)
out, shared = sys.argv[1], sys.argv[2]
L = int(sys.argv[3]) if len(sys.argv) > 3 else 4
H = int(sys.argv[4]) if len(sys.argv) > 4 else 12
D, V, C = 8 * H, 50257, 256
rng = np.random.default_rng(7)
os.makedirs(out, exist_ok=True)
w = {"transformer.wte.weight": rng.normal(0, 0.5, (V, D)), "transformer.wpe.weight": rng.normal(0, 0.1, (C, D)),
     "transformer.ln_f.weight": np.ones(D), "transformer.ln_f.bias": np.zeros(D)}
for l in range(L):
    p = "transformer.h.%d." % l
    w.update({p + "ln_1.weight": np.ones(D), p + "ln_1.bias": np.zeros(D), p + "ln_2.weight": np.ones(D), p + "ln_2.bias": np.zeros(D),
              p + "attn.c_attn.weight": rng.normal(0, 0.3, (D, 3 * D)), p + "attn.c_attn.bias": np.zeros(3 * D),
              p + "attn.c_proj.weight": rng.normal(0, 0.1, (D, D)), p + "attn.c_proj.bias": np.zeros(D),
              p + "mlp.c_fc.weight": rng.normal(0, 0.1, (D, 4 * D)), p + "mlp.c_fc.bias": np.zeros(4 * D),
              p + "mlp.c_proj.weight": rng.normal(0, 0.1, (4 * D, D)), p + "mlp.c_proj.bias": np.zeros(D)})
header, blobs, offset = {}, [], 0
for name, t in w.items():
    data = np.ascontiguousarray(t, dtype="<f4").tobytes()
    header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
    blobs.append(data)
    offset += len(data)
h = json.dumps(header).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(os.path.join(out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump({"model_type": "gpt2", "n_embd": D, "n_head": H, "n_layer": L, "vocab_size": V, "n_positions": C,
               "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}, f)
for name in ("encoder.json", "vocab.bpe"):
    shutil.copy(os.path.join(shared, "models", "gpt2-tokenizer", name), out)
