"""Does the tool's answer hold on a user's own data? The pick against a dense grid, on fresh
networks.

Acceptance criterion: on at least three CSVs of 150-2,000 rows (not Iris, generated here,
nothing downloaded), each tuned with a minimal study file (README, "Tune your own data"):

- the pick's mean on 20 fresh networks (fresh seeds on fresh fold partitions) is within 10 % of
  the best cell of a dense grid measured on the same 20 networks (ratio <= 1.10);
- none of the pick's 20 networks fails (blows up, or ends worse than chance ln(classes));
- the value ``sweep best`` reports (the confirmation race's mean) is within 15 % of that fresh
  mean.

Each data set is tuned as a user would: ``sweep run STUDY.toml --storage ...`` and
``sweep best NAME --json`` in subprocesses. The fresh networks are race networks
``FIRST_FRESH ..``, past every network the confirmation uses (the race's, and the pick's up to
``MAX_PICK_NETWORKS``), so it never saw them. The grid's best cell is chosen on the same 20
networks it is scored on, so it is the best of many noisy means: the comparison flatters the
grid, not the pick.

The data sets (NumPy-seeded, the same on every run; not tuned to flatter the tool):

- **wine-like**: 178 rows, 13 features, 3 classes (59/71/48), correlated Gaussian classes, the
  features on scales from 0.01 to 1,000 (as wine's hue and proline);
- **noisy**: 210 rows, 7 features, 3 classes of 70, 10 % of the labels flipped to another class;
- **rings**: 2,000 rows, 3 concentric rings in 2 features (radius decides the class) plus 6
  features of pure noise;
- **imbalanced**: 600 rows, 10 features (4 informative), 2 classes 85 % / 15 %.

``--studies NAME ... --storage URL`` measures already stored studies the same way (their files
in ``studies/``, or paths to them), without running anything. ``--quick`` (30 trials, the two
small data sets, a 6 x 4 grid) takes seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .confirm import RaceNetworks, block_size
from .spec import load_study

STUDY_FOLDER = Path(__file__).resolve().parent.parent / "studies"
# Past every network the confirmation draws (the pick's go up to confirm.MAX_PICK_NETWORKS).
FIRST_FRESH = 1000
FRESH = 20
# The pick also on this many fresh networks (the FRESH first among them): the setting's mean
# over many partitions, against which the 20-network figure's own noise shows.
LONG_RUN = 200
RATIO_LIMIT = 1.10
REPORT_LIMIT = 0.15
DATA_SEED = 20240611
# A CSV's path is part of its setup, which seeds the race's networks: one folder on every run
# keeps the networks, and so the figures, the same from run to run.
DEFAULT_OUT = Path(tempfile.gettempdir()) / "momentum-sweep-answers"

MINIMAL_STUDY = """\
name = "{name}"
trials = {trials}

[data]
source = "csv"
path = "{name}.csv"
target = "label"
"""


# ---------------------------------------------------------------------------------------------
# The data sets


def _gaussian_classes(rng, counts, features, separation):
    """Correlated Gaussian classes: class means ~ N(0, separation^2) per feature, the same
    random mixing (so correlated features) within every class."""
    means = rng.normal(0.0, separation, (len(counts), features))
    mixing = rng.normal(0.0, 1.0, (features, features)) / math.sqrt(features)
    mixing += np.eye(features)
    y = np.repeat(np.arange(len(counts)), counts)
    x = means[y] + rng.standard_normal((len(y), features)) @ mixing
    return x, y


def wine_like(rng):
    x, y = _gaussian_classes(rng, [59, 71, 48], 13, separation=0.7)
    # Standardisation removes the scales for the network; a user's data still comes like this.
    scales = 10.0 ** rng.uniform(-2, 3, 13)
    offsets = scales * rng.uniform(0, 10, 13)
    return x * scales + offsets, y


def noisy(rng):
    x, y = _gaussian_classes(rng, [70, 70, 70], 7, separation=1.0)
    flipped = rng.choice(len(y), size=len(y) // 10, replace=False)
    y[flipped] = (y[flipped] + rng.integers(1, 3, len(flipped))) % 3
    return x, y


def rings(rng):
    y = np.arange(2000) % 3
    radius = y + rng.uniform(0, 1, len(y)) + rng.normal(0, 0.15, len(y))
    angle = rng.uniform(0, 2 * math.pi, len(y))
    informative = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    return np.column_stack([informative, rng.standard_normal((len(y), 6))]), y


def imbalanced(rng):
    y = (np.arange(600) < 90).astype(int)
    x = rng.standard_normal((600, 10))
    x[:, :4] += 0.8 * y[:, None]
    return x, y


DATA_SETS: dict[str, Callable] = {
    "wine-like": wine_like, "noisy": noisy, "rings": rings, "imbalanced": imbalanced}
QUICK_DATA_SETS = ("wine-like", "noisy")


def write_csv(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    header = ",".join([f"f{i + 1}" for i in range(x.shape[1])] + ["label"])
    lines = [",".join([f"{v:.6g}" for v in row] + [str(label)]) for row, label in zip(x, y)]
    path.write_text("\n".join([header, *lines]) + "\n")


def write_study(folder: Path, name: str, trials: int) -> Path:
    """The data set ``name``'s CSV and its minimal study file, in ``folder``."""
    index = list(DATA_SETS).index(name)
    rng = np.random.default_rng([DATA_SEED, index])
    write_csv(folder / f"{name}.csv", *DATA_SETS[name](rng))
    study = folder / f"{name}.toml"
    study.write_text(MINIMAL_STUDY.format(name=name, trials=trials))
    return study


# ---------------------------------------------------------------------------------------------
# Tuning as a user does, and measuring on fresh networks


def sweep(*args: str) -> str:
    """Run the ``sweep`` command line; its stdout, or RuntimeError with its stderr."""
    done = subprocess.run([sys.executable, "-m", "sweep", *args], capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"sweep {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done.stdout


def stored_answer(name: str, storage: str) -> dict:
    """``sweep best NAME --json``: the pick and the value it reports (the race's mean)."""
    return json.loads(sweep("best", name, "--json", "--storage", storage))


def first_fresh(spec) -> int:
    """FIRST_FRESH rounded up to a whole partition, so fresh networks start a fresh one."""
    block = block_size(spec)
    return -(-FIRST_FRESH // block) * block


def grid(spec, learning_rates: int, momenta: int | None) -> list[tuple[float, float]]:
    """The dense grid over the study's own ranges: ``learning_rates`` points (log-spaced when
    the study's range is), and momenta low, low + 0.1, ... and high (``momenta`` None) or
    ``momenta`` evenly spread points. A fixed parameter keeps its one value."""
    rates = dataclasses.replace(spec.learning_rate, values=None, points=learning_rates).grid()
    mu = spec.momentum
    if mu.fixed is not None:
        steps = (mu.fixed,)
    elif momenta is None:
        steps = (*np.arange(mu.low, mu.high - 1e-9, 0.1), mu.high)
    else:
        steps = dataclasses.replace(mu, values=None, points=momenta).grid()
    return [(float(lr), float(m)) for m in steps for lr in rates]


def measure(spec, answer: dict, learning_rates: int, momenta: int | None,
            fresh: int = FRESH) -> dict:
    """The pick and every grid cell on the same ``fresh`` networks, and the criterion's
    figures."""
    networks = RaceNetworks(spec)
    first = first_fresh(spec)
    pick = (answer["learning_rate"], answer["momentum"])
    long_run = networks.train([pick], first, max(fresh, LONG_RUN))
    picked = {name: values[:, :fresh] for name, values in long_run.items()}
    cells = grid(spec, learning_rates, momenta)
    # A few large batches (one per few momenta) keep memory modest and the kernel's batches big.
    values, failed = [], []
    for start in range(0, len(cells), 96):
        trained = networks.train(cells[start:start + 96], first, fresh)
        values.append(trained["value"])
        failed.append(trained["failed"])
    values, failed = np.vstack(values), np.vstack(failed)
    # Only cells none of whose networks failed compete, as the race allows no failure.
    means = np.full(len(cells), np.inf)
    clean = ~failed.any(axis=1)
    means[clean] = values[clean].mean(axis=1)
    best = int(np.argmin(means))
    # As the race reports its pick: the mean over the networks that did not fail.
    ok = ~picked["failed"][0]
    fresh_failures = int((~ok).sum())
    fresh_mean = float(picked["value"][0][ok].mean()) if ok.any() else math.nan
    reported = float(answer["value"])
    long_ok = ~long_run["failed"][0]
    return {
        "rows": len(networks.table.y),
        "pick": pick,
        "confirmed": bool(answer.get("confirmed")),
        "reported": reported,
        "fresh_mean": fresh_mean,
        "fresh_failures": fresh_failures,
        "fresh_networks": (first, first + fresh - 1),
        "grid_cells": len(cells),
        "grid_best": cells[best] if math.isfinite(means[best]) else (math.nan, math.nan),
        "grid_mean": float(means[best]),
        "ratio": fresh_mean / float(means[best]),
        "report_error": abs(reported - fresh_mean) / fresh_mean,
        "long_run_mean": float(long_run["value"][0][long_ok].mean()) if long_ok.any()
        else math.nan,
        "long_run_failures": int((~long_ok).sum()),
    }


def passes(row: dict) -> bool:
    return (row["ratio"] <= RATIO_LIMIT and row["fresh_failures"] == 0
            and row["report_error"] <= REPORT_LIMIT)


# ---------------------------------------------------------------------------------------------
# The table


def _verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def print_table(rows: list[dict], fresh: int) -> None:
    print(f"\nThe pick on {fresh} fresh networks against a dense grid on the same networks "
          f"(ratio pass <= {RATIO_LIMIT:.2f}; report pass <= {REPORT_LIMIT:.0%})")
    head = (f"{'data set':<22}{'rows':>5}  {'pick lr':>8} {'mom':>5}  {'reported':>8}  "
            f"{'fresh':>8} {'fails':>5}  {'grid lr':>8} {'mom':>5} {'mean':>8}  "
            f"{'fresh/grid':>13}  {'|rep-fr|/fr':>14}  {'200 fresh':>9} {'fails':>5}  "
            f"{'seconds':>7}")
    print(head)
    print("-" * len(head))
    for row in rows:
        (lr, mu), (grid_lr, grid_mu) = row["pick"], row["grid_best"]
        print(
            f"{row['name']:<22}{row['rows']:>5}  {lr:>8.3g} {mu:>5.2f}  {row['reported']:>8.4f}  "
            f"{row['fresh_mean']:>8.4f} {row['fresh_failures']:>5d}  {grid_lr:>8.3g} "
            f"{grid_mu:>5.2f} {row['grid_mean']:>8.4f}  "
            f"{row['ratio']:>8.3f} {_verdict(row['ratio'] <= RATIO_LIMIT):>4}  "
            f"{row['report_error']:>8.1%} {_verdict(row['report_error'] <= REPORT_LIMIT):>5}  "
            f"{row['long_run_mean']:>9.4f} {row['long_run_failures']:>5d}  {row['seconds']:>7.1f}"
        )
    held = sum(passes(row) for row in rows)
    print(f"The answer held (all three conditions) on {held} of {len(rows)} data sets. "
          f"'200 fresh': the pick on {LONG_RUN} fresh networks (the {fresh} above first), its "
          "mean over many partitions.")


# ---------------------------------------------------------------------------------------------


def run_generated(folder: Path, names, trials: int, learning_rates: int,
                  momenta: int | None, fresh: int) -> list[dict]:
    storage = f"sqlite:///{folder / 'answers.db'}"
    rows = []
    for name in names:
        start = time.perf_counter()
        study = write_study(folder, name, trials)
        print(f"{name}: tuning ({trials} trials) ...", file=sys.stderr, flush=True)
        sweep("run", str(study), "--storage", storage)
        answer = stored_answer(name, storage)
        print(f"{name}: measuring the pick and the grid ...", file=sys.stderr, flush=True)
        row = measure(load_study(study), answer, learning_rates, momenta, fresh)
        rows.append({"name": name, **row, "seconds": time.perf_counter() - start})
    return rows


def run_stored(names, storage: str, learning_rates: int, momenta: int | None,
               fresh: int) -> list[dict]:
    rows = []
    for name in names:
        start = time.perf_counter()
        path = Path(name) if name.endswith(".toml") else STUDY_FOLDER / f"{name}.toml"
        spec = load_study(path)
        answer = stored_answer(spec.name, storage)
        row = measure(spec, answer, learning_rates, momenta, fresh)
        rows.append({"name": spec.name, **row, "seconds": time.perf_counter() - start})
    return rows


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m sweep.bench_answers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path,
                        help="folder for the CSVs, study files and answers.db (default: "
                             f"{DEFAULT_OUT}, emptied first)")
    parser.add_argument("--quick", action="store_true",
                        help="seconds: 30 trials, the two small data sets, a 6 x 4 grid")
    parser.add_argument("--studies", nargs="+", metavar="NAME",
                        help="measure these stored studies instead (names of studies/*.toml, "
                             "or study file paths); needs --storage")
    parser.add_argument("--storage", help="the storage URL holding --studies")
    args = parser.parse_args(argv)
    learning_rates, momenta = (6, 4) if args.quick else (24, None)
    if args.studies:
        if not args.storage:
            parser.error("--studies needs --storage")
        rows = run_stored(args.studies, args.storage, learning_rates, momenta, FRESH)
    else:
        out = args.out
        if out is None:
            out = DEFAULT_OUT
            shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
        names = QUICK_DATA_SETS if args.quick else tuple(DATA_SETS)
        rows = run_generated(out, names, 30 if args.quick else 200, learning_rates,
                             momenta, FRESH)
    print_table(rows, FRESH)
    return rows


if __name__ == "__main__":
    main()
