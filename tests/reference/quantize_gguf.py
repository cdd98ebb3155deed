"""Rewrites a GGUF file with its 2-D float32 weights quantised to Q8_0 or Q4_0 (ggml's reference
round-to-nearest quantisers, quantize_row_q8_0_ref / quantize_row_q4_0_ref), rows that are not whole
blocks kept in F32 as llama.cpp does. Usage: quantize_gguf.py IN.gguf OUT.gguf Q8_0|Q4_0"""
import math, struct, sys
import numpy as np

SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


class Reader:
    def __init__(self, data):
        self.d, self.p = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.p)[0]
        self.p += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.take("<Q")
        s = self.d[self.p:self.p + n]
        self.p += n
        return s

    def value(self, t):
        start = self.p
        if t == 8:
            self.string()
        elif t == 9:
            et, n = self.take("<I"), self.take("<Q")
            for _ in range(n):
                self.value(et)
        else:
            self.take(SCALAR[t])
        return self.d[start:self.p]


def quantize_q8_0(x):
    x = x.reshape(-1, 32)
    amax = np.abs(x).max(1)
    d = (amax / 127).astype(np.float32)
    inv = np.where(d != 0, 1 / np.where(d != 0, d, 1), 0).astype(np.float32)
    q = np.round(x * inv[:, None]).astype(np.int8)  # roundf: half away from zero; ties do not occur here
    return b"".join(d16.tobytes() + qi.tobytes() for d16, qi in zip(d.astype("<f2"), q))


def quantize_q4_0(x):
    x = x.reshape(-1, 32)
    idx = np.abs(x).argmax(1)
    mx = x[np.arange(len(x)), idx]  # the value of largest magnitude, with its sign
    d = (mx / -8).astype(np.float32)
    inv = np.where(d != 0, 1 / np.where(d != 0, d, 1), 0).astype(np.float32)
    q = np.minimum(15, (x * inv[:, None] + 8.5).astype(np.int8)).astype(np.uint8)
    packed = q[:, :16] | (q[:, 16:] << 4)
    return b"".join(d16.tobytes() + p.tobytes() for d16, p in zip(d.astype("<f2"), packed))


def main(src, dst, kind):
    data = open(src, "rb").read()
    r = Reader(data)
    magic, version, n_tensors, n_kv = r.take("<4s"), r.take("<I"), r.take("<Q"), r.take("<Q")
    kv = []
    alignment = 32
    for _ in range(n_kv):
        key = r.string()
        t = r.take("<I")
        raw = r.value(t)
        if key == b"general.alignment":
            alignment = struct.unpack("<I", raw)[0]
        kv.append(struct.pack("<Q", len(key)) + key + struct.pack("<I", t) + raw)
    infos = []
    for _ in range(n_tensors):
        name = r.string()
        nd = r.take("<I")
        ne = [r.take("<Q") for _ in range(nd)]
        infos.append((name, ne, r.take("<I"), r.take("<Q")))
    start = (r.p + alignment - 1) // alignment * alignment
    ids = {"Q8_0": 8, "Q4_0": 2}
    blobs, out_infos, offset = [], [], 0
    for name, ne, t, off in infos:
        numel = int(np.prod(ne))
        assert t == 0, "expects an F32 source"
        x = np.frombuffer(data, "<f4", numel, start + off)
        if len(ne) == 2 and ne[0] % 32 == 0:
            blob, t = (quantize_q8_0 if kind == "Q8_0" else quantize_q4_0)(x), ids[kind]
        else:
            blob = x.tobytes()
        out_infos.append(struct.pack("<Q", len(name)) + name + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne) +
                         struct.pack("<IQ", t, offset))
        pad = (-len(blob)) % alignment
        blobs.append(blob + b"\0" * pad)
        offset += len(blob) + pad
    head = magic + struct.pack("<IQQ", version, n_tensors, n_kv) + b"".join(kv) + b"".join(out_infos)
    head += b"\0" * ((-len(head)) % alignment)
    with open(dst, "wb") as f:
        f.write(head + b"".join(blobs))


if __name__ == "__main__":
    main(*sys.argv[1:4])


def gguf_bytes(metadata, tensors, alignment=32):
    """A GGUF v3 file: metadata {key: (type, value)} (types 4 u32, 6 f32, 8 string) and tensors
    [(name, ne (innermost first), ggml type, bytes)]."""
    def string(s):
        b = s.encode()
        return struct.pack("<Q", len(b)) + b

    kv = b""
    for key, (t, v) in metadata.items():
        kv += string(key) + struct.pack("<I", t) + (string(v) if t == 8 else struct.pack(SCALAR[t], v))
    infos, blobs, offset = b"", b"", 0
    for name, ne, t, blob in tensors:
        infos += string(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne) + struct.pack("<IQ", t, offset)
        pad = (-len(blob)) % alignment
        blobs += blob + b"\0" * pad
        offset += len(blob) + pad
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata)) + kv + infos
    return head + b"\0" * ((-len(head)) % alignment) + blobs


def k_quant_llama(out_quantised, out_float, seed=5):
    """A random LLaMA with 256-wide rows whose 2-D weights are random blocks of every ggml quantised
    type in turn, and its twin with the same weights dequantised by ggml_quants.py, stored as F32."""
    import ggml_quants
    rng = np.random.default_rng(seed)
    D, F, V, H, KV, L = 256, 512, 256, 4, 2, 2
    dh = D // H
    meta = {"general.architecture": (8, "llama"), "llama.embedding_length": (4, D), "llama.feed_forward_length": (4, F),
            "llama.block_count": (4, L), "llama.attention.head_count": (4, H), "llama.attention.head_count_kv": (4, KV),
            "llama.context_length": (4, 64), "llama.attention.layer_norm_rms_epsilon": (6, 1e-5)}
    shapes = [("token_embd.weight", [D, V]), ("output_norm.weight", [D]), ("output.weight", [D, V])]
    for l in range(L):
        shapes += [(f"blk.{l}.attn_norm.weight", [D]), (f"blk.{l}.attn_q.weight", [D, H * dh]), (f"blk.{l}.attn_k.weight", [D, KV * dh]),
                   (f"blk.{l}.attn_v.weight", [D, KV * dh]), (f"blk.{l}.attn_output.weight", [H * dh, D]),
                   (f"blk.{l}.ffn_norm.weight", [D]), (f"blk.{l}.ffn_gate.weight", [D, F]), (f"blk.{l}.ffn_up.weight", [D, F]),
                   (f"blk.{l}.ffn_down.weight", [F, D])]
    types = list(ggml_quants.TYPES)
    quantised, floats, used = [], [], []
    for i, (name, ne) in enumerate(shapes):
        numel = int(np.prod(ne))
        if len(ne) == 1:
            blob = (1 + 0.1 * rng.standard_normal(numel)).astype("<f4").tobytes()
            quantised.append((name, ne, 0, blob))
            floats.append((name, ne, 0, blob))
            continue
        kind = types[len(used) % len(types)]
        ggml_id, per_block, size, half_offsets, _ = ggml_quants.TYPES[kind]
        blocks = bytearray(rng.integers(0, 256, numel // per_block * size, dtype=np.uint8).tobytes())
        for b in range(numel // per_block):  # small finite scales, so the forward stays finite
            for off in half_offsets:
                blocks[b * size + off: b * size + off + 2] = np.array([rng.normal(0, 0.004)], "<f2").tobytes()
        blocks = bytes(blocks)
        quantised.append((name, ne, ggml_id, blocks))
        floats.append((name, ne, 0, ggml_quants.dequantize(kind, blocks).astype("<f4").tobytes()))
        used.append(kind)
    with open(out_quantised, "wb") as f:
        f.write(gguf_bytes(meta, quantised))
    with open(out_float, "wb") as f:
        f.write(gguf_bytes(meta, floats))
    return sorted(set(used))


def gpt2_hf_to_gguf(folder, out_path):
    """A GPT-2 Hugging Face folder as llama.cpp's convert_hf_to_gguf writes it: Conv1D matrices
    transposed to [out, in], llama.cpp's tensor names, output.weight a copy of the embedding, and the
    gpt2.* keys (the names checked against ../shared's ggml-vocab-gpt-2.gguf)."""
    import json, os
    cfg = json.load(open(os.path.join(folder, "config.json")))
    tensors = _read_safetensors_f32(os.path.join(folder, "model.safetensors"))
    p = "transformer." if "transformer.wte.weight" in tensors else ""
    D, L = cfg["n_embd"], cfg["n_layer"]
    out = [("token_embd.weight", tensors[p + "wte.weight"]), ("position_embd.weight", tensors[p + "wpe.weight"]),
           ("output_norm.weight", tensors[p + "ln_f.weight"]), ("output_norm.bias", tensors[p + "ln_f.bias"]),
           ("output.weight", tensors.get("lm_head.weight", tensors[p + "wte.weight"]))]
    names = {"ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output", "ln_2": "ffn_norm",
             "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}
    for l in range(L):
        for hf, gg in names.items():
            w, b = tensors[f"{p}h.{l}.{hf}.weight"], tensors[f"{p}h.{l}.{hf}.bias"]
            if w.ndim == 2:
                w = np.ascontiguousarray(w.T)  # Conv1D [in, out] -> [out, in]
            out += [(f"blk.{l}.{gg}.weight", w), (f"blk.{l}.{gg}.bias", b)]
    meta = {"general.architecture": (8, "gpt2"), "gpt2.context_length": (4, cfg["n_positions"]), "gpt2.embedding_length": (4, D),
            "gpt2.feed_forward_length": (4, cfg.get("n_inner") or 4 * D), "gpt2.block_count": (4, L),
            "gpt2.attention.head_count": (4, cfg["n_head"]), "gpt2.attention.layer_norm_epsilon": (6, cfg["layer_norm_epsilon"])}
    with open(out_path, "wb") as f:
        f.write(gguf_bytes(meta, [(n, list(reversed(t.shape)), 0, np.ascontiguousarray(t, dtype="<f4").tobytes()) for n, t in out]))


def _read_safetensors_f32(path):
    """A float32 safetensors file as numpy arrays (the reference models' reader)."""
    from make_reference_models import read_safetensors
    return {name: t.numpy() for name, t in read_safetensors(path).items()}


# Hugging Face layer tensor names (after model.layers.{l}.) -> llama.cpp's (after blk.{l}.), from
# gguf-py's tensor_mapping for each family's MODEL_ARCH tensor list.
_DECODER_NAMES = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                  "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm",
                  "self_attn.k_norm": "attn_k_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                  "mlp.down_proj": "ffn_down", "self_attn.qkv_proj": "attn_qkv", "mlp.gate_up_proj": "ffn_up"}


def family_hf_to_gguf(folder, out_path):
    """A Hugging Face folder of qwen3, olmo2, gemma, gemma2, gemma3_text, phi3 or gpt_neox written as
    llama.cpp's convert_hf_to_gguf.py writes it (read from its model classes, not copied):
    - names from gguf-py's tensor mapping; post_attention_layernorm is ffn_norm in Qwen3/Phi-3 but
      post_attention_norm in Gemma 2/3 and OLMo-2, whose pre_feedforward_layernorm is ffn_norm;
    - Gemma: every *norm.weight stored plus one, no lm_head (tied), query_pre_attn_scalar not written;
      Gemma 3: rope.freq_base_swa from rope_local_base_freq; sliding_window_pattern is written only when
      it is not llama.cpp's default of 6 (the converter never writes it; llama.cpp reads it when present);
    - Phi-3: qkv_proj and gate_up_proj kept fused (attn_qkv, ffn_up), rope.dimension_count =
      int(partial_rotary_factor * hidden) // heads, sliding_window, LongRoPE factors as tensors;
    - GPT-NeoX: query_key_value's per-head [q, k, v] rows regrouped into q | k | v blocks."""
    import json, os
    cfg = json.load(open(os.path.join(folder, "config.json")))
    t = _read_safetensors_f32(os.path.join(folder, "model.safetensors"))
    mt = cfg["model_type"]
    arch = {"gemma3_text": "gemma3", "gpt_neox": "gptneox"}.get(mt, mt)
    D, H, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    k = lambda s: arch + "." + s
    meta = {"general.architecture": (8, arch), k("context_length"): (4, cfg["max_position_embeddings"]), k("embedding_length"): (4, D),
            k("block_count"): (4, L), k("feed_forward_length"): (4, cfg["intermediate_size"]), k("attention.head_count"): (4, H)}
    out = []
    if mt == "gpt_neox":
        dh = D // H
        meta.update({k("rope.dimension_count"): (4, int(cfg["rotary_pct"] * dh)), k("use_parallel_residual"): (7, cfg.get("use_parallel_residual", True)),
                     k("attention.layer_norm_epsilon"): (6, cfg["layer_norm_eps"]), k("rope.freq_base"): (6, float(cfg.get("rotary_emb_base", 10000)))})
        out += [("token_embd.weight", t["gpt_neox.embed_in.weight"]), ("output_norm.weight", t["gpt_neox.final_layer_norm.weight"]),
                ("output_norm.bias", t["gpt_neox.final_layer_norm.bias"]), ("output.weight", t["embed_out.weight"])]
        names = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "attention.dense": "attn_output",
                 "mlp.dense_h_to_4h": "ffn_up", "mlp.dense_4h_to_h": "ffn_down"}
        for l in range(L):
            p = f"gpt_neox.layers.{l}."
            for hf, gg in names.items():
                out += [(f"blk.{l}.{gg}.weight", t[p + hf + ".weight"]), (f"blk.{l}.{gg}.bias", t[p + hf + ".bias"])]
            w = t[p + "attention.query_key_value.weight"].reshape(H, 3, dh, D)
            b = t[p + "attention.query_key_value.bias"].reshape(H, 3, dh)
            out += [(f"blk.{l}.attn_qkv.weight", np.concatenate([w[:, i].reshape(-1, D) for i in range(3)])),
                    (f"blk.{l}.attn_qkv.bias", np.concatenate([b[:, i].reshape(-1) for i in range(3)]))]
    else:
        meta.update({k("attention.head_count_kv"): (4, cfg.get("num_key_value_heads", H)), k("attention.layer_norm_rms_epsilon"): (6, cfg["rms_norm_eps"]),
                     k("rope.freq_base"): (6, float(cfg.get("rope_theta", 10000.0)))})
        if "head_dim" in cfg:
            meta.update({k("attention.key_length"): (4, cfg["head_dim"]), k("attention.value_length"): (4, cfg["head_dim"])})
        gemma = mt.startswith("gemma")
        post = mt in ("gemma2", "gemma3_text", "olmo2")
        if mt == "gemma2":
            meta.update({k("attn_logit_softcapping"): (6, cfg["attn_logit_softcapping"]), k("final_logit_softcapping"): (6, cfg["final_logit_softcapping"]),
                         k("attention.sliding_window"): (4, cfg["sliding_window"])})
        if mt == "gemma3_text":
            meta[k("attention.sliding_window")] = (4, cfg["sliding_window"])
            meta[k("rope.freq_base_swa")] = (6, float(cfg.get("rope_local_base_freq", 10000.0)))
            if cfg.get("sliding_window_pattern", 6) != 6:
                meta[k("attention.sliding_window_pattern")] = (4, cfg["sliding_window_pattern"])
            if cfg.get("final_logit_softcapping"):
                meta[k("final_logit_softcapping")] = (6, cfg["final_logit_softcapping"])
        scaling = cfg.get("rope_scaling") or {}
        if scaling.get("rope_type", scaling.get("type")) == "linear":
            meta.update({k("rope.scaling.type"): (8, "linear"), k("rope.scaling.factor"): (6, scaling["factor"])})
        if mt == "phi3":
            dims = int(cfg.get("partial_rotary_factor", 1.0) * D) // H
            meta.update({k("rope.dimension_count"): (4, dims), k("attention.sliding_window"): (4, cfg.get("sliding_window") or 0),
                         k("rope.scaling.original_context_length"): (4, cfg.get("original_max_position_embeddings", 4096))})
            if scaling.get("rope_type", scaling.get("type")) in ("longrope", "su"):
                orig = cfg.get("original_max_position_embeddings", 4096)
                s = cfg["max_position_embeddings"] / orig
                meta[k("rope.scaling.attn_factor")] = (6, math.sqrt(1 + math.log(s) / math.log(orig)) if s > 1 else 1.0)
                out += [("rope_factors_long.weight", np.array(scaling["long_factor"], dtype="<f4")),
                        ("rope_factors_short.weight", np.array(scaling["short_factor"], dtype="<f4"))]
        plus = (lambda n, x: x + 1 if n.endswith("norm.weight") else x) if gemma else (lambda n, x: x)
        out += [("token_embd.weight", t["model.embed_tokens.weight"]), ("output_norm.weight", plus("norm.weight", t["model.norm.weight"]))]
        if "lm_head.weight" in t and not gemma:
            out.append(("output.weight", t["lm_head.weight"]))
        names = dict(_DECODER_NAMES)
        names["post_attention_layernorm"] = "post_attention_norm" if post else "ffn_norm"
        names["pre_feedforward_layernorm"] = "ffn_norm"
        names["post_feedforward_layernorm"] = "post_ffw_norm"
        for name, x in t.items():
            if not name.startswith("model.layers."):
                continue
            l, rest = name[len("model.layers."):].split(".", 1)
            module, kind = rest.rsplit(".", 1)
            out.append((f"blk.{l}.{names[module]}.{kind}", plus(name, x)))
    with open(out_path, "wb") as f:
        f.write(gguf_bytes(meta, [(n, list(reversed(x.shape)), 0, np.ascontiguousarray(x, dtype="<f4").tobytes()) for n, x in out]))


def all_types_seed(out_path, seed=9):
    """A small GGUF for the fuzzer's seed corpus: one block of every ggml quantised type (random bytes,
    finite half-precision scales), each its own tensor, so a few kilobytes reach every dequantiser."""
    import ggml_quants
    rng = np.random.default_rng(seed)
    tensors = []
    for kind, (ggml_id, per_block, size, half_offsets, _) in ggml_quants.TYPES.items():
        block = bytearray(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        for off in half_offsets:
            block[off:off + 2] = np.array([rng.normal(0, 0.01)], "<f2").tobytes()
        tensors.append(("t_" + kind.lower(), [per_block], ggml_id, bytes(block)))
    with open(out_path, "wb") as f:
        f.write(gguf_bytes({"general.architecture": (8, "llama")}, tensors))
