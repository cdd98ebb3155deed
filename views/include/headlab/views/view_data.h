// Plain value types the views draw. Built by app/ from tensors; views never see torch.
#pragma once
#include <QString>
#include <QStringList>
#include <QVector>
#include <vector>

namespace headlab::views {

// A [rows, cols] matrix of weights with labels, row-major.
// How values map to colours: sequential (viridis: attention, scores in [0, 1]) or diverging
// (ColorBrewer's RdBu, white at 0 in the middle of a range symmetric about 0: signed results such as
// patching, where red is below 0 and blue above).
enum class ColourScale { Sequential, Diverging };

struct HeatmapData {
  int rows = 0;
  int cols = 0;
  std::vector<float> values;  // rows * cols
  QStringList rowLabels;      // query tokens
  QStringList colLabels;      // key tokens
  QString title;
  float minValue = 0.0f, maxValue = 1.0f;  // colour range (attention: 0..1); Diverging widens it to [-m, m]
  ColourScale scale = ColourScale::Sequential;
  QString valueLabel = "attention";
  QString rowName = "query", colName = "key";
  QStringList cellTexts;  // optional, rows * cols: more about each cell for its tooltip (the lens's top tokens)
  float at(int r, int c) const { return values[static_cast<size_t>(r) * cols + c]; }
  bool empty() const { return rows == 0 || cols == 0; }
};

// One score per (layer, head), row-major [layers, heads]; NaN = not computed.
struct HeadScores {
  int layers = 0;
  int heads = 0;
  std::vector<float> values;
  QString name;        // "attention to first token", "entropy", ...
  float threshold = 0; // drawn in the legend when > 0
};

// Act: ACT's sink redistribution (the head's sinks found on each input, beta 0.4).
// Pasta: PASTA's steering (scores of every key outside `keys` += log 0.01).
enum class AblationKind { None, Zero, Mean, Uniform, Act, Pasta };
inline constexpr AblationKind kAblationKinds[] = {AblationKind::None, AblationKind::Zero, AblationKind::Mean,
                                                  AblationKind::Uniform, AblationKind::Act, AblationKind::Pasta};

struct HeadState {
  AblationKind ablation = AblationKind::None;
  float alpha = 1.0f;  // reweight factor, 0..4
  QVector<int> keys;   // Pasta: the emphasised prompt positions, ascending
  bool edited() const { return ablation != AblationKind::None || alpha != 1.0f; }
};

struct TokenProb {
  int id = -1;
  QString text;
  float baseline = 0;    // probability without interventions
  float intervened = 0;  // with the current interventions
};

QString ablationName(AblationKind k);
// Ascending positions as ranges: {3, 4, 5, 9} -> "3-5+9" (the CLI's --edit keys= form).
QString positionList(const QVector<int>& positions);

// What the window shows about an open model.
struct ModelSummary {
  QString source;
  QString format;
  QString configJson;     // pretty-printed config
  QStringList hookNames;  // every hook point, in forward order
  int layers = 0;
  int heads = 0;
  int kvHeads = 0;
  int imageSize = 0;  // vision-language models: the tower's input side in pixels (0 = text model)
  int patchSide = 0;  // patches per side of the image grid
  QString device;     // where the decoder runs and in what dtype, e.g. "cpu, float32"
};

// Where an image prompt's patches sit: positions [begin, end) hold the side x side patches, row-major.
struct ImageSpan {
  int begin = -1, end = -1, side = 0;
  bool valid() const { return begin >= 0 && side > 0 && end - begin == side * side; }
};

// One head's edit as the grid holds it.
struct HeadEdit {
  int layer = 0;
  int head = 0;
  HeadState state;
};

}  // namespace headlab::views
