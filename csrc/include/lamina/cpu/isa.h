// isa.h: the CPU paths a build carries, the one chosen at import, and the dispatch macros.
//
// Kernel sources under csrc/cpu/kernels/ are compiled once per ISA with that ISA's flags,
// each copy in its own namespace lamina::cpu::<isa> (LAMINA_ISA_NS). A kernel family's header
// declares its entry points for every ISA with LAMINA_DECLARE_ISA_KERNEL and defines the
// backend-neutral function in lamina::cpu with LAMINA_DISPATCH, which switches on the path
// chosen once at import (cpu_features.cpp + dispatch.cpp).
#pragma once
#include <string>
#include <vector>

namespace lamina::cpu {

enum class Isa : int { generic = 0, avx2 = 1, avx512 = 2 };

struct CpuFeatures {
  bool avx2 = false, fma = false, avx512f = false, avx512dq = false, avx512bw = false,
       avx512vl = false, os_avx = false, os_avx512 = false;
};
CpuFeatures detect_cpu_features();  // cpuid + XCR0; compiled without arch flags

Isa active_isa();
const char* isa_name(Isa isa);
std::vector<Isa> supported_isas();  // what this CPU *and* this build can run
// Chooses the path: the best supported one, or `requested` ("generic"|"avx2"|"avx512").
// Returns an empty string on success, else a message saying why the request was refused.
std::string select_isa(const char* requested);

}  // namespace lamina::cpu

#if defined(LAMINA_HAVE_X86_PATHS) || (defined(LAMINA_ISA_ID) && LAMINA_ISA_ID > 0) || defined(__x86_64__)
#define LAMINA_X86 1
#endif

#ifdef LAMINA_X86
#define LAMINA_DECLARE_ISA_KERNEL(ret, name, params)          \
  namespace lamina::cpu::generic { ret name params; }         \
  namespace lamina::cpu::avx2 { ret name params; }            \
  namespace lamina::cpu::avx512 { ret name params; }
#define LAMINA_DISPATCH(name, ...)                                              \
  switch (::lamina::cpu::active_isa()) {                                        \
    case ::lamina::cpu::Isa::avx512: return ::lamina::cpu::avx512::name(__VA_ARGS__); \
    case ::lamina::cpu::Isa::avx2: return ::lamina::cpu::avx2::name(__VA_ARGS__);     \
    default: return ::lamina::cpu::generic::name(__VA_ARGS__);                  \
  }
#else
#define LAMINA_DECLARE_ISA_KERNEL(ret, name, params) \
  namespace lamina::cpu::generic { ret name params; }
#define LAMINA_DISPATCH(name, ...) return ::lamina::cpu::generic::name(__VA_ARGS__);
#endif
