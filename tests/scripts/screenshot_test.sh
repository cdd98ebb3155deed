#!/usr/bin/env bash
# Opens the real window under Xvfb, saves a screenshot and checks it is not blank.
set -u
APP=$1
OUT=$2/screenshot_main_window.png
rm -f "$OUT"
xvfb-run -a -s "-screen 0 1600x1000x24" "$APP" --screenshot "$OUT" || { echo "FAIL: headlab exited non-zero"; exit 1; }
/usr/bin/python3 - "$OUT" <<'PY'
import sys, zlib, struct
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
# Count distinct colours from the IDAT stream (8-bit RGB/RGBA, filter bytes included).
pos, idat, w, h, ctype = 8, b'', 0, 0, 0
while pos < len(data):
    n, kind = struct.unpack('>I4s', data[pos:pos+8]); body = data[pos+8:pos+8+n]; pos += 12 + n
    if kind == b'IHDR': w, h, depth, ctype = struct.unpack('>IIBB', body[:10])
    if kind == b'IDAT': idat += body
raw = zlib.decompress(idat)
distinct = len(set(raw[i:i+3] for i in range(1, min(len(raw), 4_000_000), 97)))
print(f'screenshot {w}x{h}, ~{distinct} distinct byte triples')
assert w >= 800 and h >= 600, 'window too small'
assert distinct > 20, 'screenshot looks blank'
PY
