// Every broken file of the corpus (tests/corpus/make_broken_corpus.py) gives its expected one-line
// error from the right loader; none crashes and none is accepted.
#include <gtest/gtest.h>

#include <cstdlib>

#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/errors.h"
#include "headlab/core/model_loader.h"
#include "headlab/core/tokenizer.h"

namespace headlab {

TEST(BrokenCorpusTest, EveryCaseGivesItsExpectedOneLineError) {
  const char* dir = std::getenv("HEADLAB_CORPUS_DIR");
  ASSERT_NE(dir, nullptr) << "run through ctest (the MakeBrokenCorpus fixture writes the corpus)";
  const auto cases = readJsonFile(std::string(dir) + "/cases.json");
  ASSERT_GE(cases.size(), 30u);
  int checked = 0;
  for (const auto& c : cases) {
    const std::string kind = c["kind"], path = c["path"], expect = c["expect"], name = c["name"];
    std::string message = "no error";
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
    EXPECT_NE(message.find(expect), std::string::npos) << name << ": expected '" << expect << "', got '" << message << "'";
    EXPECT_EQ(message.find('\n'), std::string::npos) << name << ": one line";
    ++checked;
  }
  std::printf("broken corpus: %d cases checked\n", checked);
}

}  // namespace headlab
