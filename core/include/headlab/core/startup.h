// Start-up checks shared by the GUI and the CLI: thread count and BLAS speed.
#pragma once
#include <string>

namespace headlab {

struct BlasCheck {
  double gflops = 0.0;   // measured on a short float32 matrix product
  bool ok = true;        // gflops >= threshold
  std::string message;   // one line; names the package to install when !ok
};

// Sets torch's intra-op thread count to `threads` (0 = number of cores). Returns the count set.
int configureThreads(int threads = 0);

// Times a 384×384 float32 matmul. Below `minGflops` the result carries a warning naming
// libopenblas0-openmp (Debian's libtorch falls back to reference BLAS without it).
BlasCheck checkBlas(double minGflops = 20.0);

// One line for status bars and --version: "threads 2, BLAS 96 GFLOP/s".
std::string runtimeSummary(int threads, const BlasCheck& blas);

const char* appVersion();

}  // namespace headlab
