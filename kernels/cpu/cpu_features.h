// Run-time choice of the CPU instruction set for the fast kernels. Every fast op takes a
// CpuIsa so tests can run the portable path on any CPU and the AVX2 path where present;
// the CPU backend passes cpu_detect_isa().
#pragma once

namespace lw {

enum class CpuIsa {
  Portable,  // plain C++ (the compiler may still auto-vectorize for the base ISA)
  Avx2,      // AVX2 + FMA + F16C, compiled per function with target attributes
};

// The best ISA this CPU supports (checked with __builtin_cpu_supports).
CpuIsa cpu_detect_isa();
const char* cpu_isa_name(CpuIsa isa);

}  // namespace lw
