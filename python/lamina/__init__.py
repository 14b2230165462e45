"""lamina: a deep-learning library whose hot kernels are its own C++ (SIMD + OpenMP) and CUDA.

The CPU path (generic, avx2 or avx512) is chosen once at import; set ``LAMINA_CPU`` to force a
lower one. ``lamina.ops`` holds the native kernels, ``lamina.reference`` their NumPy twins.
"""
import os as _os

# OpenMP wait policy, chosen deliberately: idle lamina threads spin for GOMP_SPINCOUNT
# iterations (tens of microseconds) and then sleep. libgomp's default spins ~15x longer,
# which keeps back-to-back kernels no faster here but steals the cores from any other
# thread pool (NumPy's OpenBLAS, a data loader) that runs between lamina's kernels; a
# passive policy makes every kernel pay a thread wake-up. A user's own OMP_WAIT_POLICY or
# GOMP_SPINCOUNT wins. (Read by libgomp when _native loads it, so it is set before.)
if "OMP_WAIT_POLICY" not in _os.environ:
    _os.environ.setdefault("GOMP_SPINCOUNT", "20000")

from . import _native  # noqa: E402
from ._native import get_num_threads, set_num_threads  # noqa: E402

__version__ = _native.__version__


def backend_info() -> dict:
    """The CPU path in use, thread count, OpenMP/CUDA availability, compiler and build type.
    ``cuda`` is whether a GPU is usable (bool), ``cuda_status`` why not, or which device.
    A dict; ``isa`` is "generic", "avx2" or "avx512" (``LAMINA_CPU`` overrides the detection).

    Example:

        >>> import lamina
        >>> info = lamina.backend_info()
        >>> info["isa"] in ("generic", "avx2", "avx512"), info["threads"] >= 1, isinstance(info["cuda"], bool)
        (True, True, True)
    """
    info = dict(_native.backend_info())
    from . import cuda as _cuda_pkg
    st = _cuda_pkg.status()
    info["cuda"] = bool(st["available"])
    info["cuda_built"] = bool(st["built"])
    info["cuda_status"] = "available" if st["available"] else f"not available: {st['reason']}"
    return info


from . import ops, reference  # noqa: E402  (after the native module is loaded)
from .backend import register_lazy_backend as _register_lazy_backend  # noqa: E402

# The CUDA backends register themselves by name: lamina.cuda is imported on their first use.
_register_lazy_backend("cuda", "lamina.cuda:backend")
_register_lazy_backend("cuda_emu", "lamina.cuda:emu_backend")

# The model layer. Submodules load on first use so `import lamina` stays light.
_LAZY_SUBMODULES = ("backend", "cuda", "nn", "losses", "init", "optim", "io", "datasets", "models", "cli", "bench",
                    "pretrain", "transfer", "distill", "diagnostics", "plot", "experiments", "training", "callbacks",
                    "onnx", "linalg")


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'lamina' has no attribute {name!r}")


def save(model, path, **kwargs):
    """Saves a model (and, with optimizer=..., a resumable checkpoint) as a safetensors file:
    ``lamina.io.save``. The weights are written as float32/float64 tensors under PyTorch's
    ``state_dict`` names ("0.weight"), the architecture as JSON metadata; the file is replaced
    atomically. ValueError for a scheduler without its optimizer.

    Example:

        >>> import os, tempfile, lamina
        >>> from lamina import models
        >>> path = os.path.join(tempfile.mkdtemp(), "lenet5.safetensors")
        >>> lamina.save(models.lenet5(), path); os.path.getsize(path) > 61706 * 4
        True
    """
    from .io import save as _save
    return _save(model, path, **kwargs)


def load(path, backend=None):
    """Loads a model saved by lamina.save (a Sequential with its weights and buffers), onto
    ``backend`` when given: ``lamina.io.load``. ValueError for any bad file (not safetensors,
    truncated, an unknown layer type, a missing or mis-shaped tensor); FileNotFoundError for
    a missing one.

    Example:

        >>> import os, tempfile, numpy as np, lamina
        >>> from lamina import models
        >>> path = os.path.join(tempfile.mkdtemp(), "m.safetensors")
        >>> model = models.mlp(); lamina.save(model, path)
        >>> x = np.ones((2, 784), np.float32)
        >>> bool(np.array_equal(lamina.load(path).predict(x), model.predict(x)))
        True
    """
    from .io import load as _load
    return _load(path, backend)


def load_checkpoint(path, backend=None):
    """Loads model, optimizer, scheduler and epoch saved by lamina.save(..., optimizer=...):
    a ``lamina.io.Checkpoint``, which also unpacks as ``model, optimizer, scheduler, epoch``;
    the optimiser's state (momentum, Adam moments) is restored on the loaded model's
    parameters. ValueError for a bad file, as ``load``.

    Example:

        >>> import os, tempfile, lamina
        >>> from lamina import models, optim
        >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.safetensors")
        >>> model = models.mlp(); opt = optim.Adam(model.parameters())
        >>> lamina.save(model, path, optimizer=opt, epoch=3)
        >>> model, opt, scheduler, epoch = lamina.load_checkpoint(path)
        >>> type(opt).__name__, scheduler, epoch
        ('Adam', None, 3)
    """
    from .io import load_checkpoint as _load_checkpoint
    return _load_checkpoint(path, backend)


def load_weights(model, path, strict=True):
    """Copies saved parameters into an existing model (validated first; nothing changes on
    error): ``lamina.io.load_weights``. Returns the names loaded. ValueError for a file whose
    tensors do not match the model's names (with strict=True) or shapes.

    Example:

        >>> import os, tempfile, lamina
        >>> from lamina import nn
        >>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
        >>> lamina.save(nn.Sequential(nn.Dense(4, 2)), path)
        >>> lamina.load_weights(nn.Sequential(nn.Dense(4, 2)), path)
        ['0.weight', '0.bias']
    """
    from .io import load_weights as _load_weights
    return _load_weights(model, path, strict)


def set_backend(name):
    """Makes ``name`` ("native", "numpy" or a registered one) the default backend of layers that
    are not pinned with ``.to()``; returns it. ValueError for an unknown name.

    Example:

        >>> import lamina
        >>> lamina.set_backend("numpy").name
        'numpy'
        >>> _ = lamina.set_backend("native")
    """
    from .backend import set_backend as _set
    return _set(name)


def get_backend(name=None):
    """The backend object named ``name`` (the default backend when None); ValueError, listing
    the registered names, for an unknown one.

    Example:

        >>> import numpy as np, lamina
        >>> be = lamina.get_backend("native")
        >>> be.name, be.device, be.dtypes
        ('native', 'cpu', (dtype('float32'),))
    """
    from .backend import get_backend as _get
    return _get(name)


def use_backend(name):
    """Context manager: the default backend is ``name`` (a name or a backend object) inside
    the block and what it was before after it, also on an exception. ValueError for an
    unknown name, listing the registered ones.

    Example:

        >>> import lamina
        >>> with lamina.use_backend("numpy"):
        ...     print(lamina.get_backend().name)
        numpy
    """
    from .backend import use_backend as _use
    return _use(name)


def seed(value=None):
    """Seeds lamina's generator for weight initialisation and default dropout seeds (the
    calling thread's: ``lamina.init.seed``); None reseeds from OS entropy.

    Example:

        >>> import numpy as np, lamina
        >>> from lamina import nn
        >>> lamina.seed(0); a = nn.Dense(3, 2).weight.numpy()
        >>> lamina.seed(0); bool(np.array_equal(a, nn.Dense(3, 2).weight.numpy()))
        True
    """
    from .init import seed as _seed
    _seed(value)


__all__ = ["__version__", "backend_info", "get_num_threads", "set_num_threads", "ops", "reference",
           "save", "load", "load_checkpoint", "load_weights", "set_backend", "get_backend", "use_backend", "seed",
           *_LAZY_SUBMODULES]
