// Benchmarks that print ratios measured side by side in one run (PRODUCT.md §9). Never a test:
// the machines are shared and noisy, so only the ratios within one run mean anything.
//   headlab-bench [--quick] [--only hooks|patching|click|hdf5|retrieval|load|longcontext]
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>

#include "allocation_meter.h"
#include "bench_models.h"
#include "headlab/core/attention_tiles.h"
#include "headlab/core/hooked_transformer.h"
#include "headlab/core/incremental_runner.h"
#include "headlab/core/model_loader.h"
#include "headlab/core/patching.h"
#include "headlab/core/startup.h"
#include "headlab/core/demo_model.h"
#include "headlab/core/tokenizer.h"
#include "headlab/core/trace.h"
#include "headlab/plugins/probe_plugin.h"

#include <sys/resource.h>

#include <fstream>
#include <nlohmann/json.hpp>

namespace {

using namespace headlab;

using bench::Shape;
using bench::gpt2Like;
using bench::seconds;
using bench::tokens;

void benchHooks(HookedTransformer& m, int64_t T) {
  at::Tensor ids = at::tensor(tokens(T, m.config().d_vocab, 1), at::kLong).unsqueeze(0);
  double plain = seconds([&] { m.forward(ids); }, 3);
  std::vector<HookHandle> hs;
  for (const auto& n : m.hooks().names()) hs.push_back(m.hooks().add(n, [](at::Tensor&, const HookContext&) {}));
  double hooked = seconds([&] { m.forward(ids); }, 3);
  std::printf("hook overhead (%zu hooks idle, %ld tokens): plain %.1f ms, hooked %.1f ms, ratio %.3f\n", hs.size(), static_cast<long>(T),
              plain * 1e3, hooked * 1e3, hooked / plain);
}

void benchPatching(HookedTransformer& m, int64_t T) {
  PatchingRequest r;
  r.clean = tokens(T, m.config().d_vocab, 2);
  r.corrupted = r.clean;
  r.corrupted[T / 2] = (r.corrupted[T / 2] + 1) % m.config().d_vocab;
  r.answer = 11, r.wrong = 17, r.sweep = SweepKind::Heads;
  PatchingResult fast, slow, layered;
  double tFast = seconds([&] { fast = patchBatched(m, r); });
  PatchingRequest perLayer = r;
  perLayer.pipeline = false;
  double tLayered = seconds([&] { layered = patchBatched(m, perLayer); });
  double tSlow = seconds([&] { slow = patchPerForward(m, r); });
  double diff = (fast.grid - slow.grid).abs().max().item<double>();
  std::printf("head patching sweep (%ld x %ld heads, %ld tokens): batched %.2f s (pipelined, %ld layer passes), one forward per patch %.2f s (%ld forwards), speed-up %.1fx, max |difference| %.1e; per-layer batches %.2f s (%.1fx)\n",
              static_cast<long>(m.config().n_layers), static_cast<long>(m.config().n_heads), static_cast<long>(T), tFast,
              static_cast<long>(fast.forwards), tSlow, static_cast<long>(slow.forwards), tSlow / tFast, diff, tLayered, tSlow / tLayered);
  double tAttr = seconds([&] { patchAttribution(m, r); });
  at::Tensor pair = at::stack({fast.grid.flatten(), patchAttribution(m, r).grid.flatten()});
  std::printf("attribution patching: %.2f s vs exact batched %.2f s (%.1fx), correlation with exact %.3f\n", tAttr, tFast, tFast / tAttr,
              at::corrcoef(pair)[0][1].item<double>());
}

void benchClick(HookedTransformer& m, int64_t T) {
  IncrementalRunner runner(m);
  auto toks = tokens(T, m.config().d_vocab, 3);
  double full = seconds([&] { runner.setPrompt(toks); }, 3);
  const int L = static_cast<int>(m.config().n_layers);
  for (int layer : {0, L / 2, L - 1}) {
    bool on = false;
    double suffix = seconds([&] {
      on = !on;  // toggle so every call is a real change
      runner.update(on ? std::vector<Intervention>{Intervention{InterventionKind::Zero, layer, {0}}} : std::vector<Intervention>{});
    }, 5);
    std::printf("click-to-ablate at layer %2d (%ld tokens): suffix recompute %.1f ms vs full recompute %.1f ms, speed-up %.1fx\n", layer,
                static_cast<long>(T), suffix * 1e3, full * 1e3, full / suffix);
  }
}

void benchHdf5(HookedTransformer& m, int64_t T) {
  const auto hooks = m.hooks().match("blocks.*.attn.hook_pattern");
  auto toks = tokens(T, m.config().d_vocab, 4);
  const double mb = estimateCaptureBytes(m, hooks, T) / 1e6;
  const std::string path = (std::filesystem::temp_directory_path() / "headlab_bench_trace.h5").string();
  for (int gzip : {0, 4}) {
    TraceOptions o;
    o.force = true;
    o.gzipLevel = gzip;
    // Time only the writes: capture the activations first.
    std::vector<std::pair<std::string, at::Tensor>> acts;
    {
      c10::InferenceMode g;
      std::vector<HookHandle> hs;
      for (const auto& h : hooks) hs.push_back(m.hooks().add(h, [&acts, h](at::Tensor& t, const HookContext&) { acts.emplace_back(h, t.clone()); }));
      m.forward(at::tensor(toks, at::kLong).unsqueeze(0));
    }
    double t = seconds([&] {
      TraceWriter w(path, o);
      for (const auto& [name, a] : acts) w.writeActivation(name, a);
      w.commit();
    }, 2);
    double fileMb = std::filesystem::file_size(path) / 1e6;
    std::printf("HDF5 attention export (%zu layers, %ld tokens, %.1f MB raw), gzip %d: %.0f MB/s, file %.1f MB\n", hooks.size(),
                static_cast<long>(T), mb, gzip, mb / t, fileMb);
  }
  std::filesystem::remove(path);
}

long currentRssKb() {
  std::ifstream in("/proc/self/status");
  std::string key;
  long kb = 0;
  while (in >> key) {
    if (key == "VmRSS:") return in >> kb, kb;
    in.ignore(1 << 16, '\n');
  }
  return 0;
}

long peakRssKb() {
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

// The retrieval probe at long context on a LLaMA-shaped model (random weights, GQA, RoPE): peak
// memory against the [layers, heads, T, T] attention a naive capture would hold. Run it first in a
// fresh process (--only retrieval): peak RSS is a high-water mark.
void benchRetrieval(int64_t context) {
  ModelConfig c;
  c.arch = "llama";
  c.n_layers = 4, c.n_heads = 8, c.n_kv_heads = 2, c.d_model = 256, c.d_head = 32, c.d_mlp = 512;
  c.d_vocab = static_cast<int64_t>(DemoTasks::vocabulary().size()), c.n_ctx = context + 64;
  c.norm = NormKind::RmsNorm, c.act = Activation::Silu, c.gated_mlp = true, c.rope = RopeLayout::RotateHalf;
  at::manual_seed(0);
  auto r = [](std::vector<int64_t> s) { return at::randn(s) * 0.05; };
  ModelWeights w;
  const int64_t D = c.d_model, q = c.n_heads * c.d_head, kv = c.n_kv_heads * c.d_head, F = c.d_mlp;
  w.embed = r({c.d_vocab, D}), w.unembed = w.embed, w.lnf_w = at::ones({D});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerWeights L;
    L.ln1_w = at::ones({D}), L.ln2_w = at::ones({D});
    L.wq = r({q, D}), L.wk = r({kv, D}), L.wv = r({kv, D}), L.wo = r({D, q});
    L.w_gate = r({F, D}), L.w_in = r({F, D}), L.w_out = r({D, F});
    w.layers.push_back(std::move(L));
  }
  HookedTransformer model(c, std::move(w));
  // A word-level tokenizer over the demo vocabulary, written where the loader expects it.
  const auto dir = std::filesystem::temp_directory_path() / "headlab_bench_tok";
  std::filesystem::create_directories(dir);
  nlohmann::json vocab = nlohmann::json::object();
  for (size_t i = 0; i < DemoTasks::vocabulary().size(); ++i) vocab[DemoTasks::vocabulary()[i]] = i;
  std::ofstream(dir / "tokenizer.json") << nlohmann::json({{"model", {{"type", "WordLevel"}, {"vocab", vocab}, {"unk_token", "<unk>"}}}}).dump();
  auto tok = loadTokenizer((dir / "tokenizer.json").string());
  DemoTasks tasks(5);
  nlohmann::json params = {{"haystack", tasks.filler(context + 200)},
                           {"needles", {{{"needle", " the secret code of anna is 4 7 2 ."}, {"question", " question : the secret code of anna is"}, {"answer", "4 7 2"}}}},
                           {"template", "{context}{question}"},
                           {"lengths", {context}},
                           {"depths", {50}},
                           {"max_new_tokens", 4},
                           {"prefill_chunk", 512}};
  const long before = peakRssKb();
  auto probe = plugins::ProbeRegistry::instance().create("retrieval");
  plugins::ProbeContext ctx{model, tok.get(), params, {}};
  auto t0 = std::chrono::steady_clock::now();
  nlohmann::json res = probe->run(ctx);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const long after = peakRssKb();
  const double naive = static_cast<double>(c.n_layers) * c.n_heads * context * context * 4 / 1e6;
  std::printf("retrieval probe at %ld tokens (%ld layers x %ld heads, GQA %ld kv heads): %.1f s, peak memory growth %.0f MB "
              "(process peak %.0f MB) vs %.0f MB for [layers, heads, T, T] float32 (%.0fx less)\n",
              static_cast<long>(res["per_test"][0]["length"].get<int64_t>()), static_cast<long>(c.n_layers), static_cast<long>(c.n_heads),
              static_cast<long>(c.n_kv_heads), secs, (after - before) / 1024.0, after / 1024.0, naive, naive / std::max(1.0, (after - before) / 1024.0));
  std::filesystem::remove_all(dir);
}

// Long context (issue #20) on the random LLaMA shape of the issue (4 layers x 8 heads over 2 kv heads,
// d_model 256, context 131072): the explicit and the blockwise forward side by side (time and heap
// high-water mark, reset per variant), the blockwise forward alone where the explicit one would need
// [heads, T, T] several times over, the on-demand path's first exact tile (the layer's input kept,
// the rows' statistics computed), panning to the next tile, and one head's overview.
void benchLongContext(bool quick) {
  c10::InferenceMode guard;
  HookedTransformer model = bench::llamaLike({4, 8, 2, 256, 688, 512, 131072});
  // One timed run (no warm-up: a 32K forward is minutes on a laptop CPU).
  const auto once = [](const std::function<void()>& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  const auto randomIds = [](int64_t T) { return at::randint(512, {1, T}, at::kLong); };
  const auto heapMb = [] { return test::heapPeakBytes() / 1e6; };
  const auto run = [&](int64_t T, AttentionImpl impl) {
    model.setAttentionImpl(impl);
    const at::Tensor ids = randomIds(T);
    test::resetHeapPeak();
    const double base = test::heapBytesNow() / 1e6;
    const double secs = once([&] { model.forward(ids); });
    return std::make_pair(secs, heapMb() - base);
  };
  if (!test::allocationMeterActive()) std::printf("(heap meter inactive: memory columns read 0)\n");
  for (int64_t T : quick ? std::vector<int64_t>{512} : std::vector<int64_t>{2048, 8192}) {
    const auto [te, me] = run(T, AttentionImpl::Explicit);
    const auto [tb, mb] = run(T, AttentionImpl::Blockwise);
    std::printf("forward at %ld tokens: explicit %.2f s, peak heap +%.0f MB | blockwise %.2f s, +%.0f MB | time ratio %.2f, memory %.1fx less\n",
                static_cast<long>(T), te, me, tb, mb, tb / te, me / std::max(1.0, mb));
  }
  const int64_t longT = quick ? 2048 : 32768;
  if (!quick) {
    const auto [tb, mb] = run(longT, AttentionImpl::Blockwise);
    std::printf("forward at %ld tokens: blockwise %.1f s, peak heap +%.0f MB (explicit would hold %.0f MB of scores per layer, twice)\n",
                static_cast<long>(longT), tb, mb, 8.0 * longT * longT * 4 / 1e6);
  }
  model.setAttentionImpl(AttentionImpl::Auto);
  AttentionTilesOptions o;
  o.layers = {2};
  o.statsFromForward = false;
  std::unique_ptr<AttentionTiles> tiles;
  const at::Tensor ids = randomIds(longT);
  const double keep = once([&] { tiles = std::make_unique<AttentionTiles>(model, ids, o); });
  const int64_t r = longT - 1000;
  const double first = once([&] { tiles->pattern(2, {3}, r, r + 64, 0, 1024); });
  const double pan = once([&] { tiles->pattern(2, {3}, r + 64, r + 128, 1024, 2048); });
  std::printf("tiles at %ld tokens: layer 2's input kept in %.1f s (%.0f MB held); first exact 64 x 1024 tile %.0f ms, pan to the next %.0f ms\n",
              static_cast<long>(longT), keep, tiles->bytesHeld() / 1e6, first * 1e3, pan * 1e3);
  const int64_t ovT = quick ? 1024 : 8192;
  AttentionTiles small(model, randomIds(ovT), o);
  const double ov = once([&] { small.overview(2, 3, 512); });
  std::printf("overview of one head at %ld tokens (512 x 512 cells, max and mean): %.2f s\n", static_cast<long>(ovT), ov);
}

// A random model of Llama-3.2-1B's shape (16 layers, 32 heads / 8 kv heads, head_dim 64, d_model 2048,
// SwiGLU 8192, vocabulary 128256, tied, llama3 rope_scaling), written as a bfloat16 safetensors
// folder (as the real checkpoint ships), then loaded in bfloat16: load time, peak memory against the
// weights' size, and a 512-token forward. Run it in a fresh process (--only load): peak RSS is a
// high-water mark. The folder is written tensor by tensor in 64 MB pieces so that writing it does not
// raise the peak.
void benchLoad(bool quick) {
  const int64_t L = quick ? 2 : 16, D = 2048, H = 32, KV = 8, dh = 64, F = 8192, V = 128256, T = quick ? 64 : 512;
  const auto dir = std::filesystem::temp_directory_path() / "headlab_bench_llama32_1b";
  std::filesystem::create_directories(dir);
  nlohmann::json cfg = {{"model_type", "llama"}, {"hidden_size", D}, {"intermediate_size", F}, {"num_hidden_layers", L},
                        {"num_attention_heads", H}, {"num_key_value_heads", KV}, {"head_dim", dh}, {"vocab_size", V},
                        {"max_position_embeddings", 131072}, {"rms_norm_eps", 1e-5}, {"rope_theta", 500000.0},
                        {"rope_scaling", {{"rope_type", "llama3"}, {"factor", 32.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                                          {"original_max_position_embeddings", 8192}}},
                        {"tie_word_embeddings", true}, {"hidden_act", "silu"}};
  std::ofstream(dir / "config.json") << cfg.dump();
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {{"model.embed_tokens.weight", {V, D}}, {"model.norm.weight", {D}}};
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (auto& [n, s] : std::vector<std::pair<std::string, std::vector<int64_t>>>{
             {"input_layernorm.weight", {D}}, {"post_attention_layernorm.weight", {D}}, {"self_attn.q_proj.weight", {H * dh, D}},
             {"self_attn.k_proj.weight", {KV * dh, D}}, {"self_attn.v_proj.weight", {KV * dh, D}}, {"self_attn.o_proj.weight", {D, H * dh}},
             {"mlp.gate_proj.weight", {F, D}}, {"mlp.up_proj.weight", {F, D}}, {"mlp.down_proj.weight", {D, F}}})
      shapes.push_back({p + n, s});
  }
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0, params = 0;
  for (auto& [name, shape] : shapes) {
    uint64_t n = 1;
    for (int64_t d : shape) n *= d;
    header[name] = {{"dtype", "BF16"}, {"shape", shape}, {"data_offsets", {offset, offset + 2 * n}}};
    offset += 2 * n, params += n;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  {
    std::ofstream out(dir / "model.safetensors", std::ios::binary);
    const uint64_t len = h.size();
    out.write(reinterpret_cast<const char*>(&len), 8);
    out.write(h.data(), h.size());
    at::manual_seed(0);
    for (auto& [name, shape] : shapes) {
      uint64_t n = 1;
      for (int64_t d : shape) n *= d;
      const bool norm = shape.size() == 1;
      for (uint64_t done = 0; done < n; done += 16 << 20) {
        const int64_t k = static_cast<int64_t>(std::min<uint64_t>(16 << 20, n - done));
        at::Tensor piece = (norm ? at::ones({k}) : at::randn({k}) * 0.02).to(at::kBFloat16);
        out.write(reinterpret_cast<const char*>(piece.data_ptr()), 2 * k);
      }
    }
  }
  const double weightsMb = 2.0 * params / (1 << 20);
  const long before = currentRssKb();  // the peak so far may be the writing's; growth is measured from here
  LoadOptions o;
  o.dtype = "bfloat16";
  auto t0 = std::chrono::steady_clock::now();
  LoadedModel m = loadModel(dir.string(), o);
  const double loadSecs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const long afterLoad = peakRssKb();
  c10::InferenceMode guard;
  at::Tensor ids = at::randint(V, {1, T}, at::kLong);
  const double fwd = seconds([&] { m.model->forward(ids); });
  std::printf("Llama-3.2-1B shape%s (%.2fB parameters, bfloat16 safetensors %.0f MB): load as bfloat16 %.1f s, peak memory growth "
              "%.0f MB for %.0f MB of weights (%.2fx); %ld-token forward %.2f s\n",
              quick ? " (2 layers, quick)" : "", params / 1e9, weightsMb, loadSecs, (afterLoad - before) / 1024.0, weightsMb,
              (afterLoad - before) / 1024.0 / weightsMb, static_cast<long>(T), fwd);
  std::filesystem::remove_all(dir);
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--only" && i + 1 < argc) only = argv[++i];
    else {
      std::fprintf(stderr, "usage: headlab-bench [--quick] [--only hooks|patching|click|hdf5|retrieval|load|longcontext]\n");
      return 2;
    }
  }
  int threads = configureThreads();
  BlasCheck blas = checkBlas();
  std::printf("headlab-bench %s: %s\n", appVersion(), runtimeSummary(threads, blas).c_str());
  // GPT-2 small: 12 layers x 12 heads, d_model 768, d_mlp 3072, vocab 50257 (random weights).
  if (only == "load") return benchLoad(quick), 0;
  if (only == "longcontext" || (only.empty() && quick)) {
    benchLongContext(quick);
    if (only == "longcontext") return 0;
  }
  if (only == "retrieval" || (only.empty() && quick)) {
    benchRetrieval(quick ? 256 : 4096);
    if (only == "retrieval") return 0;
  }
  Shape s = quick ? Shape{4, 4, 64, 256, 1000, 16} : Shape{12, 12, 768, 3072, 50257, 64};
  std::printf("model: %ld layers x %ld heads, d_model %ld, vocab %ld%s\n", static_cast<long>(s.layers), static_cast<long>(s.heads),
              static_cast<long>(s.d_model), static_cast<long>(s.vocab), quick ? " (quick)" : " (GPT-2 small shape)");
  HookedTransformer m = gpt2Like(s);
  if (only.empty() || only == "hooks") benchHooks(m, s.tokens);
  if (only.empty() || only == "click") benchClick(m, s.tokens);
  if (only.empty() || only == "patching") {
    benchPatching(m, quick ? 8 : 16);  // IOI-length prompt (Wang et al.'s prompts are ~15 tokens)
    benchPatching(m, s.tokens);
  }
  if (only.empty() || only == "hdf5") benchHdf5(m, quick ? 32 : 256);
  return 0;
}
