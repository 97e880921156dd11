"""``make bench``: speed figures measured on this machine.

Trainer: microseconds per item-step of ``train`` (K = 1) and per network-step of ``train_many``
at K = 16 ... 1024 on Iris 4-7-3, with the speed-up per network over K = 1. Each figure is the
best of five repeats, since the minimum is the least noisy estimate of what the code costs. On
a shared machine a busy spell can last a second or more (K = 1 measured 16.8 and 31 us per
item-step minutes apart on the 2-core machine this was built on, and K = 256 0.249 and 0.332
in consecutive runs), so the repeats go round the sizes in turn: each size's five are spread
over the whole run, not bunched into one spell.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from .data import load_dataset
from .train import train_many


def seconds_taken(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def trainer_figures(epochs: int = 20, sizes=(1, 16, 64, 256, 1024), repeats: int = 5):
    """Microseconds per network-step of training K Iris 4-7-3 networks for ``epochs`` epochs."""
    iris = load_dataset("iris")
    steps = epochs * len(iris.y_train)
    runs = {}
    for k in sizes:
        rng = np.random.default_rng(k)
        learning_rates = 10 ** rng.uniform(-3, -1, k)
        momenta = rng.uniform(0, 0.9, k)
        runs[k] = lambda k=k, lr=learning_rates, m=momenta: train_many(
            iris, lr, m, np.arange(k), epochs=epochs
        )
    seconds = {k: float("inf") for k in sizes}
    for _ in range(repeats):
        for k, run in runs.items():
            seconds[k] = min(seconds[k], seconds_taken(run))
    return {k: seconds[k] / (steps * k) * 1e6 for k in sizes}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sweep.bench", description=__doc__)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--skip-search", action="store_true", help="trainer figures only")
    args = parser.parse_args(argv)

    print(f"Trainer: Iris 4-7-3, {args.epochs} epochs x 120 items, seed rule, float64")
    figures = trainer_figures(args.epochs)
    single = figures[1]
    print(f"  train (K = 1): {single:8.2f} us per item-step")
    for k, micros in figures.items():
        if k > 1:
            print(
                f"  train_many K = {k:4d}: {micros:8.3f} us per network-step  "
                f"({single / micros:5.1f}x K = 1)"
            )
    if not args.skip_search:
        from .bench_search import main as search_main

        search_main()


if __name__ == "__main__":
    main()
