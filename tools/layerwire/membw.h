// The machine's memory bandwidth as `layerwire bench` measures it: a multi-threaded memcpy
// between two large buffers (far larger than the caches), counting bytes read plus bytes
// written, best of several repetitions (as STREAM reports).
#pragma once

#include <cstdint>

#include "kernels/cpu/thread_pool.h"

namespace lw::cli {

struct CopyBandwidth {
  double bytes_per_s = 0;     // (read + write) bytes per second, best repetition
  uint64_t buffer_bytes = 0;  // size of each of the two buffers
  unsigned threads = 0;
  int reps = 0;
};

CopyBandwidth measure_copy_bandwidth(ThreadPool& pool, uint64_t buffer_bytes, int reps);

}  // namespace lw::cli
