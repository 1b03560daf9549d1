#include "kernels/cpu/cpu_backend.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "common/error.h"
#include "common/file_util.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/rope.h"

namespace lw {

namespace {
constexpr uint64_t kHugePage = 2ull << 20;
constexpr uint64_t kSmallAlign = 256;

void check_range(const DeviceBuffer& buffer, uint64_t offset, uint64_t bytes, const char* what) {
  uint64_t end = 0;
  LW_CHECK(checked_add(offset, bytes, &end) && end <= buffer.size(),
           std::string(what) + ": range [" + std::to_string(offset) + ", +" +
               std::to_string(bytes) + ") outside buffer of " + std::to_string(buffer.size()));
}
}  // namespace

CpuBackend::CpuBackend(unsigned threads) : CpuBackend(threads, cpu_detect_isa()) {}

CpuBackend::CpuBackend(unsigned threads, CpuIsa isa) : pool_(threads), isa_(isa) {}

std::string CpuBackend::description() const {
  return std::string("cpu (") + cpu_isa_name(isa_) + ", " + std::to_string(pool_.size()) +
         " threads)";
}

void* CpuBackend::alloc_raw(uint64_t bytes) {
  const uint64_t align = bytes >= kHugePage ? kHugePage : kSmallAlign;
  void* p = nullptr;
  if (posix_memalign(&p, align, align_up(bytes, align)) != 0) return nullptr;
#ifdef MADV_HUGEPAGE
  if (align == kHugePage) madvise(p, align_up(bytes, align), MADV_HUGEPAGE);
#endif
  return p;
}

void CpuBackend::free_raw(void* data, uint64_t) { std::free(data); }

void CpuBackend::upload(const DeviceBuffer& buffer, uint64_t offset, const void* src,
                        uint64_t bytes) {
  check_range(buffer, offset, bytes, "upload");
  if (bytes > 0) std::memcpy(buffer.as<uint8_t>(offset), src, bytes);
}

void CpuBackend::download(const DeviceBuffer& buffer, uint64_t offset, void* dst, uint64_t bytes) {
  check_range(buffer, offset, bytes, "download");
  if (bytes > 0) std::memcpy(dst, buffer.as<uint8_t>(offset), bytes);
}

void CpuBackend::copy(const void* src, void* dst, uint64_t bytes) {
  if (bytes > 0) std::memmove(dst, src, bytes);
}

bool CpuBackend::supports(GgmlType type) const {
  switch (type) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16:
    case GgmlType::Q8_0:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
      return true;
    default:
      return false;
  }
}

void CpuBackend::matmul(const Weight& w, const float* x, int64_t n_tok, float* y) {
  lw::matmul(pool_, w.type, w.data, w.rows, w.cols, x, n_tok, y);
}

void CpuBackend::rms_norm(const float* x, const float* weight, int64_t n_rows, int64_t dim,
                          float eps, float* y) {
  lw::rms_norm(pool_, isa_, x, weight, n_rows, dim, eps, y);
}

void CpuBackend::rope(float* x, int64_t n_tok, int64_t row_stride, int64_t n_heads,
                      int64_t head_dim, const int32_t* positions, float theta, RopeMode mode) {
  lw::rope(pool_, x, n_tok, row_stride, n_heads, head_dim, positions, theta, mode);
}

void CpuBackend::add(const float* a, const float* b, int64_t n, float* y) {
  lw::add(pool_, a, b, n, y);
}

void CpuBackend::swiglu(const float* gate, const float* up, int64_t n, float* out) {
  lw::swiglu(pool_, gate, up, n, out);
}

void CpuBackend::embed(const Weight& table, const int32_t* tokens, int64_t n_tok, float* out) {
  embed_rows(pool_, table.type, table.data, table.rows, table.cols, tokens, n_tok, out);
}

void CpuBackend::kv_write(const KvLayerView& kv, const AttentionBatch& batch, const float* k,
                          const float* v) {
  lw::kv_write(pool_, isa_, kv, batch, k, v);
}

void CpuBackend::attention(const KvLayerView& kv, const AttentionBatch& batch, const float* q,
                           int64_t n_heads, float scale, float* out) {
  lw::attention(pool_, isa_, kv, batch, q, n_heads, scale, out);
}

}  // namespace lw
