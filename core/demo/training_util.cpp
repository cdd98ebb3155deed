#include "training_util.h"

#include <c10/core/GradMode.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/errors.h"

namespace headlab::training {

namespace fs = std::filesystem;

AdamW::AdamW(std::vector<at::Tensor*> params, double beta1, double beta2, double weightDecay, double eps)
    : m_params(std::move(params)), m_beta1(beta1), m_beta2(beta2), m_wd(weightDecay), m_eps(eps) {
  for (auto* p : m_params) m_m1.push_back(at::zeros_like(*p)), m_m2.push_back(at::zeros_like(*p));
}

void AdamW::zeroGrad() {
  for (auto* p : m_params)
    if (p->grad().defined()) p->mutable_grad().zero_();
}

void AdamW::step(int step, double lr) {
  c10::AutoGradMode noGrad(false);
  const double bc1 = 1 - std::pow(m_beta1, step), bc2 = 1 - std::pow(m_beta2, step);
  for (size_t i = 0; i < m_params.size(); ++i) {
    at::Tensor& p = *m_params[i];
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    m_m1[i].mul_(m_beta1).add_(g, 1 - m_beta1);
    m_m2[i].mul_(m_beta2).addcmul_(g, g, 1 - m_beta2);
    if (p.dim() >= 2) p.mul_(1 - lr * m_wd);
    p.addcdiv_(m_m1[i] / bc1, (m_m2[i] / bc2).sqrt_().add_(m_eps), -lr);
  }
}

double warmupCosine(double lr, int step, int steps, int warmup) {
  const double warm = std::min(1.0, step / static_cast<double>(warmup));
  return lr * warm * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * step / steps)));
}

std::string cacheDir(const std::string& name) {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  fs::path base = xdg && *xdg ? fs::path(xdg) : fs::path(home ? home : "/tmp") / ".cache";
  return (base / "headlab" / name).string();
}

void writeFolderAtomically(const std::string& folder, const std::function<void(const std::string& temporary)>& write) {
  const fs::path target(folder);
  const fs::path temp = target.parent_path() / ("." + target.filename().string() + ".training-" + std::to_string(::getpid()));
  fs::remove_all(temp);
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{temp};
  write(temp.string());
  fs::remove_all(target);
  fs::create_directories(target.parent_path());
  fs::rename(temp, target);
}

std::string ensureCached(const std::string& dir, const std::string& recipe, const std::function<void(const std::string&)>& load,
                         const std::function<void(const std::string&)>& train) {
  if (fs::exists(fs::path(dir) / "config.json")) {
    try {
      const auto training = readJsonFile((fs::path(dir) / "training.json").string());
      load(dir);
      if (training.is_object() && training.contains("recipe") && training["recipe"] == recipe) return dir;
      // A model from an older recipe: train the current one.
    } catch (const Error&) {
      // A corrupt cache (a truncated file, a disk that filled): train again.
    }
  }
  fs::create_directories(fs::path(dir).parent_path());
  train(dir);
  return dir;
}

}  // namespace headlab::training
