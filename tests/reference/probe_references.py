"""Independent references for the probes' scoring, written from the reference codes themselves (read,
not copied), on hand-built attention patterns: the test injects the same patterns into HeadLab's
forward and compares every number.
- induction / previous / duplicate: TransformerLens's head_detector.py (detection patterns from token
  equality; sum(A * P) / sum(A), or 1 - round(mean|A - P| * T, 3); exclude_bos, exclude_current_token)."""
import json, math, os, sys
import torch


def detection_patterns(tokens):
    T = len(tokens)
    t = torch.tensor(tokens)
    previous = torch.zeros(T, T)
    previous[1:, :-1] = torch.eye(T - 1)
    eq = (t[None, :] == t[:, None]).float()  # [i, j]: token j equals token i
    eq.fill_diagonal_(0)
    duplicate = torch.tril(eq)
    shifted = torch.roll(duplicate, shifts=1, dims=1)
    induction = torch.tril(torch.cat((torch.zeros(T, 1), shifted[:, 1:]), dim=1))
    return {"previous_token": torch.tril(previous), "duplicate_token": duplicate, "induction": induction}


def head_score(attention, detection, exclude_bos, exclude_current, measure):
    a = attention.clone()
    if measure == "mul":
        if exclude_bos:
            a[:, 0] = 0
        if exclude_current:
            a.fill_diagonal_(0)
        return ((a * detection).sum() / a.sum()).item()
    d = (a - detection).abs()
    if exclude_bos:
        d[:, 0] = 0
    if exclude_current:
        d.fill_diagonal_(0)
    return 1 - round((d.mean() * len(d)).item(), 3)


def induction_reference(out, layers=3, heads=4):
    g = torch.Generator().manual_seed(11)
    sequences = [[1, 5, 9, 5, 11, 12, 13, 5, 9, 5, 11, 12, 13], [1, 40, 41, 42, 43, 44, 45, 40, 41, 42, 43, 44, 45]]
    patterns = []  # [sequence][layer] -> [head, T, T]
    for s in sequences:
        T = len(s)
        per_layer = []
        for l in range(layers):
            scores = torch.randn(heads, T, T, generator=g) * 2
            per_layer.append(scores.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf")).softmax(-1))
        patterns.append(per_layer)
    options = [{"error_measure": "mul"}, {"error_measure": "mul", "exclude_bos": True}, {"error_measure": "mul", "exclude_current_token": True},
               {"error_measure": "abs"}, {"error_measure": "abs", "exclude_bos": True, "exclude_current_token": True}]
    cases = []
    for opt in options:
        grids = {}
        for kind in ("induction", "previous_token", "duplicate_token"):
            grid = torch.zeros(layers, heads, dtype=torch.float64)
            for s, per_layer in zip(sequences, patterns):
                det = detection_patterns(s)[kind]
                for l in range(layers):
                    for h in range(heads):
                        grid[l, h] += head_score(per_layer[l][h], det, opt.get("exclude_bos", False),
                                                 opt.get("exclude_current_token", False), opt["error_measure"]) / len(sequences)
            grids[kind] = grid.flatten().tolist()
        cases.append({"params": opt, "grids": grids})
    with open(os.path.join(out, "induction_reference.json"), "w") as f:
        json.dump({"sequences": sequences, "layers": layers, "heads": heads,
                   "patterns": [[p.flatten().tolist() for p in per_layer] for per_layer in patterns], "cases": cases}, f)


# Words that exercise every rule of the Porter stemmer and NLTK's changes to it (the paper's own
# examples, NLTK's irregular forms, y after a vowel, ll, logi, alli, fulli), plus ordinary text.
PORTER_WORDS = """caresses ponies ties cats caress feed agreed plastered bled motoring sing conflated troubled sized
hopping tanned falling hissing fizzed failing filing happy sky skies enjoy spy fly tried spied cried died lies relational
conditional rational valenci hesitanci digitizer conformabli radicalli differentli vileli analogousli vietnamization
predication operator feudalism decisiveness hopefulness callousness formaliti sensitiviti sensibiliti triplicate formative
formalize electriciti electrical hopeful goodness revival allowance inference airliner gyroscopic adjustable defensible
irritant replacement adjustment dependent adoption homologou communism activate angulariti homologous effective bowdlerize
probate rate cease controll roll dying lying tying innings inning outings news howe proceed exceed succeed generously
archaeology fully hopefully carefully geology analogy yes eyes toy toys syzygy oats trees ivy private orrery troubles
takes walks walked walking purple basil sandwich dolores park sunny lighthouse ingredient secret eaten eating bias news
agreement agreeing meeting meetings feeling united unity university universal abilities ability possibly possible
kindness wonderful beautifully quickly slowly happiness sadness running runner runs ran swimming swims anything
everything nothing something sing sings singing hoped hoping hopes hope bowled owed owing sized sizing radical radically
national nationally rationally conditionally generalization generalizations""".split()


def rouge_tokens(text, stemmer):
    """rouge_score.tokenize.tokenize(text, stemmer): lower-case, non-alphanumerics split, stem if longer than 3."""
    import re
    text = re.sub(r"[^a-z0-9]+", " ", text.lower())
    tokens = re.split(r"\s+", text)
    if stemmer:
        tokens = [stemmer.stem(t) if len(t) > 3 else t for t in tokens]
    return [t for t in tokens if re.match(r"^[a-z0-9]+$", t)]


def rouge1_recall(target, prediction, stemmer):
    """rouge_scorer.RougeScorer(['rouge1'], use_stemmer=True).score(target, prediction)['rouge1'].recall."""
    import collections
    t = collections.Counter(rouge_tokens(target, stemmer))
    p = collections.Counter(rouge_tokens(prediction, stemmer))
    overlap = sum(min(n, p[w]) for w, n in t.items())
    return overlap / max(sum(t.values()), 1)


def rouge_reference(out, prompts_file):
    from nltk.stem import porter
    stemmer = porter.PorterStemmer()  # rouge_score's choice: the default NLTK_EXTENSIONS mode
    words = list(PORTER_WORDS)
    with open(prompts_file) as f:
        words += rouge_tokens(f.read(), None)
    words = sorted(set(w for w in words if len(w) > 3))
    pairs = [("purple basil", "purple-basil"), ("take walk", "He takes walks."), ("purple basil", "Purple basil, of course."),
             ("eat a sandwich and sit in Dolores Park on a sunny day", "Eating sandwiches and sitting in the park."),
             ("4 7 2", "4 9 2"), ("4 7 2", "4 4 4"), ("the secret ingredient", ""), ("", "anything"),
             ("generalizations of universities", "generalization university")]
    with open(os.path.join(out, "rouge_reference.json"), "w") as f:
        json.dump({"stems": {w: stemmer.stem(w) for w in words},
                   "recall": [{"target": t, "prediction": p, "recall": rouge1_recall(t, p, stemmer)} for t, p in pairs]}, f)


def write_probe_references(out):
    d = os.path.join(out, "probes")
    os.makedirs(d, exist_ok=True)
    induction_reference(d)
    act_reference(d)
    rouge_reference(d, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../resources/prompts/sinks.txt"))


def duo_reference(out, shared, steps=30, lr=0.05, l1=0.05, sink=2, recent=4):
    """DuoAttention's gate optimisation (mit-han-lab/duo-attention: train.py and patch/llama.py's
    two-way forward), written out independently in float64 on stories260K (Hugging Face layout): the
    teacher's per-head attention output z with full attention; the student's z = alpha * teacher z +
    (1 - alpha) * its streaming attention (sink + recent keys); the distillation loss on the final
    hidden states after the final norm (the last quarter of each prompt as the labels) plus reg *
    mean|alpha|; torch's AdamW (weight decay 0) with train.py's LambdaLR; gates clamped before each step."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_reference_models import read_safetensors
    folder = os.path.join(shared, "models", "stories260k-hf")
    cfg = json.load(open(os.path.join(folder, "config.json")))
    w = {k: v.double() for k, v in read_safetensors(os.path.join(folder, "model.safetensors")).items()}
    D, H, KV, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["num_hidden_layers"]
    dh, eps, G = D // H, cfg["rms_norm_eps"], H // KV
    embed = w["model.embed_tokens.weight"]

    def rms(x, g):
        return g * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def rope(x, T):  # rotate-half, x [T, heads, dh]
        inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, dh, 2, dtype=torch.float64) / dh))
        f = torch.outer(torch.arange(T, dtype=torch.float64), inv)
        cos, sin = torch.cat((f, f), -1).cos()[:, None], torch.cat((f, f), -1).sin()[:, None]
        return x * cos + torch.cat((-x[..., dh // 2:], x[..., : dh // 2]), -1) * sin

    def forward(ids, alpha=None, teacher_z=None):
        T = len(ids)
        h = embed[ids]
        causal = torch.arange(T)[None, :] <= torch.arange(T)[:, None]
        streaming = causal & ((torch.arange(T)[None, :] < sink) | (torch.arange(T)[:, None] - torch.arange(T)[None, :] < recent))
        zs = []
        for l in range(L):
            p = f"model.layers.{l}."
            x = rms(h, w[p + "input_layernorm.weight"])
            q = rope((x @ w[p + "self_attn.q_proj.weight"].T).view(T, H, dh), T)
            k = rope((x @ w[p + "self_attn.k_proj.weight"].T).view(T, KV, dh), T).repeat_interleave(G, 1)
            v = (x @ w[p + "self_attn.v_proj.weight"].T).view(T, KV, dh).repeat_interleave(G, 1)
            scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(dh)
            mask = causal if alpha is None else streaming
            z = torch.einsum("hqk,khd->qhd", scores.masked_fill(~mask, float("-inf")).softmax(-1), v)
            if alpha is not None:
                a = alpha[l].repeat_interleave(G)[None, :, None]
                z = a * teacher_z[l] + (1 - a) * z
            zs.append(z)
            h = h + z.reshape(T, H * dh) @ w[p + "self_attn.o_proj.weight"].T
            m = rms(h, w[p + "post_attention_layernorm.weight"])
            h = h + (torch.nn.functional.silu(m @ w[p + "mlp.gate_proj.weight"].T) * (m @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
        return rms(h, w["model.norm.weight"]), zs

    g = torch.Generator().manual_seed(23)
    prompts = [[1] + torch.randint(3, cfg["vocab_size"], (n,), generator=g).tolist() for n in (19, 23)]
    teachers = []
    with torch.no_grad():
        for ids in prompts:
            teachers.append(forward(ids))
    alpha = torch.nn.Parameter(torch.ones(L, KV, dtype=torch.float64))
    opt = torch.optim.AdamW([alpha], lr=lr, weight_decay=0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda=lambda s: min(1, max((s + 1) / (steps // 5), 0.1), max((steps - s) / (steps // 5), 0.1)))
    losses = []
    for step in range(steps):
        with torch.no_grad():
            alpha.clamp_(0, 1)
        i = step % len(prompts)
        ids, (target, teacher_z) = prompts[i], teachers[i]
        T = len(ids)
        hidden, _ = forward(ids, alpha, teacher_z)
        frm = T - max(1, T // 4)
        loss = (hidden[frm:] - target[frm:]).pow(2).mean() + l1 * alpha.abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    gates = alpha.detach()
    with open(os.path.join(out, "duo_reference.json"), "w") as f:
        json.dump({"prompt_ids": prompts, "params": {"gate_steps": steps, "gate_lr": lr, "gate_l1": l1, "sink": sink, "recent": recent},
                   "gates": gates.flatten().tolist(), "losses": losses}, f)


def act_reference(out, layers=3, heads=4, T=14, beta=0.4, thres=0.1):
    """ACT's on-the-fly edit (GATECH-EIC/ACT, models/llama_modelling_aug.py: atten_process_eval) on
    hand-built causal attention with a few strong sink columns, written out from the reference: per
    selected head, keys whose column sum over the rows that see them exceeds thres are sinks, the first
    dropped; sinks scaled by beta, the freed mass spread over the other keys by their attention, row 0
    reset to [1, 0, ...]."""
    g = torch.Generator().manual_seed(5)
    patterns, edited = [], []
    selected = {0: [1, 3], 1: [0, 2], 2: [1]}
    for l in range(layers):
        scores = torch.randn(heads, T, T, generator=g, dtype=torch.float64)
        scores[:, :, 0] += 3.0  # BOS
        scores[:, :, 4] += 2.5 * torch.rand(heads, 1, generator=g, dtype=torch.float64)  # a hidden sink, stronger in some heads
        att = scores.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf")).softmax(-1)
        patterns.append(att.clone())
        for head_num in selected[l]:
            modified_head = att[head_num].clone()
            shape = modified_head.shape[0]
            indices = torch.nonzero(torch.where(torch.sum(modified_head, dim=0) / torch.arange(shape, 0, -1) > thres, 1, 0))
            indices = indices[1:]
            copied = modified_head.detach().clone()
            available = modified_head[:, indices].sum(dim=1) * (1 - beta)
            modified_head[:, indices] *= beta
            copied[1:, indices] *= 0
            ratios = copied / torch.sum(copied, dim=1, keepdim=True)
            modified_head = modified_head + available * ratios
            modified_head[0, 0] = 1
            att[head_num] = modified_head
        edited.append(att)
    with open(os.path.join(out, "act_reference.json"), "w") as f:
        json.dump({"layers": layers, "heads": heads, "T": T, "beta": beta, "threshold": thres, "selected": {str(k): v for k, v in selected.items()},
                   "patterns": [p.flatten().tolist() for p in patterns], "edited": [e.flatten().tolist() for e in edited]}, f)
