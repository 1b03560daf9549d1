#include "kernels/cpu/cpu_features.h"

namespace lw {

CpuIsa cpu_detect_isa() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c")) {
    return CpuIsa::Avx2;
  }
#endif
  return CpuIsa::Portable;
}

const char* cpu_isa_name(CpuIsa isa) { return isa == CpuIsa::Avx2 ? "avx2" : "portable"; }

}  // namespace lw
