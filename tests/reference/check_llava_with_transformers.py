"""Checks the tiny LLaVA reference (make_reference_models.py) against transformers' own
LlavaForConditionalGeneration. make_reference_models.py follows modeling_llava / modeling_clip from
their definitions; this runs the real classes on the same weights, pixels and tokens. Needs a Python
with torch and transformers (not part of `make test`: Debian has no transformers).

    python3 tests/reference/check_llava_with_transformers.py build/tests/ReferenceModels [cpu|cuda]
"""
import json
import os
import sys

import torch
from transformers import LlavaForConditionalGeneration

root = sys.argv[1]
device = sys.argv[2] if len(sys.argv) > 2 else ("cuda" if torch.cuda.is_available() else "cpu")
worst = 0.0
for layout in ("llava", "llava_new_layout"):
    folder = os.path.join(root, layout)
    ref = json.load(open(os.path.join(root, "llava", "reference.json")))
    model = LlavaForConditionalGeneration.from_pretrained(folder, torch_dtype=torch.float32).to(device).eval()
    S = ref["image_size"]
    pixels = torch.tensor(ref["pixels"], dtype=torch.float32).view(1, 3, S, S).to(device)
    n_image = ref["image_end"] - ref["image_begin"]
    ids = []
    for t in ref["tokens"]:  # one placeholder expanded to the image's token count, as the processor does
        ids += [t] * (n_image if t == model.config.image_token_index else 1)
    ids = torch.tensor([ids], device=device)
    with torch.no_grad():
        # The tower's hidden state at vision_feature_layer, class token dropped ("default"): the
        # features before the projector, as reference.json holds them.
        tower = model.vision_tower if hasattr(model, "vision_tower") else model.model.vision_tower
        hidden = tower(pixels, output_hidden_states=True).hidden_states[model.config.vision_feature_layer]
        feats = hidden[:, 1:] if model.config.vision_feature_select_strategy == "default" else hidden
        logits = model(input_ids=ids, pixel_values=pixels).logits[0]
    want_logits = torch.tensor(ref["logits"]).view(*ref["shape"])
    got = logits.float().cpu()
    d_logits = (got - want_logits).abs().max().item()
    print(f"{layout}: logits {tuple(got.shape)} max |transformers - reference| = {d_logits:.2e} on {device}")
    want_feats = torch.tensor(ref["vision_features"]).view(*ref["vision_shape"])
    f = feats.float().cpu().reshape(-1, feats.shape[-1])
    assert f.shape == want_feats.shape, (f.shape, want_feats.shape)
    d_feats = (f - want_feats).abs().max().item()
    print(f"{layout}: vision features {tuple(f.shape)} max |transformers - reference| = {d_feats:.2e}")
    worst = max(worst, d_logits, d_feats)
print("PASS" if worst < 1e-4 else "FAIL", f"worst {worst:.2e}")
sys.exit(0 if worst < 1e-4 else 1)
