// module_native.cpp: the lamina._native extension. Chooses the CPU path at import
// (LAMINA_CPU may force a lower one), reports the build, and runs each bind_*.cpp registrar.
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "bind_common.h"
#include "fast_kwargs.h"
#include "lamina/cpu/isa.h"
#include "lamina/cpu/tuning.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef LAMINA_VERSION
#define LAMINA_VERSION "0.0.0"
#endif

namespace {

py::dict backend_info() {
  using namespace lamina::cpu;
  py::dict d;
  d["version"] = LAMINA_VERSION;
  d["isa"] = isa_name(active_isa());
  py::list avail;
  for (Isa i : supported_isas()) avail.append(isa_name(i));
  d["isas_available"] = avail;
  d["threads"] = lamina::num_threads();
#ifdef _OPENMP
  d["openmp"] = true;
  d["openmp_version"] = _OPENMP;
#else
  d["openmp"] = false;
#endif
  d["cuda"] = false;
  d["compiler"] = LAMINA_COMPILER;
  d["build_type"] = LAMINA_BUILD_TYPE;
#ifdef LAMINA_SANITIZED
  d["sanitizers"] = true;
#else
  d["sanitizers"] = false;
#endif
  // What the CPU is and what was chosen from it (tuning.h).
  const Tuning& t = tuning();
  py::dict cpu;
  cpu["vendor"] = t.cpu.vendor;
  cpu["family"] = t.cpu.family;
  cpu["model"] = t.cpu.model;
  cpu["avx512_split"] = t.avx512_split;
  cpu["slow_gather"] = t.slow_gather;
  d["cpu"] = cpu;
  py::dict caches;
  caches["l1d"] = t.cpu.l1d;
  caches["l2"] = t.cpu.l2;
  caches["l3"] = t.cpu.l3;
  caches["source"] = t.cpu.cache_source.empty() ? std::string("not reported (defaults assumed)")
                                                : t.cpu.cache_source;
  d["caches"] = caches;
  py::dict blocking;
  const GemmBlocking& b = t.blocking[static_cast<int>(active_isa())];
  const RegisterTile& rt = kRegisterTile[static_cast<int>(active_isa())];
  blocking["mr"] = rt.mr;
  blocking["nr"] = rt.nr;
  blocking["kc"] = b.kc;
  blocking["mc"] = b.mc;
  blocking["nc"] = b.nc;
  blocking["nc_small"] = b.nc_small;
  d["gemm_blocking"] = blocking;
  py::dict variants;
  variants["small_n_b"] = t.small_n_b == SmallNB::gather ? "gather" : "transpose";
  variants["dot_width"] = t.dot_width;
  variants["conv_direct"] = t.conv_direct;
  variants["conv_algo"] = conv_algo_name(t.conv_algo);
  variants["wino_tiles"] = t.wino_tiles;
  d["variants"] = variants;
  d["tuning_source"] = t.source;
  return d;
}

// {name: [(arg name, has_default, default or None), ...]} for every function of module m, read
// from pybind11's own function records (the py::arg / py::arg_v names and defaults), so the
// signature contract is checked against what the bindings declare, not against docstrings.
// The record is reached as pybind11 reaches a sibling overload's: the PyCFunction's self.
py::dict kernel_signatures(py::handle m) {
  py::dict out;
  for (auto item : py::reinterpret_borrow<py::dict>(m.attr("__dict__"))) {
    py::handle fn = py::detail::get_function(lamina::bind::unwrap_fast_kwargs(item.second));
    if (!fn || !PyCFunction_Check(fn.ptr())) continue;
    PyObject* self = PyCFunction_GET_SELF(fn.ptr());
    const py::detail::function_record* rec =
        self ? py::detail::function_record_ptr_from_PyObject(self) : nullptr;
    if (!rec) continue;  // a plain C function, not one pybind11 made
    py::list params;
    for (std::size_t i = 0; i < rec->nargs; ++i) {
      if (i < rec->args.size()) {
        const auto& a = rec->args[i];
        const bool has_default = static_cast<bool>(a.value);
        const std::string name = a.name ? a.name : "arg" + std::to_string(i);
        params.append(py::make_tuple(name, has_default,
                                     has_default ? py::reinterpret_borrow<py::object>(a.value)
                                                 : py::object(py::none())));
      } else {  // bound without py::arg: pybind11 calls it argN
        params.append(py::make_tuple("arg" + std::to_string(i), false, py::none()));
      }
    }
    out[item.first] = params;
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "lamina's native CPU kernels (C++, SIMD + OpenMP)";
  std::string err = lamina::cpu::select_isa(std::getenv("LAMINA_CPU"));
  if (!err.empty()) throw std::runtime_error(err);
  err = lamina::cpu::init_tuning(std::getenv("LAMINA_TUNING"), std::getenv("LAMINA_CONV_ALGO"));
  if (!err.empty()) throw std::runtime_error(err);

  m.attr("__version__") = LAMINA_VERSION;
  m.def("backend_info", &backend_info, "Which CPU path, how many threads, and how lamina was built.");
  m.def("get_num_threads", &lamina::num_threads, "Threads lamina's kernels use.");
  m.def(
      "set_num_threads",
      [](py::handle n) {
        if (!py::isinstance<py::int_>(n) || py::isinstance<py::bool_>(n))
          throw py::type_error("n must be an int, got " + std::string(py::str(py::type::of(n).attr("__name__"))));
        int overflow = 0;  // beyond long long: as many threads as allowed
        long long v = PyLong_AsLongLongAndOverflow(n.ptr(), &overflow);
        if (overflow) v = overflow > 0 ? 1024 : 0;
        if (v < 1) throw py::value_error("n must be >= 1, got " + std::to_string(v));
        lamina::set_num_threads(static_cast<int>(v > 1024 ? 1024 : v));
      },
      py::arg("n"), "Set the number of threads lamina's kernels use (all Python threads).");
  m.def(
      "_select_isa",
      [](const std::string& name) {
        std::string e = lamina::cpu::select_isa(name.c_str());
        if (!e.empty()) throw py::value_error(e);
      },
      py::arg("name"),
      "Testing aid: switch the CPU path at run time (not thread-safe while kernels run).");
  m.def(
      "_set_tuning",
      [](const std::string& spec) {
        std::string e = lamina::cpu::apply_tuning(spec);
        if (!e.empty()) throw py::value_error("spec: " + e);
      },
      py::arg("spec"),
      "Testing aid: override the blocking or variants, as LAMINA_TUNING does at import "
      "('kc=256,mc=168,small_n_b=transpose,dot_width=256'; 'avx2.kc=...' for another path). "
      "Not thread-safe while kernels run.");
  m.def(
      "_blocking_for",
      [](long l1d, long l2, const std::string& isa) {
        using namespace lamina::cpu;
        for (Isa i : {Isa::generic, Isa::avx2, Isa::avx512}) {
          if (isa != isa_name(i)) continue;
          const GemmBlocking b = blocking_for(i, l1d, l2);
          py::dict d;
          d["kc"] = b.kc;
          d["mc"] = b.mc;
          d["nc"] = b.nc;
          d["nc_small"] = b.nc_small;
          return d;
        }
        throw py::value_error("isa must be generic, avx2 or avx512, got '" + isa + "'");
      },
      py::arg("l1d"), py::arg("l2"), py::arg("isa"),
      "Testing aid: the GEMM blocking the cache model picks for a CPU path on a CPU with these "
      "L1d and L2 sizes (bytes per core).");
  m.def("_reset_tuning", &lamina::cpu::reset_tuning,
        "Testing aid: back to the tuning chosen at import (cpuid, then LAMINA_TUNING).");
  m.def(
      "_fail_next_workspace_alloc",
      [](py::handle count) {
        if (!py::isinstance<py::int_>(count) || py::isinstance<py::bool_>(count))
          throw py::type_error("count must be an int");
        int overflow = 0;
        const long long c = PyLong_AsLongLongAndOverflow(count.ptr(), &overflow);
        if (overflow || c < 0 || c > (1LL << 30)) throw py::value_error("count must be in [0, 2**30]");
        lamina::workspace_testing_failures().store(static_cast<int>(c));
      },
      py::arg("count") = 1,
      "Testing aid: the next `count` per-thread workspace requests of the kernels fail with "
      "std::bad_alloc (MemoryError), on whichever threads make them; 0 cancels what is left.");
  for (auto f : lamina::bind::registry()) f(m);
  m.def(
      // A borrowed handle: the module outlives its functions (and a captured module_ would be a
      // reference cycle through the module's dict).
      "_kernel_signatures", [mod = py::handle(m)]() { return kernel_signatures(mod); },
      "{function name: [(arg name, has_default, default or None), ...]} for every function of "
      "this module, from pybind11's function records (tests/test_signatures.py compares them "
      "with lamina.reference's signatures).");
  lamina::bind::install_fast_kwargs(m);
}
