// emu.cpp: the CUDA runtime and execution model on the CPU (the API of csrc/cuda/emu/cuda_runtime.h).
//
// Devices and streams: every stream (the legacy default stream of each device, and each
// created stream) is a queue of operations (kernels, copies, memsets, frees, event markers),
// each with a global sequence number. Nothing runs when queued: a stream's queue runs up to a
// point when something needs that point reached (a synchronisation, a synchronous copy, an event
// synchronisation, or an operation of another stream that waits on an event recorded there), and
// the legacy stream's implicit ordering with blocking streams is honoured as each operation runs.
// All device work runs under one lock, one operation at a time, as one device would order it.
//
// Kernels: a launch runs its blocks one after another; a block's threads are fibers on stacks of
// their own, switched by a few instructions of assembly on x86-64 (ucontext elsewhere), with the
// AddressSanitizer fiber annotations in sanitizer builds. The scheduler runs every runnable
// thread, in an order shuffled on each pass, until each has finished or waits at a rendezvous;
// then it completes the warp operations whose lanes have all arrived, or, when none is pending,
// the block barrier, and reports any rendezvous that can never complete as the kernel's error.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "cuda_runtime.h"
#include "emu_api.h"

#if defined(__SANITIZE_ADDRESS__)
#define LAMINA_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LAMINA_EMU_ASAN 1
#endif
#endif
#if defined(LAMINA_EMU_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

// ---- objects behind the handles --------------------------------------------------------------
namespace lamina_emu {
struct Op {
  std::uint64_t seq;
  std::function<void()> run;
};
}  // namespace lamina_emu

struct CUstream_st {
  // First member, read by the stand-in cuBLAS (cublas_emu.cpp) from the stream it is given.
  const lamina_emu::RuntimeApi* api = lamina_emu::runtime_api();
  int device = 0;
  bool nonblocking = false;
  bool legacy = false;
  std::deque<lamina_emu::Op> queue;
  std::uint64_t done = 0;  // sequence number of the last operation run
};
struct CUevent_st {
  int device = 0;
  unsigned flags = 0;
  bool recorded = false;
  CUstream_st* stream = nullptr;
  std::uint64_t seq = 0;
};
struct CUmemPoolHandle_st {
  int device = 0;
  bool is_default = false;
  std::uint64_t used = 0, reserved = 0, used_high = 0, reserved_high = 0, threshold = 0;
};

namespace lamina_emu {
namespace {

constexpr std::uint32_t kFreshWord = 0x7FF7A5A5u;  // a NaN as float32, and as float64 in pairs
constexpr std::uint32_t kFreedWord = 0x7FF7DEADu;
constexpr std::size_t kQuarantineBytes = std::size_t(256) << 20;
constexpr unsigned kMaxThreads = 1024;

struct Device {
  CUstream_st legacy;
  CUmemPoolHandle_st default_pool;
  std::uint64_t malloc_bytes = 0;  // cudaMalloc (outside the pools)
};
struct Alloc {
  std::size_t size;
  int device;
  CUmemPoolHandle_st* pool;  // nullptr: cudaMalloc, or pinned host memory
  bool host;
  bool freeing;  // a free is queued
};

struct Global {
  std::recursive_mutex mu;
  int device_count = 1, sms = 132;
  std::uint64_t capacity = std::uint64_t(4) << 30;
  std::uint64_t seed = 0x5eed;
  std::vector<std::unique_ptr<Device>> devices;
  std::set<CUstream_st*> streams;
  std::set<CUevent_st*> events;
  std::set<CUmemPoolHandle_st*> pools;
  std::map<std::uintptr_t, Alloc> allocs;
  std::deque<std::pair<void*, std::size_t>> quarantine;
  std::size_t quarantine_bytes = 0;
  std::uint64_t seq = 0, launches = 0;
  cudaError_t async_error = cudaSuccess;  // a kernel's failure, reported by the next synchronisation
  std::string async_message;
  std::map<int, std::string> detail;  // the latest detailed message per error code
  std::map<const void*, int> max_dynamic_shared;
};

Global& G() {
  static Global* g = [] {
    auto* x = new Global;
    auto env = [](const char* name, long long lo, long long hi, long long def) {
      const char* s = std::getenv(name);
      if (!s || !*s) return def;
      char* end = nullptr;
      long long v = std::strtoll(s, &end, 0);
      if (*end || v < lo || v > hi) {
        std::fprintf(stderr, "lamina CUDA emulator: ignoring %s=%s (expected %lld..%lld)\n", name, s, lo, hi);
        return def;
      }
      return v;
    };
    x->device_count = static_cast<int>(env("LAMINA_CUDA_EMU_DEVICES", 1, 8, 1));
    x->sms = static_cast<int>(env("LAMINA_CUDA_EMU_SMS", 1, 1024, 132));
    x->capacity = static_cast<std::uint64_t>(env("LAMINA_CUDA_EMU_MEMORY", 1 << 20, LLONG_MAX, 4LL << 30));
    x->seed = static_cast<std::uint64_t>(env("LAMINA_CUDA_EMU_SEED", 0, LLONG_MAX, 0x5eed));
    for (int d = 0; d < x->device_count; ++d) {
      auto dev = std::make_unique<Device>();
      dev->legacy.device = d;
      dev->legacy.legacy = true;
      dev->default_pool.device = d;
      dev->default_pool.is_default = true;
      x->pools.insert(&dev->default_pool);
      x->devices.push_back(std::move(dev));
    }
    return x;
  }();
  return *g;
}
using Lock = std::lock_guard<std::recursive_mutex>;

thread_local cudaError_t t_last = cudaSuccess;
thread_local int t_device = 0;

cudaError_t fail(cudaError_t e, const std::string& msg) {
  G().detail[e] = "lamina CUDA emulator: " + msg;
  t_last = e;
  return e;
}

// ---- streams ---------------------------------------------------------------------------------
CUstream_st* resolve(cudaStream_t s) {
  Global& g = G();
  if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return &g.devices[t_device]->legacy;
  return g.streams.count(s) ? s : nullptr;
}
bool alive(CUstream_st* s) {
  Global& g = G();
  if (s->legacy) return true;
  return g.streams.count(s) != 0;
}

std::uint64_t enqueue(CUstream_st* s, std::function<void()> fn) {
  const std::uint64_t seq = ++G().seq;
  s->queue.push_back(Op{seq, std::move(fn)});
  return seq;
}

// Runs stream s's operations up to sequence number `upto`, each after what it implicitly waits
// for (a legacy stream and the blocking streams of its device wait for each other).
void run_until(CUstream_st* s, std::uint64_t upto) {
  Global& g = G();
  while (!s->queue.empty() && s->queue.front().seq <= upto) {
    Op op = std::move(s->queue.front());
    s->queue.pop_front();
    if (s->legacy) {
      std::vector<CUstream_st*> blocking;
      for (CUstream_st* b : g.streams)
        if (b->device == s->device && !b->nonblocking) blocking.push_back(b);
      for (CUstream_st* b : blocking) run_until(b, op.seq - 1);
    } else if (!s->nonblocking) {
      run_until(&g.devices[s->device]->legacy, op.seq - 1);
    }
    op.run();
    s->done = op.seq;
  }
}

void run_all() {
  Global& g = G();
  for (;;) {
    bool any = false;
    for (auto& d : g.devices)
      if (!d->legacy.queue.empty()) { run_until(&d->legacy, UINT64_MAX); any = true; }
    std::vector<CUstream_st*> all(g.streams.begin(), g.streams.end());
    for (CUstream_st* s : all)
      if (!s->queue.empty()) { run_until(s, UINT64_MAX); any = true; }
    if (!any) return;
  }
}

// After a synchronisation the pools give back what they cache above their release threshold.
void release_pools() {
  for (CUmemPoolHandle_st* p : G().pools)
    if (p->reserved > std::max(p->used, p->threshold)) p->reserved = std::max(p->used, p->threshold);
}

cudaError_t report_async() {
  Global& g = G();
  release_pools();
  if (g.async_error == cudaSuccess) return cudaSuccess;
  const cudaError_t e = g.async_error;
  g.async_error = cudaSuccess;
  return fail(e, g.async_message);
}

// ---- memory ----------------------------------------------------------------------------------
void fill_words(void* p, std::size_t n, std::uint32_t word) {
  auto* b = static_cast<unsigned char*>(p);
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) std::memcpy(b + i, &word, 4);
  for (; i < n; ++i) b[i] = static_cast<unsigned char>(word >> (8 * (i % 4)));
}

const Alloc* find_range(const void* p, std::size_t n, std::uintptr_t* base = nullptr) {
  Global& g = G();
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  auto it = g.allocs.upper_bound(a);
  if (it == g.allocs.begin()) return nullptr;
  --it;
  const std::size_t size = it->second.size;
  if (a < it->first || a - it->first > size || n > size - (a - it->first)) return nullptr;
  if (a - it->first == size && size != 0 && n != 0) return nullptr;
  if (base) *base = it->first;
  return &it->second;
}
bool device_range(const void* p, std::size_t n) {
  const Alloc* a = find_range(p, n);
  return a && !a->host;
}

cudaError_t allocate(void** out, std::size_t n, int device, CUmemPoolHandle_st* pool, bool host) {
  Global& g = G();
  if (!out) return fail(cudaErrorInvalidValue, "allocation: the output pointer is null");
  *out = nullptr;
  if (!host) {
    std::uint64_t reserved = 0;
    for (CUmemPoolHandle_st* p : g.pools)
      if (p->device == device) reserved += p->reserved;
    reserved += g.devices[device]->malloc_bytes;
    const std::uint64_t grow = pool ? (pool->used + n > pool->reserved ? pool->used + n - pool->reserved : 0) : n;
    if (reserved + grow > g.capacity)
      return fail(cudaErrorMemoryAllocation, "out of device memory: " + std::to_string(n) + " bytes asked, " +
                                                 std::to_string(reserved) + " of " + std::to_string(g.capacity) +
                                                 " reserved on device " + std::to_string(device));
  }
  void* p = nullptr;
  if (posix_memalign(&p, 256, n ? n : 1) != 0) return fail(cudaErrorMemoryAllocation, "host memory exhausted");
  fill_words(p, n, kFreshWord);
  g.allocs[reinterpret_cast<std::uintptr_t>(p)] = Alloc{n, device, pool, host, false};
  if (pool) {
    pool->used += n;
    pool->reserved = std::max(pool->reserved, pool->used);
    pool->used_high = std::max(pool->used_high, pool->used);
    pool->reserved_high = std::max(pool->reserved_high, pool->reserved);
  } else if (!host) {
    g.devices[device]->malloc_bytes += n;
  }
  *out = p;
  return cudaSuccess;
}

// The free itself, when it runs in stream order: poisoned, kept in quarantine (never handed out
// again while there) so a late reader sees the poison, not another buffer's data.
// The pool's accounting changes when the free is queued: later allocations in stream order may
// take its bytes, as a stream-ordered pool reuses them (the addresses are never reused here).
void unaccount(const Alloc& a) {
  if (a.pool) a.pool->used -= a.size;
  else if (!a.host) G().devices[a.device]->malloc_bytes -= a.size;
}
void release(void* p) {
  Global& g = G();
  auto it = g.allocs.find(reinterpret_cast<std::uintptr_t>(p));
  if (it == g.allocs.end()) return;
  const Alloc a = it->second;
  g.allocs.erase(it);
  if (!a.freeing) unaccount(a);
  fill_words(p, a.size, kFreedWord);
  g.quarantine.emplace_back(p, a.size);
  g.quarantine_bytes += a.size;
  while (g.quarantine_bytes > kQuarantineBytes && !g.quarantine.empty()) {
    g.quarantine_bytes -= g.quarantine.front().second;
    std::free(g.quarantine.front().first);
    g.quarantine.pop_front();
  }
}

std::string hex(const void* p) {
  char b[32];
  std::snprintf(b, sizeof b, "%p", p);
  return b;
}

// ---- fibers --------------------------------------------------------------------------------------
enum State : int { kRunnable, kAtBarrier, kAtWarp, kDone };

}  // namespace
}  // namespace lamina_emu

#if defined(__x86_64__)
// lamina_emu_switch(save, to): saves the callee-saved registers, MXCSR and the x87 control word
// on the current stack, stores its pointer in *save, and resumes the context saved at `to`.
extern "C" void lamina_emu_switch(void** save, void* to);
asm(R"(
  .pushsection .text
  .p2align 4
  .globl lamina_emu_switch
  .hidden lamina_emu_switch
  .type lamina_emu_switch,@function
lamina_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size lamina_emu_switch, .-lamina_emu_switch
  .popsection
)");
#endif

namespace lamina_emu {

struct ThreadState {
  uint3 tid{0, 0, 0};
  unsigned linear = 0;
  int state = kDone;
  const char* site = nullptr;
  int op = 0;
  unsigned mask = 0;
  std::uint64_t value = 0, result = 0;
  int arg = 0, width = 32;
  char* stack = nullptr;
  std::size_t stack_size = 0;
  bool dirty = false;  // abandoned mid-run (its stack's sanitizer state must be reset)
#if defined(__x86_64__)
  void* sp = nullptr;
#else
  ucontext_t ctx;
#endif
  void* fake_stack = nullptr;
};

thread_local ThreadState* t_thread = nullptr;
thread_local BlockState t_block{};

namespace {

#if defined(LAMINA_EMU_ASAN)
constexpr std::size_t kStackSize = std::size_t(512) << 10;
#else
constexpr std::size_t kStackSize = std::size_t(128) << 10;
#endif

struct Executor {
  std::vector<ThreadState> threads;
  const std::function<void()>* body = nullptr;
  std::string kernel;
  bool failed = false;
  std::string error;
#if defined(__x86_64__)
  void* sched_sp = nullptr;
#else
  ucontext_t sched_ctx;
#endif
  const void* sched_bottom = nullptr;
  std::size_t sched_size = 0;
  void* sched_fake = nullptr;
  std::uint64_t rng = 1;

  Executor() : threads(kMaxThreads) {}
  ~Executor() {
    for (ThreadState& t : threads)
      if (t.stack) munmap(t.stack - getpagesize(), t.stack_size + getpagesize());
  }
  std::uint64_t next() {  // xorshift64*
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1DULL;
  }
};
thread_local std::unique_ptr<Executor> t_exec;

Executor& exec() {
  if (!t_exec) t_exec = std::make_unique<Executor>();
  return *t_exec;
}

void switch_to_scheduler(ThreadState* t, bool finished) {
  Executor& x = exec();
#if defined(LAMINA_EMU_ASAN)
  __sanitizer_start_switch_fiber(finished ? nullptr : &t->fake_stack, x.sched_bottom, x.sched_size);
#else
  (void)finished;
#endif
#if defined(__x86_64__)
  lamina_emu_switch(&t->sp, x.sched_sp);
#else
  swapcontext(&t->ctx, &x.sched_ctx);
#endif
#if defined(LAMINA_EMU_ASAN)
  __sanitizer_finish_switch_fiber(t->fake_stack, nullptr, nullptr);
#endif
}

extern "C" [[noreturn]] void lamina_emu_fiber_main() {
  Executor& x = exec();
#if defined(LAMINA_EMU_ASAN)
  __sanitizer_finish_switch_fiber(nullptr, &x.sched_bottom, &x.sched_size);
#endif
  (*x.body)();
  ThreadState* t = t_thread;
  t->state = kDone;
  switch_to_scheduler(t, true);
  std::abort();  // a finished thread is never resumed
}

void prepare(ThreadState& t) {
  if (!t.stack) {
    const std::size_t page = static_cast<std::size_t>(getpagesize());
    void* m = mmap(nullptr, kStackSize + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    mprotect(m, page, PROT_NONE);  // a guard page below the stack
    t.stack = static_cast<char*>(m) + page;
    t.stack_size = kStackSize;
  }
#if defined(LAMINA_EMU_ASAN)
  if (t.dirty) __asan_unpoison_memory_region(t.stack, t.stack_size);
#endif
  t.dirty = false;
  t.fake_stack = nullptr;
#if defined(__x86_64__)
  auto top = reinterpret_cast<std::uintptr_t>(t.stack + t.stack_size) & ~std::uintptr_t(15);
  auto* p = reinterpret_cast<std::uint64_t*>(top);
  *--p = 0;                                                      // the entry's "return address"
  *--p = reinterpret_cast<std::uint64_t>(&lamina_emu_fiber_main);  // where the first switch returns
  for (int r = 0; r < 6; ++r) *--p = 0;                          // rbp rbx r12 r13 r14 r15
  *--p = 0x1F80ull | (0x037Full << 32);                          // MXCSR, x87 control word
  t.sp = p;
#else
  getcontext(&t.ctx);
  t.ctx.uc_stack.ss_sp = t.stack;
  t.ctx.uc_stack.ss_size = t.stack_size;
  t.ctx.uc_link = nullptr;
  makecontext(&t.ctx, reinterpret_cast<void (*)()>(&lamina_emu_fiber_main), 0);
#endif
}

void resume(Executor& x, ThreadState& t) {
  t_thread = &t;
#if defined(LAMINA_EMU_ASAN)
  __sanitizer_start_switch_fiber(&x.sched_fake, t.stack, t.stack_size);
#endif
#if defined(__x86_64__)
  lamina_emu_switch(&x.sched_sp, t.sp);
#else
  swapcontext(&x.sched_ctx, &t.ctx);
#endif
#if defined(LAMINA_EMU_ASAN)
  __sanitizer_finish_switch_fiber(x.sched_fake, nullptr, nullptr);
#endif
  t_thread = nullptr;
}

std::string where(const ThreadState& t) {
  char b[160];
  std::snprintf(b, sizeof b, "block (%u, %u, %u), thread (%u, %u, %u)", t_block.block_idx.x, t_block.block_idx.y,
                t_block.block_idx.z, t.tid.x, t.tid.y, t.tid.z);
  return b;
}

void block_error(Executor& x, const std::string& msg) {
  if (!x.failed) {
    x.failed = true;
    x.error = msg;
  }
}

const char* op_name(int op) {
  static const char* const names[] = {"__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync",
                                      "__ballot_sync", "__any_sync", "__all_sync", "__syncwarp"};
  return names[op];
}

// Completes every warp operation whose named lanes have all arrived; reports one that never can.
// Called when no thread is runnable. Returns whether any lane was released.
bool resolve_warps(Executor& x, unsigned n) {
  bool released = false;
  for (unsigned base = 0; base < n; base += 32) {
    const unsigned lanes = std::min(32u, n - base);
    ThreadState* w = &x.threads[base];
    bool waiting = false;
    for (unsigned l = 0; l < lanes; ++l) waiting |= w[l].state == kAtWarp;
    if (!waiting) continue;
    for (unsigned l = 0; l < lanes; ++l) {
      const ThreadState& t = w[l];
      if (t.state != kAtWarp) continue;
      auto err = [&](const std::string& what) {
        block_error(x, std::string(op_name(t.op)) + " at " + t.site + " (" + where(t) + ", lane " +
                           std::to_string(l) + "): " + what);
      };
      if (!((t.mask >> l) & 1u)) return err("the calling lane is not in its mask"), false;
      if (t.op <= kShflXor && (t.width <= 0 || t.width > 32 || (t.width & (t.width - 1))))
        return err("width " + std::to_string(t.width) + " is not a power of two up to 32"), false;
      for (unsigned j = 0; j < 32; ++j) {
        if (!((t.mask >> j) & 1u)) continue;
        if (j >= lanes) return err("the mask names lane " + std::to_string(j) + ", which this block does not have"), false;
        const ThreadState& o = w[j];
        if (o.state == kDone) return err("the mask names lane " + std::to_string(j) + ", which has exited"), false;
        if (o.state == kAtBarrier)
          return err("the mask names lane " + std::to_string(j) + ", which waits at __syncthreads() at " + o.site), false;
        if (o.op != t.op || std::strcmp(o.site, t.site) != 0)
          return err("the mask names lane " + std::to_string(j) + ", which waits at " + op_name(o.op) + " at " + o.site),
                 false;
        if (o.mask != t.mask) return err("lane " + std::to_string(j) + " gives another mask"), false;
      }
    }
    // Every waiting lane's group is complete: compute the results from the values as they are now.
    for (unsigned l = 0; l < lanes; ++l) {
      ThreadState& t = w[l];
      if (t.state != kAtWarp) continue;
      std::uint64_t r = 0;
      if (t.op <= kShflXor) {
        const int width = t.width, seg = static_cast<int>(l) / width * width;
        int src = static_cast<int>(l);
        if (t.op == kShflIdx) src = seg + (t.arg & (width - 1));
        else if (t.op == kShflUp) src = static_cast<int>(l) - t.arg >= seg ? static_cast<int>(l) - t.arg : static_cast<int>(l);
        else if (t.op == kShflDown) src = static_cast<int>(l) + t.arg < seg + width ? static_cast<int>(l) + t.arg : static_cast<int>(l);
        else {
          const int s = static_cast<int>(l) ^ t.arg;
          src = (s >= seg && s < seg + width) ? s : static_cast<int>(l);
        }
        if (src < 0 || src >= static_cast<int>(lanes) || !((t.mask >> src) & 1u)) {
          block_error(x, std::string(op_name(t.op)) + " at " + t.site + " (" + where(t) + "): reads lane " +
                             std::to_string(src) + ", which is not in the mask");
          return false;
        }
        r = w[src].value;
      } else if (t.op != kSyncWarp) {
        unsigned ballot = 0;
        for (unsigned j = 0; j < lanes; ++j)
          if (((t.mask >> j) & 1u) && w[j].value) ballot |= 1u << j;
        r = t.op == kBallot ? ballot : t.op == kAny ? (ballot != 0) : (ballot == t.mask);
      }
      t.result = r;
    }
    for (unsigned l = 0; l < lanes; ++l)
      if (w[l].state == kAtWarp) {
        w[l].state = kRunnable;
        released = true;
      }
  }
  return released;
}

bool run_block(Executor& x, unsigned n) {
  const dim3 bd = t_block.block_dim;
  for (unsigned i = 0; i < n; ++i) {
    ThreadState& t = x.threads[i];
    prepare(t);
    t.tid = uint3{i % bd.x, (i / bd.x) % bd.y, i / (bd.x * bd.y)};
    t.linear = i;
    t.state = kRunnable;
  }
  std::vector<unsigned> order(n);
  for (unsigned i = 0; i < n; ++i) order[i] = i;
  for (;;) {
    for (unsigned i = n; i > 1; --i) std::swap(order[i - 1], order[x.next() % i]);
    for (unsigned i : order) {
      ThreadState& t = x.threads[i];
      if (t.state != kRunnable) continue;
      resume(x, t);
      if (x.failed) {
        for (unsigned j = 0; j < n; ++j)
          if (x.threads[j].state != kDone) x.threads[j].dirty = true;
        return false;
      }
    }
    bool live = false;
    for (unsigned i = 0; i < n; ++i) live |= x.threads[i].state != kDone;
    if (!live) return true;
    if (resolve_warps(x, n)) continue;
    if (!x.failed) {  // no warp operation pending: every live thread waits at the block barrier
      const char* site = nullptr;
      for (unsigned i = 0; i < n && !x.failed; ++i) {
        const ThreadState& t = x.threads[i];
        if (t.state != kAtBarrier) continue;
        if (!site) site = t.site;
        else if (std::strcmp(site, t.site) != 0)
          block_error(x, std::string("__syncthreads() divergence: threads wait at ") + site + " and at " + t.site +
                             " (" + where(t) + ")");
      }
    }
    if (x.failed) {
      for (unsigned j = 0; j < n; ++j)
        if (x.threads[j].state != kDone) x.threads[j].dirty = true;
      return false;
    }
    for (unsigned i = 0; i < n; ++i)
      if (x.threads[i].state == kAtBarrier) x.threads[i].state = kRunnable;
  }
}

void run_grid(const std::string& name, dim3 grid, dim3 block, std::uint64_t launch_id,
              const std::function<void()>& body) {
  Global& g = G();
  if (g.async_error != cudaSuccess) return;  // the context has failed: nothing more runs
  Executor& x = exec();
  x.body = &body;
  x.kernel = name;
  x.failed = false;
  x.rng = (g.seed ^ (launch_id * 0x9E3779B97F4A7C15ULL)) | 1;
  const unsigned n = block.x * block.y * block.z;
  t_block.grid_dim = grid;
  t_block.block_dim = block;
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        t_block.block_idx = uint3{bx, by, bz};
        if (!run_block(x, n)) {
          g.async_error = cudaErrorLaunchFailure;
          g.async_message = "kernel " + name + " failed: " + x.error;
          return;
        }
      }
}

}  // namespace

const uint3& thread_idx() {
  static const uint3 none{0, 0, 0};
  return t_thread ? t_thread->tid : none;
}

std::uint64_t warp_op(WarpOp op, unsigned mask, std::uint64_t value, int arg, int width, const char* site) {
  ThreadState* t = t_thread;
  if (!t) return value;  // host code
  t->state = kAtWarp;
  t->op = op;
  t->mask = mask;
  t->value = value;
  t->arg = arg;
  t->width = width;
  t->site = site;
  switch_to_scheduler(t, false);
  return t->result;
}

void syncthreads(const char* site) {
  ThreadState* t = t_thread;
  if (!t) return;
  t->state = kAtBarrier;
  t->site = site;
  switch_to_scheduler(t, false);
}

void trap(const char* what) {
  ThreadState* t = t_thread;
  if (!t) std::abort();
  Executor& x = exec();
  block_error(x, std::string(what) + " (" + where(*t) + ")");
  t->state = kAtBarrier;
  t->site = "__trap";
  switch_to_scheduler(t, false);
  std::abort();
}

cudaError_t launch(const LaunchConfig& c, std::function<void()> body) {
  Global& g = G();
  Lock lock(g.mu);
  const std::string name = c.name ? c.name : "?";
  auto bad = [&](const std::string& what) {
    return fail(cudaErrorInvalidConfiguration, "kernel " + name + ": " + what + " (sm_90 limits)");
  };
  const dim3 gr = c.grid, bl = c.block;
  if (gr.x == 0 || gr.y == 0 || gr.z == 0) return bad("empty grid");
  if (bl.x == 0 || bl.y == 0 || bl.z == 0) return bad("empty block");
  if (gr.x > 2147483647u) return bad("grid.x = " + std::to_string(gr.x) + " exceeds 2147483647");
  if (gr.y > 65535u) return bad("grid.y = " + std::to_string(gr.y) + " exceeds 65535");
  if (gr.z > 65535u) return bad("grid.z = " + std::to_string(gr.z) + " exceeds 65535");
  if (bl.x > 1024u || bl.y > 1024u || bl.z > 64u)
    return bad("block (" + std::to_string(bl.x) + ", " + std::to_string(bl.y) + ", " + std::to_string(bl.z) +
               ") exceeds (1024, 1024, 64)");
  const std::uint64_t threads = std::uint64_t(bl.x) * bl.y * bl.z;
  if (threads > kMaxThreads) return bad(std::to_string(threads) + " threads per block exceed 1024");
  auto opt = g.max_dynamic_shared.find(c.fn);
  const std::size_t shmax = opt != g.max_dynamic_shared.end() ? static_cast<std::size_t>(opt->second) : 48 * 1024;
  if (c.shmem > shmax)
    return fail(cudaErrorInvalidValue, "kernel " + name + ": " + std::to_string(c.shmem) +
                                           " bytes of dynamic shared memory exceed " + std::to_string(shmax) +
                                           (opt == g.max_dynamic_shared.end() ? " (no cudaFuncSetAttribute opt-in)" : ""));
  CUstream_st* s = resolve(c.stream);
  if (!s) return fail(cudaErrorInvalidResourceHandle, "kernel " + name + ": not a live stream " + hex(c.stream));
  if (s->device != t_device)
    return fail(cudaErrorInvalidResourceHandle, "kernel " + name + " launched on a stream of device " +
                                                    std::to_string(s->device) + " while device " +
                                                    std::to_string(t_device) + " is current");
  const std::uint64_t id = ++g.launches;
  enqueue(s, [name, gr, bl, id, body = std::move(body)]() { run_grid(name, gr, bl, id, body); });
  return cudaSuccess;
}

namespace {
cudaError_t api_enqueue(cudaStream_t st, const char* name, std::function<void()> fn) {
  Global& g = G();
  Lock lock(g.mu);
  CUstream_st* s = resolve(st);
  if (!s) return fail(cudaErrorInvalidResourceHandle, std::string(name) + ": not a live stream " + hex(st));
  std::string n = name;
  enqueue(s, [n, fn = std::move(fn)]() {
    if (G().async_error == cudaSuccess) fn();
  });
  return cudaSuccess;
}
bool api_is_device_range(const void* p, std::size_t n) {
  Lock lock(G().mu);
  return device_range(p, n);
}
const RuntimeApi g_api{kRuntimeApiVersion, &api_enqueue, &api_is_device_range};
}  // namespace

const RuntimeApi* runtime_api() { return &g_api; }

std::size_t live_events() {
  Lock lock(G().mu);
  return G().events.size();
}

}  // namespace lamina_emu

// ---- the runtime API ----------------------------------------------------------------------------
using namespace lamina_emu;

namespace {
#define LOCKED Global& g = G(); Lock lock(g.mu)

cudaError_t check_device(int d) {
  if (d < 0 || d >= G().device_count)
    return fail(cudaErrorInvalidDevice, "device " + std::to_string(d) + " (there are " +
                                            std::to_string(G().device_count) + ")");
  return cudaSuccess;
}
}  // namespace

cudaError_t cudaGetDeviceCount(int* n) {
  LOCKED;
  if (!n) return fail(cudaErrorInvalidValue, "cudaGetDeviceCount: null pointer");
  *n = g.device_count;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* d) {
  if (!d) return fail(cudaErrorInvalidValue, "cudaGetDevice: null pointer");
  *d = t_device;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) {
  LOCKED;
  if (cudaError_t e = check_device(d)) return e;
  t_device = d;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
  LOCKED;
  if (cudaError_t e = check_device(d)) return e;
  *p = cudaDeviceProp{};
  std::snprintf(p->name, sizeof p->name, "lamina CUDA emulator (sm_90 limits)");
  p->totalGlobalMem = g.capacity;
  p->sharedMemPerBlock = 48 * 1024;
  p->sharedMemPerBlockOptin = 227 * 1024;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsDim[0] = 1024, p->maxThreadsDim[1] = 1024, p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 2147483647, p->maxGridSize[1] = 65535, p->maxGridSize[2] = 65535;
  p->major = 9, p->minor = 0;
  p->multiProcessorCount = g.sms;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr attr, int d) {
  LOCKED;
  if (cudaError_t e = check_device(d)) return e;
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *v = 1024; break;
    case cudaDevAttrMaxBlockDimX: case cudaDevAttrMaxBlockDimY: *v = 1024; break;
    case cudaDevAttrMaxBlockDimZ: *v = 64; break;
    case cudaDevAttrMaxGridDimX: *v = 2147483647; break;
    case cudaDevAttrMaxGridDimY: case cudaDevAttrMaxGridDimZ: *v = 65535; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *v = 48 * 1024; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = 227 * 1024; break;
    case cudaDevAttrWarpSize: *v = 32; break;
    case cudaDevAttrMultiProcessorCount: *v = g.sms; break;
    case cudaDevAttrComputeCapabilityMajor: *v = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *v = 0; break;
    default: return fail(cudaErrorInvalidValue, "cudaDeviceGetAttribute: attribute " + std::to_string(attr));
  }
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) { *v = CUDART_VERSION; return cudaSuccess; }
cudaError_t cudaDriverGetVersion(int* v) { *v = CUDART_VERSION; return cudaSuccess; }

cudaError_t cudaDeviceSynchronize() {
  LOCKED;
  run_all();
  return report_async();
}
cudaError_t cudaGetLastError() {
  LOCKED;
  cudaError_t e = t_last;
  t_last = cudaSuccess;
  if (e == cudaSuccess && g.async_error != cudaSuccess) e = report_async(), t_last = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() {
  LOCKED;
  return t_last != cudaSuccess ? t_last : g.async_error;
}
const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
#define N(x) case x: return #x;
    N(cudaSuccess) N(cudaErrorInvalidValue) N(cudaErrorMemoryAllocation) N(cudaErrorInitializationError)
    N(cudaErrorInvalidConfiguration) N(cudaErrorInvalidDevicePointer) N(cudaErrorInvalidMemcpyDirection)
    N(cudaErrorInsufficientDriver) N(cudaErrorNoDevice) N(cudaErrorInvalidDevice) N(cudaErrorInvalidResourceHandle)
    N(cudaErrorNotReady) N(cudaErrorIllegalAddress) N(cudaErrorLaunchOutOfResources) N(cudaErrorAssert)
    N(cudaErrorIllegalInstruction) N(cudaErrorLaunchFailure) N(cudaErrorNotSupported) N(cudaErrorUnknown)
#undef N
  }
  return "cudaErrorUnknown";
}
const char* cudaGetErrorString(cudaError_t e) {
  LOCKED;
  auto it = g.detail.find(e);
  if (it != g.detail.end()) return it->second.c_str();  // stable until the next error of this code
  return cudaGetErrorName(e);
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  LOCKED;
  if (!s) return fail(cudaErrorInvalidValue, "cudaStreamCreate: null pointer");
  auto* st = new CUstream_st;
  st->device = t_device;
  st->nonblocking = (flags & cudaStreamNonBlocking) != 0;
  g.streams.insert(st);
  *s = st;
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  LOCKED;
  if (!g.streams.count(s)) return fail(cudaErrorInvalidResourceHandle, "cudaStreamDestroy: not a live stream " + hex(s));
  run_until(s, UINT64_MAX);  // its work completes, as on a device
  g.streams.erase(s);
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  LOCKED;
  CUstream_st* st = resolve(s);
  if (!st) return fail(cudaErrorInvalidResourceHandle, "cudaStreamSynchronize: not a live stream " + hex(s));
  run_until(st, UINT64_MAX);
  return report_async();
}
cudaError_t cudaStreamQuery(cudaStream_t s) {
  LOCKED;
  CUstream_st* st = resolve(s);
  if (!st) return fail(cudaErrorInvalidResourceHandle, "cudaStreamQuery: not a live stream " + hex(s));
  return st->queue.empty() ? cudaSuccess : cudaErrorNotReady;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned) {
  LOCKED;
  CUstream_st* st = resolve(s);
  if (!st) return fail(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent: not a live stream " + hex(s));
  if (!g.events.count(e)) return fail(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent: not a live event " + hex(e));
  if (!e->recorded) return cudaSuccess;  // an event never recorded is complete
  CUstream_st* from = e->stream;
  const std::uint64_t upto = e->seq;
  enqueue(st, [from, upto]() {
    if (alive(from)) run_until(from, upto);
  });
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags) {
  LOCKED;
  if (!e) return fail(cudaErrorInvalidValue, "cudaEventCreate: null pointer");
  auto* ev = new CUevent_st;
  ev->device = t_device;
  ev->flags = flags;
  g.events.insert(ev);
  *e = ev;
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, cudaEventDefault); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  LOCKED;
  if (!g.events.erase(e)) return fail(cudaErrorInvalidResourceHandle, "cudaEventDestroy: not a live event " + hex(e));
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  LOCKED;
  if (!g.events.count(e)) return fail(cudaErrorInvalidResourceHandle, "cudaEventRecord: not a live event " + hex(e));
  CUstream_st* st = resolve(s);
  if (!st) return fail(cudaErrorInvalidResourceHandle, "cudaEventRecord: not a live stream " + hex(s));
  if (st->device != e->device)
    return fail(cudaErrorInvalidResourceHandle, "cudaEventRecord: the event belongs to device " +
                                                    std::to_string(e->device) + ", the stream to device " +
                                                    std::to_string(st->device));
  e->recorded = true;
  e->stream = st;
  e->seq = enqueue(st, [] {});
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  LOCKED;
  if (!g.events.count(e)) return fail(cudaErrorInvalidResourceHandle, "cudaEventSynchronize: not a live event " + hex(e));
  if (e->recorded && alive(e->stream)) run_until(e->stream, e->seq);
  return report_async();
}
cudaError_t cudaEventQuery(cudaEvent_t e) {
  LOCKED;
  if (!g.events.count(e)) return fail(cudaErrorInvalidResourceHandle, "cudaEventQuery: not a live event " + hex(e));
  if (!e->recorded || !alive(e->stream) || e->stream->done >= e->seq) return cudaSuccess;
  if (e->stream->queue.empty() || e->stream->queue.front().seq > e->seq) return cudaSuccess;
  return cudaErrorNotReady;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  LOCKED;
  if (!g.events.count(a) || !g.events.count(b) || (a->flags & cudaEventDisableTiming) ||
      (b->flags & cudaEventDisableTiming))
    return fail(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: events without timing");
  *ms = 0.0f;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, std::size_t n) {
  LOCKED;
  return allocate(p, n, t_device, nullptr, false);
}
cudaError_t cudaFree(void* p) {
  LOCKED;
  if (!p) return cudaSuccess;
  run_all();  // cudaFree synchronises the device
  auto it = g.allocs.find(reinterpret_cast<std::uintptr_t>(p));
  if (it == g.allocs.end() || it->second.host || it->second.freeing)
    return fail(cudaErrorInvalidValue, "cudaFree(" + hex(p) + "): not a live device allocation");
  release(p);
  return cudaSuccess;
}
cudaError_t cudaMallocFromPoolAsync(void** p, std::size_t n, cudaMemPool_t pool, cudaStream_t s) {
  LOCKED;
  CUstream_st* st = resolve(s);
  if (!st) return fail(cudaErrorInvalidResourceHandle, "cudaMallocAsync: not a live stream " + hex(s));
  if (!g.pools.count(pool)) return fail(cudaErrorInvalidValue, "cudaMallocFromPoolAsync: not a live pool " + hex(pool));
  return allocate(p, n, pool->device, pool, false);
}
cudaError_t cudaMallocAsync(void** p, std::size_t n, cudaStream_t s) {
  LOCKED;
  CUstream_st* st = resolve(s);
  if (!st) return fail(cudaErrorInvalidResourceHandle, "cudaMallocAsync: not a live stream " + hex(s));
  return allocate(p, n, st->device, &g.devices[st->device]->default_pool, false);
}
cudaError_t cudaFreeAsync(void* p, cudaStream_t s) {
  LOCKED;
  CUstream_st* st = resolve(s);
  if (!st) return fail(cudaErrorInvalidResourceHandle, "cudaFreeAsync: not a live stream " + hex(s));
  if (!p) return cudaSuccess;
  auto it = g.allocs.find(reinterpret_cast<std::uintptr_t>(p));
  if (it == g.allocs.end() || it->second.host || it->second.freeing)
    return fail(cudaErrorInvalidValue, "cudaFreeAsync(" + hex(p) + "): not a live device allocation (freed twice?)");
  it->second.freeing = true;
  unaccount(it->second);
  enqueue(st, [p]() { release(p); });
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void** p, std::size_t n) {
  LOCKED;
  return allocate(p, n, t_device, nullptr, true);
}
cudaError_t cudaFreeHost(void* p) {
  LOCKED;
  if (!p) return cudaSuccess;
  auto it = g.allocs.find(reinterpret_cast<std::uintptr_t>(p));
  if (it == g.allocs.end() || !it->second.host) return fail(cudaErrorInvalidValue, "cudaFreeHost: not pinned memory");
  run_all();
  g.allocs.erase(it);
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* a, const void* p) {
  LOCKED;
  const Alloc* al = find_range(p, 0);
  *a = cudaPointerAttributes{cudaMemoryTypeUnregistered, -2, nullptr, nullptr};
  if (al) {
    a->type = al->host ? cudaMemoryTypeHost : cudaMemoryTypeDevice;
    a->device = al->device;
    a->devicePointer = const_cast<void*>(p);
    if (al->host) a->hostPointer = const_cast<void*>(p);
  }
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total) {
  LOCKED;
  std::uint64_t reserved = g.devices[t_device]->malloc_bytes;
  for (CUmemPoolHandle_st* p : g.pools)
    if (p->device == t_device) reserved += p->reserved;
  *free_bytes = static_cast<std::size_t>(g.capacity - std::min(reserved, g.capacity));
  *total = static_cast<std::size_t>(g.capacity);
  return cudaSuccess;
}

cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int d) {
  LOCKED;
  if (cudaError_t e = check_device(d)) return e;
  *pool = &g.devices[d]->default_pool;
  return cudaSuccess;
}
cudaError_t cudaMemPoolCreate(cudaMemPool_t* pool, const cudaMemPoolProps* props) {
  LOCKED;
  if (!pool || !props) return fail(cudaErrorInvalidValue, "cudaMemPoolCreate: null pointer");
  if (props->allocType != cudaMemAllocationTypePinned || props->location.type != cudaMemLocationTypeDevice)
    return fail(cudaErrorInvalidValue, "cudaMemPoolCreate: only pinned device pools are emulated");
  if (cudaError_t e = check_device(props->location.id)) return e;
  auto* p = new CUmemPoolHandle_st;
  p->device = props->location.id;
  g.pools.insert(p);
  *pool = p;
  return cudaSuccess;
}
cudaError_t cudaMemPoolDestroy(cudaMemPool_t pool) {
  LOCKED;
  if (!g.pools.count(pool) || pool->is_default) return fail(cudaErrorInvalidValue, "cudaMemPoolDestroy: not a created pool");
  for (auto& a : g.allocs)
    if (a.second.pool == pool) return fail(cudaErrorInvalidValue, "cudaMemPoolDestroy: the pool has live allocations");
  g.pools.erase(pool);
  delete pool;
  return cudaSuccess;
}
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value) {
  LOCKED;
  if (!g.pools.count(pool)) return fail(cudaErrorInvalidValue, "cudaMemPoolSetAttribute: not a live pool");
  const std::uint64_t v = *static_cast<std::uint64_t*>(value);
  switch (attr) {
    case cudaMemPoolAttrReleaseThreshold: pool->threshold = v; break;
    case cudaMemPoolAttrReservedMemHigh: if (v != 0) return fail(cudaErrorInvalidValue, "high-water marks reset to 0 only"); pool->reserved_high = pool->reserved; break;
    case cudaMemPoolAttrUsedMemHigh: if (v != 0) return fail(cudaErrorInvalidValue, "high-water marks reset to 0 only"); pool->used_high = pool->used; break;
    case cudaMemPoolReuseFollowEventDependencies: case cudaMemPoolReuseAllowOpportunistic:
    case cudaMemPoolReuseAllowInternalDependencies: break;
    default: return fail(cudaErrorInvalidValue, "cudaMemPoolSetAttribute: read-only attribute");
  }
  return cudaSuccess;
}
cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value) {
  LOCKED;
  if (!g.pools.count(pool)) return fail(cudaErrorInvalidValue, "cudaMemPoolGetAttribute: not a live pool");
  auto* v = static_cast<std::uint64_t*>(value);
  switch (attr) {
    case cudaMemPoolAttrReleaseThreshold: *v = pool->threshold; break;
    case cudaMemPoolAttrReservedMemCurrent: *v = pool->reserved; break;
    case cudaMemPoolAttrReservedMemHigh: *v = pool->reserved_high; break;
    case cudaMemPoolAttrUsedMemCurrent: *v = pool->used; break;
    case cudaMemPoolAttrUsedMemHigh: *v = pool->used_high; break;
    default: *static_cast<int*>(value) = 1; break;
  }
  return cudaSuccess;
}
cudaError_t cudaMemPoolTrimTo(cudaMemPool_t pool, std::size_t keep) {
  LOCKED;
  if (!g.pools.count(pool)) return fail(cudaErrorInvalidValue, "cudaMemPoolTrimTo: not a live pool");
  pool->reserved = std::max<std::uint64_t>(pool->used, std::min<std::uint64_t>(pool->reserved, keep));
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t n, cudaMemcpyKind kind, cudaStream_t s) {
  LOCKED;
  CUstream_st* st = resolve(s);
  if (!st) return fail(cudaErrorInvalidResourceHandle, "cudaMemcpyAsync: not a live stream " + hex(s));
  if (n == 0) return cudaSuccess;
  if (!dst || !src) return fail(cudaErrorInvalidValue, "cudaMemcpyAsync: null pointer");
  const Alloc* da = find_range(dst, n);
  const Alloc* sa = find_range(src, n);
  const bool dst_dev = da && !da->host, src_dev = sa && !sa->host;
  if (kind == cudaMemcpyDefault)
    kind = dst_dev ? (src_dev ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                   : (src_dev ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  const std::string range = " bytes";
  auto not_device = [&](const char* which, const void* p) {
    return fail(cudaErrorInvalidValue, std::string("cudaMemcpyAsync: the ") + which + " [" + hex(p) + ", +" +
                                           std::to_string(n) + range + ") is not inside one live device allocation");
  };
  auto on_device = [&](const char* which, const void* p) {
    return fail(cudaErrorInvalidValue, std::string("cudaMemcpyAsync: the ") + which + " " + hex(p) +
                                           " is device memory, the copy's kind says host");
  };
  switch (kind) {
    case cudaMemcpyHostToDevice:
      if (!dst_dev) return not_device("destination", dst);
      if (src_dev) return on_device("source", src);
      if (sa && sa->host) {
        enqueue(st, [dst, src, n]() { std::memcpy(dst, src, n); });
      } else {  // pageable memory is staged before the call returns
        auto staged = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char*>(src),
                                                                   static_cast<const unsigned char*>(src) + n);
        enqueue(st, [dst, staged]() { std::memcpy(dst, staged->data(), staged->size()); });
      }
      return cudaSuccess;
    case cudaMemcpyDeviceToHost: {
      if (!src_dev) return not_device("source", src);
      if (dst_dev) return on_device("destination", dst);
      const std::uint64_t seq = enqueue(st, [dst, src, n]() { std::memcpy(dst, src, n); });
      if (!(da && da->host)) {  // to pageable memory the copy is synchronous
        run_until(st, seq);
        return report_async();
      }
      return cudaSuccess;
    }
    case cudaMemcpyDeviceToDevice:
      if (!dst_dev) return not_device("destination", dst);
      if (!src_dev) return not_device("source", src);
      enqueue(st, [dst, src, n]() { std::memmove(dst, src, n); });
      return cudaSuccess;
    case cudaMemcpyHostToHost:
      if (dst_dev || src_dev) return fail(cudaErrorInvalidValue, "cudaMemcpyAsync: host-to-host copy of device memory");
      run_until(st, UINT64_MAX);
      std::memmove(dst, src, n);
      return cudaSuccess;
    default:
      return fail(cudaErrorInvalidMemcpyDirection, "cudaMemcpyAsync: kind " + std::to_string(kind));
  }
}
cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t n, cudaMemcpyKind kind) {
  LOCKED;
  cudaError_t e = cudaMemcpyAsync(dst, src, n, kind, nullptr);
  if (e != cudaSuccess) return e;
  run_until(&g.devices[t_device]->legacy, UINT64_MAX);
  return report_async();
}
cudaError_t cudaMemsetAsync(void* dst, int value, std::size_t n, cudaStream_t s) {
  LOCKED;
  CUstream_st* st = resolve(s);
  if (!st) return fail(cudaErrorInvalidResourceHandle, "cudaMemsetAsync: not a live stream " + hex(s));
  if (n == 0) return cudaSuccess;
  if (!device_range(dst, n))
    return fail(cudaErrorInvalidValue, "cudaMemsetAsync: [" + hex(dst) + ", +" + std::to_string(n) +
                                           " bytes) is not inside one live device allocation");
  enqueue(st, [dst, value, n]() { std::memset(dst, value, n); });
  return cudaSuccess;
}
cudaError_t cudaMemset(void* dst, int value, std::size_t n) {
  LOCKED;
  cudaError_t e = cudaMemsetAsync(dst, value, n, nullptr);
  if (e != cudaSuccess) return e;
  run_until(&g.devices[t_device]->legacy, UINT64_MAX);
  return report_async();
}

cudaError_t cudaFuncSetAttributeRaw(const void* fn, cudaFuncAttribute attr, int value) {
  LOCKED;
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || value > 227 * 1024)
    return fail(cudaErrorInvalidValue, "cudaFuncSetAttribute: attribute " + std::to_string(attr) + " = " +
                                           std::to_string(value));
  g.max_dynamic_shared[fn] = value;
  return cudaSuccess;
}
