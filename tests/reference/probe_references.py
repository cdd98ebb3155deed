"""Independent references for the probes' scoring, written from the reference codes themselves (read,
not copied), on hand-built attention patterns: the test injects the same patterns into HeadLab's
forward and compares every number.
- induction / previous / duplicate: TransformerLens's head_detector.py (detection patterns from token
  equality; sum(A * P) / sum(A), or 1 - round(mean|A - P| * T, 3); exclude_bos, exclude_current_token)."""
import json, os
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


def write_probe_references(out):
    d = os.path.join(out, "probes")
    os.makedirs(d, exist_ok=True)
    induction_reference(d)
