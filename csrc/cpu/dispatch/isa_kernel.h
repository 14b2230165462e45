// isa_kernel.h: how a backend-neutral CPU entry point gets its per-ISA twins and the switch
// that picks one of them.
//
// lamina/<family>.h declares the entry point once, in namespace lamina::cpu (the signature
// the bindings call). csrc/cpu/kernels/<family>.cpp is compiled once per ISA, each copy in
// namespace lamina::cpu::<isa> (LAMINA_ISA_NS), and defines the twins. csrc/cpu/dispatch/
// <family>.cpp, compiled once with no arch flags, declares the twins with
// LAMINA_ISA_KERNEL(name) -- their type is taken from the neutral declaration, so the
// signature is written once -- and defines lamina::cpu::name as a LAMINA_DISPATCH switch on
// the path chosen at import (isa.cpp).
#pragma once
#include "lamina/cpu/isa.h"

#if defined(LAMINA_HAVE_X86_PATHS) || (defined(LAMINA_ISA_ID) && LAMINA_ISA_ID > 0) || defined(__x86_64__)
#define LAMINA_X86 1
#endif

#ifdef LAMINA_X86
#define LAMINA_ISA_KERNEL(name)                                          \
  namespace lamina::cpu::generic { decltype(::lamina::cpu::name) name; } \
  namespace lamina::cpu::avx2 { decltype(::lamina::cpu::name) name; }    \
  namespace lamina::cpu::avx512 { decltype(::lamina::cpu::name) name; }
#define LAMINA_DISPATCH(name, ...)                                                    \
  switch (::lamina::cpu::active_isa()) {                                              \
    case ::lamina::cpu::Isa::avx512: return ::lamina::cpu::avx512::name(__VA_ARGS__); \
    case ::lamina::cpu::Isa::avx2: return ::lamina::cpu::avx2::name(__VA_ARGS__);     \
    default: return ::lamina::cpu::generic::name(__VA_ARGS__);                        \
  }
#else
#define LAMINA_ISA_KERNEL(name) \
  namespace lamina::cpu::generic { decltype(::lamina::cpu::name) name; }
#define LAMINA_DISPATCH(name, ...) return ::lamina::cpu::generic::name(__VA_ARGS__);
#endif
