// Runs a function in a forked child process and returns the string it produces, so that a crash
// or a hang inside a library we cannot fix (libhdf5 1.10 on a corrupt file) costs an error
// message instead of the process. POSIX only (fork, pipe, poll, waitpid).
#pragma once
#include <functional>
#include <string>

namespace headlab {

struct IsolatedResult {
  bool ok = false;     // the child returned normally and its whole output arrived
  bool threw = false;  // `job` threw: failure holds the exception's message (a clean error, not a crash)
  std::string output;  // what `job` returned (when ok)
  std::string failure; // otherwise: "killed by signal 11", "exited with status 1", "timed out after 30 s"
};

// `job` runs in the child only; it must not rely on other threads (the child has just one) and
// should touch nothing but its own inputs. Exceptions from `job` become failure text.
IsolatedResult runIsolated(const std::function<std::string()>& job, int timeoutSeconds = 30);

}  // namespace headlab
