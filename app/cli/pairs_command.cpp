// headlab-cli pairs ioi: a prompt-pair file for patch --pairs (headlab/core/prompt_sets.h), checked
// against the model's tokenizer. To stdout, or to --out atomically (a temporary file renamed).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "headlab/core/errors.h"
#include "headlab/core/prompt_sets.h"
#include "headlab/core/tokenizer.h"

namespace headlab::cli {

int cmdPairs(const Args& a) {
  if (a.positional().empty() || a.positional()[0] != "ioi") throw UsageError("pairs: which set? (ioi)");
  auto o = openAny(a, true);
  const auto pairs = headlab::ioiPairs(*o.loaded.tokenizer, a.integer("n", 24), static_cast<uint64_t>(a.integer("seed", 0)), a.get("variant", "mixed"));
  std::string text;
  for (const auto& p : pairs)
    text += nlohmann::json({{"clean", p.clean}, {"corrupted", p.corrupted}, {"answer", "#" + std::to_string(p.answer)},
                            {"wrong", "#" + std::to_string(p.wrong)}, {"variant", p.variant}})
                .dump() + "\n";
  if (!a.has("out")) return std::cout << text, 0;
  const std::string out = a.get("out"), temp = out + ".partial";
  if (std::filesystem::exists(out) && !a.has("force")) throw headlab::IoError(out + ": exists; pass --force to overwrite");
  {
    std::ofstream f(temp, std::ios::trunc);
    f << text;
    f.flush();
    if (!f) {
      std::remove(temp.c_str());
      throw headlab::IoError(out + ": write failed (disk full?)");
    }
  }
  std::filesystem::rename(temp, out);
  std::cerr << "pairs: " << pairs.size() << " IOI pairs (" << a.get("variant", "mixed") << ", seed " << a.integer("seed", 0) << ") -> " << out << "\n";
  std::cout << out << "\n";
  return 0;
}

}  // namespace headlab::cli
