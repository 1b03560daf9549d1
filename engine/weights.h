// Loading a set of named tensors from a FragmentStore into one backend buffer. Every tensor
// is checked against what the model's hyper-parameters imply (shape -> LW-ARCH-002, a type
// the backend cannot compute with -> LW-GGUF-006, a missing tensor -> LW-FRAG-011) and its
// bytes come from FragmentStore::load_tensor, which verifies size and xxh3-128 against the
// manifest (LW-FRAG-004). Matrices are uploaded in their stored encoding; vectors (norm
// weights) are small and are converted to f32 on upload.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fragments/store.h"
#include "kernels/backend.h"

namespace lw {

class WeightSet {
 public:
  // Declares a matrix of `rows` rows of `cols` values (GGUF ne = [cols, rows]); returns its
  // index for matrix().
  int add_matrix(std::string name, int64_t rows, int64_t cols);
  // Declares a vector of n values (GGUF ne = [n]); returns its index for vector().
  int add_vector(std::string name, int64_t n);

  // Checks every declared tensor against the manifest, then reads, verifies and uploads
  // them. `context` ("layers 0-3", "head") prefixes shape errors.
  void load(FragmentStore& store, Backend& backend, const std::string& context);

  const Weight& matrix(int index) const { return entries_[index].weight; }
  const float* vector(int index) const { return entries_[index].vector; }
  // Device bytes of the matrices (as stored) and of everything (vectors as f32, padding).
  uint64_t matrix_bytes() const { return matrix_bytes_; }
  uint64_t device_bytes() const { return buffer_.size(); }

 private:
  struct Entry {
    std::string name;
    bool is_matrix = true;
    int64_t rows = 0;  // 1 for vectors
    int64_t cols = 0;
    uint64_t offset = 0;  // in buffer_
    Weight weight;
    const float* vector = nullptr;
  };
  std::vector<Entry> entries_;
  DeviceBuffer buffer_;
  uint64_t matrix_bytes_ = 0;
};

}  // namespace lw
