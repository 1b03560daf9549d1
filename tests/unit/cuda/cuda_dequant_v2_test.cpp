// dequantize_f16's two kernels (DequantKernel::kV1, the per-unit scattered stores, and kV2,
// the shared-memory staged coalesced stores) must write identical bytes for every weight
// type, with odd row counts, row offsets, odd output strides and outputs 8- but not
// 16-byte aligned; cells outside the written rows x k window must stay untouched
// (outputs poisoned first).
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "kernels/cuda/gemm.h"
#include "kernels/cuda/weight_layout.h"
#include "tests/unit/cuda/cuda_test_util.h"

namespace lw {
namespace {

struct DequantCase {
  // out_offset in halves: a multiple of 4 (dequantize_f16 requires an 8-byte aligned out).
  int64_t rows, k, r0, n_rows, ldo, out_offset;
};

std::vector<uint16_t> run_dequant(cuda::DequantKernel kernel, GgmlType type,
                                  const cuda::GpuBuffer& wb, const DequantCase& c) {
  const size_t n = static_cast<size_t>(c.out_offset + c.n_rows * c.ldo);
  cuda::GpuBuffer ob(n * 2);
  cuda::dev_fill_bytes(ob.get(), 0xFF, n * 2);  // f16 NaN 0xFFFF everywhere
  cuda::dequantize_f16(type, wb.get(), c.rows, c.k, c.r0, c.n_rows,
                       ob.as<uint16_t>() + c.out_offset, c.ldo, nullptr, kernel);
  cuda::device_synchronize("dequantize_f16");
  std::vector<uint16_t> h(n);
  cuda::copy_to_host(h.data(), ob.get(), n * 2);
  return h;
}

TEST(CudaDequant, V2MatchesV1BitForBit) {
  LW_REQUIRE_GPU();
  cuda::set_device(0);
  const std::vector<DequantCase> cases = {
      {41, 768, 3, 37, 768, 0},      // partial last block, aligned rows
      {41, 768, 0, 41, 773, 0},      // odd ldo: unaligned 16-byte pieces
      {20, 1280, 5, 11, 1288, 4},    // output 8- but not 16-byte aligned
      {300, 256, 7, 257, 256, 0},    // many blocks, block boundaries mid-row
      {3, 4096, 1, 2, 4104, 8},      // one long row per block run
  };
  const std::vector<DequantCase> small_k = {
      {33, 96, 1, 31, 101, 0},  // 3 units per row (not a multiple of 8)
      {9, 32, 2, 7, 40, 8},
  };
  for (GgmlType type : test::all_weight_types()) {
    const bool kquant =
        type == GgmlType::Q4_K || type == GgmlType::Q5_K || type == GgmlType::Q6_K;
    std::vector<DequantCase> all = cases;
    if (!kquant) all.insert(all.end(), small_k.begin(), small_k.end());
    for (const DequantCase& c : all) {
      SCOPED_TRACE(test::type_str(type) + " rows=" + std::to_string(c.rows) +
                   " k=" + std::to_string(c.k) + " r0=" + std::to_string(c.r0) +
                   " n_rows=" + std::to_string(c.n_rows) + " ldo=" + std::to_string(c.ldo) +
                   " offset=" + std::to_string(c.out_offset));
      const std::vector<uint8_t> w = test::random_weights(type, c.rows, c.k, 77);
      std::vector<uint8_t> packed(w.size());
      cuda::repack_weights(type, w.data(), c.rows, c.k, packed.data());
      cuda::GpuBuffer wb(packed.size());
      cuda::copy_to_device(wb.get(), packed.data(), packed.size());
      const std::vector<uint16_t> v1 = run_dequant(cuda::DequantKernel::kV1, type, wb, c);
      const std::vector<uint16_t> v2 = run_dequant(cuda::DequantKernel::kV2, type, wb, c);
      ASSERT_EQ(v1.size(), v2.size());
      int bad = 0;
      for (size_t j = 0; j < v1.size() && bad < 5; ++j) {
        const int64_t cell = static_cast<int64_t>(j) - c.out_offset;
        const bool inside = cell >= 0 && cell % c.ldo < c.k;
        if (v1[j] != v2[j]) {
          ADD_FAILURE() << "cell " << cell << ": v1 0x" << std::hex << v1[j] << " v2 0x"
                        << v2[j] << std::dec;
          ++bad;
        } else if (inside == (v1[j] == 0xFFFFu)) {
          ADD_FAILURE() << "cell " << cell << (inside ? " not written" : " written outside");
          ++bad;
        }
      }
    }
  }
}

}  // namespace
}  // namespace lw
