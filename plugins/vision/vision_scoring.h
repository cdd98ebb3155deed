// Scoring pieces of the vision probes that tests check on their own.
#pragma once
#include <ATen/Tensor.h>

namespace headlab::plugins {

// VHD's outlier filter (He et al. 2025, Eq. 6): the heads [layer, head] whose VHD and whose text-only
// attention output norm (TA) both exceed their layer's mean + standard deviation (population, over the
// layer's heads). Returns a [layer, head] bool mask of the heads to zero.
at::Tensor vhdOutliers(const at::Tensor& vhd, const at::Tensor& ta);

}  // namespace headlab::plugins
