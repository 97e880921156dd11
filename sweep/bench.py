"""``make bench``: speed figures measured on this machine.

Trainer: microseconds per item-step of ``train`` (K = 1) and per network-step of ``train_many``
at K = 16 ... 1024 on Iris 4-7-3, with the speed-up per network over K = 1. Each figure is the
best of five repeats, since the minimum is the least noisy estimate of what the code costs: on
a shared machine a whole run now and then takes up to twice as long (K = 1 measured 16.8 and
31 us per item-step minutes apart on the 2-core machine this was built on), and three repeats
were too few to be sure of one clean run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from .data import load_dataset
from .train import train_many


def best_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def trainer_figures(epochs: int = 20, sizes=(1, 16, 64, 256, 1024), repeats: int = 5):
    """Microseconds per network-step of training K Iris 4-7-3 networks for ``epochs`` epochs."""
    iris = load_dataset("iris")
    steps = epochs * len(iris.y_train)
    figures = {}
    for k in sizes:
        rng = np.random.default_rng(k)
        learning_rates = 10 ** rng.uniform(-3, -1, k)
        momenta = rng.uniform(0, 0.9, k)
        seconds = best_seconds(
            lambda: train_many(iris, learning_rates, momenta, np.arange(k), epochs=epochs), repeats
        )
        figures[k] = seconds / (steps * k) * 1e6
    return figures


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
            print(f"  train_many K = {k:4d}: {micros:8.3f} us per network-step  ({single / micros:5.1f}x K = 1)")
    if not args.skip_search:
        from .bench_search import main as search_main

        search_main()


if __name__ == "__main__":
    main()
