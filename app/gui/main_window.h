// The HeadLab window: assembly of docks and views, wired to the session controller. This class
// never touches torch; everything it shows arrives as plain value types.
#pragma once
#include <QImage>
#include <QMainWindow>
#include <vector>

#include "headlab/views/view_data.h"

class QComboBox;
class QDockWidget;
class QGridLayout;
class QLabel;
class QSplitter;
class QLineEdit;
class QSlider;
class QTableView;
class QTreeWidget;
class QCheckBox;
class QProgressDialog;
class QPushButton;
class QAction;

namespace headlab::views {
class HeadGridModel;
class HeatmapView;
class LogitsPanel;
class ProbePanel;
class PatchingPanel;
class TokenStrip;
class ImageAttentionView;
}

namespace headlab::app {

class SessionController;
extern const char* const kDemoVlmNote;  // what demo-vlm understands, shown in the Image dock

class MainWindow : public QMainWindow {
  Q_OBJECT
 public:
  explicit MainWindow(QWidget* parent = nullptr);
  ~MainWindow() override;

  // Opens a model off the GUI thread ("demo" trains the demo model on first use, with a progress
  // dialog); runs `prompt` once it is loaded (when not empty).
  // `image` (vision-language models) becomes the prompt's image before the prompt runs.
  void openModel(const QString& spec, const QString& prompt = {}, const QString& image = {});
  void runPrompt(const QString& prompt);
  void selectHead(int layer, int head);
  // Toggles the toolbar's edit kind on a head (PASTA: on the tokens selected in the token strip) and
  // selects it; false, with the reason in the status bar, when the edit cannot be made.
  bool ablateHead(int layer, int head);
  // Sessions: model, prompt, interventions, selection and probe settings as JSON.
  bool saveSession(const QString& path);
  // The last opened session's edits that were refused (bad kind, α outside [0, 4], a head the model lacks).
  QStringList refusedEdits() const { return m_refusedEdits; }
  void openSession(const QString& path);
  QString sessionJson() const;
  // What every exported figure records: app version, model, prompt (and image), the window's edits.
  QString figureMetadata() const;
  void exportTrace(const QString& path, const QString& hooksGlob, bool force = false);
  // Writes the last probe result as JSON (atomically). Returns false when there is none or on failure.
  bool exportProbeResult(const QString& path);
  // Vision-language models: reads an image file (PNG, JPEG, …) and makes it the prompt's image;
  // the prompt runs again when there is one. False (with the reason in the status bar) when the
  // file cannot be read.
  bool loadImage(const QString& path);
  void setImage(const QImage& image, bool rerunPrompt = true);
  // The overlay's source: the selected head (false) or the average of the layer's heads (true).
  void setOverlayAverage(bool average);
  views::ImageAttentionView* imageView() const { return m_imageView; }
  QCheckBox* vhrToggle() const { return m_vhr; }
  QLabel* vhrLabel() const { return m_vhrLabel; }
  QString promptText() const;
  // The Examples menu's prompts: the demo models' tasks, stories for other models.
  static QStringList examplePrompts(const QString& modelSpec, bool vision);
  QStringList currentExamplePrompts() const;
  // demo-vlm's kind of scene (16 x 16: a red square top left, a green cross top right, a blue circle
  // bottom right), shown when demo-vlm opens without an image.
  static QImage demoVlmExampleScene(const QColor& square = Qt::red);
  // Selects probe `name` in the probe panel, sets its "prompt" parameter (when it has one) to the
  // window's prompt, and runs it.
  void runProbeOnPrompt(const QString& name);
  int currentLayer() const { return m_layer; }
  int currentHead() const { return m_head; }

  QDockWidget* dock(const QString& objectName) const;
  views::HeatmapView* heatmap() const { return m_heatmap; }
  views::HeatmapView* lensView() const { return m_lens; }
  QLabel* lensSummary() const { return m_lensSummary; }
  views::HeadGridModel* headGrid() const { return m_gridModel; }
  QTableView* headGridView() const { return m_gridView; }
  views::LogitsPanel* logits() const { return m_logits; }
  views::TokenStrip* tokenStrip() const { return m_tokens; }
  views::ProbePanel* probePanel() const { return m_probes; }
  views::PatchingPanel* patchingPanel() const { return m_patching; }
  QLabel* runtimeLabel() const { return m_runtime; }
  SessionController* session() const { return m_session; }
  const std::vector<views::HeatmapData>& layerPatterns() const { return m_layerPatterns; }
  int lastRecomputeFromLayer() const { return m_lastFrom; }
  // View ▸ Reset layout: every dock back in its place, shown, and sized for the window's current size
  // (the attention maps get most of the height).
  void resetLayout();

 protected:
  void dragEnterEvent(QDragEnterEvent* e) override;
  void dropEvent(QDropEvent* e) override;
  void closeEvent(QCloseEvent* e) override;
  void showEvent(QShowEvent* e) override;
  bool eventFilter(QObject* watched, QEvent* event) override;

 private:
  QDockWidget* addDock(const QString& objectName, const QString& title, QWidget* content, Qt::DockWidgetArea area);
  QWidget* buildPromptPanel();
  void buildToolbar();
  void buildMenus();
  void startRuntimeCheck();
  void showMemory();
  void connectSession();
  void buildDocks();
  void sizeDocksForWindow();
  void connectViews();
  void showHeadMenu(const QPoint& at);
  void connectProbes();
  void startProbe(const QString& name, const QString& paramsText);
  void markStaleResults();
  int addColouring(const views::HeadScores& grid);
  QWidget* buildLensPanel();
  void connectLens();
  void connectPatching();
  void buildShortcuts();
  void showProbeResult(const QString& name, const views::HeadScores& grid, const QString& summary, const QString& json);
  void showPatchingResult(const views::HeatmapData& grid, const views::HeadScores& heads, const QString& summary);
  void showLoadProgress(double fraction, const QString& stage);
  void showPrompt(const QStringList& pieces, const QVector<int>& ids);
  void setPromptMessage(const QString& text);  // the prompt dock's message line (empty: hidden)
  void setExamplePrompts(const QStringList& prompts);
  void showModel(const views::ModelSummary& s);
  void showLayer(int layer, const std::vector<views::HeatmapData>& heads);
  void showCurrentHead();
  void pushEdits();
  void applyScoreChoice();
  void addRecent(const QString& spec);
  void refreshRecentMenu();
  void exportHeatmap();
  QWidget* buildImagePanel();
  void showImageAttention();
  static bool isImageFile(const QString& path);

  SessionController* m_session = nullptr;
  views::HeatmapView* m_heatmap = nullptr;
  QWidget* m_multiples = nullptr;
  QGridLayout* m_multiplesLayout = nullptr;
  std::vector<views::HeatmapView*> m_multipleViews;
  views::HeadGridModel* m_gridModel = nullptr;
  QTableView* m_gridView = nullptr;
  views::LogitsPanel* m_logits = nullptr;
  views::TokenStrip* m_tokens = nullptr;
  views::ProbePanel* m_probes = nullptr;
  views::PatchingPanel* m_patching = nullptr;
  std::vector<views::HeadScores> m_probeScores;  // extra colourings, after the two built-in ones
  std::vector<views::HeadScores> m_extraGrids;   // the running probe's other grids, until its result
  QLineEdit* m_prompt = nullptr;
  QTreeWidget* m_modelTree = nullptr;
  QLabel* m_runtime = nullptr;
  QLabel* m_recompute = nullptr;
  QLabel* m_memory = nullptr;
  QComboBox* m_kind = nullptr;
  QCheckBox* m_clickAblates = nullptr;
  QLabel* m_promptMessage = nullptr;
  QStringList m_hookNames;  // the open model's hook points, in forward order
  views::HeatmapView* m_lens = nullptr;  // the Lens dock's layer x position map
  QLabel* m_lensSummary = nullptr;
  // Once run, the lens follows the window: it reruns after every edit or prompt (without raising
  // its dock); a newly opened model stops it until it is run again.
  bool m_lensLive = false, m_lensQuiet = false;
  struct ProbeInput {
    QString model, prompt;  // prompt: empty when the probe used its own inputs
    qint64 image = 0;       // QImage::cacheKey of the window's image then
  } m_probeInput;           // what the shown probe result was computed on
  QString m_patchingModel;  // the model the shown patching sweep ran on  // the open model's hook points, in forward order
  QPushButton* m_examples = nullptr;
  QAction* m_loadImageAction = nullptr;
  QLabel* m_imageNote = nullptr;
  bool m_exportPending = false;  // a trace export is queued: its failure goes to the status bar only
  Qt::KeyboardModifiers m_gridClickModifiers;  // of the last press on the head grid
  QComboBox* m_score = nullptr;
  QSlider* m_alpha = nullptr;
  QCheckBox* m_log = nullptr;
  QMenu* m_recentMenu = nullptr;
  QProgressDialog* m_progress = nullptr;
  views::ImageAttentionView* m_imageView = nullptr;
  QComboBox* m_overlaySource = nullptr;
  QCheckBox* m_vhr = nullptr;
  QLabel* m_vhrLabel = nullptr;
  QImage m_image;  // the square the model sees (centre crop of the loaded image)
  views::ImageSpan m_imageSpan;
  bool m_vision = false;
  QByteArray m_defaultDockState;   // the docks as built, for Reset layout
  bool m_sizeDocksOnShow = false;  // no saved layout: size the docks once the window has its size
  QSplitter* m_centre = nullptr;   // the selected head over the small multiples

  int m_layer = 0, m_head = 0, m_layers = 0, m_heads = 0;
  std::vector<views::HeatmapData> m_layerPatterns;
  views::HeadScores m_firstToken, m_entropy;
  QString m_pendingPrompt;
  QString m_pendingImage;
  QString m_imagePath;      // the loaded image's file, for sessions (empty when set from code)
  bool m_pendingVhr = false;
  int m_lastFrom = -1;
  QString m_modelSpec;
  QString m_lastProbeJson;  // the last probe result, as the CLI prints it
  std::vector<views::HeadEdit> m_pendingEdits;  // a reopened session's edits, applied once its prompt has run
  QStringList m_refusedEdits;                   // the reopened session's edits that could not be applied, and why
  bool m_reportRefused = false;                 // say so once, when the session's prompt has run
  int m_pendingLayer = -1, m_pendingHead = -1;
};

}  // namespace headlab::app
