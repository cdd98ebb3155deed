#include "headlab/core/model_session.h"

#include <c10/core/InferenceMode.h>

#include "headlab/core/demo_model.h"
#include "headlab/core/demo_vlm.h"
#include "headlab/core/errors.h"
#include "headlab/core/tokenizer.h"

namespace headlab {

bool isDemoModelName(const std::string& spec) { return spec == "demo" || spec == "demo-vlm"; }

VlmInput ModelSession::prepare(std::vector<int64_t>& ids, const at::Tensor& image) {
  if (!vlm) return {};
  if (image.defined()) ids = withImagePlaceholder(ids, vlm->visionConfig().image_token_id, loaded.tokenizer ? loaded.tokenizer->bos() : -1);
  VlmInput in = vlm->prepare(ids, image);
  ids = in.ids;
  return in;
}

ModelSession openModelSession(const std::string& spec, const SessionOptions& o) {
  if (spec.empty()) throw InputError("no model given (expected a folder, .gguf, .bin, demo or demo-vlm)");
  ModelSession s;
  // Weights are created outside inference mode so that autograd can use them later (attribution
  // patching, DuoAttention's gate optimisation); forwards still run in inference mode.
  c10::InferenceMode off(false);
  const std::string path = spec == "demo" ? ensureDemoModel(o.load.progress) : spec == "demo-vlm" ? ensureDemoVlm(o.load.progress) : spec;
  if (isLlavaFolder(path)) {
    s.vlm = loadLlava(path);
    s.vlm->to(parseDevice(o.load.device), parseDtype(o.load.dtype));
    s.loaded.source = path, s.loaded.format = "llava";
    try {
      s.loaded.tokenizer = loadTokenizer(o.load.tokenizerPath.empty() ? path : o.load.tokenizerPath);
    } catch (const IoError&) {
      if (o.tokenizerRequired) throw;
    }
  } else {
    s.loaded = loadModel(path, o.load);
  }
  if (o.tokenizerRequired && !s.loaded.tokenizer)
    throw TokenizerError(s.loaded.source + ": no tokenizer found next to the model; pass a tokenizer file");
  return s;
}

}  // namespace headlab
