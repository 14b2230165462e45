// cpu_features.cpp: what the CPU and the OS support. Compiled with NO arch flags, so it runs
// on any x86-64 (or any other) CPU. AVX state must be enabled by the OS (XCR0), not only
// advertised by cpuid: a kernel or hypervisor that does not save zmm registers would corrupt them.
#include "lamina/cpu/isa.h"
#include "lamina/cpu/tuning.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#include <cstdint>
#include <cstring>

namespace lamina::cpu {

static std::uint64_t read_xcr0() {
  std::uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<std::uint64_t>(edx) << 32) | eax;
}

CpuFeatures detect_cpu_features() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27);
  const bool avx = c & (1u << 28);
  f.fma = c & (1u << 12);
  if (osxsave && avx) {
    std::uint64_t xcr0 = read_xcr0();
    f.os_avx = (xcr0 & 0x6) == 0x6;                 // XMM and YMM state
    f.os_avx512 = f.os_avx && (xcr0 & 0xE0) == 0xE0;  // opmask, ZMM_Hi256, Hi16_ZMM
  }
  if (__get_cpuid_max(0, nullptr) >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = b & (1u << 5);
    f.avx512f = b & (1u << 16);
    f.avx512dq = b & (1u << 17);
    f.avx512bw = b & (1u << 30);
    f.avx512vl = b & (1u << 31);
  }
  return f;
}

// Deterministic cache parameters (Intel leaf 4, AMD leaf 0x8000001D: the same layout). Each
// subleaf describes one cache: type in eax[4:0] (0 ends the list, 1 data, 3 unified), level
// in eax[7:5]; size = ways * partitions * line size * sets.
static bool caches_from_leaf(unsigned leaf, CpuIdentity& id) {
  for (unsigned i = 0; i < 16; ++i) {
    unsigned a, b, c, d;
    __cpuid_count(leaf, i, a, b, c, d);
    const unsigned type = a & 0x1f, level = (a >> 5) & 0x7;
    if (type == 0) break;
    if (type != 1 && type != 3) continue;  // instruction caches
    const long size = long((b >> 22) + 1) * long(((b >> 12) & 0x3ff) + 1) * long((b & 0xfff) + 1) *
                      long(c + 1);
    if (level == 1) id.l1d = size;
    if (level == 2) id.l2 = size;
    if (level == 3) id.l3 = size;
  }
  return id.l1d > 0 && id.l2 > 0;
}

CpuIdentity detect_cpu_identity() {
  CpuIdentity id;
  unsigned a, b, c, d;
  const unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf == 0) return id;
  __cpuid(0, a, b, c, d);
  char vendor[13];
  std::memcpy(vendor, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &c, 4);
  vendor[12] = '\0';
  id.vendor = vendor;
  __cpuid(1, a, b, c, d);
  const int base_family = (a >> 8) & 0xf, base_model = (a >> 4) & 0xf;
  id.family = base_family == 0xf ? base_family + int((a >> 20) & 0xff) : base_family;
  id.model = (base_family == 0x6 || base_family == 0xf) ? base_model + int(((a >> 16) & 0xf) << 4)
                                                        : base_model;
  const bool amd = id.vendor == "AuthenticAMD" || id.vendor == "HygonGenuine";
  const unsigned max_ext = __get_cpuid_max(0x80000000u, nullptr);
  if (amd && max_ext >= 0x8000001Du) {
    __cpuid(0x80000001u, a, b, c, d);
    if ((c & (1u << 22)) && caches_from_leaf(0x8000001Du, id)) {  // TOPOEXT
      id.cache_source = "cpuid 0x8000001D";
      return id;
    }
  }
  if (!amd && max_leaf >= 4 && caches_from_leaf(4, id)) {
    id.cache_source = "cpuid leaf 4";
    return id;
  }
  if (max_ext >= 0x80000006u) {  // AMD's legacy leaves: L1d KiB in ecx[31:24] of 0x80000005,
    __cpuid(0x80000005u, a, b, c, d);  // L2 KiB in ecx[31:16], L3 512 KiB units in edx[31:18]
    id.l1d = long(c >> 24) * 1024;
    __cpuid(0x80000006u, a, b, c, d);
    id.l2 = long(c >> 16) * 1024;
    id.l3 = long(d >> 18) * 512 * 1024;
    if (id.l1d > 0 && id.l2 > 0) {
      id.cache_source = "cpuid 0x80000005/6";
      return id;
    }
  }
  id.l1d = id.l2 = id.l3 = 0;
  return id;
}

}  // namespace lamina::cpu
#else
namespace lamina::cpu {
CpuFeatures detect_cpu_features() { return CpuFeatures{}; }
CpuIdentity detect_cpu_identity() { return CpuIdentity{}; }
}  // namespace lamina::cpu
#endif
