// tuning.h: what lamina knows about the CPU beyond its instruction sets (vendor, family,
// cache sizes), and the choices made from it once at import: the GEMM's cache blocking per
// ISA and the variants of paths whose best form differs between microarchitectures.
//
// Detected with cpuid (cpu_features.cpp: leaf 4 on Intel, 0x8000001D on AMD, the legacy AMD
// leaves 0x80000005/6 as a fallback); computed in tuning.cpp; LAMINA_TUNING overrides any
// of it for experiments ("kc=256,mc=168,small_n_b=transpose,dot_width=256"); backend_info()
// reports all of it. Kernels read tuning() on every call (a few loads), so tests may change
// it at run time (_native._set_tuning) to force each variant.
#pragma once
#include <string>

#include "lamina/cpu/isa.h"

namespace lamina::cpu {

struct CpuIdentity {
  std::string vendor;     // "GenuineIntel", "AuthenticAMD", ... or "" off x86
  int family = 0, model = 0;
  long l1d = 0, l2 = 0, l3 = 0;  // bytes per core (L3: the whole cache one core can reach)
  std::string cache_source;      // "cpuid leaf 4", "cpuid 0x8000001D", ... or "assumed"
};
CpuIdentity detect_cpu_identity();  // cpu_features.cpp, no arch flags

// BLIS blocking of the GEMM driver (csrc/cpu/kernels/gemm.cpp; gemm_config.h for MR, NR).
struct GemmBlocking {
  int kc = 0, mc = 0, nc = 0, nc_small = 0;
};

// How the small-N GEMM (sgemm_dot.h) gets op(B)^T when B is row-major.
enum class SmallNB : int { gather = 0, transpose = 1 };

// How a 3x3 stride-1 convolution is computed (csrc/cpu/kernels/winograd.h): by the measured
// rule, or forced (tests, comparisons) to im2col + GEMM or Winograd F(2x2, 3x3) / F(4x4, 3x3)
// wherever that algorithm applies. Set by the key conv_algo or by LAMINA_CONV_ALGO.
enum class ConvAlgo : int { auto_ = 0, gemm = 1, winograd2 = 2, winograd4 = 4 };
const char* conv_algo_name(ConvAlgo a);

struct Tuning {
  CpuIdentity cpu;
  bool avx512_split = false;   // 512-bit operations issue as two 256-bit halves (Zen 4)
  bool slow_gather = false;    // AVX-512 gathers are microcoded (AMD Zen 4/5)
  SmallNB small_n_b = SmallNB::gather;
  int dot_width = 512;         // vector bits of the small-N dot kernel on the avx512 path
  bool conv_direct = true;     // direct convolution for wide planes with few taps (conv_direct.h)
  ConvAlgo conv_algo = ConvAlgo::auto_;
  int wino_tiles = 0;          // Winograd tiles per cache group (0: from the L2 size)
  GemmBlocking blocking[3];    // per Isa (generic, avx2, avx512)
  std::string source;          // "cpuid" or "cpuid + LAMINA_TUNING"
};

const Tuning& tuning();
// The blocking the model chooses for register tile `isa` on a CPU with these caches (bytes).
GemmBlocking blocking_for(Isa isa, long l1d, long l2);
// Applies "key=value,..." over the current tuning (keys: kc, mc, nc, nc_small -- for the
// active ISA unless prefixed "avx2." etc. --, small_n_b, dot_width). Returns "" or why not.
std::string apply_tuning(const std::string& spec);
void reset_tuning();  // back to what cpuid chose (and LAMINA_TUNING, when `with_env`)
// Once at import; "" or the error. conv_algo_env: LAMINA_CONV_ALGO (applied after env).
std::string init_tuning(const char* env, const char* conv_algo_env = nullptr);

// The register tile (MR rows x NR columns of C) of each ISA's micro-kernel, indexed by Isa:
// generic 4 x 8 scalar, AVX2 6 x 16 (12 of 16 ymm), AVX-512 14 x 32 (28 of 32 zmm).
// gemm_config.h takes its MR and NR from here; the blocking is derived from it.
// l1_share: the share of L1d the KC x NR sliver of B may take (numerator / denominator).
// The 6 x 16 tile loads 2 vectors of B per 12 FMAs and needs its sliver in L1 (half of it,
// as BLIS's Haswell blocking); the 14 x 32 tile loads 2 per 28 FMAs, so its sliver may
// spill to L2 and a deeper KC (4/3 of L1) pays off in fewer passes over C.
// kc_min: the shallowest KC. The 14 x 32 tile's sliver streams from L2 at full speed, so
// where L1 is small its KC is not cut below 512: Zen 4's 32 KiB gave 336, and 512 measured
// 3-5 % faster on 1024^3 and 2048^3 (interleaved, 1 thread; each micro-kernel call's fixed
// work on its C tile spread over more depth steps). Sapphire Rapids' 48 KiB gives 512 anyway.
struct RegisterTile {
  int mr, nr, l1_share_num, l1_share_den, kc_min;
};
constexpr RegisterTile kRegisterTile[3] = {{4, 8, 1, 2, 128}, {6, 16, 1, 2, 128}, {14, 32, 4, 3, 512}};

}  // namespace lamina::cpu
