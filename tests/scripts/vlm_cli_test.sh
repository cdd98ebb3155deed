#!/usr/bin/env bash
# headlab-cli probe vhd|look on the tiny LLaVA the ReferenceModels fixture writes, with an image
# file read by the CLI (a PPM written here), and the errors for a missing or misplaced image.
set -u
CLI=$1
MODEL=$2/llava
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 -c "
import random
w, h = 20, 16
r = random.Random(1)
open('$tmp/img.ppm', 'wb').write(b'P6\n%d %d\n255\n' % (w, h) + bytes(r.randrange(256) for _ in range(w * h * 3)))"
fail=0
TOK='{"tokens": [1, 5, 7, 63, 9, 11, 13]}'
"$CLI" probe look --model "$MODEL" --image "$tmp/img.ppm" --params "$TOK" --json > "$tmp/look.json" 2>/dev/null || { echo "FAIL look"; fail=1; }
"$CLI" probe vhd --model "$MODEL" --image "$tmp/img.ppm" --params '{"tokens": [1, 5, 7, 63, 9, 11, 13], "vhr": true, "generate": 2}' \
  --json --out "$tmp/vhd.h5" > "$tmp/vhd.json" 2>/dev/null || { echo "FAIL vhd"; fail=1; }
/usr/bin/python3 - "$tmp" <<'PY' || fail=1
import json, sys, h5py
d = sys.argv[1]
look = json.load(open(d + "/look.json"))
assert look["image_span"] == [3, 12] and look["map"]["side"] == 3, look["image_span"]
assert all(0 <= v <= 1 + 1e-6 for v in look["grid"]["values"])
vhd = json.load(open(d + "/vhd.json"))
assert len(vhd["grid"]["values"]) == 8 and min(vhd["vhd_raw"]["values"]) > 0, vhd["vhd_raw"]
assert len(vhd["t_vhd"]) == 2 and vhd["vhr"]["max_abs_logit_change"] > 0
f = h5py.File(d + "/vhd.h5")
assert f["probes/vhd/grid"].shape == (2, 4), f["probes/vhd/grid"].shape
print("vision probes from the CLI: look image span", look["image_span"], "VHD grid", f["probes/vhd/grid"].shape)
PY
# capture on an image prompt: the trace holds the image, its span and the image run's attention.
"$CLI" capture --model "$MODEL" --image "$tmp/img.ppm" --prompt "w5 w7 w9" --hooks "blocks.*.attn.hook_pattern" --out "$tmp/cap.h5" \
  > /dev/null 2>&1 || { echo "FAIL capture with an image"; fail=1; }
/usr/bin/python3 - "$tmp/cap.h5" <<'PY' || fail=1
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1])
assert f["inputs/image"].shape == (1, 3, 12, 12), f["inputs/image"].shape
assert list(f["inputs/image_span"][:]) == [1, 10], f["inputs/image_span"][:]
assert f["inputs/tokens"].shape == (1, 13) and int(f["inputs/tokens"][0, 1]) == 63
p = f["activations/blocks.0.attn.hook_pattern"][:]
assert p.shape == (1, 4, 13, 13) and np.allclose(p.sum(-1), 1, atol=1e-5)
assert p[0, :, 10:, 1:10].sum() > 0, "the words attend to the image"
print("capture with an image:", f["inputs/image"].shape, "span", list(f["inputs/image_span"][:]))
PY
out=$("$CLI" capture --model "$MODEL" --prompt "w5" --hooks "x" --out "$tmp/no.h5" --image "$tmp/missing.png" 2>&1) && { echo "FAIL capture with a missing image succeeded"; fail=1; }
[ -e "$tmp/no.h5" ] && { echo "FAIL a failed capture left a file"; fail=1; }
# info, tokenize and generate take a LLaVA folder too.
"$CLI" info --model "$MODEL" | grep -q '"image_tokens": 9' || { echo "FAIL info on a LLaVA folder"; fail=1; }
[ "$("$CLI" tokenize --model "$MODEL" --text "w5 w7")" = "1 5 7" ] || { echo "FAIL tokenize on a LLaVA folder"; fail=1; }
gen=$("$CLI" generate --model "$MODEL" --image "$tmp/img.ppm" --prompt "w5 w7 w9" --max-tokens 3 2>&1) || { echo "FAIL generate with an image: $gen"; fail=1; }
[ "$(echo "$gen" | wc -w)" = 6 ] || { echo "FAIL generate printed '$gen'"; fail=1; }
out=$("$CLI" generate --model "$(dirname "$MODEL")/gpt2" --image "$tmp/img.ppm" --prompt "x" 2>&1) && { echo "FAIL --image on a text model succeeded"; fail=1; }
echo "$out" | grep -q "needs a vision-language model" || { echo "FAIL wrong error: $out"; fail=1; }
# patch between two images with the same question: words before the image never see it.
/usr/bin/python3 -c "
import random
w, h = 20, 16
r = random.Random(2)
open('$tmp/img2.ppm', 'wb').write(b'P6\n%d %d\n255\n' % (w, h) + bytes(r.randrange(256) for _ in range(w * h * 3)))"
"$CLI" patch --model "$MODEL" --image "$tmp/img.ppm" --corrupted-image "$tmp/img2.ppm" --clean "w5 w7 w9" --answer w12 --wrong w14 \
  --sweep resid-pos --json > "$tmp/patch.json" 2>/dev/null || { echo "FAIL patch between two images"; fail=1; }
/usr/bin/python3 - "$tmp/patch.json" <<'PY' || fail=1
import json, sys
j = json.load(open(sys.argv[1]))
assert j["parameters"]["corrupted_image"].endswith("img2.ppm") and j["shape"] == [2, 13], (j["parameters"], j["shape"])
assert j["clean_metric"] != j["corrupted_metric"]
grid = [j["values"][l * 13:(l + 1) * 13] for l in range(2)]
assert all(abs(grid[l][0]) < 1e-5 for l in range(2)), "BOS never sees the image"
assert all(abs(v) < 1e-5 for v in grid[0][10:]), "layer-0 words are token embeddings"
assert max(abs(v) for v in grid[0][1:10]) > 0.01, "the image positions matter"
print("patching between two images: clean", round(j["clean_metric"], 3), "corrupted", round(j["corrupted_metric"], 3))
PY
out=$("$CLI" patch --model "$(dirname "$MODEL")/gpt2" --corrupted-image "$tmp/img2.ppm" --clean "x" --corrupted "y" --answer x --wrong y 2>&1) \
  && { echo "FAIL --corrupted-image on a text model succeeded"; fail=1; }
echo "$out" | grep -q "corrupted-image needs a vision-language model" || { echo "FAIL wrong error: $out"; fail=1; }
out=$("$CLI" probe vhd --model "$MODEL" --params "$TOK" 2>&1) && { echo "FAIL vhd without an image succeeded"; fail=1; }
echo "$out" | grep -q "needs a vision-language model (LLaVA folder) and an image" || { echo "FAIL wrong error: $out"; fail=1; }
out=$("$CLI" probe look --model "$MODEL" --image "$tmp/missing.png" 2>&1) && { echo "FAIL missing image succeeded"; fail=1; }
echo "$out" | grep -q "missing.png: cannot read the image" || { echo "FAIL wrong error: $out"; fail=1; }
exit $fail
