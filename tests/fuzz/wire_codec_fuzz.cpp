// libFuzzer target for the tensor wire codec (common/wire_codec.h). Two modes, chosen by
// the first byte:
//   even: the input is a received tensor (header bytes, then data); decode must either
//         succeed or throw lw::Error, and never read out of bounds or allocate past limits.
//   odd:  the input is floats to send; encode with options from the header bytes, decode
//         must give back the same values (bit-exact for f32), and a tensor with one
//         corrupted byte must again decode exactly or throw lw::Error.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "common/wire_codec.h"

namespace {

struct Input {
  const uint8_t* p;
  size_t n;
  uint8_t byte() {
    if (!n) return 0;
    --n;
    return *p++;
  }
  uint64_t u64(int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(byte()) << (8 * i);
    return v;
  }
};

lw::DecodeLimits small_limits() {
  lw::DecodeLimits limits;
  limits.max_raw_bytes = 1 << 20;  // keeps every allocation small
  return limits;
}

void decode_received(Input in, lw::WireCodec& codec) {
  lw::WireTensor t;
  t.dtype = static_cast<lw::WireDtype>(in.byte() % 4);
  t.encoding = static_cast<lw::WireEncoding>(in.byte() % 4);
  const int rank = in.byte() % 4;
  for (int i = 0; i < rank; ++i) t.shape.push_back(in.u64(2));
  uint64_t n = 1;
  for (uint64_t d : t.shape) n *= d;  // may wrap: the codec must catch that
  // Mostly a consistent rawSize, sometimes an arbitrary one.
  t.raw_size = in.byte() % 8 ? n * lw::wire_dtype_size(t.dtype) : in.u64(8);
  t.xxh3_64 = in.u64(8);
  t.data.assign(in.p, in.p + in.n);
  try {
    codec.decode(lw::wire_view(t), small_limits());
  } catch (const lw::Error&) {
  }
}

void round_trip(Input in, lw::WireCodec& codec) {
  lw::EncodeOptions opt;
  opt.dtype = static_cast<lw::WireDtype>(in.byte() % 3);
  opt.mode = static_cast<lw::CompressionMode>(in.byte() % 4);
  opt.min_compress_bytes = in.byte();
  const size_t corrupt_at = in.u64(2);
  const uint8_t corrupt_xor = in.byte() | 1;
  const size_t count = in.n / 4;
  std::vector<float> x(count);
  if (count) std::memcpy(x.data(), in.p, count * 4);
  const uint64_t rows = count ? 1 + count % 3 : 0;
  const std::vector<uint64_t> shape = {rows, rows ? count / rows : 0};
  const size_t used = rows * shape[1];

  const lw::WireTensor t = codec.encode(x.data(), shape, opt);
  const std::vector<float> back = codec.decode(lw::wire_view(t), small_limits());
  if (back.size() != used) abort();
  if (t.dtype == lw::WireDtype::F32 && used && std::memcmp(back.data(), x.data(), used * 4)) {
    abort();
  }
  if (t.data.empty()) return;
  lw::WireTensor bad = t;
  bad.data[corrupt_at % bad.data.size()] ^= corrupt_xor;
  try {
    const std::vector<float> again = codec.decode(lw::wire_view(bad), small_limits());
    if (again.size() != back.size() ||
        (used && std::memcmp(again.data(), back.data(), used * 4) != 0)) {
      abort();  // a corruption that decodes must decode to the same values
    }
  } catch (const lw::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lw::WireCodec codec;
  Input in{data, size};
  const uint8_t mode = in.byte();
  if (mode % 2 == 0) {
    decode_received(in, codec);
  } else {
    round_trip(in, codec);
  }
  return 0;
}
