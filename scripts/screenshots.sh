#!/usr/bin/env bash
# Screenshots of the real window under Xvfb, on stories260K. Usage: scripts/screenshots.sh [OUT_DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/docs/screenshots}
SHARED=${HEADLAB_SHARED:-$(cd "$ROOT/.." && pwd)/shared}
APP=${HEADLAB_APP:-$ROOT/build/app/headlab}
mkdir -p "$OUT"
# A fresh settings folder: the window opens in its default layout, not the last session's.
export XDG_CONFIG_HOME=$(mktemp -d)
trap 'rm -rf "$XDG_CONFIG_HOME"' EXIT
shot() {
  local name=$1; shift
  xvfb-run -a -s "-screen 0 1600x1000x24" "$APP" "$@" --size 1400x900 --screenshot "$OUT/$name.png"
  xvfb-run -a -s "-screen 0 1600x1000x24" "$APP" "$@" --size 1280x760 --screenshot "$OUT/${name}_1280x760.png"
}
M=$SHARED/models/stories260k/stories260K.bin
P="Once upon a time, there was a little girl named Lily. She loved to play outside"
shot window_stories260k --model "$M" --prompt "$P" --select 4.2
shot window_head_ablated --model "$M" --prompt "$P" --ablate 4.1,4.5 --select 4.1
shot window_probe_sinks --model "$M" --prompt "$P" --select 4.0 --probe sinks
shot window_patching --model "$M" --prompt "$P" --select 4.2 --patch "Lily had a red ball. Lily gave the ball to|Tim had a red ball. Tim gave the ball to| Lily| Tim|resid-pos"
# The Lens dock: the logit lens of the prompt and the direct logit attribution of its prediction
# (the head grid coloured by each head's share of the logit).
STEPS=$(mktemp)
for size in 1400x900 1280x760; do
  suffix=$([ $size = 1400x900 ] && echo "" || echo "_$size")
  printf 'open %s\nprompt %s\nlens\ndla\nselect 4.2\nscreenshot %s\n' "$M" "$P" "$OUT/window_lens$suffix.png" > "$STEPS"
  xvfb-run -a -s "-screen 0 1600x1000x24" "$APP" --size $size --script "$STEPS"
done
rm -f "$STEPS"
# A GPT-2-small-shaped random model (12 heads): the head grid and the small multiples must hold 12
# columns without cropped labels.
GPT=$(mktemp -d)
/usr/bin/python3 "$ROOT/tests/scripts/write_random_gpt2.py" "$GPT" "$SHARED"
shot window_12_heads --model "$GPT" --prompt "When Mary and John went to the store, John gave a drink to" --select 2.7
rm -rf "$GPT"
# The vision window on demo-vlm (trained on first use, about 90 s): a drawn scene, the VHD probe run,
# head L0H6 selected (the overlay shows its attention from the answer position to each patch).
python3 "$ROOT/tests/scripts/write_demo_scene.py" "$OUT/.scene.png"
shot window_demo_vlm --model demo-vlm --image "$OUT/.scene.png" --prompt "what colour is at top left ?" --probe vhd --select 0.6
rm -f "$OUT/.scene.png"
echo "screenshots in $OUT"
