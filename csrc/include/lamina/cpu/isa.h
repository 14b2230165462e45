// isa.h: the CPU paths a build carries and the one chosen at import.
//
// Kernel sources under csrc/cpu/kernels/ are compiled once per ISA with that ISA's flags,
// each copy in its own namespace lamina::cpu::<isa> (LAMINA_ISA_NS); the entry points of
// lamina/<family>.h switch on the path chosen once at import (cpu_features.cpp +
// cpu/dispatch/isa.cpp; the switches: cpu/dispatch/isa_kernel.h and <family>.cpp).
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
