"""Winograd minimal filtering for 3x3 convolutions, in plain NumPy (Lavin & Gray 2015).

F(m x m, 3 x 3) computes an m x m block ("tile") of a stride-1, undilated 3x3 convolution from
the a x a input block under it (a = m + 2) with a*a multiplications per (input channel, output
channel) instead of 9*m*m:

    Y (m x m) = A^T [ (G g G^T) * (B^T d B) ] A        (* elementwise)

g (3 x 3) the filter, d (a x a) the input tile, and B^T (a x a), G (a x 3), A^T (m x a) the
matrices below, copied from the paper. Summed over input channels, the elementwise products
become a*a independent matrix products, one per position xi of the a x a transformed tile:

    U[xi] (O x C)     = (G w[o, c] G^T)[xi]                    the filter transform
    V[xi] (C x T)     = (B^T d[c, t] B)[xi]                    the input transform, T tiles
    M[xi] (O x T)     = U[xi] @ V[xi]                          a*a GEMMs
    y tile (o, t)     = A^T M[:, o, t] A                        the output transform

Tiles start every m output pixels; an edge tile reads zeros past the padded input and its
outputs beyond (OH, OW) are dropped. The input gradient of the same convolution is itself a
stride-1 3x3 convolution (of grad_y padded by 2 - p, with the filter flipped and its channel
axes swapped: w_bwd[c, o] = w[o, c, ::-1, ::-1]), so it is computed the same way.

Works in the input's precision; these functions define the layouts that lamina's native
Winograd kernels (csrc/cpu/kernels/winograd.cpp) use, and the tests compare them stage by stage.
"""
import numpy as np

from .conv import conv2d as _conv2d

TILES = (2, 4)  # the supported m of F(m x m, 3 x 3)


def transform_matrices(m, dtype=np.float64):
    """(B^T (a x a), G (a x 3), A^T (m x a)) of F(m x m, 3 x 3), a = m + 2, as printed by
    Lavin & Gray (2015), section 4."""
    if m == 2:
        BT = [[1, 0, -1, 0],
              [0, 1, 1, 0],
              [0, -1, 1, 0],
              [0, 1, 0, -1]]
        G = [[1, 0, 0],
             [1 / 2, 1 / 2, 1 / 2],
             [1 / 2, -1 / 2, 1 / 2],
             [0, 0, 1]]
        AT = [[1, 1, 1, 0],
              [0, 1, -1, -1]]
    elif m == 4:
        BT = [[4, 0, -5, 0, 1, 0],
              [0, -4, -4, 1, 1, 0],
              [0, 4, -4, -1, 1, 0],
              [0, -2, -1, 2, 1, 0],
              [0, 2, -1, -2, 1, 0],
              [0, 4, 0, -5, 0, 1]]
        G = [[1 / 4, 0, 0],
             [-1 / 6, -1 / 6, -1 / 6],
             [-1 / 6, 1 / 6, -1 / 6],
             [1 / 24, 1 / 12, 1 / 6],
             [1 / 24, -1 / 12, 1 / 6],
             [0, 0, 1]]
        AT = [[1, 1, 1, 1, 1, 0],
              [0, 1, -1, 2, -2, 0],
              [0, 1, 1, 4, 4, 0],
              [0, 1, -1, 8, -8, 1]]
    else:
        raise ValueError(f"m must be one of {TILES}, got {m!r}")
    return tuple(np.array(a, dtype=dtype) for a in (BT, G, AT))


def _check_m(m):
    if m not in TILES:
        raise ValueError(f"m must be one of {TILES}, got {m!r}")


def tile_counts(OH, OW, m):
    """(tiles down, tiles across) covering an OH x OW output with m x m tiles."""
    return -(-OH // m), -(-OW // m)


def filter_transform(w, m):
    """w (O, C, 3, 3) -> U (a*a, O, C): U[xi, o, c] = (G w[o, c] G^T) at xi = (row, col)."""
    _check_m(m)
    if w.ndim != 4 or w.shape[2:] != (3, 3):
        raise ValueError(f"w must be (O, C, 3, 3), got shape {w.shape}")
    _, G, _ = transform_matrices(m, w.dtype)
    a = m + 2
    U = np.einsum("ik,ockl,jl->ijoc", G, w, G)  # G w G^T for every (o, c)
    return U.reshape(a * a, w.shape[0], w.shape[1])


def input_tiles(x, m, padding, OH, OW):
    """x (N, C, H, W) -> d (N, C, TH, TW, a, a): the a x a input block of each output tile,
    read from x zero-padded by `padding` = (ph, pw) on the top / left (and with zeros past the
    bottom / right edge as far as the last tile reaches)."""
    ph, pw = padding
    N, C, H, W = x.shape
    TH, TW = tile_counts(OH, OW, m)
    a = m + 2
    xp = np.zeros((N, C, TH * m + 2, TW * m + 2), x.dtype)
    # Rows / columns of x that land inside the padded frame (padding may crop nothing here,
    # but a tile may reach past H + 2 ph: those stay zero).
    h = min(H, TH * m + 2 - ph)
    wd = min(W, TW * m + 2 - pw)
    xp[:, :, ph:ph + h, pw:pw + wd] = x[:, :, :h, :wd]
    d = np.empty((N, C, TH, TW, a, a), x.dtype)
    for i in range(TH):
        for j in range(TW):
            d[:, :, i, j] = xp[:, :, i * m:i * m + a, j * m:j * m + a]
    return d


def input_transform(x, m, padding, OH, OW):
    """x (N, C, H, W) -> V (a*a, C, N*TH*TW): V[xi, c, t] = (B^T d[t, c] B) at xi, the tiles t
    in (image, tile row, tile column) order."""
    _check_m(m)
    BT, _, _ = transform_matrices(m, x.dtype)
    d = input_tiles(x, m, padding, OH, OW)
    N, C, TH, TW, a, _ = d.shape
    V = np.einsum("ik,nctukl,jl->ijcntu", BT, d, BT)  # B^T d B
    return V.reshape(a * a, C, N * TH * TW)


def output_transform(M, m, N, OH, OW, b=None, activation=None):
    """M (a*a, O, N*TH*TW) -> y (N, O, OH, OW): y tile = A^T M A (+ b, ReLU), cropped to OH x OW."""
    _check_m(m)
    _, _, AT = transform_matrices(m, M.dtype)
    a = m + 2
    TH, TW = tile_counts(OH, OW, m)
    O = M.shape[1]
    Mt = M.reshape(a, a, O, N, TH, TW)
    Y = np.einsum("ik,klontu,jl->notiuj", AT, Mt, AT)  # (N, O, TH, m, TW, m)
    y = Y.reshape(N, O, TH * m, TW * m)[:, :, :OH, :OW]
    if b is not None:
        y = y + b.reshape(1, O, 1, 1)
    if activation == "relu":
        y = np.maximum(y, 0)
    return np.ascontiguousarray(y)


def _geometry(x, w, padding):
    ph, pw = (padding, padding) if np.isscalar(padding) else tuple(padding)
    if w.shape[2:] != (3, 3):
        raise ValueError(f"Winograd F(m, 3): w must be (O, C, 3, 3), got shape {w.shape}")
    OH, OW = x.shape[2] + 2 * ph - 2, x.shape[3] + 2 * pw - 2
    if OH < 1 or OW < 1:
        raise ValueError(f"kernel larger than padded input (x shape {x.shape}, padding {padding})")
    return (ph, pw), OH, OW


def conv2d(x, w, b=None, padding=0, m=2, activation=None):
    """The 3x3, stride-1 convolution of ``lamina.reference.conv2d`` by F(m x m, 3 x 3)."""
    pad, OH, OW = _geometry(x, w, padding)
    U = filter_transform(w, m)
    V = input_transform(x, m, pad, OH, OW)
    M = np.matmul(U, V)  # a*a products (O x C) @ (C x T)
    return output_transform(M, m, x.shape[0], OH, OW, b, activation)


def conv2d_backward_data(x_shape, w, grad_y, padding=0, m=2):
    """grad_x (x_shape) of the 3x3 stride-1 convolution with padding p <= 2 on each axis: the
    convolution of grad_y, padded by 2 - p, with w flipped and its channel axes swapped."""
    ph, pw = (padding, padding) if np.isscalar(padding) else tuple(padding)
    if not (0 <= ph <= 2 and 0 <= pw <= 2):
        raise ValueError(f"padding must be in [0, 2] on each axis, got {padding}")
    w_bwd = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    gx = conv2d(grad_y, w_bwd, None, padding=(2 - ph, 2 - pw), m=m)
    assert gx.shape == tuple(x_shape), (gx.shape, x_shape)
    return gx


def direct(x, w, b=None, padding=0, activation=None):
    """The same convolution by lamina.reference.conv2d (im2col), for comparison."""
    return _conv2d(x, w, b, stride=1, padding=padding, dilation=1, activation=activation)
