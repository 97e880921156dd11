"""``make bench``, end to end: a 200-trial TPE Iris study at 100 epochs on SQLite.

momentum-sweep's batched search beside the same study run the way Optuna's tutorial teaches:
``study.optimize`` with an objective that trains one network item by item, calling
``trial.report`` and ``trial.should_prune`` after every epoch, median pruner, same storage
kind, same search space, same trainer maths. Figures: trials per second, the share of wall
time spent in storage and in the sampler, and the best value (median over seeds).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna

from .network import Layout, initial_parameters
from .search import run_study
from .sources import load_dataset
from .spec import load_study
from .store.connect import open_storage

STUDY_FILE = Path(__file__).resolve().parent.parent / "studies" / "iris-tpe.toml"


def tutorial_objective(dataset, epochs: int, hidden: int = 7):
    """An Optuna-tutorial objective: one network, a per-item NumPy loop, report every epoch."""
    layout = Layout(dataset.x_train.shape[1], hidden, dataset.n_classes)

    def objective(trial: optuna.Trial) -> float:
        learning_rate = trial.suggest_float("learning_rate", 1e-3, 1.0, log=True)
        momentum = trial.suggest_float("momentum", 0.0, 0.95)
        rng = np.random.default_rng(trial.number)
        flat = initial_parameters(layout, rng)
        views = layout.views(flat[:, None])
        w = {name: view[..., 0] for name, view in views.items()}  # views into flat
        prev_delta = {name: np.zeros_like(value) for name, value in w.items()}
        val_loss = np.inf
        for epoch in range(1, epochs + 1):
            for n in rng.permutation(len(dataset.y_train)):
                x, target = dataset.x_train[n], dataset.y_train[n]
                hidden_out = np.tanh(x @ w["ih_weights"] + w["h_biases"])
                logits = hidden_out @ w["ho_weights"] + w["o_biases"]
                p = np.exp(logits - logits.max())
                p /= p.sum()
                p[target] -= 1.0
                hidden_error = (w["ho_weights"] @ p) * (1 - hidden_out**2)
                grads = {"ih_weights": np.outer(x, hidden_error), "h_biases": hidden_error,
                         "ho_weights": np.outer(hidden_out, p), "o_biases": p}
                for name, grad in grads.items():
                    delta = -learning_rate * grad
                    w[name] += delta
                    w[name] += momentum * prev_delta[name]
                    prev_delta[name] = delta
            hidden_out = np.tanh(dataset.x_val @ w["ih_weights"] + w["h_biases"])
            logits = hidden_out @ w["ho_weights"] + w["o_biases"]
            logits -= logits.max(axis=1, keepdims=True)
            log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
            val_loss = float(-log_p[np.arange(len(dataset.y_val)), dataset.y_val].mean())
            if not np.isfinite(val_loss):
                raise optuna.TrialPruned()
            trial.report(val_loss, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return val_loss

    return objective


def run_tutorial(seed: int, trials: int, epochs: int, folder: Path) -> tuple[float, float]:
    """(seconds, best value) of the tutorial way on a fresh SQLite file."""
    dataset = load_dataset("iris")
    storage = f"sqlite:///{folder / f'tutorial-{seed}.db'}"
    study = optuna.create_study(
        storage=storage, direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=10),
    )
    start = time.perf_counter()
    with np.errstate(all="ignore"):
        study.optimize(tutorial_objective(dataset, epochs), n_trials=trials)
    return time.perf_counter() - start, study.best_value


def run_ours(seed: int, folder: Path):
    spec = load_study(STUDY_FILE)
    # One network per trial, as the tutorial way trains: the shipped study's folds and repeats
    # would measure each trial on ten networks, and its best value would not compare.
    changes = {"seed": seed, "name": f"bench-{seed}", "folds": 1, "repeats": 1}
    spec = type(spec)(**{**spec.__dict__, **changes})
    storage = open_storage(f"sqlite:///{folder / f'ours-{seed}.db'}")
    start = time.perf_counter()
    progress = run_study(spec, storage)
    seconds = time.perf_counter() - start
    best = min(t.value for t in storage.get_all_trials(storage.get_study_id_from_name(spec.name))
               if t.state == optuna.trial.TrialState.COMPLETE)
    return seconds, best, progress, spec


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sweep.bench_search", description=__doc__)
    parser.add_argument(
        "--seeds", type=int, default=3, help="seeds for the median best value (default 3)"
    )
    parser.add_argument("--tutorial-seeds", type=int, default=None,
                        help="seeds to run the slow tutorial way for (default: as --seeds)")
    args = parser.parse_args(argv)
    seeds = list(range(1, args.seeds + 1))
    tutorial_seeds = seeds[: args.tutorial_seeds] if args.tutorial_seeds is not None else seeds

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        ours = [run_ours(seed, folder) for seed in seeds]
        spec = ours[0][3]
        print(
            f"\nSearch: {spec.trials}-trial TPE Iris study, {spec.epochs} epochs, SQLite, "
            f"batches of {spec.batch_size}, median pruner"
        )
        for seed, (seconds, best, progress, _) in zip(seeds, ours):
            shares = {k: progress.seconds[k] / seconds for k in ("storage", "sampler", "training")}
            print(
                f"  momentum-sweep seed {seed}: {seconds:6.2f} s, "
                f"{spec.trials / seconds:6.1f} trials/s, best {best:.4f}; "
                f"storage {shares['storage']:.0%}, sampler {shares['sampler']:.0%}, "
                f"training {shares['training']:.0%}; "
                f"pruned {progress.pruned}, diverged {progress.diverged}"
            )
        tutorial = []
        for seed in tutorial_seeds:
            seconds, best = run_tutorial(seed, spec.trials, spec.epochs, folder)
            tutorial.append((seconds, best))
            print(
                f"  tutorial way  seed {seed}: {seconds:6.2f} s, "
                f"{spec.trials / seconds:6.1f} trials/s, best {best:.4f}"
            )
    ours_rate = statistics.median(spec.trials / s for s, *_ in ours)
    tutorial_rate = statistics.median(spec.trials / s for s, _ in tutorial)
    print(f"  median trials/s: momentum-sweep {ours_rate:.1f}, tutorial way {tutorial_rate:.2f}: "
          f"{ours_rate / tutorial_rate:.0f}x")
    ours_best = [b for _, b, *_ in ours]
    tutorial_best = [b for _, b in tutorial]
    # The best of 200 single trainings, each scored on 30 validation items, moves by about 0.01
    # from seed to seed: the range says how far apart two medians can be by chance.
    print(
        f"  median best value: momentum-sweep {statistics.median(ours_best):.4f} "
        f"(range {min(ours_best):.4f}-{max(ours_best):.4f}), tutorial way "
        f"{statistics.median(tutorial_best):.4f} "
        f"(range {min(tutorial_best):.4f}-{max(tutorial_best):.4f}); "
        "lower is better"
    )


if __name__ == "__main__":
    main()
