#!/usr/bin/python3
"""Writes tiny random GPT-2, Mistral and Qwen2 checkpoints in Hugging Face layout, with logits
from an independent forward that follows the published model definitions (transformers'
modeling_gpt2 / modeling_mistral / modeling_qwen2), written from scratch in PyTorch here.
It shares no code with HeadLab's runtime. Usage: make_reference_models.py OUT_DIR"""
import json, math, os, struct, sys
import numpy as np
import torch

torch.manual_seed(1234)


def save_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.contiguous().numpy().astype('<f4').tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))


def rnd(*shape, s=0.3):
    return torch.randn(*shape) * s


def gpt2():
    D, H, L, V, C, F = 32, 4, 2, 60, 40, 128
    cfg = {"model_type": "gpt2", "n_embd": D, "n_head": H, "n_layer": L, "vocab_size": V, "n_positions": C,
           "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}
    w = {"transformer.wte.weight": rnd(V, D, s=1.0), "transformer.wpe.weight": rnd(C, D),
         "transformer.ln_f.weight": 1 + rnd(D, s=0.1), "transformer.ln_f.bias": rnd(D, s=0.1)}
    for l in range(L):
        p = f"transformer.h.{l}."
        w.update({p + "ln_1.weight": 1 + rnd(D, s=0.1), p + "ln_1.bias": rnd(D, s=0.1),
                  p + "attn.c_attn.weight": rnd(D, 3 * D), p + "attn.c_attn.bias": rnd(3 * D),
                  p + "attn.c_proj.weight": rnd(D, D), p + "attn.c_proj.bias": rnd(D),
                  p + "ln_2.weight": 1 + rnd(D, s=0.1), p + "ln_2.bias": rnd(D, s=0.1),
                  p + "mlp.c_fc.weight": rnd(D, F), p + "mlp.c_fc.bias": rnd(F),
                  p + "mlp.c_proj.weight": rnd(F, D), p + "mlp.c_proj.bias": rnd(D)})

    def gelu_new(x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))

    def forward(ids):
        T = ids.shape[0]
        h = w["transformer.wte.weight"][ids] + w["transformer.wpe.weight"][torch.arange(T)]
        for l in range(L):
            p = f"transformer.h.{l}."
            a = torch.nn.functional.layer_norm(h, (D,), w[p + "ln_1.weight"], w[p + "ln_1.bias"], 1e-5)
            qkv = a @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]  # Conv1D: x @ W[in, out]
            q, k, v = qkv.split(D, dim=-1)
            q, k, v = (t.view(T, H, D // H).transpose(0, 1) for t in (q, k, v))
            att = q @ k.transpose(-1, -2) / math.sqrt(D // H)
            att = att.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float('-inf')).softmax(-1)
            y = (att @ v).transpose(0, 1).reshape(T, D)
            h = h + y @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
            m = torch.nn.functional.layer_norm(h, (D,), w[p + "ln_2.weight"], w[p + "ln_2.bias"], 1e-5)
            h = h + gelu_new(m @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"]) @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
        h = torch.nn.functional.layer_norm(h, (D,), w["transformer.ln_f.weight"], w["transformer.ln_f.bias"], 1e-5)
        return h @ w["transformer.wte.weight"].T

    return cfg, w, forward, V


def llama_like(kind):
    D, H, KV, L, V, C, F = 32, 4, 2, 2, 60, 64, 48
    dh = D // H
    cfg = {"model_type": kind, "hidden_size": D, "intermediate_size": F, "num_hidden_layers": L,
           "num_attention_heads": H, "num_key_value_heads": KV, "vocab_size": V, "max_position_embeddings": C,
           "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False}
    window = None
    if kind == "llama":
        V = 64
        cfg["vocab_size"] = V
    if kind == "mistral":
        window = 6
        cfg["sliding_window"] = window
    w = {"model.embed_tokens.weight": rnd(V, D, s=1.0), "model.norm.weight": 1 + rnd(D, s=0.1),
         "lm_head.weight": rnd(V, D)}
    for l in range(L):
        p = f"model.layers.{l}."
        w.update({p + "input_layernorm.weight": 1 + rnd(D, s=0.1), p + "post_attention_layernorm.weight": 1 + rnd(D, s=0.1),
                  p + "self_attn.q_proj.weight": rnd(H * dh, D), p + "self_attn.k_proj.weight": rnd(KV * dh, D),
                  p + "self_attn.v_proj.weight": rnd(KV * dh, D), p + "self_attn.o_proj.weight": rnd(D, H * dh),
                  p + "mlp.gate_proj.weight": rnd(F, D), p + "mlp.up_proj.weight": rnd(F, D), p + "mlp.down_proj.weight": rnd(D, F)})
        if kind == "qwen2":
            w.update({p + "self_attn.q_proj.bias": rnd(H * dh), p + "self_attn.k_proj.bias": rnd(KV * dh),
                      p + "self_attn.v_proj.bias": rnd(KV * dh)})

    def rms(x, g):
        return g * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))

    def rotate_half(x):
        x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
        return torch.cat((-x2, x1), dim=-1)

    def forward(ids):
        T = ids.shape[0]
        inv_freq = 1.0 / (10000.0 ** (torch.arange(0, dh, 2).float() / dh))
        freqs = torch.outer(torch.arange(T).float(), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        i = torch.arange(T)[:, None]
        j = torch.arange(T)[None, :]
        masked = j > i
        if window:
            masked = masked | (i - j >= window)
        h = w["model.embed_tokens.weight"][ids]
        for l in range(L):
            p = f"model.layers.{l}."
            a = rms(h, w[p + "input_layernorm.weight"])

            def proj(name, n):
                y = a @ w[p + f"self_attn.{name}_proj.weight"].T
                if p + f"self_attn.{name}_proj.bias" in w:
                    y = y + w[p + f"self_attn.{name}_proj.bias"]
                return y.view(T, n, dh).transpose(0, 1)

            q, k, v = proj("q", H), proj("k", KV), proj("v", KV)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k = k.repeat_interleave(H // KV, dim=0)  # repeat_kv
            v = v.repeat_interleave(H // KV, dim=0)
            att = (q @ k.transpose(-1, -2) / math.sqrt(dh)).masked_fill(masked, float('-inf')).softmax(-1)
            y = (att @ v).transpose(0, 1).reshape(T, H * dh)
            h = h + y @ w[p + "self_attn.o_proj.weight"].T
            m = rms(h, w[p + "post_attention_layernorm.weight"])
            g = torch.nn.functional.silu(m @ w[p + "mlp.gate_proj.weight"].T) * (m @ w[p + "mlp.up_proj.weight"].T)
            h = h + g @ w[p + "mlp.down_proj.weight"].T
        return rms(h, w["model.norm.weight"]) @ w["lm_head.weight"].T

    return cfg, w, forward, V


def llava():
    """A tiny LLaVA-1.5: CLIP ViT tower (pre-LN, quick-GELU, class token, learned positions), the
    two-layer GELU projector, and a LLaMA decoder; the image placeholder is expanded to the patch
    features (modeling_llava / modeling_clip), vision_feature_layer -2, strategy 'default'."""
    S, P, Dv, Hv, Lv, Fv = 12, 4, 16, 2, 2, 32
    N = (S // P) ** 2
    tcfg, tw, _, V = llama_like("llama")
    image_token = V - 1
    cfg = {"model_type": "llava", "architectures": ["LlavaForConditionalGeneration"], "image_token_index": image_token,
           "vision_feature_layer": -2, "vision_feature_select_strategy": "default", "projector_hidden_act": "gelu",
           "text_config": tcfg,
           "vision_config": {"model_type": "clip_vision_model", "hidden_size": Dv, "intermediate_size": Fv,
                             "num_hidden_layers": Lv, "num_attention_heads": Hv, "image_size": S, "patch_size": P,
                             "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "num_channels": 3}}
    D = tcfg["hidden_size"]
    vp = "vision_tower.vision_model."
    w = {vp + "embeddings.patch_embedding.weight": rnd(Dv, 3, P, P), vp + "embeddings.class_embedding": rnd(Dv),
         vp + "embeddings.position_embedding.weight": rnd(N + 1, Dv), vp + "pre_layrnorm.weight": 1 + rnd(Dv, s=0.1),
         vp + "pre_layrnorm.bias": rnd(Dv, s=0.1), vp + "post_layernorm.weight": 1 + rnd(Dv, s=0.1),
         vp + "post_layernorm.bias": rnd(Dv, s=0.1),
         "multi_modal_projector.linear_1.weight": rnd(D, Dv), "multi_modal_projector.linear_1.bias": rnd(D),
         "multi_modal_projector.linear_2.weight": rnd(D, D), "multi_modal_projector.linear_2.bias": rnd(D)}
    for l in range(Lv):
        p = vp + f"encoder.layers.{l}."
        for n in ("q", "k", "v", "out"):
            w[p + f"self_attn.{n}_proj.weight"] = rnd(Dv, Dv)
            w[p + f"self_attn.{n}_proj.bias"] = rnd(Dv)
        w.update({p + "layer_norm1.weight": 1 + rnd(Dv, s=0.1), p + "layer_norm1.bias": rnd(Dv, s=0.1),
                  p + "layer_norm2.weight": 1 + rnd(Dv, s=0.1), p + "layer_norm2.bias": rnd(Dv, s=0.1),
                  p + "mlp.fc1.weight": rnd(Fv, Dv), p + "mlp.fc1.bias": rnd(Fv),
                  p + "mlp.fc2.weight": rnd(Dv, Fv), p + "mlp.fc2.bias": rnd(Dv)})
    for k, t in tw.items():
        w["language_model." + k] = t

    def ln(x, name):
        return torch.nn.functional.layer_norm(x, (Dv,), w[name + ".weight"], w[name + ".bias"], 1e-5)

    def vision(pixels):  # [3, S, S] -> hidden states after each layer, [N + 1, Dv] each
        patches = torch.nn.functional.conv2d(pixels[None], w[vp + "embeddings.patch_embedding.weight"], stride=P)
        x = patches.flatten(2).transpose(1, 2)[0]  # [N, Dv], row-major over the patch grid
        x = torch.cat([w[vp + "embeddings.class_embedding"][None], x]) + w[vp + "embeddings.position_embedding.weight"]
        x = ln(x, vp + "pre_layrnorm")
        states = [x]
        dh = Dv // Hv
        for l in range(Lv):
            p = vp + f"encoder.layers.{l}."
            a = ln(x, p + "layer_norm1")
            q, k, v = (torch.nn.functional.linear(a, w[p + f"self_attn.{n}_proj.weight"], w[p + f"self_attn.{n}_proj.bias"])
                       .view(-1, Hv, dh).transpose(0, 1) for n in ("q", "k", "v"))
            att = (q * dh ** -0.5 @ k.transpose(-1, -2)).softmax(-1)
            y = (att @ v).transpose(0, 1).reshape(-1, Dv)
            x = x + torch.nn.functional.linear(y, w[p + "self_attn.out_proj.weight"], w[p + "self_attn.out_proj.bias"])
            m = torch.nn.functional.linear(ln(x, p + "layer_norm2"), w[p + "mlp.fc1.weight"], w[p + "mlp.fc1.bias"])
            m = m * torch.sigmoid(1.702 * m)
            x = x + torch.nn.functional.linear(m, w[p + "mlp.fc2.weight"], w[p + "mlp.fc2.bias"])
            states.append(x)
        return states

    def features(pixels):
        return vision(pixels)[-2][1:]  # vision_feature_layer -2, 'default' drops the class token

    def project(f):
        h = torch.nn.functional.linear(f, w["multi_modal_projector.linear_1.weight"], w["multi_modal_projector.linear_1.bias"])
        h = torch.nn.functional.gelu(h)
        return torch.nn.functional.linear(h, w["multi_modal_projector.linear_2.weight"], w["multi_modal_projector.linear_2.bias"])

    return cfg, w, vision, features, project, tw, image_token, (S, N)


def llava_main(out):
    cfg, w, vision, features, project, tw, image_token, (S, N) = llava()
    _, _, text_forward_unused, V = None, None, None, cfg["text_config"]["vocab_size"]
    d = os.path.join(out, "llava")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    save_safetensors(os.path.join(d, "model.safetensors"), w)
    # The same weights under transformers >= 4.52 names (model.vision_tower, model.language_model, lm_head).
    d2 = os.path.join(out, "llava_new_layout")
    os.makedirs(d2, exist_ok=True)
    renamed = {}
    for k, t in w.items():
        if k.startswith("language_model.model."):
            renamed["model.language_model." + k[len("language_model.model."):]] = t
        elif k == "language_model.lm_head.weight":
            renamed["lm_head.weight"] = t
        else:
            renamed["model." + k] = t
    with open(os.path.join(d2, "config.json"), "w") as f:
        json.dump(cfg, f)
    save_safetensors(os.path.join(d2, "model.safetensors"), renamed)
    # A word-level tokenizer (w2 .. w62 by id, BOS <s>, the image placeholder <image>), so that the
    # GUI test can type prompts.
    vocab = {"<unk>": 0, "<s>": 1, "<image>": image_token}
    vocab.update({"w%d" % i: i for i in range(2, V) if i != image_token})
    tokenizer = {"version": "1.0", "normalizer": None, "decoder": None,
                 "added_tokens": [{"id": 1, "content": "<s>", "special": True},
                                  {"id": image_token, "content": "<image>", "special": True}],
                 "pre_tokenizer": {"type": "WhitespaceSplit"},
                 "post_processor": {"type": "TemplateProcessing",
                                    "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]},
                 "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}}
    for folder in (d, d2):
        with open(os.path.join(folder, "tokenizer.json"), "w") as f:
            json.dump(tokenizer, f)

    pixels = torch.randn(3, S, S)
    ids = [1, 5, 7, image_token, 9, 11, 13]
    with torch.no_grad():
        feats = features(pixels)
        img = project(feats)
        # The LLaMA decoder on the spliced embeddings: reuse the text reference by feeding embeddings.
        emb = tw["model.embed_tokens.weight"]
        pos = ids.index(image_token)
        x = torch.cat([emb[torch.tensor(ids[:pos])], img, emb[torch.tensor(ids[pos + 1:])]])
        logits = llama_from_embeddings(tw, cfg["text_config"], x)
        # VAR on the spliced prompt, every layer edited (first_layer 0, the last included) so that the
        # online selection of layer 1 sees layer 0's redistribution; tau 1.5 makes sinks of random weights.
        var_cases = [dict(tau=1.5, rho=0.5, summ=0.2, p=0.6, first_layer=0, except_last=False, online=online) for online in (True, False)]
        var = [dict(c, **var_reference(tw, cfg["text_config"], x.double(), pos, pos + N, **c)) for c in var_cases]
    with open(os.path.join(d, "var_reference.json"), "w") as f:
        json.dump(var, f)
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump({"tokens": ids, "pixels": pixels.flatten().tolist(), "image_size": S, "image_begin": pos, "image_end": pos + N,
                   "vision_features": feats.flatten().tolist(), "vision_shape": list(feats.shape),
                   "logits": logits.flatten().tolist(), "shape": list(logits.shape)}, f)


def var_reference(w, cfg, h, im, ie, tau, rho, summ, p, first_layer, except_last, online, dims=None):
    """VAR (MICV-yonsei/VisAttnSink, src/logic/logic.py and src/model/llava.py), written out independently
    on a LLaMA decoder fed the spliced embeddings h [T, D] (float64): DimProspector on each layer's input
    hidden states (|RMSNorm| without weight, eps 1e-6, max over the sink dims > tau), HeadFork on the
    softmaxed attention (portion = sum over visual sinks / sum(image + 1e-6) <= rho, image sum >= summ,
    query rows after the image), VARProcessor's redistribution (text and visual sinks times p, the budget
    to the image by the non-sink image attention ratios). The sink dims are those where the first token
    exceeds tau from first_layer on, on the unedited forward. online: selections inside the edited
    forward; else on the unedited one."""
    H, KV, L = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["num_hidden_layers"]
    dh, T = cfg["hidden_size"] // H, h.shape[0]
    inv = 1.0 / (10000.0 ** (torch.arange(0, dh, 2, dtype=torch.float64) / dh))
    f = torch.outer(torch.arange(T, dtype=torch.float64), inv)
    cos, sin = torch.cat((f, f), -1).cos(), torch.cat((f, f), -1).sin()
    wd = {k: v.double() for k, v in w.items()}

    def rms(x, g):
        return g * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))

    def magnitude(x):
        return (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)).abs()

    def forward(hook_resid, hook_attn):
        x = h.clone()
        masked = torch.arange(T)[None, :] > torch.arange(T)[:, None]
        for l in range(L):
            pre = f"model.layers.{l}."
            hook_resid(l, x)
            a = rms(x, wd[pre + "input_layernorm.weight"])
            q, k, v = ((a @ wd[pre + f"self_attn.{n}_proj.weight"].T).view(T, m, dh).transpose(0, 1) for n, m in (("q", H), ("k", KV), ("v", KV)))
            rot = lambda t: t * cos + torch.cat((-t[..., dh // 2:], t[..., : dh // 2]), -1) * sin
            q, k = rot(q), rot(k)
            k, v = k.repeat_interleave(H // KV, 0), v.repeat_interleave(H // KV, 0)
            att = hook_attn(l, (q @ k.transpose(-1, -2) / math.sqrt(dh)).masked_fill(masked, float("-inf")).softmax(-1))
            x = x + (att @ v).transpose(0, 1).reshape(T, H * dh) @ wd[pre + "self_attn.o_proj.weight"].T
            m2 = rms(x, wd[pre + "post_attention_layernorm.weight"])
            x = x + (torch.nn.functional.silu(m2 @ wd[pre + "mlp.gate_proj.weight"].T) * (m2 @ wd[pre + "mlp.up_proj.weight"].T)) @ wd[pre + "mlp.down_proj.weight"].T
        return (rms(x, wd["model.norm.weight"]) @ wd["lm_head.weight"].T)[-1]

    found = set()
    before = forward(lambda l, x: found.update(torch.nonzero(magnitude(x)[0] > tau).flatten().tolist()) if l >= first_layer and dims is None else None,
                     lambda l, a: a)
    dims = sorted(found) if dims is None else dims
    sinks, centric = {}, {}

    def find(l, x):
        if l >= first_layer and dims:
            peak = magnitude(x)[:, dims].max(-1).values
            idx = torch.nonzero(peak > tau).flatten().tolist()
            sinks[l] = ([i for i in idx if im <= i < ie], [i for i in idx if not im <= i < ie])
        elif l >= first_layer:
            sinks[l] = ([], [])

    def fork(l, a):
        vis = sinks.get(l, ([], []))[0]
        if l < first_layer or (except_last and l == L - 1) or not vis:
            return None
        image = a[:, :, im:ie]
        portion = a[:, :, vis].sum(-1) / (image + 1e-6).sum(-1)
        rows = (portion <= rho) & (image.sum(-1) >= summ) & (torch.arange(T)[None, :] >= ie)
        return rows  # [H, T]

    def redistribute(l, a, rows):
        if rows is None or not rows.any():
            return a
        vis, text = sinks[l]
        a = a.clone()
        for hh in range(H):
            for qq in torch.nonzero(rows[hh]).flatten().tolist():
                row = a[hh, qq].clone()
                copy = row.clone()
                budget = (copy[vis].sum() + copy[text].sum()) * (1 - p)
                row[text] *= p
                row[vis] *= p
                copy[vis] = 0
                ratios = copy[im:ie] / copy[im:ie].sum()
                row[im:ie] += budget * ratios
                a[hh, qq] = row
        return a

    chosen = {}
    if online:
        def edit(l, a):
            chosen[l] = fork(l, a)
            return redistribute(l, a, chosen[l])
        after = forward(find, edit)
    else:
        def select(l, a):
            chosen[l] = fork(l, a)
            return a
        forward(find, select)
        after = forward(lambda l, x: None, lambda l, a: redistribute(l, a, chosen.get(l)))
    grid = [[0.0] * H for _ in range(L)]
    for l, rows in chosen.items():
        if rows is not None:
            grid[l] = rows.sum(-1).double().tolist()
    return {"sink_dims": dims, "sinks": [sinks.get(l, ([], [])) for l in range(L)], "grid": grid,
            "max_abs_logit_change": (after - before).abs().max().item()}


def llama_decoder(w, h, cos, sin, H, KV, dh, L, eps, unembed):
    """LlamaForCausalLM's layers on embeddings h [T, D] (rotate-half RoPE tables cos/sin [T, dh], GQA
    by repeating kv heads, causal), then the final RMSNorm and the unembedding."""
    T = h.shape[0]

    def rms(x, g):
        return g * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def rotate_half(x):
        return torch.cat((-x[..., dh // 2:], x[..., : dh // 2]), dim=-1)

    masked = torch.arange(T)[None, :] > torch.arange(T)[:, None]
    for l in range(L):
        p = f"model.layers.{l}."
        a = rms(h, w[p + "input_layernorm.weight"])
        q, k, v = ((a @ w[p + f"self_attn.{n}_proj.weight"].T).view(T, m, dh).transpose(0, 1)
                   for n, m in (("q", H), ("k", KV), ("v", KV)))
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k, v = k.repeat_interleave(H // KV, dim=0), v.repeat_interleave(H // KV, dim=0)
        att = (q @ k.transpose(-1, -2) / math.sqrt(dh)).masked_fill(masked, float('-inf')).softmax(-1)
        h = h + (att @ v).transpose(0, 1).reshape(T, H * dh) @ w[p + "self_attn.o_proj.weight"].T
        m = rms(h, w[p + "post_attention_layernorm.weight"])
        h = h + (torch.nn.functional.silu(m @ w[p + "mlp.gate_proj.weight"].T) * (m @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
    return rms(h, w["model.norm.weight"]) @ unembed.T


def llama_from_embeddings(w, cfg, h):
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    L, dh = cfg["num_hidden_layers"], cfg["hidden_size"] // cfg["num_attention_heads"]
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, dh, 2).float() / dh))
    freqs = torch.outer(torch.arange(h.shape[0]).float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return llama_decoder(w, h, emb.cos(), emb.sin(), H, KV, dh, L, 1e-6, w["lm_head.weight"])


def rope_inv_freq(dim, base, scaling, max_positions, length=0, original_max=None):
    """Inverse RoPE frequencies and the cos/sin scale, from the rope_scaling definitions of
    transformers' modeling_rope_utils (linear, llama3, yarn, dynamic, longrope), written out here
    independently. length: the positions a forward covers (max(position_ids) + 1), which dynamic and
    longrope read; original_max: the config's top-level original_max_position_embeddings (Phi-3)."""
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    if not scaling:
        return inv, 1.0
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind == "longrope":
        old = original_max or max_positions
        factor = max_positions / original_max if original_max else scaling["factor"]
        mscale = scaling.get("attention_factor") or (1.0 if factor <= 1 else math.sqrt(1 + math.log(factor) / math.log(old)))
        ext = torch.tensor(scaling["long_factor"] if length > old else scaling["short_factor"], dtype=torch.float64)
        return inv / ext, mscale
    factor = scaling["factor"]
    if kind == "dynamic":
        if length > max_positions:  # NTK: the base grows with the length covered
            base = base * (factor * length / max_positions - (factor - 1)) ** (dim / (dim - 2))
        return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)), 1.0
    if kind == "linear":
        return inv / factor, 1.0
    if kind == "llama3":
        old = scaling["original_max_position_embeddings"]
        lo, hi = scaling["low_freq_factor"], scaling["high_freq_factor"]
        out = []
        for f in inv.tolist():
            wavelen = 2 * math.pi / f
            if wavelen < old / hi:
                out.append(f)  # high frequency: kept
            elif wavelen > old / lo:
                out.append(f / factor)  # low frequency: interpolated by the factor
            else:
                smooth = (old / wavelen - lo) / (hi - lo)
                out.append((1 - smooth) * f / factor + smooth * f)
        return torch.tensor(out, dtype=torch.float64), 1.0
    if kind == "yarn":
        old = scaling.get("original_max_position_embeddings") or max_positions
        beta_fast, beta_slow = scaling.get("beta_fast", 32), scaling.get("beta_slow", 1)

        def correction_dim(rotations):
            return dim * math.log(old / (rotations * 2 * math.pi)) / (2 * math.log(base))

        low, high = math.floor(correction_dim(beta_fast)), math.ceil(correction_dim(beta_slow))
        low, high = max(low, 0), min(high, dim - 1)
        if low == high:
            high += 0.001
        ramp = ((torch.arange(dim // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
        keep = 1 - ramp  # 1: extrapolate (original frequency), 0: interpolate (divided by the factor)
        inv = inv / factor * (1 - keep) + inv * keep
        mscale = scaling.get("attention_factor") or (0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0)
        return inv, mscale
    raise ValueError(kind)


def llama_scaled(scaling, model_type="llama", tie_in_lm_head=False, C=128, original_max=None):
    """A LLaMA with d_head 16 (eight frequencies, so each rope_scaling regime moves some of them), or
    with its tied matrix stored only as lm_head.weight (TinyStories-656K's layout). forward(ids,
    lengths=None): lengths[p] is the length the forward that computed position p covered, so a KV-cache
    decode (keys rotated when they were computed) can be written as one forward."""
    D, H, KV, L, V, F = 64, 4, 2, 2, 60, 48
    dh = D // H
    cfg = {"model_type": model_type, "hidden_size": D, "intermediate_size": F, "num_hidden_layers": L,
           "num_attention_heads": H, "num_key_value_heads": KV, "vocab_size": V, "max_position_embeddings": C,
           "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": tie_in_lm_head,
           "rope_scaling": scaling}
    if original_max:
        cfg["original_max_position_embeddings"] = original_max
    w = {"model.norm.weight": 1 + rnd(D, s=0.1)}
    embed = rnd(V, D, s=1.0)
    w["lm_head.weight" if tie_in_lm_head else "model.embed_tokens.weight"] = embed
    if not tie_in_lm_head:
        w["lm_head.weight"] = rnd(V, D)
    for l in range(L):
        p = f"model.layers.{l}."
        w.update({p + "input_layernorm.weight": 1 + rnd(D, s=0.1), p + "post_attention_layernorm.weight": 1 + rnd(D, s=0.1),
                  p + "self_attn.q_proj.weight": rnd(H * dh, D), p + "self_attn.k_proj.weight": rnd(KV * dh, D),
                  p + "self_attn.v_proj.weight": rnd(KV * dh, D), p + "self_attn.o_proj.weight": rnd(D, H * dh),
                  p + "mlp.gate_proj.weight": rnd(F, D), p + "mlp.up_proj.weight": rnd(F, D), p + "mlp.down_proj.weight": rnd(D, F)})
    unembed = embed if tie_in_lm_head else w["lm_head.weight"]

    def forward(ids, lengths=None):
        T = ids.shape[0]
        cos, sin = [], []
        for p in range(T):
            inv, mscale = rope_inv_freq(dh, 10000.0, scaling, C, lengths[p] if lengths else T, original_max)
            emb = torch.cat((p * inv, p * inv))
            cos.append(emb.cos() * mscale)
            sin.append(emb.sin() * mscale)
        return llama_decoder(w, embed[ids], torch.stack(cos).float(), torch.stack(sin).float(), H, KV, dh, L, 1e-6, unembed)

    return cfg, w, forward, V


def main(out):
    for name, build in (("gpt2", gpt2), ("mistral", lambda: llama_like("mistral")), ("qwen2", lambda: llama_like("qwen2"))):
        cfg, weights, forward, V = build()
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f)
        save_safetensors(os.path.join(d, "model.safetensors"), weights)
        ids = torch.randint(0, V, (13,))
        with torch.no_grad():
            logits = forward(ids)
        with open(os.path.join(d, "reference.json"), "w") as f:
            json.dump({"tokens": ids.tolist(), "shape": list(logits.shape), "logits": logits.flatten().tolist()}, f)
    llava_main(out)
    # Written after the models above so that their random draws stay as they were.
    scaled = (("rope_linear", {"rope_type": "linear", "factor": 4.0}, False),
              ("rope_llama3", {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                               "original_max_position_embeddings": 64}, False),
              ("rope_yarn", {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32}, False),
              ("tied_in_lm_head", None, True))
    for name, scaling, tied in scaled:
        cfg, weights, forward, V = llama_scaled(scaling, tie_in_lm_head=tied)
        write_reference(out, name, cfg, weights, forward, V, 24)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import families
    for name in families.FAMILIES:
        cfg, weights, forward, V = families.make(name)
        write_reference(out, name, cfg, weights, lambda ids, f=forward: f(ids), V, 24)
    import ggml_quants
    import probe_references
    import quantize_gguf
    probe_references.write_probe_references(out)
    ggml_quants.write_quant_reference(out)
    os.makedirs(os.path.join(out, "gpt2_gguf"), exist_ok=True)
    quantize_gguf.gpt2_hf_to_gguf(os.path.join(out, "gpt2"), os.path.join(out, "gpt2_gguf", "gpt2.gguf"))
    used = quantize_gguf.k_quant_llama(os.path.join(out, "quants", "kquant_llama.gguf"), os.path.join(out, "quants", "kquant_llama_f32.gguf"))
    assert len(used) == len(ggml_quants.TYPES), used
    quantize_gguf.all_types_seed(os.path.join(out, "quants", "all_types_seed.gguf"))
    shared = os.environ.get("HEADLAB_SHARED") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../shared")
    if os.path.isdir(os.path.join(shared, "models")):
        real_model_references(shared, out)
        probe_references.duo_reference(os.path.join(out, "probes"), shared)
        # stories260K's GGUF with its matrices quantised by ggml's reference quantisers.
        for kind in ("Q8_0", "Q4_0"):
            quantize_gguf.main(os.path.join(shared, "models", "stories260k", "stories260K.gguf"),
                               os.path.join(out, "quants", "stories260K_%s.gguf" % kind), kind)
    # Rope types whose frequencies follow the length (last, so the draws above stay as they were): the
    # 24-token prompt runs past the original context of 16, half of it (the KV-cache test's prefill) does not.
    factors = [1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0]
    length_dependent = (("rope_dynamic", {"rope_type": "dynamic", "factor": 4.0}, 16, None),
                        ("rope_longrope", {"type": "longrope", "short_factor": [1.0 + 0.1 * i for i in range(8)], "long_factor": factors},
                         64, 16))
    for name, scaling, C, original in length_dependent:
        cfg, weights, forward, V = llama_scaled(scaling, C=C, original_max=original)
        write_reference(out, name, cfg, weights, forward, V, 24, decoded=True)
    # Every family in llama.cpp's GGUF layout, written by a converter of its own from convert_hf_to_gguf's
    # rules, next to the HF folder it came from: the same reference logits from either file.
    for name in families.FAMILIES:
        cfg, weights, forward, V = families.make(name, gguf=True)
        write_reference(out, name + "_gguf", cfg, weights, lambda ids, f=forward: f(ids), V, 24)
        quantize_gguf.family_hf_to_gguf(os.path.join(out, name + "_gguf"), os.path.join(out, name + "_gguf", "model.gguf"))
    # Phi-3 with LongRoPE (factors past an original context of 16), in both layouts: GGUF keeps the
    # factors as tensors. The test compares the two loads; the HF maths is checked by rope_longrope.
    cfg, weights, _, _ = families.make("phi3", gguf=True)
    cfg.update({"max_position_embeddings": 64, "original_max_position_embeddings": 16,
                "rope_scaling": {"type": "longrope", "short_factor": [1.0, 1.2, 1.4, 1.6], "long_factor": [1.0, 2.0, 4.0, 8.0]}})
    d = os.path.join(out, "phi3_longrope")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    save_safetensors(os.path.join(d, "model.safetensors"), weights)
    quantize_gguf.family_hf_to_gguf(d, os.path.join(d, "model.gguf"))
    print("reference models written to", out)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", e["dtype"]
        a, b = e["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").copy()).view(e["shape"]).double()
    return out


def real_model_references(shared, out):
    """Independent float64 forwards of the two real checkpoints in ../shared: TinyStories-656K's greedy
    story from BOS (its tied matrix is stored only as lm_head.weight) and nano-sort's layer-0 pattern."""
    # TinyStories-656K: LlamaForCausalLM, rotate-half RoPE, GQA 8/4, RMSNorm eps 1e-6, tied embeddings.
    folder = os.path.join(shared, "models", "tinystories-656k")
    cfg = json.load(open(os.path.join(folder, "config.json")))
    w = read_safetensors(os.path.join(folder, "model.safetensors"))
    D, H, KV, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["num_hidden_layers"]
    dh, eps = D // H, cfg["rms_norm_eps"]
    emb = w["lm_head.weight"]

    def llama_logits(ids):
        inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, dh, 2, dtype=torch.float64) / dh))
        f = torch.outer(torch.arange(len(ids), dtype=torch.float64), inv)
        e = torch.cat((f, f), -1)
        return llama_decoder(w, emb[torch.tensor(ids)], e.cos(), e.sin(), H, KV, dh, L, eps, emb)

    ids = [cfg["bos_token_id"]]
    for _ in range(40):
        ids.append(int(llama_logits(ids)[-1].argmax()))
    first = llama_logits(ids[:24])
    os.makedirs(os.path.join(out, "real"), exist_ok=True)
    # nano-sort: GPT-2 (Conv1D weights [in, out], gelu_new, untied lm_head without bias).
    folder = os.path.join(shared, "models", "nanosort-gpt2")
    ncfg = json.load(open(os.path.join(folder, "config.json")))
    nw = read_safetensors(os.path.join(folder, "model.safetensors"))
    nD, nH = ncfg["n_embd"], ncfg["n_head"]
    digits = [2, 0, 1, 1, 0, 2, 0, 0, 1, 1, 2]
    T = len(digits)
    x = nw["transformer.wte.weight"][torch.tensor(digits)] + nw["transformer.wpe.weight"][:T]
    a = torch.nn.functional.layer_norm(x, (nD,), nw["transformer.h.0.ln_1.weight"], nw["transformer.h.0.ln_1.bias"], ncfg["layer_norm_epsilon"])
    qkv = a @ nw["transformer.h.0.attn.c_attn.weight"] + nw["transformer.h.0.attn.c_attn.bias"]
    q, k, _ = (t.view(T, nH, nD // nH).transpose(0, 1) for t in qkv.split(nD, -1))
    pattern = (q @ k.transpose(-1, -2) / math.sqrt(nD // nH)).masked_fill(
        torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf")).softmax(-1)
    with open(os.path.join(out, "real", "reference.json"), "w") as f:
        json.dump({"tinystories_greedy": ids, "tinystories_logits_24": first.flatten().tolist(),
                   "nanosort_tokens": digits, "nanosort_pattern0": pattern.flatten().tolist(),
                   "nanosort_pattern_shape": list(pattern.shape)}, f)


def write_reference(out, name, cfg, weights, forward, V, T, decoded=False):
    """decoded: also write the logits of KV-cache decoding (half the prompt at once, then one token per
    step), for rope types whose frequencies follow the length, where those differ from the full forward."""
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    save_safetensors(os.path.join(d, "model.safetensors"), weights)
    ids = torch.randint(0, V, (T,))
    with torch.no_grad():
        out_ = forward(ids)
    logits, patterns = out_ if isinstance(out_, tuple) else (out_, None)
    ref = {"arch": cfg["model_type"], "tokens": ids.tolist(), "shape": list(logits.shape), "logits": logits.flatten().tolist()}
    if patterns is not None:  # [layer, head, query, key]
        ref.update({"patterns": patterns.flatten().tolist(), "patterns_shape": list(patterns.shape)})
    if decoded:
        half = T // 2
        with torch.no_grad():
            ref["decoded_logits"] = forward(ids, [half] * half + list(range(half + 1, T + 1))).flatten().tolist()
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(ref, f)


if __name__ == "__main__":
    main(sys.argv[1])
