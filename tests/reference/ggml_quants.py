"""ggml's quantised block types (ggml-common.h / ggml-quants.c), dequantised here with numpy from the
block definitions, independently of HeadLab's C++, in the same float32 order of operations so the
results must agree bit for bit. write_quant_reference(out) writes random blocks with edge values
(every nibble and scale value, zero, subnormal and extreme scales) and their float32 values."""
import json, os
import numpy as np

F32 = np.float32


def halfs(raw):
    return np.frombuffer(bytes(raw), dtype="<f2").astype(F32)


def q4_0(b):
    d, qs = halfs(b[0:2])[0], np.frombuffer(b[2:18], np.uint8).astype(np.int32)
    return np.concatenate([((qs & 15) - 8).astype(F32) * d, ((qs >> 4) - 8).astype(F32) * d])


def q4_1(b):
    d, m = halfs(b[0:4])
    qs = np.frombuffer(b[4:20], np.uint8).astype(np.int32)
    return np.concatenate([(qs & 15).astype(F32) * d + m, (qs >> 4).astype(F32) * d + m])


def q5(b, with_min):
    head = 4 if with_min else 2
    d = halfs(b[0:2])[0]
    m = halfs(b[2:4])[0] if with_min else F32(0)
    bits = np.unpackbits(np.frombuffer(b[head:head + 4], np.uint8), bitorder="little").astype(np.int32)  # bit j of qh
    qs = np.frombuffer(b[head + 4:head + 20], np.uint8).astype(np.int32)
    lo, hi = (qs & 15) | (bits[:16] << 4), (qs >> 4) | (bits[16:] << 4)
    if with_min:
        return np.concatenate([lo.astype(F32) * d + m, hi.astype(F32) * d + m])
    return np.concatenate([(lo - 16).astype(F32) * d, (hi - 16).astype(F32) * d])


def q8_0(b):
    return np.frombuffer(b[2:34], np.int8).astype(F32) * halfs(b[0:2])[0]


def q2_k(b):
    scales = np.frombuffer(b[0:16], np.uint8).astype(np.int32)
    qs = np.frombuffer(b[16:80], np.uint8).astype(np.int32)
    d, dmin = halfs(b[80:84])
    out = []
    for g in range(16):  # 16 groups of 16 values: half h of 128, shift s, first or second 16 bytes
        h, s, part = g // 8, (g % 8) // 2 * 2, g % 2
        q = (qs[32 * h + 16 * part: 32 * h + 16 * part + 16] >> s) & 3
        out.append((d * F32(scales[g] & 15)) * q.astype(F32) - dmin * F32(scales[g] >> 4))
    return np.concatenate(out)


def six_bit_scales_q3(packed):
    p = packed.astype(np.int32)
    return np.array([((p[i] & 15) if i < 8 else (p[i - 8] >> 4)) | (((p[8 + i % 4] >> (2 * (i // 4))) & 3) << 4)
                     for i in range(16)]) - 32


def q3_k(b):
    hmask = np.unpackbits(np.frombuffer(b[0:32], np.uint8), bitorder="little").reshape(32, 8)  # [byte, bit]
    qs = np.frombuffer(b[32:96], np.uint8).astype(np.int32)
    scales = six_bit_scales_q3(np.frombuffer(b[96:108], np.uint8))
    d = halfs(b[108:110])[0]
    out = []
    for g in range(16):
        h, j, part = g // 8, (g % 8) // 2, g % 2
        rows = np.arange(16) + 16 * part
        q = (qs[32 * h + rows] >> (2 * j)) & 3
        offset = np.where(hmask[rows, 4 * h + j] == 1, 0, 4)
        out.append((d * F32(scales[g])) * (q - offset).astype(F32))
    return np.concatenate(out)


def scale_min_k4(j, q):
    q = q.astype(np.int32)
    if j < 4:
        return q[j] & 63, q[j + 4] & 63
    return (q[j + 4] & 15) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4)


def qk45(b, five):
    d, dmin = halfs(b[0:4])
    scales = np.frombuffer(b[4:16], np.uint8)
    qh = np.unpackbits(np.frombuffer(b[16:48], np.uint8), bitorder="little").reshape(32, 8) if five else None
    qs = np.frombuffer(b[48:176] if five else b[16:144], np.uint8).astype(np.int32)
    out = []
    for chunk in range(4):
        q = qs[32 * chunk: 32 * chunk + 32]
        for k, nib in ((0, q & 15), (1, q >> 4)):
            sc, m = scale_min_k4(2 * chunk + k, scales)
            high = qh[:, 2 * chunk + k].astype(np.int32) * 16 if five else 0
            out.append((d * F32(sc)) * (nib + high).astype(F32) - dmin * F32(m))
    return np.concatenate(out)


def q6_k(b):
    ql = np.frombuffer(b[0:128], np.uint8).astype(np.int32)
    qh = np.frombuffer(b[128:192], np.uint8).astype(np.int32)
    sc = np.frombuffer(b[192:208], np.int8).astype(F32)
    d = halfs(b[208:210])[0]
    y = np.zeros(256, F32)
    for n in range(2):
        L, H, S = ql[64 * n: 64 * n + 64], qh[32 * n: 32 * n + 32], sc[8 * n: 8 * n + 8]
        l = np.arange(32)
        parts = (((L[:32] & 15) | ((H & 3) << 4)) - 32, ((L[32:] & 15) | (((H >> 2) & 3) << 4)) - 32,
                 ((L[:32] >> 4) | (((H >> 4) & 3) << 4)) - 32, ((L[32:] >> 4) | (((H >> 6) & 3) << 4)) - 32)
        for k, q in enumerate(parts):
            y[128 * n + 32 * k + l] = (d * S[l // 16 + 2 * k]) * q.astype(F32)
    return y


IQ4_NL_VALUES = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113], np.int32)


def iq4_nl(b):
    d, qs = halfs(b[0:2])[0], np.frombuffer(b[2:18], np.uint8)
    return np.concatenate([d * IQ4_NL_VALUES[qs & 15].astype(F32), d * IQ4_NL_VALUES[qs >> 4].astype(F32)])


# name: (ggml id, values per block, bytes per block, offsets of the f16 fields, dequantiser)
TYPES = {
    "Q4_0": (2, 32, 18, [0], q4_0), "Q4_1": (3, 32, 20, [0, 2], q4_1),
    "Q5_0": (6, 32, 22, [0], lambda b: q5(b, False)), "Q5_1": (7, 32, 24, [0, 2], lambda b: q5(b, True)),
    "Q8_0": (8, 32, 34, [0], q8_0), "Q2_K": (10, 256, 84, [80, 82], q2_k), "Q3_K": (11, 256, 110, [108], q3_k),
    "Q4_K": (12, 256, 144, [0, 2], lambda b: qk45(b, False)), "Q5_K": (13, 256, 176, [0, 2], lambda b: qk45(b, True)),
    "Q6_K": (14, 256, 210, [208], q6_k), "IQ4_NL": (20, 32, 18, [0], iq4_nl),
}


def dequantize(name, data):
    _, n, size, _, fn = TYPES[name]
    return np.concatenate([fn(data[i:i + size]) for i in range(0, len(data), size)])


def random_blocks(name, count, rng):
    _, _, size, half_offsets, _ = TYPES[name]
    scales = [0.0, 6e-8, -6e-8, 65504.0, -65504.0, 1.0, -0.5, 3e-3]  # zero, subnormal, extremes
    blocks = bytearray()
    for i in range(count):
        b = bytearray(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        if i == 0:
            b = bytearray(b"\xff" * size)  # every bit set
        elif i == 1:
            b = bytearray(size)  # every bit clear
        elif i < 2 + 16:
            b = bytearray([((i - 2) * 0x11) & 0xFF] * size)  # each nibble value everywhere
        for k, off in enumerate(half_offsets):
            value = scales[(i + k) % len(scales)] if i < len(scales) * 3 else float(rng.normal(0, 0.05))
            b[off:off + 2] = np.array([value], dtype="<f2").tobytes()
        blocks += b
    return bytes(blocks)


def write_quant_reference(out):
    rng = np.random.default_rng(20261129)
    d = os.path.join(out, "quants")
    os.makedirs(d, exist_ok=True)
    index = {}
    for name, (ggml_id, n, size, _, _) in TYPES.items():
        data = random_blocks(name, 64, rng)
        values = dequantize(name, data)
        assert values.dtype == F32 and len(values) == 64 * n
        with open(os.path.join(d, name + ".bin"), "wb") as f:
            f.write(data)
        with open(os.path.join(d, name + ".f32"), "wb") as f:
            f.write(values.astype("<f4").tobytes())
        index[name] = {"ggml_id": ggml_id, "block_elems": n, "block_bytes": size, "blocks": 64}
    with open(os.path.join(d, "index.json"), "w") as f:
        json.dump(index, f)
