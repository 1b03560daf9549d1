// Whole-array f32 <-> f16 conversion for the wire codec: F16C instructions where the CPU has
// them (chosen at run time), the exact scalar conversions of common/half.h elsewhere. Both
// paths give identical bits for every non-NaN value (IEEE round-to-nearest-even); a NaN stays
// a NaN (its payload may differ).
#pragma once

#include <cstddef>
#include <cstdint>

namespace lw {

// Converts n floats to f16. Returns false when a finite input rounds to +-inf (|x| >= 65520):
// the caller must then send f32 instead; dst is fully written either way.
bool fp32_to_fp16_array(const float* src, size_t n, void* dst);

// Converts n f16 values to f32 (exact). The 16-bit buffers need no particular alignment.
void fp16_to_fp32_array(const void* src, size_t n, float* dst);

// Which path the calls above take on this CPU ("f16c" or "scalar"); the *_scalar variants are
// always the portable path, kept for tests.
const char* half_array_path();
bool fp32_to_fp16_array_scalar(const float* src, size_t n, void* dst);
void fp16_to_fp32_array_scalar(const void* src, size_t n, float* dst);

}  // namespace lw
