// The demo report (headlab-cli demo): PNG heatmaps drawn with QImage and an HTML page.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace headlab::cli {

// Draws a [rows, cols] grid with viridis colours, row/column labels and a title. Returns false on failure.
bool writeHeatmapPng(const std::string& path, const std::string& title, int rows, int cols, const std::vector<double>& values,
                     const std::vector<std::string>& rowLabels, const std::vector<std::string>& colLabels);
// A line plot (e.g. the loss curve or Sink_k over key positions).
bool writeLinePng(const std::string& path, const std::string& title, const std::vector<double>& xs, const std::vector<double>& ys,
                  const std::string& xLabel, const std::string& yLabel);

// An RGB image (row-major, 3 bytes per pixel, values 0..255) beside the same image under a
// semi-transparent viridis overlay of a side x side attention map (row-major over the patch grid).
bool writeAttentionOverlayPng(const std::string& path, const std::string& title, const std::vector<uint8_t>& rgb, int width, int height,
                              const std::vector<double>& map, int side);

}  // namespace headlab::cli
