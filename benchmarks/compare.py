"""Every ratio table of the issues in one run: the GEMM (lamina.bench, the same as
`lamina bench`) and the rows() of each benchmarks/bench_<kernel>.py (conv, activations,
softmax, losses, dropout, SGD, pooling, training), each timed in interleaved blocks, medians.

    python benchmarks/compare.py                         # everything, 1 and 2 threads
    python benchmarks/compare.py --kernels gemm,conv --threads 2
    python benchmarks/compare.py --quick                 # GEMM smoke test only (CI)
"""
import argparse
import importlib
import inspect
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lamina  # noqa: E402
from lamina import bench  # noqa: E402

FAMILIES = ["conv", "activation", "softmax", "loss", "dropout", "sgd", "pool", "training"]


def print_dict_rows(rows):
    keys = ["kernel", "shape", "threads", "lamina_ms", "baseline", "baseline_ms", "ratio"]
    print("| " + " | ".join(keys) + " | other |")
    print("|" + "---|" * (len(keys) + 1))
    for r in rows:
        cells = [f"{r[k]:.3f}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys]
        other = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items() if k not in keys)
        print("| " + " | ".join(cells) + f" | {other} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kernels", default="gemm," + ",".join(FAMILIES))
    p.add_argument("--threads", default="1,2")
    p.add_argument("--quick", action="store_true")
    args, rest = p.parse_known_args(argv)
    nts = tuple(int(t) for t in args.threads.split(","))
    print(lamina.backend_info())
    for name in args.kernels.split(","):
        if name == "gemm":
            rc = bench.main(["--kernels", "gemm", "--threads", args.threads] + (["--quick"] if args.quick else []) + rest)
            if rc:  # a wrong result (lamina.bench checks each against lamina.reference)
                return rc
            continue
        if args.quick:
            continue
        mod = importlib.import_module(f"bench_{name}")
        print(f"\n## {name}")
        takes_threads = "thread_counts" in inspect.signature(mod.rows).parameters
        print_dict_rows(mod.rows(thread_counts=nts) if takes_threads else mod.rows())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
