"""Before/after: the same workloads timed in two Python environments (e.g. one built from the
previous commit), interleaved in one run.

    python benchmarks/compare_envs.py --base /path/to/old-venv/bin/python [--new python] [--rounds 9]

Each environment runs a worker subprocess that builds every workload once (LeNet-5 and MLP
training through ``fit``, and the hot kernels) and times blocks of calls on request. The parent
asks the two workers in turn, workload by workload, with a pause between blocks so that the
idle worker's OpenMP threads are asleep, and prints the median time per call of each and the
ratio base / new (> 1: the new one is faster). Both run at the same thread count.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

WORKER = r'''
import json, sys, time
import numpy as np
import lamina
from lamina import models, optim, ops, reference as ref
lamina.set_num_threads(int(sys.argv[1]))
rng = np.random.default_rng(0)
X = rng.random((2048, 1, 28, 28), dtype=np.float32)
y = rng.integers(0, 10, 2048)

def trainer(name, batch, steps=20):
    lamina.seed(0)
    model = models.MODELS[name]()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    n = batch * steps
    state = [0]
    def run():
        lo = (state[0] * n) % (len(X) - n + 1)
        model.fit(X[lo:lo + n], y[lo:lo + n], epochs=1, batch_size=batch, optimizer=opt, seed=state[0], verbose=0)
        state[0] += 1
    return run

a = rng.standard_normal((512, 512), dtype=np.float32)
cx = rng.standard_normal((64, 6, 14, 14), dtype=np.float32)
cw = rng.standard_normal((16, 6, 5, 5), dtype=np.float32)
cg = rng.standard_normal((64, 16, 10, 10), dtype=np.float32)
px = rng.standard_normal((64, 6, 28, 28), dtype=np.float32)
big = rng.standard_normal(1 << 20, dtype=np.float32)
logits = rng.standard_normal((64, 10), dtype=np.float32)
labels = rng.integers(0, 10, 64)
p, g, v = (rng.standard_normal(61706, dtype=np.float32) for _ in range(3))
# the kernels, each a function of the module that computes it (lamina.ops or lamina.reference)
K = {
    "matmul 512x512x512": lambda m: m.matmul(a, a),
    "conv2d (64,6,14,14)*(16,6,5,5)": lambda m: m.conv2d(cx, cw),
    "conv2d_backward (64,6,14,14)": lambda m: m.conv2d_backward(cx, cw, cg),
    "max_pool2d (64,6,28,28) k2": lambda m: m.max_pool2d(px, 2),
    "relu 1M": lambda m: m.relu(big),
    "softmax_cross_entropy (64,10)": lambda m: m.softmax_cross_entropy(logits, labels),
    "sgd_step 61706 momentum": lambda m: m.sgd_step(p, g, 1e-4, v, momentum=0.9),
}
IN_PLACE = [p, v]


def close(got, want, where):
    if isinstance(want, (tuple, list)):
        for i, (u, w) in enumerate(zip(got, want)):
            close(u, w, f"{where}[{i}]")
    elif want is None or np.ndim(want) == 0 and not isinstance(want, np.ndarray):
        assert (got is None) == (want is None) and (want is None or abs(got - want) <= 1e-4 * max(1, abs(want))), \
            (where, got, want)
    else:
        w = np.asarray(want, np.float64)
        np.testing.assert_allclose(np.asarray(got, np.float64), w, rtol=1e-3,
                                   atol=1e-4 * max(1.0, float(np.abs(w).max(initial=0))), err_msg=where)


def check(name, f):
    """The kernel's result (and its in-place arrays) once against lamina.reference."""
    saved = [s.copy() for s in IN_PLACE]
    outcome = []
    for m in (ops, ref):
        outcome.append((f(m), [s.copy() for s in IN_PLACE]))
        for s, o in zip(IN_PLACE, saved):
            s[...] = o
    close(outcome[0], outcome[1], name)


W = {"lenet5 fit, batch 64, 20 steps": trainer("lenet5", 64), "mlp fit, batch 32, 20 steps": trainer("mlp", 32)}
for name, f in K.items():
    check(name, f)
    W[name] = (lambda f: lambda: f(ops))(f)
for f in W.values():
    f()
print(json.dumps(list(W)), flush=True)
for line in sys.stdin:
    name, block_s = json.loads(line)
    f = W[name]
    k, t = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(k):
            f()
        t = time.perf_counter() - t0
        if t >= block_s:
            break
        k *= 2
    print(json.dumps(t / k), flush=True)
'''


def start(python, threads):
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    proc = subprocess.Popen([python, "-c", WORKER, str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env, cwd="/")
    names = json.loads(_reply(proc, python))
    return proc, names


def _reply(proc, what):
    """The worker's next line; a worker that died (a wrong result, a crash) ends the comparison
    with its exit status (its traceback is on stderr)."""
    line = proc.stdout.readline()
    if not line:
        rc = proc.wait()
        raise SystemExit(f"compare_envs: the worker of {what} ended without answering (exit status {rc})")
    return line


def ask(proc, name, block_s):
    proc.stdin.write(json.dumps([name, block_s]) + "\n")
    proc.stdin.flush()
    return json.loads(_reply(proc, name))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="python of the environment to compare against")
    ap.add_argument("--new", default=sys.executable, help="python of the new environment (default: this one)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--block-s", type=float, default=0.1)
    ap.add_argument("--pause-s", type=float, default=0.2)
    ap.add_argument("--only", default="", help="comma-separated substrings: time only the workloads matching one")
    a = ap.parse_args(argv)
    workers = {"base": start(a.base, a.threads), "new": start(a.new, a.threads)}
    names = workers["new"][1]
    print(f"| workload | base ms | new ms | base / new | threads |\n|---|---:|---:|---:|---:|")
    wanted = [w for w in a.only.split(",") if w]
    for name in names:
        if wanted and not any(w in name for w in wanted):
            continue
        times = {"base": [], "new": []}
        for r in range(a.rounds):
            for key in (("base", "new") if r % 2 == 0 else ("new", "base")):
                time.sleep(a.pause_s)
                times[key].append(ask(workers[key][0], name, a.block_s))
        tb, tn = statistics.median(times["base"]), statistics.median(times["new"])
        print(f"| {name} | {tb * 1e3:.3f} | {tn * 1e3:.3f} | {tb / tn:.3f} | {a.threads} |", flush=True)
    for key, (proc, _) in workers.items():
        proc.stdin.close()
        rc = proc.wait()
        if rc != 0:
            raise SystemExit(f"compare_envs: the {key} worker exited with status {rc}")


if __name__ == "__main__":
    main()
