// SessionController's logit lens and direct logit attribution (issue #23): the core's logitLens and
// directLogitAttribution on the window's prompt, with the window's edits installed.
// torch first: Qt's keywords break torch headers included after them.
#include <ATen/ATen.h>

#include "session_worker.h"

#include <QStringList>
#include <cmath>

#include "headlab/core/errors.h"
#include "headlab/core/logit_lens.h"
#include "view_adapters.h"

namespace headlab::app {

using adapt::q;

// The text prompt the lens reads (vision-language prompts need embeddings it does not take yet).
const std::vector<int64_t>& SessionController::textPromptIds(const Worker& w, const char* what) {
  if (!w.runner || w.runner->tokens().empty()) throw InputError(std::string("run a prompt first: the ") + what + " reads it");
  if (w.session.vlm) throw InputError(std::string("the ") + what + " runs on text prompts; this model's prompt holds an image");
  return w.runner->tokens();
}

void SessionController::runLens() {
  emit busyChanged(true, tr("logit lens"));
  post([this] {
    auto& w = *m_worker;
    const std::vector<int64_t>& ids = textPromptIds(w, "logit lens");
    HookedTransformer& model = *w.model();
    const std::vector<HookHandle> edits = install(model, w.allInterventions());  // the lens follows the window's edits
    LensOptions o;
    o.topK = 3;
    o.follow = w.targetId;
    const LogitLens lens = logitLens(model, ids, o);
    const at::Tensor ids3 = lens.topIds.to(at::kCPU), p3 = lens.topProbs.to(at::kCPU, at::kFloat);
    const int L = static_cast<int>(ids3.size(0)), T = static_cast<int>(ids3.size(1));
    views::HeatmapData d;
    d.rows = L, d.cols = T;
    d.rowName = "layer", d.colName = "position";
    for (int l = 0; l < L; ++l) d.rowLabels << QString("L%1").arg(l);
    d.colLabels = w.pieces;
    d.valueLabel = "top-1 probability";
    d.title = QString("logit lens: what each layer predicts next%1").arg(w.allInterventions().empty() ? QString() : " (with the window's edits)");
    const QString follow = w.targetId >= 0 ? q(w.tokenizer().tokenString(w.targetId)) : QString();
    for (int l = 0; l < L; ++l)
      for (int t = 0; t < T; ++t) {
        d.values.push_back(p3[l][t][0].item<float>());
        QStringList top;
        for (int k = 0; k < ids3.size(2); ++k)
          top << QString("'%1' %2").arg(q(w.tokenizer().tokenString(ids3[l][t][k].item<int64_t>()))).arg(p3[l][t][k].item<float>(), 0, 'f', 3);
        QString text = "top: " + top.join(", ");
        if (lens.followProb.defined())
          text += QString("\nfollowed '%1': %2, rank %3").arg(follow).arg(lens.followProb[l][t].item<float>(), 0, 'g', 3).arg(lens.followRank[l][t].item<int64_t>() + 1);
        d.cellTexts << text;
      }
    const QString summary = QString("layer %1's top token at the last position: '%2' (%3); the last layer is the model's own prediction")
                                .arg(L - 1).arg(q(w.tokenizer().tokenString(ids3[L - 1][T - 1][0].item<int64_t>())))
                                .arg(p3[L - 1][T - 1][0].item<float>(), 0, 'f', 3);
    QMetaObject::invokeMethod(this, [this, d, summary] {
      emit lensReady(d, summary);
      emit busyChanged(false, {});
    }, Qt::QueuedConnection);
  });
}

void SessionController::runDla() {
  emit busyChanged(true, tr("direct logit attribution"));
  post([this] {
    auto& w = *m_worker;
    const std::vector<int64_t>& ids = textPromptIds(w, "direct logit attribution");
    HookedTransformer& model = *w.model();
    const std::vector<HookHandle> edits = install(model, w.allInterventions());
    const int64_t T = static_cast<int64_t>(ids.size());
    const int64_t pos = w.logitsPosition >= 0 && w.logitsPosition < T ? w.logitsPosition : T - 1;
    // The followed token, else the model's top prediction (with the edits) at the position.
    int64_t target = w.targetId;
    if (target < 0) target = model.forward(at::tensor(ids, at::kLong).unsqueeze(0))[0][pos].argmax().item<int64_t>();
    const LogitAttribution a = directLogitAttribution(model, ids, pos, target);
    const at::Tensor heads = a.heads.to(at::kCPU, at::kFloat).contiguous();
    const QString token = q(w.tokenizer().tokenString(target));
    views::HeadScores grid{static_cast<int>(heads.size(0)), static_cast<int>(heads.size(1)), adapt::values(heads),
                           QString("DLA: logit('%1') at position %2").arg(token).arg(pos), 0};
    const at::Tensor mlps = a.mlps.to(at::kCPU, at::kDouble);
    QStringList mlpText;
    for (int64_t l = 0; l < mlps.size(0); ++l) mlpText << QString("L%1 %2").arg(l).arg(mlps[l].item<double>(), 0, 'f', 3);
    const QString summary = QString("logit('%1') = %2 = embeddings %3 + heads %4 + MLPs %5 + biases %6 (final norm's scale frozen at %7); MLPs: %8")
                                .arg(token).arg(a.logit, 0, 'f', 3).arg(a.embed, 0, 'f', 3).arg(a.heads.sum().item<double>(), 0, 'f', 3)
                                .arg(a.mlps.sum().item<double>(), 0, 'f', 3).arg(a.biases, 0, 'f', 3).arg(a.scale, 0, 'f', 3).arg(mlpText.join(", "));
    QMetaObject::invokeMethod(this, [this, grid, summary] {
      emit dlaReady(grid, summary);
      emit busyChanged(false, {});
    }, Qt::QueuedConnection);
  });
}

}  // namespace headlab::app
