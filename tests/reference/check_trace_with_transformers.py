"""Cross-checks a HeadLab trace of an image prompt against transformers: runs
LlavaForConditionalGeneration on the trace's own inputs (/inputs/tokens, /inputs/image) and compares
every captured attention pattern. Needs torch, transformers and h5py (not part of `make test`).

    python3 tests/reference/check_trace_with_transformers.py LLAVA_FOLDER TRACE.h5 [cpu|cuda]
"""
import sys

import h5py
import torch
from transformers import LlavaForConditionalGeneration

folder, trace = sys.argv[1], sys.argv[2]
device = sys.argv[3] if len(sys.argv) > 3 else ("cuda" if torch.cuda.is_available() else "cpu")
f = h5py.File(trace, "r")
ids = torch.tensor(f["inputs/tokens"][:], device=device)
pixels = torch.tensor(f["inputs/image"][:], device=device)
model = LlavaForConditionalGeneration.from_pretrained(folder, torch_dtype=torch.float32, attn_implementation="eager").to(device).eval()
with torch.no_grad():
    out = model(input_ids=ids, pixel_values=pixels, output_attentions=True)
worst = 0.0
for name in f["activations"]:
    layer = int(name.split(".")[1])
    ours = torch.tensor(f["activations"][name][:])
    theirs = out.attentions[layer].float().cpu()
    d = (ours - theirs).abs().max().item()
    worst = max(worst, d)
    print(f"{name}: {tuple(ours.shape)} max |HeadLab - transformers| = {d:.2e}")
print("next token (transformers):", out.logits[0, -1].argmax().item())
print("PASS" if worst < 1e-4 else "FAIL", f"worst {worst:.2e}")
sys.exit(0 if worst < 1e-4 else 1)
