// What the two demo recipes share: AdamW over a fixed parameter list, the learning-rate schedule,
// the cache folder, and writing a folder atomically.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <vector>

namespace headlab::training {

// AdamW with decoupled weight decay on tensors of rank >= 2 (biases and norms are not decayed).
class AdamW {
 public:
  AdamW(std::vector<at::Tensor*> params, double beta1, double beta2, double weightDecay, double eps);
  void zeroGrad();
  void step(int step, double lr);  // step counts from 1 (bias correction)

 private:
  std::vector<at::Tensor*> m_params;
  std::vector<at::Tensor> m_m1, m_m2;
  double m_beta1, m_beta2, m_wd, m_eps;
};

// Linear warm-up over `warmup` steps, then cosine decay from lr to lr / 10.
double warmupCosine(double lr, int step, int steps, int warmup);

// $XDG_CACHE_HOME/headlab/<name>, or ~/.cache/headlab/<name>.
std::string cacheDir(const std::string& name);

// Runs write(temporary) on a temporary sibling of `folder`, then renames it into place (replacing
// an old folder). On any exception, including cancellation, the temporary is removed and `folder`
// is untouched.
void writeFolderAtomically(const std::string& folder, const std::function<void(const std::string& temporary)>& write);

// The cached model folder `dir`, trained first (train(dir)) unless it holds a training.json whose
// "recipe" is `recipe` and load(dir) succeeds. A corrupt cache (a truncated file, a disk that
// filled) or one from an older recipe is trained again.
std::string ensureCached(const std::string& dir, const std::string& recipe, const std::function<void(const std::string&)>& load,
                         const std::function<void(const std::string&)>& train);

}  // namespace headlab::training
