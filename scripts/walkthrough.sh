#!/usr/bin/env bash
# The first five minutes in the window, scripted (issue #19): open the demo model, run its induction
# example, find the induction head with the probe, select and ablate it and see the prediction fall,
# run a patching sweep and export its heatmap, save the session and open it again (the ablation and
# the fallen prediction come back), then open demo-vlm on its example scene. Runs the real window under Xvfb through its own scripting
# (`headlab --script`, app/gui/script_runner.h); screenshots go to OUT.
# Usage: scripts/walkthrough.sh [HEADLAB_GUI] [OUT]   (the demo model is trained on first use, ~90 s)
set -u
GUI=${1:-build/app/headlab}
OUT=${2:-walkthrough}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
command -v xvfb-run >/dev/null || { echo "walkthrough: xvfb-run is missing (apt-get install xvfb)"; exit 1; }
settings=$(mktemp -d); trap 'rm -rf "$settings"' EXIT
export XDG_CONFIG_HOME=$settings   # the default layout, not the last session's
rm -f "$OUT"/walkthrough_*.png "$OUT"/patching_heads.png "$OUT"/session.headlab.json
cat > "$OUT/walkthrough.steps" <<STEPS
# The demo model: two layers of eight heads trained on induction and retrieval tasks.
open demo
screenshot $OUT/walkthrough_1_open.png
# The induction example: a repeated word sequence; the model predicts the word that followed before.
example 2
probe induction
select best
screenshot $OUT/walkthrough_2_induction_head.png
ablate
expect-fall
screenshot $OUT/walkthrough_3_ablated.png
patch the secret code of anna is 4 7 2 . question : the secret code of anna is|the secret code of anna is 9 7 2 . question : the secret code of anna is|4|9|heads
export-patching $OUT/patching_heads.png
save-session $OUT/session.headlab.json
open-session $OUT/session.headlab.json
expect-fall
screenshot $OUT/walkthrough_4_session_reopened.png
# demo-vlm opens on one of its scenes (a red square at top left) and answers its first example.
open demo-vlm
expect-image
example 1
expect-top red
screenshot $OUT/walkthrough_5_demo_vlm.png
STEPS
xvfb-run -a -s "-screen 0 1600x1000x24" "$GUI" --size 1400x900 --script "$OUT/walkthrough.steps" 2> "$OUT/walkthrough.log"
rc=$?
grep '^walkthrough:' "$OUT/walkthrough.log"
[ $rc -eq 0 ] || { echo "FAIL walkthrough (exit $rc); the log: $OUT/walkthrough.log"; tail -5 "$OUT/walkthrough.log"; exit 1; }
for f in walkthrough_1_open walkthrough_2_induction_head walkthrough_3_ablated walkthrough_4_session_reopened walkthrough_5_demo_vlm patching_heads; do
  [ -s "$OUT/$f.png" ] || { echo "FAIL missing $OUT/$f.png"; exit 1; }
done
echo "walkthrough: passed; screenshots in $OUT"
