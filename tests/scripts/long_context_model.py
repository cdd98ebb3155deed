"""The long-context test model of issue #20 and an independent reference for its attention rows.
numpy only (Debian's python3-numpy, python3-h5py).

  long_context_model.py write OUT_DIR [tokens]   a random LLaMA-shaped Hugging Face folder (4 layers,
      8 query heads over 2 kv heads, d_model 256, context 131072, vocabulary 512) and OUT_DIR/ids.txt,
      `tokens` random ids (32768 by default)
  long_context_model.py check OUT_DIR TRACE.h5 LAYER HEAD ROWS
      recomputes blocks.LAYER.attn.hook_pattern of HEAD at ROWS (A:B) over every key from the weights,
      as transformers' LlamaAttention does (layer 0 only: its input is the embedding), and compares
      the captured rows, every column, with it."""
import json
import os
import struct
import sys

import numpy as np

L, H, HKV, D, V, CTX, THETA, EPS = 4, 8, 2, 256, 512, 131072, 500000.0, 1e-5
DH, F = D // H, 688


def write(out, tokens):
    rng = np.random.default_rng(20)
    os.makedirs(out, exist_ok=True)
    # Scales that give peaked rows (scores with a spread of several units), so a wrong cell shows.
    w = {"model.embed_tokens.weight": rng.normal(0, 1.0, (V, D)), "model.norm.weight": np.ones(D), "lm_head.weight": rng.normal(0, 0.05, (V, D))}
    for l in range(L):
        p = "model.layers.%d." % l
        w.update({p + "input_layernorm.weight": 1 + rng.normal(0, 0.1, D), p + "post_attention_layernorm.weight": np.ones(D),
                  p + "self_attn.q_proj.weight": rng.normal(0, 0.12, (H * DH, D)), p + "self_attn.k_proj.weight": rng.normal(0, 0.12, (HKV * DH, D)),
                  p + "self_attn.v_proj.weight": rng.normal(0, 0.1, (HKV * DH, D)), p + "self_attn.o_proj.weight": rng.normal(0, 0.05, (D, H * DH)),
                  p + "mlp.gate_proj.weight": rng.normal(0, 0.05, (F, D)), p + "mlp.up_proj.weight": rng.normal(0, 0.05, (F, D)),
                  p + "mlp.down_proj.weight": rng.normal(0, 0.05, (D, F))})
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
        json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": D, "intermediate_size": F,
                   "num_attention_heads": H, "num_key_value_heads": HKV, "num_hidden_layers": L, "vocab_size": V,
                   "max_position_embeddings": CTX, "rms_norm_eps": EPS, "rope_theta": THETA, "hidden_act": "silu",
                   "tie_word_embeddings": False, "torch_dtype": "float32"}, f)
    ids = rng.integers(0, V, tokens)
    with open(os.path.join(out, "ids.txt"), "w") as f:
        f.write(" ".join(str(i) for i in ids) + "\n")


def tensors(folder):
    with open(os.path.join(folder, "model.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, e in header.items():
            f.seek(base + e["data_offsets"][0])
            out[name] = np.frombuffer(f.read(e["data_offsets"][1] - e["data_offsets"][0]), dtype="<f4").reshape(e["shape"]).astype(np.float64)
        return out


def rope(x, positions):
    # transformers' rotate_half layout: x [pos, heads, DH]. The angles in float32 as transformers forms
    # them (inv_freq and position ids in float32): at position 30000 that rounding moves an angle by
    # ~1e-3 rad, so a float64 table would not be the model transformers runs.
    inv = (1.0 / (np.float32(THETA) ** (np.arange(0, DH, 2, dtype=np.float32) / np.float32(DH)))).astype(np.float32)
    ang = positions.astype(np.float32)[:, None] * inv[None, :]
    cos = np.concatenate([np.cos(ang)] * 2, -1)[:, None, :].astype(np.float64)
    sin = np.concatenate([np.sin(ang)] * 2, -1)[:, None, :].astype(np.float64)
    half = DH // 2
    rotated = np.concatenate([-x[..., half:], x[..., :half]], -1)
    return x * cos + rotated * sin


def check(folder, trace, layer, head, rows):
    import h5py
    assert layer == 0, "the reference recomputes layer 0 (its input is the embedding)"
    a, b = (int(v) for v in rows.split(":"))
    w = tensors(folder)
    ids = np.array([int(t) for t in open(os.path.join(folder, "ids.txt")).read().split()])
    x = w["model.embed_tokens.weight"][ids[:b]]
    x = x / np.sqrt((x * x).mean(-1, keepdims=True) + EPS) * w["model.layers.0.input_layernorm.weight"]
    p = "model.layers.0.self_attn."
    kv = head // (H // HKV)
    q = rope((x[a:b] @ w[p + "q_proj.weight"].T).reshape(b - a, H, DH), np.arange(a, b, dtype=np.float64))[:, head]
    k = rope((x @ w[p + "k_proj.weight"].T).reshape(b, HKV, DH), np.arange(b, dtype=np.float64))[:, kv]
    scores = q @ k.T / np.sqrt(DH)  # [rows, keys 0..b)
    scores[np.arange(b)[None, :] > np.arange(a, b)[:, None]] = -np.inf
    expected = np.exp(scores - scores.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    with h5py.File(trace, "r") as f:
        d = f["activations/blocks.%d.attn.hook_pattern" % layer]
        assert json.loads(d.attrs["heads"]) == [head], d.attrs["heads"]
        assert int(d.attrs["q_start"]) == a and int(d.attrs["k_start"]) == 0
        got = d[0, 0]
    assert got.shape == (b - a, len(ids)), got.shape
    assert np.all(got[:, b:] == 0), "keys after the last row must carry no weight"
    got = got[:, :b].astype(np.float64)
    err = np.abs(got - expected)
    worst = np.unravel_index(err.argmax(), err.shape)
    print("rows %d:%d of head %d: max |difference| %.3g (at row %d, key %d), largest weight %.4f, row sums within %.2g of 1"
          % (a, b, head, err.max(), a + worst[0], worst[1], expected.max(), np.abs(got.sum(-1) - 1).max()))
    assert expected.max() > 0.05, "the reference rows are too flat to test anything"
    assert err.max() < 1e-5 and np.all(err <= 1e-6 + 1e-4 * expected), "captured rows differ from the reference"
    assert np.array_equal(got.argmax(-1), expected.argmax(-1))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "write":
        write(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 32768)
    elif len(sys.argv) == 7 and sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    else:
        sys.exit(__doc__)
