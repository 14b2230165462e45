"""Out of memory inside a parallel region: std::bad_alloc thrown on an
OpenMP worker used to call std::terminate and abort the process; now every region catches on
each thread and rethrows on the caller after it (lamina/parallel.h), so it is a MemoryError
at any thread count, and the next call works. Failures are injected with the testing aid
lamina._native._fail_next_workspace_alloc(count) (the next `count` per-thread workspace
requests fail, on whichever threads make them). Every call runs in a child process
(crashguard.py), so an abort is a failed case."""
import numpy as np
import pytest

import lamina
from crashguard import Child

rng = np.random.default_rng(9)
f32 = np.float32


def a(*shape):
    return rng.standard_normal(shape).astype(f32)


# Sizes big enough to be split over 2 threads, each kernel's workspace users; the backward
# convolutions cover the three ways it splits (images with per-thread partial sums reduced
# after a barrier, input channels, threads inside the GEMMs).
CASES = {
    "conv2d": ("conv2d", (a(8, 4, 16, 16), a(8, 4, 3, 3)), dict(padding=1)),
    "conv2d_backward by images": ("conv2d_backward", (a(8, 4, 16, 16), a(8, 4, 3, 3), a(8, 8, 16, 16)),
                                  dict(padding=1)),
    "conv2d_backward by channels": ("conv2d_backward", (a(1, 8, 32, 32), a(16, 8, 3, 3), a(1, 16, 32, 32)),
                                    dict(padding=1)),
    "conv2d_backward in the GEMMs": ("conv2d_backward", (a(1, 1, 64, 64), a(64, 1, 5, 5), a(1, 64, 60, 60)), {}),
    # kernel 3, stride 2: the general vectorised path (2x2 / stride 2 needs no workspace)
    "max_pool2d": ("max_pool2d", (a(8, 32, 64, 64), 3), dict(stride=2)),
    "softmax along axis 1": ("softmax", (a(4, 4096, 64),), dict(axis=1)),
    "argmax along axis 0": ("argmax", (a(4096, 256),), dict(axis=0)),
    "matmul": ("matmul", (a(512, 512), a(512, 512)), {}),
    "matmul, small N": ("matmul", (a(8192, 256), a(256, 4)), {}),
    "upsample_nearest2d_backward": ("upsample_nearest2d_backward", (a(8, 16, 64, 64), 2), {}),
}


@pytest.fixture(scope="module")
def child():
    c = Child(timeout=60)
    yield c
    c.close()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("count", [1, 2**30], ids=["one failure", "every request fails"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_failed_workspace_allocation_is_a_memory_error(child, case, count, threads):
    name, args, kwargs = CASES[case]
    failed = child.run("lamina.ops", name, args, kwargs, threads=threads, fail_allocs=count)
    assert failed[0] == "raise" and failed[1] == "MemoryError", f"{case}: {failed[:2]} {failed[2:]}"
    # Nothing is left half-set: the same call in the same process then succeeds and equals the
    # reference (not another native call, which a state left behind would spoil alike).
    again = child.run("lamina.ops", name, args, kwargs, threads=threads)
    ref = child.run("lamina.reference", name, args, kwargs)
    assert again[0] == ref[0] == "ok", (again[:2], ref[:2])
    got, want = again[1], ref[1]
    got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
    assert len(got) == len(want)
    for g, r in zip(got, want):
        g, r = np.asarray(g), np.asarray(r)
        assert g.shape == r.shape, (g.shape, r.shape)
        if r.dtype.kind in "iu":
            np.testing.assert_array_equal(g, r)
        else:
            np.testing.assert_allclose(g.astype(np.float64), r.astype(np.float64), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("isa", lamina.backend_info()["isas_available"])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_scratch_bigger_than_memory_is_not_needed(child, isa, threads):
    # max_pool2d kernel (1, 2**40), padding (0, 2**39): the vectorised path would want 128 TiB of
    # scratch per thread (it was a MemoryError on one thread and an abort on two); windows that
    # clip to the input take the direct loop, which needs none.
    x = a(4, 8, 3, 5)
    got = child.run("lamina.ops", "max_pool2d", (x,), dict(kernel_size=(1, 2**40), padding=(0, 2**39)),
                    isa=isa, threads=threads)
    assert got[0] == "ok", got
    y, idx = got[1]
    assert y.shape == idx.shape == (4, 8, 3, 1)
    np.testing.assert_array_equal(y[..., 0], x.max(axis=3))
    np.testing.assert_array_equal(idx[..., 0], np.arange(3)[:, None].T * 5 + x.argmax(axis=3))
