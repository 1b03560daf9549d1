// Internal to kernels/cuda: the tensor-core instruction the matmul kernels share.
#pragma once

#include <cstdint>

namespace lw::cuda {

// d += a * b for one m16n8k16 tile (f16 inputs, f32 accumulators), PTX register layout:
//   a0/a1: rows g / g+8, k 2t..2t+1;  a2/a3: rows g / g+8, k 2t+8..2t+9
//   b0: k 2t..2t+1, n g;  b1: k 2t+8..2t+9, n g
//   d0,d1: row g, n 2t..2t+1;  d2,d3: row g+8, n 2t..2t+1      (g = lane/4, t = lane%4)
__device__ __forceinline__ void mma_16816(float* d, uint32_t a0, uint32_t a1, uint32_t a2,
                                          uint32_t a3, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

}  // namespace lw::cuda
