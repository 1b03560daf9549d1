#include "fragments/quant.h"

#include <cstring>
#include <string>

#include "common/error.h"
#include "common/file_util.h"
#include "common/half.h"

namespace lw {
namespace {

// Sizes as ggml defines them (ggml-common.h block structs); only `supported` types are
// decoded by layerwire, the rest are named so messages and tools can describe them.
constexpr TypeTraits kTraits[] = {
    {GgmlType::F32, "f32", 1, 4, true},       {GgmlType::F16, "f16", 1, 2, true},
    {GgmlType::Q4_0, "q4_0", 32, 18, false},  {GgmlType::Q4_1, "q4_1", 32, 20, false},
    {GgmlType::Q5_0, "q5_0", 32, 22, false},  {GgmlType::Q5_1, "q5_1", 32, 24, false},
    {GgmlType::Q8_0, "q8_0", 32, 34, true},   {GgmlType::Q8_1, "q8_1", 32, 36, false},
    {GgmlType::Q2_K, "q2_K", 256, 84, false}, {GgmlType::Q3_K, "q3_K", 256, 110, false},
    {GgmlType::Q4_K, "q4_K", 256, 144, true}, {GgmlType::Q5_K, "q5_K", 256, 176, true},
    {GgmlType::Q6_K, "q6_K", 256, 210, true}, {GgmlType::Q8_K, "q8_K", 256, 292, false},
    {GgmlType::BF16, "bf16", 1, 2, true},
};

void dequantize_q8_0(const BlockQ8_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < kQK8_0; ++j) *y++ = d * static_cast<float>(x[i].qs[j]);
  }
}

void dequantize_q4_k(const BlockQ4_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* q = x[i].qs;
    const float d = fp16_to_fp32(x[i].d);
    const float min = fp16_to_fp32(x[i].dmin);
    int is = 0;
    uint8_t sc, m;
    for (int j = 0; j < kQK_K; j += 64) {
      get_scale_min_k4(is + 0, x[i].scales, &sc, &m);
      const float d1 = d * sc;
      const float m1 = min * m;
      get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
      const float d2 = d * sc;
      const float m2 = min * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
      q += 32;
      is += 2;
    }
  }
}

void dequantize_q5_k(const BlockQ5_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* ql = x[i].qs;
    const uint8_t* qh = x[i].qh;
    const float d = fp16_to_fp32(x[i].d);
    const float min = fp16_to_fp32(x[i].dmin);
    int is = 0;
    uint8_t sc, m;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < kQK_K; j += 64) {
      get_scale_min_k4(is + 0, x[i].scales, &sc, &m);
      const float d1 = d * sc;
      const float m1 = min * m;
      get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
      const float d2 = d * sc;
      const float m2 = min * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
      ql += 32;
      is += 2;
      u1 <<= 2;
      u2 <<= 2;
    }
  }
}

void dequantize_q6_k(const BlockQ6_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const uint8_t* ql = x[i].ql;
    const uint8_t* qh = x[i].qh;
    const int8_t* sc = x[i].scales;
    for (int n = 0; n < kQK_K; n += 128) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = static_cast<int8_t>((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = static_cast<int8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = static_cast<int8_t>((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = static_cast<int8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l + 0] = d * sc[is + 0] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

}  // namespace

const TypeTraits* type_traits(uint32_t type_id) {
  for (const TypeTraits& t : kTraits) {
    if (static_cast<uint32_t>(t.type) == type_id) return &t;
  }
  return nullptr;
}

const TypeTraits& type_traits(GgmlType type) {
  const TypeTraits* t = type_traits(static_cast<uint32_t>(type));
  LW_CHECK(t != nullptr, "GgmlType value " + std::to_string(static_cast<uint32_t>(type)) +
                             " is not an enumerator");
  return *t;
}

std::string type_name(uint32_t type_id) {
  const TypeTraits* t = type_traits(type_id);
  if (t == nullptr) return "type#" + std::to_string(type_id);
  return std::string(t->name);
}

bool row_size(GgmlType type, uint64_t n, uint64_t* bytes) {
  const TypeTraits* t = type_traits(static_cast<uint32_t>(type));
  if (t == nullptr || n % t->block_size != 0) return false;
  return checked_mul(n / t->block_size, t->type_size, bytes);
}

int64_t row_blocks(GgmlType type, int64_t n, const char* who) {
  const TypeTraits* t = type_traits(static_cast<uint32_t>(type));
  if (t == nullptr || !t->supported) {
    throw Error(ErrorCode::kGgufTensorType,
                std::string(who) + ": tensor type " + type_name(static_cast<uint32_t>(type)) +
                    " is not supported (f32, f16, bf16, q8_0, q4_K, q5_K, q6_K are)");
  }
  if (n < 0 || n % t->block_size != 0) {
    throw Error(ErrorCode::kQuantSize,
                std::string(who) + ": " + std::string(t->name) + " row of " + std::to_string(n) +
                    " values is not a multiple of the block size " + std::to_string(t->block_size));
  }
  return n / t->block_size;
}

void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n) {
  const int64_t nb = row_blocks(type, n, "dequantize_row");
  switch (type) {
    case GgmlType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::F16: {
      const uint16_t* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(h[i]);
      return;
    }
    case GgmlType::BF16: {
      const uint16_t* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(h[i]);
      return;
    }
    case GgmlType::Q8_0:
      dequantize_q8_0(static_cast<const BlockQ8_0*>(src), dst, nb);
      return;
    case GgmlType::Q4_K:
      dequantize_q4_k(static_cast<const BlockQ4_K*>(src), dst, nb);
      return;
    case GgmlType::Q5_K:
      dequantize_q5_k(static_cast<const BlockQ5_K*>(src), dst, nb);
      return;
    case GgmlType::Q6_K:
      dequantize_q6_k(static_cast<const BlockQ6_K*>(src), dst, nb);
      return;
    default:
      LW_CHECK(false,
               "supported type without a dequantizer: " + type_name(static_cast<uint32_t>(type)));
  }
}

}  // namespace lw
