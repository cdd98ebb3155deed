// headlab-cli lens and dla: what each layer predicts (logit lens), and which heads and MLPs write the
// followed token's logit (direct logit attribution).

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>

#include "cli_common.h"
#include "headlab/core/errors.h"
#include "headlab/core/logit_lens.h"
#include "headlab/core/tokenizer.h"

namespace headlab::cli {

namespace {
std::string tokenText(const Tokenizer* tok, int64_t id) { return tok ? tok->tokenString(id) : "#" + std::to_string(id); }

std::string fixed(double v, int digits) {
  if (std::abs(v) < 0.5 * std::pow(10.0, -digits)) v = 0;  // no "-0.0000"
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}
}  // namespace

int cmdLens(const Args& a) {
  auto o = openAny(a, !a.has("ids") && !a.has("ids-file"));
  const Tokenizer* tok = o.loaded.tokenizer.get();
  HookedTransformer& model = o.model();
  const auto edits = installEdits(a, model);
  const auto ids = promptIds(a, tok);
  const int64_t T = static_cast<int64_t>(ids.size());
  LensOptions opt;
  opt.topK = a.integer("top", 3);
  if (a.has("pos")) {
    const std::string pos = a.get("pos");
    if (pos == "all") {
      opt.positions.clear();
    } else {
      const int64_t p = std::stoll(pos);
      opt.positions = {p < 0 ? p + T : p};
    }
  } else {
    opt.positions = {T - 1};
  }
  if (a.has("token")) opt.follow = answerToken(a, tok, "token");
  const LogitLens lens = logitLens(model, ids, opt);
  const int64_t L = lens.topIds.size(0), k = lens.topIds.size(2);
  nlohmann::json layers = nlohmann::json::array();
  for (int64_t l = 0; l < L; ++l) {
    nlohmann::json rows = nlohmann::json::array();
    for (size_t i = 0; i < lens.positions.size(); ++i) {
      nlohmann::json top = nlohmann::json::array();
      for (int64_t j = 0; j < k; ++j) {
        const int64_t id = lens.topIds[l][i][j].item<int64_t>();
        top.push_back({{"id", id}, {"token", tokenText(tok, id)}, {"prob", lens.topProbs[l][i][j].item<double>()}});
      }
      nlohmann::json row = {{"pos", lens.positions[i]}, {"top", top}};
      if (opt.follow >= 0) row["follow"] = {{"id", opt.follow}, {"prob", lens.followProb[l][i].item<double>()}, {"rank", lens.followRank[l][i].item<int64_t>()}};
      rows.push_back(row);
    }
    layers.push_back({{"layer", l}, {"positions", rows}});
  }
  if (a.has("json")) {
    std::cout << nlohmann::json{{"model", o.loaded.source}, {"tokens", ids}, {"edits", edits.described}, {"layers", layers}}.dump(2) << "\n";
    return 0;
  }
  for (size_t i = 0; i < lens.positions.size(); ++i) {
    const int64_t p = lens.positions[i];
    std::cout << "position " << p << " (" << tokenText(tok, ids[static_cast<size_t>(p)]) << "): the final norm and unembedding applied to each layer's resid_post\n";
    for (int64_t l = 0; l < L; ++l) {
      std::cout << "  L" << l << ":";
      for (const auto& t : layers[l]["positions"][i]["top"]) std::cout << "  " << t["token"].get<std::string>() << " " << fixed(t["prob"], 3);
      if (opt.follow >= 0) {
        const auto& f = layers[l]["positions"][i]["follow"];
        std::cout << "   | " << tokenText(tok, opt.follow) << ": rank " << f["rank"].get<int64_t>() + 1 << ", p " << fixed(f["prob"], 4);
      }
      std::cout << "\n";
    }
  }
  return 0;
}

int cmdDla(const Args& a) {
  auto o = openAny(a, !a.has("ids") && !a.has("ids-file"));
  const Tokenizer* tok = o.loaded.tokenizer.get();
  HookedTransformer& model = o.model();
  const auto edits = installEdits(a, model);
  const auto ids = promptIds(a, tok);
  const int64_t position = a.has("pos") ? a.integer("pos", -1) : -1;
  const int64_t target = answerToken(a, tok, "token");
  const int64_t wrong = a.has("wrong") ? answerToken(a, tok, "wrong") : -1;
  const LogitAttribution r = directLogitAttribution(model, ids, position, target, wrong);
  const int64_t L = r.heads.size(0), H = r.heads.size(1);
  const double headSum = r.heads.sum().item<double>(), mlpSum = r.mlps.sum().item<double>();
  if (a.has("json")) {
    std::cout << nlohmann::json{{"model", o.loaded.source},
                                {"position", position < 0 ? position + static_cast<int64_t>(ids.size()) : position},
                                {"token", {{"id", target}, {"text", tokenText(tok, target)}}},
                                {"wrong", wrong >= 0 ? nlohmann::json{{"id", wrong}, {"text", tokenText(tok, wrong)}} : nlohmann::json(nullptr)},
                                {"logit", r.logit},
                                {"embed", r.embed},
                                {"biases", r.biases},
                                {"final_norm_scale", r.scale},
                                {"heads", {{"layers", L}, {"heads", H}, {"values", std::vector<double>(r.heads.data_ptr<double>(), r.heads.data_ptr<double>() + L * H)}}},
                                {"mlps", std::vector<double>(r.mlps.data_ptr<double>(), r.mlps.data_ptr<double>() + L)},
                                {"edits", edits.described}}
                     .dump(2)
              << "\n";
    return 0;
  }
  const std::string what = "logit(" + tokenText(tok, target) + ")" + (wrong >= 0 ? " - logit(" + tokenText(tok, wrong) + ")" : "");
  std::cout << what << " = " << fixed(r.logit, 4) << " = embeddings " << fixed(r.embed, 4) << " + heads " << fixed(headSum, 4) << " + MLPs "
            << fixed(mlpSum, 4) << " + biases " << fixed(r.biases, 4) << "   (final norm's scale frozen at " << fixed(r.scale, 4) << ")\n";
  std::vector<std::pair<double, int64_t>> order;
  for (int64_t i = 0; i < L * H; ++i) order.push_back({r.heads.view({-1})[i].item<double>(), i});
  std::sort(order.begin(), order.end(), [](const auto& x, const auto& y) { return std::abs(x.first) > std::abs(y.first); });
  std::cout << "largest heads:";
  for (size_t i = 0; i < std::min<size_t>(8, order.size()); ++i)
    std::cout << "  L" << order[i].second / H << "H" << order[i].second % H << " " << (order[i].first >= 0 ? "+" : "") << fixed(order[i].first, 3);
  std::cout << "\nMLPs:";
  for (int64_t l = 0; l < L; ++l) std::cout << "  L" << l << " " << (r.mlps[l].item<double>() >= 0 ? "+" : "") << fixed(r.mlps[l].item<double>(), 3);
  std::cout << "\n";
  return 0;
}

}  // namespace headlab::cli
