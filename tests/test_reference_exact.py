"""lamina.reference is the oracle every backend is compared with, so its own contract is pinned
here directly: the errors it raises (naming the argument), the ``out=`` argument of every kernel
that has one (written in place and returned), and the float64 accumulation of the losses."""
import math

import numpy as np
import pytest

from lamina import reference as ref


# -- losses: bad inputs, named ------------------------------------------------------------------
def test_mse_rejects_mismatched_shapes_naming_target_and_pred():
    with pytest.raises(ValueError, match=r"\btarget\b.*\(4, 3\).*\bpred\b.*\(3, 4\)"):
        ref.mse(np.zeros((3, 4), np.float32), np.zeros((4, 3), np.float32))


@pytest.mark.parametrize("shape", [(), (0,), (0, 3)], ids=str)
def test_mse_needs_at_least_one_example(shape):
    z = np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match=r"\bpred\b must have at least one example"):
        ref.mse(z, z)


def test_bce_rejects_mismatched_shapes_naming_target_and_prob():
    with pytest.raises(ValueError, match=r"\btarget\b.*\(12,\).*\bprob\b.*\(3, 4\)"):
        ref.binary_cross_entropy(np.zeros((3, 4), np.float32), np.zeros(12, np.float32))


@pytest.mark.parametrize("eps", [0.0, -1e-7, 0.5, 0.7, 1.0])
def test_bce_eps_outside_the_open_interval_0_half_is_rejected(eps):
    z = np.full(3, 0.5, np.float32)
    with pytest.raises(ValueError, match=r"\beps\b must be in \(0, 0\.5\)"):
        ref.binary_cross_entropy(z, z, eps=eps)


def test_bce_eps_just_inside_the_interval_clamps_there():
    p = np.array([0.0, 1.0], np.float64)
    t = np.array([1.0, 0.0], np.float64)
    eps = 0.4999
    loss, grad = ref.binary_cross_entropy(p, t, eps=eps)
    assert loss == pytest.approx(-math.log(eps), rel=1e-12)  # both clamp to a distance eps from 1 - t
    np.testing.assert_allclose(grad, [-1 / eps / 2, 1 / eps / 2], rtol=1e-12)


# -- losses: float32 terms, float64 sums ---------------------------------------------------------
def test_bce_of_float32_accumulates_the_mean_in_float64(rng):
    # 2**18 float32 terms: a float32 sum is off by ~1e-7 relative; the float64 one by ~1e-16.
    p = rng.uniform(0.01, 0.99, 1 << 18).astype(np.float32)
    t = rng.uniform(0, 1, p.size).astype(np.float32)
    terms = t * np.log(p) + (1 - t) * np.log1p(-p)  # float32, as the reference computes them
    want = -math.fsum(terms.astype(np.float64)) / p.size
    loss, grad = ref.binary_cross_entropy(p, t)
    assert type(loss) is float and grad.dtype == np.float32
    assert loss == pytest.approx(want, rel=1e-12)


def test_mse_of_float32_accumulates_in_float64(rng):
    a = rng.standard_normal((512, 512)).astype(np.float32)
    y = rng.standard_normal((512, 512)).astype(np.float32)
    d = (a - y).astype(np.float64)  # the float32 difference, exactly
    loss, grad = ref.mse(a, y)
    assert loss == pytest.approx(math.fsum((d * d).ravel()) / (2 * 512), rel=1e-12)
    assert grad.dtype == np.float32
    np.testing.assert_array_equal(grad, (a - y) / np.float32(512))


# -- every out= is written in place and returned ---------------------------------------------
def _unary(name):
    return lambda x, g, out: getattr(ref, name)(x, out=out)


def _backward(name, from_output):
    fwd = getattr(ref, name[:-len("_backward")])
    return lambda x, g, out: getattr(ref, name)(g, fwd(x) if from_output else x, out=out)


OUT_KERNELS = {
    "relu": _unary("relu"),
    "sigmoid": _unary("sigmoid"),
    "tanh": _unary("tanh"),
    "leaky_relu": lambda x, g, out: ref.leaky_relu(x, 0.1, out=out),
    "relu_backward": _backward("relu_backward", False),
    "sigmoid_backward": _backward("sigmoid_backward", True),
    "tanh_backward": _backward("tanh_backward", True),
    "leaky_relu_backward": lambda x, g, out: ref.leaky_relu_backward(g, x, 0.1, out=out),
}


@pytest.mark.parametrize("name", sorted(OUT_KERNELS))
def test_activation_out_is_written_and_returned(name, rng):
    x = rng.standard_normal((3, 5)).astype(np.float32)
    g = rng.standard_normal((3, 5)).astype(np.float32)
    want = OUT_KERNELS[name](x, g, None)
    out = np.full((3, 5), np.nan, np.float32)
    got = OUT_KERNELS[name](x, g, out)
    assert got is out
    np.testing.assert_array_equal(out, want)


# -- gather_rows, softmax_backward, upsample: errors and out= --------------------------------
def test_gather_rows_errors_name_the_argument_and_what_it_got():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    with pytest.raises(TypeError, match=r"\bindices\b must be a numpy\.ndarray of int64 or int32, got float64$"):
        ref.gather_rows(x, np.zeros(2))
    with pytest.raises(TypeError, match=r"\bindices\b must be .*, got list$"):
        ref.gather_rows(x, [0, 1])
    with pytest.raises(ValueError, match=r"\bindices\b must be 1-D, got shape \(1, 2\)"):
        ref.gather_rows(x, np.zeros((1, 2), np.int64))
    with pytest.raises(ValueError, match=r"^x must have at least 1 dimension$"):
        ref.gather_rows(np.float32(1.0), np.zeros(1, np.int64))
    with pytest.raises(ValueError, match=r"indices\[1\] = 4 is out of range \[0, 4\) for x of shape \(4, 3\)"):
        ref.gather_rows(x, np.array([3, 4, -1], np.int32))


def test_gather_rows_out_is_written_and_returned():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    out = np.full((2, 3), np.nan, np.float32)
    assert ref.gather_rows(x, np.array([3, 0]), out=out) is out
    np.testing.assert_array_equal(out, x[[3, 0]])


def test_softmax_backward_out_of_the_wrong_shape_is_named():
    y = ref.softmax(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"\bout\b has shape \(3, 2\), expected \(2, 3\)"):
        ref.softmax_backward(y, y, out=np.zeros((3, 2), np.float32))


@pytest.mark.parametrize("backward", [False, True])
def test_upsample_out_is_written_returned_and_checked(backward, rng):
    fn = ref.upsample_nearest2d_backward if backward else ref.upsample_nearest2d
    x = rng.standard_normal((1, 2, 4, 6)).astype(np.float32)
    want = fn(x, 2)
    out = np.full(want.shape, np.nan, np.float32)
    assert fn(x, 2, out=out) is out
    np.testing.assert_array_equal(out, want)
    with pytest.raises(ValueError, match=r"\bout\b has shape \(1, 2, 3, 3\), expected"):
        fn(x, 2, out=np.zeros((1, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"^scale must be >= 1, got 0$"):
        fn(x, 0)
    with pytest.raises(TypeError, match=r"^scale must be an int, got float$"):
        fn(x, 2.0)


# -- batch_norm_backward: every argument checked by name, dtypes kept ------------------------
def _bn_args(rng, C=3, dtype=np.float32):
    x = rng.standard_normal((4, C, 2)).astype(dtype)
    y, mean, invstd = ref.batch_norm(x, training=True)
    return dict(grad_y=rng.standard_normal(x.shape).astype(dtype), x=x, weight=np.ones(C, dtype),
                mean=mean, invstd=invstd, training=True)


@pytest.mark.parametrize("name", ["weight", "mean", "invstd"])
def test_batch_norm_backward_names_a_per_channel_argument_of_the_wrong_shape_or_dtype(rng, name):
    kw = _bn_args(rng)
    with pytest.raises(ValueError, match=rf"^{name} must have shape \(3,\) \(one value per channel\), got \(2,\)$"):
        ref.batch_norm_backward(**{**kw, name: np.ones(2, np.float32)})
    with pytest.raises(TypeError, match=rf"^{name} must have dtype float32, got float64$"):
        ref.batch_norm_backward(**{**kw, name: np.ones(3, np.float64)})
    with pytest.raises(TypeError, match=rf"^{name} must be a numpy\.ndarray or None, got list$"):
        ref.batch_norm_backward(**{**kw, name: [1.0, 1.0, 1.0]})


def test_batch_norm_backward_other_bad_arguments(rng):
    kw = _bn_args(rng)
    with pytest.raises(ValueError, match=r"^grad_y must have x's shape \(4, 3, 2\), got \(4, 3\)$"):
        ref.batch_norm_backward(**{**kw, "grad_y": np.zeros((4, 3), np.float32)})
    with pytest.raises(ValueError, match=r"^grad_y must have x's shape \(4, 3, 2\), got <class 'list'>$"):
        ref.batch_norm_backward(**{**kw, "grad_y": [0.0]})
    with pytest.raises(ValueError, match=r"^mean and invstd \(the forward's statistics\) are required$"):
        ref.batch_norm_backward(**{**kw, "mean": None})
    with pytest.raises(TypeError, match=r"^training must be a bool, got int$"):
        ref.batch_norm_backward(**{**kw, "training": 1})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_backward_keeps_the_dtype(rng, dtype):
    gx, gw, gb = ref.batch_norm_backward(**_bn_args(rng, dtype=dtype))
    assert gx.dtype == gw.dtype == gb.dtype == dtype


def test_batch_norm_backward_of_zero_channels_is_empty():
    x = np.zeros((4, 0, 2), np.float32)
    e = np.zeros(0, np.float32)
    gx, gw, gb = ref.batch_norm_backward(x, x, e, e, e, training=True)
    assert gx.shape == x.shape and gw.shape == gb.shape == (0,)


def test_batch_norm_backward_defaults_to_evaluation(rng):
    kw = _bn_args(rng)
    del kw["training"]
    gx, _, _ = ref.batch_norm_backward(**kw)
    k = (kw["weight"] * kw["invstd"]).reshape(1, 3, 1)
    np.testing.assert_allclose(gx, k * kw["grad_y"], rtol=1e-6)  # mean and invstd held constant


# -- the recurrent cells: every array argument checked by name --------------------------------
N_, H_ = 2, 3
RNN_CELLS = {  # kernel -> (argument names, their (rows, cols)); the first argument sets N and H
    "lstm_cell": (("gates_x", "gates_h", "c_prev"), ((N_, 4 * H_), (N_, 4 * H_), (N_, H_))),
    "lstm_cell_backward": (("act", "grad_h", "grad_c", "c_prev", "c"),
                           ((N_, 4 * H_), (N_, H_), (N_, H_), (N_, H_), (N_, H_))),
    "gru_cell": (("gates_x", "gates_h", "h_prev"), ((N_, 3 * H_), (N_, 3 * H_), (N_, H_))),
    "gru_cell_backward": (("act", "grad_h", "h_prev"), ((N_, 4 * H_), (N_, H_), (N_, H_))),
}
_ORDER = {"lstm_cell_backward": ("grad_h", "grad_c", "act", "c_prev", "c"),
          "gru_cell_backward": ("grad_h", "act", "h_prev")}


def _cell_call(kernel, arrays):
    order = _ORDER.get(kernel, RNN_CELLS[kernel][0])
    return getattr(ref, kernel)(*[arrays[n] for n in order])


def _cell_arrays(kernel, rng):
    names, shapes = RNN_CELLS[kernel]
    return {n: rng.uniform(0.1, 0.9, s).astype(np.float32) for n, s in zip(names, shapes)}


RNN_ARGS = [(k, n) for k, (names, _) in RNN_CELLS.items() for n in names]


@pytest.mark.parametrize("kernel,name", RNN_ARGS, ids=[f"{k}-{n}" for k, n in RNN_ARGS])
def test_rnn_cell_names_a_bad_argument(rng, kernel, name):
    arrays = _cell_arrays(kernel, rng)
    _cell_call(kernel, arrays)  # valid as made
    rows, cols = arrays[name].shape
    with pytest.raises(TypeError, match=rf"^{name} must be a numpy\.ndarray, got list$"):
        _cell_call(kernel, {**arrays, name: arrays[name].tolist()})
    with pytest.raises(ValueError, match=rf"^{name} must be 2-D \(N, columns\), got shape \({rows * cols},\)$"):
        _cell_call(kernel, {**arrays, name: arrays[name].ravel()})
    if name in ("gates_x", "act"):  # it sets N and H: a column count off the gate multiple
        G = 3 if kernel == "gru_cell" else 4
        with pytest.raises(ValueError, match=rf"^{name} must have {G} \* hidden_size columns"):
            _cell_call(kernel, {**arrays, name: np.zeros((rows, cols + 1), np.float32)})
        return
    for bad in ((rows + 1, cols), (rows, cols + 1)):
        with pytest.raises(ValueError, match=rf"^{name} must have shape \({rows}, {cols}\), got \({bad[0]}, {bad[1]}\)$"):
            _cell_call(kernel, {**arrays, name: np.zeros(bad, np.float32)})
