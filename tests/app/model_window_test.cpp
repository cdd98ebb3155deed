// The real window on the real stories260K model: click to ablate, reset, heatmap = hook_pattern.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <gtest/gtest.h>
#include <QFile>
#include <QJsonObject>
#include <QJsonDocument>
#include <QJsonArray>

#include <QAction>
#include <QApplication>
#include <QLabel>
#include <QLineEdit>
#include <QTableView>
#include <qcustomplot.h>

#include <QCheckBox>
#include <QComboBox>
#include <QPushButton>
#include <QElapsedTimer>
#include <QSignalSpy>
#include <QTableWidget>
#include <QTreeWidget>
#include <QTest>
#include <QTimer>
#include <random>
#include <QProcess>
#include <QTemporaryDir>
#include <nlohmann/json.hpp>
#include <QStatusBar>
#include <QToolBar>

#include "headlab/core/faithfulness.h"
#include "headlab/core/interventions.h"
#include "headlab/core/logit_lens.h"
#include "headlab/core/model_loader.h"
#include "headlab/core/patching.h"
#include <QSettings>

#include "headlab/core/trace.h"
#include "headlab/views/head_grid_model.h"
#include "headlab/views/heatmap_view.h"
#include "headlab/views/logits_panel.h"
#include "headlab/views/patching_panel.h"
#include "headlab/views/probe_panel.h"
#include "headlab/views/token_strip.h"
#include "main_window.h"
#include "trace_export_dialog.h"
#include "session_controller.h"
#include "shared_path.h"
#include "tensor_assert.h"

namespace headlab::app {

namespace {
const char* kPrompt = "Once upon a time there was a little";

bool anyChanged(const std::vector<views::TokenProb>& top) {
  for (const auto& t : top)
    if (std::abs(t.intervened - t.baseline) > 1e-4f) return true;
  return false;
}
bool allExact(const std::vector<views::TokenProb>& top) {
  for (const auto& t : top)
    if (t.intervened != t.baseline) return false;
  return !top.empty();
}
}  // namespace

class ModelWindowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    window.show();
    ASSERT_TRUE(QTest::qWaitForWindowExposed(&window));
    window.openModel(QString::fromStdString(test::sharedPath("models/stories260k/stories260K.bin")), kPrompt);
    ASSERT_TRUE(QTest::qWaitFor([&] { return !window.logits()->predictions().empty() && !window.layerPatterns().empty(); }, 20000))
        << "model did not load and run";
  }
  MainWindow window;
};

// Open recent lists only models that opened: a failed file does not enter it, a model that opened does.
TEST(ModelWindowRecent, OnlyModelsThatOpenedEnterOpenRecent) {
  QSettings().remove("recentModels");
  MainWindow window;
  window.show();
  QSignalSpy failed(window.session(), &SessionController::failed);
  window.openModel("/nonexistent/model.gguf", kPrompt);
  ASSERT_TRUE(QTest::qWaitFor([&] { return failed.count() == 1; }, 10000));
  EXPECT_FALSE(QSettings().value("recentModels").toStringList().contains("/nonexistent/model.gguf"));
  const QString good = QString::fromStdString(test::sharedPath("models/stories260k/stories260K.bin"));
  window.openModel(good, kPrompt);
  ASSERT_TRUE(QTest::qWaitFor([&] { return !window.logits()->predictions().empty(); }, 20000));
  EXPECT_EQ(QSettings().value("recentModels").toStringList().value(0), good);
}

// --device / --dtype: the window runs the model where and how it is told (CUDA is checked on a GPU
// machine by tests/cuda/run.sh; here bfloat16 on the CPU), and a bad device is a clear message.
TEST(ModelWindowDevice, RunsInTheAskedDtypeAndRefusesAnUnknownDevice) {
  MainWindow window;
  window.show();
  QSignalSpy opened(window.session(), &SessionController::modelOpened);
  window.session()->setDevice("cpu", "bfloat16");
  window.openModel(QString::fromStdString(test::sharedPath("models/stories260k/stories260K.bin")), kPrompt);
  ASSERT_TRUE(QTest::qWaitFor([&] { return !window.logits()->predictions().empty(); }, 20000)) << window.statusBar()->currentMessage().toStdString();
  ASSERT_EQ(opened.count(), 1);
  EXPECT_EQ(opened[0][0].value<views::ModelSummary>().device, "cpu, BFloat16");
  EXPECT_FALSE(window.layerPatterns().empty());

  QSignalSpy failed(window.session(), &SessionController::failed);
  window.session()->setDevice("tpu");
  window.openModel(QString::fromStdString(test::sharedPath("models/stories260k/stories260K.bin")), kPrompt);
  ASSERT_TRUE(QTest::qWaitFor([&] { return failed.count() == 1; }, 20000));
  EXPECT_TRUE(failed[0][0].toString().contains("unknown device 'tpu'")) << failed[0][0].toString().toStdString();
}

TEST_F(ModelWindowTest, ShowsTokensGridAndPredictions) {
  EXPECT_EQ(window.headGrid()->rowCount(), 5);
  EXPECT_EQ(window.headGrid()->columnCount(), 8);
  EXPECT_GT(window.tokenStrip()->count(), 5);
  EXPECT_TRUE(allExact(window.logits()->predictions())) << "no intervention yet: baseline == intervened";
  // The grid is coloured by attention to the first token: a real score in every cell.
  EXPECT_FALSE(std::isnan(window.headGrid()->data(window.headGrid()->index(4, 0), Qt::UserRole).toFloat()));
}

TEST_F(ModelWindowTest, HeatmapDataEqualsTheModelsHookPattern) {
  window.selectHead(4, 3);
  ASSERT_TRUE(QTest::qWaitFor([&] { return window.heatmap()->data().title.startsWith("L4 H3"); }, 10000));
  c10::InferenceMode guard;
  LoadedModel m = loadModel(test::sharedPath("models/stories260k/stories260K.bin"));
  auto ids = m.tokenizer->encode(kPrompt, true);
  at::Tensor pattern;
  auto h = m.model->hooks().add("blocks.4.attn.hook_pattern", [&](at::Tensor& p, const HookContext&) { pattern = p[0][3].clone(); });
  m.model->forward(at::tensor(ids, at::kLong).unsqueeze(0));
  const auto& d = window.heatmap()->data();
  ASSERT_EQ(d.rows, static_cast<int>(ids.size()));
  ASSERT_EQ(d.cols, static_cast<int>(ids.size()));
  at::Tensor shown = at::from_blob(const_cast<float*>(d.values.data()), {d.rows, d.cols}, at::kFloat);
  test::expectTensorClose(shown, pattern, 1e-06);
  EXPECT_FLOAT_EQ(window.heatmap()->cellValue(5, 0), pattern[5][0].item<float>());
}

TEST_F(ModelWindowTest, ClickingAHeadAblatesItAndResetAllRestoresTheBaselineExactly) {
  const auto baseline = window.logits()->predictions();
  QTableView* grid = window.headGridView();
  // Layer 4's heads carry the prediction; ablate three of them with real Alt-clicks.
  for (int head : {0, 1, 2}) {
    QRect cell = grid->visualRect(window.headGrid()->index(4, head));
    QTest::mouseClick(grid->viewport(), Qt::LeftButton, Qt::AltModifier, cell.center());
  }
  EXPECT_EQ(window.headGrid()->editedCount(), 3);
  EXPECT_EQ(window.headGrid()->state(4, 1).ablation, views::AblationKind::Zero);
  ASSERT_TRUE(QTest::qWaitFor([&] { return anyChanged(window.logits()->predictions()); }, 10000))
      << "ablating heads must move the next-token probabilities";
  EXPECT_EQ(window.lastRecomputeFromLayer(), 4) << "only the layers after the edit are recomputed";
  // Exported figures record what they show (issue #19): the model, the prompt and the edits.
  window.selectHead(4, 1);
  ASSERT_TRUE(QTest::qWaitFor([&] { return window.heatmap()->exportMetadata().contains("zero L4H2"); }, 10000));
  EXPECT_TRUE(window.heatmap()->exportMetadata().contains("stories260K.bin")) << window.heatmap()->exportMetadata().toStdString();
  EXPECT_TRUE(window.heatmap()->exportMetadata().contains(QString("prompt: '") + kPrompt + "'"));

  QAction* reset = window.findChild<QAction*>("resetAll");
  ASSERT_NE(reset, nullptr);
  reset->trigger();
  EXPECT_EQ(window.headGrid()->editedCount(), 0);
  ASSERT_TRUE(QTest::qWaitFor([&] { return allExact(window.logits()->predictions()); }, 10000));
  const auto restored = window.logits()->predictions();
  ASSERT_EQ(restored.size(), baseline.size());
  for (size_t i = 0; i < restored.size(); ++i) {
    EXPECT_EQ(restored[i].id, baseline[i].id);
    EXPECT_EQ(restored[i].intervened, baseline[i].baseline);
  }
}

// A plain click selects a head and edits nothing (issue #19: it used to ablate as it selected); the
// toolbar's "click ablates" mode makes a plain click edit.
TEST_F(ModelWindowTest, APlainClickSelectsAndOnlyTheClickAblatesModeEdits) {
  QTableView* grid = window.headGridView();
  auto click = [&](int layer, int head) {
    QTest::mouseClick(grid->viewport(), Qt::LeftButton, {}, grid->visualRect(window.headGrid()->index(layer, head)).center());
  };
  click(3, 2);
  EXPECT_EQ(window.currentLayer(), 3);
  EXPECT_EQ(window.currentHead(), 2);
  EXPECT_EQ(window.headGrid()->editedCount(), 0);
  auto* mode = window.findChild<QCheckBox*>("clickAblates");
  ASSERT_NE(mode, nullptr);
  EXPECT_FALSE(mode->isChecked()) << "clicks select by default";
  mode->setChecked(true);
  click(2, 5);
  EXPECT_EQ(window.headGrid()->state(2, 5).ablation, views::AblationKind::Zero);
  EXPECT_EQ(window.currentLayer(), 2);
  ASSERT_TRUE(QTest::qWaitFor([&] { return window.heatmap()->data().title.startsWith("L2 H5"); }, 10000));
  EXPECT_TRUE(window.heatmap()->data().title.contains("zero on the head's output (pattern unchanged)")) << window.heatmap()->data().title.toStdString();
  click(2, 5);
  EXPECT_EQ(window.headGrid()->editedCount(), 0) << "a second click removes the edit";
}

// PASTA from the window: the tokens selected in the strip are the emphasised keys; the window's run
// equals the core's Pasta intervention (alpha 0.01) on those keys, and a session keeps them.
TEST_F(ModelWindowTest, PastaSteersTheHeadToTheTokensSelectedInTheStrip) {
  auto* kind = window.findChild<QComboBox*>("ablationKind");
  kind->setCurrentIndex(kind->findData(static_cast<int>(views::AblationKind::Pasta)));
  EXPECT_FALSE(window.ablateHead(3, 1)) << "nothing selected in the token strip: nothing to emphasise";
  EXPECT_TRUE(window.statusBar()->currentMessage().contains("token strip"));
  views::TokenStrip* strip = window.tokenStrip();
  auto click = [&](int row, Qt::KeyboardModifiers mods) {
    QTest::mouseClick(strip->viewport(), Qt::LeftButton, mods, strip->visualItemRect(strip->item(row)).center());
  };
  click(2, {});
  click(4, Qt::ShiftModifier);
  ASSERT_EQ(strip->selectedPositions(), (QVector<int>{2, 3, 4}));
  ASSERT_TRUE(window.ablateHead(3, 1));
  EXPECT_EQ(window.headGrid()->state(3, 1).keys, (QVector<int>{2, 3, 4}));
  ASSERT_TRUE(QTest::qWaitFor([&] { return window.heatmap()->data().title.contains("pattern after pasta"); }, 10000))
      << "the map says it draws the steered pattern: " << window.heatmap()->data().title.toStdString();

  QTemporaryDir dir;
  const QString path = dir.filePath("pasta.h5");
  QSignalSpy done(window.session(), &SessionController::traceExported);
  window.exportTrace(path, "blocks.3.attn.hook_pattern");
  ASSERT_TRUE(QTest::qWaitFor([&] { return done.count() == 1; }, 20000)) << window.statusBar()->currentMessage().toStdString();
  TraceReader r(path.toStdString());
  EXPECT_NE(r.file().readString("/interventions").find("\"kind\":\"pasta\""), std::string::npos);
  at::Tensor shown = r.headPattern("blocks.3.attn.hook_pattern", 0, 1);
  {
    c10::InferenceMode guard;
    LoadedModel m = loadModel(test::sharedPath("models/stories260k/stories260K.bin"));
    auto ids = m.tokenizer->encode(kPrompt, true);
    Intervention iv{InterventionKind::Pasta, 3, {1}};
    iv.alpha = 0.01;
    iv.keys = {2, 3, 4};
    auto edit = install(*m.model, iv);
    at::Tensor expected;
    auto h = m.model->hooks().add("blocks.3.attn.hook_pattern", [&](at::Tensor& p, const HookContext&) { expected = p[0][1].clone(); });
    m.model->forward(at::tensor(ids, at::kLong).unsqueeze(0));
    test::expectTensorClose(shown, expected, 1e-6);
    EXPECT_LT(expected[6][0].item<float>(), 0.05f) << "the steered head barely looks outside the emphasised span";
  }
  const QString session = dir.filePath("pasta.headlab.json");
  ASSERT_TRUE(window.saveSession(session));
  MainWindow other;
  other.show();
  other.openSession(session);
  ASSERT_TRUE(QTest::qWaitFor([&] { return other.headGrid()->editedCount() == 1; }, 20000));
  EXPECT_EQ(other.headGrid()->state(3, 1).ablation, views::AblationKind::Pasta);
  EXPECT_EQ(other.headGrid()->state(3, 1).keys, (QVector<int>{2, 3, 4}));
}

// One message per place (issue #19: every failure landed in the Patching dock and stayed there): a
// failed export says so in the status bar only, a failed probe in the probe panel, an empty prompt
// in the prompt dock; the patching panel keeps its own line.
TEST_F(ModelWindowTest, EachFailureIsShownWhereItsJobStarted) {
  auto* promptMessage = window.findChild<QLabel*>("promptMessage");
  ASSERT_NE(promptMessage, nullptr);
  QTemporaryDir dir;
  const QString path = dir.filePath("exists.h5");
  QFile(path).open(QIODevice::WriteOnly);
  QSignalSpy failed(window.session(), &SessionController::failed);
  window.exportTrace(path, "blocks.0.attn.hook_pattern");
  ASSERT_TRUE(QTest::qWaitFor([&] { return failed.count() == 1; }, 10000));
  EXPECT_TRUE(window.statusBar()->currentMessage().contains("exists")) << window.statusBar()->currentMessage().toStdString();
  EXPECT_TRUE(promptMessage->isHidden());
  for (auto* label : window.patchingPanel()->findChildren<QLabel*>()) EXPECT_FALSE(label->text().contains("exists"));

  window.probePanel()->selectProbe("sinks");
  window.probePanel()->setParamsText("{\"T\": \"many\"}");
  emit window.probePanel()->runRequested("sinks", window.probePanel()->paramsText());
  ASSERT_TRUE(QTest::qWaitFor([&] { return failed.count() == 2; }, 20000));
  EXPECT_FALSE(window.probePanel()->running());
  bool inProbePanel = false;
  for (auto* label : window.probePanel()->findChildren<QLabel*>()) inProbePanel |= label->text().startsWith("error");
  EXPECT_TRUE(inProbePanel) << "the probe's error is in the probe panel";
  EXPECT_TRUE(promptMessage->isHidden()) << promptMessage->text().toStdString();
  for (auto* label : window.patchingPanel()->findChildren<QLabel*>()) EXPECT_FALSE(label->text().startsWith("error")) << label->text().toStdString();

  window.runPrompt("");
  EXPECT_FALSE(promptMessage->isHidden());
  EXPECT_TRUE(promptMessage->text().contains("empty prompt"));
  window.runPrompt(kPrompt);
  EXPECT_TRUE(promptMessage->isHidden()) << "the next prompt clears the prompt dock's message";
}

// File ▸ Export HDF5 trace is one dialog (issue #19: a hooks box that looked like a file dialog, then a
// file dialog): the globs show what they match as they are typed, and the size for the prompt.
TEST_F(ModelWindowTest, TraceExportDialogShowsWhatTheHooksMatchAndTheSize) {
  QAction* action = nullptr;
  for (QAction* a : window.findChildren<QAction*>())
    if (a->text().contains("HDF5")) action = a;
  ASSERT_NE(action, nullptr);
  QTimer::singleShot(0, &window, [&] {
    auto* dialog = qobject_cast<TraceExportDialog*>(QApplication::activeModalWidget());
    ASSERT_NE(dialog, nullptr);
    EXPECT_TRUE(dialog->matchLabel()->text().startsWith("matches 5 hook point(s): blocks.0.attn.hook_pattern")) << dialog->matchLabel()->text().toStdString();
    EXPECT_TRUE(QTest::qWaitFor([&] { return dialog->estimateLabel()->text().contains("MB"); }, 10000)) << dialog->estimateLabel()->text().toStdString();
    dialog->setHooks("blocks.9.*");
    EXPECT_TRUE(dialog->matchLabel()->text().contains("matches no hook point"));
    EXPECT_FALSE(dialog->exportButton()->isEnabled());
    dialog->setHooks("blocks.1.hook_resid_post, hook_embed");
    EXPECT_EQ(dialog->matches(), (QStringList{"hook_embed", "blocks.1.hook_resid_post"}));
    dialog->reject();
  });
  action->trigger();
}

// The window's patching on par with the CLI (issue #19): exact and attribution side by side with their
// correlation, path patching, noising, the window's edits applied on request, the window's prompt as
// the clean run, and the setup kept in sessions. Each number is the core's for the same request.
TEST_F(ModelWindowTest, PatchingOffersBothMethodsPathNoisingAndTheWindowsEdits) {
  views::PatchingPanel* panel = window.patchingPanel();
  const QString clean = "Lily had a red ball. Lily gave the ball to", corrupted = "Tim had a red ball. Tim gave the ball to";
  QSignalSpy done(window.session(), &SessionController::patchingFinished);
  QSignalSpy errors(window.session(), &SessionController::failed);
  auto run = [&](views::PatchingRequestView r) {
    const int before = done.count();
    panel->setRequest(r);
    QTest::mouseClick(panel->runButton(), Qt::LeftButton);
    EXPECT_TRUE(QTest::qWaitFor([&] { return done.count() == before + 1; }, 60000)) << window.statusBar()->currentMessage().toStdString()
                                                                                    << " | " << (errors.isEmpty() ? QString() : errors.last()[0].toString()).toStdString();
    return done.count() == before + 1 ? done.last()[2].toString() : QString();
  };
  LoadedModel m = loadModel(test::sharedPath("models/stories260k/stories260K.bin"));  // no InferenceMode: attribution needs gradients
  PatchingRequest core;
  core.clean = m.tokenizer->encode(clean.toStdString(), true), core.corrupted = m.tokenizer->encode(corrupted.toStdString(), true);
  core.answer = resolveSingleToken(*m.tokenizer, " Lily"), core.wrong = resolveSingleToken(*m.tokenizer, " Tim");
  core.sweep = SweepKind::Heads;

  // Both methods: the attribution map beside the exact one, and their correlation.
  QString summary = run({clean, corrupted, " Lily", " Tim", "heads", "both"});
  const PatchingResult exact = patchBatched(*m.model, core), attribution = patchAttribution(*m.model, core);
  const double r = at::corrcoef(at::stack({exact.grid.flatten().to(at::kDouble), attribution.grid.flatten().to(at::kDouble)}))[0][1].item<double>();
  EXPECT_TRUE(summary.contains(QString("Pearson r = %1").arg(r, 0, 'f', 3))) << summary.toStdString() << " vs " << r;
  ASSERT_TRUE(panel->comparison()->isVisible());
  EXPECT_NEAR(panel->comparison()->data().at(4, 1), attribution.grid[4][1].item<float>(), 1e-5);
  EXPECT_NEAR(panel->heatmap()->data().at(4, 1), exact.grid[4][1].item<float>(), 1e-5);

  // Noising.
  run({clean, corrupted, " Lily", " Tim", "heads", "exact", {}, true});
  EXPECT_FALSE(panel->comparison()->isVisible()) << "one method: one map";
  PatchingRequest noising = core;
  noising.direction = PatchDirection::Noising;
  EXPECT_NEAR(panel->heatmap()->data().at(4, 1), patchBatched(*m.model, noising).grid[4][1].item<float>(), 1e-5);

  // Path patching into L3H1's queries: senders in layers 0-2, NaN (not computed) after.
  run({clean, corrupted, " Lily", " Tim", "path", "exact", {}, false, false, "3.1", "q"});
  const PatchingResult path = patchPath(*m.model, core, 3, 1, PathInput::Q);
  EXPECT_NEAR(panel->heatmap()->data().at(1, 2), path.grid[1][2].item<float>(), 1e-5);
  EXPECT_TRUE(std::isnan(panel->heatmap()->data().at(3, 0))) << "the receiver's own layer sends nothing";
  QSignalSpy failed(window.session(), &SessionController::failed);
  panel->setRequest({clean, corrupted, " Lily", " Tim", "path", "exact", {}, false, false, "0.1", "q"});
  QTest::mouseClick(panel->runButton(), Qt::LeftButton);
  ASSERT_TRUE(QTest::qWaitFor([&] { return failed.count() == 1; }, 10000));
  EXPECT_TRUE(failed[0][0].toString().contains("receiver 0.1")) << failed[0][0].toString().toStdString();

  // The window's edits, when asked, are in every run of the sweep.
  window.headGrid()->toggleAblation(2, 3);
  summary = run({clean, corrupted, " Lily", " Tim", "heads", "exact", {}, false, true});
  EXPECT_TRUE(summary.contains("1 head edit(s) are applied")) << summary.toStdString();
  {
    auto edit = install(*m.model, Intervention{InterventionKind::Zero, 2, {3}});
    EXPECT_NEAR(panel->heatmap()->data().at(4, 1), patchBatched(*m.model, core).grid[4][1].item<float>(), 1e-5);
  }

  // The clean row takes the window's prompt; sessions keep the setup.
  panel->findChild<QPushButton*>("patchUseWindowPrompt")->click();
  EXPECT_EQ(panel->request().clean, kPrompt);
  QTemporaryDir dir;
  ASSERT_TRUE(window.saveSession(dir.filePath("s.json")));
  MainWindow other;
  other.openSession(dir.filePath("s.json"));
  EXPECT_EQ(other.patchingPanel()->request().clean, kPrompt);
  EXPECT_TRUE(other.patchingPanel()->request().applyEdits);
  EXPECT_EQ(other.patchingPanel()->request().corrupted, corrupted);
  EXPECT_EQ(other.patchingPanel()->request().sweep, "heads");
}

// Every head grid a probe computes can colour the grid (issue #19: induction's previous- and
// duplicate-token scores were described but could not be chosen).
TEST_F(ModelWindowTest, InductionsPreviousAndDuplicateTokenScoresAreColourings) {
  QSignalSpy done(window.session(), &SessionController::probeFinished);
  window.runProbeOnPrompt("induction");
  ASSERT_TRUE(QTest::qWaitFor([&] { return done.count() == 1; }, 60000));
  const nlohmann::json r = nlohmann::json::parse(done[0][3].toString().toStdString());
  QComboBox* colour = nullptr;
  for (auto* c : window.findChildren<QComboBox*>())
    if (c->findText("induction: previous_token") >= 0) colour = c;
  ASSERT_NE(colour, nullptr) << "previous-token scores in the colour menu";
  EXPECT_GE(colour->findText("induction: duplicate_token"), 0);
  EXPECT_EQ(colour->currentText(), "induction: induction") << "the main grid is shown first";
  colour->setCurrentIndex(colour->findText("induction: previous_token"));
  EXPECT_EQ(window.headGrid()->scores().name, "induction: previous_token");
  EXPECT_FLOAT_EQ(window.headGrid()->scores().values[9], r["previous_token"]["values"][9].get<float>());
}

// The logits panel follows the selected token chip (issues #19, #23: always the last position before):
// its probabilities are the model's at that row, with and without the window's edits.
TEST_F(ModelWindowTest, LogitsFollowTheSelectedTokenChip) {
  window.tokenStrip()->selectPosition(3);
  ASSERT_TRUE(QTest::qWaitFor([&] { return window.logits()->position().contains("(position 3)"); }, 10000)) << window.logits()->position().toStdString();
  LoadedModel m = loadModel(test::sharedPath("models/stories260k/stories260K.bin"));
  const auto ids = m.tokenizer->encode(kPrompt, true);
  at::Tensor probs;
  {
    c10::InferenceMode guard;
    probs = at::softmax(m.model->forward(at::tensor(ids, at::kLong).unsqueeze(0))[0][3], -1);
  }
  const auto& shown = window.logits()->predictions();
  ASSERT_FALSE(shown.empty());
  for (const auto& t : shown) EXPECT_NEAR(t.baseline, probs[t.id].item<float>(), 1e-5) << t.text.toStdString();
  EXPECT_TRUE(allExact(shown));
  window.headGrid()->toggleAblation(1, 2);  // an edit before position 3 changes its predictions
  ASSERT_TRUE(QTest::qWaitFor([&] { return anyChanged(window.logits()->predictions()); }, 10000));
  EXPECT_TRUE(window.logits()->position().contains("(position 3)"));
  window.runPrompt(kPrompt);  // a new prompt: back to the next token after it
  ASSERT_TRUE(QTest::qWaitFor([&] { return !window.logits()->position().contains("(position "); }, 10000));
}

// Model ▸ Check (issue #22): the CLI's faithfulness checks on the window's prompt, listed in the Model
// dock; the same checks and verdicts as the core gives.
TEST_F(ModelWindowTest, ModelCheckListsTheFaithfulnessChecksInTheModelDock) {
  QAction* check = window.findChild<QAction*>("checkModel");
  ASSERT_NE(check, nullptr);
  QSignalSpy ready(window.session(), &SessionController::checksReady);
  check->trigger();
  ASSERT_TRUE(QTest::qWaitFor([&] { return ready.count() == 1; }, 60000)) << window.statusBar()->currentMessage().toStdString();
  LoadedModel m = loadModel(test::sharedPath("models/stories260k/stories260K.bin"));
  std::vector<FaithfulnessCheck> expected;
  {
    c10::InferenceMode guard;
    expected = runFaithfulnessChecks(*m.model, m.tokenizer->encode(kPrompt, true));
  }
  const QStringList lines = ready[0][0].toStringList();
  ASSERT_EQ(lines.size(), static_cast<int>(expected.size()));
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_TRUE(lines[static_cast<int>(i)].startsWith(QString(expected[i].passed ? "ok  " : "FAIL  ") + QString::fromStdString(expected[i].name)))
        << lines[static_cast<int>(i)].toStdString();
  EXPECT_TRUE(ready[0][1].toBool());
  QTreeWidget* tree = window.findChild<QTreeWidget*>();
  ASSERT_NE(tree, nullptr);
  QTreeWidgetItem* checks = nullptr;
  for (int i = 0; i < tree->topLevelItemCount(); ++i)
    if (tree->topLevelItem(i)->text(0) == "checks") checks = tree->topLevelItem(i);
  ASSERT_NE(checks, nullptr);
  EXPECT_TRUE(checks->text(1).startsWith("all passed"));
  EXPECT_EQ(checks->childCount(), lines.size());
}

// The Lens dock (issue #23): the logit lens's last layer is the model's own prediction, hovering a cell
// names its top tokens, a click selects its layer and position; DLA colours the head grid with the
// core's per-head contributions of the top prediction.
TEST_F(ModelWindowTest, LensDockShowsTheLogitLensAndDlaColoursTheGrid) {
  QSignalSpy lensDone(window.session(), &SessionController::lensReady);
  window.findChild<QPushButton*>("runLens")->click();
  ASSERT_TRUE(QTest::qWaitFor([&] { return lensDone.count() == 1; }, 30000)) << window.statusBar()->currentMessage().toStdString();
  const auto& d = window.lensView()->data();
  LoadedModel m = loadModel(test::sharedPath("models/stories260k/stories260K.bin"));
  const auto ids = m.tokenizer->encode(kPrompt, true);
  const int T = static_cast<int>(ids.size());
  ASSERT_EQ(d.rows, 5);
  ASSERT_EQ(d.cols, T);
  at::Tensor probs;
  {
    c10::InferenceMode guard;
    probs = at::softmax(m.model->forward(at::tensor(ids, at::kLong).unsqueeze(0))[0][T - 1], -1);
  }
  EXPECT_NEAR(d.at(4, T - 1), probs.max().item<float>(), 1e-5) << "the last layer's lens is the model's prediction";
  // Its busy message ("logit lens…") leaves the status bar once the lens is shown (issue #19: it stayed).
  EXPECT_FALSE(window.statusBar()->currentMessage().endsWith(QString::fromUtf8("…"))) << window.statusBar()->currentMessage().toStdString();
  const QString top = QString::fromStdString(m.tokenizer->tokenString(probs.argmax().item<int64_t>()));
  EXPECT_TRUE(window.lensView()->tooltipAt(4, T - 1).contains("top: '" + top + "'")) << window.lensView()->tooltipAt(4, T - 1).toStdString();
  emit window.lensView()->cellClicked(2, 3);
  EXPECT_EQ(window.currentLayer(), 2);
  EXPECT_EQ(window.tokenStrip()->selectedPosition(), 3);

  window.runPrompt(kPrompt);  // the logits panel back at the last position
  QSignalSpy dlaDone(window.session(), &SessionController::dlaReady);
  window.findChild<QPushButton*>("runDla")->click();
  ASSERT_TRUE(QTest::qWaitFor([&] { return dlaDone.count() == 1; }, 30000)) << window.statusBar()->currentMessage().toStdString();
  const LogitAttribution a = directLogitAttribution(*m.model, ids, T - 1, probs.argmax().item<int64_t>());
  const auto& shown = window.headGrid()->scores();
  EXPECT_TRUE(shown.name.startsWith("DLA: logit('" + top + "')")) << shown.name.toStdString();
  ASSERT_EQ(shown.values.size(), 40u);
  for (int i = 0; i < 40; ++i) EXPECT_NEAR(shown.values[i], a.heads.flatten()[i].item<double>(), 1e-4);
  EXPECT_TRUE(window.lensSummary()->text().contains(QString("logit('%1') = %2").arg(top).arg(a.logit, 0, 'f', 3))) << window.lensSummary()->text().toStdString();
}

// Once run, the lens follows the window's edits: an ablation reruns it, and its map is then the
// core's lens under the same edit (issue #23).
TEST_F(ModelWindowTest, TheLensFollowsTheWindowsEdits) {
  QSignalSpy lensDone(window.session(), &SessionController::lensReady);
  window.findChild<QPushButton*>("runLens")->click();
  ASSERT_TRUE(QTest::qWaitFor([&] { return lensDone.count() == 1; }, 30000)) << window.statusBar()->currentMessage().toStdString();
  EXPECT_FALSE(window.lensView()->data().title.contains("edits"));
  ASSERT_TRUE(window.ablateHead(1, 2));  // zero-ablate L1H2
  ASSERT_TRUE(QTest::qWaitFor([&] { return lensDone.count() == 2; }, 30000)) << "the lens did not rerun after the edit";
  const auto& d = window.lensView()->data();
  EXPECT_TRUE(d.title.contains("with the window's edits")) << d.title.toStdString();
  LoadedModel m = loadModel(test::sharedPath("models/stories260k/stories260K.bin"));
  const auto ids = m.tokenizer->encode(kPrompt, true);
  LogitLens expected;
  {
    c10::InferenceMode guard;
    Intervention zero;
    zero.kind = InterventionKind::Zero, zero.layer = 1, zero.heads = {2};
    const auto installed = install(*m.model, {zero});
    LensOptions o;
    o.topK = 1;
    expected = logitLens(*m.model, ids, o);
  }
  const int T = static_cast<int>(ids.size());
  ASSERT_EQ(d.rows * d.cols, 5 * T);
  double worst = 0;
  for (int l = 0; l < 5; ++l)
    for (int t = 0; t < T; ++t) worst = std::max(worst, std::abs(d.at(l, t) - expected.topProbs[l][t][0].item<double>()));
  EXPECT_LT(worst, 1e-5) << "the rerun lens is the core's lens under the same edit";
  // The edit changed something the lens shows (a later layer's top probability somewhere).
  LogitLens plain;
  {
    c10::InferenceMode guard;
    LensOptions o;
    o.topK = 1;
    plain = logitLens(*m.model, ids, o);
  }
  EXPECT_GT((plain.topProbs - expected.topProbs).abs().max().item<double>(), 1e-4);
}

TEST_F(ModelWindowTest, TargetTokenIsFollowed) {
  window.logits()->targetEdit()->setText(" the");
  emit window.logits()->targetChanged(" the");
  ASSERT_TRUE(QTest::qWaitFor([&] { return window.logits()->target().id >= 0; }, 10000));
  EXPECT_GT(window.logits()->target().baseline, 0.0f);
}

TEST_F(ModelWindowTest, EmptyPromptIsAClearStatusMessage) {
  window.runPrompt("");
  EXPECT_TRUE(window.statusBar()->currentMessage().contains("empty prompt"));
}

}  // namespace headlab::app

namespace headlab::app {

TEST_F(ModelWindowTest, SinksProbeFromThePanelColoursTheGridWithItsResult) {
  views::ProbePanel* panel = window.probePanel();
  ASSERT_TRUE(QTest::qWaitFor([&] { return panel->currentProbe() == "sinks" || panel->findChild<QComboBox*>("probeCombo")->count() > 0; }, 5000));
  panel->selectProbe("sinks");
  QSignalSpy done(window.session(), &SessionController::probeFinished);
  QTest::mouseClick(panel->runButton(), Qt::LeftButton);
  ASSERT_TRUE(QTest::qWaitFor([&] { return done.count() == 1; }, 30000));
  nlohmann::json result = nlohmann::json::parse(done[0][3].toString().toStdString());
  EXPECT_EQ(result["params"]["eps"], 0.3);
  // By default a probe reads the window's prompt (issue #19: it ran on its built-in set unless the
  // JSON was edited), at its own length.
  EXPECT_EQ(result["params"]["prompts"], nlohmann::json::array({kPrompt})) << result["params"].dump();
  EXPECT_EQ(result["params"]["short_prompts"], "keep");
  const auto& values = result["grid"]["values"];
  for (int l = 0; l < 5; ++l)
    for (int h = 0; h < 8; ++h)
      EXPECT_FLOAT_EQ(window.headGrid()->data(window.headGrid()->index(l, h), Qt::UserRole).toFloat(), values[l * 8 + h].get<float>())
          << "L" << l << "H" << h;
  EXPECT_EQ(panel->table()->rowCount(), 40);
  // The Sink_k curve is drawn from the result, and a table row selects its head everywhere.
  ASSERT_TRUE(QTest::qWaitFor([&] { return panel->curvePlot()->isVisible(); }, 5000));
  EXPECT_EQ(panel->curvePlot()->graph(0)->dataCount(), static_cast<int>(result["sink_k"].size()));
  emit panel->table()->cellClicked(0, 0);
  EXPECT_EQ(window.currentLayer(), panel->table()->item(0, 0)->text().toInt());
  EXPECT_EQ(window.currentHead(), panel->table()->item(0, 1)->text().toInt());
  QTemporaryDir dir;
  ASSERT_TRUE(window.exportProbeResult(dir.filePath("sinks.json")));
  QFile exported(dir.filePath("sinks.json"));
  ASSERT_TRUE(exported.open(QIODevice::ReadOnly));
  EXPECT_EQ(nlohmann::json::parse(exported.readAll().toStdString())["probe"], "sinks");
  EXPECT_TRUE(panel->tableAsTsv().startsWith("layer\thead\tscore\n"));
  EXPECT_FALSE(panel->running());

  // Another prompt marks the result stale; the built-in prompt set is an explicit choice.
  EXPECT_FALSE(panel->stale());
  window.runPrompt("Lily had a red ball.");
  ASSERT_TRUE(QTest::qWaitFor([&] { return panel->stale(); }, 10000));
  panel->setOnWindowPrompt(false);
  QTest::mouseClick(panel->runButton(), Qt::LeftButton);
  ASSERT_TRUE(QTest::qWaitFor([&] { return done.count() == 2; }, 60000));
  result = nlohmann::json::parse(done[1][3].toString().toStdString());
  EXPECT_EQ(result["params"]["prompts"], nlohmann::json::array()) << "the built-in set";
  EXPECT_FALSE(panel->stale()) << "a result of the built-in set does not depend on the window's prompt";
  QSignalSpy ready(window.session(), &SessionController::promptReady);
  window.runPrompt(kPrompt);
  ASSERT_TRUE(QTest::qWaitFor([&] { return ready.count() == 1; }, 10000));
  EXPECT_FALSE(panel->stale());
}

TEST_F(ModelWindowTest, DuoAttentionGateOptimisationRunsOnTheWorker) {
  // The worker runs in inference mode; the gate optimisation needs autograd on the loaded weights.
  QSignalSpy done(window.session(), &SessionController::probeFinished);
  QSignalSpy failed(window.session(), &SessionController::failed);
  window.session()->runProbe("streaming", R"({"optimize_gates": true, "gate_steps": 4, "max_tokens": 32})");
  ASSERT_TRUE(QTest::qWaitFor([&] { return done.count() == 1 || failed.count() > 0; }, 60000));
  ASSERT_EQ(failed.count(), 0) << failed[0][0].toString().toStdString();
  nlohmann::json result = nlohmann::json::parse(done[0][3].toString().toStdString());
  EXPECT_EQ(result["gates"]["grid"]["values"].size(), 5u * 4u) << "one gate per kv head (stories260K: 5 layers x 4)";
}

TEST_F(ModelWindowTest, CancellingALongRetrievalRunKeepsTheWindowResponsive) {
  views::ProbePanel* panel = window.probePanel();
  ASSERT_TRUE(QTest::qWaitFor([&] { return panel->findChild<QComboBox*>("probeCombo")->count() > 0; }, 5000));
  panel->selectProbe("retrieval");
  panel->setParamsText(R"({"lengths": [300, 400, 480], "depths": [0, 25, 50, 75, 100], "max_new_tokens": 30})");
  QSignalSpy progress(window.session(), &SessionController::probeProgress);
  QSignalSpy cancelled(window.session(), &SessionController::probeCancelled);
  QTest::mouseClick(panel->runButton(), Qt::LeftButton);
  ASSERT_TRUE(QTest::qWaitFor([&] { return progress.count() >= 2; }, 20000)) << "the run started";
  // The GUI thread stays free while the worker decodes: a zero timer fires promptly.
  QElapsedTimer t;
  t.start();
  bool fired = false;
  QTimer::singleShot(0, [&] { fired = true; });
  ASSERT_TRUE(QTest::qWaitFor([&] { return fired; }, 1000));
  EXPECT_LT(t.elapsed(), 200);
  QElapsedTimer c;
  c.start();
  QTest::mouseClick(panel->cancelButton(), Qt::LeftButton);
  ASSERT_TRUE(QTest::qWaitFor([&] { return cancelled.count() == 1; }, 5000));
  EXPECT_LT(c.elapsed(), 1000) << "cancel stops the probe within a second";
  EXPECT_FALSE(panel->running());
}

}  // namespace headlab::app

namespace headlab::app {

// ACT from the window: the click kind "ACT sink redistribution" edits the head with ACT as the paper runs
// it (its sinks found on this prompt), and the exported trace records it.
TEST_F(ModelWindowTest, ClickKindActRedistributesTheHeadsSinks) {
  auto* kind = window.findChild<QComboBox*>("ablationKind");
  ASSERT_NE(kind, nullptr);
  const int act = kind->findData(static_cast<int>(views::AblationKind::Act));
  ASSERT_GE(act, 0) << "the click kinds offer ACT";
  kind->setCurrentIndex(act);
  window.headGrid()->toggleAblation(3, 1);
  QTemporaryDir dir;
  const QString path = dir.filePath("act.h5");
  QSignalSpy done(window.session(), &SessionController::traceExported);
  window.exportTrace(path, "blocks.3.attn.hook_pattern");
  ASSERT_TRUE(QTest::qWaitFor([&] { return done.count() == 1; }, 20000)) << window.statusBar()->currentMessage().toStdString();
  TraceReader r(path.toStdString());
  const std::string interventions = r.file().readString("/interventions");
  EXPECT_NE(interventions.find("\"kind\":\"act\""), std::string::npos) << interventions;
  EXPECT_NE(interventions.find("per head, on each input"), std::string::npos) << interventions;
}

TEST_F(ModelWindowTest, ExportedTraceHoldsTheIntervenedRunAndTheReaderAndH5pyReadIt) {
  window.headGrid()->setAblationKind(views::AblationKind::Uniform);
  window.headGrid()->toggleAblation(2, 5);
  QTemporaryDir dir;
  const QString path = dir.filePath("run.h5");
  QSignalSpy done(window.session(), &SessionController::traceExported);
  window.exportTrace(path, "blocks.*.attn.hook_pattern,blocks.4.hook_resid_post");
  ASSERT_TRUE(QTest::qWaitFor([&] { return done.count() == 1; }, 20000)) << window.statusBar()->currentMessage().toStdString();
  TraceReader r(path.toStdString());
  EXPECT_EQ(r.activations().size(), 6u);
  at::Tensor head = r.headPattern("blocks.2.attn.hook_pattern", 0, 5);
  const int64_t T = head.size(0);
  for (int64_t q = 0; q < T; ++q)
    EXPECT_NEAR(head[q][0].item<float>(), 1.0f / (q + 1), 1e-6) << "the uniform-attention ablation is in the trace";
  EXPECT_NE(r.file().readString("/interventions").find("uniform"), std::string::npos);
  // Python's h5py reads it too.
  QProcess py;
  py.start("/usr/bin/python3", {"-c", "import h5py,sys; f=h5py.File(sys.argv[1]); print(f.attrs['schema'], f['activations/blocks.0.attn.hook_pattern'].shape)", path});
  ASSERT_TRUE(py.waitForFinished(30000));
  EXPECT_TRUE(QString::fromUtf8(py.readAllStandardOutput()).startsWith("headlab.trace")) << py.readAllStandardError().toStdString();
  // A second export to the same path is refused: nothing is overwritten without asking.
  QSignalSpy failed(window.session(), &SessionController::failed);
  window.exportTrace(path, "blocks.0.attn.hook_pattern");
  ASSERT_TRUE(QTest::qWaitFor([&] { return failed.count() == 1; }, 10000));
  EXPECT_TRUE(failed[0][0].toString().contains("exists"));
}

TEST_F(ModelWindowTest, SavedSessionReopensToTheSameState) {
  window.headGrid()->toggleAblation(4, 1);
  window.headGrid()->setAlpha(3, 2, 2.5f);
  window.selectHead(3, 2);
  ASSERT_TRUE(QTest::qWaitFor([&] { return window.lastRecomputeFromLayer() == 3; }, 10000));
  const auto edited = window.logits()->predictions();
  QTemporaryDir dir;
  const QString path = dir.filePath("s.headlab.json");
  ASSERT_TRUE(window.saveSession(path));

  MainWindow other;
  other.show();
  other.openSession(path);
  ASSERT_TRUE(QTest::qWaitFor([&] { return other.headGrid()->editedCount() == 2 && other.currentLayer() == 3 && !other.logits()->predictions().empty() &&
                                           other.logits()->predictions()[0].intervened == edited[0].intervened; }, 20000));
  EXPECT_EQ(other.headGrid()->state(4, 1).ablation, views::AblationKind::Zero);
  EXPECT_FLOAT_EQ(other.headGrid()->state(3, 2).alpha, 2.5f);
  EXPECT_EQ(other.currentHead(), 2);
  EXPECT_EQ(other.sessionJson(), window.sessionJson());
}

// A session file with bad edits opens with the good ones applied and every bad one listed (issue #19:
// they used to be dropped, or applied with any α, silently).
TEST_F(ModelWindowTest, ASessionsBadEditsAreRefusedWithTheirReasons) {
  window.headGrid()->toggleAblation(1, 1);
  QTemporaryDir dir;
  const QString path = dir.filePath("s.headlab.json");
  ASSERT_TRUE(window.saveSession(path));
  QFile f(path);
  ASSERT_TRUE(f.open(QIODevice::ReadOnly));
  QJsonObject o = QJsonDocument::fromJson(f.readAll()).object();
  f.close();
  QJsonArray edits = o.value("edits").toArray();
  ASSERT_EQ(edits.size(), 1);
  edits.append(QJsonObject{{"layer", 2}, {"head", 0}, {"ablation", "bogus"}, {"alpha", 1.0}});
  edits.append(QJsonObject{{"layer", 2}, {"head", 1}, {"ablation", "none"}, {"alpha", 1e30}});
  edits.append(QJsonObject{{"layer", 2}, {"head", 2}, {"ablation", "none"}, {"alpha", -5.0}});
  edits.append(QJsonObject{{"layer", 7}, {"head", 99}, {"ablation", "zero"}, {"alpha", 1.0}});
  o["edits"] = edits;
  ASSERT_TRUE(f.open(QIODevice::WriteOnly | QIODevice::Truncate));
  f.write(QJsonDocument(o).toJson());
  f.close();

  MainWindow other;
  other.show();
  other.openSession(path);
  ASSERT_TRUE(QTest::qWaitFor([&] { return other.headGrid()->editedCount() == 1 && other.refusedEdits().size() == 4; }, 20000))
      << other.refusedEdits().join(" | ").toStdString();
  EXPECT_EQ(other.headGrid()->state(1, 1).ablation, views::AblationKind::Zero);
  const QString all = other.refusedEdits().join(" | ");
  EXPECT_TRUE(all.contains("unknown ablation 'bogus'")) << all.toStdString();
  EXPECT_TRUE(all.contains("outside [0, 4]")) << all.toStdString();
  EXPECT_TRUE(all.contains("layer 7, head 99")) << all.toStdString();
  EXPECT_TRUE(other.statusBar()->currentMessage().contains("4 edit(s) refused")) << other.statusBar()->currentMessage().toStdString();
}

}  // namespace headlab::app

namespace headlab::app {

TEST_F(ModelWindowTest, HeadPatchingSweepFromTheDialogLandsInTheGridAndAHeatmap) {
  views::PatchingPanel* panel = window.patchingPanel();
  panel->setRequest({"Lily had a red ball. Lily gave the ball to", "Tim had a red ball. Tim gave the ball to", " Lily", " Tim", "heads", "exact"});
  QSignalSpy done(window.session(), &SessionController::patchingFinished);
  QSignalSpy progress(window.session(), &SessionController::patchingProgress);
  QTest::mouseClick(panel->runButton(), Qt::LeftButton);
  EXPECT_TRUE(panel->cancelButton()->isEnabled()) << "a running sweep can be cancelled";
  ASSERT_TRUE(QTest::qWaitFor([&] { return done.count() == 1; }, 30000)) << window.statusBar()->currentMessage().toStdString();
  const auto& shown = panel->heatmap()->data();
  EXPECT_EQ(shown.rows, 5);
  EXPECT_EQ(shown.cols, 8);
  EXPECT_TRUE(shown.valueLabel.contains("0 corrupt, 1 clean"));
  EXPECT_EQ(shown.scale, views::ColourScale::Diverging) << "patching is signed: a diverging map centred on 0";
  EXPECT_GE(progress.count(), 1) << "the sweep reports its layers";
  EXPECT_FALSE(panel->cancelButton()->isEnabled()) << "nothing to cancel once it has finished";
  // Axis names and labels come from the sweep's layout (not the attention map's "query"/"key").
  EXPECT_EQ(shown.rowName, "layer");
  EXPECT_EQ(shown.colName, "head");
  EXPECT_EQ(shown.rowLabels.front(), "L0");
  EXPECT_EQ(shown.colLabels.back(), "H7");
  for (int l = 0; l < 5; ++l)
    for (int h = 0; h < 8; ++h)
      EXPECT_FLOAT_EQ(window.headGrid()->data(window.headGrid()->index(l, h), Qt::UserRole).toFloat(), shown.at(l, h));

  EXPECT_FALSE(done[0][2].toString().contains("not applied")) << "no edits, nothing to say";
  EXPECT_TRUE(panel->heatmap()->exportMetadata().contains("clean 'Lily had a red ball. Lily gave the ball to'"))
      << panel->heatmap()->exportMetadata().toStdString();
  // With a head edited in the window, the sweep (which patches the unedited model) says so.
  window.headGrid()->setAlpha(3, 2, 2.5f);
  QTest::mouseClick(panel->runButton(), Qt::LeftButton);
  ASSERT_TRUE(QTest::qWaitFor([&] { return done.count() == 2; }, 30000));
  EXPECT_TRUE(done[1][2].toString().contains("head edit(s) are not applied")) << done[1][2].toString().toStdString();
  window.headGrid()->resetAll();

  // A corrupted prompt of another length is a clear message, not a crash.
  QSignalSpy failed(window.session(), &SessionController::failed);
  panel->setRequest({"Lily had a red ball.", "Tim had a big red ball and a cat.", " Lily", " Tim", "resid-pos", "exact"});
  QTest::mouseClick(panel->runButton(), Qt::LeftButton);
  ASSERT_TRUE(QTest::qWaitFor([&] { return failed.count() == 1; }, 10000));
  EXPECT_TRUE(failed[0][0].toString().contains("patching needs equal lengths")) << failed[0][0].toString().toStdString();

  // Opening a model again while the grid is coloured by the patching result (found by the scripted
  // walkthrough: the colour menu's rebuild read a result already dropped, and the window aborted).
  QSignalSpy probed(window.session(), &SessionController::probeFinished);
  window.runProbeOnPrompt("sinks");  // a second result in the colour menu, selected
  ASSERT_TRUE(QTest::qWaitFor([&] { return probed.count() == 1; }, 60000));
  QSignalSpy opened(window.session(), &SessionController::modelOpened);
  window.openModel(QString::fromStdString(test::sharedPath("models/stories260k/stories260K.bin")), kPrompt);
  ASSERT_TRUE(QTest::qWaitFor([&] { return opened.count() == 1; }, 20000));
  ASSERT_TRUE(QTest::qWaitFor([&] { return !window.logits()->predictions().empty(); }, 20000));
}

}  // namespace headlab::app

namespace headlab::app {

// A seeded "monkey": random clicks, wheel turns, head switches, prompts, resets, probe runs and
// cancels for a bounded time. Nothing may crash, and the GUI thread never stalls past 200 ms
// (a 10 ms timer measures the longest gap between its ticks).
TEST_F(ModelWindowTest, MonkeyNeverCrashesAndNeverStallsTheGuiThread) {
  std::mt19937 rng(2026);
  auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
  QElapsedTimer clock;
  clock.start();
  qint64 last = 0, worst = 0;
  QTimer ticker;
  ticker.setInterval(10);
  QObject::connect(&ticker, &QTimer::timeout, [&] {
    const qint64 now = clock.elapsed();
    worst = std::max(worst, now - last);
    last = now;
  });
  ticker.start();
  QTableView* grid = window.headGridView();
  const QStringList prompts = {"Once upon a time", "Lily saw a big dog. The dog", "Tom and Sue went to the park", "The sun"};
  int actions = 0;
  while (clock.elapsed() < 12000) {
    switch (pick(8)) {
      case 0: {
        QRect cell = grid->visualRect(window.headGrid()->index(pick(5), pick(8)));
        QTest::mouseClick(grid->viewport(), Qt::LeftButton, {}, cell.center());
        break;
      }
      case 1: window.headGrid()->setAlpha(pick(5), pick(8), static_cast<float>(pick(17)) / 4.0f); break;
      case 2: window.selectHead(pick(5), pick(8)); break;
      case 3: window.runPrompt(prompts[pick(prompts.size())]); break;
      case 4: window.findChild<QAction*>("resetAll")->trigger(); break;
      case 5: window.tokenStrip()->selectPosition(pick(4)); break;
      case 6: {
        window.probePanel()->selectProbe(pick(2) ? "sinks" : "induction");
        QTest::mouseClick(window.probePanel()->runButton(), Qt::LeftButton);
        break;
      }
      default: QTest::mouseClick(window.probePanel()->cancelButton(), Qt::LeftButton); break;
    }
    ++actions;
    QTest::qWait(pick(30));
  }
  window.session()->waitIdle();
  ticker.stop();
  std::printf("monkey: %d actions in 12 s, longest GUI-thread stall %lld ms\n", actions, static_cast<long long>(worst));
  EXPECT_GT(actions, 100);
  EXPECT_LT(worst, 200) << "the GUI thread stalled";
  EXPECT_FALSE(window.logits()->predictions().empty());
}

}  // namespace headlab::app
