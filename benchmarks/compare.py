"""The ratio tables of the issues: lamina vs NumPy (and PyTorch where installed), interleaved
blocks, medians, in one run. Same code as `lamina bench`.

    python benchmarks/compare.py                    # every table, 1 and 2 threads
    python benchmarks/compare.py --kernels gemm --threads 2
    python benchmarks/compare.py --quick            # smoke test (CI)
"""
import sys

from lamina.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
