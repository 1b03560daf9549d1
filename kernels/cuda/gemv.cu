#include "kernels/cuda/gemv.h"

#include <algorithm>
#include <mutex>
#include <string>

#include "common/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/dequant.cuh"
#include "kernels/cuda/gemv_small.h"
#include "kernels/cuda/mma.cuh"

namespace lw::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kBlockRows = kWarps * 16;     // a warp owns one 16-row tile
constexpr int kSmemBudget = 96 * 1024;      // staged activations per block (opt-in)
constexpr int kMaxChunkUnits = 64;          // units staged at once (2048 columns)

struct KMat {
  const uint8_t* w;
  int64_t rows;
  int64_t row_bytes;
  float* y;
  int64_t ldy;
  const float* add_in;
  float* add_out;
  int64_t ld_add;
  int64_t partial_off;  // floats into KParams::partial
};

struct KParams {
  KMat m[kGemvMaxGroup];
  int tile_begin[kGemvMaxGroup + 1];
  int n_mat;
  int64_t k;
  int64_t units;     // k / 32
  int ub;            // units per block (multiple of 4)
  int chunk;         // units staged per smem fill (multiple of 4, divides nothing in particular)
  int splits;
  int n_tok;
  const float* x;
  int64_t ldx;
  float* swiglu_out;
  int64_t ld_swiglu;
  float* partial;
  unsigned* counters;
};

__device__ __forceinline__ float silu(float g) { return g / (1.0f + expf(-g)); }

template <GgmlType T, int NT>
__global__ void __launch_bounds__(kThreads) gemv_kernel(const __grid_constant__ KParams p) {
  using U = dq::Unit<T>;
  using Raw = typename U::Raw;
  extern __shared__ __align__(16) uint8_t smem[];
  __shared__ int s_last;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  int mi = 0;
#pragma unroll
  for (int i = 1; i < kGemvMaxGroup; ++i) {
    if (i < p.n_mat && static_cast<int>(blockIdx.x) >= p.tile_begin[i]) mi = i;
  }
  const KMat& M = p.m[mi];
  const int64_t tile = static_cast<int64_t>(blockIdx.x) - p.tile_begin[mi];
  const int split = blockIdx.y;
  const int64_t u0 = static_cast<int64_t>(split) * p.ub;
  const int64_t u_end = min(u0 + p.ub, p.units);
  const dq::WeightView wv{M.w, M.rows, p.k, M.row_bytes};
  const int64_t row0 = tile * kBlockRows + warp * 16;
  const int64_t ra = min(row0 + g, M.rows - 1);
  const int64_t rb = min(row0 + g + 8, M.rows - 1);
  const int tok_stride = p.chunk * 64 + 32;  // bytes; 32 mod 128 keeps tokens off each other's banks
  // Activations are staged as x = hi + lo, two f16 planes (hi = f16(x), lo = f16(x - hi)):
  // the products see x to ~2^-22 relative instead of f16's 2^-11.
  const int lo_plane = p.n_tok * tok_stride;
  const int n_iter = p.ub >> 2;
  const int chunk_iters = p.chunk >> 2;

  float acc[NT][4];
#pragma unroll
  for (int j = 0; j < NT; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;

  // Weight loads run kDepth iterations ahead through a register ring (compile-time indices:
  // the inner loop is unrolled), so each thread keeps 2 * kDepth unit loads in flight.
  constexpr int D = U::kDepth;
  Raw buf_a[D], buf_b[D];
#pragma unroll
  for (int d = 0; d < D; ++d) {
    const int64_t unit = u0 + 4 * d + t;
    if (d < n_iter && unit < u_end) {
      buf_a[d] = U::load(wv, ra, unit);
      buf_b[d] = U::load(wv, rb, unit);
    }
  }

  int c0 = -chunk_iters;  // first iteration of the staged chunk
  for (int it0 = 0; it0 < n_iter; it0 += D) {
#pragma unroll
    for (int d = 0; d < D; ++d) {
      const int it = it0 + d;
      if (it >= n_iter) break;  // uniform across the block
      if (it >= c0 + chunk_iters) {
        // Stage units [u0 + 4*it, + chunk) of every token as f16 quads in unit order.
        c0 = it;
        const int64_t cu0 = u0 + 4 * static_cast<int64_t>(c0);
        if (c0 > 0) __syncthreads();
        const int per_tok = p.chunk * 8;
        for (int task = tid; task < p.n_tok * per_tok; task += kThreads) {
          const int tok = task / per_tok;
          const int rem = task - tok * per_tok;
          const int ul = rem >> 3, q = rem & 7;
          const int64_t unit = cu0 + ul;
          uint2 v = make_uint2(0u, 0u), r = make_uint2(0u, 0u);
          if (unit < u_end) {
            const float4 f = __ldg(reinterpret_cast<const float4*>(
                p.x + tok * p.ldx + unit_quad_col(T, unit, q)));
            const __half2 h0 = __floats2half2_rn(f.x, f.z), h1 = __floats2half2_rn(f.y, f.w);
            const float2 g0 = __half22float2(h0), g1 = __half22float2(h1);
            v.x = dq::bits(h0);
            v.y = dq::bits(h1);
            r.x = dq::bits(__floats2half2_rn(f.x - g0.x, f.z - g0.y));
            r.y = dq::bits(__floats2half2_rn(f.y - g1.x, f.w - g1.y));
          }
          const int slot = (q >> 1) ^ ((ul >> 1) & 3);
          const int off = tok * tok_stride + ul * 64 + slot * 16 + (q & 1) * 8;
          *reinterpret_cast<uint2*>(smem + off) = v;
          *reinterpret_cast<uint2*>(smem + lo_plane + off) = r;
        }
        __syncthreads();
      }

      const int64_t unit = u0 + 4 * static_cast<int64_t>(it) + t;
      const bool valid = unit < u_end;
      uint32_t wa[16], wb[16];
      if (valid) {
        U::dequant_h2(buf_a[d], unit, wa);
        U::dequant_h2(buf_b[d], unit, wb);
      } else {
#pragma unroll
        for (int i = 0; i < 16; ++i) wa[i] = wb[i] = 0u;
      }
      // Refill this slot with the unit kDepth iterations ahead.
      if (it + D < n_iter && unit + 4 * D < u_end) {
        buf_a[d] = U::load(wv, ra, unit + 4 * D);
        buf_b[d] = U::load(wv, rb, unit + 4 * D);
      }
      const int ul = 4 * (it - c0) + t;
      const int swz = (ul >> 1) & 3;
#pragma unroll
      for (int j = 0; j < NT; ++j) {
        const int tok = 8 * j + g;
#pragma unroll
        for (int plane = 0; plane < 2; ++plane) {
          uint32_t bx[16];
          if (valid && tok < p.n_tok) {
            const uint8_t* src = smem + plane * lo_plane + tok * tok_stride + ul * 64;
#pragma unroll
            for (int c = 0; c < 4; ++c) {
              const uint4 v = *reinterpret_cast<const uint4*>(src + ((c ^ swz) << 4));
              bx[4 * c] = v.x;
              bx[4 * c + 1] = v.y;
              bx[4 * c + 2] = v.z;
              bx[4 * c + 3] = v.w;
            }
          } else {
#pragma unroll
            for (int i = 0; i < 16; ++i) bx[i] = 0u;
          }
#pragma unroll
          for (int s = 0; s < 8; ++s) {
            mma_16816(acc[j], wa[2 * s], wb[2 * s], wa[2 * s + 1], wb[2 * s + 1], bx[2 * s],
                      bx[2 * s + 1]);
          }
        }
      }
    }
  }

  // Epilogue. acc[j][e]: row row0 + g + 8*(e/2), token 8j + 2t + (e%2).
  const bool direct = p.splits == 1 && p.swiglu_out == nullptr;
  if (direct) {
#pragma unroll
    for (int j = 0; j < NT; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t row = row0 + g + ((e >> 1) << 3);
        const int tok = 8 * j + 2 * t + (e & 1);
        if (row < M.rows && tok < p.n_tok) {
          const float v = acc[j][e];
          M.y[tok * M.ldy + row] = v;
          if (M.add_out != nullptr) {
            M.add_out[tok * M.ld_add + row] = M.add_in[tok * M.ld_add + row] + v;
          }
        }
      }
    }
    return;
  }

  float* part = p.partial + M.partial_off + static_cast<int64_t>(split) * p.n_tok * M.rows;
#pragma unroll
  for (int j = 0; j < NT; ++j) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t row = row0 + g + ((e >> 1) << 3);
      const int tok = 8 * j + 2 * t + (e & 1);
      if (row < M.rows && tok < p.n_tok) part[tok * M.rows + row] = acc[j][e];
    }
  }
  __threadfence();
  __syncthreads();
  if (tid == 0) {
    const bool pair = p.swiglu_out != nullptr;
    const int64_t counter = pair ? tile : static_cast<int64_t>(blockIdx.x);
    const unsigned arrivals = static_cast<unsigned>(pair ? 2 * p.splits : p.splits);
    const unsigned prev = atomicAdd(&p.counters[counter], 1u);
    s_last = prev == arrivals - 1;
    if (s_last) p.counters[counter] = 0u;  // every arrival is in; ready for the next launch
  }
  __syncthreads();
  if (!s_last) return;
  __threadfence();

  const int64_t r0 = tile * kBlockRows;
  const int nrows = M.rows - r0 < kBlockRows ? static_cast<int>(M.rows - r0) : kBlockRows;
  if (p.swiglu_out != nullptr) {
    const KMat& M0 = p.m[0];
    const KMat& M1 = p.m[1];
    for (int e = tid; e < p.n_tok * kBlockRows; e += kThreads) {
      const int tok = e / kBlockRows, rr = e - tok * kBlockRows;
      if (rr >= nrows) continue;
      const int64_t row = r0 + rr;
      float s0 = 0.0f, s1 = 0.0f;
      for (int s = 0; s < p.splits; ++s) {
        const int64_t off = (static_cast<int64_t>(s) * p.n_tok + tok) * M0.rows + row;
        s0 += __ldcg(p.partial + M0.partial_off + off);
        s1 += __ldcg(p.partial + M1.partial_off + off);
      }
      M0.y[tok * M0.ldy + row] = s0;
      M1.y[tok * M1.ldy + row] = s1;
      p.swiglu_out[tok * p.ld_swiglu + row] = silu(s0) * s1;
    }
    return;
  }
  for (int e = tid; e < p.n_tok * kBlockRows; e += kThreads) {
    const int tok = e / kBlockRows, rr = e - tok * kBlockRows;
    if (rr >= nrows) continue;
    const int64_t row = r0 + rr;
    float v = 0.0f;
    for (int s = 0; s < p.splits; ++s) {
      v += __ldcg(p.partial + M.partial_off + (static_cast<int64_t>(s) * p.n_tok + tok) * M.rows +
                  row);
    }
    M.y[tok * M.ldy + row] = v;
    if (M.add_out != nullptr) M.add_out[tok * M.ld_add + row] = M.add_in[tok * M.ld_add + row] + v;
  }
}

// ---- planning ----

int64_t tiles_of(int64_t rows) { return (rows + kBlockRows - 1) / kBlockRows; }
int round4(int64_t v) { return static_cast<int>((v + 3) / 4 * 4); }

struct Plan {
  int ub = 0, chunk = 0, splits = 1, total_tiles = 0;
  size_t counter_bytes = 0, partial_bytes = 0;
  bool use_partials = false;
  size_t smem = 0;
};

int chunk_units_for(int n_tok) {
  // 2 planes * n_tok * (chunk * 64 + 32) <= budget
  int c = (kSmemBudget / (2 * n_tok) - 32) / 64;
  c = c / 4 * 4;
  return std::max(4, std::min(c, kMaxChunkUnits));
}

Plan make_plan(const GemvMatrix* mats, int n_mats, int64_t k, int n_tok, int sm_count,
               bool swiglu, int forced_splits, size_t ws_limit) {
  Plan pl;
  const int64_t units = k / 32;
  int64_t rows_sum = 0;
  for (int i = 0; i < n_mats; ++i) {
    pl.total_tiles += static_cast<int>(tiles_of(mats[i].rows));
    rows_sum += mats[i].rows;
  }
  pl.counter_bytes = (static_cast<size_t>(pl.total_tiles) * 4 + 255) / 256 * 256;
  auto partial_bytes = [&](int splits) {
    return static_cast<size_t>(splits) * n_tok * rows_sum * sizeof(float);
  };
  int splits;
  if (forced_splits > 0) {
    splits = forced_splits;
  } else {
    // Enough blocks to fill the device (about 8 four-warp blocks per SM), but keep partial
    // sums (written and read once) under ~1/4 of the weight bytes a row streams.
    const int target_blocks = std::max(1, sm_count) * 8;
    splits = static_cast<int>((target_blocks + pl.total_tiles - 1) / pl.total_tiles);
    const int64_t row_bytes = weight_bytes(mats[0].type, 1, k);
    const int64_t traffic_cap = std::max<int64_t>(1, row_bytes / (32 * n_tok));
    splits = static_cast<int>(std::min<int64_t>(splits, traffic_cap));
    // At least 8 units (256 columns) per block unless k is smaller.
    splits = static_cast<int>(std::min<int64_t>(splits, std::max<int64_t>(1, units / 8)));
    // At most 8: measured on an H200 (mistral-7b Q4_K_M decode), a fixed 8 beat this
    // heuristic (11-16 splits) by ~6% twice; 32 lost 10-20%.
    splits = std::min(splits, 8);
  }
  splits = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(splits, (units + 3) / 4)));
  // Shrink splits until the partial sums fit the workspace.
  const bool partials = splits > 1 || swiglu;
  if (partials) {
    while (splits > 1 && pl.counter_bytes + partial_bytes(splits) > ws_limit) --splits;
  }
  pl.ub = round4((units + splits - 1) / splits);
  pl.splits = static_cast<int>((units + pl.ub - 1) / pl.ub);
  pl.use_partials = pl.splits > 1 || swiglu;
  pl.partial_bytes = pl.use_partials ? partial_bytes(pl.splits) : 0;
  pl.chunk = std::min(pl.ub, chunk_units_for(n_tok));
  pl.smem = 2 * static_cast<size_t>(n_tok) * (pl.chunk * 64 + 32);
  return pl;
}

template <GgmlType T, int NT>
void set_smem_limit() {
  LW_CUDA_CHECK(cudaFuncSetAttribute(gemv_kernel<T, NT>,
                                     cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBudget));
}

template <GgmlType T>
void set_smem_limits() {
  set_smem_limit<T, 1>();
  set_smem_limit<T, 2>();
  set_smem_limit<T, 4>();
  set_smem_limit<T, 8>();
}

void init_all() {
  set_smem_limits<GgmlType::Q4_K>();
  set_smem_limits<GgmlType::Q5_K>();
  set_smem_limits<GgmlType::Q6_K>();
  set_smem_limits<GgmlType::Q8_0>();
  set_smem_limits<GgmlType::F16>();
  set_smem_limits<GgmlType::BF16>();
  set_smem_limits<GgmlType::F32>();
}

template <GgmlType T, int NT>
void launch_typed(const KParams& p, const Plan& pl, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(pl.total_tiles), static_cast<unsigned>(pl.splits));
  gemv_kernel<T, NT><<<grid, kThreads, pl.smem, stream>>>(p);
  LW_CUDA_LAUNCH_CHECK("gemv_kernel");
}

template <GgmlType T>
void launch_nt(const KParams& p, const Plan& pl, cudaStream_t stream) {
  if (p.n_tok <= 8) {
    launch_typed<T, 1>(p, pl, stream);
  } else if (p.n_tok <= 16) {
    launch_typed<T, 2>(p, pl, stream);
  } else if (p.n_tok <= 32) {
    launch_typed<T, 4>(p, pl, stream);
  } else {
    launch_typed<T, 8>(p, pl, stream);
  }
}

}  // namespace

void gemv_init() {
  // The opt-in shared-memory limit is per function and per device; set it for every
  // instantiation once per process (a launch captured into a graph must not be the first).
  static std::once_flag once;
  std::call_once(once, init_all);
}

bool gemv_supported(GgmlType type, int64_t k) {
  return device_type_supported(type) && k > 0 && k % 32 == 0 &&
         (type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16 ||
          type == GgmlType::Q8_0 || k % 256 == 0);
}

size_t gemv_workspace_bytes(const GemvMatrix* mats, int n_mats, int64_t k, int n_tok,
                            int sm_count, GemvTuning tuning) {
  const Plan pl = make_plan(mats, n_mats, k, n_tok, sm_count, false, tuning.splits, SIZE_MAX);
  return pl.counter_bytes + pl.partial_bytes;
}

size_t gemv_min_workspace_bytes(const GemvMatrix* mats, int n_mats, int n_tok) {
  int tiles = 0;
  int64_t rows_sum = 0;
  for (int i = 0; i < n_mats; ++i) {
    tiles += static_cast<int>(tiles_of(mats[i].rows));
    rows_sum += mats[i].rows;
  }
  return (static_cast<size_t>(tiles) * 4 + 255) / 256 * 256 +
         static_cast<size_t>(n_tok) * rows_sum * sizeof(float);
}

void gemv(const GemvMatrix* mats, int n_mats, int64_t k, const float* x, int64_t ldx, int n_tok,
          const GemvSwiglu* swiglu, void* workspace, size_t workspace_bytes, int sm_count,
          CudaStream stream, GemvTuning tuning) {
  LW_CHECK(n_mats >= 1 && n_mats <= kGemvMaxGroup, "gemv: n_mats=" + std::to_string(n_mats));
  LW_CHECK(n_tok >= 1 && n_tok <= kGemvMaxTokens, "gemv: n_tok=" + std::to_string(n_tok));
  const GgmlType type = mats[0].type;
  LW_CHECK(gemv_supported(type, k),
           "gemv: type " + type_name(static_cast<uint32_t>(type)) + " k=" + std::to_string(k));
  LW_CHECK(ldx >= k && ldx % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0,
           "gemv: x must be 16-byte aligned with ldx % 4 == 0 (ldx=" + std::to_string(ldx) + ")");
  const bool pair = swiglu != nullptr && swiglu->out != nullptr;
  LW_CHECK(!pair || (n_mats == 2 && mats[0].rows == mats[1].rows),
           "gemv: swiglu needs two matrices of equal rows");
  for (int i = 0; i < n_mats; ++i) {
    LW_CHECK(mats[i].type == type && mats[i].rows >= 1 && mats[i].w != nullptr &&
                 mats[i].y != nullptr && mats[i].ldy >= mats[i].rows,
             "gemv: matrix " + std::to_string(i) + " rows=" + std::to_string(mats[i].rows) +
                 " ldy=" + std::to_string(mats[i].ldy));
    LW_CHECK(mats[i].add_out == nullptr ||
                 (mats[i].add_in != nullptr && mats[i].ld_add >= mats[i].rows),
             "gemv: residual add needs add_in and ld_add >= rows");
  }
  const bool small = tuning.small < 0 ? gemv_small_enabled_by_env() : tuning.small != 0;
  if (small && gemv_small_supported(type, k, n_tok)) {
    gemv_small(mats, n_mats, k, x, ldx, n_tok, swiglu, stream, tuning.small_cfg);
    return;
  }
  const Plan pl = make_plan(mats, n_mats, k, n_tok, sm_count, pair, tuning.splits,
                            workspace_bytes);
  if (pl.use_partials) {
    LW_CHECK(workspace != nullptr && pl.counter_bytes + pl.partial_bytes <= workspace_bytes,
             "gemv: workspace of " + std::to_string(workspace_bytes) + " bytes, need " +
                 std::to_string(pl.counter_bytes + pl.partial_bytes));
  }

  KParams p{};
  int64_t poff = 0;
  int tb = 0;
  for (int i = 0; i < n_mats; ++i) {
    KMat& m = p.m[i];
    m.w = static_cast<const uint8_t*>(mats[i].w);
    m.rows = mats[i].rows;
    m.row_bytes = weight_bytes(type, 1, k);
    m.y = mats[i].y;
    m.ldy = mats[i].ldy;
    m.add_in = mats[i].add_in;
    m.add_out = mats[i].add_out;
    m.ld_add = mats[i].ld_add;
    m.partial_off = poff;
    poff += static_cast<int64_t>(pl.splits) * n_tok * m.rows;
    p.tile_begin[i] = tb;
    tb += static_cast<int>(tiles_of(m.rows));
  }
  for (int i = n_mats; i <= kGemvMaxGroup; ++i) p.tile_begin[i] = tb;
  p.n_mat = n_mats;
  p.k = k;
  p.units = k / 32;
  p.ub = pl.ub;
  p.chunk = pl.chunk;
  p.splits = pl.splits;
  p.n_tok = n_tok;
  p.x = x;
  p.ldx = ldx;
  p.swiglu_out = pair ? swiglu->out : nullptr;
  p.ld_swiglu = pair ? swiglu->ld_out : 0;
  p.counters = static_cast<unsigned*>(workspace);
  p.partial = pl.use_partials
                  ? reinterpret_cast<float*>(static_cast<uint8_t*>(workspace) + pl.counter_bytes)
                  : nullptr;

  gemv_init();
  const cudaStream_t s = to_stream(stream);
  switch (type) {
    case GgmlType::Q4_K: launch_nt<GgmlType::Q4_K>(p, pl, s); break;
    case GgmlType::Q5_K: launch_nt<GgmlType::Q5_K>(p, pl, s); break;
    case GgmlType::Q6_K: launch_nt<GgmlType::Q6_K>(p, pl, s); break;
    case GgmlType::Q8_0: launch_nt<GgmlType::Q8_0>(p, pl, s); break;
    case GgmlType::F16: launch_nt<GgmlType::F16>(p, pl, s); break;
    case GgmlType::BF16: launch_nt<GgmlType::BF16>(p, pl, s); break;
    case GgmlType::F32: launch_nt<GgmlType::F32>(p, pl, s); break;
    default: LW_CHECK(false, "gemv: unsupported type");
  }
}

}  // namespace lw::cuda
