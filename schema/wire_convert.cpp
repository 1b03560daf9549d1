#include "schema/wire_convert.h"

#include <string>

#include "common/error.h"

namespace lw {

static_assert(static_cast<uint16_t>(schema::Dtype::F32) == static_cast<uint16_t>(WireDtype::F32));
static_assert(static_cast<uint16_t>(schema::Dtype::F16) == static_cast<uint16_t>(WireDtype::F16));
static_assert(static_cast<uint16_t>(schema::Dtype::BF16) == static_cast<uint16_t>(WireDtype::BF16));
static_assert(static_cast<uint16_t>(schema::Encoding::RAW) ==
              static_cast<uint16_t>(WireEncoding::Raw));
static_assert(static_cast<uint16_t>(schema::Encoding::ZSTD) ==
              static_cast<uint16_t>(WireEncoding::Zstd));
static_assert(static_cast<uint16_t>(schema::Encoding::SHUFFLE_ZSTD) ==
              static_cast<uint16_t>(WireEncoding::ShuffleZstd));

void write_tensor(schema::Tensor::Builder builder, const WireTensorView& t) {
  builder.setDtype(static_cast<schema::Dtype>(static_cast<uint16_t>(t.dtype)));
  builder.setEncoding(static_cast<schema::Encoding>(static_cast<uint16_t>(t.encoding)));
  auto shape = builder.initShape(static_cast<unsigned>(t.shape.size()));
  for (size_t i = 0; i < t.shape.size(); ++i) shape.set(static_cast<unsigned>(i), t.shape[i]);
  builder.setRawSize(t.raw_size);
  builder.setXxh3(t.xxh3_64);
  builder.setData(capnp::Data::Reader(t.data.data(), t.data.size()));
}

void write_tensor(schema::Tensor::Builder builder, const WireTensor& tensor) {
  write_tensor(builder, wire_view(tensor));
}

WireTensorView view_tensor(schema::Tensor::Reader reader, const DecodeLimits& limits) {
  WireTensorView t;
  const auto shape = reader.getShape();
  if (shape.size() > limits.max_rank) {
    throw Error(ErrorCode::kWireShape, "tensor shape: " + std::to_string(shape.size()) +
                                           " dimensions exceed the limit " +
                                           std::to_string(limits.max_rank));
  }
  const capnp::Data::Reader data = reader.getData();
  const uint64_t max_data = wire_max_data_bytes(limits.max_raw_bytes);
  if (data.size() > max_data) {
    throw Error(ErrorCode::kWireTooLarge, "tensor data: " + std::to_string(data.size()) +
                                              " bytes exceed the limit of " +
                                              std::to_string(max_data) + " bytes");
  }
  t.dtype = static_cast<WireDtype>(static_cast<uint16_t>(reader.getDtype()));
  t.encoding = static_cast<WireEncoding>(static_cast<uint16_t>(reader.getEncoding()));
  t.shape.reserve(shape.size());
  for (uint64_t d : shape) t.shape.push_back(d);
  t.raw_size = reader.getRawSize();
  t.xxh3_64 = reader.getXxh3();
  t.data = std::span<const uint8_t>(data.begin(), data.size());
  return t;
}

WireTensor read_tensor(schema::Tensor::Reader reader, const DecodeLimits& limits) {
  WireTensorView v = view_tensor(reader, limits);
  WireTensor t;
  t.dtype = v.dtype;
  t.encoding = v.encoding;
  t.shape = std::move(v.shape);
  t.raw_size = v.raw_size;
  t.xxh3_64 = v.xxh3_64;
  t.data.assign(v.data.begin(), v.data.end());
  return t;
}

}  // namespace lw
