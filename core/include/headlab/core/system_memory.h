// What the machine has: memory a budget can be set against (loads, the window's runner).
#pragma once
#include <cstdint>

namespace headlab {

// MemAvailable of /proc/meminfo in bytes (0 when unknown).
uint64_t availableMemory();

}  // namespace headlab
