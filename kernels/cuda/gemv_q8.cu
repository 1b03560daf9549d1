#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "common/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/env_switch.h"
#include "kernels/cuda/gemv_q8.h"
#include "kernels/cuda/gemv_q8_kernel.cuh"
#include "kernels/cuda/gemv_q8_mma.cuh"
#include "kernels/cuda/gemv_q8_mma_launch.h"

namespace lw::cuda {
namespace {

using q8k::gemv_q8_kernel;
using q8k::gemv_q8_pair_kernel;
using q8k::kThreads;
using q8k::kWarps;
using q8k::Params;
using q8k::WMat;

// Resident blocks per SM of `kernel` with `smem` bytes of dynamic shared memory (asked once per
// kernel and size; the query is not a stream operation, so it is safe during graph capture).
// Keyed by the kernel's address: every instantiation has the same function type.
template <typename K>
int blocks_per_sm(K kernel, size_t smem) {
  static std::mutex mu;
  static std::map<std::pair<const void*, size_t>, int> cache;
  std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_pair(reinterpret_cast<const void*>(kernel), smem);
  auto it = cache.find(key);
  if (it == cache.end()) {
    int n = 0;
    LW_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kThreads, smem));
    it = cache.emplace(key, std::max(1, n)).first;
  }
  return it->second;
}

template <GgmlType T, int NT, int R>
void launch(const Params& p, int sm_count, size_t smem, cudaStream_t s) {
  const auto kernel = gemv_q8_kernel<T, NT, R>;
  const int64_t want = (p.n_groups + kWarps - 1) / kWarps;
  const int64_t cap = static_cast<int64_t>(sm_count) * blocks_per_sm(kernel, smem);
  kernel<<<static_cast<unsigned>(std::min(want, cap)), kThreads, smem, s>>>(p);
  LW_CUDA_LAUNCH_CHECK("gemv_q8_kernel");
}

// The resident blocks go to the two parts in proportion to their weight bytes.
template <GgmlType TA, GgmlType TB, int NT, int R>
void launch_pair(const Params& pa, const Params& pb, int64_t bytes_a, int64_t bytes_b, int sm_count,
                 size_t smem, cudaStream_t s) {
  const auto kernel = gemv_q8_pair_kernel<TA, TB, NT, R>;
  const int64_t want_a = (pa.n_groups + kWarps - 1) / kWarps;
  const int64_t want_b = (pb.n_groups + kWarps - 1) / kWarps;
  const int64_t cap = static_cast<int64_t>(sm_count) * blocks_per_sm(kernel, smem);
  int64_t blocks_a = want_a, blocks_b = want_b;
  if (want_a + want_b > cap) {
    const double share = static_cast<double>(bytes_a) / static_cast<double>(bytes_a + bytes_b);
    blocks_a = std::clamp<int64_t>(static_cast<int64_t>(share * static_cast<double>(cap) + 0.5), 1,
                                   std::min(want_a, cap - 1));
    blocks_b = std::clamp<int64_t>(cap - blocks_a, 1, want_b);
  }
  kernel<<<static_cast<unsigned>(blocks_a + blocks_b), kThreads, smem, s>>>(
      pa, pb, static_cast<unsigned>(blocks_a));
  LW_CUDA_LAUNCH_CHECK("gemv_q8_pair_kernel");
}

template <int R>
void launch_pair_nt(const Params& pa, const Params& pb, int64_t bytes_a, int64_t bytes_b,
                    int sm_count, size_t smem, cudaStream_t s) {
  constexpr GgmlType A = GgmlType::Q4_K, B = GgmlType::Q6_K;
  if (pa.n_tok == 1) {
    launch_pair<A, B, 1, R>(pa, pb, bytes_a, bytes_b, sm_count, smem, s);
  } else if (pa.n_tok == 2) {
    launch_pair<A, B, 2, R>(pa, pb, bytes_a, bytes_b, sm_count, smem, s);
  } else if (pa.n_tok <= 4) {
    launch_pair<A, B, 4, R>(pa, pb, bytes_a, bytes_b, sm_count, smem, s);
  } else {
    launch_pair<A, B, 8, R>(pa, pb, bytes_a, bytes_b, sm_count, smem, s);
  }
}

template <GgmlType T, int R>
void launch_nt(const Params& p, int sm_count, size_t smem, cudaStream_t s) {
  if (p.n_tok == 1) {
    launch<T, 1, R>(p, sm_count, smem, s);
  } else if (p.n_tok == 2) {
    launch<T, 2, R>(p, sm_count, smem, s);
  } else if (p.n_tok <= 4) {
    launch<T, 4, R>(p, sm_count, smem, s);
  } else {
    launch<T, 8, R>(p, sm_count, smem, s);
  }
}

template <int R>
void launch_type(GgmlType type, const Params& p, int sm_count, size_t smem, cudaStream_t s) {
  switch (type) {
    case GgmlType::Q4_K:
      launch_nt<GgmlType::Q4_K, R>(p, sm_count, smem, s);
      break;
    case GgmlType::Q5_K:
      launch_nt<GgmlType::Q5_K, R>(p, sm_count, smem, s);
      break;
    case GgmlType::Q6_K:
      launch_nt<GgmlType::Q6_K, R>(p, sm_count, smem, s);
      break;
    case GgmlType::Q8_0:
      launch_nt<GgmlType::Q8_0, R>(p, sm_count, smem, s);
      break;
    default:
      LW_CHECK(false, "gemv_q8: unsupported type");
      break;
  }
}

}  // namespace

namespace {

bool mma_type(GgmlType type) { return type == GgmlType::Q4_K || type == GgmlType::Q6_K; }

// LW_CUDA_GEMV_MMA: 0 = never tensor cores, 1 = for more than kGemvQ8MaxTokens tokens
// (default: one token measured faster on dp4a), 2 = for every Q4_K / Q6_K call.
int mma_mode() {
  static const int mode =
      parse_env_choice("LW_CUDA_GEMV_MMA", std::getenv("LW_CUDA_GEMV_MMA"), 1, {0, 1, 2});
  return mode;
}

// Whether the tensor-core kernel may run this type at all, and whether it runs this call.
bool mma_allowed(GgmlType type, GemvQ8Kernel kernel) {
  if (!mma_type(type)) return false;
  return kernel == GemvQ8Kernel::kMma || (kernel == GemvQ8Kernel::kAuto && mma_mode() != 0);
}
bool use_mma(GgmlType type, GemvQ8Kernel kernel, int n_tok) {
  if (!mma_allowed(type, kernel)) return false;
  return kernel == GemvQ8Kernel::kMma || mma_mode() == 2 || n_tok > kGemvQ8MaxTokens;
}

// Rows of the first type's matrices and of the rest.
std::pair<int64_t, int64_t> part_rows(const GemvMatrix* mats, int n_mats) {
  int64_t a = 0, b = 0;
  for (int i = 0; i < n_mats; ++i) (mats[i].type == mats[0].type && b == 0 ? a : b) += mats[i].rows;
  return {a, b};
}

// Quantizes n_tok rows into the dp4a kernel's format (workspace), one 256-column chunk per
// warp.
__global__ void __launch_bounds__(kThreads)
    quantize_kernel(const float* x, int64_t ldx, int64_t k, int n_tok, uint8_t* out,
                    int64_t stride) {
  const int64_t w = (static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x) >> 5;
  q8k::quant_tokens(x, ldx, k, n_tok, out, stride, w, static_cast<int64_t>(gridDim.x) * kWarps,
                    threadIdx.x & 31);
}

}  // namespace

int gemv_q8_max_tokens(GgmlType type, GemvQ8Kernel kernel) {
  return mma_allowed(type, kernel) ? kGemvQ8MmaMaxTokens : kGemvQ8MaxTokens;
}

bool gemv_q8_supported(GgmlType type, int64_t k, int n_tok, GemvQ8Kernel kernel) {
  if (n_tok < 1 || n_tok > gemv_q8_max_tokens(type, kernel) || k <= 0) return false;
  if (kernel == GemvQ8Kernel::kMma && !mma_type(type)) return false;
  if (type == GgmlType::Q4_K || type == GgmlType::Q5_K || type == GgmlType::Q6_K) {
    return k % 256 == 0;
  }
  return type == GgmlType::Q8_0 && k % 32 == 0;
}

int64_t gemv_q8_act_stride(int64_t k) { return (2 * k + k / 8 + k / 4 + 15) / 16 * 16; }

size_t gemv_q8_workspace_bytes(const GemvMatrix* mats, int n_mats, int64_t k, int n_tok,
                               int sm_count, GemvQ8Kernel kernel) {
  if (use_mma(mats[0].type, kernel, n_tok)) {
    const auto [a, b] = part_rows(mats, n_mats);
    return static_cast<size_t>(mma_plan(a, b, k, n_tok, sm_count).total);
  }
  const int64_t bytes = n_tok * gemv_q8_act_stride(k);
  return bytes <= static_cast<int64_t>(kGemvQ8StageBytes) ? 0 : static_cast<size_t>(bytes);
}

bool gemv_q8_can_fuse_norm(GgmlType type, int64_t k, int n_tok, GemvQ8Kernel kernel) {
  if (!gemv_q8_supported(type, k, n_tok, kernel)) return false;
  // Tensor cores: the quantize launch normalizes; dp4a: the blocks' shared-memory staging.
  return use_mma(type, kernel, n_tok) ||
         (n_tok <= kGemvQ8MaxTokens &&
          n_tok * gemv_q8_act_stride(k) <= static_cast<int64_t>(kGemvQ8StageBytes));
}

void quantize_act_q8(const float* x, int64_t ldx, int64_t k, int n_tok, void* out,
                     CudaStream stream) {
  LW_CHECK(k > 0 && k % 32 == 0 && n_tok >= 1 && ldx >= k && ldx % 4 == 0 &&
               reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
               reinterpret_cast<uintptr_t>(out) % 16 == 0,
           "quantize_act_q8: k=" + std::to_string(k) + " ldx=" + std::to_string(ldx) +
               " n_tok=" + std::to_string(n_tok));
  const int64_t chunks = static_cast<int64_t>(n_tok) * ((k + 255) / 256);
  const unsigned blocks =
      static_cast<unsigned>(std::min<int64_t>((chunks + kWarps - 1) / kWarps, 4096));
  quantize_kernel<<<blocks, kThreads, 0, to_stream(stream)>>>(
      x, ldx, k, n_tok, static_cast<uint8_t*>(out), gemv_q8_act_stride(k));
  LW_CUDA_LAUNCH_CHECK("quantize_kernel");
}

bool gemv_q8_pair_supported(GgmlType a, GgmlType b, int64_t k, int n_tok, GemvQ8Kernel kernel) {
  // Both parts on the same kind of kernel (the pair launches share one).
  return a == GgmlType::Q4_K && b == GgmlType::Q6_K && gemv_q8_supported(a, k, n_tok, kernel) &&
         gemv_q8_supported(b, k, n_tok, kernel) &&
         use_mma(a, kernel, n_tok) == use_mma(b, kernel, n_tok);
}

namespace {

// The matrices [first, first + count) of p as a launch of their own (row groups of R rows).
Params part_of(const Params& p, int first, int count, GgmlType type, int R, bool pair) {
  Params q = p;
  int64_t rb = 0;
  for (int i = 0; i < kGemvMaxGroup; ++i) {
    if (i < count) {
      q.m[i] = p.m[first + i];
      q.row_begin[i] = rb;
      rb += q.m[i].rows;
    } else {
      q.m[i] = WMat{};
    }
  }
  for (int i = count; i <= kGemvMaxGroup; ++i) q.row_begin[i] = rb;
  q.n_mat = count;
  q.n_slots = type == GgmlType::Q8_0 ? p.k / 16 : p.k / 32;
  q.n_groups = pair ? (rb / 2 + R / 2 - 1) / (R / 2) : (rb + R - 1) / R;
  return q;
}

}  // namespace

void gemv_q8(const GemvMatrix* mats, int n_mats, int64_t k, const float* x, int64_t ldx, int n_tok,
             const GemvSwiglu* swiglu, void* workspace, size_t workspace_bytes, int sm_count,
             CudaStream stream, const GemvQ8Options& opt) {
  const GgmlType type = mats[0].type;
  const GemvQ8Norm* norm = opt.norm;
  LW_CHECK(n_mats >= 1 && n_mats <= kGemvMaxGroup && gemv_q8_supported(type, k, n_tok, opt.kernel),
           "gemv_q8: type " + type_name(static_cast<uint32_t>(type)) + " k=" + std::to_string(k) +
               " n_tok=" + std::to_string(n_tok) + " n_mats=" + std::to_string(n_mats));
  LW_CHECK(
      ldx >= k && ldx % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0,
      "gemv_q8: x must be 16-byte aligned with ldx % 4 == 0 (ldx=" + std::to_string(ldx) + ")");
  const bool pair = swiglu != nullptr && swiglu->out != nullptr;
  LW_CHECK(!pair || (n_mats == 2 && mats[0].rows == mats[1].rows && mats[1].type == type),
           "gemv_q8: swiglu needs two matrices of equal rows and type");
  // The matrices of the first type, then (optionally) those of a second one.
  int n_a = 1;
  while (n_a < n_mats && mats[n_a].type == type) ++n_a;
  const GgmlType type_b = n_a < n_mats ? mats[n_a].type : type;
  LW_CHECK(n_a == n_mats || gemv_q8_pair_supported(type, type_b, k, n_tok, opt.kernel),
           "gemv_q8: a group of " + type_name(static_cast<uint32_t>(type)) + " and " +
               type_name(static_cast<uint32_t>(type_b)) + " is not supported");
  Params p{};
  int64_t rb = 0, bytes_a = 0, bytes_b = 0;
  for (int i = 0; i < n_mats; ++i) {
    LW_CHECK(mats[i].type == (i < n_a ? type : type_b) && mats[i].rows >= 1 &&
                 mats[i].w != nullptr && mats[i].y != nullptr && mats[i].ldy >= mats[i].rows &&
                 (mats[i].add_out == nullptr ||
                  (mats[i].add_in != nullptr && mats[i].ld_add >= mats[i].rows)),
             "gemv_q8: matrix " + std::to_string(i));
    WMat& m = p.m[i];
    m.w = static_cast<const uint8_t*>(mats[i].w);
    m.rows = mats[i].rows;
    m.y = mats[i].y;
    m.ldy = mats[i].ldy;
    m.add_in = mats[i].add_in;
    m.add_out = mats[i].add_out;
    m.ld_add = mats[i].ld_add;
    p.row_begin[i] = rb;
    rb += m.rows;
    (i < n_a ? bytes_a : bytes_b) += weight_bytes(mats[i].type, mats[i].rows, k);
  }
  for (int i = n_mats; i <= kGemvMaxGroup; ++i) p.row_begin[i] = rb;
  p.n_mat = n_mats;
  p.k = k;
  p.n_tok = n_tok;
  p.x = x;
  p.ldx = ldx;
  p.stride = gemv_q8_act_stride(k);
  if (norm != nullptr && norm->weight != nullptr) {
    LW_CHECK(gemv_q8_can_fuse_norm(type, k, n_tok, opt.kernel) &&
                 reinterpret_cast<uintptr_t>(norm->weight) % 16 == 0 &&
                 (norm->out == nullptr || reinterpret_cast<uintptr_t>(norm->out) % 16 == 0),
             "gemv_q8: RMSNorm fusion needs staged activations and 16-byte aligned rows (k=" +
                 std::to_string(k) + " n_tok=" + std::to_string(n_tok) + ")");
    p.norm_w = norm->weight;
    p.norm_eps = norm->eps;
    p.norm_out = norm->out;
  }
  p.swiglu_out = pair ? swiglu->out : nullptr;
  p.ld_swiglu = pair ? swiglu->ld_out : 0;

  // 0 = not set: 4 rows per warp for 1-2 tokens (measured: 242 vs 232 tok/s tg128 with 2)
  // unless that leaves fewer than 8 warps per SM (ncu: the 4096-row down projection ran 7.7
  // warps per SM at R = 4), 2 for more tokens (their sums need the registers).
  static const int env_rows =
      parse_env_choice("LW_CUDA_GEMV_Q8_ROWS", std::getenv("LW_CUDA_GEMV_Q8_ROWS"), 0, {2, 4});
  const int64_t rows4 = pair ? (rb / 2 + 1) / 2 : (rb + 3) / 4;
  const bool mma = use_mma(type, opt.kernel, n_tok);
  const int R = mma                                                           ? q8m::kRows
                : opt.rows_per_warp != 0                                      ? opt.rows_per_warp
                : env_rows != 0                                               ? env_rows
                : (n_tok <= 2 && rows4 >= static_cast<int64_t>(sm_count) * 8) ? 4
                                                                              : 2;
  LW_CHECK(mma || R == 2 || R == 4, "gemv_q8: rows_per_warp " + std::to_string(R));

  const cudaStream_t s = to_stream(stream);
  size_t smem = 0;
  const size_t need = gemv_q8_workspace_bytes(mats, n_mats, k, n_tok, sm_count, opt.kernel);
  const auto [rows_a, rows_b] = part_rows(mats, n_mats);
  const MmaPlan plan = mma ? mma_plan(rows_a, rows_b, k, n_tok, sm_count) : MmaPlan{};
  if (need == 0) {
    smem = static_cast<size_t>(n_tok * p.stride);
  } else {
    LW_CHECK(workspace != nullptr && workspace_bytes >= need &&
                 reinterpret_cast<uintptr_t>(workspace) % 256 == 0,
             "gemv_q8: workspace of " + std::to_string(workspace_bytes) +
                 " bytes (256-byte aligned), need " + std::to_string(need));
    uint8_t* act = static_cast<uint8_t*>(workspace) + plan.act_off;
    if (mma) {
      p.stride = gemv_q8_sb_stride(k);
      quantize_act_q8_sb(x, ldx, k, n_tok, act, stream, norm);
    } else {
      quantize_act_q8(x, ldx, k, n_tok, act, stream);
    }
    p.xq = act;
  }
  uint8_t* ws = static_cast<uint8_t*>(workspace);
  if (n_a < n_mats) {
    const Params pa = part_of(p, 0, n_a, type, R, false);
    Params pb = part_of(p, n_a, n_mats - n_a, type_b, R, false);
    pb.norm_out = nullptr;  // the first part stores the normalized rows
    if (mma) {
      launch_mma(type, pa, &pb, plan, ws, s);
    } else if (R == 2) {
      launch_pair_nt<2>(pa, pb, bytes_a, bytes_b, sm_count, smem, s);
    } else {
      launch_pair_nt<4>(pa, pb, bytes_a, bytes_b, sm_count, smem, s);
    }
    return;
  }
  p = part_of(p, 0, n_mats, type, R, pair);
  if (mma) {
    launch_mma(type, p, nullptr, plan, ws, s);
  } else if (R == 2) {
    launch_type<2>(type, p, sm_count, smem, s);
  } else {
    launch_type<4>(type, p, sm_count, smem, s);
  }
}

}  // namespace lw::cuda
