"""Tiny random checkpoints of the families beyond LLaMA/GPT-2 (Qwen3, OLMo-2, Gemma 1/2/3, Phi-3,
GPT-NeoX), in Hugging Face layout with every quirk switched on, and an independent float64 forward
written from the semantics of transformers' modeling_<family>.py (read, not copied): per-layer
attention patterns and logits for a 24-token prompt. Shares no code with HeadLab's runtime."""
import math
import torch

F = torch.nn.functional


def rnd(*shape, s=0.3):
    return torch.randn(*shape, dtype=torch.float64) * s


def rms(x, w, eps, plus_one=False):
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return y * ((1 + w) if plus_one else w)


def rotate(x, cos, sin, rot):
    """Rotate-half RoPE on the first `rot` features of each head (the rest pass through)."""
    xr, xp = x[..., :rot], x[..., rot:]
    x1, x2 = xr[..., : rot // 2], xr[..., rot // 2:]
    return torch.cat([xr * cos + torch.cat((-x2, x1), -1) * sin, xp], -1)


def rope_tables(T, rot, base):
    inv = 1.0 / (base ** (torch.arange(0, rot, 2, dtype=torch.float64) / rot))
    f = torch.outer(torch.arange(T, dtype=torch.float64), inv)
    e = torch.cat((f, f), -1)
    return e.cos(), e.sin()


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def make(family, gguf=False):
    """(config, weights, forward) for one family; forward(ids) -> (logits [T, V], patterns [L, H, T, T]).
    gguf: only the quirks a llama.cpp GGUF can carry (Qwen3 without its sliding window, Gemma 2/3 with
    query_pre_attn_scalar = head_dim, the value llama.cpp assumes below the 27B models)."""
    D, H, KV, L, V, C, Fd = 64, 4, 2, 3, 80, 128, 96
    dh = 16
    cfg = {"model_type": family, "hidden_size": D, "intermediate_size": Fd, "num_hidden_layers": L,
           "num_attention_heads": H, "num_key_value_heads": KV, "vocab_size": V, "max_position_embeddings": C,
           "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False}
    eps, plus_one, scale, window, sliding = 1e-6, False, dh ** -0.5, None, [False] * L
    attn_cap = final_cap = None
    rot, local_base = dh, None
    w = {}
    p = "model.layers.{}."
    if family == "qwen3":
        dh = 24  # head_dim decoupled from hidden_size / heads
        cfg.update({"head_dim": dh, "use_sliding_window": True, "sliding_window": 5, "max_window_layers": 1})
        window, sliding, rot, scale = 5, [l >= 1 for l in range(L)], dh, dh ** -0.5
        if gguf:
            cfg["use_sliding_window"], window, sliding = False, None, [False] * L
    if family in ("gemma", "gemma2", "gemma3_text"):
        cfg.update({"head_dim": dh, "tie_word_embeddings": True, "hidden_activation": "gelu_pytorch_tanh", "hidden_act": "gelu"})
        plus_one = True
    if family == "gemma2":
        cfg.update({"query_pre_attn_scalar": 24, "attn_logit_softcapping": 2.0, "final_logit_softcapping": 10.0, "sliding_window": 4})
        scale, attn_cap, final_cap, window, sliding = 24 ** -0.5, 2.0, 10.0, 4, [l % 2 == 0 for l in range(L)]
        if gguf:
            cfg["query_pre_attn_scalar"], scale = dh, dh ** -0.5
    if family == "gemma3_text":
        cfg.update({"query_pre_attn_scalar": 20, "sliding_window": 4, "sliding_window_pattern": 3, "rope_theta": 1e6,
                    "rope_local_base_freq": 100.0, "rope_scaling": {"rope_type": "linear", "factor": 2.0}})
        scale, window, sliding, local_base = 20 ** -0.5, 4, [(l + 1) % 3 != 0 for l in range(L)], 100.0
        if gguf:
            cfg["query_pre_attn_scalar"], scale = dh, dh ** -0.5
    if family == "phi3":
        cfg.update({"partial_rotary_factor": 0.5, "sliding_window": 6})
        rot, window, sliding = dh // 2, 6, [True] * L
    if family == "gpt_neox":
        H = KV = 4
        dh = D // H
        cfg = {"model_type": "gpt_neox", "hidden_size": D, "intermediate_size": Fd, "num_hidden_layers": L,
               "num_attention_heads": H, "vocab_size": V, "max_position_embeddings": C, "layer_norm_eps": 1e-5,
               "rotary_pct": 0.25, "rotary_emb_base": 10000, "use_parallel_residual": True, "hidden_act": "gelu",
               "tie_word_embeddings": False}
        rot, scale = dh // 4, dh ** -0.5
    theta = cfg.get("rope_theta", cfg.get("rotary_emb_base"))
    linear_factor = cfg.get("rope_scaling", {}).get("factor", 1.0) if cfg.get("rope_scaling") else 1.0

    def normw():
        return rnd(D, s=0.1) if plus_one else 1 + rnd(D, s=0.1)

    if family == "gpt_neox":
        w = {"gpt_neox.embed_in.weight": rnd(V, D, s=1.0), "embed_out.weight": rnd(V, D),
             "gpt_neox.final_layer_norm.weight": 1 + rnd(D, s=0.1), "gpt_neox.final_layer_norm.bias": rnd(D, s=0.1)}
        for l in range(L):
            q = f"gpt_neox.layers.{l}."
            w.update({q + "input_layernorm.weight": 1 + rnd(D, s=0.1), q + "input_layernorm.bias": rnd(D, s=0.1),
                      q + "post_attention_layernorm.weight": 1 + rnd(D, s=0.1), q + "post_attention_layernorm.bias": rnd(D, s=0.1),
                      q + "attention.query_key_value.weight": rnd(3 * D, D), q + "attention.query_key_value.bias": rnd(3 * D),
                      q + "attention.dense.weight": rnd(D, D), q + "attention.dense.bias": rnd(D),
                      q + "mlp.dense_h_to_4h.weight": rnd(Fd, D), q + "mlp.dense_h_to_4h.bias": rnd(Fd),
                      q + "mlp.dense_4h_to_h.weight": rnd(D, Fd), q + "mlp.dense_4h_to_h.bias": rnd(D)})
    else:
        w = {"model.embed_tokens.weight": rnd(V, D, s=1.0), "model.norm.weight": normw()}
        if not cfg["tie_word_embeddings"]:
            w["lm_head.weight"] = rnd(V, D)
        for l in range(L):
            q = p.format(l)
            if family == "phi3":
                w[q + "self_attn.qkv_proj.weight"] = rnd((H + 2 * KV) * dh, D)
                w[q + "mlp.gate_up_proj.weight"] = rnd(2 * Fd, D)
            else:
                w.update({q + "self_attn.q_proj.weight": rnd(H * dh, D), q + "self_attn.k_proj.weight": rnd(KV * dh, D),
                          q + "self_attn.v_proj.weight": rnd(KV * dh, D), q + "mlp.gate_proj.weight": rnd(Fd, D),
                          q + "mlp.up_proj.weight": rnd(Fd, D)})
            w.update({q + "self_attn.o_proj.weight": rnd(D, H * dh), q + "mlp.down_proj.weight": rnd(D, Fd)})
            if family != "olmo2":
                w[q + "input_layernorm.weight"] = normw()
            w[q + "post_attention_layernorm.weight"] = normw()
            if family in ("gemma2", "gemma3_text"):
                w[q + "pre_feedforward_layernorm.weight"] = normw()
            if family in ("gemma2", "gemma3_text", "olmo2"):
                w[q + "post_feedforward_layernorm.weight"] = normw()
            if family in ("qwen3", "gemma3_text"):
                w[q + "self_attn.q_norm.weight"] = rnd(dh, s=0.1) if plus_one else 1 + rnd(dh, s=0.1)
                w[q + "self_attn.k_norm.weight"] = rnd(dh, s=0.1) if plus_one else 1 + rnd(dh, s=0.1)
            if family == "olmo2":
                w[q + "self_attn.q_norm.weight"] = 1 + rnd(H * dh, s=0.1)
                w[q + "self_attn.k_norm.weight"] = 1 + rnd(KV * dh, s=0.1)

    def attention(x, l, T):
        q_ = p.format(l)
        if family == "gpt_neox":
            qkv = F.linear(x, w[f"gpt_neox.layers.{l}.attention.query_key_value.weight"], w[f"gpt_neox.layers.{l}.attention.query_key_value.bias"])
            qkv = qkv.view(T, H, 3 * dh)
            q, k, v = qkv[..., :dh], qkv[..., dh:2 * dh], qkv[..., 2 * dh:]
        else:
            if family == "phi3":
                qkv = x @ w[q_ + "self_attn.qkv_proj.weight"].T
                q, k, v = qkv[:, :H * dh], qkv[:, H * dh:(H + KV) * dh], qkv[:, (H + KV) * dh:]
            else:
                q, k, v = (x @ w[q_ + f"self_attn.{n}_proj.weight"].T for n in "qkv")
            if family == "olmo2":
                q, k = rms(q, w[q_ + "self_attn.q_norm.weight"], eps), rms(k, w[q_ + "self_attn.k_norm.weight"], eps)
            q, k, v = q.view(T, H, dh), k.view(T, KV, dh), v.view(T, KV, dh)
            if family in ("qwen3", "gemma3_text"):
                q = rms(q, w[q_ + "self_attn.q_norm.weight"], eps, plus_one)
                k = rms(k, w[q_ + "self_attn.k_norm.weight"], eps, plus_one)
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)  # [heads, T, dh]
        local = sliding[l] and local_base is not None
        cos, sin = rope_tables(T, rot, local_base if local else theta)
        if family == "gemma3_text" and not local:  # linear rope_scaling on the global layers only
            inv = 1.0 / (theta ** (torch.arange(0, rot, 2, dtype=torch.float64) / rot)) / linear_factor
            f = torch.outer(torch.arange(T, dtype=torch.float64), inv)
            cos, sin = torch.cat((f, f), -1).cos(), torch.cat((f, f), -1).sin()
        q, k = rotate(q, cos, sin, rot), rotate(k, cos, sin, rot)
        k, v = k.repeat_interleave(H // k.shape[0], 0), v.repeat_interleave(H // v.shape[0], 0)
        s = q @ k.transpose(-1, -2) * scale
        if attn_cap:
            s = torch.tanh(s / attn_cap) * attn_cap
        i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
        masked = j > i
        if window and sliding[l]:
            masked = masked | (i - j >= window)
        a = s.masked_fill(masked, float("-inf")).softmax(-1)
        y = (a @ v).transpose(0, 1).reshape(T, H * dh)
        if family == "gpt_neox":
            return F.linear(y, w[f"gpt_neox.layers.{l}.attention.dense.weight"], w[f"gpt_neox.layers.{l}.attention.dense.bias"]), a
        return y @ w[q_ + "self_attn.o_proj.weight"].T, a

    def mlp(x, l):
        q_ = p.format(l)
        if family == "gpt_neox":
            n = f"gpt_neox.layers.{l}.mlp."
            return F.linear(F.gelu(F.linear(x, w[n + "dense_h_to_4h.weight"], w[n + "dense_h_to_4h.bias"])), w[n + "dense_4h_to_h.weight"], w[n + "dense_4h_to_h.bias"])
        if family == "phi3":
            gate, up = (x @ w[q_ + "mlp.gate_up_proj.weight"].T).chunk(2, -1)
        else:
            gate, up = x @ w[q_ + "mlp.gate_proj.weight"].T, x @ w[q_ + "mlp.up_proj.weight"].T
        act = gelu_tanh(gate) if plus_one else F.silu(gate)
        return (act * up) @ w[q_ + "mlp.down_proj.weight"].T

    def forward(ids):
        T = len(ids)
        if family == "gpt_neox":
            h = w["gpt_neox.embed_in.weight"][ids]
        else:
            h = w["model.embed_tokens.weight"][ids]
        if plus_one:
            h = h * torch.tensor(D ** 0.5, dtype=torch.float32).double()  # the normaliser in float32, as transformers makes it
        patterns = []
        for l in range(L):
            q_ = p.format(l)
            if family == "gpt_neox":
                n = f"gpt_neox.layers.{l}."
                a, pat = attention(F.layer_norm(h, (D,), w[n + "input_layernorm.weight"], w[n + "input_layernorm.bias"], 1e-5), l, T)
                m = mlp(F.layer_norm(h, (D,), w[n + "post_attention_layernorm.weight"], w[n + "post_attention_layernorm.bias"], 1e-5), l)
                h = h + a + m
            elif family == "olmo2":
                a, pat = attention(h, l, T)
                h = h + rms(a, w[q_ + "post_attention_layernorm.weight"], eps)
                h = h + rms(mlp(h, l), w[q_ + "post_feedforward_layernorm.weight"], eps)
            elif family in ("gemma2", "gemma3_text"):
                a, pat = attention(rms(h, w[q_ + "input_layernorm.weight"], eps, True), l, T)
                h = h + rms(a, w[q_ + "post_attention_layernorm.weight"], eps, True)
                m = mlp(rms(h, w[q_ + "pre_feedforward_layernorm.weight"], eps, True), l)
                h = h + rms(m, w[q_ + "post_feedforward_layernorm.weight"], eps, True)
            else:
                a, pat = attention(rms(h, w[q_ + "input_layernorm.weight"], eps, plus_one), l, T)
                h = h + a
                h = h + mlp(rms(h, w[q_ + "post_attention_layernorm.weight"], eps, plus_one), l)
            patterns.append(pat)
        if family == "gpt_neox":
            logits = F.layer_norm(h, (D,), w["gpt_neox.final_layer_norm.weight"], w["gpt_neox.final_layer_norm.bias"], 1e-5) @ w["embed_out.weight"].T
        else:
            out = w["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else w["lm_head.weight"]
            logits = rms(h, w["model.norm.weight"], eps, plus_one) @ out.T
        if final_cap:
            logits = torch.tanh(logits / final_cap) * final_cap
        return logits, torch.stack(patterns)

    return cfg, {k: v.float() for k, v in w.items()}, forward, V


FAMILIES = ("qwen3", "olmo2", "gemma", "gemma2", "gemma3_text", "phi3", "gpt_neox")
