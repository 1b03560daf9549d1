// Instantiates the small-batch GEMV configurations 2, 3 and 5 of LW_GEMV_SMALL_CONFIGS
// (gemv_small_kernel.cuh); split across files so nvcc compiles them in parallel.
#include "kernels/cuda/gemv_small_kernel.cuh"

namespace lw::cuda::small_detail {

LW_GEMV_SMALL_INSTANTIATE(8, 2, 4, 1)
LW_GEMV_SMALL_INSTANTIATE(8, 4, 2, 2)
LW_GEMV_SMALL_INSTANTIATE(8, 4, 4, 2)

}  // namespace lw::cuda::small_detail
