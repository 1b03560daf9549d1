#include "kernels/cuda/attention_flash.h"

#include <cuda_fp16.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/env_switch.h"
#include "kernels/cuda/warp.cuh"
#include "kernels/cuda/mma.cuh"

namespace lw::cuda {
namespace {

constexpr int kRows = 64;              // query tokens per CTA
constexpr int kKeys = 64;              // keys per K/V tile
constexpr int kThreads = 128;          // 4 warps x 16 query rows
constexpr int kWarps = kThreads / 32;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kHalfSafe = 60000.0f;  // |scaled q| above this could round to f16 infinity

std::atomic<uint64_t> g_launches{0};

struct FlashParams {
  KvLayerView kv;
  const int32_t* positions;
  const int32_t* table_offsets;
  const int32_t* block_tables;
  const float* q;
  float* out;
  int n_tokens;
  int n_heads;
  int group;         // query heads per KV head
  float scale_log2;  // scale * log2(e): scores live in the exp2 domain
};

__device__ __forceinline__ int64_t kv_off(const KvLayerView& kv, int64_t block, int64_t head,
                                          int64_t slot) {
  return ((block * kv.n_kv_heads + head) * kv.block_size + slot) * kv.head_dim;
}

__device__ __forceinline__ uint32_t h2_bits(__half2 h) {
  uint32_t r;
  memcpy(&r, &h, sizeof(r));
  return r;
}

// (a, b) = hi + lo with hi, lo f16 pairs (a in the low half, as mma's k index 2t).
__device__ __forceinline__ void split2(float a, float b, uint32_t* hi, uint32_t* lo) {
  const __half2 h = __floats2half2_rn(a, b);
  const float2 hf = __half22float2(h);
  *hi = h2_bits(h);
  *lo = h2_bits(__floats2half2_rn(a - hf.x, b - hf.y));
}

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
__device__ __forceinline__ void cp_async_wait_1() {
  asm volatile("cp.async.wait_group 1;\n" ::: "memory");
}

// Four 8x8 b16 matrices, transposed: lanes 8i..8i+7 give the row addresses of matrix i;
// r[i] of lane (g = lane/4, t = lane%4) = (M_i[2t][g], M_i[2t+1][g]).
__device__ __forceinline__ void ldsm_x4_trans(uint32_t* r, const __half* smem) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}

__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// Keys j0..j0+kKeys-1 of KV head kvh into ks / vs ([kKeys][HD + 8] halfs); keys >= j_end
// (beyond the tile's last position: their table entries may not exist) are zero-filled.
template <int HD>
__device__ __forceinline__ void load_kv_tile(const FlashParams& p, const int32_t* table, int kvh,
                                             int j0, int j_end, __half* ks, __half* vs) {
  constexpr int kChunks = HD / 8;  // 16-byte pieces per row
  constexpr int kStride = HD + 8;
  const __half* kbase = reinterpret_cast<const __half*>(p.kv.k);
  const __half* vbase = reinterpret_cast<const __half*>(p.kv.v);
  const int bs = p.kv.block_size;
#pragma unroll
  for (int c = threadIdx.x; c < kKeys * kChunks; c += kThreads) {
    const int r = c / kChunks, part = c % kChunks;
    const int j = j0 + r;
    __half* kd = ks + r * kStride + part * 8;
    __half* vd = vs + r * kStride + part * 8;
    if (j < j_end) {
      const int64_t off = kv_off(p.kv, table[j / bs], kvh, j % bs) + part * 8;
      cp_async16(kd, kbase + off);
      cp_async16(vd, vbase + off);
    } else {
      *reinterpret_cast<uint4*>(kd) = make_uint4(0u, 0u, 0u, 0u);
      *reinterpret_cast<uint4*>(vd) = make_uint4(0u, 0u, 0u, 0u);
    }
  }
}

// Correct, slow path for a tile whose tokens are not one session's consecutive positions:
// one warp per token, lanes over head_dim, online softmax in f32, each token through its
// own block table.
template <int HD>
__device__ void scalar_tile(const FlashParams& p, int t0, int len, int h, int kvh) {
  constexpr int kPer = HD / 32;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const __half* kbase = reinterpret_cast<const __half*>(p.kv.k);
  const __half* vbase = reinterpret_cast<const __half*>(p.kv.v);
  const int bs = p.kv.block_size;
  for (int r = warp; r < len; r += kWarps) {
    const int64_t tok = t0 + r;
    const float* qr = p.q + (tok * p.n_heads + h) * HD;
    float qv[kPer], acc[kPer];
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      qv[i] = qr[lane + 32 * i] * p.scale_log2;
      acc[i] = 0.0f;
    }
    const int32_t* table = p.block_tables + p.table_offsets[tok];
    const int last = p.positions[tok];
    float m = -INFINITY, l = 0.0f;
    for (int j = 0; j <= last; ++j) {
      const int64_t off = kv_off(p.kv, table[j / bs], kvh, j % bs);
      float dot = 0.0f;
#pragma unroll
      for (int i = 0; i < kPer; ++i) dot += qv[i] * __half2float(kbase[off + lane + 32 * i]);
      dot = warp_sum(dot);
      const float mn = fmaxf(m, dot);
      const float c = exp2f(m - mn), e = exp2f(dot - mn);
      l = l * c + e;
#pragma unroll
      for (int i = 0; i < kPer; ++i) {
        acc[i] = acc[i] * c + e * __half2float(vbase[off + lane + 32 * i]);
      }
      m = mn;
    }
    float* orow = p.out + (tok * p.n_heads + h) * HD;
#pragma unroll
    for (int i = 0; i < kPer; ++i) orow[lane + 32 * i] = acc[i] / l;
  }
}

// mma fragments (g = lane/4, t = lane%4), see mma.cuh: A 16x16 row-major: a0 (g, 2t..),
// a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..); B 16x8 col-major: b0 (k 2t.., n g),
// b1 (k 2t+8.., n g); C 16x8: c0,c1 (g, 2t..2t+1), c2,c3 (g+8, 2t..2t+1).
template <int HD>
__global__ void __launch_bounds__(kThreads) flash_attn_kernel(const __grid_constant__ FlashParams p) {
  constexpr int kStride = HD + 8;       // halfs per smem row (+16 B: conflict-free)
  constexpr int kKSteps = HD / 16;      // k-steps of Q K^T over head_dim
  constexpr int kDimTiles = HD / 8;     // n-tiles of O over head_dim
  constexpr int kStage = 2 * kKeys * kStride;  // halfs of one stage (K then V)
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __half* smem = reinterpret_cast<__half*>(smem_raw);

  const int n_tiles = (p.n_tokens + kRows - 1) / kRows;
  const int tile = n_tiles - 1 - static_cast<int>(blockIdx.x);  // longest tiles first
  const int h = blockIdx.y;
  const int kvh = h / p.group;
  const int t0 = tile * kRows;
  const int len = min(kRows, p.n_tokens - t0);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;

  // Device check of the host's promise (one session, consecutive positions) for this tile.
  const int pos0 = p.positions[t0];
  const int toff = p.table_offsets[t0];
  bool bad = pos0 < 0;
  if (tid < len) {
    bad = bad || p.positions[t0 + tid] != pos0 + tid || p.table_offsets[t0 + tid] != toff;
  }
  if (__syncthreads_or(bad)) {
    scalar_tile<HD>(p, t0, len, h, kvh);
    return;
  }
  const int32_t* table = p.block_tables + toff;
  const int pos_last = pos0 + len - 1;
  const int n_kt = pos_last / kKeys + 1;

  // This lane's query rows: tile rows ra = 16 warp + g and ra + 8.
  const int ra = warp * 16 + g;
  const bool va = ra < len, vb = ra + 8 < len;
  const int pos_a = pos0 + ra, pos_b = pos_a + 8;
  const bool warp_active = warp * 16 < len;
  const int warp_last = pos0 + min(warp * 16 + 15, len - 1);  // its last valid position
  const int64_t qstride = static_cast<int64_t>(p.n_heads) * HD;

  uint32_t qh[kKSteps][4], ql[kKSteps][4];
  bool huge = false;  // a scaled query value beyond f16's range: the tile takes the scalar path
  {
    const float* qa = p.q + (t0 + ra) * qstride + static_cast<int64_t>(h) * HD;
    const float* qb = qa + 8 * qstride;
    const float s = p.scale_log2;
    const float2 z = make_float2(0.0f, 0.0f);
#pragma unroll
    for (int ks = 0; ks < kKSteps; ++ks) {
      const int d = ks * 16 + 2 * t;
      const float2 x0 = va ? *reinterpret_cast<const float2*>(qa + d) : z;
      const float2 x1 = vb ? *reinterpret_cast<const float2*>(qb + d) : z;
      const float2 x2 = va ? *reinterpret_cast<const float2*>(qa + d + 8) : z;
      const float2 x3 = vb ? *reinterpret_cast<const float2*>(qb + d + 8) : z;
      split2(x0.x * s, x0.y * s, &qh[ks][0], &ql[ks][0]);
      split2(x1.x * s, x1.y * s, &qh[ks][1], &ql[ks][1]);
      split2(x2.x * s, x2.y * s, &qh[ks][2], &ql[ks][2]);
      split2(x3.x * s, x3.y * s, &qh[ks][3], &ql[ks][3]);
      const float mx = fmaxf(fmaxf(fmaxf(fabsf(x0.x), fabsf(x0.y)), fmaxf(fabsf(x1.x), fabsf(x1.y))),
                             fmaxf(fmaxf(fabsf(x2.x), fabsf(x2.y)), fmaxf(fabsf(x3.x), fabsf(x3.y))));
      huge = huge || mx * fabsf(s) > kHalfSafe;
    }
  }
  if (__syncthreads_or(huge)) {
    scalar_tile<HD>(p, t0, len, h, kvh);
    return;
  }

  float o[kDimTiles][4];
#pragma unroll
  for (int i = 0; i < kDimTiles; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float m_a = -INFINITY, m_b = -INFINITY;  // running max (exp2 domain), quad-uniform
  float l_a = 0.0f, l_b = 0.0f;            // this lane's part of the running sums

  load_kv_tile<HD>(p, table, kvh, 0, pos_last + 1, smem, smem + kKeys * kStride);
  cp_async_commit();
  for (int kt = 0; kt < n_kt; ++kt) {
    if (kt + 1 < n_kt) {
      __half* next = smem + ((kt + 1) & 1) * kStage;
      load_kv_tile<HD>(p, table, kvh, (kt + 1) * kKeys, pos_last + 1, next, next + kKeys * kStride);
    }
    cp_async_commit();   // (possibly empty) group kt + 1
    cp_async_wait_1();   // group kt has landed (this thread's copies)
    __syncthreads();     // ... and everyone's
    const __half* ks = smem + (kt & 1) * kStage;
    const __half* vs = ks + kKeys * kStride;
    const int j0 = kt * kKeys;
    if (warp_active && j0 <= warp_last) {
      // S = Q K^T: s[nt] covers keys j0 + 8 nt .. + 7.
      float s[8][4];
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
        const __half* kp = ks + (nt * 8 + g) * kStride + 2 * t;  // key nt*8+g, dims 2t..
#pragma unroll
        for (int kk = 0; kk < kKSteps; ++kk) {
          const uint32_t b0 = *reinterpret_cast<const uint32_t*>(kp + kk * 16);
          const uint32_t b1 = *reinterpret_cast<const uint32_t*>(kp + kk * 16 + 8);
          mma_16816(s[nt], qh[kk][0], qh[kk][1], qh[kk][2], qh[kk][3], b0, b1);
          mma_16816(s[nt], ql[kk][0], ql[kk][1], ql[kk][2], ql[kk][3], b0, b1);
        }
      }
      // Causal mask and the new running max.
      float mx_a = m_a, mx_b = m_b;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int key = j0 + nt * 8 + 2 * t + e;
          if (key > pos_a) s[nt][e] = -INFINITY;
          if (key > pos_b) s[nt][2 + e] = -INFINITY;
          mx_a = fmaxf(mx_a, s[nt][e]);
          mx_b = fmaxf(mx_b, s[nt][2 + e]);
        }
      }
      // Key 0 (in tile 0) is visible to every row, so mx is finite from tile 0 on.
      mx_a = quad_max(mx_a);
      mx_b = quad_max(mx_b);
      const float c_a = exp2f(m_a - mx_a), c_b = exp2f(m_b - mx_b);  // 0 on tile 0
      m_a = mx_a;
      m_b = mx_b;
      l_a *= c_a;
      l_b *= c_b;
#pragma unroll
      for (int i = 0; i < kDimTiles; ++i) {
        o[i][0] *= c_a;
        o[i][1] *= c_a;
        o[i][2] *= c_b;
        o[i][3] *= c_b;
      }
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        s[nt][0] = exp2f(s[nt][0] - m_a);
        s[nt][1] = exp2f(s[nt][1] - m_a);
        s[nt][2] = exp2f(s[nt][2] - m_b);
        s[nt][3] = exp2f(s[nt][3] - m_b);
        l_a += s[nt][0] + s[nt][1];
        l_b += s[nt][2] + s[nt][3];
      }
      // O += P V over 4 k-steps of 16 keys. P's A fragment for keys 16 kk.. is the C
      // fragments of n-tiles 2 kk (k 2t..) and 2 kk + 1 (k 2t+8..).
      const int mi = lane >> 3, mr = lane & 7;  // ldmatrix: matrix index, row in it
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        uint32_t ph[4], pl[4];
        split2(s[2 * kk][0], s[2 * kk][1], &ph[0], &pl[0]);
        split2(s[2 * kk][2], s[2 * kk][3], &ph[1], &pl[1]);
        split2(s[2 * kk + 1][0], s[2 * kk + 1][1], &ph[2], &pl[2]);
        split2(s[2 * kk + 1][2], s[2 * kk + 1][3], &ph[3], &pl[3]);
        // Matrix i: keys 16 kk + 8 (i & 1) .. + 7, dims 16 np + 8 (i >> 1) .. + 7, so
        // b[0], b[1] = (b0, b1) of dim n-tile 2 np and b[2], b[3] those of n-tile 2 np + 1.
        const __half* vrow = vs + (kk * 16 + 8 * (mi & 1) + mr) * kStride + 8 * (mi >> 1);
#pragma unroll
        for (int np = 0; np < HD / 16; ++np) {
          uint32_t b[4];
          ldsm_x4_trans(b, vrow + np * 16);
          mma_16816(o[2 * np], ph[0], ph[1], ph[2], ph[3], b[0], b[1]);
          mma_16816(o[2 * np], pl[0], pl[1], pl[2], pl[3], b[0], b[1]);
          mma_16816(o[2 * np + 1], ph[0], ph[1], ph[2], ph[3], b[2], b[3]);
          mma_16816(o[2 * np + 1], pl[0], pl[1], pl[2], pl[3], b[2], b[3]);
        }
      }
    }
    __syncthreads();  // the next iteration refills this stage
  }

  l_a = quad_sum(l_a);
  l_b = quad_sum(l_b);
  if (!warp_active) return;
  const float inv_a = 1.0f / l_a, inv_b = 1.0f / l_b;
  float* oa = p.out + (t0 + ra) * qstride + static_cast<int64_t>(h) * HD + 2 * t;
  float* ob = oa + 8 * qstride;
#pragma unroll
  for (int i = 0; i < kDimTiles; ++i) {
    if (va) *reinterpret_cast<float2*>(oa + i * 8) = make_float2(o[i][0] * inv_a, o[i][1] * inv_a);
    if (vb) *reinterpret_cast<float2*>(ob + i * 8) = make_float2(o[i][2] * inv_b, o[i][3] * inv_b);
  }
}

template <int HD>
void launch(const FlashParams& p, cudaStream_t s) {
  constexpr size_t kSmem = sizeof(__half) * 2 * 2 * kKeys * (HD + 8);  // 2 stages x (K, V)
  static const bool attr = [] {
    LW_CUDA_CHECK(cudaFuncSetAttribute(flash_attn_kernel<HD>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(kSmem)));
    return true;
  }();
  (void)attr;
  const dim3 grid(static_cast<unsigned>((p.n_tokens + kRows - 1) / kRows),
                  static_cast<unsigned>(p.n_heads));
  flash_attn_kernel<HD><<<grid, kThreads, kSmem, s>>>(p);
  LW_CUDA_LAUNCH_CHECK("flash_attn_kernel");
}

}  // namespace

bool parse_flash_attention_env(const char* value) {
  return parse_env_switch("LW_CUDA_FLASH_ATTN", value, true);
}

bool flash_attention_enabled_from_env() {
  static const bool enabled = parse_flash_attention_env(std::getenv("LW_CUDA_FLASH_ATTN"));
  return enabled;
}

bool flash_attention_eligible(const KvLayerView& kv, const AttentionBatch& batch,
                              int64_t n_heads, const float* q, const float* out, bool enabled) {
  const auto aligned = [](const void* ptr, uintptr_t a) {
    return reinterpret_cast<uintptr_t>(ptr) % a == 0;
  };
  return enabled && batch.one_session_run && batch.n_tokens >= kFlashMinTokens &&
         (kv.head_dim == 32 || kv.head_dim == 64 || kv.head_dim == 128) &&
         kv.n_kv_heads >= 1 && kv.block_size >= 1 && n_heads >= kv.n_kv_heads &&
         n_heads % kv.n_kv_heads == 0 && n_heads <= 65535 && aligned(kv.k, 16) &&
         aligned(kv.v, 16) && aligned(q, 8) && aligned(out, 8);
}

void flash_attention(const KvLayerView& kv, const AttentionBatch& batch, const float* q,
                     int64_t n_heads, float scale, float* out, CudaStream stream) {
  LW_CHECK(flash_attention_eligible(kv, batch, n_heads, q, out, true),
           "flash_attention: ineligible call (n_tokens=" + std::to_string(batch.n_tokens) +
               " one_session_run=" + std::to_string(batch.one_session_run) +
               " head_dim=" + std::to_string(kv.head_dim) +
               " heads=" + std::to_string(n_heads) + "/" + std::to_string(kv.n_kv_heads) + ")");
  FlashParams p{};
  p.kv = kv;
  p.positions = batch.positions;
  p.table_offsets = batch.table_offsets;
  p.block_tables = batch.block_tables;
  p.q = q;
  p.out = out;
  p.n_tokens = batch.n_tokens;
  p.n_heads = static_cast<int>(n_heads);
  p.group = static_cast<int>(n_heads / kv.n_kv_heads);
  p.scale_log2 = scale * kLog2e;
  const cudaStream_t s = to_stream(stream);
  switch (kv.head_dim) {
    case 32: launch<32>(p, s); break;
    case 64: launch<64>(p, s); break;
    default: launch<128>(p, s); break;
  }
  g_launches.fetch_add(1, std::memory_order_relaxed);
}

uint64_t flash_attention_launch_count() { return g_launches.load(std::memory_order_relaxed); }

}  // namespace lw::cuda
