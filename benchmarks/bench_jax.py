"""LeNet-5 training throughput: lamina vs JAX (CPU), the same model, data and optimiser.

    python benchmarks/bench_jax.py                       # 2 threads each, 9 rounds
    python benchmarks/bench_jax.py --rounds 15 --steps 20 --pause 1.0

The model is lamina.models.lenet5 (conv 6@5x5 pad 2, ReLU, maxpool 2, conv 16@5x5, ReLU,
maxpool 2, dense 400-120-84-10), batch 64, SGD momentum 0.9 (PyTorch's rule, lr 0.05) on the
mean cross-entropy of the logits, on the bundled MNIST images: the workload of
bench_training.py, whose PyTorch twin this mirrors. JAX is written plainly: NCHW/OIHW
``jax.lax.conv_general_dilated``, ``jax.lax.reduce_window`` max-pooling, and one ``jax.jit`` of
the whole SGD step (batch gather, forward, ``jax.grad``, momentum update; parameters and
velocities donated, so XLA updates them in place). Both start from the same weights (lamina's
initialisation, copied into JAX). ``--layout NHWC`` runs JAX channels-last instead (the same
model: the first Dense layer's columns are permuted to match); on the 2-core EPYC the two
layouts were within the noise of each other (2026-12-07, 9 interleaved rounds).

One timed call is ``--steps`` training steps over a shuffled window of the data: lamina runs
``model.fit`` (its batches gathered into a reused buffer, accuracy bookkeeping included), JAX
runs the jitted step ``--steps`` times and waits for the result (``block_until_ready``).
Before timing, each library trains for ``--check-steps`` steps and the script fails unless both
losses fall.

Rounds: in each round each library runs one block of calls (the order alternating between
rounds) after a ``--pause`` so that the other library's threads are asleep; every block is
printed: images/s (wall clock), CPU seconds per wall second of the process (how many cores the
library kept busy, at most the thread count; below it when other processes take the cores) and
CPU milliseconds per training step (all threads; less sensitive than wall time to other
processes' load, but it also counts threads that spin while waiting). The ratios are medians
over rounds of JAX's time / lamina's, wall and CPU; a last line gives the median over the
rounds in which both libraries kept at least 90% of their threads busy (no other process took
their cores), when there are any.

Threads: lamina.set_num_threads(n). XLA has no public per-process thread-count setting for
its CPU client: its intra-op pool has as many threads as the machine has CPUs (2 here). So the
process is pinned to n CPUs before jax is imported (os.sched_setaffinity: with n = 2 on a
2-core machine that changes nothing, and both libraries run 2 threads), XLA_FLAGS gets
``--xla_cpu_multi_thread_eigen=true`` (its default, stated) and OMP_NUM_THREADS/NPROC are set
to n. Before timing, the script counts the threads that do at least 10% of each library's CPU
work over 10 calls (from /proc/self/task): with n = 2 it prints 2 and 2. With n = 1, lamina
runs 1 thread while XLA still runs 2, which share the one CPU the process may use: a
1-thread comparison is then one core each, not one thread each.

JAX is imported only here, for comparison; lamina never depends on it.
"""
import argparse
import datetime
import os
import platform
import resource
import statistics
import sys
import time


def _pin(threads):
    cpus = sorted(os.sched_getaffinity(0))[:threads]
    os.sched_setaffinity(0, cpus)
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=true").strip()
    os.environ["OMP_NUM_THREADS"] = os.environ["NPROC"] = str(threads)
    return cpus


LR, MOMENTUM, BATCH = 0.05, 0.9, 64


def lamina_setup(X, y, steps):
    import lamina
    from lamina import models, optim

    lamina.seed(0)
    model = models.lenet5()
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    n = BATCH * steps
    state = {"epoch": 0}

    def run():
        lo = (state["epoch"] * n) % (len(X) - n + 1)
        h = model.fit(X[lo:lo + n], y[lo:lo + n], epochs=1, batch_size=BATCH, optimizer=opt, seed=state["epoch"],
                      verbose=0)
        state["epoch"] += 1
        return h.history["loss"][-1]
    return model, run


def jax_setup(model, X, y, steps, layout="NCHW"):
    """The JAX twin of lamina's LeNet-5, starting from ``model``'s weights; ``layout`` "NCHW"
    (lamina's and PyTorch's) or "NHWC" (the images and feature maps channels-last, the
    convolution weights HWIO: XLA's CPU convolutions may prefer it)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    lax = jax.lax
    host = [p.numpy() for p in model.parameters()]  # c1w c1b c2w c2b d1w d1b d2w d2b d3w d3b
    nhwc = layout == "NHWC"
    if nhwc:
        host[0], host[2] = host[0].transpose(2, 3, 1, 0), host[2].transpose(2, 3, 1, 0)  # OIHW -> HWIO
        # Dense 400 -> 120 reads the flattened (C, H, W) maps: permute its columns to (H, W, C)
        host[4] = host[4].reshape(120, 16, 5, 5).transpose(0, 2, 3, 1).reshape(120, 400)
        X = np.ascontiguousarray(X.transpose(0, 2, 3, 1))
    params = [jnp.asarray(p) for p in host]
    velocity = [jnp.zeros_like(p) for p in params]
    dn = ("NHWC", "HWIO", "NHWC") if nhwc else ("NCHW", "OIHW", "NCHW")
    window = (1, 2, 2, 1) if nhwc else (1, 1, 2, 2)

    def conv(x, w, b, pad):
        z = lax.conv_general_dilated(x, w, (1, 1), [(pad, pad), (pad, pad)], dimension_numbers=dn)
        return z + (b if nhwc else b[None, :, None, None])

    def pool(x):
        return lax.reduce_window(x, -jnp.inf, lax.max, window, window, "VALID")

    def logits(p, x):
        c1w, c1b, c2w, c2b, d1w, d1b, d2w, d2b, d3w, d3b = p
        h = pool(jax.nn.relu(conv(x, c1w, c1b, 2)))
        h = pool(jax.nn.relu(conv(h, c2w, c2b, 0)))
        h = h.reshape(h.shape[0], -1)
        h = jax.nn.relu(h @ d1w.T + d1b)
        h = jax.nn.relu(h @ d2w.T + d2b)
        return h @ d3w.T + d3b

    def loss_fn(p, x, t):
        logp = jax.nn.log_softmax(logits(p, x))
        return -jnp.mean(jnp.take_along_axis(logp, t[:, None], axis=1))

    def step(p, v, Xd, yd, idx):
        x, t = Xd[idx], yd[idx]
        loss, g = jax.value_and_grad(loss_fn)(p, x, t)
        v = [MOMENTUM * vi + gi for vi, gi in zip(v, g)]  # PyTorch's SGD: v = m v + g; p -= lr v
        p = [pi - LR * vi for pi, vi in zip(p, v)]
        return p, v, loss

    step = jax.jit(step, donate_argnums=(0, 1))
    Xd, yd = jnp.asarray(X), jnp.asarray(y.astype(np.int32))
    n = BATCH * steps
    state = {"epoch": 0, "p": params, "v": velocity}

    def run():
        lo = (state["epoch"] * n) % (len(X) - n + 1)
        perm = (np.random.default_rng(state["epoch"]).permutation(n) + lo).astype(np.int32)
        p, v = state["p"], state["v"]
        for b in range(steps):
            p, v, loss = step(p, v, Xd, yd, perm[b * BATCH:(b + 1) * BATCH])
        loss.block_until_ready()
        state.update(p=p, v=v, epoch=state["epoch"] + 1)
        return float(loss)
    return run


def check_training(name, run, calls):
    """The loss of the first call's last batch vs the mean of the last call's: must fall."""
    first = run()
    for _ in range(calls - 2):
        run()
    last = run()
    print(f"check: {name} loss {first:.3f} -> {last:.3f} over {calls} calls")
    if not last < 0.7 * first:
        sys.exit(f"{name} does not train (loss {first:.3f} -> {last:.3f})")


def _thread_ticks():
    """{thread id: user + system clock ticks} of this process's threads."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[tid] = int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return out


def busy_threads(f, calls):
    """The threads that did at least 10% of the CPU work of ``calls`` calls of f: how many
    threads a library really computes on."""
    t0 = _thread_ticks()
    for _ in range(calls):
        f()
    t1 = _thread_ticks()
    work = {tid: t1[tid] - t0.get(tid, 0) for tid in t1}
    total = sum(work.values()) or 1
    return sorted((w for w in work.values() if w >= 0.1 * total), reverse=True), total


def measure(fns, rounds, block_s, pause_s):
    """[{name: (seconds per call, cpu seconds per wall second)}] per round, blocks alternating."""
    calls = {}
    for name, f in fns.items():  # warm up and size a block
        f()
        t0 = time.perf_counter()
        f()
        calls[name] = max(1, round(block_s / (time.perf_counter() - t0)))
    names, out = list(fns), []
    for r in range(rounds):
        row = {}
        for name in (names if r % 2 == 0 else names[::-1]):
            time.sleep(pause_s)
            f, k = fns[name], calls[name]
            c0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            for _ in range(k):
                f()
            wall = time.perf_counter() - t0
            c1 = resource.getrusage(resource.RUSAGE_SELF)
            cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
            row[name] = (wall / k, cpu / wall)
        out.append(row)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=20, help="training steps per timed call")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--block", type=float, default=1.0, help="seconds per block (sets the calls per block)")
    p.add_argument("--pause", type=float, default=1.0, help="seconds of sleep before each block")
    p.add_argument("--check-steps", type=int, default=200, help="training steps of the loss check")
    p.add_argument("--layout", choices=("NCHW", "NHWC"), default="NCHW",
                   help="JAX's image layout (the same model either way; NCHW by default, as lamina's)")
    a = p.parse_args()
    cpus = _pin(a.threads)

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import jax
    import numpy as np

    import lamina
    from bench_training import mnist_numpy

    lamina.set_num_threads(a.threads)
    X, y = mnist_numpy(8000)
    load = os.getloadavg()
    print(f"{datetime.datetime.now().isoformat(timespec='minutes')}  {platform.node()}  cpus {cpus} of "
          f"{os.cpu_count()}  load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"lamina {lamina.__version__} (isa {lamina.backend_info()['isa']}, {lamina.get_num_threads()} threads)  "
          f"jax {jax.__version__} on {jax.devices()}  numpy {np.__version__}  XLA_FLAGS={os.environ['XLA_FLAGS']!r}")

    model, run_lamina = lamina_setup(X, y, a.steps)
    run_jax = jax_setup(model, X, y, a.steps, a.layout)  # from lamina's initial weights
    check_calls = max(2, a.check_steps // a.steps)
    check_training("jax", run_jax, check_calls)
    check_training("lamina", run_lamina, check_calls)

    fns = {"lamina": run_lamina, "jax": run_jax}
    for name, f in fns.items():
        time.sleep(a.pause)
        ticks, total = busy_threads(f, 10)
        print(f"threads doing >= 10% of {name}'s CPU work over 10 calls: {len(ticks)} (clock ticks {ticks} of {total})")
    rows = measure(fns, a.rounds, a.block, a.pause)
    images = BATCH * a.steps
    print(f"\nLeNet-5 training, batch {BATCH}, {a.steps} steps per call, {a.threads} threads, pause {a.pause} s, "
          f"JAX layout {a.layout}")
    print("| round | lamina images/s | lamina CPU s/s | lamina CPU ms/step | JAX images/s | JAX CPU s/s | "
          "JAX CPU ms/step | wall ratio JAX/lamina | CPU ratio JAX/lamina |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    wall_ratios, cpu_ratios = [], []
    for i, r in enumerate(rows, 1):
        (tl, cl), (tj, cj) = r["lamina"], r["jax"]
        ml, mj = tl * cl / a.steps * 1e3, tj * cj / a.steps * 1e3
        wall_ratios.append(tj / tl)
        cpu_ratios.append(mj / ml)
        print(f"| {i} | {images / tl:,.0f} | {cl:.2f} | {ml:.1f} | {images / tj:,.0f} | {cj:.2f} | {mj:.1f} | "
              f"{tj / tl:.2f} | {mj / ml:.2f} |")
    med = statistics.median
    print(f"| median | {med(images / r['lamina'][0] for r in rows):,.0f} | | "
          f"{med(r['lamina'][0] * r['lamina'][1] for r in rows) / a.steps * 1e3:.1f} | "
          f"{med(images / r['jax'][0] for r in rows):,.0f} | | "
          f"{med(r['jax'][0] * r['jax'][1] for r in rows) / a.steps * 1e3:.1f} | "
          f"{med(wall_ratios):.2f} | {med(cpu_ratios):.2f} |")
    # The rounds in which neither library was starved of cores by other processes: each kept at
    # least 90% of its threads busy (CPU s/s), i.e. the comparison the machine would give idle.
    full = [r for r in rows if min(r["lamina"][1], r["jax"][1]) >= 0.9 * a.threads]
    if full:
        print(f"rounds with both at >= {0.9 * a.threads:.1f} CPU s/s: {len(full)} of {len(rows)}; median lamina "
              f"{med(images / r['lamina'][0] for r in full):,.0f} images/s, JAX "
              f"{med(images / r['jax'][0] for r in full):,.0f} images/s, wall ratio "
              f"{med(r['jax'][0] / r['lamina'][0] for r in full):.2f}")
    else:
        print(f"no round had both libraries at >= {0.9 * a.threads:.1f} CPU s/s (the machine was busy throughout)")
    load = os.getloadavg()
    print(f"load after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
