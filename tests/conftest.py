"""Shared fixtures: a seeded generator, and every CPU path this machine can run.

The `isa` fixture switches lamina's CPU path in-process (lamina._native._select_isa) so one
test run covers generic, avx2 and avx512; test_isa.py checks the LAMINA_CPU environment
variable itself in subprocesses.

The wrapped stand-in device backend (wrapped_backend.py) is registered here, before the test
modules are collected, so that opcheck.targets() runs every kernel check on it as well; so is
the CUDA emulator's backend "cuda_emu" where this install has it (LAMINA_CUDA_EMU=ON builds;
LAMINA_REQUIRE_CUDA_EMU=1, set by CI, makes its absence a failure): every kernel check then runs
the CUDA backend's real kernels, launches and GEMM paths too.
"""
import os

import numpy as np
import pytest

import lamina
import lamina.cuda
import wrapped_backend

wrapped_backend.register()
if lamina.cuda.emu_built():
    lamina.get_backend("cuda_emu")
elif os.environ.get("LAMINA_REQUIRE_CUDA_EMU") == "1":
    raise RuntimeError("LAMINA_REQUIRE_CUDA_EMU=1 but this install has no CUDA emulator (lamina._cuda_emu): "
                       "build with LAMINA_CUDA_EMU=ON")
if lamina.cuda.is_available():  # a GPU: every opcheck table runs on "cuda" as well
    lamina.get_backend("cuda")

AVAILABLE_ISAS = lamina.backend_info()["isas_available"]


@pytest.fixture
def rng():
    return np.random.default_rng(20261127)


@pytest.fixture(params=AVAILABLE_ISAS)
def isa(request):
    before = lamina.backend_info()["isa"]
    lamina._native._select_isa(request.param)
    try:
        yield request.param
    finally:
        lamina._native._select_isa(before)


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    before = lamina.get_num_threads()
    lamina.set_num_threads(request.param)
    try:
        yield request.param
    finally:
        lamina.set_num_threads(before)
