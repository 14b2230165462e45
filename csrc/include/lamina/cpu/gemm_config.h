// gemm_config.h: the register tile per ISA (BLIS naming), for the per-ISA kernel sources.
//   MR x NR  register tile of C held in MR * NV vector accumulators (NR = NV * W)
// The cache blocking (KC, MC, NC, NC_SMALL) is not compiled in: it is derived at import from
// the CPU's own cache sizes (tuning.h, csrc/cpu/dispatch/tuning.cpp).
#pragma once
#include "lamina/cpu/simd.h"
#include "lamina/cpu/tuning.h"

namespace lamina::cpu::LAMINA_ISA_NS::gemm_config {
constexpr int W = simd::W;
constexpr int MR = kRegisterTile[LAMINA_ISA_ID].mr;
constexpr int NR = kRegisterTile[LAMINA_ISA_ID].nr;
constexpr int NV = NR / W;
static_assert(NV * W == NR, "NR must be a whole number of vectors");
// The blocking of this ISA, as chosen at import (or overridden by LAMINA_TUNING / a test).
inline const GemmBlocking& blocking() { return tuning().blocking[LAMINA_ISA_ID]; }
}  // namespace lamina::cpu::LAMINA_ISA_NS::gemm_config
