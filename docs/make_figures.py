"""Regenerates the tutorial's figures in docs/img/ from lamina's experiments.

    python docs/make_figures.py            # the full experiments (a few minutes on 2 cores)
    python docs/make_figures.py --fast     # their fast settings (seconds; rougher curves)

Each experiment writes its plots and a JSON of its numbers; the plots the tutorial shows are
copied here (small PNGs, committed so that the documentation builds without running them).
"""
import argparse
import shutil
import tempfile
from pathlib import Path

from lamina import experiments

FIGURES = {  # experiment -> the plots of it the tutorial and the experiments page show
    "vanishing": ["vanishing_bias_norms.png"],
    "init": ["init_training.png"],
    "saddle": ["saddle_hessian_hist.png", "saddle_index.png"],
    "sgd": ["sgd_loss_vs_evaluations.png"],
    "depth": ["depth.png"],
    "backprop": ["backprop.png"],
    "cost": ["cost.png"],
    "capacity": ["capacity.png"],
}

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--fast", action="store_true")
args = parser.parse_args()
here = Path(__file__).resolve().parent / "img"
here.mkdir(exist_ok=True)
with tempfile.TemporaryDirectory() as out:
    for name, plots in FIGURES.items():
        experiments.run(name, fast=args.fast, out=out, seed=0, verbose=False)
        for plot in plots:
            shutil.copy(Path(out) / plot, here / plot)
            print(f"docs/img/{plot}")
