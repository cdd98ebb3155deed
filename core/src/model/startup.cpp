#include "headlab/core/startup.h"

#include "headlab_version.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

namespace headlab {

int configureThreads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
  return threads;
}

BlasCheck checkBlas(double minGflops) {
  constexpr int64_t n = 384;
  at::Tensor a = at::ones({n, n}, at::kFloat);
  at::Tensor b = at::ones({n, n}, at::kFloat);
  at::matmul(a, b);  // warm-up: thread pool and BLAS initialisation
  auto measure = [&] {
    double best = 1e9;
    for (int rep = 0; rep < 5; ++rep) {
      auto t0 = std::chrono::steady_clock::now();
      at::Tensor c = at::matmul(a, b);
      (void)c.data_ptr<float>();
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return 2.0 * n * n * n / std::max(best, 1e-9) / 1e9;
  };
  BlasCheck r;
  r.gflops = measure();
  // A machine busy for a moment (another build, a test) reads slow once: measure again, a little
  // later, before warning about the BLAS (reference BLAS is ~20x slower every time).
  for (int round = 1; round < 4 && r.gflops < minGflops; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    r.gflops = std::max(r.gflops, measure());
  }
  r.ok = r.gflops >= minGflops;
  char buf[256];
  if (r.ok) {
    std::snprintf(buf, sizeof buf, "BLAS %.0f GFLOP/s", r.gflops);
  } else {
    std::snprintf(buf, sizeof buf,
                  "warning: matrix products run at %.1f GFLOP/s (below %.0f); install an optimised "
                  "BLAS: apt-get install libopenblas0-openmp",
                  r.gflops, minGflops);
  }
  r.message = buf;
  return r;
}

std::string runtimeSummary(int threads, const BlasCheck& blas) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "threads %d, BLAS %.0f GFLOP/s%s", threads, blas.gflops,
                blas.ok ? "" : " (slow)");
  return buf;
}

const char* appVersion() { return HEADLAB_VERSION_STRING; }

}  // namespace headlab
