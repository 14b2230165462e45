"""lstm_cell / gru_cell and their backward passes through opcheck: every implementation (every CPU
path and thread count, every registered backend that has these optional kernels) against the
reference, on hidden sizes around the vector widths (masked tails), the gradients of h and of c
by float64 finite differences; then bad inputs and the signatures."""
import inspect

import numpy as np
import pytest

import lamina
import opcheck
from lamina import ops, reference as ref
from lamina.backend import OPTIONAL_KERNELS

LSTM_KERNELS = ("lstm_cell", "lstm_cell_backward")
GRU_KERNELS = ("gru_cell", "gru_cell_backward")



_fwd = opcheck.allclose(rtol=2e-6, atol=2e-6)
_bwd = opcheck.allclose(rtol=1e-5, atol=2e-6)
# h (y=0): grad_c None; c (y=1): grad_h zero, the gradient enters through grad_c
LSTM_H = opcheck.Op("lstm_cell", close=_fwd, y=0, backward="lstm_cell_backward",
                    backward_args=lambda a, kw, out, gy: ((gy, None, out[2], a[2], out[1]), {}),
                    backward_close=_bwd, wrt=(0, 2))
LSTM_C = opcheck.Op("lstm_cell", close=_fwd, y=1, backward="lstm_cell_backward",
                    backward_args=lambda a, kw, out, gy: ((np.zeros_like(gy), gy, out[2], a[2], out[1]), {}),
                    backward_close=_bwd, wrt=(1, 2))
GRU = opcheck.Op("gru_cell", close=_fwd, y=0, backward="gru_cell_backward",
                 backward_args=lambda a, kw, out, gy: ((gy, out[1], a[2]), {}),
                 backward_close=_bwd, wrt=(0, 1, 2))

SIZES = [(1, 1), (3, 5), (2, 16), (4, 17), (5, 33), (7, 64), (64, 128), (0, 4)]  # (N, H)


def _gates(rng, N, H, G):
    return [(rng.standard_normal((N, G * H)) * 1.5).astype(np.float32) for _ in range(2)]


@pytest.mark.parametrize("target", opcheck.targets(LSTM_H, requires=LSTM_KERNELS))
@pytest.mark.parametrize("size", SIZES, ids=str)
def test_lstm_cell_and_grad_h(target, rng, size):
    N, H = size
    gx, gh = _gates(rng, N, H, 4)
    c_prev = rng.standard_normal((N, H)).astype(np.float32)
    opcheck.check(target, LSTM_H, (gx, gh, c_prev))


@pytest.mark.parametrize("target", opcheck.targets(LSTM_C, requires=LSTM_KERNELS))
@pytest.mark.parametrize("size", SIZES[:6], ids=str)
def test_lstm_cell_grad_c(target, rng, size):
    N, H = size
    gx, gh = _gates(rng, N, H, 4)
    c_prev = rng.standard_normal((N, H)).astype(np.float32)
    # the gradient with respect to gates_h (argument 1) equals that of gates_x
    opcheck.check(target, LSTM_C, (gx, gh, c_prev))


@pytest.mark.parametrize("target", opcheck.targets(GRU, requires=GRU_KERNELS))
@pytest.mark.parametrize("size", SIZES, ids=str)
def test_gru_cell(target, rng, size):
    N, H = size
    gx, gh = _gates(rng, N, H, 3)
    h_prev = rng.standard_normal((N, H)).astype(np.float32)
    opcheck.check(target, GRU, (gx, gh, h_prev))


def test_saturated_gates_stay_finite(isa):
    """Pre-activations of +-100 saturate every gate: results are finite, gradients 0 there."""
    N, H = 3, 20
    gx = np.where(np.arange(4 * H) % 2 == 0, 100.0, -100.0).astype(np.float32)[None].repeat(N, 0)
    h, c, act = ops.lstm_cell(gx, np.zeros_like(gx), np.ones((N, H), np.float32))
    assert np.all(np.isfinite(h)) and np.all(np.isfinite(c))
    want = ref.lstm_cell(gx.astype(np.float64), np.zeros(gx.shape), np.ones((N, H)))
    np.testing.assert_allclose(h, want[0], atol=1e-6)
    g, gcp = ops.lstm_cell_backward(np.ones((N, H), np.float32), None, act, np.ones((N, H), np.float32), c)
    assert np.all(np.isfinite(g)) and np.all(np.isfinite(gcp))


@pytest.mark.parametrize("mod", [ops, ref], ids=["native", "reference"])
def test_bad_arguments_name_themselves(mod):
    g4, g3 = np.zeros((2, 8), np.float32), np.zeros((2, 6), np.float32)
    h = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match="gates_x"):
        mod.lstm_cell(np.zeros((2, 6), np.float32), np.zeros((2, 6), np.float32), np.zeros((2, 1), np.float32))
    with pytest.raises(ValueError, match="gates_h"):
        mod.lstm_cell(g4, g3, h)
    with pytest.raises(ValueError, match="c_prev"):
        mod.lstm_cell(g4, g4, np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="grad_c"):
        mod.lstm_cell_backward(h, np.zeros((2, 3), np.float32), g4, h, h)
    with pytest.raises(ValueError, match="act"):
        mod.lstm_cell_backward(h, None, np.zeros((2, 7), np.float32), h, h)
    with pytest.raises(ValueError, match="h_prev"):
        mod.gru_cell(g3, g3, np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="grad_h"):
        mod.gru_cell_backward(np.zeros((2, 3), np.float32), g4, h)
    with pytest.raises(ValueError, match="gates_x"):
        mod.gru_cell(np.zeros((2, 3, 3), np.float32), g3, h)
    with pytest.raises(TypeError, match="gates_x"):
        mod.gru_cell(g3.astype(np.float16), g3, h)


def test_kernels_are_optional_with_the_reference_signatures():
    sigs = lamina._native._kernel_signatures()
    for k in LSTM_KERNELS + GRU_KERNELS:
        assert k in OPTIONAL_KERNELS and k not in lamina.backend.KERNELS
        for name in ("native", "numpy"):
            assert callable(getattr(lamina.get_backend(name), k))
        want = [(p.name, p.default is not inspect.Parameter.empty) for p in
                inspect.signature(getattr(ref, k)).parameters.values()]
        assert [(n, h) for n, h, _ in sigs[k]] == want, k


def test_cuda_emu_signatures_and_bad_arguments():
    import lamina.cuda as lcuda
    if not lcuda.emu_built():
        pytest.skip("built without the CUDA emulator (LAMINA_CUDA_EMU=OFF)")
    be = lamina.get_backend("cuda_emu")
    for k in LSTM_KERNELS + GRU_KERNELS:
        assert inspect.signature(getattr(be, k)) == inspect.signature(getattr(ref, k)), k
    g4, g3, h = be.zeros((2, 8)), be.zeros((2, 6)), be.zeros((2, 2))
    with pytest.raises(ValueError, match="gates_x"):
        be.lstm_cell(be.zeros((2, 6)), be.zeros((2, 6)), be.zeros((2, 1)))
    with pytest.raises(ValueError, match="gates_h"):
        be.lstm_cell(g4, g3, h)
    with pytest.raises(ValueError, match="c_prev"):
        be.lstm_cell(g4, g4, be.zeros((3, 2)))
    with pytest.raises(ValueError, match="grad_c"):
        be.lstm_cell_backward(h, be.zeros((2, 3)), g4, h, h)
    with pytest.raises(ValueError, match="act"):
        be.lstm_cell_backward(h, None, be.zeros((2, 7)), h, h)
    with pytest.raises(ValueError, match="h_prev"):
        be.gru_cell(g3, g3, be.zeros((2, 3)))
    with pytest.raises(ValueError, match="grad_h"):
        be.gru_cell_backward(be.zeros((2, 3)), g4, h)
    with pytest.raises(ValueError, match="gates_x"):
        be.gru_cell(be.zeros((2, 3, 3)), g3, h)
    with pytest.raises(TypeError, match="gates_x"):
        be.gru_cell(np.zeros((2, 6), np.float32), g3, h)
    with pytest.raises(TypeError, match="c_prev must be float32"):
        be.lstm_cell(g4, g4, be.asarray(np.zeros((2, 2))))
    # strided inputs are read as they are
    rng = np.random.default_rng(3)
    gx, gh = (rng.standard_normal((5, 12)).astype(np.float32) for _ in range(2))
    hp = rng.standard_normal((5, 8)).astype(np.float32)
    got = be.gru_cell(be.asarray(gx), be.asarray(gh), be.asarray(hp)[:, ::2])
    want = ref.gru_cell(gx, gh, hp[:, ::2])
    for a, b in zip(got, want):
        np.testing.assert_allclose(be.to_numpy(a), b, rtol=2e-6, atol=2e-6)
