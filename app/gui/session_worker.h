// The session's worker state and its job queue, shared by the files that implement
// SessionController (session_controller.cpp, session_controller_vision.cpp). Private to app/gui:
// include torch headers first, then this.
#pragma once
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <QMetaObject>
#include <memory>
#include <vector>

#include "headlab/core/incremental_runner.h"
#include "headlab/core/interventions.h"
#include "headlab/core/model_loader.h"
#include "headlab/core/model_session.h"
#include "headlab/core/vision_language.h"
#include "session_controller.h"

class QImage;

namespace headlab::app {

// An image's pixels as clipPreprocess takes them: RGB, 3 bytes per pixel, rows unpadded.
struct RgbImage {
  std::vector<uint8_t> bytes;
  int width = 0, height = 0;
};
RgbImage rgbImage(const QImage& image);  // GUI thread (session_controller_vision.cpp)

struct SessionController::Worker {
  ModelSession session;                      // the open model; its pixels: the window's image (undefined = none)
  std::vector<int64_t> promptIds;            // the prompt before the image is spliced in
  at::Tensor embeds;                         // layer 0's input of the current image prompt
  int64_t imageBegin = -1, imageEnd = -1;    // its image span
  std::vector<Intervention> vhr;             // VHR's reinforcement while its toggle is on
  bool vhrOn = false;
  std::unique_ptr<IncrementalRunner> runner;
  std::vector<at::Tensor> meanZ;  // per layer: z averaged over the prompt's positions [1, 1, head, d_head]
  std::vector<Intervention> ivs;
  QStringList pieces;
  int layer = 0;
  int64_t targetId = -1;
  int logitsPosition = -1;  // the logits panel's position (-1: the last)

  HookedTransformer* model() const { return session.vlm ? &session.vlm->language() : session.loaded.model.get(); }
  const Tokenizer& tokenizer() const { return *session.loaded.tokenizer; }
  const VisionTowerConfig* visionConfig() const { return session.vlm ? &session.vlm->visionConfig() : nullptr; }
  // The edits from the head grid, then VHR's scales.
  std::vector<Intervention> allInterventions() const {
    std::vector<Intervention> out = ivs;
    out.insert(out.end(), vhr.begin(), vhr.end());
    return out;
  }

  std::vector<Intervention> toInterventions(const std::vector<views::HeadEdit>& edits) const {
    std::vector<Intervention> out;
    for (const auto& e : edits) {
      const auto& s = e.state;
      switch (s.ablation) {
        case views::AblationKind::Zero: out.push_back({InterventionKind::Zero, e.layer, {e.head}}); break;
        case views::AblationKind::Uniform: out.push_back({InterventionKind::Uniform, e.layer, {e.head}}); break;
        case views::AblationKind::Act: {  // ACT: sinks found per input, beta 0.4, threshold 0.1 (the paper's)
          Intervention iv{InterventionKind::ActRedistribute, e.layer, {e.head}};
          iv.alpha = 0.4;
          out.push_back(iv);
          break;
        }
        case views::AblationKind::Pasta: {  // PASTA: alpha 0.01 on the keys outside the emphasised ones (the paper's)
          Intervention iv{InterventionKind::Pasta, e.layer, {e.head}};
          iv.alpha = 0.01;
          iv.keys.assign(s.keys.begin(), s.keys.end());
          out.push_back(iv);
          break;
        }
        case views::AblationKind::Mean: {
          Intervention iv{InterventionKind::Mean, e.layer, {e.head}};
          iv.source = meanZ.at(e.layer);
          out.push_back(iv);
          break;
        }
        case views::AblationKind::None: break;
      }
      if (s.alpha != 1.0f) {
        Intervention iv{InterventionKind::Scale, e.layer, {e.head}};
        iv.alpha = s.alpha;
        out.push_back(iv);
      }
    }
    return out;
  }
};

template <typename F>
inline void SessionController::post(F&& job) {
  ++m_pending;
  QMetaObject::invokeMethod(
      m_context,
      [this, job = std::forward<F>(job)]() mutable {
        try {
          // Thread-local, so created inside the worker. No gradients, but not InferenceMode: tensors made
          // under it (the model's weights) cannot be saved for backward, which attribution patching needs.
          c10::AutoGradMode noGrad(false);
          job();
        } catch (const std::exception& e) {
          QString msg = QString::fromUtf8(e.what()).section('\n', 0, 0);
          QMetaObject::invokeMethod(this, [this, msg] { emit failed(msg); emit busyChanged(false, {}); }, Qt::QueuedConnection);
        }
        --m_pending;
      },
      Qt::QueuedConnection);
}

}  // namespace headlab::app
