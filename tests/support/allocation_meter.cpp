#include "allocation_meter.h"

#include <malloc.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>

extern "C" {
void* __libc_malloc(size_t);
void __libc_free(void*);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
}

namespace {
std::atomic<int64_t> g_now{0}, g_peak{0}, g_calls{0};

void added(void* p) {
  if (!p) return;
  g_calls.fetch_add(1, std::memory_order_relaxed);
  const int64_t now = g_now.fetch_add(static_cast<int64_t>(malloc_usable_size(p)), std::memory_order_relaxed) +
                      static_cast<int64_t>(malloc_usable_size(p));
  int64_t peak = g_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}
void removed(void* p) {
  if (p) g_now.fetch_sub(static_cast<int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
}
}  // namespace

extern "C" {
void* malloc(size_t n) {
  void* p = __libc_malloc(n);
  added(p);
  return p;
}
void free(void* p) {
  removed(p);
  __libc_free(p);
}
void* calloc(size_t n, size_t size) {
  void* p = __libc_calloc(n, size);
  added(p);
  return p;
}
void* realloc(void* old, size_t n) {
  removed(old);
  void* p = __libc_realloc(old, n);
  if (p) added(p);
  else if (old && n) added(old);  // failed: the old block is still there
  return p;
}
void* memalign(size_t alignment, size_t n) {
  void* p = __libc_memalign(alignment, n);
  added(p);
  return p;
}
void* aligned_alloc(size_t alignment, size_t n) { return memalign(alignment, n); }
int posix_memalign(void** out, size_t alignment, size_t n) {
  void* p = memalign(alignment, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
}

namespace headlab::test {
int64_t heapBytesNow() { return g_now.load(); }
int64_t heapPeakBytes() { return g_peak.load(); }
void resetHeapPeak() { g_peak.store(g_now.load()); }
bool allocationMeterActive() {
  const int64_t before = g_calls.load();
  void* volatile p = std::malloc(1);
  std::free(p);
  return g_calls.load() > before;
}
}  // namespace headlab::test
