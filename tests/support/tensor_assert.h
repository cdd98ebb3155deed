// Tensor comparisons that say where they fail: the worst element, its index and both values.
#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>

namespace headlab::test {

// EXPECTs every |got - expected| <= tol (same shape, finite where expected is finite).
inline void expectTensorClose(const at::Tensor& got, const at::Tensor& expected, double tol, const std::string& what = "") {
  ASSERT_EQ(got.sizes(), expected.sizes()) << what << ": shapes differ";
  at::Tensor g = got.detach().to(at::kCPU, at::kDouble).contiguous(), e = expected.detach().to(at::kCPU, at::kDouble).contiguous();
  at::Tensor diff = (g - e).abs().flatten();
  diff = at::where(at::isnan(diff), at::full({}, INFINITY, diff.options()), diff);
  if (diff.numel() == 0) return;
  const int64_t worst = diff.argmax().item<int64_t>();
  const double d = diff[worst].item<double>();
  if (d <= tol) return;
  std::vector<int64_t> index;
  int64_t rest = worst;
  for (int64_t dim = g.dim() - 1; dim >= 0; --dim) index.insert(index.begin(), rest % g.size(dim)), rest /= g.size(dim);
  std::string at = "[";
  for (size_t i = 0; i < index.size(); ++i) at += (i ? ", " : "") + std::to_string(index[i]);
  ADD_FAILURE() << what << (what.empty() ? "" : ": ") << "max |difference| " << d << " > " << tol << " at " << at << "]: got "
                << g.flatten()[worst].item<double>() << ", expected " << e.flatten()[worst].item<double>();
}

}  // namespace headlab::test
