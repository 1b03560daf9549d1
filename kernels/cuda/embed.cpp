#include "kernels/cuda/embed.h"

#include "kernels/cuda/gemm.h"

namespace lw::cuda {

void embed_rows(GgmlType type, const void* table, int64_t rows, int64_t cols,
                const int32_t* tokens, int64_t n_tok, float* out, CudaStream stream) {
  dequantize_f32(type, table, rows, cols, tokens, 0, n_tok, out, cols, stream);
}

}  // namespace lw::cuda
