#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU (first target: one H200, Python
# 3.12 with torch+cu130, nvcc 13.0, compute-sanitizer, scikit-build-core and pybind11, no
# network). In at most ~12 minutes:
#   1. checks that scikit-build-core and pybind11 are importable (there is no network to fetch
#      them; a clear failure if not), then builds lamina for sm_90 only (CUDAARCHS=90; override
#      with CUDAARCHS=...) into a target folder with pip --no-build-isolation --no-deps,
#   2. runs the CUDA tests (tests/test_cuda_kernels.py: every kernel vs the reference on the device,
#      LeNet-5 training on the device, interchange, OOM; tests/test_cuda_fixes.py: stream
#      ordering of the interchange, launch plans, pool, device guard) and the contract tests,
#      then test_cuda_kernels.py once more with every launch synchronised (CUDA_LAUNCH_BLOCKING=1),
#   3. runs the every-kernel and GEMM-edge tests under compute-sanitizer's memcheck, racecheck,
#      synccheck and initcheck,
#   4. prints the lamina vs PyTorch CUDA table (benchmarks/gpu/bench_cuda.py).
# Usage: benchmarks/gpu/check.sh [OUTDIR]   (logs and the table land in OUTDIR, default $OUT or /tmp)
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
out=${1:-${OUT:-/tmp/lamina-gpu-check}}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
status=0
step() { echo; echo "== $* ($(date +%T))"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1 | tee "$out/gpu.txt"
nvcc --version | tail -2
$py -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, torch.cuda.is_available())"

step "build requirements (pip --no-build-isolation --no-deps: they must be installed already)"
# The GPU machine has no network, so the build backend cannot be fetched: scikit-build-core and
# pybind11 (>= 3), which the GPU machine's Python has, are used as installed.
$py - <<'PY' || { echo "BUILD REQUIREMENTS MISSING: install scikit-build-core>=0.11 and pybind11>=3 into $py (e.g. pip install 'scikit-build-core>=0.11' 'pybind11>=3'), or set PYTHON to a Python that has them"; exit 1; }
import importlib, sys
missing = []
for mod, dist in (("scikit_build_core", "scikit-build-core>=0.11"), ("pybind11", "pybind11>=3")):
    try:
        m = importlib.import_module(mod)
        print(f"{dist.split('>')[0]} {getattr(m, '__version__', '?')}")
    except ImportError as e:
        missing.append(f"{dist} ({e})")
if missing:
    print("missing: " + ", ".join(missing), file=sys.stderr)
    sys.exit(1)
PY

step "build for sm_${CUDAARCHS:-90} (pip --no-build-isolation --no-deps, target /tmp/lamina-site)"
t0=$(date +%s)
rm -rf /tmp/lamina-site /tmp/lamina-build
CUDAARCHS=${CUDAARCHS:-90} LAMINA_CUDA=ON CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
  $py -m pip install -q --no-build-isolation --no-deps --no-cache-dir --target /tmp/lamina-site \
  -Cbuild-dir=/tmp/lamina-build . > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; echo "BUILD FAILED"; exit 1; }
echo "built in $(( $(date +%s) - t0 )) s"
export PYTHONPATH=/tmp/lamina-site${PYTHONPATH:+:$PYTHONPATH}
$py - <<'PY' 2>&1 | tee "$out/status.txt"
import lamina, lamina.cuda as c
print(lamina.__file__)
print(c.status())
print(lamina.backend_info()["cuda_status"])
assert c.is_available(), "no GPU seen"
be = lamina.get_backend("cuda")
print(be, c.status().get("cublas"), c._module.properties())
PY
[ "${PIPESTATUS[0]}" = 0 ] || { echo "CUDA NOT USABLE"; exit 1; }

step "CUDA tests and the contract tests"
cuda_tests=("$root/tests/test_cuda.py" "$root/tests/test_cuda_kernels.py" "$root/tests/test_cuda_fixes.py" "$root/tests/test_contract.py")
timeout 180 $py -m pytest -q -x -p no:cacheprovider -rs "${cuda_tests[@]}" \
  2>&1 | tee "$out/tests.log" | tail -25
[ "${PIPESTATUS[0]}" = 0 ] || { echo "TESTS FAILED"; status=1; }

step "every launch synchronised (CUDA_LAUNCH_BLOCKING=1, LAMINA_CUDA_SYNC=1)"
CUDA_LAUNCH_BLOCKING=1 LAMINA_CUDA_SYNC=1 timeout 120 $py -m pytest -q -x -p no:cacheprovider "$root/tests/test_cuda_kernels.py" \
  -k "not emu" > "$out/blocking.log" 2>&1
rc=$?; tail -3 "$out/blocking.log"
[ $rc = 0 ] || { echo "LAUNCH-BLOCKING PASS FAILED (rc $rc)"; status=1; }

# The GEMM-edge and every-kernel tests on the device under each compute-sanitizer tool: memcheck
# (out-of-bounds and misaligned accesses), racecheck (shared-memory hazards), synccheck (barriers
# not reached by the whole block), initcheck (reads of uninitialised device memory).
step "compute-sanitizer: memcheck, racecheck, synccheck, initcheck"
if command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck synccheck initcheck; do
    extra=""
    [ $tool = racecheck ] && extra="--racecheck-report hazard"
    timeout 90 compute-sanitizer --tool $tool $extra --error-exitcode 9 --print-limit 20 \
      $py -m pytest -q -x -p no:cacheprovider "$root/tests/test_cuda_kernels.py" \
      -k "(every_kernel or every_gemm_edge) and not emu" > "$out/$tool.log" 2>&1
    rc=$?
    echo "-- $tool: rc $rc"; tail -6 "$out/$tool.log"
    [ $rc = 0 ] || { echo "${tool^^} FAILED (rc $rc)"; status=1; }
  done
else
  echo "compute-sanitizer not found: skipped"
fi

step "lamina vs PyTorch CUDA"
timeout 170 $py "$root/benchmarks/gpu/bench_cuda.py" --out "$out/table.md" 2>&1 | tee "$out/bench.log" | tail -45
[ "${PIPESTATUS[0]}" = 0 ] || { echo "BENCHMARK FAILED"; status=1; }
echo
echo "check.sh: status $status; logs in $out"
exit $status
