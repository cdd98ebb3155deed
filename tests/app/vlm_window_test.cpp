// The real window on a vision-language model (the tiny LLaVA of the ReferenceModels fixture):
// an image next to the prompt, its patch grid overlaid with the model's own attention, the head
// grid coloured by VHD, and VHR as a toggle whose effect shows in the logits panel (issue #10).
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <gtest/gtest.h>

#include <QCheckBox>
#include <QDropEvent>
#include <QAction>
#include <QLabel>
#include <QMimeData>
#include <QUrl>
#include <QPushButton>
#include <QSignalSpy>
#include <QStatusBar>
#include <QTemporaryDir>
#include <QTest>
#include <random>

#include "headlab/core/hooked_transformer.h"
#include "headlab/core/trace.h"
#include "headlab/core/tokenizer.h"
#include "headlab/core/vision_language.h"
#include "headlab/plugins/probe_plugin.h"
#include "headlab/views/head_grid_model.h"
#include "headlab/views/heatmap_view.h"
#include "headlab/views/image_attention_view.h"
#include "headlab/views/logits_panel.h"
#include "headlab/views/patching_panel.h"
#include "headlab/views/token_strip.h"
#include "main_window.h"
#include "shared_path.h"
#include "session_controller.h"
#include "tensor_assert.h"

namespace headlab::app {

namespace {
const char* kPrompt = "w5 w7 w9";

// Written by the ReferenceModels fixture (tests/reference/make_reference_models.py).
std::string llavaFolder() { return std::string(HEADLAB_REFERENCE_DIR) + "/llava"; }

// A non-square image of random colours: the window shows (and the model sees) its centre square.
QImage testImage() {
  QImage image(30, 24, QImage::Format_RGB888);
  std::mt19937 rng(7);
  for (int y = 0; y < image.height(); ++y)
    for (int x = 0; x < image.width(); ++x) image.setPixelColor(x, y, QColor(rng() % 256, rng() % 256, rng() % 256));
  return image;
}

bool anyChanged(const std::vector<views::TokenProb>& top) {
  for (const auto& t : top)
    if (std::abs(t.intervened - t.baseline) > 1e-5f) return true;
  return false;
}
bool allExact(const std::vector<views::TokenProb>& top) {
  for (const auto& t : top)
    if (t.intervened != t.baseline) return false;
  return !top.empty();
}

// What the runtime computes for the same image and prompt, outside the window: the pattern of
// `layer` ([head, q, k]), the image span and the VHD probe's grid.
struct Reference {
  at::Tensor pattern;
  VlmInput input;
  nlohmann::json vhd;
};
Reference reference(int layer) {
  c10::InferenceMode guard;
  auto vlm = loadLlava(llavaFolder());
  auto tok = loadTokenizer(llavaFolder());
  const QImage rgb = testImage();
  std::vector<uint8_t> bytes;  // row by row: QImage pads each scan line to 4 bytes
  for (int y = 0; y < rgb.height(); ++y) bytes.insert(bytes.end(), rgb.constScanLine(y), rgb.constScanLine(y) + rgb.width() * 3);
  at::Tensor pixels = clipPreprocess(bytes, rgb.width(), rgb.height(), vlm->visionConfig());
  auto ids = withImagePlaceholder(tok->encode(kPrompt, true), vlm->visionConfig().image_token_id, tok->bos());
  Reference r;
  r.input = vlm->prepare(ids, pixels);
  HookedTransformer& m = vlm->language();
  {
    auto h = m.hooks().add(m.hooks().idOf(layer, LayerHook::Pattern), [&](at::Tensor& p, const HookContext&) { r.pattern = p[0].clone(); });
    vlm->forward(r.input);
  }
  plugins::ProbeContext ctx{m, tok.get(), {{"prompt", kPrompt}}, {}};
  ctx.vlm = vlm.get(), ctx.pixels = &pixels;
  r.vhd = plugins::ProbeRegistry::instance().create("vhd")->run(ctx);
  return r;
}
}  // namespace

class VlmWindowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(QFile::exists(QString::fromStdString(llavaFolder() + "/tokenizer.json"))) << llavaFolder() << ": run the ReferenceModels fixture";
    window.show();
    ASSERT_TRUE(QTest::qWaitForWindowExposed(&window));
    window.openModel(QString::fromStdString(llavaFolder()), kPrompt);
    ASSERT_TRUE(QTest::qWaitFor([&] { return !window.logits()->predictions().empty() && !window.layerPatterns().empty(); }, 20000))
        << "the LLaVA folder did not load and run: " << window.statusBar()->currentMessage().toStdString();
    EXPECT_EQ(window.tokenStrip()->count(), 4) << "no image yet: BOS and three words";
    EXPECT_FALSE(window.imageView()->hasOverlay());
    window.setImage(testImage());
    ASSERT_TRUE(QTest::qWaitFor([&] { return window.imageView()->hasOverlay(); }, 20000))
        << "no overlay after loading the image: " << window.statusBar()->currentMessage().toStdString();
  }
  MainWindow window;
};

TEST_F(VlmWindowTest, OverlayIsTheModelsAttentionFromTheQueryToEachPatch) {
  // BOS, 9 image patches (3 x 3, class token dropped), three words.
  ASSERT_EQ(window.tokenStrip()->count(), 13);
  window.selectHead(1, 2);
  ASSERT_TRUE(QTest::qWaitFor([&] { return window.heatmap()->data().title.startsWith("L1 H2") && window.imageView()->attention().caption.startsWith("L1 H2"); }, 10000));
  Reference ref = reference(1);
  ASSERT_EQ(ref.input.imageBegin, 1);
  ASSERT_EQ(ref.input.imageEnd, 10);
  const auto& a = window.imageView()->attention();
  ASSERT_EQ(a.side, 3);
  ASSERT_EQ(a.values.size(), 9u);
  // Default query: the last position (the next-token prediction).
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(a.values[i], ref.pattern[2][12][1 + i].item<float>(), 1e-5) << "patch " << i;
  EXPECT_EQ(a.image.width(), 24) << "the centre square of the 30 x 24 image";
  // Another query token, chosen in the strip.
  window.tokenStrip()->selectPosition(10);
  ASSERT_TRUE(QTest::qWaitFor([&] { return window.imageView()->attention().caption.contains("pos 10"); }, 5000));
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(window.imageView()->attention().values[i], ref.pattern[2][10][1 + i].item<float>(), 1e-5);
  // The layer's head average.
  window.setOverlayAverage(true);
  ASSERT_TRUE(window.imageView()->attention().caption.contains("mean of"));
  at::Tensor mean = ref.pattern.select(1, 10).mean(0);
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(window.imageView()->attention().values[i], mean[1 + i].item<float>(), 1e-5);
  // The overlay renders: the exported PNG differs from the image alone.
  QTemporaryDir tmp;
  ASSERT_TRUE(window.imageView()->exportTo(tmp.filePath("overlay.png"), 240));
  QImage shown(tmp.filePath("overlay.png"));
  EXPECT_EQ(shown.width(), 240);
}

TEST_F(VlmWindowTest, FindVisionAwareHeadsColoursTheHeadGridByVhd) {
  auto* button = window.findChild<QPushButton*>("runVhd");
  ASSERT_NE(button, nullptr);
  button->click();
  ASSERT_TRUE(QTest::qWaitFor([&] { return window.headGrid()->scores().name == "vhd: vhd"; }, 20000))
      << window.statusBar()->currentMessage().toStdString();
  Reference ref = reference(0);
  const auto& expected = ref.vhd["grid"]["values"];
  const auto& shown = window.headGrid()->scores().values;
  ASSERT_EQ(shown.size(), expected.size());
  for (size_t k = 0; k < shown.size(); ++k) EXPECT_NEAR(shown[k], expected[k].get<double>(), 1e-4 * (1 + std::abs(expected[k].get<double>())));
}

// The look probe's map is shown on the image (issue #19: it was computed and never drawn): the
// overlay holds the result's "map" values.
TEST_F(VlmWindowTest, LookProbeShowsItsMapOnTheImage) {
  QSignalSpy done(window.session(), &SessionController::probeFinished);
  window.runProbeOnPrompt("look");
  ASSERT_TRUE(QTest::qWaitFor([&] { return done.count() == 1; }, 30000)) << window.statusBar()->currentMessage().toStdString();
  const nlohmann::json r = nlohmann::json::parse(done[0][3].toString().toStdString());
  const auto& overlay = window.imageView()->attention();
  EXPECT_TRUE(overlay.caption.startsWith("look: layer")) << overlay.caption.toStdString();
  ASSERT_EQ(overlay.side, r["map"]["side"].get<int>());
  ASSERT_EQ(overlay.values.size(), r["map"]["values"].size());
  for (size_t i = 0; i < overlay.values.size(); ++i) EXPECT_FLOAT_EQ(overlay.values[i], r["map"]["values"][i].get<float>());
}

TEST_F(VlmWindowTest, VhrToggleChangesThePredictionAndOffRestoresIt) {
  ASSERT_TRUE(allExact(window.logits()->predictions()));
  window.vhrToggle()->setChecked(true);
  ASSERT_TRUE(QTest::qWaitFor([&] { return window.vhrLabel()->text().startsWith("VHR: α = 2 on L1 H"); }, 20000)) << window.vhrLabel()->text().toStdString();
  ASSERT_TRUE(QTest::qWaitFor([&] { return anyChanged(window.logits()->predictions()); }, 10000)) << "VHR did not change the logits";
  window.vhrToggle()->setChecked(false);
  ASSERT_TRUE(QTest::qWaitFor([&] { return allExact(window.logits()->predictions()); }, 10000)) << "VHR off did not restore the baseline";
}

TEST_F(VlmWindowTest, ExportsTheImagePromptAsATraceWithTheImage) {
  QSignalSpy written(window.session(), &SessionController::traceExported);
  QTemporaryDir tmp;
  window.exportTrace(tmp.filePath("t.h5"), "blocks.1.attn.hook_pattern");
  ASSERT_TRUE(written.wait(20000)) << window.statusBar()->currentMessage().toStdString();
  TraceReader r(tmp.filePath("t.h5").toStdString());
  EXPECT_EQ(r.tokens().size(), 13u);
  EXPECT_EQ(r.tokenStrings()[1], "img 0,0");
  EXPECT_EQ(r.file().readInts("/inputs/image_span"), (std::vector<int64_t>{1, 10}));
  EXPECT_EQ(r.file().shape("/inputs/image"), (std::vector<uint64_t>{1, 3, 12, 12}));
  // The stored attention is the image run's, not the placeholder tokens'.
  Reference ref = reference(1);
  at::Tensor stored = r.activation("blocks.1.attn.hook_pattern")[0];
  test::expectTensorClose(stored, ref.pattern, 1e-4);
}

TEST_F(VlmWindowTest, ASessionReopensWithItsImageAndVhr) {
  QTemporaryDir tmp;
  testImage().save(tmp.filePath("scene.png"));
  ASSERT_TRUE(window.loadImage(tmp.filePath("scene.png")));
  window.vhrToggle()->setChecked(true);
  ASSERT_TRUE(QTest::qWaitFor([&] { return window.vhrLabel()->text().startsWith("VHR: α"); }, 20000));
  ASSERT_TRUE(window.saveSession(tmp.filePath("s.json")));
  MainWindow other;
  other.show();
  other.openSession(tmp.filePath("s.json"));
  ASSERT_TRUE(QTest::qWaitFor([&] { return other.imageView()->hasOverlay() && other.vhrToggle()->isChecked() && anyChanged(other.logits()->predictions()); }, 30000))
      << other.statusBar()->currentMessage().toStdString();
  EXPECT_EQ(other.tokenStrip()->count(), 13);
  EXPECT_EQ(other.imageView()->attention().image.width(), 24);
}

TEST_F(VlmWindowTest, DroppingAnImageFileLoadsItAsThePromptsImage) {
  QTemporaryDir tmp;
  QImage small(12, 12, QImage::Format_RGB888);
  small.fill(Qt::red);
  small.save(tmp.filePath("red.png"));
  QMimeData mime;
  mime.setUrls({QUrl::fromLocalFile(tmp.filePath("red.png"))});
  QDragEnterEvent enter(QPoint(50, 50), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
  QCoreApplication::sendEvent(&window, &enter);
  EXPECT_TRUE(enter.isAccepted()) << "the window accepts dragged files";
  QDropEvent drop(QPointF(50, 50), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
  QCoreApplication::sendEvent(&window, &drop);
  ASSERT_TRUE(QTest::qWaitFor([&] { return window.imageView()->attention().image.width() == 12 && window.imageView()->hasOverlay(); }, 20000))
      << window.statusBar()->currentMessage().toStdString() << " " << window.imageView()->attention().image.width();
  EXPECT_EQ(window.tokenStrip()->count(), 13);
}

// The Patching dock on an image prompt: the window's image is the clean run, a file the corrupted
// one, the question the same. BOS never sees the image and layer-0 words are token embeddings, so
// restoring them changes nothing; the image positions, labelled by patch, do matter.
TEST_F(VlmWindowTest, PatchingDockPatchesAnotherImageIntoTheWindowsImage) {
  QTemporaryDir tmp;
  QImage other = testImage();
  other.invertPixels();
  ASSERT_TRUE(other.save(tmp.filePath("other.png")));
  views::PatchingPanel* panel = window.patchingPanel();
  QSignalSpy done(window.session(), &SessionController::patchingFinished);
  panel->setRequest({kPrompt, "", "w12", "w14", "resid-pos", "exact", tmp.filePath("other.png")});
  QTest::mouseClick(panel->runButton(), Qt::LeftButton);
  ASSERT_TRUE(QTest::qWaitFor([&] { return done.count() == 1; }, 30000)) << window.statusBar()->currentMessage().toStdString();
  const auto& shown = panel->heatmap()->data();
  ASSERT_EQ(shown.rows, 2);
  ASSERT_EQ(shown.cols, 13);
  EXPECT_EQ(shown.colLabels[1], "img 0,0");
  EXPECT_EQ(shown.colLabels[12], "w9");
  float imageEffect = 0;
  for (int l = 0; l < 2; ++l) EXPECT_NEAR(shown.at(l, 0), 0.0f, 1e-4f) << "layer " << l;
  for (int p = 10; p < 13; ++p) EXPECT_NEAR(shown.at(0, p), 0.0f, 1e-4f) << "pos " << p;
  for (int p = 1; p < 10; ++p) imageEffect = std::max(imageEffect, std::abs(shown.at(0, p)));
  EXPECT_GT(imageEffect, 0.01f);

  QSignalSpy failed(window.session(), &SessionController::failed);
  panel->setRequest({kPrompt, "", "w12", "w14", "resid-pos", "exact", tmp.filePath("missing.png")});
  QTest::mouseClick(panel->runButton(), Qt::LeftButton);
  ASSERT_TRUE(QTest::qWaitFor([&] { return failed.count() == 1; }, 10000));
  EXPECT_TRUE(failed[0][0].toString().contains("missing.png: cannot read the corrupted image")) << failed[0][0].toString().toStdString();
}

TEST(VlmWindowErrors, ImagesOnATextModelAreRefusedWithTheReason) {
  MainWindow window;
  window.show();
  ASSERT_TRUE(QTest::qWaitForWindowExposed(&window));
  QTemporaryDir tmp;
  EXPECT_FALSE(window.loadImage(tmp.filePath("missing.png")));
  EXPECT_TRUE(window.statusBar()->currentMessage().contains("missing.png: cannot read the image")) << window.statusBar()->currentMessage().toStdString();
  window.setImage(testImage());
  EXPECT_TRUE(window.statusBar()->currentMessage().contains("no vision tower")) << window.statusBar()->currentMessage().toStdString();
  EXPECT_TRUE(window.imageView()->attention().empty());
}

// Words outside a word-level vocabulary become <unk>: the prompt dock says which (issue #19: they were
// substituted silently); the next clean prompt clears the message. Load image is offered to
// vision-language models only.
TEST_F(VlmWindowTest, UnknownWordsAreNamedInThePromptDockAndLoadImageFollowsTheModel) {
  auto* message = window.findChild<QLabel*>("promptMessage");
  ASSERT_NE(message, nullptr);
  EXPECT_TRUE(message->isHidden());
  auto* loadImage = window.findChild<QAction*>("loadImageAction");
  ASSERT_NE(loadImage, nullptr);
  EXPECT_TRUE(loadImage->isEnabled()) << "a LLaVA folder takes images";
  window.runPrompt("w5 hello w7 world hello");
  ASSERT_TRUE(QTest::qWaitFor([&] { return !message->isHidden(); }, 20000));
  EXPECT_EQ(message->text(), "warning: 3 token(s) are not in the vocabulary and became <unk>: 'hello', 'world'");
  window.runPrompt("w5 w7 w9");
  ASSERT_TRUE(QTest::qWaitFor([&] { return window.tokenStrip()->count() > 0 && message->isHidden(); }, 20000)) << message->text().toStdString();

  window.openModel(QString::fromStdString(test::sharedPath("models/stories260k/stories260K.bin")), "Once upon a time");
  ASSERT_TRUE(QTest::qWaitFor([&] { return window.currentExamplePrompts().contains("Tom had a red ball. Tom gave the ball to"); }, 20000));
  EXPECT_FALSE(loadImage->isEnabled()) << "a text model takes no image";
}

}  // namespace headlab::app
