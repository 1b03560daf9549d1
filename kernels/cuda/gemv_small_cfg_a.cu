// Instantiates the small-batch GEMV configurations 0, 1 and 4 of LW_GEMV_SMALL_CONFIGS
// (gemv_small_kernel.cuh); split across files so nvcc compiles them in parallel.
#include "kernels/cuda/gemv_small_kernel.cuh"

namespace lw::cuda::small_detail {

LW_GEMV_SMALL_INSTANTIATE(4, 4, 2, 1)
LW_GEMV_SMALL_INSTANTIATE(4, 4, 4, 1)
LW_GEMV_SMALL_INSTANTIATE(8, 2, 4, 4)

}  // namespace lw::cuda::small_detail
