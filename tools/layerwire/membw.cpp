#include "tools/layerwire/membw.h"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "common/error.h"

namespace lw::cli {

namespace {
struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
std::unique_ptr<uint8_t, FreeDeleter> alloc_touched(uint64_t bytes, int fill) {
  void* p = nullptr;
  if (posix_memalign(&p, 2u << 20, bytes) != 0) {
    throw Error(ErrorCode::kBackendDevice,
                "bandwidth test: allocating " + std::to_string(bytes) + " bytes failed");
  }
#ifdef MADV_HUGEPAGE
  madvise(p, bytes, MADV_HUGEPAGE);
#endif
  std::memset(p, fill, bytes);  // fault every page in before timing
  return std::unique_ptr<uint8_t, FreeDeleter>(static_cast<uint8_t*>(p));
}
}  // namespace

CopyBandwidth measure_copy_bandwidth(ThreadPool& pool, uint64_t buffer_bytes, int reps) {
  buffer_bytes = std::max<uint64_t>(buffer_bytes / 4096 * 4096, 4096);
  auto src = alloc_touched(buffer_bytes, 1);
  auto dst = alloc_touched(buffer_bytes, 2);
  const int64_t parts = static_cast<int64_t>(pool.size()) * 8;  // dynamic balance
  const uint64_t slice = (buffer_bytes / parts + 63) / 64 * 64;
  CopyBandwidth result;
  result.buffer_bytes = buffer_bytes;
  result.threads = pool.size();
  result.reps = reps;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(parts, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const uint64_t off = static_cast<uint64_t>(i) * slice;
        if (off >= buffer_bytes) continue;
        const uint64_t len = std::min(slice, buffer_bytes - off);
        std::memcpy(dst.get() + off, src.get() + off, len);
      }
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    result.bytes_per_s = std::max(result.bytes_per_s, 2.0 * buffer_bytes / s);
  }
  return result;
}

}  // namespace lw::cli
