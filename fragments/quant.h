// Weight encodings shared by the CPU and CUDA code: GGML type ids, the on-disk block
// structs of the quantized formats (pinned by static_asserts to the published GGML
// layouts), CPU reference dequantizers and reference quantizers.
//
// Block layouts (little-endian, f16 = IEEE half bits), QK_K = 256 values per super-block:
//   Q8_0 (32 values, 34 B):   d:f16 | qs:int8[32]                      x = d*q
//   Q4_K (256 values, 144 B): d:f16 | dmin:f16 | scales:u8[12] | qs:u8[128]
//        8 sub-blocks of 32; 6-bit scale sc and min m per sub-block packed in `scales`
//        (get_scale_min_k4); x = d*sc*q - dmin*m, q = 4-bit nibble.
//   Q5_K (256 values, 176 B): d:f16 | dmin:f16 | scales:u8[12] | qh:u8[32] | qs:u8[128]
//        as Q4_K with a fifth bit per value from qh.
//   Q6_K (256 values, 210 B): ql:u8[128] | qh:u8[64] | scales:int8[16] | d:f16
//        16 sub-blocks of 16; x = d*scale*(q-32), q = 4 low bits (ql) | 2 high bits (qh).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace lw {

// GGML tensor type ids as stored in GGUF tensor infos.
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
};

constexpr int kQK_K = 256;
constexpr int kQK8_0 = 32;
constexpr int kKScaleSize = 12;

struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK8_0];
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block is 34 bytes");

struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleSize];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144, "Q4_K block is 144 bytes");
static_assert(offsetof(BlockQ4_K, scales) == 4 && offsetof(BlockQ4_K, qs) == 16);

struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleSize];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ5_K) == 176, "Q5_K block is 176 bytes");
static_assert(offsetof(BlockQ5_K, qh) == 16 && offsetof(BlockQ5_K, qs) == 48);

struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210, "Q6_K block is 210 bytes");
static_assert(offsetof(BlockQ6_K, qh) == 128 && offsetof(BlockQ6_K, scales) == 192 &&
              offsetof(BlockQ6_K, d) == 208);

struct TypeTraits {
  GgmlType type;
  std::string_view name;  // "q4_K", "f16", ... as ggml names them
  uint32_t block_size;    // values per block (1 for float types)
  uint32_t type_size;     // bytes per block
  bool supported;         // layerwire can dequantize / compute with it
};

// Traits for a type id; nullptr for an id ggml does not define (any value read from a file).
const TypeTraits* type_traits(uint32_t type_id);
const TypeTraits& type_traits(GgmlType type);
// Lower-case ggml name or "type#N" for unknown ids.
std::string type_name(uint32_t type_id);

// Bytes of a row of n values; false if n is not a multiple of the block size or on overflow.
bool row_size(GgmlType type, uint64_t n, uint64_t* bytes);

// Blocks in a row of n values of a supported type, for the row converters: LW-GGUF tensor-type
// error for an unsupported type, LW-QUANT size error when n is not a whole number of blocks;
// both messages start with `who`.
int64_t row_blocks(GgmlType type, int64_t n, const char* who);

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block.
inline void get_scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
  }
}

// Reference dequantization of n values (n a multiple of the block size, else LW-QUANT-001)
// for F32, F16, BF16, Q8_0, Q4_K, Q5_K, Q6_K. Other types throw LW-GGUF-006.
void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);

// Reference quantization of n values into `type` (F32, F16, BF16, Q8_0, Q4_K, Q5_K, Q6_K),
// following ggml's reference quantizers (quantize_row_*_ref). dst must hold the row size.
void quantize_row(GgmlType type, const float* src, void* dst, int64_t n);

}  // namespace lw
