"""The batch TPE (``sweep.sampler``) against Optuna's ``TPESampler``: quality and cost.

Quality, at equal trial counts, the median over seeds of the best value each sampler found:

- **iris-tpe**: the shipped study (``studies/iris-tpe.toml``) run by ``sweep.search.run_study``
  on a temporary SQLite file, with ``sampler = "tpe"`` (the batch TPE) and
  ``sampler = "optuna-tpe"``; the best is the lowest mean validation loss of a COMPLETE trial.
- **valley**: a noisy 2-D function shaped like this project's landscapes: over log learning
  rate x momentum, a valley along ``lr (1 + momentum) = 0.03`` (the seed rule's step), a gentle
  slope along it towards momentum 0.7, a cliff where ``lr (1 + momentum) > 0.4`` past which a
  trial "diverges" (PRUNED with no value, as a diverged network's trial), and Gaussian noise of
  0.003 on every value. The best is the noise-free value at the trial each sampler found best
  (what a study would recommend), so a lucky draw of the noise does not count.
- **rosenbrock**: function 8 of the BBOB suite (Rosenbrock, original), as OptunaHub's
  ``benchmarks/bbob`` package (github.com/optuna/optunahub-registry,
  ``package/benchmarks/bbob``, a wrapper of the COCO platform) provides it in 2-D: on
  [-5, 5]^2, ``f(x) = 100 (z1^2 - z2)^2 + (z1 - 1)^2`` with ``z = x - x_opt + 1`` (the scale
  ``max(1, sqrt(D) / 8)`` is 1 in 2-D). Definition: Finck, Hansen, Ros and Auger, "Real-Parameter
  Black-Box Optimization Benchmarking 2009: Noiseless Functions Definitions", f8; pycma's
  ``bbobbenchmarks.F8`` computes the same. COCO draws ``x_opt`` per instance; here it is fixed at
  (1.2, -0.9) and ``f_opt`` at 0, so the minimum is 0 at x_opt.

Both samplers are driven as ``sweep run`` drives them: batches of 50, each batch planned before
any of its trials is told; Optuna's TPE asks each batch's trials one after the other, each
seeing those before it as RUNNING (its constant liar), as the search's in-memory mirror does.

Cost: the sampler's time per suggested trial, with 100 ... 100,000 stored trials (COMPLETE ones,
a tenth PRUNED, uniform over the valley's space): the batch TPE's fit plus a batch of 50;
Optuna's TPE per ask in a study holding the same trials, measured as far as it is bearable
and extrapolated (linearly in the stored trials, from the two largest measured) beyond.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from .sampler import BatchTPE, Dimension

STUDY_FILE = Path(__file__).resolve().parent.parent / "studies" / "iris-tpe.toml"
BATCH = 50
NOISE = 0.003
ROSENBROCK_OPTIMUM = (1.2, -0.9)

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclasses.dataclass(frozen=True)
class Problem:
    """A 2-D test function: its space, and ``evaluate(x, rng) -> (observed, true)`` where a
    value of None is a diverged trial and ``true`` is the noise-free value."""

    name: str
    dimensions: tuple[Dimension, ...]
    evaluate: Callable[[dict, np.random.Generator], tuple[float | None, float | None]]


def valley(params: dict, rng: np.random.Generator) -> tuple[float | None, float | None]:
    """The noisy valley: see the module docstring."""
    rate = params["learning_rate"] * (1.0 + params["momentum"])
    if rate > 0.4:
        return None, None
    true = 0.1 + 0.05 * math.log10(rate / 0.03) ** 2 + 0.03 * (params["momentum"] - 0.7) ** 2
    return true + NOISE * float(rng.standard_normal()), true


def rosenbrock(params: dict, rng: np.random.Generator) -> tuple[float, float]:
    """BBOB f8 in 2-D with x_opt = ROSENBROCK_OPTIMUM, f_opt = 0: see the module docstring."""
    z1 = params["x1"] - ROSENBROCK_OPTIMUM[0] + 1.0
    z2 = params["x2"] - ROSENBROCK_OPTIMUM[1] + 1.0
    value = 100.0 * (z1**2 - z2) ** 2 + (z1 - 1.0) ** 2
    return value, value


PROBLEMS = (
    Problem(
        "valley",
        (Dimension("learning_rate", 1e-3, 1.0, log=True), Dimension("momentum", 0.0, 0.95)),
        valley,
    ),
    Problem("rosenbrock", (Dimension("x1", -5.0, 5.0), Dimension("x2", -5.0, 5.0)), rosenbrock),
)


def run_batch_tpe(problem: Problem, trials: int, seed: int) -> list[tuple[float | None, float]]:
    """(observed, true) of each trial of a study run by the batch TPE, in order."""
    sampler = BatchTPE(list(problem.dimensions))
    rng = np.random.default_rng(seed)
    noise = np.random.default_rng([seed, 1])
    results = []
    while len(results) < trials:
        points = sampler.suggest(min(BATCH, trials - len(results)), rng)
        numbers = np.arange(len(results), len(results) + len(points))
        outcomes = [problem.evaluate(point, noise) for point in points]
        params = np.array([[point[d.name] for d in problem.dimensions] for point in points])
        done = [i for i, (observed, _) in enumerate(outcomes) if observed is not None]
        failed = [i for i, (observed, _) in enumerate(outcomes) if observed is None]
        sampler.add_complete(numbers[done], params[done], [outcomes[i][0] for i in done])
        sampler.add_pruned(numbers[failed], params[failed], [0] * len(failed),
                           [math.inf] * len(failed))
        results += outcomes
    return results


def run_optuna_tpe(problem: Problem, trials: int, seed: int) -> list[tuple[float | None, float]]:
    """As :func:`run_batch_tpe`, with Optuna's TPESampler asked one trial at a time."""
    space = {d.name: FloatDistribution(d.low, d.high, log=d.log) for d in problem.dimensions}
    study = optuna.create_study(
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=10)
    )
    noise = np.random.default_rng([seed, 1])
    results = []
    while len(results) < trials:
        asked = [study.ask(space) for _ in range(min(BATCH, trials - len(results)))]
        for trial in asked:
            observed, true = problem.evaluate(trial.params, noise)
            if observed is None:
                study.tell(trial, state=TrialState.PRUNED)
            else:
                study.tell(trial, observed)
            results.append((observed, true))
    return results


def recommended(results: list[tuple[float | None, float]]) -> float:
    """The noise-free value of the trial with the best observed value."""
    finished = [(observed, true) for observed, true in results if observed is not None]
    return min(finished)[1]


def run_iris(sampler: str, seed: int, folder: Path, quick: bool) -> float:
    """The best COMPLETE value of the shipped iris-tpe study run with ``sampler``."""
    from .search import run_study
    from .spec import load_study
    from .store.connect import open_storage

    spec = load_study(STUDY_FILE)
    changes = {"sampler": sampler, "seed": seed, "name": f"{sampler}-{seed}"}
    if quick:
        changes |= {"trials": 24, "batch_size": 8, "folds": 1, "repeats": 1}
        changes["pruner"] = dataclasses.replace(spec.pruner, name="none")
    spec = dataclasses.replace(spec, **changes)
    storage = open_storage(f"sqlite:///{folder / f'{spec.name}.db'}")
    run_study(spec, storage)
    study_id = storage.get_study_id_from_name(spec.name)
    return min(t.value for t in storage.get_all_trials(study_id) if t.state == TrialState.COMPLETE)


def _summary(values: list[float]) -> str:
    quartiles = np.percentile(values, [25, 75])
    return (f"median {statistics.median(values):.4g} "
            f"(quartiles {quartiles[0]:.4g}-{quartiles[1]:.4g}, range {min(values):.4g}-"
            f"{max(values):.4g})")


def quality(seeds: list[int], trials: int, quick: bool) -> dict:
    """Best values per sampler and problem; printed as they come."""
    figures = {}
    print(f"\nQuality: median over {len(seeds)} seeds of the best value (lower is better), "
          f"batches of {BATCH} (iris-tpe: its own)")
    with tempfile.TemporaryDirectory() as folder:
        for sampler in ("tpe", "optuna-tpe"):
            figures[("iris-tpe", sampler)] = [
                run_iris(sampler, seed, Path(folder), quick) for seed in seeds
            ]
    for problem in PROBLEMS:
        for sampler, run in (("tpe", run_batch_tpe), ("optuna-tpe", run_optuna_tpe)):
            figures[(problem.name, sampler)] = [
                recommended(run(problem, trials, seed)) for seed in seeds
            ]
    for name in ["iris-tpe"] + [p.name for p in PROBLEMS]:
        count = "" if name == "iris-tpe" else f", {trials} trials"
        print(f"  {name}{count}:")
        for sampler in ("tpe", "optuna-tpe"):
            label = "batch TPE  " if sampler == "tpe" else "Optuna TPE "
            print(f"    {label} {_summary(figures[(name, sampler)])}")
    return figures


def history(dimensions: list[Dimension], count: int, seed: int = 0):
    """``count`` finished trials uniform over the valley's space, a tenth of them PRUNED: their
    numbers, parameters (count, 2), values (NaN for pruned) and pruned flags."""
    rng = np.random.default_rng(seed)
    unit = rng.random((count, len(dimensions)))
    params = np.column_stack([d.from_unit(unit[:, i]) for i, d in enumerate(dimensions)])
    noise = np.random.default_rng([seed, 1])
    names = [d.name for d in dimensions]
    observed = [valley(dict(zip(names, row)), noise)[0] for row in params]
    values = np.array([math.nan if value is None else value for value in observed])
    pruned = (np.arange(count) % 10 == 9) | np.isnan(values)
    return np.arange(count), params, values, pruned


def batch_cost(count: int, repeats: int = 3) -> float:
    """Seconds per suggested trial of the batch TPE: fit plus a batch of BATCH, best of
    ``repeats``."""
    dimensions = list(PROBLEMS[0].dimensions)
    numbers, params, values, pruned = history(dimensions, count)
    sampler = BatchTPE(dimensions)
    sampler.add_complete(numbers[~pruned], params[~pruned], values[~pruned])
    sampler.add_pruned(numbers[pruned], params[pruned], np.full(pruned.sum(), 50),
                       values[pruned])
    best = math.inf
    for repeat in range(repeats):
        start = time.perf_counter()
        sampler.suggest(BATCH, np.random.default_rng(repeat))
        best = min(best, time.perf_counter() - start)
    return best / BATCH


def optuna_cost(count: int, asks: int) -> float:
    """Seconds per ask of Optuna's TPESampler in an in-memory study of ``count`` trials."""
    dimensions = list(PROBLEMS[0].dimensions)
    space = {d.name: FloatDistribution(d.low, d.high, log=d.log) for d in dimensions}
    numbers, params, values, pruned = history(dimensions, count)
    trials = [
        optuna.trial.create_trial(
            state=TrialState.PRUNED if cut else TrialState.COMPLETE,
            value=None if cut else float(value),
            params=dict(zip(space, map(float, row))),
            distributions=space,
            intermediate_values={50: float(value)} if cut and np.isfinite(value) else {},
        )
        for row, value, cut in zip(params, values, pruned)
    ]
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=10))
    study.add_trials(trials)
    start = time.perf_counter()
    for _ in range(asks):
        study.ask(space)
    return (time.perf_counter() - start) / asks


def cost(sizes: list[int], optuna_sizes: list[int]) -> dict:
    """Per-trial sampler cost in seconds: the batch TPE at every size, Optuna's measured at
    ``optuna_sizes`` and extrapolated beyond."""
    print(f"\nSampler cost per suggested trial (batches of {BATCH}; Optuna's TPE per ask)")
    ours = {n: batch_cost(n) for n in sizes}
    theirs = {n: optuna_cost(n, asks=max(3, min(BATCH, 200_000 // n))) for n in optuna_sizes}
    measured = sorted(theirs)
    for n in sizes:
        if n in theirs:
            optuna_figure, how = theirs[n], "measured"
        elif len(measured) >= 2 and n > measured[-1]:
            (n0, t0), (n1, t1) = (measured[-2], theirs[measured[-2]]), (measured[-1],
                                                                        theirs[measured[-1]])
            optuna_figure = t1 + (t1 - t0) / (n1 - n0) * (n - n1)
            how = "extrapolated"
        else:
            optuna_figure, how = math.nan, "not measured"
        print(
            f"  {n:>7,d} stored: batch TPE {ours[n] * 1e3:8.3f} ms, Optuna TPE "
            f"{optuna_figure * 1e3:9.2f} ms ({how}): {optuna_figure / ours[n]:6.0f}x"
        )
    return {"batch": ours, "optuna": theirs}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sweep.bench_sampler", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10, help="seeds per sampler (default 10)")
    parser.add_argument("--trials", type=int, default=500,
                        help="trials per test-function study (default 500)")
    parser.add_argument("--quick", action="store_true",
                        help="a few seconds: 2 seeds, small studies, small histories")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    args = parser.parse_args(argv)
    seeds = list(range(1, (2 if args.quick else args.seeds) + 1))
    if not args.skip_quality:
        quality(seeds, 60 if args.quick else args.trials, args.quick)
    if not args.skip_cost:
        if args.quick:
            cost([100, 1000], [100, 1000])
        else:
            cost([100, 1_000, 10_000, 100_000], [100, 1_000, 10_000])


if __name__ == "__main__":
    main()
