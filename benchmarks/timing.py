"""Fair timing on a small machine, and the copy bandwidth that memory-bound kernels are held to.

compare({"lamina": f, "numpy": g}) times each callable in blocks of several calls, blocks
alternated between the implementations with a short pause between them (so neither always
runs on a hot or a throttled core), and returns the median seconds per call of each.

copy_bandwidth(nbytes) is what np.copyto achieves on arrays of that size, in bytes per second
of traffic (read + write), measured the same way; a memory-bound kernel that must move B bytes
cannot beat B / copy_bandwidth.
"""
import numpy as np


def compare(fns, repeats=9, min_block_s=0.02, pause_s=0.005):
    """fns: {name: callable()}. Returns {name: median seconds per call} (lamina.bench's
    interleaved-block timer; use a longer pause_s when a baseline runs its own thread pool)."""
    from lamina.bench import time_interleaved

    return time_interleaved(fns, repeats=repeats, block_s=min_block_s, pause_s=pause_s)


def copy_bandwidth(nbytes, repeats=9):
    """Bytes per second (read + write) np.copyto reaches on two float32 arrays of nbytes each."""
    n = max(1, nbytes // 4)
    src = np.ones(n, np.float32)
    dst = np.empty_like(src)
    t = compare({"copy": lambda: np.copyto(dst, src)}, repeats=repeats)["copy"]
    return 2 * n * 4 / t


def machine_bandwidth(working_set_bytes):
    """The stricter (larger) of the copy bandwidth at the kernel's own array size and on a
    large (256 MiB) copy, with both numbers, in bytes per second."""
    at_size = copy_bandwidth(working_set_bytes)
    large = copy_bandwidth(256 << 20, repeats=5)
    return max(at_size, large), at_size, large


class lamina_threads:
    """Context manager: lamina's kernels on n threads (the NumPy twins are single-threaded)."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        import lamina

        self.prev = lamina.get_num_threads()
        lamina.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        import lamina

        lamina.set_num_threads(self.prev)


def ratio_row(kernel, shape, t_lamina, t_base, baseline="numpy", threads=None, **extra):
    import lamina

    row = {
        "kernel": kernel,
        "shape": str(tuple(shape)),
        "lamina_ms": t_lamina * 1e3,
        "baseline": baseline,
        "baseline_ms": t_base * 1e3,
        "ratio": t_base / t_lamina,
        "threads": threads if threads is not None else lamina.get_num_threads(),
    }
    row.update(extra)
    return row


def print_rows(rows):
    for r in rows:
        extra = "".join(f"  {k}={v:.3g}" if isinstance(v, float) else f"  {k}={v}"
                        for k, v in r.items()
                        if k not in ("kernel", "shape", "lamina_ms", "baseline", "baseline_ms", "ratio", "threads"))
        print(f"{r['kernel']:<34} {r['shape']:<20} lamina {r['lamina_ms']:8.3f} ms   "
              f"{r['baseline']} {r['baseline_ms']:8.3f} ms   x{r['ratio']:6.2f}   threads {r['threads']}{extra}")


def with_conv_algo(fn, algo):
    """fn run with the native conv algorithm forced to `algo` (tuning key conv_algo), then
    back to the automatic choice: e.g. the path before Winograd ("gemm") timed in the same run."""
    from lamina import _native

    def run():
        _native._set_tuning(f"conv_algo={algo}")
        try:
            return fn()
        finally:
            _native._set_tuning("conv_algo=auto")
    run.model = getattr(fn, "model", None)
    return run
