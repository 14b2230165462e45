// cuda/launch_plan.h: the launch geometry of every kernel family, as plain host functions
// (no CUDA types), so that the sizes a launch would use can be checked against the device's
// limits for any M, N, K without running anything (lamina._cuda.*_plan, tests/test_cuda_fixes.py).
//
// The rule: only gridDim.x may grow with a size, and it is capped; a kernel whose work can
// exceed its grid loops over it (grid-stride over elements, rows or tiles). gridDim.y stays 1;
// gridDim.z carries the GEMM's K splits, which are bounded (<= kMaxSplits).
//
// sm_75..sm_90 limits: threads per block <= 1024; grid x <= 2^31 - 1; grid y, z <= 65,535.
#pragma once
#include <algorithm>
#include <cstdint>

namespace lamina::cuda {

using plan_index_t = std::int64_t;

constexpr plan_index_t kMaxGridX = 2147483647;  // 2^31 - 1
constexpr plan_index_t kMaxGridYZ = 65535;
constexpr int kMaxThreadsPerBlock = 1024;

struct LaunchPlan {
  unsigned grid[3] = {1, 1, 1};
  unsigned block[3] = {1, 1, 1};
};

// Grid-stride element kernels (launch_each): 256 threads, at most `cap` blocks.
constexpr int kEachThreads = 256;
inline unsigned each_blocks(plan_index_t n, plan_index_t cap = 65536) {
  const plan_index_t want = (n + kEachThreads - 1) / kEachThreads;
  return static_cast<unsigned>(std::max<plan_index_t>(1, std::min<plan_index_t>({want, cap, kMaxGridX})));
}
inline LaunchPlan each_plan(plan_index_t n, plan_index_t cap = 65536) {
  LaunchPlan p;
  p.grid[0] = each_blocks(n, cap);
  p.block[0] = kEachThreads;
  return p;
}

// One block per row, the blocks looping over rows when there are more rows than blocks
// (conv2d_backward's grad_b row sums).
constexpr plan_index_t kRowBlocksCap = 65535;
inline LaunchPlan block_per_row_plan(plan_index_t rows) {
  LaunchPlan p;
  p.grid[0] = static_cast<unsigned>(std::max<plan_index_t>(1, std::min(rows, kRowBlocksCap)));
  p.block[0] = kEachThreads;
  return p;
}

// One warp per row (softmax, log_softmax, softmax_backward, softmax cross-entropy, argmax):
// 8 warps of 32 lanes per block, each warp striding over rows by the grid's warp count.
constexpr int kWarpRowsPerBlock = 8;
inline LaunchPlan warp_per_row_plan(plan_index_t rows) {
  LaunchPlan p;
  p.grid[0] = static_cast<unsigned>(
      std::max<plan_index_t>(1, std::min<plan_index_t>((rows + kWarpRowsPerBlock - 1) / kWarpRowsPerBlock, 65536)));
  p.block[0] = 32 * kWarpRowsPerBlock;
  return p;
}

// The tiled SGEMM: a tile shape by the product's shape, tiles flattened onto gridDim.x (a block
// loops over tiles when there are more than kMaxGemmBlocks), the K range split over gridDim.z
// when the tiles cannot fill the device's `sms` multiprocessors twice and K is long.
enum GemmTile : int { kTile64x64 = 0, kTile16x128 = 1, kTile128x16 = 2 };
constexpr int kGemmBK = 16;
constexpr plan_index_t kMaxSplits = 64;
constexpr plan_index_t kMaxGemmBlocks = plan_index_t(1) << 30;

struct GemmPlan {
  LaunchPlan launch;
  int tile;                       // GemmTile
  int bm, bn;                     // the tile's rows and columns of C
  plan_index_t tiles_m, tiles_n;  // tiles along M and N (tiles_m * tiles_n in all)
  plan_index_t splits;            // K ranges (gridDim.z); 1: no split
  plan_index_t k_chunk;           // the K range of one split, a multiple of kGemmBK
};

inline GemmPlan gemm_plan(plan_index_t M, plan_index_t N, plan_index_t K, int sms) {
  GemmPlan p{};
  if (M <= 16) p.tile = kTile16x128, p.bm = 16, p.bn = 128;
  else if (N <= 16) p.tile = kTile128x16, p.bm = 128, p.bn = 16;
  else p.tile = kTile64x64, p.bm = 64, p.bn = 64;
  p.tiles_m = std::max<plan_index_t>(1, (M + p.bm - 1) / p.bm);
  p.tiles_n = std::max<plan_index_t>(1, (N + p.bn - 1) / p.bn);
  // (saturated: past 2^62 tiles C could not be held anyway, and the grid is capped far below)
  const plan_index_t tiles =
      p.tiles_m > (plan_index_t(1) << 62) / p.tiles_n ? (plan_index_t(1) << 62) : p.tiles_m * p.tiles_n;
  const plan_index_t want = 2 * static_cast<plan_index_t>(std::max(sms, 1));
  plan_index_t splits = 1;
  if (tiles < want && K >= 512) splits = std::min<plan_index_t>({(want + tiles - 1) / tiles, K / 256, kMaxSplits});
  const plan_index_t kk = std::max<plan_index_t>(K, 1);
  p.k_chunk = ((kk + splits - 1) / splits + kGemmBK - 1) / kGemmBK * kGemmBK;
  p.splits = (kk + p.k_chunk - 1) / p.k_chunk;
  p.launch.grid[0] = static_cast<unsigned>(std::min(tiles, kMaxGemmBlocks));
  p.launch.grid[1] = 1;
  p.launch.grid[2] = static_cast<unsigned>(p.splits);
  p.launch.block[0] = 256;
  return p;
}

}  // namespace lamina::cuda
