"""Writes a 16 x 16 PNG scene in demo-vlm's style (PRODUCT.md §8): a red square at top left, a green
cross at top right, a blue circle at bottom right, bottom left empty. Standard library only.
Usage: write_demo_scene.py OUT.png [red|green|blue]   (the top-left square's colour, red by default:
two scenes that differ only there are a clean/corrupted pair for image patching)."""
import struct
import sys
import zlib

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
if len(sys.argv) not in (2, 3) or sys.argv[1].startswith("-"):
    sys.exit(__doc__)
SQUARE = {"red": RED, "green": GREEN, "blue": BLUE}[sys.argv[2] if len(sys.argv) == 3 else "red"]
pixels = [[(0, 0, 0)] * 16 for _ in range(16)]
for y in range(1, 7):
    for x in range(1, 7):
        dy, dx = y - 3.5, x - 3.5
        pixels[y][x] = SQUARE                                           # square, top left
        if y in (3, 4) or x in (3, 4):
            pixels[y][8 + x] = GREEN                                    # cross, top right
        if dy * dy + dx * dx <= 9.0:
            pixels[8 + y][8 + x] = BLUE                                 # circle, bottom right


def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


raw = b"".join(b"\x00" + bytes(c for p in row for c in p) for row in pixels)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
