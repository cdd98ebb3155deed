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
}  // namespace

const std::vector<DtypeInfo>& storedDtypes() {
  static const std::vector<DtypeInfo> table = {
      // name    safetensors ggml  block  bytes  to float32
      {"F32", true, 0, 1, 4, f32ToFloat},
      {"F16", true, 1, 1, 2, f16ToFloat},
      {"Q8_0", false, 8, 32, 34, q8_0ToFloat},
      {"BF16", true, 30, 1, 2, bf16ToFloat},
      {"I32", true, -1, 1, 4, nullptr},
      {"I64", true, -1, 1, 8, nullptr},
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
