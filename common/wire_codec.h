// The tensor wire codec: turns f32 hidden states into the compact tensor a forward call
// carries (dtype conversion, byte-shuffle, zstd, xxh3-64) and back, checking every field
// of a received tensor against limits before it allocates or copies. No Cap'n Proto here:
// schema/wire_convert.h maps these structs onto the `Tensor` struct of layerwire.capnp.
//
// Byte layout of a wire tensor (docs/WIRE_PROTOCOL.md, "Tensor encoding"):
//   raw bytes   = the elements in row-major order (last dim fastest), each element
//                 little-endian in `dtype` (f32: 4 bytes, f16 / bf16: 2 bytes);
//                 raw_size = product(shape) * dtype_size; xxh3_64 = XXH3_64bits(raw bytes).
//   Raw         : data = raw bytes.
//   Zstd        : data = one zstd frame whose content size field equals raw_size.
//   ShuffleZstd : data = one zstd frame of the byte-shuffled raw bytes: byte 0 of every
//                 element, then byte 1 of every element, ... (elem_size planes of n bytes).
// The checksum always covers the raw bytes (after dtype conversion, before shuffle and
// compression), so it checks the whole path: conversion, shuffle, zstd and the transport.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace lw {

// Numeric values are the wire values (enum Dtype / Encoding in layerwire.capnp); never
// renumber. A received value outside the list is kept as-is so decode can name it.
enum class WireDtype : uint16_t { F32 = 0, F16 = 1, BF16 = 2 };
enum class WireEncoding : uint16_t { Raw = 0, Zstd = 1, ShuffleZstd = 2 };

// "f32" / "f16" / "bf16", "raw" / "zstd" / "shuffle-zstd"; "unknown(N)" otherwise.
std::string wire_dtype_name(WireDtype dtype);
std::string wire_encoding_name(WireEncoding encoding);
// Bytes per element: 4, 2, 2; 0 for a value outside the enum.
size_t wire_dtype_size(WireDtype dtype);
// Parses the names above (as used in JSON config); false on anything else.
bool wire_dtype_from_name(const std::string& name, WireDtype* out);
// The most data bytes any valid encoding of raw_bytes can take (zstd's worst-case bound;
// >= raw_bytes). Receivers refuse a longer data field before copying it.
uint64_t wire_max_data_bytes(uint64_t raw_bytes);

// The most dimensions a wire tensor may have (hidden states use 2: [n_tokens, dim]).
constexpr size_t kWireMaxRank = 8;
// The largest tensor one message can carry raw: a Cap'n Proto Data holds < 2^29 bytes.
constexpr uint64_t kWireMaxDataBytes = (1ull << 29) - 1;

// A tensor as it travels: header fields plus the encoded bytes (owned).
struct WireTensor {
  WireDtype dtype = WireDtype::F32;
  std::vector<uint64_t> shape;
  WireEncoding encoding = WireEncoding::Raw;
  uint64_t raw_size = 0;  // bytes of the raw (converted, unshuffled, uncompressed) tensor
  uint64_t xxh3_64 = 0;   // XXH3_64bits of the raw bytes, seed 0
  std::vector<uint8_t> data;

  bool operator==(const WireTensor&) const = default;
};

// The same fields with the data borrowed (e.g. pointing into a received Cap'n Proto
// message, which must outlive the view). Decoding works on views so nothing is copied twice.
struct WireTensorView {
  WireDtype dtype = WireDtype::F32;
  std::vector<uint64_t> shape;
  WireEncoding encoding = WireEncoding::Raw;
  uint64_t raw_size = 0;
  uint64_t xxh3_64 = 0;
  std::span<const uint8_t> data;
};
WireTensorView wire_view(const WireTensor& tensor);

enum class CompressionMode {
  Off,          // always Raw
  Auto,         // ShuffleZstd when raw_size >= min_compress_bytes and it achieves min_ratio
  Zstd,         // always Zstd (tests, benchmarks, debugging); ignores threshold and ratio
  ShuffleZstd,  // always ShuffleZstd; ignores threshold and ratio
};

struct EncodeOptions {
  // The dtype to send. F16 falls back to F32 for a tensor holding a finite value that f16
  // cannot represent (it would round to +-inf; |x| >= 65520); BF16 likewise for finite values
  // that round to inf (|x| within half a bf16 ulp of FLT_MAX). Counted in f16_overflow_fallbacks.
  WireDtype dtype = WireDtype::F32;
  CompressionMode mode = CompressionMode::Auto;
  // zstd compression level (1 = fastest; negative levels are faster still, 19 is slow).
  int zstd_level = 1;
  // zstd worker threads for one frame (0 = compress on the calling thread). Only large
  // tensors benefit; ignored when libzstd was built without multithreading.
  int zstd_workers = 0;
  // Auto: tensors smaller than this go Raw without trying (decode-size calls stay cheap).
  uint64_t min_compress_bytes = 64 * 1024;
  // Auto: the compressed form is kept only when raw_size / compressed_size >= min_ratio.
  double min_ratio = 1.1;
};

// Limits applied to a received tensor before anything is allocated. Defaults are generous;
// the server sets them from its config (max message size, max tokens per call, hidden size).
struct DecodeLimits {
  uint64_t max_raw_bytes = kWireMaxDataBytes;  // raw_size above this -> LW-WIRE-006
  size_t max_rank = kWireMaxRank;              // more dimensions -> LW-WIRE-002
  // When non-zero, the last dimension must equal this (the model's hidden size) and the
  // rank must be 2 ([n_tokens, dim]) -> LW-WIRE-002 otherwise.
  uint64_t expected_last_dim = 0;
  // When non-zero, product(shape[:-1]) (the token count) must be <= this -> LW-WIRE-006.
  uint64_t max_rows = 0;
};

// Counters of one direction (keep one WireStats for sent and one for received tensors).
// Plain integers, not synchronized: each thread or connection keeps its own and merges into
// shared metrics with operator+= under the caller's lock.
struct WireStats {
  uint64_t tensors = 0;                 // tensors encoded / successfully decoded
  uint64_t raw_bytes = 0;               // sum of raw_size (after dtype conversion)
  uint64_t wire_bytes = 0;              // sum of data sizes actually carried
  uint64_t compressed = 0;              // tensors whose encoding is Zstd or ShuffleZstd
  uint64_t compression_rejected = 0;    // Auto tried compressing but the ratio did not pay
  uint64_t f16_overflow_fallbacks = 0;  // F16/BF16 requested, sent as F32 (see EncodeOptions)

  WireStats& operator+=(const WireStats& other);
  bool operator==(const WireStats&) const = default;
};

// Owns the zstd contexts and scratch buffers so repeated calls do not reallocate. Not
// thread-safe: one codec per thread (or per connection on an event loop). Cheap to create.
class WireCodec {
 public:
  WireCodec();
  ~WireCodec();
  WireCodec(const WireCodec&) = delete;
  WireCodec& operator=(const WireCodec&) = delete;

  // Encodes product(shape) floats from `data` (row-major). A rank above kWireMaxRank or an
  // element count that overflows is a bug (LW_CHECK); raw bytes above kWireMaxDataBytes
  // throw LW-WIRE-006 (split the call: the server's maxTokensPerCall is far below that).
  WireTensor encode(const float* data, std::span<const uint64_t> shape,
                    const EncodeOptions& options, WireStats* stats = nullptr);

  // Checks the header fields of a received tensor against `limits` (dtype, encoding, rank,
  // shape vs raw_size with overflow-safe math, size limits) and returns the element count.
  // Throws lw::Error LW-WIRE-001 / 002 / 005 / 006 naming the field and values.
  uint64_t check_header(const WireTensorView& tensor, const DecodeLimits& limits) const;

  // Fully decodes and verifies (header, data size / zstd frame, xxh3-64) into `out`, which
  // must hold exactly the element count (LW-WIRE-002 otherwise). On error `out` holds
  // unspecified values. Throws lw::Error LW-WIRE-001..006; never aborts on any input.
  void decode_into(const WireTensorView& tensor, const DecodeLimits& limits, std::span<float> out,
                   WireStats* stats = nullptr);
  std::vector<float> decode(const WireTensorView& tensor, const DecodeLimits& limits,
                            WireStats* stats = nullptr);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// One-shot conveniences that create a temporary codec.
WireTensor encode_tensor(const float* data, std::span<const uint64_t> shape,
                         const EncodeOptions& options, WireStats* stats = nullptr);
std::vector<float> decode_tensor(const WireTensor& tensor, const DecodeLimits& limits,
                                 WireStats* stats = nullptr);

// Byte-shuffle of n_elems elements of elem_size bytes: dst[b * n_elems + i] = src[i *
// elem_size + b]. unshuffle is the inverse. src and dst must not overlap.
void wire_byte_shuffle(const uint8_t* src, size_t n_elems, size_t elem_size, uint8_t* dst);
void wire_byte_unshuffle(const uint8_t* src, size_t n_elems, size_t elem_size, uint8_t* dst);

}  // namespace lw
