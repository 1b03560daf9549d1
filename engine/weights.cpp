#include "engine/weights.h"

#include <sstream>
#include <utility>

#include "common/error.h"
#include "common/file_util.h"

namespace lw {

namespace {

constexpr uint64_t kWeightAlign = 256;

std::string shape_text(const std::vector<uint64_t>& ne) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < ne.size(); ++i) out << (i ? ", " : "") << ne[i];
  out << "]";
  return out.str();
}

// The manifest's dims with trailing 1s beyond the expected rank removed.
std::vector<uint64_t> trimmed(std::vector<uint64_t> ne, size_t rank) {
  while (ne.size() > rank && ne.back() == 1) ne.pop_back();
  return ne;
}

}  // namespace

int WeightSet::add_matrix(std::string name, int64_t rows, int64_t cols) {
  Entry e;
  e.name = std::move(name);
  e.is_matrix = true;
  e.rows = rows;
  e.cols = cols;
  entries_.push_back(std::move(e));
  return static_cast<int>(entries_.size()) - 1;
}

int WeightSet::add_vector(std::string name, int64_t n) {
  Entry e;
  e.name = std::move(name);
  e.is_matrix = false;
  e.rows = 1;
  e.cols = n;
  entries_.push_back(std::move(e));
  return static_cast<int>(entries_.size()) - 1;
}

void WeightSet::load(FragmentStore& store, Backend& backend, const std::string& context) {
  // Pass 1: check every tensor against the model and plan the buffer.
  uint64_t total = 0;
  matrix_bytes_ = 0;
  for (Entry& e : entries_) {
    const ManifestTensor& mt = store.tensor(e.name);
    const std::vector<uint64_t> want =
        e.is_matrix
            ? std::vector<uint64_t>{static_cast<uint64_t>(e.cols), static_cast<uint64_t>(e.rows)}
            : std::vector<uint64_t>{static_cast<uint64_t>(e.cols)};
    if (trimmed(mt.ne, want.size()) != want) {
      throw Error(ErrorCode::kArchShape,
                  context + ": tensor " + e.name + " has shape " + shape_text(mt.ne) +
                      " but the model's hyper-parameters imply " + shape_text(want));
    }
    const TypeTraits* traits = type_traits(static_cast<uint32_t>(mt.type));
    const bool usable = traits != nullptr && traits->supported &&
                        (e.is_matrix ? backend.supports(mt.type)
                                     : (mt.type == GgmlType::F32 || mt.type == GgmlType::F16 ||
                                        mt.type == GgmlType::BF16));
    if (!usable) {
      throw Error(ErrorCode::kGgufTensorType,
                  context + ": tensor " + e.name + " has type " +
                      type_name(static_cast<uint32_t>(mt.type)) + ", which the " + backend.name() +
                      " backend cannot use for a " + (e.is_matrix ? "matrix" : "norm vector"));
    }
    uint64_t row_bytes = 0, bytes = 0;
    if (!row_size(mt.type, static_cast<uint64_t>(e.cols), &row_bytes) ||
        !checked_mul(row_bytes, static_cast<uint64_t>(e.rows), &bytes) || bytes != mt.size) {
      throw Error(ErrorCode::kArchShape,
                  context + ": tensor " + e.name + " of type " +
                      type_name(static_cast<uint32_t>(mt.type)) + " and shape " +
                      shape_text(mt.ne) + " has " + std::to_string(mt.size) +
                      " bytes in the manifest, expected " + std::to_string(bytes));
    }
    e.weight = Weight{mt.type, e.rows, e.cols, nullptr, bytes};
    const uint64_t device_size = e.is_matrix ? backend.weight_device_bytes(mt.type, e.rows, e.cols)
                                             : static_cast<uint64_t>(e.cols) * 4;
    e.offset = align_up(total, kWeightAlign);
    total = e.offset + device_size;
    if (e.is_matrix) matrix_bytes_ += bytes;
  }
  // Pass 2: read (verified by the store) and upload.
  buffer_ = backend.alloc(total);
  std::vector<float> f32;
  for (Entry& e : entries_) {
    std::span<const uint8_t> bytes = store.load_tensor(e.name);
    if (bytes.size() != e.weight.bytes) {
      throw Error(ErrorCode::kFragSize, context + ": tensor " + e.name + " read " +
                                            std::to_string(bytes.size()) + " bytes, expected " +
                                            std::to_string(e.weight.bytes));
    }
    if (e.is_matrix) {
      e.weight =
          backend.upload_weight(buffer_, e.offset, e.weight.type, e.rows, e.cols, bytes.data());
    } else {
      f32.resize(static_cast<size_t>(e.cols));
      dequantize_row(e.weight.type, bytes.data(), f32.data(), e.cols);
      backend.upload(buffer_, e.offset, f32.data(), f32.size() * sizeof(float));
      e.vector = buffer_.as<float>(e.offset);
      e.weight.data = e.vector;
    }
  }
}

}  // namespace lw
