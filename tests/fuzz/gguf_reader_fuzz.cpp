// libFuzzer target for the GGUF reader: any input must parse or throw lw::Error; crashes,
// sanitizer reports, leaks and other exception types are findings.
// Run: gguf_reader_fuzz -max_total_time=60 tests/fuzz/corpus/gguf
#include <cstddef>
#include <cstdint>

#include "common/error.h"
#include "fragments/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    lw::GgufFile f = lw::GgufFile::parse(data, size, "fuzz.gguf");
    // Touch every tensor's first and last byte: the reader promised they lie inside the input.
    volatile uint8_t sink = 0;
    for (const lw::GgufTensorInfo& t : f.tensors()) {
      sink = sink + f.tensor_data(t)[0] + f.tensor_data(t)[t.size - 1];
    }
    (void)sink;
  } catch (const lw::Error&) {
  }
  return 0;
}
