#pragma once
#include <string>

namespace headlab::cli {
// headlab-cli demo [--out DIR]. Throws headlab errors; returns the exit code.
int runDemo(const std::string& outDir);
}  // namespace headlab::cli
