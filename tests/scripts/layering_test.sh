#!/usr/bin/env bash
# The layering check must pass on the real tree and reject Qt in core/ and torch in views/.
set -u
CMAKE=$1
SRC=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
"$CMAKE" -DHEADLAB_SOURCE_DIR="$SRC" -P "$SRC/cmake/CheckLayering.cmake" >/dev/null 2>&1 || { echo "FAIL: real tree rejected"; fail=1; }

mkdir -p "$tmp/bad_core/core/src" "$tmp/bad_views/views/src"
printf '#include <QString>\nint x;\n' > "$tmp/bad_core/core/src/model.cpp"
printf '#include <ATen/ATen.h>\nint y;\n' > "$tmp/bad_views/views/src/plot.cpp"
out=$("$CMAKE" -DHEADLAB_SOURCE_DIR="$tmp/bad_core" -P "$SRC/cmake/CheckLayering.cmake" 2>&1) && { echo "FAIL: Qt in core accepted"; fail=1; }
echo "$out" | grep -q "core/src/model.cpp includes Qt" || { echo "FAIL: message does not name the file: $out"; fail=1; }
out=$("$CMAKE" -DHEADLAB_SOURCE_DIR="$tmp/bad_views" -P "$SRC/cmake/CheckLayering.cmake" 2>&1) && { echo "FAIL: torch in views accepted"; fail=1; }
echo "$out" | grep -q "views/src/plot.cpp includes torch" || { echo "FAIL: message does not name the file: $out"; fail=1; }
[ $fail -eq 0 ] && echo "layering check: accepts the tree, rejects both violations"
exit $fail
