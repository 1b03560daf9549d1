#include "common/wire_codec.h"

#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <bit>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "common/error.h"
#include "common/file_util.h"
#include "common/half.h"
#include "common/half_array.h"
#include "common/hash.h"

namespace lw {

static_assert(std::endian::native == std::endian::little,
              "the wire format is little-endian; a big-endian host needs byte swaps here");

namespace {

std::string shape_text(std::span<const uint64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

std::string hex64(uint64_t v) {
  char buf[19];
  std::snprintf(buf, sizeof(buf), "0x%016" PRIx64, v);
  return buf;
}

bool is_finite_bits(uint32_t bits) { return (bits & 0x7f800000u) != 0x7f800000u; }

// Converts n floats to 16-bit values with `convert`; returns false (output incomplete) as
// soon as a finite input rounds to +-inf, the overflow that forces an f32 fallback.
template <uint16_t (*Convert)(float), uint16_t kInf>
bool narrow_to_16(const float* src, size_t n, uint8_t* dst) {
  constexpr size_t kChunk = 4096;
  for (size_t base = 0; base < n; base += kChunk) {
    const size_t end = std::min(n, base + kChunk);
    bool overflow = false;
    for (size_t i = base; i < end; ++i) {
      const uint16_t h = Convert(src[i]);
      std::memcpy(dst + 2 * i, &h, 2);
      // Inf/NaN inputs map to inf/NaN and are carried faithfully; only new infs count.
      overflow |= ((h & 0x7fffu) == kInf) & is_finite_bits(f32_to_bits(src[i]));
    }
    if (overflow) return false;
  }
  return true;
}

template <float (*Widen)(uint16_t)>
void widen_from_16(const uint8_t* src, size_t n, float* dst) {
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = Widen(h);
  }
}

template <size_t kSize>
void shuffle_fixed(const uint8_t* src, size_t n, uint8_t* dst) {
  for (size_t i = 0; i < n; ++i) {
    for (size_t b = 0; b < kSize; ++b) dst[b * n + i] = src[i * kSize + b];
  }
}

template <size_t kSize>
void unshuffle_fixed(const uint8_t* src, size_t n, uint8_t* dst) {
  for (size_t i = 0; i < n; ++i) {
    for (size_t b = 0; b < kSize; ++b) dst[i * kSize + b] = src[b * n + i];
  }
}

// Scratch buffers only grow: they end up the size of the largest tensor seen.
void ensure_size(std::vector<uint8_t>* v, size_t size) {
  if (v->size() < size) v->resize(size);
}

}  // namespace

std::string wire_dtype_name(WireDtype dtype) {
  switch (dtype) {
    case WireDtype::F32:
      return "f32";
    case WireDtype::F16:
      return "f16";
    case WireDtype::BF16:
      return "bf16";
  }
  return "unknown(" + std::to_string(static_cast<unsigned>(dtype)) + ")";
}

std::string wire_encoding_name(WireEncoding encoding) {
  switch (encoding) {
    case WireEncoding::Raw:
      return "raw";
    case WireEncoding::Zstd:
      return "zstd";
    case WireEncoding::ShuffleZstd:
      return "shuffle-zstd";
  }
  return "unknown(" + std::to_string(static_cast<unsigned>(encoding)) + ")";
}

size_t wire_dtype_size(WireDtype dtype) {
  switch (dtype) {
    case WireDtype::F32:
      return 4;
    case WireDtype::F16:
      return 2;
    case WireDtype::BF16:
      return 2;
  }
  return 0;
}

bool wire_dtype_from_name(const std::string& name, WireDtype* out) {
  for (WireDtype d : {WireDtype::F32, WireDtype::F16, WireDtype::BF16}) {
    if (name == wire_dtype_name(d)) {
      *out = d;
      return true;
    }
  }
  return false;
}

uint64_t wire_max_data_bytes(uint64_t raw_bytes) {
  // ZSTD_COMPRESSBOUND: src + src/256 + (src < 128 KiB ? (128 KiB - src) / 2048 : 0).
  const uint64_t small = raw_bytes < (128u << 10) ? ((128u << 10) - raw_bytes) >> 11 : 0;
  uint64_t bound = 0;
  if (!checked_add(raw_bytes, (raw_bytes >> 8) + small, &bound)) return UINT64_MAX;
  return bound;
}

WireTensorView wire_view(const WireTensor& t) {
  return WireTensorView{t.dtype, t.shape, t.encoding, t.raw_size, t.xxh3_64, t.data};
}

WireStats& WireStats::operator+=(const WireStats& o) {
  tensors += o.tensors;
  raw_bytes += o.raw_bytes;
  wire_bytes += o.wire_bytes;
  compressed += o.compressed;
  compression_rejected += o.compression_rejected;
  f16_overflow_fallbacks += o.f16_overflow_fallbacks;
  return *this;
}

void wire_byte_shuffle(const uint8_t* src, size_t n, size_t elem_size, uint8_t* dst) {
  switch (elem_size) {
    case 2:
      return shuffle_fixed<2>(src, n, dst);
    case 4:
      return shuffle_fixed<4>(src, n, dst);
    default:
      for (size_t i = 0; i < n; ++i) {
        for (size_t b = 0; b < elem_size; ++b) dst[b * n + i] = src[i * elem_size + b];
      }
  }
}

void wire_byte_unshuffle(const uint8_t* src, size_t n, size_t elem_size, uint8_t* dst) {
  switch (elem_size) {
    case 2:
      return unshuffle_fixed<2>(src, n, dst);
    case 4:
      return unshuffle_fixed<4>(src, n, dst);
    default:
      for (size_t i = 0; i < n; ++i) {
        for (size_t b = 0; b < elem_size; ++b) dst[i * elem_size + b] = src[b * n + i];
      }
  }
}

struct WireCodec::State {
  ZSTD_CCtx* cctx = nullptr;
  ZSTD_DCtx* dctx = nullptr;
  std::vector<uint8_t> shuffled;  // shuffle / unshuffle scratch
  std::vector<uint8_t> packed;    // compressed output or decompressed input scratch

  ~State() {
    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
  }
};

WireCodec::WireCodec() : state_(std::make_unique<State>()) {}
WireCodec::~WireCodec() = default;

WireTensor WireCodec::encode(const float* data, std::span<const uint64_t> shape,
                             const EncodeOptions& options, WireStats* stats) {
  LW_CHECK(shape.size() <= kWireMaxRank, "encode: rank " + std::to_string(shape.size()));
  uint64_t n = 1;
  for (uint64_t d : shape) {
    LW_CHECK(checked_mul(n, d, &n), "encode: shape " + shape_text(shape) + " overflows");
  }
  LW_CHECK(wire_dtype_size(options.dtype) != 0, "encode: dtype " + wire_dtype_name(options.dtype));
  LW_CHECK(n == 0 || data != nullptr, "encode: null data for shape " + shape_text(shape));

  WireTensor t;
  t.shape.assign(shape.begin(), shape.end());
  t.dtype = options.dtype;
  if (n > kWireMaxDataBytes / wire_dtype_size(t.dtype)) {
    throw Error(ErrorCode::kWireTooLarge,
                "encode: tensor " + shape_text(shape) + " of " + wire_dtype_name(t.dtype) +
                    " exceeds the " + std::to_string(kWireMaxDataBytes) +
                    "-byte message data limit; send fewer tokens per call");
  }

  // 1. Raw bytes in the wire dtype, written straight into t.data.
  bool converted = false;
  if (t.dtype != WireDtype::F32) {
    t.data.resize(n * 2);
    converted = t.dtype == WireDtype::F16
                    ? fp32_to_fp16_array(data, n, t.data.data())
                    : narrow_to_16<fp32_to_bf16, 0x7f80>(data, n, t.data.data());
    if (!converted) {
      t.dtype = WireDtype::F32;
      if (stats) ++stats->f16_overflow_fallbacks;
    }
  }
  if (!converted) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(data);
    t.data.assign(bytes, bytes + n * 4);
  }
  const size_t elem = wire_dtype_size(t.dtype);
  t.raw_size = t.data.size();
  t.xxh3_64 = xxh3_64(t.data.data(), t.data.size());
  t.encoding = WireEncoding::Raw;

  // 2. Compression, only where the mode asks for it and (Auto) where it pays.
  WireEncoding candidate = WireEncoding::Raw;
  bool must_keep = false;
  switch (options.mode) {
    case CompressionMode::Off:
      break;
    case CompressionMode::Auto:
      if (t.raw_size > 0 && t.raw_size >= options.min_compress_bytes) {
        candidate = WireEncoding::ShuffleZstd;
      }
      break;
    case CompressionMode::Zstd:
      candidate = WireEncoding::Zstd;
      must_keep = true;
      break;
    case CompressionMode::ShuffleZstd:
      candidate = WireEncoding::ShuffleZstd;
      must_keep = true;
      break;
  }
  if (candidate != WireEncoding::Raw) {
    State& s = *state_;
    const uint8_t* src = t.data.data();
    if (candidate == WireEncoding::ShuffleZstd) {
      ensure_size(&s.shuffled, t.raw_size);
      wire_byte_shuffle(t.data.data(), n, elem, s.shuffled.data());
      src = s.shuffled.data();
    }
    // Auto: a destination of raw/min_ratio bytes makes zstd stop as soon as it cannot pay.
    size_t cap = ZSTD_compressBound(t.raw_size);
    if (!must_keep && options.min_ratio > 0) {
      cap = std::min<size_t>(
          cap, static_cast<size_t>(static_cast<double>(t.raw_size) / options.min_ratio));
    }
    if (!s.cctx) s.cctx = ZSTD_createCCtx();
    LW_CHECK(s.cctx != nullptr, "ZSTD_createCCtx failed");
    ZSTD_CCtx_reset(s.cctx, ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(s.cctx, ZSTD_c_compressionLevel, options.zstd_level);
    ZSTD_CCtx_setParameter(s.cctx, ZSTD_c_contentSizeFlag, 1);
    if (options.zstd_workers > 0) {
      ZSTD_CCtx_setParameter(s.cctx, ZSTD_c_nbWorkers, options.zstd_workers);  // may fail: ok
    }
    ensure_size(&s.packed, std::max<size_t>(cap, 1));
    const size_t r = ZSTD_compress2(s.cctx, s.packed.data(), cap, src, t.raw_size);
    if (ZSTD_isError(r)) {
      if (ZSTD_getErrorCode(r) != ZSTD_error_dstSize_tooSmall || must_keep) {
        throw Error(ErrorCode::kInternal,
                    std::string("encode: zstd compression failed: ") + ZSTD_getErrorName(r));
      }
      if (stats) ++stats->compression_rejected;
    } else {
      t.encoding = candidate;
      // Swap so the raw buffer becomes the next call's scratch; no copy of the frame.
      s.packed.resize(r);
      std::swap(t.data, s.packed);
    }
  }
  if (stats) {
    ++stats->tensors;
    stats->raw_bytes += t.raw_size;
    stats->wire_bytes += t.data.size();
    if (t.encoding != WireEncoding::Raw) ++stats->compressed;
  }
  return t;
}

uint64_t WireCodec::check_header(const WireTensorView& t, const DecodeLimits& limits) const {
  const size_t elem = wire_dtype_size(t.dtype);
  if (elem == 0) {
    throw Error(ErrorCode::kWireDtype, "tensor dtype: value " +
                                           std::to_string(static_cast<unsigned>(t.dtype)) +
                                           " is not f32 (0), f16 (1) or bf16 (2)");
  }
  if (t.encoding != WireEncoding::Raw && t.encoding != WireEncoding::Zstd &&
      t.encoding != WireEncoding::ShuffleZstd) {
    throw Error(ErrorCode::kWireEncoding, "tensor encoding: value " +
                                              std::to_string(static_cast<unsigned>(t.encoding)) +
                                              " is not raw (0), zstd (1) or shuffle-zstd (2)");
  }
  if (t.shape.size() > limits.max_rank) {
    throw Error(ErrorCode::kWireShape, "tensor shape: rank " + std::to_string(t.shape.size()) +
                                           " exceeds the limit " + std::to_string(limits.max_rank));
  }
  if (t.raw_size > limits.max_raw_bytes) {
    throw Error(ErrorCode::kWireTooLarge, "tensor rawSize: " + std::to_string(t.raw_size) +
                                              " bytes exceeds the limit of " +
                                              std::to_string(limits.max_raw_bytes) + " bytes");
  }
  uint64_t n = 1;
  for (uint64_t d : t.shape) {
    if (!checked_mul(n, d, &n)) {
      throw Error(ErrorCode::kWireShape,
                  "tensor shape: " + shape_text(t.shape) + " element count overflows 64 bits");
    }
  }
  uint64_t bytes = 0;
  if (!checked_mul(n, elem, &bytes) || bytes != t.raw_size) {
    throw Error(ErrorCode::kWireShape, "tensor shape " + shape_text(t.shape) + " of " +
                                           wire_dtype_name(t.dtype) + " needs " +
                                           std::to_string(n) + " x " + std::to_string(elem) +
                                           " bytes but rawSize is " + std::to_string(t.raw_size));
  }
  if (limits.expected_last_dim != 0 &&
      (t.shape.size() != 2 || t.shape[1] != limits.expected_last_dim)) {
    throw Error(ErrorCode::kWireShape, "tensor shape " + shape_text(t.shape) +
                                           ": expected [n_tokens, " +
                                           std::to_string(limits.expected_last_dim) + "]");
  }
  if (limits.max_rows != 0 && !t.shape.empty()) {
    const uint64_t rows = t.shape.back() == 0 ? 0 : n / t.shape.back();
    if (rows > limits.max_rows) {
      throw Error(ErrorCode::kWireTooLarge, "tensor shape " + shape_text(t.shape) + ": " +
                                                std::to_string(rows) + " rows (tokens) exceed " +
                                                "the per-call limit of " +
                                                std::to_string(limits.max_rows));
    }
  }
  return n;
}

void WireCodec::decode_into(const WireTensorView& t, const DecodeLimits& limits,
                            std::span<float> out, WireStats* stats) {
  const uint64_t n = check_header(t, limits);
  if (out.size() != n) {
    throw Error(ErrorCode::kWireShape, "tensor shape " + shape_text(t.shape) + " holds " +
                                           std::to_string(n) + " elements; the destination " +
                                           "expects " + std::to_string(out.size()));
  }
  State& s = *state_;
  const size_t elem = wire_dtype_size(t.dtype);
  uint8_t* out_bytes = reinterpret_cast<uint8_t*>(out.data());
  const uint8_t* raw = nullptr;  // the verified-size raw bytes
  if (t.encoding == WireEncoding::Raw) {
    if (t.data.size() != t.raw_size) {
      throw Error(ErrorCode::kWireDecode, "tensor data: " + std::to_string(t.data.size()) +
                                              " bytes with encoding raw, but rawSize is " +
                                              std::to_string(t.raw_size));
    }
    raw = t.data.data();
  } else {
    const std::string what = "tensor data (" + wire_encoding_name(t.encoding) + ", " +
                             std::to_string(t.data.size()) + " bytes): ";
    const unsigned long long fcs = ZSTD_getFrameContentSize(t.data.data(), t.data.size());
    if (fcs == ZSTD_CONTENTSIZE_ERROR) {
      throw Error(ErrorCode::kWireDecode, what + "not a zstd frame");
    }
    if (fcs == ZSTD_CONTENTSIZE_UNKNOWN) {
      throw Error(ErrorCode::kWireDecode, what + "zstd frame does not declare its content size");
    }
    if (fcs != t.raw_size) {
      throw Error(ErrorCode::kWireDecode, what + "zstd frame content size " + std::to_string(fcs) +
                                              " != rawSize " + std::to_string(t.raw_size));
    }
    const size_t frame = ZSTD_findFrameCompressedSize(t.data.data(), t.data.size());
    if (ZSTD_isError(frame) || frame != t.data.size()) {
      throw Error(
          ErrorCode::kWireDecode,
          what + (ZSTD_isError(frame)
                      ? std::string("truncated zstd frame (") + ZSTD_getErrorName(frame) + ")"
                      : std::to_string(t.data.size() - frame) + " bytes after the zstd frame"));
    }
    // F32 + Zstd decompresses straight into the caller's floats.
    uint8_t* dst = out_bytes;
    if (t.encoding == WireEncoding::ShuffleZstd || t.dtype != WireDtype::F32) {
      ensure_size(&s.packed, t.raw_size);
      dst = s.packed.data();
    }
    if (!s.dctx) s.dctx = ZSTD_createDCtx();
    LW_CHECK(s.dctx != nullptr, "ZSTD_createDCtx failed");
    const size_t r = ZSTD_decompressDCtx(s.dctx, dst, t.raw_size, t.data.data(), t.data.size());
    if (ZSTD_isError(r)) {
      throw Error(ErrorCode::kWireDecode, what + "corrupt zstd frame: " + ZSTD_getErrorName(r));
    }
    if (r != t.raw_size) {
      throw Error(ErrorCode::kWireDecode, what + "zstd frame decoded to " + std::to_string(r) +
                                              " bytes, rawSize is " + std::to_string(t.raw_size));
    }
    raw = dst;
    if (t.encoding == WireEncoding::ShuffleZstd) {
      uint8_t* plain = out_bytes;
      if (t.dtype != WireDtype::F32) {
        ensure_size(&s.shuffled, t.raw_size);
        plain = s.shuffled.data();
      }
      wire_byte_unshuffle(dst, n, elem, plain);
      raw = plain;
    }
  }
  const uint64_t computed = xxh3_64(raw, t.raw_size);
  if (computed != t.xxh3_64) {
    throw Error(ErrorCode::kWireChecksum, "tensor xxh3: message says " + hex64(t.xxh3_64) +
                                              ", the " + std::to_string(t.raw_size) +
                                              " raw bytes hash to " + hex64(computed));
  }
  switch (t.dtype) {
    case WireDtype::F32:
      if (raw != out_bytes && n) std::memcpy(out_bytes, raw, t.raw_size);
      break;
    case WireDtype::F16:
      fp16_to_fp32_array(raw, n, out.data());
      break;
    case WireDtype::BF16:
      widen_from_16<bf16_to_fp32>(raw, n, out.data());
      break;
  }
  if (stats) {
    ++stats->tensors;
    stats->raw_bytes += t.raw_size;
    stats->wire_bytes += t.data.size();
    if (t.encoding != WireEncoding::Raw) ++stats->compressed;
  }
}

std::vector<float> WireCodec::decode(const WireTensorView& t, const DecodeLimits& limits,
                                     WireStats* stats) {
  // check_header runs twice (here and in decode_into); it is a handful of compares.
  std::vector<float> out(check_header(t, limits));
  decode_into(t, limits, out, stats);
  return out;
}

WireTensor encode_tensor(const float* data, std::span<const uint64_t> shape,
                         const EncodeOptions& options, WireStats* stats) {
  WireCodec codec;
  return codec.encode(data, shape, options, stats);
}

std::vector<float> decode_tensor(const WireTensor& tensor, const DecodeLimits& limits,
                                 WireStats* stats) {
  WireCodec codec;
  return codec.decode(wire_view(tensor), limits, stats);
}

}  // namespace lw
