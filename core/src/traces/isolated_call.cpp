#include "isolated_call.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>

namespace headlab {

namespace {
bool writeAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n, size -= static_cast<size_t>(n);
  }
  return true;
}
}  // namespace

IsolatedResult runIsolated(const std::function<std::string()>& job, int timeoutSeconds) {
  IsolatedResult r;
  int fds[2];
  if (::pipe(fds) != 0) {
    r.failure = std::string("cannot create a pipe: ") + std::strerror(errno);
    return r;
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]), ::close(fds[1]);
    r.failure = std::string("cannot fork: ") + std::strerror(errno);
    return r;
  }
  if (pid == 0) {
    // Child: one status byte ('1' success, '0' an exception's text follows), then the payload.
    // Fatal signals get their default action: the child dies quietly and the parent reports the
    // signal (no crash handler of the parent's, a sanitizer's or a fuzzer's, runs in the child).
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) ::signal(sig, SIG_DFL);
    ::close(fds[0]);
    std::string out;
    char status = '1';
    try {
      out = job();
    } catch (const std::exception& e) {
      status = '0', out = e.what();
    } catch (...) {
      status = '0', out = "unknown exception";
    }
    const bool written = writeAll(fds[1], &status, 1) && writeAll(fds[1], out.data(), out.size());
    ::_exit(written ? 0 : 3);  // no atexit handlers, no destructors of the parent's objects
  }
  ::close(fds[1]);
  std::string data;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeoutSeconds);
  bool timedOut = false;
  char buffer[65536];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) {
      timedOut = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) continue;  // the deadline check above ends the wait
    const ssize_t n = ::read(fds[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the child closed its end (finished or died)
    data.append(buffer, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  if (timedOut) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timedOut) {
    r.failure = "timed out after " + std::to_string(timeoutSeconds) + " s";
  } else if (WIFSIGNALED(status)) {
    r.failure = "killed by signal " + std::to_string(WTERMSIG(status));
  } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || data.empty()) {
    r.failure = "exited with status " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  } else if (data[0] == '0') {
    r.threw = true;
    r.failure = data.substr(1);
  } else {
    r.ok = true;
    r.output = data.substr(1);
  }
  return r;
}

}  // namespace headlab
