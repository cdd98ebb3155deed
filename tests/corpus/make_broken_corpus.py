#!/usr/bin/python3
"""Writes a corpus of broken model and tokenizer files, derived at test time from ../shared (never
committed), and cases.json: for each case the loader to call, the path and the exact fragment of
the one-line error it must give. Usage: make_broken_corpus.py SHARED_DIR OUT_DIR"""
import json, os, shutil, struct, sys

shared, out = sys.argv[1], sys.argv[2]
shutil.rmtree(out, ignore_errors=True)
os.makedirs(out)
cases = []
hf_src = os.path.join(shared, "models/stories260k-hf")
gguf_src = open(os.path.join(shared, "models/stories260k/stories260K.gguf"), "rb").read()
bin_src = open(os.path.join(shared, "models/stories260k/stories260K.bin"), "rb").read()
v1_src = open(os.path.join(shared, "models/stories260k/stories260K_v1.bin"), "rb").read()
tok_src = open(os.path.join(shared, "models/stories260k/tok512.bin"), "rb").read()
st_src = open(os.path.join(hf_src, "model.safetensors"), "rb").read()
cfg_src = json.load(open(os.path.join(hf_src, "config.json")))


def case(name, kind, path, expect):
    cases.append({"name": name, "kind": kind, "path": path, "expect": expect})


def write(rel, data):
    p = os.path.join(out, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    return p


def hf(name, safetensors=None, config=None, expect="", extra=None):
    d = os.path.join(out, name)
    os.makedirs(d)
    shutil.copy(os.path.join(hf_src, "tokenizer.json"), d)
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(config if isinstance(config, str) else json.dumps(config if config is not None else cfg_src))
    if safetensors is not None:
        write(os.path.join(name, "model.safetensors"), safetensors)
    for k, v in (extra or {}).items():
        write(os.path.join(name, k), v)
    case(name, "model", d, expect)


def st_parts():
    n = struct.unpack("<Q", st_src[:8])[0]
    return json.loads(st_src[8:8 + n]), st_src[8 + n:]


def st_build(header, data):
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


# --- safetensors / Hugging Face folders ---
header, data = st_parts()
hf("st_truncated_length", st_src[:4], expect="truncated: reading header length")
hf("st_truncated_header", st_src[:100], expect="exceeds file size")
hf("st_truncated_data", st_src[:len(st_src) // 2], expect="outside the data area")
hf("st_huge_header_length", struct.pack("<Q", 1 << 40) + st_src[8:], expect="header length 1099511627776 exceeds file size")
hf("st_header_not_json", struct.pack("<Q", 10) + b"not json!!" + data, expect="bad JSON header")
hf("st_header_array", st_build([1, 2], data), expect="header is not a JSON object")
h = json.loads(json.dumps(header)); h["model.norm.weight"]["shape"] = [-64]
hf("st_negative_dim", st_build(h, data), expect="negative or non-integer dimension")
h = json.loads(json.dumps(header)); h["model.norm.weight"]["data_offsets"] = [len(data) - 8, len(data) + 248]
hf("st_offset_past_end", st_build(h, data), expect="outside the data area")
h = json.loads(json.dumps(header)); a, b = h["model.norm.weight"]["data_offsets"]
h["model.norm.weight"]["data_offsets"] = [0, b - a]
hf("st_overlapping", st_build(h, data), expect="tensors overlap")
h = json.loads(json.dumps(header)); h["model.norm.weight"]["dtype"] = "F8_E4M3"
hf("st_unknown_dtype", st_build(h, data), expect="unsupported dtype 'F8_E4M3'")
h = json.loads(json.dumps(header)); h["model.norm.weight"]["dtype"] = "F16"
hf("st_wrong_byte_count", st_build(h, data), expect="bytes; expected 128 for shape [64] F16")
h = json.loads(json.dumps(header)); del h["model.norm.weight"]
hf("st_missing_tensor", st_build(h, data), expect="missing tensor 'model.norm.weight'")
c = dict(cfg_src); c["hidden_size"] = 32; c["head_dim"] = 4
hf("cfg_shape_mismatch", st_src, c, expect="has wrong shape; expected [512, 32], got [512, 64]")
c = dict(cfg_src); del c["num_hidden_layers"]
hf("cfg_missing_key", st_src, c, expect="missing key 'num_hidden_layers'")
hf("cfg_bad_json", st_src, '{"model_type": "llama", ', expect="config.json: bad JSON")
c = dict(cfg_src); c["model_type"] = "mamba"
hf("cfg_unknown_type", st_src, c, expect="model_type 'mamba' unsupported")
c = dict(cfg_src); c["num_key_value_heads"] = 3
hf("cfg_kv_heads", st_src, c, expect="must be a multiple of n_kv_heads (3)")
c = dict(cfg_src); c["num_hidden_layers"] = -5
hf("cfg_negative_layers", st_src, c, expect="n_layers must be positive, got -5")
hf("cfg_wrong_type", st_src, dict(cfg_src, hidden_size="64"), expect="key 'hidden_size' has the wrong type")
# Found by the config fuzzer in CI: the RoPE tables were allocated for the whole declared context.
hf("cfg_huge_context", st_src, dict(cfg_src, max_position_embeddings=5999999999999913),
   expect="n_ctx (max_position_embeddings) must be between 1 and 16777216, got 5999999999999913")
# Keys that change the maths and are not implemented: refused by name, never ignored.
hf("cfg_rope_unknown", st_src, dict(cfg_src, rope_scaling={"rope_type": "mrope", "factor": 2.0}),
   expect="rope_type 'mrope' is not implemented (implemented: default, linear, llama3, yarn, dynamic, longrope)")
hf("cfg_rope_longrope_short_list", st_src, dict(cfg_src, rope_scaling={"rope_type": "longrope", "factor": 2.0, "short_factor": [1.0],
                                                                         "long_factor": [1.0, 2.0, 3.0, 4.0]}),
   expect="short_factor and long_factor need one entry per rotary pair (4), got 1 and 4")
hf("cfg_rope_longrope_zero_factor", st_src, dict(cfg_src, rope_scaling={"rope_type": "longrope", "factor": 2.0, "short_factor": [1.0] * 4,
                                                                          "long_factor": [1.0, 0.0, 3.0, 4.0]}),
   expect="short_factor and long_factor must be positive and finite")
hf("cfg_rope_dynamic_no_factor", st_src, dict(cfg_src, rope_scaling={"rope_type": "dynamic"}), expect="rope_scaling: missing key 'factor'")
hf("cfg_rope_llama3_incomplete", st_src, dict(cfg_src, rope_scaling={"rope_type": "llama3", "factor": 8.0}),
   expect="rope_scaling: missing key 'low_freq_factor'")
hf("cfg_mlp_bias", st_src, dict(cfg_src, mlp_bias=True), expect="mlp_bias = true changes the computation and is not implemented")
# New families on stories260K's tensors: their own names are missing or their config is short of a key.
hf("cfg_qwen3_missing_qk_norm", st_src, dict(cfg_src, model_type="qwen3"), expect="missing tensor 'model.layers.0.self_attn.q_norm.weight'")
hf("cfg_gemma2_missing_pre_feedforward", st_src, dict(cfg_src, model_type="gemma2", head_dim=8),
   expect="missing tensor 'model.layers.0.pre_feedforward_layernorm.weight'")
hf("cfg_neox_without_biases", st_src, dict(cfg_src, model_type="gpt_neox"),
   expect="attention_bias = false changes the computation and is not implemented (attention without biases)")
hf("cfg_neox_missing_tensor", st_src, dict(cfg_src, model_type="gpt_neox", attention_bias=True), expect="missing tensor 'gpt_neox.embed_in.weight'")
hf("cfg_layer_types_short", st_src, dict(cfg_src, model_type="qwen3", use_sliding_window=True, sliding_window=4, layer_types=["full_attention"]),
   expect="layer_types must list 5 layers")
# Sharded: the same tensor in two shards.
idx = {"weight_map": {k: ("a.safetensors" if i % 2 else "b.safetensors") for i, k in enumerate(k for k in header if k != "__metadata__")}}
hf("st_duplicate_across_shards", None, expect="duplicate tensor",
   extra={"model.safetensors.index.json": json.dumps(idx), "a.safetensors": st_src, "b.safetensors": st_src})

# --- GGUF ---
def gguf(name, data, expect):
    case(name, "model", write(name + ".gguf", data), expect)

gguf("gguf_bad_magic", b"GGUX" + gguf_src[4:], "not a GGUF file")
gguf("gguf_version_1", gguf_src[:4] + struct.pack("<I", 1) + gguf_src[8:], "GGUF version 1 unsupported")
gguf("gguf_truncated_header", gguf_src[:20], "truncated: reading metadata count")
gguf("gguf_truncated_metadata", gguf_src[:2000], "truncated")
gguf("gguf_truncated_data", gguf_src[:20000], "lies past the end of the file")
gguf("gguf_huge_tensor_count", gguf_src[:8] + struct.pack("<Q", 1 << 50) + gguf_src[16:], "more than a 1185376-byte file can hold")
# The first metadata key's length field (right after the 24-byte header) declares 2^60 bytes.
gguf("gguf_huge_string", gguf_src[:24] + struct.pack("<Q", 1 << 60) + gguf_src[32:], "declares 1152921504606846976 bytes")
# Tensor infos: the first one follows the metadata; find it by its name.
first = gguf_src.find(b"token_embd.weight") - 8
def patch_info(delta_from_name_end, value, fmt):
    pos = first + 8 + len(b"token_embd.weight") + delta_from_name_end
    return gguf_src[:pos] + struct.pack(fmt, value) + gguf_src[pos + struct.calcsize(fmt):]
gguf("gguf_bad_ndims", patch_info(0, 7, "<I"), "has 7 dims (expected 1..4)")
gguf("gguf_unknown_type", patch_info(4 + 16, 4, "<I"), "has ggml type 4; supported: F32 (0), F16 (1), Q4_0 (2)")
gguf("gguf_offset_past_end", patch_info(4 + 16 + 4, 1 << 40, "<Q"), "lies past the end of the file")
# A quantised type on a tensor that is not a whole number of its blocks: output_norm.weight has 64
# values, a Q4_K block 256 (llama.cpp writes such tensors in a fallback type).
norm_name = b"output_norm.weight"
norm_type = gguf_src.find(norm_name) + len(norm_name) + 4 + 8  # after n_dims (u32) and its one dimension (u64)
gguf("gguf_quant_partial_block", gguf_src[:norm_type] + struct.pack("<I", 12) + gguf_src[norm_type + 4:],
     "Q4_K tensor has 64 elements, not a multiple of 256")

# The new families' GGUF layouts: stories260K's file retargeted to another general.architecture (its
# llama.* keys renamed), and tiny files with one key or tensor that the family's reader refuses.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import numpy as np
import quantize_gguf


def retarget(arch, extra_keys=None):
    r = quantize_gguf.Reader(gguf_src)
    magic, version, n_tensors, n_kv = r.take("<4s"), r.take("<I"), r.take("<Q"), r.take("<Q")
    kv = []
    for _ in range(n_kv):
        key = r.string().decode()
        t = r.take("<I")
        raw = r.value(t)
        if key == "general.architecture":
            raw = struct.pack("<Q", len(arch)) + arch.encode()
        kv.append((key.replace("llama.", arch + ".", 1) if key.startswith("llama.") else key, t, raw))
    for key, (t, v) in (extra_keys or {}).items():
        kv.append((key, t, struct.pack(quantize_gguf.SCALAR[t], v)))
    head = magic + struct.pack("<IQQ", version, n_tensors, len(kv))
    head += b"".join(struct.pack("<Q", len(k)) + k.encode() + struct.pack("<I", t) + raw for k, t, raw in kv)
    return head + gguf_src[r.p:]


gguf("gguf_qwen3_missing_q_norm", retarget("qwen3"), "missing tensor 'blk.0.attn_q_norm.weight'")
gguf("gguf_gemma2_missing_post_norm", retarget("gemma2"), "missing tensor 'blk.0.post_attention_norm.weight'")
gguf("gguf_olmo2_sliding", retarget("olmo2", {"olmo2.attention.sliding_window": (4, 4)}),
     "olmo2.attention.sliding_window (OLMo-3's sliding layers) is not implemented")
gguf("gguf_gemma3_zero_pattern", retarget("gemma3", {"gemma3.attention.sliding_window": (4, 4), "gemma3.attention.sliding_window_pattern": (4, 0)}),
     "gemma3.attention.sliding_window_pattern must be positive, got 0")
gguf("gguf_gptneox_no_layernorm_eps", retarget("gptneox"), "missing key 'gptneox.attention.layer_norm_epsilon'")
gguf("gguf_value_length", retarget("qwen3", {"qwen3.attention.key_length": (4, 8), "qwen3.attention.value_length": (4, 16)}),
     "qwen3.attention.value_length 16 differs from key_length 8 (not implemented)")


def tiny(arch, tensors):
    """A GGUF holding only the tensors the reader needs before it refuses the file."""
    meta = {"general.architecture": (8, arch), arch + ".embedding_length": (4, 8), arch + ".feed_forward_length": (4, 16),
            arch + ".block_count": (4, 1), arch + ".attention.head_count": (4, 2), arch + ".context_length": (4, 64)}
    tensors = dict(tensors, **{"token_embd.weight": np.zeros((10, 8), "<f4")})
    return quantize_gguf.gguf_bytes(meta, [(n, list(reversed(x.shape)), 0, x.tobytes()) for n, x in tensors.items()])


gguf("gguf_llama_rope_factors", tiny("llama", {"rope_factors_long.weight": np.ones(2, "<f4")}),
     "tensors 'rope_factors_long/short.weight' (LongRoPE) are implemented for phi3 only, not llama")
gguf("gguf_phi3_one_rope_factor", tiny("phi3", {"rope_factors_long.weight": np.ones(2, "<f4")}),
     "rope_factors_long.weight and rope_factors_short.weight come together")

# --- llama2.c ---
def l2c(name, data, expect):
    case(name, "model", write(name + ".bin", data), expect)

l2c("l2c_truncated", bin_src[:len(bin_src) // 3], "truncated llama2.c checkpoint")
l2c("l2c_negative_layers", struct.pack("<i", 64) + struct.pack("<i", 172) + struct.pack("<i", -5) + bin_src[12:], "header field n_layers = -5 is invalid")
l2c("l2c_heads_not_dividing", bin_src[:12] + struct.pack("<i", 7) + bin_src[16:], "header field n_heads = 7 is invalid")
l2c("l2c_size_mismatch", bin_src + b"\0" * 12, "does not match its header")
l2c("l2c_v1_bad_version", v1_src[:4] + struct.pack("<i", 2) + v1_src[8:], "llama2.c version 2 unsupported")
l2c("l2c_empty", b"", "truncated: reading magic or dim")

# --- tokenizers ---
def tok(name, data, expect, ext):
    case(name, "tokenizer", write(name + ext, data), expect)

tok("tok_bin_truncated", tok_src[:100], "truncated", ".bin")
tok("tok_bin_huge_length", tok_src[:4 + 4] + struct.pack("<i", 1 << 20) + tok_src[12:], "has length 1048576", ".bin")
tj = json.load(open(os.path.join(hf_src, "tokenizer.json")))
t = json.loads(json.dumps(tj)); t["model"]["merges"] = [[1, 2]]
tok("tokjson_bad_merge", json.dumps(t), "a merge must be", ".json")
t = json.loads(json.dumps(tj)); t["model"]["type"] = "Unigram"
tok("tokjson_unigram", json.dumps(t), "model.type 'Unigram' unsupported", ".json")
tok("tokjson_invalid_utf8", json.dumps(tj).encode()[:200] + b"\xff\xfe" + json.dumps(tj).encode()[200:], "bad JSON", ".json")
tok("tokjson_no_model", json.dumps({"version": "1.0"}), "malformed tokenizer.json", ".json")
tok("spm_garbage", b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "varint longer than 10 bytes", ".model")
case("gpt2_vocab_bad_id", "gpt2vocab", write("gpt2/encoder.json", json.dumps({"a": "x"})) + "|" + write("gpt2/vocab.bpe", "#version: 0.2\n"),
     "id of 'a' is not an integer")

# Regressions found by the fuzzers (fuzz/run_fuzzers.sh).
l2c("fuzz_l2c_vocab_int_min", bin_src[:20] + struct.pack("<i", -2**31) + bin_src[24:], "vocab_size = -2147483648 is invalid")
t = json.loads(json.dumps(tj)); t["model"]["vocab"]["<unk>"] = -7
tok("fuzz_tokjson_negative_id", json.dumps(t), "id -7 of '<unk>' is out of range", ".json")
t = json.loads(json.dumps(tj)); t["model"]["vocab"]["<unk>"] = 9000000
tok("fuzz_tokjson_sparse_ids", json.dumps(t), "token ids are sparse", ".json")
case("fuzz_gpt2_number_overflow", "gpt2vocab", write("gpt2o/encoder.json", '{"a": 17e1761}') + "|" + write("gpt2o/vocab.bpe", "#version: 0.2\n"),
     "bad JSON")

json.dump(cases, open(os.path.join(out, "cases.json"), "w"), indent=1)
print(f"{len(cases)} broken inputs written to {out}")
