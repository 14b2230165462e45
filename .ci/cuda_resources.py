#!/usr/bin/env python3
"""What nvcc knows about lamina's CUDA kernels, for the CI log, and the checks CI makes of it.

  python .ci/cuda_resources.py                 per-kernel registers, barriers, shared memory,
                                               stack, spills and local memory (ptxas -v) for sm_90;
                                               fails on a spill or local-memory use in a hot kernel
  python .ci/cuda_resources.py --fatbin SO     the extension SO holds sm_75..sm_90 machine code
                                               and compute_90 PTX (cuobjdump, from the
                                               nvidia-cuda-cuobjdump wheel or the toolkit)

The sources are compiled as csrc/cuda/CMakeLists.txt compiles them (C++17, -O3,
--expt-relaxed-constexpr, the same include folders), each to a throwaway object, with
-Xptxas -v,-warn-spills,-warn-lmem-usage.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Kernels that must keep everything in registers: the GEMM, convolution's pieces, softmax and
# cross-entropy, the optimiser steps, batch normalisation, the LSTM / GRU gate kernels (matched
# on the demangled name).
HOT = re.compile(r"sgemm|gemm|Gemm|im2col|Im2col|col2im|Col2im|conv|Conv|softmax|Softmax|Xent|xent|"
                 r"Sgd|sgd|Adam|adam|batch_norm|LstmCell|GruCell")


def compile_one(nvcc, src, arch, tmp):
    cmd = [nvcc, "-c", src, "-o", os.path.join(tmp, os.path.basename(src) + ".o"), "-std=c++17", "-O3",
           "--expt-relaxed-constexpr", f"-gencode=arch=compute_{arch},code=sm_{arch}",
           "-Xptxas", "-v,-warn-spills,-warn-lmem-usage", "-Xcompiler", "-fPIC,-fno-math-errno",
           "-I", os.path.join(ROOT, "csrc/include"), "-I", os.path.join(ROOT, "csrc/bindings"),
           "-I", os.path.join(ROOT, "csrc/cuda")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    return src, r.returncode, r.stdout + r.stderr


def demangle(names):
    if not names or not shutil.which("c++filt"):
        return {n: n for n in names}
    r = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True)
    out = r.stdout.splitlines()
    return dict(zip(names, out)) if len(out) == len(names) else {n: n for n in names}


def parse(log):
    """{mangled: {regs, barriers, smem, stack, spill_st, spill_ld, lmem}} from ptxas -v output."""
    kernels, current = {}, None
    for line in log.splitlines():
        m = re.search(r"Compiling entry function '([^']+)'", line)
        if m:
            current = m.group(1)
            kernels[current] = dict(regs=0, barriers=0, smem=0, stack=0, spill_st=0, spill_ld=0, lmem=False)
            continue
        m = re.search(r"Function properties for (\S+)", line)
        if m:
            current = m.group(1) if m.group(1) in kernels else current
            continue
        if current is None:
            continue
        k = kernels[current]
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            k["stack"], k["spill_st"], k["spill_ld"] = map(int, m.groups())
        m = re.search(r"Used (\d+) registers", line)
        if m:
            k["regs"] = int(m.group(1))
        m = re.search(r"used (\d+) barriers", line)
        if m:
            k["barriers"] = int(m.group(1))
        m = re.search(r"(\d+) bytes smem", line)
        if m:
            k["smem"] = int(m.group(1))
        if re.search(r"[Ll]ocal memory", line) and "warning" in line.lower():
            k["lmem"] = True
    return kernels


def short(name, width=100):
    if name.endswith(")"):  # drop the parameter list (the last balanced parentheses)
        depth = 0
        for i in range(len(name) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(name[i], 0)
            if depth == 0:
                name = name[:i]
                break
    return name if len(name) <= width else name[:width - 3] + "..."


def resources(arch):
    nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    if not os.path.exists(nvcc):
        sys.exit("cuda_resources: nvcc not found")
    srcs = sorted(glob.glob(os.path.join(ROOT, "csrc/cuda/*.cu")))
    with tempfile.TemporaryDirectory() as tmp, cf.ThreadPoolExecutor(max(1, os.cpu_count() or 1)) as pool:
        results = list(pool.map(lambda s: compile_one(nvcc, s, arch, tmp), srcs))
    failed = [(s, log) for s, rc, log in results if rc != 0]
    for s, log in failed:
        print(f"== nvcc failed on {s}\n{log}")
    if failed:
        return 1
    bad = []
    print(f"{'kernel (sm_' + arch + ')':<100} {'regs':>4} {'bar':>3} {'smem':>6} {'stack':>5} {'spill':>9} lmem")
    for src, _, log in results:
        ks = parse(log)
        names = demangle(list(ks))
        print(f"-- {os.path.relpath(src, ROOT)}")
        for mangled, k in sorted(ks.items(), key=lambda kv: names[kv[0]]):
            name = names[mangled]
            spill = f"{k['spill_st']}/{k['spill_ld']}"
            print(f"{short(name):<100} {k['regs']:>4} {k['barriers']:>3} {k['smem']:>6} {k['stack']:>5} {spill:>9} "
                  f"{'yes' if k['lmem'] else 'no'}")
            if HOT.search(name) and (k["spill_st"] or k["spill_ld"] or k["stack"] or k["lmem"]):
                bad.append(name)
    if bad:
        print("\nspills or local memory in hot kernels:")
        for b in bad:
            print("  " + short(b, 200))
        return 1
    print("\nno spill and no local memory in the hot kernels (GEMM, convolution, softmax, cross-entropy, "
          "optimiser steps, batch norm, LSTM / GRU gates)")
    return 0


def fatbin(path):
    exe = shutil.which("cuobjdump")
    if exe is None:  # the nvidia-cuda-cuobjdump wheel
        for base in sys.path:
            for cand in glob.glob(os.path.join(base, "nvidia", "*", "bin", "cuobjdump")):
                exe = cand
    if exe is None:
        sys.exit("cuda_resources: cuobjdump not found (pip install nvidia-cuda-cuobjdump)")
    elf = subprocess.run([exe, "--list-elf", path], capture_output=True, text=True)
    ptx = subprocess.run([exe, "--list-ptx", path], capture_output=True, text=True)
    if elf.returncode or ptx.returncode:
        print(elf.stdout, elf.stderr, ptx.stdout, ptx.stderr)
        return 1
    archs = sorted(set(re.findall(r"sm_(\d+)", elf.stdout)))
    ptxs = sorted(set(re.findall(r"sm_(\d+)", ptx.stdout)) | set(re.findall(r"compute_(\d+)", ptx.stdout)))
    print(f"{os.path.basename(path)}: machine code for sm_{', sm_'.join(archs)}; PTX for {', '.join(ptxs)}")
    want = {"75", "80", "86", "89", "90"}
    missing = want - set(archs)
    if missing or "90" not in ptxs:
        print(f"missing: machine code {sorted(missing)}, PTX 90 {'present' if '90' in ptxs else 'absent'}")
        return 1
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="90")
    ap.add_argument("--fatbin", help="a built lamina/_cuda*.so to inspect with cuobjdump")
    a = ap.parse_args()
    sys.exit(fatbin(a.fatbin) if a.fatbin else resources(a.arch))


if __name__ == "__main__":
    main()
