#include "kernels/cuda/weight_layout.h"

#include <cstring>
#include <string>

#include "common/error.h"

namespace lw::cuda {

int64_t weight_bytes(GgmlType type, int64_t rows, int64_t k) {
  uint64_t row = 0;
  LW_CHECK(row_size(type, static_cast<uint64_t>(k), &row),
           "weight_bytes: k=" + std::to_string(k) + " invalid for " + type_name(uint32_t(type)));
  return static_cast<int64_t>(row) * rows;
}

namespace {

void check_args(GgmlType type, int64_t rows, int64_t k) {
  LW_CHECK(device_type_supported(type),
           "repack_weights: unsupported type " + type_name(static_cast<uint32_t>(type)));
  uint64_t row = 0;
  LW_CHECK(rows >= 0 && k > 0 && row_size(type, static_cast<uint64_t>(k), &row),
           "repack_weights: rows=" + std::to_string(rows) + " k=" + std::to_string(k) +
               " for " + type_name(static_cast<uint32_t>(type)));
}

}  // namespace

void repack_weights(GgmlType type, const void* src, int64_t rows, int64_t k, void* dst) {
  check_args(type, rows, k);
  const auto* in = static_cast<const uint8_t*>(src);
  auto* out = static_cast<uint8_t*>(dst);
  if (type == GgmlType::Q8_0) {
    const int64_t nb = k / kQK8_0;
    int8_t* qs = reinterpret_cast<int8_t*>(out);
    uint8_t* d = out + rows * k;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t b = 0; b < nb; ++b) {
        BlockQ8_0 blk;
        std::memcpy(&blk, in + (r * nb + b) * sizeof(BlockQ8_0), sizeof(blk));
        std::memcpy(qs + r * k + b * kQK8_0, blk.qs, kQK8_0);
        std::memcpy(d + (r * nb + b) * 2, &blk.d, 2);
      }
    }
    return;
  }
  if (type == GgmlType::Q6_K) {
    const int64_t blocks = rows * (k / kQK_K);
    const Q6kOffsets off = q6k_offsets(rows, k);
    for (int64_t b = 0; b < blocks; ++b) {
      BlockQ6_K blk;
      std::memcpy(&blk, in + b * sizeof(BlockQ6_K), sizeof(blk));
      std::memcpy(out + off.ql + b * 128, blk.ql, 128);
      std::memcpy(out + off.qh + b * 64, blk.qh, 64);
      std::memcpy(out + off.scales + b * 16, blk.scales, 16);
      std::memcpy(out + off.d + b * 2, &blk.d, 2);
    }
    return;
  }
  std::memcpy(out, in, static_cast<size_t>(weight_bytes(type, rows, k)));
}

void unpack_weights(GgmlType type, const void* src, int64_t rows, int64_t k, void* dst) {
  check_args(type, rows, k);
  const auto* in = static_cast<const uint8_t*>(src);
  auto* out = static_cast<uint8_t*>(dst);
  if (type == GgmlType::Q8_0) {
    const int64_t nb = k / kQK8_0;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t b = 0; b < nb; ++b) {
        BlockQ8_0 blk;
        std::memcpy(blk.qs, in + r * k + b * kQK8_0, kQK8_0);
        std::memcpy(&blk.d, in + rows * k + (r * nb + b) * 2, 2);
        std::memcpy(out + (r * nb + b) * sizeof(BlockQ8_0), &blk, sizeof(blk));
      }
    }
    return;
  }
  if (type == GgmlType::Q6_K) {
    const int64_t blocks = rows * (k / kQK_K);
    const Q6kOffsets off = q6k_offsets(rows, k);
    for (int64_t b = 0; b < blocks; ++b) {
      BlockQ6_K blk;
      std::memcpy(blk.ql, in + off.ql + b * 128, 128);
      std::memcpy(blk.qh, in + off.qh + b * 64, 64);
      std::memcpy(blk.scales, in + off.scales + b * 16, 16);
      std::memcpy(&blk.d, in + off.d + b * 2, 2);
      std::memcpy(out + b * sizeof(BlockQ6_K), &blk, sizeof(blk));
    }
    return;
  }
  std::memcpy(out, in, static_cast<size_t>(weight_bytes(type, rows, k)));
}

}  // namespace lw::cuda
