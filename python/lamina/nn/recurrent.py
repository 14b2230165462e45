"""Elman RNN with full backpropagation through time.

    h_t = f(x_t W_ih^T + h_{t-1} W_hh^T + b),  h_0 = 0,  f = tanh or relu
    x (N, T, F) -> h_T (N, H), or every h_t as (N, T, H) with return_sequences=True.

Each step is one fused GEMM: u_t = [x_t, h_{t-1}] (N, F+H) against W = [W_ih | W_hh]
(H, F+H), with the bias (and ReLU) in the GEMM's write-back. The u_t are kept time-major in
one buffer U (T, N, F+H), so the backward gets dC/dW for both matrices from a single GEMM
dZ^T U over all steps, and dC/dx from one GEMM dZ W_ih.
"""
from __future__ import annotations

from .layers import Layer, _grad_matmul, _init_weight, register_layer
from .parameter import Parameter


@register_layer
class RNN(Layer):
    """Elman RNN: x (N, T, input_size) -> the last hidden state (N, hidden_size), or every state
    (N, T, hidden_size) with ``return_sequences=True``. ``nonlinearity``: "tanh" or "relu"
    (ValueError otherwise); ``init`` (input weights, Xavier) and ``recurrent_init`` (orthogonal)
    take initialiser names or callables. Backward is full backpropagation through time.

    Example: ``nn.Sequential(nn.RNN(1, 32), nn.Dense(32, 2))`` classifies sequences (N, T, 1)."""

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
        self.weight_ih = Parameter(_init_weight(init, (H, F)), "weight_ih")
        self.weight_hh = Parameter(_init_weight(recurrent_init, (H, H)), "weight_hh")
        self.bias = Parameter(_init_weight("zeros", (H,)), "bias") if bias else None

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
            _grad_matmul(be, self.bias, self._ones(T * N, dt, be), dZ2, shape=(1, H))
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
