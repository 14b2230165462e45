// isa.cpp: picks the CPU path once (best available, or LAMINA_CPU's request) and holds
// the thread count every parallel region uses. Compiled with no arch flags.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "lamina/common.h"
#include "lamina/cpu/isa.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace lamina {

static std::atomic<int> g_threads{0};

int num_threads() {
  int t = g_threads.load(std::memory_order_relaxed);
  if (t > 0) return t;
#ifdef _OPENMP
  t = omp_get_max_threads();
#else
  t = 1;
#endif
  g_threads.store(t, std::memory_order_relaxed);
  return t;
}

void set_num_threads(int n) { g_threads.store(n < 1 ? 1 : n, std::memory_order_relaxed); }

}  // namespace lamina

namespace lamina::cpu {

static Isa g_isa = Isa::generic;

Isa active_isa() { return g_isa; }

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "generic";
  }
}

// LAMINA_CPU_DISABLE=avx512[,avx2] hides paths from detection (like NumPy's
// NPY_DISABLE_CPU_FEATURES): to test a machine without them, or to work around a bad one.
static bool disabled(Isa isa) {
  const char* env = std::getenv("LAMINA_CPU_DISABLE");
  if (!env) return false;
  std::string list = std::string(",") + env + ",", name = std::string(",") + isa_name(isa) + ",";
  return list.find(name) != std::string::npos;
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> v{Isa::generic};
#ifdef LAMINA_HAVE_X86_PATHS
  CpuFeatures f = detect_cpu_features();
  if (f.os_avx && f.avx2 && f.fma && !disabled(Isa::avx2)) v.push_back(Isa::avx2);
  if (f.os_avx512 && f.avx512f && f.avx512dq && f.avx512bw && f.avx512vl && f.avx2 && f.fma &&
      !disabled(Isa::avx512))
    v.push_back(Isa::avx512);
#endif
  return v;
}

std::string select_isa(const char* requested) {
  std::vector<Isa> ok = supported_isas();
  if (requested == nullptr || *requested == '\0') {
    g_isa = ok.back();
    return {};
  }
  std::string avail;
  for (Isa i : ok) avail += std::string(avail.empty() ? "" : ", ") + isa_name(i);
  for (Isa cand : {Isa::generic, Isa::avx2, Isa::avx512}) {
    if (std::strcmp(requested, isa_name(cand)) != 0) continue;
    for (Isa i : ok) {
      if (i == cand) {
        g_isa = cand;
        return {};
      }
    }
    return std::string("LAMINA_CPU=") + requested +
           " asks for a path this CPU or this build cannot run; available: " + avail;
  }
  return std::string("LAMINA_CPU=") + requested +
         " is not a known CPU path; expected one of generic, avx2, avx512 (available here: " +
         avail + ")";
}

}  // namespace lamina::cpu
