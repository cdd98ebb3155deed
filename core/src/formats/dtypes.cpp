// The stored element types, one row each, and their conversions to float32 (ggml's block
// definitions for the quantised ones).
#include <ATen/ATen.h>

#include <cstring>

#include "headlab/core/tensor_store.h"

namespace headlab {

namespace {
float halfToFloat(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal
      exp = 127 - 15 + 1;
      while (!(mant & 0x400)) mant <<= 1, --exp;
      bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

at::Tensor blob(const uint8_t* p, int64_t numel, at::ScalarType t) { return at::from_blob(const_cast<uint8_t*>(p), {numel}, t); }

at::Tensor f32ToFloat(const uint8_t* p, int64_t numel) { return blob(p, numel, at::kFloat).clone(); }
at::Tensor f16ToFloat(const uint8_t* p, int64_t numel) { return blob(p, numel, at::kHalf).to(at::kFloat); }
at::Tensor bf16ToFloat(const uint8_t* p, int64_t numel) { return blob(p, numel, at::kBFloat16).to(at::kFloat); }

// Q8_0: blocks of 32 int8 values with one float16 scale in front (34 bytes).
at::Tensor q8_0ToFloat(const uint8_t* p, int64_t numel) {
  at::Tensor out = at::empty({numel}, at::kFloat);
  float* o = out.data_ptr<float>();
  for (int64_t b = 0; b < numel / 32; ++b) {
    const uint8_t* block = p + b * 34;
    uint16_t hs;
    std::memcpy(&hs, block, 2);
    float scale = halfToFloat(hs);
    const int8_t* q = reinterpret_cast<const int8_t*>(block + 2);
    for (int i = 0; i < 32; ++i) o[b * 32 + i] = scale * static_cast<float>(q[i]);
  }
  return out;
}
// ggml's block definitions (ggml-common.h) and dequantisers (ggml-quants.c), element for element
// and in the same float32 order of operations, so the results are bit-identical.
float half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return halfToFloat(h);
}

// Runs `block(src, dst)` over every block of `blockBytes` bytes holding `blockElems` values.
template <typename Fn>
at::Tensor perBlock(const uint8_t* p, int64_t numel, int64_t blockElems, int64_t blockBytes, Fn block) {
  at::Tensor out = at::empty({numel}, at::kFloat);
  float* y = out.data_ptr<float>();
  for (int64_t b = 0; b < numel / blockElems; ++b) block(p + b * blockBytes, y + b * blockElems);
  return out;
}

// Q4_0: d (f16), 16 bytes of nibbles; values (q - 8) * d, low nibbles first half, high second.
at::Tensor q4_0ToFloat(const uint8_t* p, int64_t numel) {
  return perBlock(p, numel, 32, 18, [](const uint8_t* b, float* y) {
    const float d = half(b);
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>((b[2 + j] & 0x0F) - 8) * d;
      y[j + 16] = static_cast<float>((b[2 + j] >> 4) - 8) * d;
    }
  });
}

// Q4_1: d, m (f16), 16 bytes of nibbles; values q * d + m.
at::Tensor q4_1ToFloat(const uint8_t* p, int64_t numel) {
  return perBlock(p, numel, 32, 20, [](const uint8_t* b, float* y) {
    const float d = half(b), m = half(b + 2);
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>(b[4 + j] & 0x0F) * d + m;
      y[j + 16] = static_cast<float>(b[4 + j] >> 4) * d + m;
    }
  });
}

// Q5_0 / Q5_1: as Q4_0 / Q4_1 with a fifth bit per value in a 32-bit mask (qh).
template <bool withMin>
at::Tensor q5ToFloat(const uint8_t* p, int64_t numel) {
  constexpr int head = withMin ? 4 : 2;
  return perBlock(p, numel, 32, head + 20, [](const uint8_t* b, float* y) {
    const float d = half(b), m = withMin ? half(b + 2) : 0.0f;
    uint32_t qh;
    std::memcpy(&qh, b + head, 4);
    const uint8_t* qs = b + head + 4;
    for (int j = 0; j < 16; ++j) {
      const int x0 = (qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10);
      const int x1 = (qs[j] >> 4) | ((qh >> (j + 12)) & 0x10);
      if (withMin) {
        y[j] = static_cast<float>(x0) * d + m;
        y[j + 16] = static_cast<float>(x1) * d + m;
      } else {
        y[j] = static_cast<float>(x0 - 16) * d;
        y[j + 16] = static_cast<float>(x1 - 16) * d;
      }
    }
  });
}

// Q2_K (84 bytes per 256): scales[16] (4-bit scale | 4-bit min), qs[64] (2-bit), d, dmin.
at::Tensor q2_kToFloat(const uint8_t* p, int64_t numel) {
  return perBlock(p, numel, 256, 84, [](const uint8_t* b, float* y) {
    const uint8_t* scales = b;
    const uint8_t* q = b + 16;
    const float d = half(b + 80), dmin = half(b + 82);
    int is = 0;
    for (int n = 0; n < 256; n += 128, q += 32)
      for (int shift = 0; shift < 8; shift += 2)
        for (int half16 = 0; half16 < 2; ++half16) {
          const uint8_t sc = scales[is++];
          const float dl = d * static_cast<float>(sc & 0xF), ml = dmin * static_cast<float>(sc >> 4);
          for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<float>((q[l + 16 * half16] >> shift) & 3) - ml;
        }
  });
}

// Q3_K (110 bytes per 256): hmask[32] (third bit, set = no offset), qs[64] (2-bit), scales[12]
// (sixteen 6-bit scales, offset 32), d.
at::Tensor q3_kToFloat(const uint8_t* p, int64_t numel) {
  return perBlock(p, numel, 256, 110, [](const uint8_t* b, float* y) {
    const uint8_t* hm = b;
    const uint8_t* q = b + 32;
    const uint8_t* packed = b + 96;
    const float dAll = half(b + 108);
    int scales[16];
    for (int i = 0; i < 16; ++i) {
      const int low = i < 8 ? packed[i] & 0xF : packed[i - 8] >> 4;
      const int high = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
      scales[i] = (low | (high << 4)) - 32;
    }
    int is = 0;
    uint8_t m = 1;
    for (int n = 0; n < 256; n += 128, q += 32)
      for (int shift = 0; shift < 8; shift += 2, m <<= 1)
        for (int half16 = 0; half16 < 2; ++half16) {
          const float dl = dAll * static_cast<float>(scales[is++]);
          for (int l = 16 * half16; l < 16 * half16 + 16; ++l)
            *y++ = dl * static_cast<float>(((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
        }
  });
}

// The 6-bit scale and min of sub-block j of Q4_K / Q5_K (12 packed bytes for eight pairs).
void scaleMinK4(int j, const uint8_t* q, uint8_t& d, uint8_t& m) {
  if (j < 4) {
    d = q[j] & 63, m = q[j + 4] & 63;
  } else {
    d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Q4_K (144 bytes) / Q5_K (176 bytes) per 256: d, dmin, scales[12], (Q5_K: qh[32]), qs[128].
template <bool fiveBit>
at::Tensor qk4or5ToFloat(const uint8_t* p, int64_t numel) {
  return perBlock(p, numel, 256, fiveBit ? 176 : 144, [](const uint8_t* b, float* y) {
    const float d = half(b), dmin = half(b + 2);
    const uint8_t* scales = b + 4;
    const uint8_t* qh = b + 16;
    const uint8_t* q = b + (fiveBit ? 48 : 16);
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < 256; j += 64, q += 32, is += 2, u1 <<= 2, u2 <<= 2) {
      uint8_t sc, m;
      scaleMinK4(is, scales, sc, m);
      const float d1 = d * sc, m1 = dmin * m;
      scaleMinK4(is + 1, scales, sc, m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>((q[l] & 0xF) + (fiveBit && (qh[l] & u1) ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>((q[l] >> 4) + (fiveBit && (qh[l] & u2) ? 16 : 0)) - m2;
    }
  });
}

// Q6_K (210 bytes per 256): ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16], d.
at::Tensor q6_kToFloat(const uint8_t* p, int64_t numel) {
  return perBlock(p, numel, 256, 210, [](const uint8_t* b, float* y) {
    const uint8_t* ql = b;
    const uint8_t* qh = b + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
    const float d = half(b + 208);
    for (int n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32, sc += 8)
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
        y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
  });
}

// IQ4_NL: d and 16 bytes of nibbles indexing a fixed non-linear table.
at::Tensor iq4_nlToFloat(const uint8_t* p, int64_t numel) {
  static constexpr int8_t kValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
  return perBlock(p, numel, 32, 18, [](const uint8_t* b, float* y) {
    const float d = half(b);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>(kValues[b[2 + j] & 0xF]);
      y[j + 16] = d * static_cast<float>(kValues[b[2 + j] >> 4]);
    }
  });
}
}  // namespace

const std::vector<DtypeInfo>& storedDtypes() {
  static const std::vector<DtypeInfo> table = {
      // name, in safetensors, ggml id, values and bytes per block, to float32, plain torch type
      {"F32", true, 0, 1, 4, f32ToFloat, at::kFloat},
      {"F16", true, 1, 1, 2, f16ToFloat, at::kHalf},
      {"Q4_0", false, 2, 32, 18, q4_0ToFloat},
      {"Q4_1", false, 3, 32, 20, q4_1ToFloat},
      {"Q5_0", false, 6, 32, 22, q5ToFloat<false>},
      {"Q5_1", false, 7, 32, 24, q5ToFloat<true>},
      {"Q8_0", false, 8, 32, 34, q8_0ToFloat},
      {"Q2_K", false, 10, 256, 84, q2_kToFloat},
      {"Q3_K", false, 11, 256, 110, q3_kToFloat},
      {"Q4_K", false, 12, 256, 144, qk4or5ToFloat<false>},
      {"Q5_K", false, 13, 256, 176, qk4or5ToFloat<true>},
      {"Q6_K", false, 14, 256, 210, q6_kToFloat},
      {"IQ4_NL", false, 20, 32, 18, iq4_nlToFloat},
      {"BF16", true, 30, 1, 2, bf16ToFloat, at::kBFloat16},
      {"I32", true, -1, 1, 4, nullptr, at::kInt},
      {"I64", true, -1, 1, 8, nullptr, at::kLong},
  };
  return table;
}

StoredDtype dtypeF32() { return &storedDtypes().front(); }

StoredDtype safetensorsDtype(const std::string& name) {
  for (const auto& d : storedDtypes())
    if (d.inSafetensors && name == d.name) return &d;
  return nullptr;
}

StoredDtype ggmlDtype(int64_t id) {
  for (const auto& d : storedDtypes())
    if (d.ggmlId >= 0 && d.ggmlId == id) return &d;
  return nullptr;
}

std::string safetensorsDtypeList() {
  std::vector<std::string> names;
  for (const auto& d : storedDtypes())
    if (d.inSafetensors && d.toFloat) names.push_back(d.name);
  std::string s;
  for (size_t i = 0; i < names.size(); ++i) s += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
  return s;
}

std::string ggmlDtypeList() {
  std::string s;
  for (const auto& d : storedDtypes())
    if (d.ggmlId >= 0) s += (s.empty() ? "" : ", ") + std::string(d.name) + " (" + std::to_string(d.ggmlId) + ")";
  return s;
}

}  // namespace headlab
