// Measures heap use of the whole process (every thread, every library) by replacing glibc's malloc
// family in the test executable that links allocation_meter.cpp; the replacements forward to glibc's
// own allocator. Used to show that a loader never allocates more than the file size plus a constant.
#pragma once
#include <cstdint>

namespace headlab::test {
int64_t heapBytesNow();          // bytes currently allocated through malloc & co
int64_t heapPeakBytes();         // highest heapBytesNow() since the last resetHeapPeak()
void resetHeapPeak();            // peak := now
bool allocationMeterActive();    // false if the replacement is not the malloc in use
}  // namespace headlab::test
