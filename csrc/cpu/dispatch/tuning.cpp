// tuning.cpp: the choices made from the CPU's identity (tuning.h) once at import, and the
// LAMINA_TUNING override. Compiled with no arch flags.
#include "lamina/cpu/tuning.h"

#include <algorithm>
#include <cstdlib>
#include <sstream>

namespace lamina::cpu {
namespace {

Tuning g_tuning;
std::string g_env;  // LAMINA_TUNING (and LAMINA_CONV_ALGO) as given at import, re-applied by reset_tuning

#ifndef LAMINA_CONV_DIRECT_DEFAULT
#define LAMINA_CONV_DIRECT_DEFAULT true
#endif
constexpr long kAssumedL1 = 32 * 1024, kAssumedL2 = 512 * 1024;  // when cpuid says nothing

int round_down_to(long x, int step, int lo, int hi) {
  const long r = std::clamp<long>(x, lo, hi);
  return static_cast<int>(std::max<long>(step, r / step * step));
}

// The GEMM's cache blocking for one register tile, from the cache sizes (BLIS's analytical
// model, Low et al. 2016, with the fractions measured on the two CPUs the project meets):
//   KC: an MR x KC sliver of A and a KC x NR sliver of B are the micro-kernel's operands;
//       the B sliver is reused by every A sliver of the block, so it should stay near L1.
//   MC: the packed A block (MC x KC) stays in L2 while the B panel streams past it.
//   NC: the packed B panel (KC x NC) lives in L3 (or L2 when L3 is small).
//   NC_SMALL: with only one A block the panel is used once, right after packing: keep it in
//       L2 next to the A block.
GemmBlocking blocking_for(RegisterTile t, const CpuIdentity& id) {
  const long l1 = id.l1d > 0 ? id.l1d : kAssumedL1;
  const long l2 = id.l2 > 0 ? id.l2 : kAssumedL2;
  GemmBlocking b;
  b.kc = round_down_to(l1 * t.l1_share_num / t.l1_share_den / (4L * t.nr), 16, t.kc_min, 1024);
  b.mc = round_down_to(l2 / 6 / (4L * b.kc), t.mr, t.mr, 32 * t.mr);
  b.nc = round_down_to(l2 * 2 / (4L * b.kc), 2 * t.nr, 4 * t.nr, 8192);
  b.nc_small = round_down_to(l2 / 2 / (4L * b.kc), t.nr, t.nr, 4096);
  return b;
}

Tuning from_cpu(const CpuIdentity& id) {
  Tuning t;
  t.cpu = id;
  const bool amd = id.vendor == "AuthenticAMD" || id.vendor == "HygonGenuine";
  // Zen 4 (family 0x19) runs each 512-bit operation as two 256-bit halves; Zen 5 (0x1A) has
  // full-width units (desktop and server parts). Gathers are microcoded on every Zen with
  // AVX-512 (a 16-lane vgatherdps costs ~4x the 16 scalar loads it replaces on Zen 4), while
  // Sapphire Rapids gathers at about one element per cycle.
  t.avx512_split = amd && id.family == 0x19;
  t.slow_gather = amd;
  // The small-N path needs op(B)^T contiguous along K. A row-major B is gathered 16 depth
  // steps at a time where gathers are fast, else transposed in 8 x 8 register blocks.
  t.small_n_b = t.slow_gather ? SmallNB::transpose : SmallNB::gather;
  // Its dot kernel in 512 or 256-bit vectors. Where 512-bit operations issue as two halves
  // (Zen 4) the FMA throughput is the same either way, and 256-bit accumulators make the final
  // reduction one fold shorter and the masked K tail half as long; but with 4 x 5 output
  // blocks (9 loads per 20 FMAs) the instruction count is what is left, and 512-bit halves it:
  // measured on Zen 4, interleaved, 512 beat 256 by 8-13 % (64x500x10 trans_b 8.5 vs 9.5 us,
  // 256x1000x16 97 vs 110 us). So 512 on every AVX-512 CPU; 256 stays selectable (tests,
  // LAMINA_TUNING) for a CPU where it measures better.
  t.dot_width = 512;
  // A first conv layer (few taps, wide rows) is faster computed directly than through im2col
  // + GEMM on both CPUs; the switch exists to test and compare the two.
  t.conv_direct = LAMINA_CONV_DIRECT_DEFAULT;
  for (int i = 0; i < 3; ++i) t.blocking[i] = blocking_for(kRegisterTile[i], id);
  t.source = "cpuid";
  return t;
}

bool parse_int(const std::string& v, int lo, int hi, int& out) {
  char* end = nullptr;
  const long x = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || x < lo || x > hi) return false;
  out = static_cast<int>(x);
  return true;
}

}  // namespace

const char* conv_algo_name(ConvAlgo a) {
  switch (a) {
    case ConvAlgo::gemm: return "gemm";
    case ConvAlgo::winograd2: return "winograd2";
    case ConvAlgo::winograd4: return "winograd4";
    default: return "auto";
  }
}

const Tuning& tuning() { return g_tuning; }

GemmBlocking blocking_for(Isa isa, long l1d, long l2) {
  CpuIdentity id;
  id.l1d = l1d;
  id.l2 = l2;
  return blocking_for(kRegisterTile[static_cast<int>(isa)], id);
}

std::string apply_tuning(const std::string& spec) {
  Tuning t = g_tuning;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    const auto eq = item.find('=');
    if (eq == std::string::npos) return "'" + item + "' is not key=value";
    std::string key = item.substr(0, eq);
    const std::string val = item.substr(eq + 1);
    int isa = static_cast<int>(active_isa());
    const auto dot = key.find('.');
    if (dot != std::string::npos) {
      const std::string prefix = key.substr(0, dot);
      key = key.substr(dot + 1);
      isa = -1;
      for (Isa i : {Isa::generic, Isa::avx2, Isa::avx512})
        if (prefix == isa_name(i)) isa = static_cast<int>(i);
      if (isa < 0) return "'" + prefix + "' is not a CPU path (generic, avx2, avx512)";
    }
    GemmBlocking& b = t.blocking[isa];
    const RegisterTile tile = kRegisterTile[isa];
    if (key == "kc" || key == "mc" || key == "nc" || key == "nc_small") {
      int x = 0;
      if (!parse_int(val, 1, 1 << 16, x)) return key + "=" + val + " is not an integer in [1, 65536]";
      // MC must be whole row tiles and the panels whole column tiles: the driver's loops
      // step by them.
      if (key == "kc") b.kc = x;
      if (key == "mc") b.mc = std::max(tile.mr, x / tile.mr * tile.mr);
      if (key == "nc") b.nc = std::max(tile.nr, x / tile.nr * tile.nr);
      if (key == "nc_small") b.nc_small = std::max(tile.nr, x / tile.nr * tile.nr);
    } else if (key == "small_n_b") {
      if (val == "gather") t.small_n_b = SmallNB::gather;
      else if (val == "transpose") t.small_n_b = SmallNB::transpose;
      else return "small_n_b=" + val + ": expected gather or transpose";
    } else if (key == "conv_direct") {
      if (val != "0" && val != "1") return "conv_direct=" + val + ": expected 0 or 1";
      t.conv_direct = val == "1";
    } else if (key == "conv_algo") {
      bool found = false;
      for (ConvAlgo a : {ConvAlgo::auto_, ConvAlgo::gemm, ConvAlgo::winograd2, ConvAlgo::winograd4})
        if (val == conv_algo_name(a)) {
          t.conv_algo = a;
          found = true;
        }
      if (!found) return "conv_algo=" + val + ": expected auto, gemm, winograd2 or winograd4";
    } else if (key == "wino_tiles") {
      int x = 0;
      if (!parse_int(val, 0, 1 << 16, x)) return "wino_tiles=" + val + " is not an integer in [0, 65536]";
      t.wino_tiles = x;
    } else if (key == "dot_width") {
      if (val != "256" && val != "512") return "dot_width=" + val + ": expected 256 or 512";
      t.dot_width = val == "256" ? 256 : 512;
    } else {
      return "unknown key '" + key +
             "' (expected kc, mc, nc, nc_small, small_n_b, dot_width, conv_direct, conv_algo, wino_tiles)";
    }
  }
  if (t.source.find("LAMINA_TUNING") == std::string::npos && !spec.empty()) t.source += " + override";
  g_tuning = t;
  return {};
}

void reset_tuning() {
  g_tuning = from_cpu(detect_cpu_identity());
  if (!g_env.empty()) {
    const std::string source = g_tuning.source;
    apply_tuning(g_env);
    g_tuning.source = g_env.rfind("conv_algo=", 0) == 0 ? source : "cpuid + LAMINA_TUNING";
  }
}

std::string init_tuning(const char* env, const char* conv_algo_env) {
  g_env.clear();
  reset_tuning();
  std::string spec = env ? env : "";
  if (!spec.empty()) {
    std::string err = apply_tuning(spec);
    if (!err.empty()) return "LAMINA_TUNING=" + spec + ": " + err;
  }
  if (conv_algo_env != nullptr && *conv_algo_env != '\0') {
    const std::string algo = std::string("conv_algo=") + conv_algo_env;
    std::string err = apply_tuning(algo);
    if (!err.empty()) return std::string("LAMINA_CONV_ALGO=") + conv_algo_env + ": expected auto, gemm, winograd2 or winograd4";
    spec += (spec.empty() ? "" : ",") + algo;
  }
  if (spec.empty()) return {};
  g_env = spec;
  // LAMINA_CONV_ALGO alone leaves the source "cpuid": it shows in backend_info()'s variants.
  g_tuning.source = env && *env ? "cpuid + LAMINA_TUNING" : "cpuid";
  return {};
}

}  // namespace lamina::cpu
