// Every broken file of the corpus (tests/corpus/make_broken_corpus.py) gives its expected one-line
// error from the right loader; none crashes, none is accepted, and none allocates more than the
// size of its files plus a small constant (the heap is measured by allocation_meter.cpp).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "allocation_meter.h"

#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/errors.h"
#include "headlab/core/model_loader.h"
#include "headlab/core/tokenizer.h"

namespace headlab {

namespace {
int64_t bytesOnDisk(const std::string& path) {
  namespace fs = std::filesystem;
  int64_t total = 0;
  for (size_t start = 0; start <= path.size();) {  // "a|b" names two files
    size_t bar = path.find('|', start);
    if (bar == std::string::npos) bar = path.size();
    const fs::path p = path.substr(start, bar - start);
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      for (const auto& e : fs::recursive_directory_iterator(p, ec))
        if (e.is_regular_file(ec)) total += static_cast<int64_t>(e.file_size(ec));
    } else if (fs::is_regular_file(p, ec)) {
      total += static_cast<int64_t>(fs::file_size(p, ec));
    }
    start = bar + 1;
  }
  return total;
}
// What a loader may use beyond the file itself: parsed vocabularies, JSON trees, error strings.
constexpr int64_t kAllowanceBytes = 4 << 20;
}  // namespace

TEST(BrokenCorpusTest, EveryCaseGivesItsExpectedOneLineError) {
  const char* dir = std::getenv("HEADLAB_CORPUS_DIR");
  ASSERT_NE(dir, nullptr) << "run through ctest (the MakeBrokenCorpus fixture writes the corpus)";
  const auto cases = readJsonFile(std::string(dir) + "/cases.json");
  ASSERT_GE(cases.size(), 30u);
  ASSERT_TRUE(test::allocationMeterActive());
  // The first load initialises libtorch's and the loaders' static tables: not a per-file cost.
  try {
    loadModel(cases[0]["path"].get<std::string>());
  } catch (const std::exception&) {
  }
  int checked = 0;
  double worstExtraMb = 0;
  std::string worst;
  for (const auto& c : cases) {
    const std::string kind = c["kind"], path = c["path"], expect = c["expect"], name = c["name"];
    std::string message = "no error";
    const int64_t before = test::heapBytesNow();
    test::resetHeapPeak();
    try {
      if (kind == "model") {
        loadModel(path);
      } else if (kind == "tokenizer") {
        loadTokenizer(path);
      } else {
        auto bar = path.find('|');
        loadGpt2Vocab(path.substr(0, bar), path.substr(bar + 1));
      }
    } catch (const Error& e) {
      message = e.what();
    } catch (const std::exception& e) {
      message = std::string("not a HeadLab error: ") + e.what();
    }
    const int64_t grew = test::heapPeakBytes() - before, size = bytesOnDisk(path);
    EXPECT_LE(grew, size + kAllowanceBytes) << name << ": the load allocated " << grew << " bytes for " << size << " bytes of files";
    if ((grew - size) / 1048576.0 > worstExtraMb) worstExtraMb = (grew - size) / 1048576.0, worst = name;
    EXPECT_NE(message.find(expect), std::string::npos) << name << ": expected '" << expect << "', got '" << message << "'";
    EXPECT_EQ(message.find('\n'), std::string::npos) << name << ": one line";
    ++checked;
  }
  std::printf("broken corpus: %d cases checked; most heap beyond the file size: %.2f MB (%s)\n", checked, worstExtraMb,
              worst.c_str());
}

}  // namespace headlab
