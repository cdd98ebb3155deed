// The one progress callback of every long operation (loading, demo training, patching sweeps,
// captures, probes): the fraction done in [0, 1] and a short stage text. Returning false asks the
// operation to stop; it then throws CancelledError at its next step.
#pragma once
#include <functional>
#include <string>

namespace headlab {

using Progress = std::function<bool(double fraction, const std::string& stage)>;

}  // namespace headlab
