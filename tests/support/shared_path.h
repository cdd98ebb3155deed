// Where tests find ../shared (models, tokenizers, golden data): $HEADLAB_SHARED, else the
// "shared" folder beside the source tree (CI clones the repository next to it).
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>

namespace headlab::test {

inline std::filesystem::path sharedDir() {
  if (const char* env = std::getenv("HEADLAB_SHARED"); env && *env) return env;
  std::filesystem::path src(HEADLAB_SOURCE_DIR);
  for (auto p = src; !p.empty() && p != p.root_path(); p = p.parent_path())
    if (std::filesystem::is_directory(p.parent_path() / "shared" / "models")) return p.parent_path() / "shared";
  return src.parent_path() / "shared";
}

inline std::string sharedPath(const std::string& rel) { return (sharedDir() / rel).string(); }

}  // namespace headlab::test
