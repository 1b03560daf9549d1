// Maps the codec's lw::WireTensor (common/wire_codec.h) onto the Cap'n Proto `Tensor`
// struct of layerwire.capnp and back. The reading side enforces list lengths (shape rank,
// data bytes) before copying anything out of a received message; the full checks
// (shape vs rawSize, zstd frame, xxh3) happen in WireCodec::decode.
#pragma once

#include "common/wire_codec.h"
#include "schema/layerwire.capnp.h"

namespace lw {

// Copies every field (the data once, into the message).
void write_tensor(schema::Tensor::Builder builder, const WireTensorView& tensor);
void write_tensor(schema::Tensor::Builder builder, const WireTensor& tensor);

// Zero-copy read: the view's data points into the message, which must outlive the view.
// Refuses a shape longer than limits.max_rank (LW-WIRE-002) and a data field longer than
// wire_max_data_bytes(limits.max_raw_bytes) (LW-WIRE-006). Enum values the schema does not
// know are passed through for WireCodec::check_header to name (LW-WIRE-001 / 005).
WireTensorView view_tensor(schema::Tensor::Reader reader, const DecodeLimits& limits);

// The same checks, then copies the data out (for callers that keep the tensor longer than
// the message).
WireTensor read_tensor(schema::Tensor::Reader reader, const DecodeLimits& limits);

}  // namespace lw
