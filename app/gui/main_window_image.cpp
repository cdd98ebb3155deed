// The window's Image dock (vision-language models): loading an image, the attention overlay on
// its patch grid, "Find vision-aware heads" and the VHR toggle. No torch: the overlay is computed
// from the layer patterns the session already sent.
#include <QCheckBox>
#include <QComboBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QImageReader>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QStatusBar>
#include <QVBoxLayout>

#include "headlab/views/image_attention_view.h"
#include "headlab/views/token_strip.h"
#include "main_window.h"
#include "session_controller.h"

namespace headlab::app {

const char* const kDemoVlmNote = QT_TRANSLATE_NOOP("MainWindow",
    "demo-vlm knows only its training scenes: 16×16 pixels, a 2×2 grid whose cells are empty or hold a red, green or "
    "blue square, cross or circle, and the questions 'what colour / what shape is at top left ?' (top/bottom, "
    "left/right). Other images get answers, but not meaningful ones.");

QImage MainWindow::demoVlmExampleScene(const QColor& square) {
  QImage scene(16, 16, QImage::Format_RGB32);
  scene.fill(Qt::black);
  for (int y = 1; y < 7; ++y)
    for (int x = 1; x < 7; ++x) {
      const double dy = y - 3.5, dx = x - 3.5;
      scene.setPixelColor(x, y, square);                                             // square, top left
      if (y == 3 || y == 4 || x == 3 || x == 4) scene.setPixelColor(8 + x, y, Qt::green);  // cross, top right
      if (dy * dy + dx * dx <= 9.0) scene.setPixelColor(8 + x, 8 + y, Qt::blue);       // circle, bottom right
    }
  return scene;
}

QWidget* MainWindow::buildImagePanel() {
  auto* w = new QWidget;
  auto* layout = new QVBoxLayout(w);
  auto* row = new QHBoxLayout;
  auto* load = new QPushButton(tr("Load image…"));
  load->setObjectName("loadImage");
  connect(load, &QPushButton::clicked, this, [this] {
    QString f = QFileDialog::getOpenFileName(this, tr("Load image"), {}, tr("Images (*.png *.jpg *.jpeg *.bmp *.ppm *.gif *.webp);;All files (*)"));
    if (!f.isEmpty()) loadImage(f);
  });
  m_overlaySource = new QComboBox;
  m_overlaySource->setObjectName("overlaySource");
  m_overlaySource->addItems({tr("selected head"), tr("layer average")});
  m_overlaySource->setToolTip(tr("Whose attention the overlay shows: the selected head, or the mean of the layer's heads"));
  connect(m_overlaySource, &QComboBox::currentIndexChanged, this, [this] { showImageAttention(); });
  row->addWidget(load);
  row->addWidget(m_overlaySource, 1);
  layout->addLayout(row);
  m_imageView = new views::ImageAttentionView;
  layout->addWidget(m_imageView, 1);
  auto* vhrRow = new QHBoxLayout;
  auto* vhd = new QPushButton(tr("Find vision-aware heads"));
  vhd->setObjectName("runVhd");
  vhd->setToolTip(tr("Runs the vhd probe on this prompt and image; the head grid is coloured by VHD"));
  connect(vhd, &QPushButton::clicked, this, [this] {
    if (m_prompt->text().isEmpty()) return statusBar()->showMessage(tr("error: empty prompt: type some text first"));
    runProbeOnPrompt("vhd");
  });
  m_vhr = new QCheckBox(tr("VHR (α = 2)"));
  m_vhr->setObjectName("vhrToggle");
  m_vhr->setToolTip(tr("Reinforce the vision-aware heads (VHR): scale heads above their layer's median VHD by 2; the logits panel shows the effect"));
  connect(m_vhr, &QCheckBox::toggled, this, [this](bool on) { m_session->setVhr(on); });
  vhrRow->addWidget(vhd);
  vhrRow->addWidget(m_vhr);
  layout->addLayout(vhrRow);
  m_imageNote = new QLabel;
  m_imageNote->setObjectName("imageNote");
  m_imageNote->setWordWrap(true);
  m_imageNote->setVisible(false);
  layout->addWidget(m_imageNote);
  m_vhrLabel = new QLabel;
  m_vhrLabel->setWordWrap(true);
  m_vhrLabel->setObjectName("vhrLabel");
  layout->addWidget(m_vhrLabel);
  w->setEnabled(false);  // enabled for vision-language models
  return w;
}

bool MainWindow::isImageFile(const QString& path) {
  const QString suffix = QFileInfo(path).suffix().toLower();
  return QImageReader::supportedImageFormats().contains(suffix.toLatin1()) && suffix != "svg";
}

bool MainWindow::loadImage(const QString& path) {
  QImageReader reader(path);
  reader.setAutoTransform(true);
  QImage image = reader.read();
  if (image.isNull()) {
    statusBar()->showMessage(tr("error: %1: cannot read the image (%2)").arg(path, reader.errorString()));
    return false;
  }
  setImage(image);
  m_imagePath = QFileInfo(path).absoluteFilePath();
  statusBar()->showMessage(tr("image %1 (%2 × %3)").arg(QFileInfo(path).fileName()).arg(image.width()).arg(image.height()));
  return true;
}

void MainWindow::setImage(const QImage& image, bool rerunPrompt) {
  if (!m_vision) {
    statusBar()->showMessage(tr("error: the open model has no vision tower: open a LLaVA folder or demo-vlm to use images"));
    return;
  }
  // What the model sees: CLIP's centre square (the resize keeps the aspect ratio).
  m_imagePath.clear();
  const int side = std::min(image.width(), image.height());
  m_image = image.copy((image.width() - side) / 2, (image.height() - side) / 2, side, side);
  m_imageView->setImage(m_image);
  m_session->setImage(image);
  if (rerunPrompt && !m_prompt->text().isEmpty() && m_session->modelOpen()) runPrompt(m_prompt->text());
}

void MainWindow::setOverlayAverage(bool average) { m_overlaySource->setCurrentIndex(average ? 1 : 0); }

void MainWindow::showImageAttention() {
  if (!m_imageView || m_image.isNull()) return;
  if (!m_imageSpan.valid() || m_layerPatterns.empty()) {
    m_imageView->clearAttention();
    return;
  }
  const auto& first = m_layerPatterns.front();
  if (m_imageSpan.end > first.cols) return;
  // The query: the token selected in the strip, else the last position (the next-token prediction).
  int query = m_tokens->selectedPosition();
  if (query < 0 || query >= first.rows) query = first.rows - 1;
  const bool average = m_overlaySource->currentIndex() == 1;
  const int n = m_imageSpan.side * m_imageSpan.side;
  views::ImageAttention a{m_image, m_imageSpan.side, std::vector<float>(static_cast<size_t>(n), 0.0f), {}};
  std::vector<int> heads;
  if (average) {
    for (int h = 0; h < static_cast<int>(m_layerPatterns.size()); ++h) heads.push_back(h);
  } else if (m_head < static_cast<int>(m_layerPatterns.size())) {
    heads.push_back(m_head);
  }
  if (heads.empty()) return;
  for (int h : heads)
    for (int i = 0; i < n; ++i) a.values[static_cast<size_t>(i)] += m_layerPatterns[h].at(query, m_imageSpan.begin + i) / heads.size();
  float onImage = 0;
  for (float v : a.values) onImage += v;
  const QString who = average ? tr("L%1 mean of %2 heads").arg(m_layer).arg(heads.size()) : tr("L%1 H%2").arg(m_layer).arg(m_head);
  a.caption = tr("%1 · query '%2' (pos %3) · %4 of the row on the image")
                  .arg(who, first.rowLabels.value(query)).arg(query).arg(onImage, 0, 'f', 2);
  m_imageView->setAttention(a);
}

}  // namespace headlab::app
