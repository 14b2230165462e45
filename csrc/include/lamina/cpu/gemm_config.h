// gemm_config.h: register tile and cache blocking per ISA (BLIS naming).
//   MR x NR  register tile of C held in MR * NV vector accumulators (NR = NV * W)
//   KC       depth of one packed block: an MR x KC sliver of A and a KC x NR sliver of B
//            together stay in L1 while the micro-kernel runs
//   MC       rows of A packed per block (MC x KC floats live in L2)
//   NC       columns of B packed per panel (KC x NC floats live in L2/L3)
//   NC_SMALL the panel width when all of A is one block (the panel is used once: keep it in L2)
// Measured on a 2-core Sapphire Rapids (48 KiB L1d, 2 MiB L2 per core); see benchmarks/.
#pragma once
#include "lamina/cpu/simd.h"

namespace lamina::cpu::LAMINA_ISA_NS::gemm_config {
#if LAMINA_ISA_ID == 2
// 14 x 32: 28 zmm accumulators + 2 for B + 1 broadcast = 31 of 32 registers.
constexpr int MR = 14, NV = 2;
constexpr int KC = 512, MC = 14 * 12, NC = 2048, NC_SMALL = 512;
#elif LAMINA_ISA_ID == 1
// 6 x 16: 12 ymm accumulators + 2 for B + 1 broadcast of 16 registers.
constexpr int MR = 6, NV = 2;
constexpr int KC = 256, MC = 6 * 28, NC = 2048, NC_SMALL = 512;
#else
// Portable scalar tile: simple and correct, left to the compiler.
constexpr int MR = 4, NV = 8;
constexpr int KC = 256, MC = 4 * 32, NC = 1024, NC_SMALL = 512;
#endif
constexpr int W = simd::W;
constexpr int NR = NV * W;
}  // namespace lamina::cpu::LAMINA_ISA_NS::gemm_config
