"""The CPU path chosen at import, the LAMINA_CPU override, threads and backend_info."""
import os
import subprocess
import sys

import pytest

import lamina


def run(code, **env):
    e = dict(os.environ)
    e.pop("LAMINA_CPU", None)
    e.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, timeout=120)


def test_backend_info_fields():
    info = lamina.backend_info()
    for key in ("isa", "threads", "openmp", "cuda", "compiler", "build_type"):
        assert key in info
    assert info["isa"] in ("generic", "avx2", "avx512")
    assert info["isa"] == info["isas_available"][-1] or os.environ.get("LAMINA_CPU")
    assert isinstance(info["openmp"], bool) and isinstance(info["cuda"], bool)
    assert info["threads"] == lamina.get_num_threads() >= 1
    assert isinstance(lamina.__version__, str) and lamina.__version__.count(".") >= 2


def test_the_required_cpu_paths_are_available():
    # The kernels of a path this CPU lacks run nowhere: LAMINA_REQUIRE_ISAS (comma-separated,
    # e.g. "generic,avx2,avx512" in CI) turns a missing one into a failure instead of fewer tests.
    required = [s.strip() for s in os.environ.get("LAMINA_REQUIRE_ISAS", "generic").split(",") if s.strip()]
    unknown = set(required) - {"generic", "avx2", "avx512"}
    assert not unknown, f"LAMINA_REQUIRE_ISAS names unknown paths {sorted(unknown)}"
    available = lamina.backend_info()["isas_available"]
    missing = [isa for isa in required if isa not in available]
    assert not missing, (f"LAMINA_REQUIRE_ISAS requires {missing}, which this CPU does not offer "
                         f"(available: {available}): their kernels would be tested nowhere")


@pytest.mark.parametrize("isa", lamina.backend_info()["isas_available"])
def test_lamina_cpu_forces_each_available_path(isa):
    code = ("import lamina, numpy as np; a = np.arange(12, dtype=np.float32).reshape(3, 4);"
            "assert np.allclose(lamina.ops.matmul(a, a.T), a @ a.T); print(lamina.backend_info()['isa'])")
    r = run(code, LAMINA_CPU=isa)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == isa


def test_unknown_path_is_a_clear_error():
    r = run("import lamina", LAMINA_CPU="avx9000")
    assert r.returncode != 0
    assert "LAMINA_CPU=avx9000 is not a known CPU path" in r.stderr
    assert "Segmentation" not in r.stderr


def test_path_the_cpu_lacks_is_a_clear_error():
    # LAMINA_CPU_DISABLE hides a path from detection, as on a CPU without it.
    r = run("import lamina", LAMINA_CPU="avx512", LAMINA_CPU_DISABLE="avx512")
    assert r.returncode != 0
    assert "LAMINA_CPU=avx512 asks for a path this CPU or this build cannot run" in r.stderr
    r = run("import lamina; print(lamina.backend_info()['isa'])", LAMINA_CPU_DISABLE="avx512,avx2")
    assert r.returncode == 0 and r.stdout.strip() == "generic"


def test_omp_num_threads_is_respected():
    r = run("import lamina; print(lamina.get_num_threads())", OMP_NUM_THREADS="1")
    assert r.returncode == 0 and r.stdout.strip() == "1"


def test_set_num_threads():
    before = lamina.get_num_threads()
    try:
        lamina.set_num_threads(3)
        assert lamina.get_num_threads() == 3 == lamina.backend_info()["threads"]
        with pytest.raises(ValueError, match="n must be >= 1"):
            lamina.set_num_threads(0)
        with pytest.raises(TypeError, match="n must be an int"):
            lamina.set_num_threads(2.5)
    finally:
        lamina.set_num_threads(before)


def test_select_isa_rejects_unknown():
    with pytest.raises(ValueError, match="not a known CPU path"):
        lamina._native._select_isa("sse9")
