// Probes on hand-built attention patterns and activations, injected through hooks so the real
// probe code runs end to end; the expected numbers are computed by hand in the comments.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include <c10/core/InferenceMode.h>

#include "headlab/core/errors.h"
#include "headlab/core/tokenizer.h"
#include "headlab/plugins/probe_plugin.h"
#include "../../plugins/common/probe_util.h"
#include "../../plugins/retrieval/retrieval_scoring.h"
#include "random_model.h"
#include "shared_path.h"

namespace headlab {

using plugins::ProbeContext;
using plugins::ProbeRegistry;

class ProbesTest : public ::testing::Test {
 protected:
  ProbesTest() : model(makeModel()), tok(loadTokenizer(test::sharedPath("models/stories260k/tok512.bin"))) {}
  static HookedTransformer makeModel() {
    ModelConfig c = test::smallConfig("llama");
    c.d_vocab = 512;
    return HookedTransformer(c, test::randomWeights(c, 4));
  }
  // Replaces every layer's pattern with `f(layer, pattern)`.
  std::vector<HookHandle> injectPatterns(const std::function<void(int, at::Tensor&)>& f) {
    std::vector<HookHandle> hs;
    for (int l = 0; l < model.config().n_layers; ++l)
      hs.push_back(model.hooks().add(model.hooks().idOf(l, LayerHook::Pattern), [f, l](at::Tensor& p, const HookContext&) { f(l, p); }));
    return hs;
  }
  nlohmann::json run(const std::string& probe, nlohmann::json params) {
    auto p = ProbeRegistry::instance().create(probe);
    ProbeContext ctx{model, tok.get(), std::move(params), {}};
    return p->run(ctx);
  }
  double gridAt(const nlohmann::json& g, int l, int h) { return g["values"][l * g["heads"].get<int>() + h].get<double>(); }

  HookedTransformer model;
  std::unique_ptr<Tokenizer> tok;
};

TEST_F(ProbesTest, RegistryListsTheBuiltInProbes) {
  auto names = ProbeRegistry::instance().names();
  for (const char* n : {"sinks", "hidden-sinks", "massive", "streaming", "induction"})
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  EXPECT_THROW(ProbeRegistry::instance().create("nope"), InputError);
}

// Every probe folder registers itself (plugins/CMakeLists.txt generates the calls): folders in
// alphabetical order, each folder's probes in its own order, every name once. A new folder adds
// its probes without editing this test.
TEST_F(ProbesTest, EveryProbeFolderRegistersItself) {
  const auto names = ProbeRegistry::instance().names();
  const std::vector<std::string> builtIn{"induction", "massive", "retrieval", "sinks", "hidden-sinks", "streaming", "vhd", "var", "look"};
  auto at = names.begin();
  for (const std::string& n : builtIn) {
    at = std::find(at, names.end(), n);
    ASSERT_NE(at, names.end()) << n << " missing or out of folder order";
  }
  for (const std::string& n : names) EXPECT_EQ(std::count(names.begin(), names.end(), n), 1) << n;
}

// The window and the CLI show a probe's own summary and curves, whatever the probe.
TEST_F(ProbesTest, SummariesStateTheResultsOwnNumbers) {
  nlohmann::json sinks = run("sinks", {{"prompts", {"Once upon a time there was a girl"}}, {"short_prompts", "keep"}});
  plugins::ProbeSummary s = ProbeRegistry::instance().create("sinks")->summarize(sinks);
  char expected[64];
  std::snprintf(expected, sizeof expected, "Sink_1 = %.1f%% of heads", sinks["sink_1"].get<double>());
  EXPECT_EQ(s.line.rfind(expected, 0), 0u) << s.line;
  ASSERT_EQ(s.curves.size(), 1u);
  EXPECT_EQ(s.curves[0].y, sinks["sink_k"].get<std::vector<double>>());
  EXPECT_EQ(s.curves[0].x.size(), s.curves[0].y.size());

  nlohmann::json ind = run("induction", {{"seq_len", 6}, {"batch", 2}});
  const auto& best = ind["best"]["induction"];
  const std::string line = ProbeRegistry::instance().create("induction")->summarize(ind).line;
  EXPECT_NE(line.find("best induction head L" + std::to_string(best["layer"].get<int>()) + "H" + std::to_string(best["head"].get<int>())),
            std::string::npos)
      << line;

  // The default names the largest cell of "grid".
  struct GridOnly : plugins::Probe {
    std::string name() const override { return "grid-only"; }
    std::string description() const override { return ""; }
    std::vector<plugins::ProbeParameter> parameters() const override { return {}; }
    nlohmann::json run(ProbeContext&) override { return {}; }
  } probe;
  nlohmann::json r = {{"grid", {{"name", "score"}, {"layers", 2}, {"heads", 3}, {"values", {0.1, 0.2, 0.3, 0.9, 0.5, 0.6}}}}};
  EXPECT_EQ(probe.summarize(r).line, "largest score: L1H0 (0.900)");
}

TEST(ProbeResultTest, HeadGridsFindsEveryGridGridFirst) {
  nlohmann::json r = {{"a_grid", {{"name", "a"}, {"layers", 1}, {"heads", 2}, {"values", {1, 2}}}},
                      {"grid", {{"name", "main"}, {"layers", 1}, {"heads", 2}, {"values", {3, 4}}}},
                      {"layers", {{{"layer", 0}}}},
                      {"map", {{"layer", 0}, {"values", {1}}}}};
  auto grids = plugins::headGrids(r);
  ASSERT_EQ(grids.size(), 2u);
  EXPECT_EQ(grids[0].first, "grid");
  EXPECT_EQ(grids[1].first, "a_grid");
}

TEST_F(ProbesTest, SinksFindBosAndASinkBeyondIt) {
  // T = 8. Row 0: A[0,0] = 1. Row 1: 0.6 on key 0, 0.4 on itself. Row 2: 0.6 on key 0, 0.4 on key 2.
  // Rows i >= 3: 0.6 on key 0, 0.3 on key 2, 0.1 on itself.
  //   alpha_0 = (1 + 0.6 * 7) / 8 = 0.65;  alpha_2 = (0.4 + 0.3 * 5) / 6 = 0.31667;  alpha_1 = 0.4 / 7;
  //   alpha_j = 0.1 / (8 - j) for j >= 3, so alpha_7 = 0.1.
  at::Tensor A = at::zeros({8, 8});
  A[0][0] = 1, A[1][0] = 0.6, A[1][1] = 0.4, A[2][0] = 0.6, A[2][2] = 0.4;
  for (int i = 3; i < 8; ++i) A[i][0] = 0.6, A[i][2] = 0.3, A[i][i] = 0.1;
  auto hs = injectPatterns([A](int, at::Tensor& p) {
    const int64_t T = p.size(2);  // a prompt kept at fewer than 8 tokens gets the corner of A
    p = A.slice(0, 0, T).slice(1, 0, T).expand_as(p).clone();
  });
  nlohmann::json prompts = {"Once upon a time there was a little girl named Lily", "The quick brown fox jumps over the lazy dog"};
  auto r = run("sinks", {{"max_tokens", 8}, {"prompts", prompts}});
  EXPECT_NEAR(gridAt(r["grid"], 2, 3), 0.65, 1e-6);
  ASSERT_EQ(r["sink_k"].size(), 8u);
  EXPECT_DOUBLE_EQ(r["sink_k"][0].get<double>(), 100.0);
  EXPECT_DOUBLE_EQ(r["sink_k"][1].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(r["sink_k"][2].get<double>(), 100.0) << "a sink beyond BOS";
  EXPECT_DOUBLE_EQ(r["sink_k"][7].get<double>(), 0.0);
  EXPECT_EQ(r["sinks_above_eps"].size(), 2u * 3 * 4) << "keys 0 and 2 in every layer and head";
  EXPECT_EQ(r["params"]["eps"], 0.3);

  EXPECT_EQ(r["sink_1_per_prompt"], nlohmann::json({100.0, 100.0}));
  EXPECT_EQ(r["prompts_skipped"], 0);

  // The reference measures sequences of exactly T tokens: a shorter prompt is skipped (and counted),
  // refused, or kept at its own length as asked; with none long enough the probe says so.
  nlohmann::json mixed = {"Once upon a time there was a little girl named Lily", "Hi"};
  auto skipped = run("sinks", {{"max_tokens", 8}, {"prompts", mixed}});
  EXPECT_EQ(skipped["prompts_used"], 1);
  EXPECT_EQ(skipped["prompts_skipped"], 1);
  EXPECT_EQ(skipped["sink_1_per_prompt"].size(), 1u);
  EXPECT_THROW(run("sinks", {{"max_tokens", 8}, {"prompts", mixed}, {"short_prompts", "refuse"}}), InputError);
  EXPECT_EQ(run("sinks", {{"max_tokens", 8}, {"prompts", mixed}, {"short_prompts", "keep"}})["prompts_used"], 2);
  EXPECT_THROW(run("sinks", {{"max_tokens", 8}, {"prompts", {"Hi"}}}), InputError);

  // ACT: s_2 = 0.31667 > 0.1 is the one hidden sink (s_0 is the first sink, dropped; s_7 = 0.1 is not > 0.1).
  auto hidden = run("hidden-sinks", {{"max_tokens", 8}, {"prompts", prompts}});
  EXPECT_DOUBLE_EQ(gridAt(hidden["grid"], 1, 1), 1.0) << "one hidden sink per prompt";
  EXPECT_EQ(hidden["hidden_sinks"][0]["key"], 2);
  EXPECT_NEAR(hidden["hidden_sinks"][0]["score"].get<double>(), 1.9 / 6, 1e-6);
}

TEST_F(ProbesTest, InductionPreviousAndDuplicateHeadsScoreOne) {
  // seq_len n = 5: BOS + R + R, T = 11, second copy at positions 6..10.
  const int n = 5;
  auto hs = injectPatterns([n](int l, at::Tensor& p) {
    p = p.clone();
    const int64_t T = p.size(2);
    auto setRow = [&](int64_t h, int64_t i, int64_t k) {
      p[0][h][i].zero_();
      p[0][h][i][k] = 1.0;
    };
    for (int64_t i = 1; i < T; ++i) {
      if (l == 1) setRow(2, i, i >= 1 + n ? i - n + 1 : 0);  // induction head L1H2
      if (l == 0) setRow(1, i, i - 1);                        // previous-token head L0H1
      if (l == 2) setRow(0, i, i >= 1 + n ? i - n : i);       // duplicate-token head L2H0
    }
  });
  auto r = run("induction", {{"seq_len", n}, {"batch", 2}, {"score", "mean"}});
  EXPECT_DOUBLE_EQ(gridAt(r["grid"], 1, 2), 1.0);
  EXPECT_DOUBLE_EQ(gridAt(r["previous_token"], 0, 1), 1.0);
  EXPECT_DOUBLE_EQ(gridAt(r["duplicate_token"], 2, 0), 1.0);
  EXPECT_EQ(r["best"]["induction"]["layer"], 1);
  EXPECT_EQ(r["best"]["induction"]["head"], 2);
  EXPECT_LT(gridAt(r["grid"], 0, 1), 0.5) << "a previous-token head is not an induction head";
  // TransformerLens's normalisation (the default) divides by every row: the perfect induction and
  // duplicate heads score n / (2n + 1), the previous-token head 2n / (2n + 1).
  auto tl = run("induction", {{"seq_len", n}, {"batch", 2}});
  EXPECT_NEAR(gridAt(tl["grid"], 1, 2), 5.0 / 11, 1e-6);
  EXPECT_NEAR(gridAt(tl["duplicate_token"], 2, 0), 5.0 / 11, 1e-6);
  EXPECT_NEAR(gridAt(tl["previous_token"], 0, 1), 10.0 / 11, 1e-6);
  EXPECT_EQ(tl["best"]["induction"]["layer"], 1);
}

TEST_F(ProbesTest, MassiveActivationsFindTheDimensionAndToken) {
  // Layer 1, position 0, dim 7 carries 5000 (massive); position 3, dim 2 carries 150: above 100
  // but far below 1000 x the median |h| (~0.67 for N(0,1)), so it is not massive.
  auto h = model.hooks().add("blocks.1.hook_resid_post", [](at::Tensor& t, const HookContext&) {
    at::manual_seed(9);
    t = at::randn(t.sizes());
    t[0][0][7] = -5000.0;
    t[0][3][2] = 150.0;
  });
  auto r = run("massive", {{"max_tokens", 16}, {"bos", true}, {"prompts", {"Once upon a time there was a little girl"}}});
  ASSERT_EQ(r["massive_dims"].size(), 1u) << r["massive_activations"].dump();
  EXPECT_EQ(r["massive_dims"][0]["dim"], 7);
  // The residual stream carries it on: layer 2's output has it too (and nothing else passes).
  ASSERT_EQ(r["massive_activations"].size(), 2u) << r["massive_activations"].dump();
  EXPECT_EQ(r["massive_activations"][0]["layer"], 1);
  EXPECT_EQ(r["massive_activations"][1]["layer"], 2);
  EXPECT_EQ(r["massive_activations"][1]["dim"], 7);
  EXPECT_EQ(r["massive_activations"][0]["pos"], 0);
  EXPECT_EQ(r["massive_activations"][0]["token"], "<s>");
  EXPECT_DOUBLE_EQ(r["layers"][1]["top3_abs"][0].get<double>(), 5000.0);
  // Sun et al.'s intervention at layer 1: zeroing the massive activation changes the loss; setting
  // it to its mean over the prompt set (one prompt: the value itself) changes nothing.
  const auto& iv = r["intervention"];
  EXPECT_EQ(iv["layer"], 1);
  EXPECT_DOUBLE_EQ(iv["mean_values"]["first_token"]["7"].get<double>(), -5000.0);
  EXPECT_DOUBLE_EQ(iv["nll_set_to_mean"].get<double>(), iv["nll_original"].get<double>());
  EXPECT_GT(std::abs(iv["nll_zeroed"].get<double>() - iv["nll_original"].get<double>()), 1e-3);
}

// The reference (locuslab/massive-activations) reports each layer's top-3 magnitudes as the mean
// over prompts; the maximum stays available as aggregate = max.
// "Set to mean" uses separate means at the starting token and at later positions, as the reference
// does: the starting token carries -5000 and a later position +3000 on the same dimension, so one
// shared mean (-1000) would change the loss where the separate means change nothing. Without BOS
// (the reference's default) the starting token is the prompt's first word.
TEST_F(ProbesTest, MassiveSetToMeanKeepsTheStartingTokensAndLaterPositionsMeansApart) {
  auto h = model.hooks().add("blocks.1.hook_resid_post", [](at::Tensor& t, const HookContext&) {
    at::manual_seed(9);
    t = at::randn(t.sizes());
    t[0][0][7] = -5000.0;
    t[0][4][7] = 3000.0;
  });
  auto r = run("massive", {{"max_tokens", 16}, {"prompts", {"Once upon a time there was a little girl"}}});
  const auto& iv = r["intervention"];
  EXPECT_DOUBLE_EQ(iv["mean_values"]["first_token"]["7"].get<double>(), -5000.0);
  EXPECT_DOUBLE_EQ(iv["mean_values"]["later_positions"]["7"].get<double>(), 3000.0);
  EXPECT_DOUBLE_EQ(iv["nll_set_to_mean"].get<double>(), iv["nll_original"].get<double>());
  EXPECT_NE(r["massive_activations"][0]["token"], "<s>") << "no BOS by default";
}

TEST_F(ProbesTest, MassiveTopThreeIsTheMeanOverPrompts) {
  int call = 0;
  auto h = model.hooks().add("blocks.0.hook_resid_post", [&call](at::Tensor& t, const HookContext&) {
    t = at::zeros(t.sizes());
    t[0][1][3] = call++ == 0 ? 4000.0 : 2000.0;  // first prompt 4000, second 2000
  });
  const nlohmann::json prompts = {"Once upon a time there was a little girl", "The cat sat on the mat"};
  auto mean = run("massive", {{"max_tokens", 16}, {"prompts", prompts}, {"intervene", false}});
  EXPECT_DOUBLE_EQ(mean["layers"][0]["top3_abs"][0].get<double>(), 3000.0);
  call = 0;
  auto max = run("massive", {{"max_tokens", 16}, {"prompts", prompts}, {"intervene", false}, {"aggregate", "max"}});
  EXPECT_DOUBLE_EQ(max["layers"][0]["top3_abs"][0].get<double>(), 4000.0);
  EXPECT_THROW(run("massive", {{"prompts", prompts}, {"aggregate", "median"}}), InputError);
}

TEST_F(ProbesTest, StreamingFractionCountsSinkAndRecentWindow) {
  // T = 64: sink = 64 / 16 = 4 keys, recent = 64 / 4 = 16 keys. Head L0H0 attends key 0 only:
  // fraction 1. Head L0H1: row i attends key min(i, 5); rows 0..20 fall inside the window,
  // rows 21..63 (key 5, 16+ back, not a sink) outside: fraction 21 / 64.
  auto hs = injectPatterns([](int l, at::Tensor& p) {
    if (l != 0) return;
    p = p.clone();
    p[0][0].zero_();
    p[0][0].select(1, 0).fill_(1.0);
    p[0][1].zero_();
    for (int64_t i = 0; i < p.size(2); ++i) p[0][1][i][std::min<int64_t>(i, 5)] = 1.0;
  });
  std::string text;
  for (int i = 0; i < 20; ++i) text += " the cat sat";
  auto r = run("streaming", {{"max_tokens", 64}, {"prompts", {text}}});
  EXPECT_EQ(r["sink_used"], 4);
  EXPECT_EQ(r["recent_used"], 16);
  EXPECT_DOUBLE_EQ(gridAt(r["grid"], 0, 0), 1.0);
  EXPECT_NEAR(gridAt(r["grid"], 0, 1), 21.0 / 64, 1e-6);
  EXPECT_NEAR(gridAt(r["kv_grid"], 0, 0), (1.0 + 21.0 / 64) / 2, 1e-6) << "kv head 0 = mean of query heads 0 and 1";
  const std::string tsv = r["tsv"];
  EXPECT_EQ(std::count(tsv.begin(), tsv.end(), '\n'), 3) << "one DuoAttention TSV row per layer";

  // The exported TSV imports back: it is the heuristic itself, so correlation and agreement are 1.
  const std::string path = ::testing::TempDir() + "/full_attention_heads.tsv";
  std::ofstream(path) << tsv;
  auto back = run("streaming", {{"max_tokens", 64}, {"prompts", {text}}, {"import_tsv", path}});
  EXPECT_NEAR(back["imported"]["pearson_with_heuristic"].get<double>(), 1.0, 1e-5);
  EXPECT_DOUBLE_EQ(back["imported"]["agreement_at_0_5"].get<double>(), 1.0);
  EXPECT_NEAR(gridAt(back["imported"]["grid"], 0, 0), 1.0 - (1.0 + 21.0 / 64) / 2, 1e-5);
  // A TSV for another model says which line and what it expected.
  std::ofstream(path) << "1\t0\n1\t0\t1\n";
  try {
    run("streaming", {{"max_tokens", 64}, {"prompts", {text}}, {"import_tsv", path}});
    FAIL() << "a 3-column row was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("full_attention_heads.tsv:2: 3 values, the model has 2 kv heads per layer"),
              std::string::npos) << e.what();
  }
  // A released pattern: raw gates (clipped to [0, 1] on import, as load_attn_pattern does) and the
  // config.json beside it, whose sink and recent sizes apply unless the parameters set them.
  const std::string dir = ::testing::TempDir() + "/duo_pattern";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/full_attention_heads.tsv") << "1.2\t-0.1\n0.5\t0.25\n1\t0\n";
  std::ofstream(dir + "/config.json") << R"({"sink_size": 3, "recent_size": 5, "lr": 0.02})";
  auto released = run("streaming", {{"max_tokens", 64}, {"prompts", {text}}, {"import_tsv", dir + "/full_attention_heads.tsv"}});
  EXPECT_EQ(released["sink_used"], 3);
  EXPECT_EQ(released["recent_used"], 5);
  EXPECT_DOUBLE_EQ(gridAt(released["imported"]["grid"], 0, 0), 1.0);
  EXPECT_DOUBLE_EQ(gridAt(released["imported"]["grid"], 0, 1), 0.0);
  auto overridden = run("streaming", {{"max_tokens", 64}, {"prompts", {text}}, {"import_tsv", dir + "/full_attention_heads.tsv"}, {"sink", 2}});
  EXPECT_EQ(overridden["sink_used"], 2);
  EXPECT_EQ(overridden["recent_used"], 5);
}

TEST_F(ProbesTest, DuoAttentionGatesKeepFullAttentionOnlyWhereTheHeadReachesFarBack) {
  // Scores injected into every layer (64 tokens; sink 4, recent 16): query heads 0 and 1 (kv head 0)
  // attend 32 keys back, outside the window from row 36 on; heads 2 and 3 (kv head 1) attend to the
  // previous token, inside it. Streaming attention reproduces kv head 1 exactly, so only the L1 term
  // acts on its gate (-> 0); kv head 0's gate is held up by the hidden-state error.
  auto hs = [&] {
    std::vector<HookHandle> v;
    for (int l = 0; l < model.config().n_layers; ++l)
      v.push_back(model.hooks().add(model.hooks().idOf(l, LayerHook::AttnScores), [](at::Tensor& s, const HookContext&) {
        const int64_t T = s.size(2);
        at::Tensor bump = at::zeros({T, T});
        for (int64_t i = 0; i < T; ++i) bump[i][std::max<int64_t>(0, i - 32)] = 30.0;
        at::Tensor prev = at::zeros({T, T});
        for (int64_t i = 0; i < T; ++i) prev[i][std::max<int64_t>(0, i - 1)] = 30.0;
        s = s.clone();
        for (int h = 0; h < 4; ++h) s.select(1, h).add_(h < 2 ? bump : prev);
      }));
    return v;
  }();
  std::string text;
  for (int i = 0; i < 20; ++i) text += " the cat sat";
  auto r = run("streaming", {{"max_tokens", 64}, {"prompts", {text}}, {"optimize_gates", true}, {"gate_steps", 150}, {"gate_l1", 0.01}});
  const auto& g = r["gates"];
  for (int l = 0; l < 3; ++l) {
    EXPECT_GT(gridAt(g["grid"], l, 0), 0.5) << "layer " << l << ": the far-reaching kv head keeps full attention";
    EXPECT_LT(gridAt(g["grid"], l, 1), 0.5) << "layer " << l << ": the local kv head becomes streaming";
  }
  EXPECT_EQ(g["full_attention_kv_heads"], 3);
  EXPECT_EQ(g["tsv_binary"], "1\t0\n1\t0\n1\t0\n");
  EXPECT_NE(g["tsv"], g["tsv_binary"]) << "tsv holds the raw gates";
}

TEST_F(ProbesTest, UnknownParameterIsAClearError) {
  try {
    run("sinks", {{"epsilon", 0.2}});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("probe sinks has no parameter 'epsilon'"), std::string::npos);
  }
}

TEST_F(ProbesTest, CancelStopsAProbe) {
  auto p = ProbeRegistry::instance().create("sinks");
  ProbeContext ctx{model, tok.get(), {}, [](double f, const std::string&) { return f < 0.2; }};
  EXPECT_THROW(p->run(ctx), CancelledError);
}

}  // namespace headlab

namespace headlab::plugins {

TEST(RetrievalScoringTest, Rouge1RecallGatesTheAnswer) {
  EXPECT_DOUBLE_EQ(rouge1Recall("4 7 2", "4 7 2"), 1.0);
  EXPECT_DOUBLE_EQ(rouge1Recall("Purple basil, of course.", "purple basil"), 1.0) << "case and punctuation ignored";
  EXPECT_NEAR(rouge1Recall("4 9 2", "4 7 2"), 2.0 / 3, 1e-12);
  EXPECT_NEAR(rouge1Recall("4 4 4", "4 7 2"), 1.0 / 3, 1e-12) << "multiset: one 4 in the reference counts once";
  EXPECT_FALSE(rouge1Recall("9 9 9", "4 7 2") > 0.5) << "an answer that fails the gate";
  EXPECT_DOUBLE_EQ(rouge1Recall("anything", ""), 0.0);
}

TEST(RetrievalScoringTest, CopyEventsCountOnlyMatchingKeysInsideTheNeedle) {
  // prompt positions:   0  1  2  3  4  5  6
  std::vector<int64_t> prompt{1, 9, 4, 7, 2, 9, 4};  // needle = [2, 5): tokens 4 7 2
  // top-1 keys per [layer, head]: L0H0 -> 2 (token 4, inside), L0H1 -> 6 (token 4, outside),
  // L1H0 -> 3 (token 7, inside but not the generated token), L1H1 -> 2 (inside, matches).
  at::Tensor top1 = at::tensor(std::vector<int64_t>{2, 6, 3, 2}).view({2, 2});
  at::Tensor ev = copyEvents(top1, /*generated=*/4, prompt, 2, 5);
  EXPECT_EQ(ev[0][0].item<double>(), 1.0) << "copy from inside the needle";
  EXPECT_EQ(ev[0][1].item<double>(), 0.0) << "the same token outside the needle does not count";
  EXPECT_EQ(ev[1][0].item<double>(), 0.0) << "attending inside the needle without copying does not count";
  EXPECT_EQ(ev[1][1].item<double>(), 1.0);
  // One copy of a 3-token needle is worth 1/3 for that test.
  EXPECT_NEAR((ev * (1.0 / 3)).sum().item<double>(), 2.0 / 3, 1e-12);
}

// The copy span is the answer (the reference's real_needle) found in the prompt ids, not the needle
// sentence: with text before the context and the answer also in the haystack, the span is the
// answer's tokens inside the needle.
TEST_F(ProbesTest, RetrievalAnswerSpanIsTheAnswerInsideTheNeedle) {
  const std::string lead = "Read the book. ", hay = "Tom grew purple basil in his garden. ", needle = "The secret ingredient is purple basil.";
  const std::vector<int64_t> prompt = tok->encode(lead + hay + needle + " What is it?", true);
  const int64_t needleBegin = static_cast<int64_t>(tok->encode(lead + hay, true).size()) - 1;
  const auto [b, e] = answerSpan(*tok, prompt, "purple basil", needleBegin, static_cast<int64_t>(prompt.size()));
  const std::vector<int64_t> span(prompt.begin() + b, prompt.begin() + e);
  EXPECT_EQ(tok->decode(span).find("purple basil") != std::string::npos, true) << tok->decode(span);
  EXPECT_LE(e - b, static_cast<int64_t>(tok->encode(" purple basil", false).size())) << "the answer's tokens, not the sentence's";
  EXPECT_GE(b, needleBegin) << "the occurrence inside the needle, not the haystack's";
  EXPECT_THROW(answerSpan(*tok, prompt, "green mint", 0, 0), InputError);
}

// An ideal copying head scores 1 (the reference's 1 / |answer| per copied token): the model is made
// to emit the answer's tokens (the final norm's output set to their unembedding rows) while head L1H2
// looks, at each step, at the prompt position holding the token it emits. Decoding starts from the
// last prompt token, so all three answer tokens are scored.
TEST_F(ProbesTest, RetrievalIdealCopyingHeadScoresOne) {
  std::vector<int64_t> prompt = tok->encode("Once upon a time there was a cat. The code is", true);
  const std::vector<int64_t> answer{300, 301, 302};
  const int64_t b = 5;
  std::copy(answer.begin(), answer.end(), prompt.begin() + b);
  int64_t step = 0;  // the decode step: one-row forwards seen by the final norm so far
  auto pattern = model.hooks().add("blocks.1.attn.hook_pattern", [&](at::Tensor& p, const HookContext&) {
    if (p.size(2) != 1 || step >= 3) return;
    p.select(1, 2).zero_();
    p.select(1, 2)[0][0][b + step] = 1.0f;
  });
  const at::Tensor U = model.weights().unembed;
  auto force = model.hooks().add("ln_final.hook_normalized", [&](at::Tensor& x, const HookContext&) {
    if (x.size(1) != 1) return;
    if (step < 3) x.copy_((U[answer[step]] * 50.0f).view({1, 1, -1}));
    ++step;
  });
  NiahDecoding d = decodeNiah(model, *tok, prompt, b, b + 3, {}, 3);
  ASSERT_EQ(d.tokens, answer) << "the forcing hook must make the model emit the answer";
  EXPECT_DOUBLE_EQ(d.score[1][2].item<double>(), 1.0);
}

// Under masking every generated token is produced with the masks on: the prompt less its last token
// is prefilled unmasked, and the last prompt token runs masked (the reference's split).
TEST_F(ProbesTest, RetrievalMaskedDecodingMasksTheFirstAnswerToken) {
  c10::InferenceMode guard;
  const std::vector<int64_t> prompt = tok->encode("Once upon a time there was a little girl named Lily. She", true);
  std::vector<Intervention> masks;
  for (int l = 0; l < model.config().n_layers; ++l) masks.push_back({InterventionKind::Zero, l, {0, 1, 2, 3}});
  NiahDecoding masked = decodeNiah(model, *tok, prompt, 1, 2, masks, 1);
  auto firstToken = [&](bool maskLast) {
    KvCache cache;
    model.forward(at::tensor(std::vector<int64_t>(prompt.begin(), prompt.end() - 1), at::kLong).unsqueeze(0), &cache);
    std::vector<HookHandle> hs;
    if (maskLast) hs = install(model, masks);
    return model.forward(at::tensor(std::vector<int64_t>{prompt.back()}, at::kLong).unsqueeze(0), &cache)[0][-1].argmax().item<int64_t>();
  };
  const int64_t unmasked = firstToken(false);
  ASSERT_NE(firstToken(true), unmasked) << "the masks must change this prediction for the test to mean anything";
  EXPECT_EQ(masked.tokens.at(0), firstToken(true));
}

// The reference's head_score JSON: {"layer-head": [per-test scores]} is written, and a second run
// appends its lists to the file's (this run's first, as the reference's head_counter += file).
TEST_F(ProbesTest, RetrievalReadsAndWritesTheReferencesHeadScoreFile) {
  const std::string file = ::testing::TempDir() + "head_score_" + std::to_string(::getpid()) + ".json";
  std::remove(file.c_str());
  const nlohmann::json params = {{"lengths", {60}}, {"depths", {0, 100}}, {"max_new_tokens", 2}, {"rouge_threshold", -1.0},
                                 {"head_score_file", file}, {"template", "{context}Q: {question}\nA:"},
                                 {"needles", {{{"needle", " The code is red."}, {"question", "The code?"}, {"answer", "red"}}}}};
  const auto first = run("retrieval", params);
  std::ifstream in(file);
  const nlohmann::json written = nlohmann::json::parse(in);
  EXPECT_EQ(written, first["head_score"]);
  EXPECT_EQ(written.size(), static_cast<size_t>(model.config().n_layers * model.config().n_heads));
  EXPECT_EQ(written["1-2"].size(), 2u) << "one score per counted test";
  const auto second = run("retrieval", params);
  std::ifstream again(file);
  const nlohmann::json merged = nlohmann::json::parse(again);
  EXPECT_EQ(merged["1-2"].size(), 4u);
  EXPECT_EQ(merged["1-2"][2], written["1-2"][0]) << "the file's lists follow this run's";
  std::remove(file.c_str());
  std::ofstream(file) << R"({"9-0": [1.0]})";
  EXPECT_THROW(run("retrieval", params), InputError) << "a head the model does not have";
  std::remove(file.c_str());
}

TEST_F(ProbesTest, RetrievalRefusesANegativeMaskTopKAndPointsToAdaptive) {
  try {
    run("retrieval", {{"lengths", {60}}, {"depths", {0}}, {"mask_top_k", -1}});
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("adaptive"), std::string::npos) << e.what();
  }
}

}  // namespace headlab::plugins
