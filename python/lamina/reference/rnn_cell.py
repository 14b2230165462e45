"""The gate non-linearities of one LSTM or GRU step, forward and backward (PyTorch's equations
and gate order). The GEMMs are not here: the layer forms the gate pre-activations

    gates_x = x_t W_ih^T + b_ih   (N, G H)      gates_h = h_{t-1} W_hh^T + b_hh   (N, G H)

(G = 4 for LSTM, 3 for GRU; gate k is columns [k H, (k + 1) H)) and these kernels do the rest.

LSTM, gates i, f, g, o:
    i = s(x_i + h_i), f = s(x_f + h_f), g = tanh(x_g + h_g), o = s(x_o + h_o)       (s: sigmoid)
    c = f c_prev + i g,   h = o tanh(c)
    lstm_cell(gates_x, gates_h, c_prev) -> (h, c, act),  act = [i, f, g, o] (N, 4H)
    lstm_cell_backward(grad_h, grad_c, act, c_prev, c) -> (grad_gates (N, 4H), grad_c_prev (N, H)):
        dc = grad_c + grad_h o (1 - tanh(c)^2)
        grad_gates = [dc g i (1 - i), dc c_prev f (1 - f), dc i (1 - g^2), grad_h tanh(c) o (1 - o)]
        grad_c_prev = dc f
    grad_gates is the gradient of gates_x and of gates_h alike (their sum is what enters).

GRU, gates r, z, n (the reset gate multiplies W_hn h + b_hn, as in PyTorch):
    r = s(x_r + h_r), z = s(x_z + h_z), n = tanh(x_n + r h_n),  h = (1 - z) n + z h_prev
    gru_cell(gates_x, gates_h, h_prev) -> (h, act),  act = [r, z, n, h_n] (N, 4H)
    gru_cell_backward(grad_h, act, h_prev) -> (grad_gates_x, grad_gates_h (N, 3H), grad_h_prev (N, H)):
        dn = grad_h (1 - z) (1 - n^2),  dz = grad_h (h_prev - n) z (1 - z),  dr = dn h_n r (1 - r)
        grad_gates_x = [dr, dz, dn],  grad_gates_h = [dr, dz, dn r],  grad_h_prev = grad_h z
    (grad_h_prev is the direct path only; the layer adds grad_gates_h W_hh.)
"""
import numpy as np


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # exact, and stable for every x


def _matrix(a, name, cols=None, rows=None):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must have dtype float32 or float64, got {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, columns), got shape {a.shape}")
    if (cols is not None and a.shape[1] != cols) or (rows is not None and a.shape[0] != rows):
        raise ValueError(f"{name} must have shape ({rows}, {cols}), got {a.shape}")
    return a


def _gates(gates_x, gates_h, G):
    _matrix(gates_x, "gates_x")
    if gates_x.shape[1] % G:
        raise ValueError(f"gates_x must have {G} * hidden_size columns, got shape {gates_x.shape}")
    _matrix(gates_h, "gates_h", gates_x.shape[1], gates_x.shape[0])
    return gates_x.shape[0], gates_x.shape[1] // G


def lstm_cell(gates_x, gates_h, c_prev):
    """(h, c, act) of one LSTM step; see the module docstring."""
    N, H = _gates(gates_x, gates_h, 4)
    _matrix(c_prev, "c_prev", H, N)
    z = gates_x + gates_h
    i, f, o = _sigmoid(z[:, :H]), _sigmoid(z[:, H:2 * H]), _sigmoid(z[:, 3 * H:])
    g = np.tanh(z[:, 2 * H:3 * H])
    c = f * c_prev + i * g
    h = o * np.tanh(c)
    return h, c, np.concatenate([i, f, g, o], axis=1)


def lstm_cell_backward(grad_h, grad_c, act, c_prev, c):
    """(grad_gates, grad_c_prev) of one LSTM step; grad_c None counts as zeros."""
    _matrix(act, "act")
    if act.shape[1] % 4:
        raise ValueError(f"act must have 4 * hidden_size columns, got shape {act.shape}")
    N, H = act.shape[0], act.shape[1] // 4
    _matrix(grad_h, "grad_h", H, N)
    if grad_c is not None:
        _matrix(grad_c, "grad_c", H, N)
    _matrix(c_prev, "c_prev", H, N)
    _matrix(c, "c", H, N)
    i, f, g, o = act[:, :H], act[:, H:2 * H], act[:, 2 * H:3 * H], act[:, 3 * H:]
    tc = np.tanh(c)
    dc = grad_h * o * (1.0 - tc * tc)
    if grad_c is not None:
        dc = dc + grad_c
    grad_gates = np.concatenate([dc * g * i * (1.0 - i), dc * c_prev * f * (1.0 - f), dc * i * (1.0 - g * g),
                                 grad_h * tc * o * (1.0 - o)], axis=1)
    return grad_gates, dc * f


def gru_cell(gates_x, gates_h, h_prev):
    """(h, act) of one GRU step; see the module docstring."""
    N, H = _gates(gates_x, gates_h, 3)
    _matrix(h_prev, "h_prev", H, N)
    r = _sigmoid(gates_x[:, :H] + gates_h[:, :H])
    z = _sigmoid(gates_x[:, H:2 * H] + gates_h[:, H:2 * H])
    hn = gates_h[:, 2 * H:]
    n = np.tanh(gates_x[:, 2 * H:] + r * hn)
    h = (1.0 - z) * n + z * h_prev
    return h, np.concatenate([r, z, n, hn], axis=1)


def gru_cell_backward(grad_h, act, h_prev):
    """(grad_gates_x, grad_gates_h, grad_h_prev) of one GRU step (grad_h_prev: the direct path z grad_h)."""
    _matrix(act, "act")
    if act.shape[1] % 4:
        raise ValueError(f"act must have 4 * hidden_size columns ([r, z, n, h_n]), got shape {act.shape}")
    N, H = act.shape[0], act.shape[1] // 4
    _matrix(grad_h, "grad_h", H, N)
    _matrix(h_prev, "h_prev", H, N)
    r, z, n, hn = act[:, :H], act[:, H:2 * H], act[:, 2 * H:3 * H], act[:, 3 * H:]
    dn = grad_h * (1.0 - z) * (1.0 - n * n)
    dz = grad_h * (h_prev - n) * z * (1.0 - z)
    dr = dn * hn * r * (1.0 - r)
    return (np.concatenate([dr, dz, dn], axis=1), np.concatenate([dr, dz, dn * r], axis=1), grad_h * z)
