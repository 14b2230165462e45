"""Recurrent layers with full backpropagation through time: the Elman RNN, LSTM and GRU.

    h_t = f(x_t W_ih^T + h_{t-1} W_hh^T + b),  h_0 = 0,  f = tanh or relu
    x (N, T, F) -> h_T (N, H), or every h_t as (N, T, H) with return_sequences=True.

Each step is one fused GEMM: u_t = [x_t, h_{t-1}] (N, F+H) against W = [W_ih | W_hh]
(H, F+H), with the bias (and ReLU) in the GEMM's write-back. The u_t are kept time-major in
one buffer U (T, N, F+H), so the backward gets dC/dW for both matrices from a single GEMM
dZ^T U over all steps, and dC/dx from one GEMM dZ W_ih.

LSTM and GRU (PyTorch's equations, gate order and parameter layout) project every step's input
in one GEMM before the loop, run one GEMM per step for the recurrent part and the backend's
gate kernel (lstm_cell / gru_cell, lamina.reference.rnn_cell) on the two; their backward gets
each weight's gradient from one GEMM over all steps.
"""
from __future__ import annotations

import math

from .. import backend as _backend
from .layers import Layer, grad_matmul, init_weight, register_layer
from .parameter import Parameter


@register_layer
class RNN(Layer):
    """Elman RNN: x (N, T, input_size) -> the last hidden state (N, hidden_size), or every state
    (N, T, hidden_size) with ``return_sequences=True``. ``nonlinearity``: "tanh" or "relu"
    (ValueError otherwise); ``init`` (input weights, Xavier) and ``recurrent_init`` (orthogonal)
    take initialiser names or callables. Backward is full backpropagation through time.

    Example (a classifier of sequences (N, T, 1)):

        >>> import numpy as np
        >>> from lamina import nn
        >>> model = nn.Sequential(nn.RNN(1, 32), nn.Dense(32, 2))
        >>> model.predict(np.zeros((4, 10, 1), np.float32)).shape
        (4, 2)
    """

    _param_names = ("weight_ih", "weight_hh", "bias")

    def __init__(self, input_size, hidden_size, nonlinearity="tanh", return_sequences=False, bias=True,
                 init="xavier", recurrent_init="orthogonal"):
        super().__init__()
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        if self.input_size < 1 or self.hidden_size < 1:
            raise ValueError(f"RNN sizes must be >= 1, got ({input_size}, {hidden_size})")
        self.nonlinearity = nonlinearity
        self.return_sequences = bool(return_sequences)
        H, F = self.hidden_size, self.input_size
        self.weight_ih = Parameter(init_weight(init, (H, F)), "weight_ih")
        self.weight_hh = Parameter(init_weight(recurrent_init, (H, H)), "weight_hh")
        self.bias = Parameter(init_weight("zeros", (H,)), "bias") if bias else None

    @property
    def weight(self):
        """The input-to-hidden weight (H, F), ``weight_ih`` (a Parameter); the recurrent one
        is ``weight_hh`` (H, H).

        Example:

            >>> from lamina import nn
            >>> nn.RNN(3, 5).weight.shape
            (5, 3)
        """
        return self.weight_ih

    def forward(self, x, training=False):
        """x (N, T, F) -> the last state (N, H), or every state (N, T, H) with
        ``return_sequences``; h_0 = 0, h_t = act(W_ih x_t + W_hh h_{t-1} + b), in the
        parameters' dtype (TypeError for another). ValueError for an input that is not
        (N, T, input_size) or has no time step. Keeps every state for backward.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.RNN(3, 5).forward(np.zeros((2, 7, 3), np.float32)).shape
            (2, 5)
            >>> nn.RNN(3, 5, return_sequences=True).forward(np.zeros((2, 7, 3), np.float32)).shape
            (2, 7, 5)
        """
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"RNN expects input (N, T, {self.input_size}), got shape {x.shape}")
        N, T, F = x.shape
        H = self.hidden_size
        if T < 1:
            raise ValueError("RNN needs at least one time step")
        be = self._be()
        dt = self.weight_ih.dtype
        W = self._buffer("W", (H, F + H), dt, be)  # [W_ih | W_hh]
        be.copy(self.weight_ih.data, out=W[:, :F])
        be.copy(self.weight_hh.data, out=W[:, F:])
        U = self._buffer("U", (T, N, F + H), dt, be)  # u_t = [x_t, h_{t-1}]
        be.fill(U[0], 0.0)  # h_0 = 0 (all of U[0]: a contiguous block; x_0 is written next)
        be.transpose(x, (1, 0, 2), out=U[:, :, :F])
        Hs = self._buffer("H", (T, N, H), dt, be)  # h_t, time-major
        b = None if self.bias is None else self.bias.data
        relu = self.nonlinearity == "relu"
        z = None if relu else self._buffer("z", (N, H), dt, be)
        for t in range(T):
            if relu:
                h = be.linear(U[t], W, b, activation="relu", out=Hs[t])
            else:
                h = be.tanh(be.linear(U[t], W, b, out=z), out=Hs[t])
            if t + 1 < T:
                be.copy(h, out=U[t + 1, :, F:])
        self._cache = (x.shape, U, Hs)
        if self.return_sequences:
            return be.transpose(Hs, (1, 0, 2))
        return Hs[T - 1]

    def _backward(self, grad, need_input_grad):
        (N, T, F), U, Hs = self._cache
        H = self.hidden_size
        be = self._be()
        dt = U.dtype
        act_backward = be.relu_backward if self.nonlinearity == "relu" else be.tanh_backward
        if self.return_sequences:
            if tuple(grad.shape) != (N, T, H):
                raise ValueError(f"grad has shape {grad.shape}, expected {(N, T, H)}")
            gT = be.transpose(grad, (1, 0, 2))  # (T, N, H)
        elif tuple(grad.shape) != (N, H):
            raise ValueError(f"grad has shape {grad.shape}, expected {(N, H)}")
        dZ = self._buffer("dZ", (T, N, H), dt, be)
        dh = self._buffer("dh", (N, H), dt, be)  # dC/dh_{t-1} from step t
        acc = self._buffer("acc", (N, H), dt, be)
        w_hh = self.weight_hh.data
        for t in range(T - 1, -1, -1):
            if self.return_sequences:
                total = gT[t] if t == T - 1 else be.add(gT[t], dh, out=acc)
            else:
                total = grad if t == T - 1 else dh
            act_backward(total, Hs[t], out=dZ[t])
            if t > 0:
                be.matmul(dZ[t], w_hh, out=dh)  # (N, H) @ (H, H)
        dZ2 = dZ.reshape(T * N, H)
        if self.weight_ih.trainable or self.weight_hh.trainable:
            dW = be.matmul(dZ2, U.reshape(T * N, F + H), trans_a=True)  # (H, F+H)
            if self.weight_ih.trainable:
                self.weight_ih.accumulate_grad(be.copy(dW[:, :F]))
            if self.weight_hh.trainable:
                self.weight_hh.accumulate_grad(be.copy(dW[:, F:]))
        if self.bias is not None and self.bias.trainable:
            grad_matmul(be, self.bias, self._ones(T * N, dt, be), dZ2, shape=(1, H))
        if not need_input_grad:
            return None
        dX = be.matmul(dZ2, self.weight_ih.data)  # (T*N, F)
        return be.transpose(dX.reshape(T, N, F), (1, 0, 2))

    def output_shape(self, input_shape):
        """(T, F) -> (H,), or (T, H) with ``return_sequences``.

        Example:

            >>> from lamina import nn
            >>> nn.RNN(3, 5).output_shape((7, 3))
            (5,)
        """
        T = input_shape[0]
        return (T, self.hidden_size) if self.return_sequences else (self.hidden_size,)

    def get_config(self):
        """``input_size``, ``hidden_size``, ``nonlinearity``, ``return_sequences`` and ``bias``
        (the initialisers are not kept: a loaded layer gets its weights from the file).

        Example:

            >>> from lamina import nn
            >>> nn.RNN(3, 5, nonlinearity="relu").get_config()["nonlinearity"]
            'relu'
        """
        return {"input_size": self.input_size, "hidden_size": self.hidden_size,
                "nonlinearity": self.nonlinearity, "return_sequences": self.return_sequences,
                "bias": self.bias is not None}


def _torch_uniform(hidden_size):
    """PyTorch's initialisation of its recurrent layers: U(-1/sqrt(H), 1/sqrt(H)) for every
    weight and bias."""
    k = 1.0 / math.sqrt(hidden_size)

    def init(shape, rng):
        return rng.uniform(-k, k, size=shape)

    return init


class _GatedRNN(Layer):
    """What LSTM and GRU share: the weights as PyTorch keeps them, the input projection of every
    step in one GEMM before the loop (Gx = X W_ih^T + b_ih over all T N rows), one GEMM per
    step for the recurrent part (gates_h = h_{t-1} W_hh^T + b_hh), the gate kernel of the
    backend, and in the backward the weight gradients as one GEMM each over all steps."""

    _param_names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    _gates = 0  # G: 4 for LSTM, 3 for GRU

    def __init__(self, input_size, hidden_size, return_sequences=False, bias=True):
        super().__init__()
        name = type(self).__name__
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        if self.input_size < 1 or self.hidden_size < 1:
            raise ValueError(f"{name} sizes must be >= 1, got ({input_size}, {hidden_size})")
        self.return_sequences = bool(return_sequences)
        H, F, GH = self.hidden_size, self.input_size, self._gates * self.hidden_size
        init = _torch_uniform(H)
        self.weight_ih = Parameter(init_weight(init, (GH, F)), "weight_ih")
        self.weight_hh = Parameter(init_weight(init, (GH, H)), "weight_hh")
        self.bias_ih = Parameter(init_weight(init, (GH,)), "bias_ih") if bias else None
        self.bias_hh = Parameter(init_weight(init, (GH,)), "bias_hh") if bias else None
        self._cache = None

    def _kernels(self, be):
        stem = type(self).__name__.lower()
        return (_backend.require_kernel(be, f"{stem}_cell", type(self).__name__),
                _backend.require_kernel(be, f"{stem}_cell_backward", type(self).__name__))

    def _project(self, x):
        """(be, Xt (T, N, F) time-major, Gx (T, N, G H) = x_t W_ih^T + b_ih for every step)."""
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"{type(self).__name__} expects input (N, T, {self.input_size}), got shape {tuple(x.shape)}")
        N, T, F = x.shape
        if T < 1:
            raise ValueError(f"{type(self).__name__} needs at least one time step")
        be = self._be()
        dt = self.weight_ih.dtype
        Xt = self._buffer("Xt", (T, N, F), dt, be)
        be.transpose(x, (1, 0, 2), out=Xt)
        b = None if self.bias_ih is None else self.bias_ih.data
        Gx = be.linear(Xt.reshape(T * N, F), self.weight_ih.data, b,
                       out=self._buffer("Gx", (T * N, self._gates * self.hidden_size), dt, be))
        return be, Xt, Gx.reshape(T, N, self._gates * self.hidden_size)

    def _step_h(self, be, h, out):
        b = None if self.bias_hh is None else self.bias_hh.data
        return be.linear(h, self.weight_hh.data, b, out=out)

    def _output(self, be, Hs):
        T = Hs.shape[0] - 1
        if self.return_sequences:
            return be.transpose(Hs[1:], (1, 0, 2))
        return Hs[T]

    def _grad_of_step(self, be, grad, t, T, dh, acc):
        """dC/dh_t: the output's gradient at step t (if any) plus the recurrent one (dh)."""
        if self.return_sequences:
            return grad[t] if t == T - 1 else be.add(grad[t], dh, out=acc)
        return grad if t == T - 1 else dh

    def _check_grad(self, be, grad, N, T):
        H = self.hidden_size
        if self.return_sequences:
            if tuple(grad.shape) != (N, T, H):
                raise ValueError(f"grad has shape {tuple(grad.shape)}, expected {(N, T, H)}")
            return be.transpose(grad, (1, 0, 2))
        if tuple(grad.shape) != (N, H):
            raise ValueError(f"grad has shape {tuple(grad.shape)}, expected {(N, H)}")
        return grad

    def _weight_grads(self, be, Xt, Hs, dGx, dGh, need_input_grad):
        """The parameter gradients from every step's gate gradients at once; dC/dx."""
        T, N, F = Xt.shape
        H, GH = self.hidden_size, self._gates * self.hidden_size
        dGx2, dGh2 = dGx.reshape(T * N, GH), dGh.reshape(T * N, GH)
        if self.weight_ih.trainable:  # (GH, F) = dGx^T X
            grad_matmul(be, self.weight_ih, dGx2, Xt.reshape(T * N, F), trans_a=True)
        if self.weight_hh.trainable:  # (GH, H) = dGh^T [h_0 .. h_{T-1}]
            grad_matmul(be, self.weight_hh, dGh2, Hs[:T].reshape(T * N, H), trans_a=True)
        if self.bias_ih is not None:
            ones = self._ones(T * N, dGx.dtype, be)
            if self.bias_ih.trainable:
                grad_matmul(be, self.bias_ih, ones, dGx2, shape=(1, GH))
            if self.bias_hh.trainable:
                grad_matmul(be, self.bias_hh, ones, dGh2, shape=(1, GH))
        if not need_input_grad:
            return None
        dX = be.matmul(dGx2, self.weight_ih.data)  # (T N, F)
        return be.transpose(dX.reshape(T, N, F), (1, 0, 2))

    def output_shape(self, input_shape):
        T = input_shape[0]
        return (T, self.hidden_size) if self.return_sequences else (self.hidden_size,)

    def get_config(self):
        return {"input_size": self.input_size, "hidden_size": self.hidden_size,
                "return_sequences": self.return_sequences, "bias": self.bias_ih is not None}


@register_layer
class LSTM(_GatedRNN):
    """Long short-term memory, batch first: x (N, T, input_size) -> the last hidden state
    (N, hidden_size), or every one (N, T, hidden_size) with ``return_sequences=True``; h_0 = c_0 = 0.
    PyTorch's equations, gate order (i, f, g, o), parameter shapes and initialisation:

        i, f, g, o = s(.), s(.), tanh(.), s(.) of x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh
        c_t = f c_{t-1} + i g,   h_t = o tanh(c_t)

    ``weight_ih`` (4H, F), ``weight_hh`` (4H, H), ``bias_ih``, ``bias_hh`` (4H,): the tensors of
    ``torch.nn.LSTM(F, H, batch_first=True)`` called ``weight_ih_l0`` ... ``bias_hh_l0``.
    Backward is full backpropagation through time. Needs the kernels ``lstm_cell`` and
    ``lstm_cell_backward`` (NotImplementedError naming them on a backend without).

    Example (a classifier of sequences (N, T, 8)):

        >>> import numpy as np
        >>> from lamina import nn
        >>> model = nn.Sequential(nn.LSTM(8, 32), nn.Dense(32, 2))
        >>> model.predict(np.zeros((4, 10, 8), np.float32)).shape, model.layers[0].weight_ih.shape
        ((4, 2), (128, 8))
    """

    _gates = 4

    def forward(self, x, training=False):
        """x (N, T, F) -> h_T (N, H), or every h_t (N, T, H) with ``return_sequences``, in the
        parameters' dtype (TypeError for another). ValueError for an input that is not
        (N, T, input_size) or has no time step; NotImplementedError on a backend without the
        LSTM kernels. Keeps every h_t, c_t and the gates for backward.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.LSTM(3, 5).forward(np.zeros((2, 7, 3), np.float32)).shape
            (2, 5)
        """
        cell, _ = self._kernels(self._be())
        be, Xt, Gx = self._project(x)
        T, N, _ = Gx.shape
        H, dt = self.hidden_size, Gx.dtype
        Hs = self._buffer("H", (T + 1, N, H), dt, be)  # h_0 .. h_T
        Cs = self._buffer("C", (T + 1, N, H), dt, be)  # c_0 .. c_T
        be.fill(Hs[0], 0.0)
        be.fill(Cs[0], 0.0)
        gh = self._buffer("gh", (N, 4 * H), dt, be)
        acts = []
        for t in range(T):
            h, c, act = cell(Gx[t], self._step_h(be, Hs[t], gh), Cs[t])
            be.copy(h, out=Hs[t + 1])
            be.copy(c, out=Cs[t + 1])
            acts.append(act)
        self._cache = (Xt, Hs, Cs, acts)
        return self._output(be, Hs)

    def _backward(self, grad, need_input_grad):
        if self._cache is None:
            raise RuntimeError("LSTM.backward called before forward")
        Xt, Hs, Cs, acts = self._cache
        be = self._be()
        _, cell_backward = self._kernels(be)
        T, N, _ = Xt.shape
        H, dt = self.hidden_size, Xt.dtype
        grad = self._check_grad(be, grad, N, T)
        dG = self._buffer("dG", (T, N, 4 * H), dt, be)
        dh = self._buffer("dh", (N, H), dt, be)
        acc = self._buffer("acc", (N, H), dt, be)
        dc = None
        w_hh = self.weight_hh.data
        for t in range(T - 1, -1, -1):
            g, dc = cell_backward(self._grad_of_step(be, grad, t, T, dh, acc), dc, acts[t], Cs[t], Cs[t + 1])
            be.copy(g, out=dG[t])
            if t > 0:
                be.matmul(dG[t], w_hh, out=dh)  # (N, 4H) @ (4H, H)
        return self._weight_grads(be, Xt, Hs, dG, dG, need_input_grad)


@register_layer
class GRU(_GatedRNN):
    """Gated recurrent unit, batch first: x (N, T, input_size) -> the last hidden state
    (N, hidden_size), or every one with ``return_sequences=True``; h_0 = 0. PyTorch's equations
    and gate order (r, z, n), the reset gate applied to W_hn h + b_hn:

        r = s(W_ir x + b_ir + W_hr h + b_hr),  z = s(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r (W_hn h + b_hn)),  h' = (1 - z) n + z h

    ``weight_ih`` (3H, F), ``weight_hh`` (3H, H), ``bias_ih``, ``bias_hh`` (3H,): the tensors of
    ``torch.nn.GRU(F, H, batch_first=True)`` (``weight_ih_l0`` ...). Full BPTT. Needs the
    kernels ``gru_cell`` and ``gru_cell_backward``.

    Example (two stacked GRUs):

        >>> import numpy as np
        >>> from lamina import nn
        >>> model = nn.Sequential(nn.GRU(8, 32, return_sequences=True), nn.GRU(32, 16), nn.Dense(16, 2))
        >>> model.predict(np.zeros((4, 10, 8), np.float32)).shape, model.layers[0].weight_ih.shape
        ((4, 2), (96, 8))
    """

    _gates = 3

    def forward(self, x, training=False):
        """x (N, T, F) -> h_T (N, H), or every h_t (N, T, H) with ``return_sequences``, in the
        parameters' dtype (TypeError for another). ValueError for an input that is not
        (N, T, input_size) or has no time step; NotImplementedError on a backend without the
        GRU kernels. Keeps every h_t and the gates for backward.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.GRU(3, 5, return_sequences=True).forward(np.zeros((2, 7, 3), np.float32)).shape
            (2, 7, 5)
        """
        cell, _ = self._kernels(self._be())
        be, Xt, Gx = self._project(x)
        T, N, _ = Gx.shape
        H, dt = self.hidden_size, Gx.dtype
        Hs = self._buffer("H", (T + 1, N, H), dt, be)
        be.fill(Hs[0], 0.0)
        gh = self._buffer("gh", (N, 3 * H), dt, be)
        acts = []
        for t in range(T):
            h, act = cell(Gx[t], self._step_h(be, Hs[t], gh), Hs[t])
            be.copy(h, out=Hs[t + 1])
            acts.append(act)
        self._cache = (Xt, Hs, acts)
        return self._output(be, Hs)

    def _backward(self, grad, need_input_grad):
        if self._cache is None:
            raise RuntimeError("GRU.backward called before forward")
        Xt, Hs, acts = self._cache
        be = self._be()
        _, cell_backward = self._kernels(be)
        T, N, _ = Xt.shape
        H, dt = self.hidden_size, Xt.dtype
        grad = self._check_grad(be, grad, N, T)
        dGx = self._buffer("dGx", (T, N, 3 * H), dt, be)
        dGh = self._buffer("dGh", (T, N, 3 * H), dt, be)
        dh = self._buffer("dh", (N, H), dt, be)
        acc = self._buffer("acc", (N, H), dt, be)
        w_hh = self.weight_hh.data
        for t in range(T - 1, -1, -1):
            gx, gh, direct = cell_backward(self._grad_of_step(be, grad, t, T, dh, acc), acts[t], Hs[t])
            be.copy(gx, out=dGx[t])
            be.copy(gh, out=dGh[t])
            if t > 0:  # dC/dh_{t-1} = z dC/dh_t + dGh_t W_hh
                be.matmul(gh, w_hh, out=dh)
                be.add(dh, direct, out=dh)
        return self._weight_grads(be, Xt, Hs, dGx, dGh, need_input_grad)
