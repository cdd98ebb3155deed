#include "headlab/core/system_memory.h"

#include <fstream>
#include <string>

namespace headlab {

uint64_t availableMemory() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  uint64_t kb = 0;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return 0;
}

}  // namespace headlab
