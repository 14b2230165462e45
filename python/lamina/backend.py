"""Backends: the one contract every implementation of lamina's kernels fulfils.

A backend is any object with

- ``name`` (e.g. "native"), ``device`` (e.g. "cpu", later "cuda:0"), ``dtypes`` (the float
  dtypes its kernels take, e.g. ``(numpy.float32,)``);
- every kernel named in ``KERNELS``, with the signature of ``lamina.reference.<name>`` (the
  same parameter names and defaults; ``out=`` wherever the native kernel has it);
- four array functions: ``empty(shape, dtype)``, ``zeros(shape, dtype)``, ``asarray(x,
  dtype=None)`` (a host NumPy array, or an array of this backend, to an array of this backend,
  without a copy where none is needed) and ``to_numpy(a)`` (to a host NumPy array).

The model layer, the losses, the optimisers, ``fit`` and the workflows do all their arithmetic
on activations, gradients and parameters through these kernels: of a backend array they use
only ``.shape``, ``.dtype``, ``.ndim``, ``.size``, ``.reshape(...)`` (a view), basic slicing
(views) and ``len()``. Host data enters with ``asarray`` (once per minibatch) and leaves with
``to_numpy`` (metrics, ``predict``, ``save``).

lamina's own backends: "native" (the C++ kernels of ``lamina.ops``, float32) and "numpy" (their
NumPy twins in ``lamina.reference``, float32 and float64, used for float64 gradient checks).
``register_backend(obj)`` adds one defined anywhere (duck-typed: subclassing ``Backend`` is
optional); ``get_backend(name)`` returns it and ``model.to(name)`` moves a model onto it.

Layers that were never pinned with ``.to()`` follow a process-wide default ("native"; change it
with ``set_backend`` or, for a block, ``use_backend``). Losses and optimisers follow the arrays
and parameters they are given; ``fit`` and ``evaluate`` never touch the default, so two models
on two backends can train at the same time in two threads.
"""
from __future__ import annotations

import contextlib
import importlib
import threading

import numpy as np

# Every kernel a backend provides. The first block is the layers' kernels, then the losses and
# optimisers, then the small array operations of the model layer and the training loop.
KERNELS = (
    "matmul", "linear",
    "conv2d", "conv2d_backward",
    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
    "upsample_nearest2d", "upsample_nearest2d_backward",
    "relu", "relu_backward", "sigmoid", "sigmoid_backward", "tanh", "tanh_backward",
    "leaky_relu", "leaky_relu_backward",
    "softmax", "log_softmax", "softmax_backward",
    "softmax_cross_entropy", "mse", "binary_cross_entropy",
    "dropout", "dropout_backward",
    "sgd_step", "adam_step",
    "fill", "copy", "transpose", "add", "scale", "gather_rows", "argmax", "all_finite", "dot",
)

# Fused kernels a backend may also provide (same rule: the signature of lamina.reference's
# twin). The layers use one only where the backend has it, else the kernels it fuses:
# conv2d_backward_pooled is conv2d_backward's grad_w / grad_b from a max pool's gradient
# without the unpooled one (a first conv layer feeding ReLU + MaxPool2D).
# The normalisation and gated-recurrent kernels are optional too until every backend has them:
# a layer that needs one on a backend without it raises an error naming the kernel
# (``require_kernel``).
OPTIONAL_KERNELS = ("conv2d_backward_pooled", "batch_norm", "batch_norm_backward",
                    "lstm_cell", "lstm_cell_backward", "gru_cell", "gru_cell_backward")

# The attributes and array functions every backend has besides its kernels.
ATTRIBUTES = ("name", "device", "dtypes")
ARRAY_FUNCTIONS = ("empty", "zeros", "asarray", "to_numpy")


class Backend:
    """A convenience base for backends whose kernels come from a module or a dict.

    ``kernels`` maps every name of ``KERNELS`` to its function (set as attributes, so a kernel
    call is one attribute lookup). The array functions default to host NumPy arrays; a backend
    with arrays of its own overrides the four of them.

    Example (the numpy backend's kernels under another name; see the custom-backend how-to):

        >>> import numpy as np
        >>> from lamina import backend, nn, reference
        >>> mine = backend.Backend("mine", "cpu", (np.float32,),
        ...                        {k: getattr(reference, k) for k in backend.KERNELS})
        >>> _ = backend.register_backend(mine)
        >>> nn.Dense(3, 2).to("mine").forward(np.ones((4, 3), np.float32)).shape
        (4, 2)
        >>> backend.unregister_backend("mine")
    """

    def __init__(self, name, device, dtypes, kernels):
        self.name = str(name)
        self.device = str(device)
        self.dtypes = tuple(np.dtype(d) for d in dtypes)
        missing = [k for k in KERNELS if k not in kernels]
        if missing:
            raise ValueError(f"backend {name!r} lacks the kernel(s) {missing}")
        for k in KERNELS:
            setattr(self, k, kernels[k])
        for k in OPTIONAL_KERNELS:
            if k in kernels:
                setattr(self, k, kernels[k])

    # Host NumPy arrays (the "native" and "numpy" backends).
    @staticmethod
    def empty(shape, dtype):
        """A new array of this backend, ``shape`` and ``dtype``, contents undefined (host
        backends: ``np.empty``). A backend of your own gives it the same signature.

        Example:

            >>> import numpy as np, lamina
            >>> lamina.get_backend("native").empty((2, 3), np.float32).shape
            (2, 3)
        """
        return np.empty(shape, dtype=dtype)

    @staticmethod
    def zeros(shape, dtype):
        """A new zero-filled array of this backend, ``shape`` and ``dtype``.

        Example:

            >>> import numpy as np, lamina
            >>> lamina.get_backend("numpy").zeros((2,), np.float64)
            array([0., 0.])
        """
        return np.zeros(shape, dtype=dtype)

    @staticmethod
    def asarray(x, dtype=None):
        """Host data (a NumPy array, a list) as an array of this backend, C-contiguous, in
        ``dtype`` when given: no copy for a host backend when ``x`` already is one.

        Example:

            >>> import numpy as np, lamina
            >>> lamina.get_backend("native").asarray([[1, 2]], np.float32)
            array([[1., 2.]], dtype=float32)
        """
        return np.ascontiguousarray(x, dtype=dtype)

    @staticmethod
    def to_numpy(a):
        """An array of this backend as a host NumPy array (a view for host backends; a
        device backend copies to the host).

        Example:

            >>> import numpy as np, lamina
            >>> be = lamina.get_backend("native")
            >>> be.to_numpy(be.zeros((1,), np.float32))
            array([0.], dtype=float32)
        """
        return np.asarray(a)

    def __getattr__(self, name):  # only reached for names this backend lacks
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"backend {self.__dict__.get('name', '?')!r} has no kernel {name!r}")

    def __repr__(self):
        return f"<lamina backend {self.name!r} on {self.device}>"


def require_kernel(be, name, user=None):
    """``be``'s kernel ``name`` (one of OPTIONAL_KERNELS); a NotImplementedError naming the
    kernel, the backend and ``user`` (the layer that needs it) when ``be`` lacks it.

    Example:

        >>> from lamina import backend
        >>> try:
        ...     backend.require_kernel(backend.get_backend("numpy"), "no_such_kernel", "MyLayer")
        ... except NotImplementedError as e:
        ...     print(str(e)[:48])
        MyLayer needs the kernel 'no_such_kernel', which
    """
    fn = getattr(be, name, None)
    if fn is None or not callable(fn):
        who = f"{user} needs" if user else "this needs"
        raise NotImplementedError(f"{who} the kernel {name!r}, which backend {getattr(be, 'name', be)!r} does not "
                                  f"provide (an optional kernel: lamina.backend.OPTIONAL_KERNELS); "
                                  f"use the 'native' or 'numpy' backend")
    return fn


def has_kernel(be, name) -> bool:
    """Whether backend ``be`` provides the kernel ``name`` (a callable attribute): the test
    for the optional kernels (``OPTIONAL_KERNELS``).

    Example:

        >>> from lamina import backend
        >>> backend.has_kernel(backend.get_backend("numpy"), "matmul")
        True
        >>> backend.has_kernel(backend.get_backend("numpy"), "no_such_kernel")
        False
    """
    return callable(getattr(be, name, None))


def supports(be, dtype) -> bool:
    """Whether backend ``be`` computes in ``dtype`` (listed in its ``dtypes``): float32
    everywhere, float64 on "numpy".

    Example:

        >>> import numpy as np
        >>> from lamina import backend
        >>> backend.supports(backend.get_backend("native"), np.float64), backend.supports(backend.get_backend("numpy"), "float64")
        (False, True)
    """
    return np.dtype(dtype) in tuple(np.dtype(d) for d in be.dtypes)


def check_backend(obj) -> None:
    """Returns None when ``obj`` fulfils the backend contract; TypeError naming what it
    lacks (attributes ``name``, ``device``, ``dtypes``, the array functions, the kernels), or
    for an empty name or no dtypes. ``register_backend`` calls it.

    Example:

        >>> from lamina import backend
        >>> backend.check_backend(backend.get_backend("numpy"))
        >>> try:
        ...     backend.check_backend(object())
        ... except TypeError as e:
        ...     print(str(e).split(":")[1][:30])
         it lacks name, device, dtypes
    """
    missing = [a for a in ATTRIBUTES if not hasattr(obj, a)]
    missing += [f for f in ARRAY_FUNCTIONS + KERNELS if not callable(getattr(obj, f, None))]
    if missing:
        raise TypeError(f"{obj!r} is not a lamina backend: it lacks {', '.join(missing)}")
    if not isinstance(obj.name, str) or not obj.name:
        raise TypeError(f"a backend's name must be a non-empty string, got {obj.name!r}")
    if not tuple(obj.dtypes):
        raise TypeError(f"backend {obj.name!r} declares no dtypes")


_lock = threading.Lock()
_registry: dict = {}          # name -> backend
_array_types: dict = {}       # type of a backend's arrays -> backend (the first registered)
_BUILTIN = ("native", "numpy")
_lazy: dict = {}              # name -> factory ("module:function" or a callable), built on first use


def _build(name: str):
    from . import ops, reference

    if name == "numpy":
        return Backend("numpy", "cpu", (np.float32, np.float64),
                       {k: getattr(reference, k) for k in KERNELS + OPTIONAL_KERNELS})
    if name == "native":
        return Backend("native", "cpu", (np.float32,), {k: getattr(ops, k) for k in KERNELS + OPTIONAL_KERNELS})
    raise AssertionError(name)


def _array_type(be):
    return type(be.empty((0,), np.dtype(tuple(be.dtypes)[0])))


def register_backend(obj, replace: bool = False):
    """Registers a backend (any object fulfilling the contract; see the module docstring) under
    ``obj.name``, so that ``get_backend(name)`` and ``model.to(name)`` find it. Registering
    another object under a taken name is a ValueError unless ``replace``; TypeError (from
    ``check_backend``) for an object that does not fulfil the contract. Returns ``obj``.

    Example:

        >>> import numpy as np
        >>> from lamina import backend, reference
        >>> mine = backend.Backend("mine", "cpu", (np.float32, np.float64),
        ...                        {k: getattr(reference, k) for k in backend.KERNELS})
        >>> backend.register_backend(mine) is mine, "mine" in backend.available()
        (True, True)
        >>> backend.unregister_backend("mine")
    """
    check_backend(obj)
    with _lock:
        old = _registry.get(obj.name)
        if old is not None and old is not obj and not replace:
            raise ValueError(f"a backend named {obj.name!r} is already registered (replace=True replaces it)")
        if old is not None and old is not obj:
            for t, be in list(_array_types.items()):
                if be is old:
                    del _array_types[t]
        _registry[obj.name] = obj
        if obj.name not in _BUILTIN:
            _array_types.setdefault(_array_type(obj), obj)
    return obj


def register_lazy_backend(name: str, factory) -> None:
    """Makes ``get_backend(name)`` build the backend on its first use: ``factory`` is a callable
    returning it, or "package.module:function" (imported only then), and may raise RuntimeError
    saying why the backend cannot run. The backend built is registered under ``name`` (and,
    unregistered, built again on the next use). What a
    backend with a costly import registers itself with (``import lamina`` registers "cuda" and
    "cuda_emu" so, without importing lamina.cuda). ValueError for lamina's own names.

    Example:

        >>> from lamina import backend
        >>> made = []
        >>> def make():
        ...     made.append(1)
        ...     return backend.Backend("numpy-lazy", "cpu", backend.get_backend("numpy").dtypes,
        ...                            {k: getattr(backend.get_backend("numpy"), k) for k in backend.KERNELS})
        >>> backend.register_lazy_backend("numpy-lazy", make)
        >>> len(made)
        0
        >>> backend.get_backend("numpy-lazy").name, len(made)
        ('numpy-lazy', 1)
        >>> backend.unregister_backend("numpy-lazy")
    """
    if name in _BUILTIN:
        raise ValueError(f"backend {name!r} is lamina's own")
    if not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
        raise TypeError(f"factory must be a callable or 'module:function', got {factory!r}")
    with _lock:
        _lazy[name] = factory


def _build_lazy(name):
    factory = _lazy[name]
    if isinstance(factory, str):
        module, _, function = factory.partition(":")
        factory = getattr(importlib.import_module(module), function)
    be = factory()
    with _lock:
        if _registry.get(name) is None:
            _registry[name] = be
            _array_types.setdefault(_array_type(be), be)
    return _registry[name]


def unregister_backend(name: str) -> None:
    """Removes a backend registered with ``register_backend``; an unknown name is ignored.
    ValueError for lamina's own ("native", "numpy").

    Example:

        >>> from lamina import backend
        >>> backend.unregister_backend("not-registered")
        >>> try:
        ...     backend.unregister_backend("native")
        ... except ValueError as e:
        ...     print(e)
        backend 'native' is lamina's own and cannot be removed
    """
    if name in _BUILTIN:
        raise ValueError(f"backend {name!r} is lamina's own and cannot be removed")
    with _lock:
        be = _registry.pop(name, None)
        for t, b in list(_array_types.items()):
            if b is be:
                del _array_types[t]


def available() -> tuple:
    """The names of the backends ``get_backend`` knows, a tuple: lamina's own, then the
    registered ones ("cuda" and "cuda_emu" are built on first use and listed once built).

    Example:

        >>> from lamina import backend
        >>> backend.available()[:2]
        ('native', 'numpy')
    """
    return _BUILTIN + tuple(n for n in _registry if n not in _BUILTIN)


def get_backend(name=None):
    """The backend called ``name``; a backend object is returned as it is (checked with
    ``check_backend`` unless registered); None is the default. ValueError for an unknown name,
    listing the available ones; RuntimeError saying why for "cuda" where it cannot run.

    Example:

        >>> from lamina import backend
        >>> backend.get_backend("numpy").name, backend.get_backend("numpy").device
        ('numpy', 'cpu')
    """
    if name is None:
        return current()
    if not isinstance(name, str):
        # A registered backend was checked when it was registered (lamina's own fulfil the
        # contract by construction): only other objects are checked here, on every call.
        n = getattr(name, "name", None)
        if type(n) is str and _registry.get(n) is name:
            return name
        check_backend(name)
        return name
    be = _registry.get(name)
    if be is None and name in _lazy:  # built and registered on first use; RuntimeError saying why not
        return _build_lazy(name)
    if be is None:
        if name not in _BUILTIN:
            raise ValueError(f"unknown backend {name!r}; available: {', '.join(repr(n) for n in available())}")
        with _lock:
            be = _registry.get(name)
            if be is None:
                be = _registry[name] = _build(name)
    return be


def array_owner(a):
    """The registered backend whose array type ``a``'s type is (a device backend's arrays),
    else None (host NumPy arrays, lists, scalars).

    Example:

        >>> import numpy as np
        >>> from lamina import backend
        >>> backend.array_owner(np.zeros(2)) is None
        True
    """
    return _array_types.get(type(a))


def backend_of(a):
    """The backend whose arrays ``a`` is one of. A host NumPy array belongs to "native" when
    native computes in its dtype, else to "numpy".

    Example:

        >>> import numpy as np
        >>> from lamina import backend
        >>> backend.backend_of(np.zeros(2, np.float32)).name, backend.backend_of(np.zeros(2)).name
        ('native', 'numpy')
    """
    if isinstance(a, np.ndarray):
        name = "native" if a.dtype == np.float32 else "numpy"
        be = _registry.get(name)
        return be if be is not None else get_backend(name)
    be = _array_types.get(type(a))
    if be is None:
        raise TypeError(f"{type(a).__name__} is not an array of any registered lamina backend")
    return be


def move(a, be, dtype=None):
    """``a`` (an array of any backend, or host data) as an array of backend ``be`` (of ``dtype``
    when given): no copy when it already is one.

    Example:

        >>> import numpy as np
        >>> from lamina import backend
        >>> a = np.zeros(3, np.float32)
        >>> backend.move(a, backend.get_backend("native")) is a, backend.move([1, 2], backend.get_backend("numpy"), np.float64)
        (True, array([1., 2.]))
    """
    if not isinstance(a, np.ndarray):
        owner = _array_types.get(type(a))
        if owner is None:
            a = np.asarray(a)  # host data: lists, scalars
        elif owner is not be:
            a = owner.to_numpy(a)
    return be.asarray(a, dtype=dtype)


# -- the process-wide default for layers that are not pinned --------------------------------
_default = None


def current():
    """The default backend of layers not pinned by ``.to()`` (native unless changed by
    ``set_backend`` or inside ``use_backend``).

    Example:

        >>> from lamina import backend
        >>> with backend.use_backend("numpy"):
        ...     print(backend.current().name)
        numpy
    """
    return _default if _default is not None else set_backend("native")


def set_backend(name):
    """Makes ``name`` (a name or a backend object) the default backend of layers not pinned
    by ``.to()``, process-wide; returns it. ValueError for an unknown name.

    Example:

        >>> from lamina import backend
        >>> before = backend.current()
        >>> backend.set_backend("numpy").name
        'numpy'
        >>> _ = backend.set_backend(before)
    """
    global _default
    _default = get_backend(name)
    return _default


@contextlib.contextmanager
def use_backend(name):
    """``with use_backend("numpy"): ...`` runs the block with another default backend. It is
    process-wide: prefer ``model.to(name)``, which concerns one model only. The previous
    default comes back after the block, also on an exception; ValueError for an unknown name.

    Example:

        >>> from lamina import backend, nn
        >>> with backend.use_backend("numpy"):
        ...     print(backend.current().name)
        numpy
    """
    global _default
    before = _default
    be = set_backend(name)
    try:
        yield be
    finally:
        _default = before
