// Named tensors in the formats notebooks exchange: safetensors (with string metadata in its header)
// and numpy's npz (a stored zip of .npy files). Written atomically: a temporary file beside the
// target, renamed into place when complete; an existing target is kept unless `force`.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <string>

namespace headlab {

// float32 little-endian tensors; metadata goes into the header's "__metadata__" (string to string).
void writeSafetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata, bool force);
// One <name>.npy per tensor (float32) and, when metadataJson is not empty, __metadata__.npy holding it
// as a 0-d unicode string (np.load(f)["__metadata__"].item() gives the JSON text). Up to 4 GiB in all
// (no zip64): larger captures are refused with a message pointing to HDF5.
void writeNpz(const std::string& path, const std::map<std::string, at::Tensor>& tensors, const std::string& metadataJson, bool force);

}  // namespace headlab
