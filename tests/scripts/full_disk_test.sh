#!/usr/bin/env bash
# Resource guards of headlab-cli capture: a disk that fills during the write (simulated with a file
# size limit: writes past it fail with EFBIG, SIGXFSZ ignored) gives a clear error, leaves the target
# untouched and no temporary file behind; a capture over the memory budget is refused up front; a
# prompt longer than the context is refused.
set -u
CLI=$1
SRC=$2
SHARED=${HEADLAB_SHARED:-$(cd "$SRC/.." && pwd)/shared}
M=$SHARED/models/stories260k/stories260K.gguf
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
echo "precious" > "$tmp/trace.h5"
PROMPT="Once upon a time, there was a little girl named Lily. She loved to play outside in the park."
err=$( (trap '' XFSZ; ulimit -f 64; "$CLI" capture --model "$M" --prompt "$PROMPT" --hooks 'blocks.*' --out "$tmp/trace.h5" --force) 2>&1 >/dev/null ); rc=$?
last=$(echo "$err" | tail -1)
[ $rc -ne 0 ] || { echo "FAIL: capture on a full disk exited 0"; fail=1; }
[[ "$last" == "error: $tmp/trace.h5: write failed (disk full?)"* ]] || { echo "FAIL: unclear message: $last"; fail=1; }
[ "$(cat "$tmp/trace.h5")" = "precious" ] || { echo "FAIL: the existing target was touched"; fail=1; }
[ "$(ls -A "$tmp" | wc -l)" = "1" ] || { echo "FAIL: files left behind: $(ls -A "$tmp")"; fail=1; }
echo "full disk: $last"

err=$("$CLI" capture --model "$M" --prompt "$PROMPT" --hooks 'blocks.*' --out "$tmp/big.h5" --max-mb 0 2>&1 >/dev/null); rc=$?
[ $rc -ne 0 ] && [[ "$err" == *"over the budget of 0 MB"* ]] || { echo "FAIL: memory budget: $err"; fail=1; }
[ ! -e "$tmp/big.h5" ] || { echo "FAIL: over-budget capture wrote a file"; fail=1; }

long=$(printf 'the cat sat on the mat and %.0s' $(seq 1 200))
err=$("$CLI" generate --model "$SHARED/models/stories260k/stories260K.bin" --prompt "$long" 2>&1 >/dev/null); rc=$?
[ $rc -ne 0 ] && [[ "$err" == *"is longer than the model's context of 512"* ]] || { echo "FAIL: long prompt: $err"; fail=1; }
[ $fail -eq 0 ] && echo "resource guards: full disk, memory budget and context length give clear errors"
exit $fail
