"""Where one training step goes: time per layer and direction, each part against its roofline.

    python benchmarks/profile_step.py                   # LeNet-5 (batch 64) and the MLP (batch 32), 2 threads
    python benchmarks/profile_step.py --models mlp --steps 500 --threads 1
    python benchmarks/profile_step.py --models vgg --steps 50   # the VGG-style 3x32x32 net (bench_training.py)
    python benchmarks/profile_step.py --quick           # a few steps, < 10 s (CI)
    python benchmarks/profile_step.py --json rows.json  # the rows as JSON as well

One ``Sequential.train_step(xb, yb)`` is replayed part by part, calling what train_step calls:
each layer's forward in training mode as the Sequential's plan runs it (a Dense or Conv2D with
the ReLU after it fused into one kernel, that ReLU then only keeping its output), the loss
(softmax cross-entropy: forward and gradient in one kernel), ``zero_grad``, each layer's
backward in reverse (a ReLU feeding a MaxPool2D differentiated together with the pool; no
input gradient for the first trainable layer) and the optimiser's step, per layer (one SGD per
layer that shares the model optimiser's velocities, so the arithmetic is the real step's; a
self-check before timing holds the replay to bit-for-bit-close parameters of real steps).
Each part is timed with perf_counter_ns (the timer's own cost subtracted), over ``--steps``
steps after a warm-up; the table holds each part's median. Each replayed step is followed by a
real ``train_step`` on the same batch and one as ``fit`` runs it (keep_previous=True: the
weights before the update are kept for undo), and every 20 steps by a ``fit`` of 20 steps
(which also gathers shuffled batches and counts correct predictions). "glue / overhead" is
train_step - sum of parts, step by step (median): the Python between the parts (moving the
batch, plan lookups, checks); the replay's one optimiser call per layer instead of one in all
makes it read a little low.

Roofline of a part: max(flops / peak, bytes / bandwidth). peak: the FLOP/s lamina's own matmul
reaches on 512x512x512 at the thread count (the best call: the achievable peak), or
``--peak-gflops``. bandwidth: np.copyto's read+write bandwidth (one thread), on 64 MiB arrays
(DRAM) unless the model's working set fits in the L2 caches of the cores in use, then at the
working set's size; "x cache bw" holds each part to the latter in any case (the working set of
these models fits in L3). bytes: the minimum traffic of the part, reading its inputs and
weights once and writing its outputs once (formulas at _forward_cost / _backward_cost);
workspaces (im2col) do not count. A Conv2D's flops are those of the direct convolution
whichever algorithm runs (Winograd does fewer multiplications: its "x roofline" can fall below
1); the algorithm the native backend chose for each direction is shown in brackets.
"""
import argparse
import functools
import json
import math
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lamina  # noqa: E402
from bench_training import ALL_MODELS, LR, MODELS, MOMENTUM, data_for, lamina_model  # noqa: E402
from lamina import backend as _backend  # noqa: E402
from lamina import optim  # noqa: E402
from lamina.nn import Conv2D, Dense, Flatten, MaxPool2D, ReLU  # noqa: E402
from lamina.nn.sequential import _FUSE_RELU, _FUSED_RELU, _PLAIN, _apply_loss  # noqa: E402
from timing import copy_bandwidth  # noqa: E402

F32, I64 = 4, 8  # bytes per activation / weight (float32) and per pooling index or label (int64)
LARGE_COPY = 64 << 20  # bytes per array of the DRAM bandwidth copy (source + destination: 4x the L3 here)
GEMM_N = 512  # the calibration matmul: n x n x n, 2 n^3 flops
DATA_IMAGES = 4096


# -- the machine ---------------------------------------------------------------------------------
def _cpuinfo():
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def _l2_bytes_per_core():
    """The L2 size of cpu0 from sysfs (None when unknown)."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in sorted(os.listdir(base)):
            with open(os.path.join(base, entry, "level")) as f:
                if f.read().strip() != "2":
                    continue
            with open(os.path.join(base, entry, "size")) as f:
                size = f.read().strip()  # e.g. "1024K"
            scale = {"K": 1 << 10, "M": 1 << 20}.get(size[-1], 1)
            return int(size.rstrip("KM")) * scale
    except (OSError, ValueError):
        pass
    return None


def theoretical_peak_gflops(cores, cpuinfo):
    """(GFLOP/s, how) where /proc/cpuinfo identifies the core, else (None, why not). AMD family
    25 (Zen 3 and Zen 4) has two 256-bit FMA pipes: 2 x 8 lanes x 2 flops = 32 FP32 FLOP per
    cycle and core (Zen 4 runs AVX-512 double-pumped on them). The clock is "cpu MHz", the one
    the kernel reports: in a VM the nominal clock, which boost exceeds (so may the matmul)."""
    mhz = cpuinfo.get("cpu MHz")
    if cpuinfo.get("vendor_id") == "AuthenticAMD" and cpuinfo.get("cpu family") == "25" and mhz:
        gflops = cores * float(mhz) * 32 / 1e3
        return gflops, (f"Zen 3/4: 32 FLOP/cycle/core x {cores} cores x {float(mhz):.0f} MHz, the reported clock; "
                        "boost runs higher")
    return None, "not derived (FMA pipes per core unknown for this CPU)"


def matmul_peak_gflops(min_s=0.5, n=GEMM_N):
    """Best GFLOP/s of lamina's matmul on n x n x n (compute bound) at the current thread count,
    over calls for at least ``min_s`` seconds (long enough for the clock to ramp up)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    c = np.empty((n, n), np.float32)
    lamina.ops.matmul(a, b, out=c)  # warm-up: thread pool, packing buffers
    best, calls, end = math.inf, 0, time.perf_counter_ns() + min_s * 1e9
    while calls < 3 or time.perf_counter_ns() < end:
        t0 = time.perf_counter_ns()
        lamina.ops.matmul(a, b, out=c)
        best = min(best, time.perf_counter_ns() - t0)
        calls += 1
    return 2 * n ** 3 / best  # flops per ns = GFLOP/s


def measure_machine(threads, peak_gflops=None, quick=False):
    """The header facts and the calibrations shared by every model: CPU, ISA, peak FLOP/s at
    ``threads`` (measured unless given), the DRAM copy bandwidth and the L2 of the cores in use.
    ``quick``: shorter calibrations (0.1 s of matmuls instead of 0.5 s, 3 copy blocks instead of 9)."""
    peak_s, repeats = (0.1, 3) if quick else (0.5, 9)
    cpuinfo = _cpuinfo()
    before = lamina.get_num_threads()
    lamina.set_num_threads(threads)
    try:
        measured = peak_gflops is None
        peak = matmul_peak_gflops(peak_s) if measured else float(peak_gflops)
        info = lamina.backend_info()
    finally:
        lamina.set_num_threads(before)
    cores = min(threads, os.cpu_count() or 1)
    theory, theory_how = theoretical_peak_gflops(cores, cpuinfo)
    l2 = _l2_bytes_per_core()
    return {"cpu": cpuinfo.get("model name", "?"), "cpu_count": os.cpu_count(), "isa": info["isa"],
            "threads": info["threads"], "lamina": lamina.__version__,
            "peak_gflops": peak,
            "peak_source": f"measured: lamina matmul {GEMM_N}^3, best over {peak_s} s" if measured
            else "--peak-gflops",
            "theoretical_gflops": theory, "theoretical_how": theory_how,
            "bw_large": copy_bandwidth(LARGE_COPY, repeats=repeats),
            "l2_bytes": None if l2 is None else l2 * cores, "l2_how": f"{cores} x {l2 >> 10} KiB" if l2 else "unknown",
            "repeats": repeats}


def _median_se(samples):
    """(median, its standard error) of samples: 1.2533 sigma / sqrt(n), sigma from the
    interquartile range (robust to the outliers a shared machine adds)."""
    q1, median, q3 = np.percentile(np.asarray(samples, dtype=float), [25, 50, 75])
    return float(median), float(1.2533 * (q3 - q1) / 1.349 / math.sqrt(len(samples)))


def _clock_overhead_ns(n=2000):
    """What an empty perf_counter_ns interval reads (subtracted from every timed interval)."""
    clock = time.perf_counter_ns
    d = []
    for _ in range(n):
        t0 = clock()
        d.append(clock() - t0)
    return statistics.median(d)


# -- the parts of one step and their costs ------------------------------------------------------------
def _bias_size(layer):
    return 0 if layer.bias is None else layer.bias.size


def _forward_cost(layer, mode, x, y):
    """(flops, bytes) of one layer's forward, input shape x -> output shape y (batch included).
    Conv2D: 2 N O OH OW C kh kw flops; bytes 4 (x + w + b + y).
    Dense: 2 N in out flops; bytes 4 (x + W + b + y).
    MaxPool2D: one compare per input element; bytes 4 (x + y) + 8 y (the int64 argmax).
    ReLU: fused (the producer's write-back applies it): nothing; alone: 1 flop/element, 4 (x + y).
    Flatten: a view, nothing."""
    nx, ny = math.prod(x), math.prod(y)
    if isinstance(layer, (Conv2D, Dense)):
        weights = F32 * (layer.weight.size + _bias_size(layer))
        if isinstance(layer, Conv2D):
            N, O, OH, OW = y
            kh, kw = layer.kernel_size
            return 2 * N * O * OH * OW * x[1] * kh * kw, F32 * (nx + ny) + weights
        return 2 * nx * layer.out_features, F32 * (nx + ny) + weights  # nx = N * in
    if isinstance(layer, MaxPool2D):
        return nx, F32 * (nx + ny) + I64 * ny
    if isinstance(layer, ReLU):
        return (0, 0) if mode == _FUSED_RELU else (nx, F32 * (nx + ny))
    if isinstance(layer, Flatten):
        return 0, 0
    raise NotImplementedError(f"profile_step has no cost model for {type(layer).__name__}")


def _backward_cost(layer, x, y, need_input_grad, relu_first):
    """(flops, bytes) of one layer's backward (dC/dy, shape y, to dC/dx, shape x).
    Conv2D / Dense: dW costs the forward's flops, dx as much again (only when needed); bytes
    4 (dy + x + dW + db), plus 4 (W + dx) with dx. MaxPool2D: read dy and the int64 argmax, write
    dx (zeroed and scattered: 1 flop per input element): 4 (dy + dx) + 8 dy; with the ReLU mask
    first (relu_first) the pooled output y is read too (+4 y, +1 flop per pooled element).
    ReLU: read dy and y, write dx: 4 * 3 x, 1 flop per element. Flatten: a view."""
    nx, ny = math.prod(x), math.prod(y)
    if isinstance(layer, (Conv2D, Dense)):
        fwd_flops, _ = _forward_cost(layer, _PLAIN, x, y)
        w = layer.weight.size
        nbytes = F32 * (ny + nx + w + _bias_size(layer)) + (F32 * (w + nx) if need_input_grad else 0)
        return fwd_flops * (2 if need_input_grad else 1), nbytes
    if isinstance(layer, MaxPool2D):
        if relu_first:
            return ny + nx, F32 * (2 * ny + nx) + I64 * ny
        return nx, F32 * (ny + nx) + I64 * ny
    if isinstance(layer, ReLU):
        return nx, 3 * F32 * nx
    if isinstance(layer, Flatten):
        return 0, 0
    raise NotImplementedError(f"profile_step has no cost model for {type(layer).__name__}")


def _pooled_cost(conv, x, p):
    """(flops, bytes) of a first conv's grad_w / grad_b from the max pool it feeds (pooled shape
    p): one window per pooled cell, 2 C kh kw flops each (+1 for the ReLU mask); bytes 4 (x + dp
    + the pooled y) + 8 dp (the argmax) + 4 (dW + db)."""
    kh, kw = conv.kernel_size
    npool = math.prod(p)
    return (2 * npool * x[1] * kh * kw + npool,
            F32 * (math.prod(x) + 2 * npool + conv.weight.size + _bias_size(conv)) + I64 * npool)


def _backward_schedule(model):
    """[(layer index, relu_first, need_input_grad)] in the order Sequential._backward(grad,
    False) runs the layers (train_step's call): from the last layer down to the first trainable
    one, a ReLU + MaxPool2D pair as one call of the pool's _backward_relu_first, and a first
    Conv2D + ReLU + MaxPool2D as one call of the conv's _backward_pooled (relu_first "pooled")."""
    model._get_plan()  # (sets model._relu_pool)
    relu_pool, first = model._relu_pool, model._first_trainable()
    out, i = [], len(model.layers) - 1
    while i >= first:
        if model._conv_from_pool(i, first):  # conv i - 2 + ReLU + pool i: grad_w from the pool's
            out.append((i, "pooled", False))
            i -= 3
        elif i in relu_pool and i - 1 >= first:
            out.append((i, True, True))
            i -= 2
        else:
            out.append((i, False, i > first))
            i -= 1
    return out


def _layer_optimizers(model, optimizer):
    """[(layer index, SGD over that layer's parameters)], each sharing ``optimizer``'s state
    dict (the velocities), so that stepping them all is the model optimiser's one step."""
    out = []
    for i, layer in enumerate(model.layers):
        ps = [p for p in layer.parameters() if p.trainable]
        if ps:
            opt = optim.SGD(ps, lr=LR, momentum=MOMENTUM)
            opt.state = optimizer.state
            out.append((i, opt))
    return out


def _conv_algorithms(layer, x_shape):
    """{forward, grad_x, grad_w: algorithm} the native backend runs for a Conv2D on input
    x_shape ("winograd2", "winograd4", "direct", "gemm"; lamina._native._conv_algorithms), or
    None for other layers and backends."""
    if not isinstance(layer, Conv2D) or layer._be().name != "native":
        return None
    from lamina import _native
    return _native._conv_algorithms(np.empty(x_shape, np.float32), layer.weight.data, stride=layer.stride,
                                    padding=layer.padding, dilation=layer.dilation)


def _parts(model, x_shape, schedule, updates):
    """The parts of one step on a batch of shape ``x_shape``, in the order _timed_step times
    them: dicts with index, layer, direction, flops, bytes; and the working set (bytes) of the step."""
    layers, plan = model.layers, model._get_plan()
    batch, shapes = x_shape[0], [tuple(x_shape)]  # shapes[i]: layer i's input, shapes[i + 1] its output
    for layer in layers:
        shapes.append((batch,) + tuple(layer.output_shape(shapes[-1][1:])))
    parts, written = [], 0

    def add(index, direction, cost):
        parts.append({"index": index, "layer": f"{index} {type(layers[index]).__name__}", "direction": direction,
                      "flops": cost[0], "bytes": cost[1]})

    def algo(i, which):  # the native conv algorithm(s) of layer i, as " [..]" (else "")
        a = _conv_algorithms(layers[i], shapes[i])
        return "" if a is None else " [" + ", ".join(f"{k} {a[k]}" for k in which) + "]"

    for i, (layer, mode) in enumerate(plan):
        if mode not in (_PLAIN, _FUSE_RELU, _FUSED_RELU):
            raise NotImplementedError("profile_step replays flat Sequentials only (no nested ones)")
        cost = _forward_cost(layer, mode, shapes[i], shapes[i + 1])
        direction = {_PLAIN: "forward", _FUSE_RELU: "forward +ReLU", _FUSED_RELU: f"forward (in {i - 1})"}[mode]
        add(i, direction + algo(i, ("forward",)), cost)
        if cost[1]:  # the output (and a pool's argmax) stays for the backward: the activations
            written += (F32 + (I64 if isinstance(layer, MaxPool2D) else 0)) * math.prod(shapes[i + 1])
    logits = math.prod(shapes[-1])
    parts.append({"index": None, "layer": f"loss ({type(model.loss).__name__})", "direction": "forward+backward",
                  "flops": logits, "bytes": 2 * F32 * logits + I64 * batch})  # read logits, labels; write dC/dlogits
    parts.append({"index": None, "layer": "(all)", "direction": "zero_grad", "flops": 0, "bytes": 0})
    for i, relu_first, need in schedule:
        if relu_first == "pooled":
            add(i - 2, f"backward (no dx) from pool {i} +ReLU {i - 1}", _pooled_cost(layers[i - 2], shapes[i - 2], shapes[i + 1]))
            continue
        direction = f"backward +ReLU {i - 1}" if relu_first else "backward" if need else "backward (no dx)"
        direction += algo(i, ("grad_x", "grad_w") if need else ("grad_w",))
        add(i, direction, _backward_cost(layers[i], shapes[i], shapes[i + 1], need, relu_first))
    params = 0
    for i, opt in updates:
        n = sum(p.size for p in opt.params())
        params += n
        # SGD momentum: v = m v + g; p -= lr v: ~4 flops per parameter; read p, g, v, write p, v
        add(i, "update", (4 * n, 5 * F32 * n))
    # The step's working set: the input, the activations kept for the backward, and the
    # parameters with their gradients and velocities.
    working_set = F32 * math.prod(shapes[0]) + written + 3 * F32 * params
    return parts, working_set


def _timed_step(model, plan, schedule, updates, xb, yb, be, ns):
    """One train_step(xb, yb) of ``model``, part by part; ns[k] receives part k's interval (ns)."""
    clock = time.perf_counter_ns
    layers, k = model.layers, 0
    x = _backend.move(xb, be)
    for layer, mode in plan:  # Sequential._forward(x, training=True)
        t0 = clock()
        if mode == _PLAIN:
            x = layer.forward(x, True)
        elif mode == _FUSE_RELU:
            x = layer._forward(x, True, "relu")
        else:
            x = layer._forward_fused(x)
        ns[k] = clock() - t0
        k += 1
    t0 = clock()
    lval, grad = _apply_loss(model.loss, x, yb, be)
    ns[k] = clock() - t0
    if not math.isfinite(lval):
        raise FloatingPointError(f"non-finite loss {lval} while profiling")
    t0 = clock()
    model.zero_grad()
    ns[k + 1] = clock() - t0
    k += 2
    for i, relu_first, need in schedule:  # Sequential._backward(grad, need_input_grad=False)
        t0 = clock()
        if relu_first == "pooled":
            layers[i - 2]._backward_pooled(layers[i]._relu_masked(grad), layers[i])
        elif relu_first:
            grad = layers[i]._backward_relu_first(grad, layers[i - 1])
        else:
            grad = layers[i]._backward(grad, need)
        ns[k] = clock() - t0
        k += 1
    for _, opt in updates:  # optimizer.step()
        t0 = clock()
        opt.step()
        ns[k] = clock() - t0
        k += 1


@functools.lru_cache(maxsize=4)
def _data(model_name):
    return data_for(model_name, DATA_IMAGES)


def _build(model_name):
    lamina.seed(0)
    model = lamina_model(model_name)
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    model.compile(opt, "cross_entropy")
    return model, opt


def _check_replay(model_name, batches):
    """The replay does what train_step does: two steps each way from the same start give the
    same parameters (up to float32 rounding). Raises AssertionError otherwise."""
    real, _ = _build(model_name)
    replay, opt = _build(model_name)
    plan, schedule, updates = replay._get_plan(), _backward_schedule(replay), _layer_optimizers(replay, opt)
    ns = np.zeros(len(plan) + 2 + len(schedule) + len(updates), np.int64)
    for xb, yb in batches[:2]:
        real.train_step(xb, yb)
        _timed_step(replay, plan, schedule, updates, xb, yb, replay._be(), ns)
    for (name, p), q in zip(real.named_parameters(), replay.parameters()):
        if not np.allclose(p.data, q.data, rtol=1e-5, atol=1e-7):
            raise AssertionError(f"{model_name}: the part-by-part replay of train_step diverges at {name}; "
                                 "profile_step.py no longer mirrors Sequential.train_step")


def _profile(model_name, batch, steps, threads, machine, warmup=20, fit_chunk=20):
    """(rows, info): the rows of ``profile`` and the model's working set and bandwidths."""
    X, y = _data(model_name)
    batches = [(X[lo:lo + batch], y[lo:lo + batch]) for lo in range(0, 32 * batch, batch)]
    before = lamina.get_num_threads()
    lamina.set_num_threads(threads)
    try:
        _check_replay(model_name, batches)
        model, opt = _build(model_name)
        be = model._be()
        plan, schedule = model._get_plan(), _backward_schedule(model)
        updates = _layer_optimizers(model, opt)
        parts, working_set = _parts(model, batches[0][0].shape, schedule, updates)

        chunk = max(1, min(fit_chunk, steps))
        rounds = -(-steps // chunk)
        n_fit = chunk * batch  # images per timed fit call: `chunk` steps
        part_ns = np.zeros((rounds * chunk, len(parts)), np.int64)
        step_ns, keep_ns, fit_ns = [], [], []
        clock = time.perf_counter_ns

        def fit(r):
            lo = (r * n_fit) % (len(X) - n_fit + 1)
            model.fit(X[lo:lo + n_fit], y[lo:lo + n_fit], epochs=1, batch_size=batch, optimizer=opt, seed=r,
                      verbose=0)

        for s in range(warmup):
            xb, yb = batches[s % len(batches)]
            _timed_step(model, plan, schedule, updates, xb, yb, be, part_ns[0])
            model.train_step(xb, yb)
        fit(0)
        overhead = _clock_overhead_ns()
        # Blocks of `chunk` iterations (a replayed step, a train_step, a train_step as fit runs
        # it) alternate with one fit of `chunk` steps, so that all see the same machine.
        for r in range(rounds):
            for s in range(r * chunk, (r + 1) * chunk):
                xb, yb = batches[s % len(batches)]
                _timed_step(model, plan, schedule, updates, xb, yb, be, part_ns[s])
                t0 = clock()
                model.train_step(xb, yb)
                step_ns.append(clock() - t0 - overhead)
                t0 = clock()
                model.train_step(xb, yb, keep_previous=True)
                keep_ns.append(clock() - t0 - overhead)
            t0 = clock()
            fit(r + 1)
            fit_ns.append((clock() - t0 - overhead) / chunk)
        opt.drop_previous()  # (the kept steps left the weights in spare arrays)
    finally:
        lamina.set_num_threads(before)

    # Roofline: the working set decides which bandwidth holds the parts; the copy bandwidth at
    # the working set's size gives a second, cache-level bound ("x cache bw").
    at_size = copy_bandwidth(max(working_set // 2, 1 << 12), repeats=machine["repeats"])  # src + dst = working set
    l2 = machine["l2_bytes"]
    in_l2 = l2 is not None and working_set <= l2
    bw = at_size if in_l2 else machine["bw_large"]
    info = {"model": model_name, "batch": batch, "threads": threads, "steps": rounds * chunk,
            "working_set_bytes": working_set, "bw_at_size": at_size, "bw_large": machine["bw_large"],
            "bw_used": bw, "bw_used_name": f"at working-set size (fits in L2, {machine['l2_how']})" if in_l2
            else f"{LARGE_COPY >> 20} MiB copy (working set > L2, {machine['l2_how']})"}
    flops_per_us = machine["peak_gflops"] * 1e3

    def roofline_us(flops, nbytes, bandwidth):
        return max(flops / flops_per_us, nbytes / (bandwidth / 1e6))

    part_us = np.maximum(part_ns - overhead, 0) / 1e3  # (steps, parts)
    step_us = np.array(step_ns) / 1e3
    t_step = float(np.median(step_us))

    def row(kind, index, layer, direction, time_se, flops, nbytes, roof, roof_cached):
        time_us, se = time_se
        return {"model": model_name, "batch": batch, "threads": threads, "kind": kind, "index": index, "layer": layer,
                "direction": direction, "time_us": time_us, "se_us": se, "pct_step": 100 * time_us / t_step,
                "flops": flops, "bytes": nbytes, "roofline_us": roof, "x_roofline": time_us / roof if roof > 0 else None,
                "x_cache_bw": time_us / roof_cached if roof_cached > 0 else None}

    rows = [row("part", p["index"], p["layer"], p["direction"], _median_se(part_us[:, k]), p["flops"], p["bytes"],
                roofline_us(p["flops"], p["bytes"], bw), roofline_us(p["flops"], p["bytes"], at_size))
            for k, p in enumerate(parts)]
    flops, nbytes = sum(p["flops"] for p in parts), sum(p["bytes"] for p in parts)
    roof, roof_cached = (sum(roofline_us(p["flops"], p["bytes"], b) for p in parts) for b in (bw, at_size))

    def total(layer, direction, time_se):
        return row("total", None, layer, direction, time_se, flops, nbytes, roof, roof_cached)

    # Glue: train_step minus the replayed step just before it, step by step, then the median.
    # (The sum of the parts' medians runs a little below the median of their sum: the parts'
    # times are skewed to the right, so the difference of those two would overstate the glue.)
    glue = _median_se(step_us - part_us.sum(axis=1))
    info["parts_sum_median_us"] = float(np.median(part_us.sum(axis=1)))
    rows += [total("sum of parts", "step", (sum(r["time_us"] for r in rows), math.hypot(*(r["se_us"] for r in rows)))),
             row("total", None, "glue / overhead", f"train_step - parts, +-{glue[1]:.0f}", glue, 0, 0, 0.0, 0.0),
             total("train_step", "step", _median_se(step_us)),
             total("train_step(keep_previous=True)", "step, as fit runs it", _median_se(np.array(keep_ns) / 1e3)),
             total("fit per step", f"fit of {chunk} steps / {chunk}", _median_se(np.array(fit_ns) / 1e3))]
    return rows, info


def profile(model_name, batch, steps, threads, machine=None, warmup=20):
    """Rows (dicts) of one model's step profile, ``steps`` steps on ``threads`` threads: kind
    "part" (one per layer and direction, the loss, zero_grad, the update per layer), then kind
    "total" (sum of parts, glue / overhead, train_step, train_step(keep_previous=True), fit per
    step); keys model, batch, threads, kind, index (the layer's, None for the others), layer,
    direction, time_us, pct_step (of train_step), flops, bytes, roofline_us, x_roofline and
    x_cache_bw (None where the roofline is 0), se_us (the standard error of time_us). ``machine``: measure_machine's result
    (measured here when None)."""
    machine = measure_machine(threads) if machine is None else machine
    return _profile(model_name, batch, steps, threads, machine, warmup=warmup)[0]


# -- output ---------------------------------------------------------------------------------------
def _fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


def print_header(machine):
    print(f"lamina {machine['lamina']}  isa={machine['isa']}  threads={machine['threads']}  "
          f"cpu: {machine['cpu']} ({machine['cpu_count']} logical CPUs)")
    theory = machine["theoretical_gflops"]
    print(f"peak FP32 FMA, achievable: {machine['peak_gflops']:.1f} GFLOP/s ({machine['peak_source']}); "
          f"theoretical: {_fmt(theory, '.1f', 'n/a')}{' GFLOP/s' if theory else ''} ({machine['theoretical_how']})")
    print(f"copy bandwidth (np.copyto, one thread, read + write): {machine['bw_large'] / 1e9:.1f} GB/s on "
          f"{LARGE_COPY >> 20} MiB; L2 of the cores in use: {machine['l2_how']}")


def print_table(rows, info):
    print(f"\n### {info['model']}, batch {info['batch']}, {info['threads']} threads, median of {info['steps']} steps\n")
    print(f"working set {info['working_set_bytes'] / 2**20:.2f} MiB (input, activations, weights + grads + "
          f"velocities); copy bandwidth at that size {info['bw_at_size'] / 1e9:.1f} GB/s, on "
          f"{LARGE_COPY >> 20} MiB {info['bw_large'] / 1e9:.1f} GB/s; roofline uses "
          f"{info['bw_used'] / 1e9:.1f} GB/s: {info['bw_used_name']}\n")
    print("| layer | direction | time us | % of step | MFLOP | KiB moved | roofline us | x roofline | x cache bw |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        bold = "**" if r["kind"] == "total" and r["layer"] in ("train_step", "glue / overhead") else ""
        print(f"| {bold}{r['layer']}{bold} | {r['direction']} | {bold}{r['time_us']:,.1f}{bold} | "
              f"{r['pct_step']:.1f} | {r['flops'] / 1e6:,.3f} | {r['bytes'] / 1024:,.1f} | {r['roofline_us']:,.2f} | "
              f"{_fmt(r['x_roofline'], ',.1f')} | {_fmt(r['x_cache_bw'], ',.1f')} |")
    print(f"\nThe replayed step's own median is {info['parts_sum_median_us']:,.1f} us: the sum of the parts' medians "
          "runs lower, as each part's times skew right; the glue is taken step by step, hence +- its standard error.")


def summary_line(rows, info):
    t = {r["layer"]: r for r in rows if r["kind"] == "total"}
    step, fit = t["train_step"], t["fit per step"]
    return (f"{info['model']}: train_step {step['time_us']:,.0f} us = {info['batch'] / step['time_us'] * 1e6:,.0f} "
            f"images/s; fit {fit['time_us']:,.0f} us/step = {info['batch'] / fit['time_us'] * 1e6:,.0f} images/s; "
            f"roofline {step['roofline_us']:,.1f} us, measured train_step = {step['x_roofline']:,.1f}x roofline "
            f"(sum of parts {t['sum of parts']['time_us']:,.0f} us, glue {t['glue / overhead']['time_us']:,.0f} "
            f"+- {t['glue / overhead']['se_us']:.0f} us)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(ALL_MODELS)}")
    p.add_argument("--steps", type=int, default=200, help="timed steps per model (default 200)")
    p.add_argument("--threads", type=int, default=2, help="lamina.set_num_threads (default 2)")
    p.add_argument("--peak-gflops", type=float, default=None,
                   help="peak FP32 GFLOP/s of the roofline (default: measured with lamina's matmul)")
    p.add_argument("--quick", action="store_true", help="a few steps and short calibrations (< 10 s)")
    p.add_argument("--json", metavar="PATH", help="also write the machine and the rows as JSON")
    a = p.parse_args(argv)
    names = [m for m in a.models.split(",") if m]
    unknown = [m for m in names if m not in ALL_MODELS]
    if unknown:
        p.error(f"unknown model(s) {unknown}; expected some of {list(ALL_MODELS)}")
    steps, warmup = (10, 3) if a.quick else (a.steps, 20)

    machine = measure_machine(a.threads, a.peak_gflops, quick=a.quick)
    print_header(machine)
    results = [_profile(m, ALL_MODELS[m], steps, a.threads, machine, warmup=warmup, fit_chunk=5 if a.quick else 20)
               for m in names]
    for rows, info in results:
        print_table(rows, info)
    print()
    for rows, info in results:
        print(summary_line(rows, info))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": machine, "models": [info for _, info in results],
                       "rows": [r for rows, _ in results for r in rows]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
