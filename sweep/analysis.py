"""Analysis of stored trials: pure functions from TrialRecords to plain data.

Nothing here draws, writes files or talks to Optuna. Each plot in :mod:`sweep.plots` first asks
this module for a small record (the curves to draw, the landscape's points or grid cells, the
momentum-versus-none pair) and then only draws it, so the tests check these records and not
pixels. Intervals are percentile-bootstrap intervals of the mean, which stay inside the
quantity's own range (a loss or a count of epochs never gets a negative bound).

Conventions: epochs are 1-based (epoch e is the curve's entry e - 1); "reached the target"
means a validation loss <= the target loss; an objective value is lower-is-better.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .records import TrialRecord, epochs_to_target, objective_value

# States whose trial trained at least one epoch and stored its curves.
TRAINED_STATES = ("complete", "pruned", "diverged")


# ---------------------------------------------------------------------------------------------
# Picking trials


def completed(records: Iterable[TrialRecord]) -> list[TrialRecord]:
    """The COMPLETE trials with a finite objective value and stored curves, in trial-number
    order (a study another tool wrote into the storage has values but no curves)."""
    return [
        r
        for r in records
        if r.state == "complete"
        and r.value is not None
        and math.isfinite(r.value)
        and len(r.val_loss)
    ]


def top_trials(records: Iterable[TrialRecord], k: int) -> list[TrialRecord]:
    """The ``k`` best COMPLETE trials, best first (ties: lower trial number first)."""
    return sorted(completed(records), key=lambda r: (r.value, r.number))[: max(k, 0)]


def best_trial(records: Iterable[TrialRecord]) -> TrialRecord | None:
    """The COMPLETE trial with the lowest objective value, or None when there is none.

    Pruned, diverged, failed and running trials never count, whatever value they hold.
    """
    best = top_trials(records, 1)
    return best[0] if best else None


def state_counts(records: Iterable[TrialRecord]) -> dict[str, int]:
    """How many trials are in each state; every state is present, 0 when none."""
    counts = dict.fromkeys(("complete", "pruned", "diverged", "failed", "running"), 0)
    for record in records:
        counts[record.state] = counts.get(record.state, 0) + 1
    return counts


def _last(values: np.ndarray) -> float:
    return float(values[-1]) if len(values) else math.nan


# ---------------------------------------------------------------------------------------------
# Tables


TRIAL_COLUMNS = (
    "number",
    "state",
    "learning_rate",
    "momentum",
    "seed",
    "value",
    "baseline",
    "diverged_epoch",
    "stopped_epoch",
    "epochs_trained",
    "final_val_loss",
    "final_val_accuracy",
)
CURVE_COLUMNS = ("number", "epoch", "train_loss", "val_loss", "val_accuracy")


def records_frames(records: Sequence[TrialRecord]):
    """(trials, curves) as pandas frames.

    trials: one row per trial with ``TRIAL_COLUMNS``; ``final_*`` are the last epoch trained
    (NaN when nothing was trained), ``diverged_epoch``/``stopped_epoch`` are nullable integers.
    curves: long format, one row per (trial, epoch trained) with ``CURVE_COLUMNS``.
    """
    import pandas as pd  # only `sweep export` needs frames: the rest loads faster without it

    trials = pd.DataFrame(
        [
            {
                "number": r.number,
                "state": r.state,
                "learning_rate": r.learning_rate,
                "momentum": r.momentum,
                "seed": r.seed,
                "value": math.nan if r.value is None else r.value,
                "baseline": r.baseline,
                "diverged_epoch": r.diverged_epoch,
                "stopped_epoch": r.stopped_epoch,
                "epochs_trained": len(r.val_loss),
                "final_val_loss": _last(r.val_loss),
                "final_val_accuracy": _last(r.val_accuracy),
            }
            for r in records
        ],
        columns=list(TRIAL_COLUMNS),
    )
    for column in ("diverged_epoch", "stopped_epoch"):
        trials[column] = trials[column].astype("Int64")
    pieces = [
        pd.DataFrame(
            {
                "number": r.number,
                "epoch": np.arange(1, len(r.val_loss) + 1),
                "train_loss": r.train_loss[: len(r.val_loss)],
                "val_loss": r.val_loss,
                "val_accuracy": r.val_accuracy[: len(r.val_loss)],
            }
        )
        for r in records
        if len(r.val_loss)
    ]
    curves = (
        pd.concat(pieces, ignore_index=True)
        if pieces
        else pd.DataFrame(columns=list(CURVE_COLUMNS))
    )
    return trials, curves


# ---------------------------------------------------------------------------------------------
# Curves


@dataclass(frozen=True)
class Curve:
    """One trial's validation-loss curve as the curves plot draws it.

    ``epochs``/``val_loss`` stop at the divergence epoch for a diverged trial. ``rank`` is 1 for
    the best trial, up to ``top`` for the highlighted ones, None for the rest. ``diverged_loss``
    is the validation loss at the divergence epoch when it is finite (None: draw the mark at the
    top of the axes).
    """

    number: int
    state: str
    learning_rate: float
    momentum: float
    epochs: np.ndarray
    val_loss: np.ndarray
    rank: int | None
    diverged_epoch: int | None
    diverged_loss: float | None


def curves(records: Sequence[TrialRecord], top: int = 5) -> list[Curve]:
    """Every trained trial's curve, the ``top`` best COMPLETE trials ranked, in trial order."""
    ranks = {r.number: i + 1 for i, r in enumerate(top_trials(records, top))}
    out = []
    for r in records:
        if r.state not in TRAINED_STATES or not len(r.val_loss):
            continue
        n = len(r.val_loss)
        if r.diverged_epoch:
            n = min(n, r.diverged_epoch)
        loss = np.asarray(r.val_loss[:n], dtype=float)
        diverged_loss = None
        if r.diverged_epoch and n == r.diverged_epoch and math.isfinite(loss[-1]):
            diverged_loss = float(loss[-1])
        out.append(
            Curve(
                number=r.number,
                state=r.state,
                learning_rate=r.learning_rate,
                momentum=r.momentum,
                epochs=np.arange(1, n + 1),
                val_loss=loss,
                rank=ranks.get(r.number),
                diverged_epoch=r.diverged_epoch,
                diverged_loss=diverged_loss,
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# Landscape


@dataclass(frozen=True)
class LandscapePoint:
    """One trial's place on the learning-rate x momentum plane."""

    number: int
    state: str
    learning_rate: float
    momentum: float
    value: float | None  # the objective, COMPLETE trials only

    @property
    def log10_learning_rate(self) -> float:
        return math.log10(self.learning_rate)


def landscape_points(records: Iterable[TrialRecord]) -> list[LandscapePoint]:
    """Every trained trial with a positive, finite learning rate and a finite momentum."""
    points = []
    for r in records:
        if r.state not in TRAINED_STATES:
            continue
        if not (
            math.isfinite(r.learning_rate) and r.learning_rate > 0 and math.isfinite(r.momentum)
        ):
            continue
        value = (
            r.value
            if r.state == "complete" and r.value is not None and math.isfinite(r.value)
            else None
        )
        points.append(LandscapePoint(r.number, r.state, r.learning_rate, r.momentum, value))
    return points


def _edges(centres: np.ndarray, half_width_alone: float) -> np.ndarray:
    """Cell edges around sorted centres: midpoints inside, half a step beyond each end."""
    if len(centres) == 1:
        return np.array([centres[0] - half_width_alone, centres[0] + half_width_alone])
    middle = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[2 * centres[0] - middle[0]], middle, [2 * centres[-1] - middle[-1]]])


@dataclass(frozen=True)
class GridLandscape:
    """A grid study as cells: row i is ``momenta[i]``, column j is ``learning_rates[j]``.

    ``value`` holds the objective of COMPLETE cells and NaN elsewhere; ``state`` holds each
    cell's trial state ("" when no trial sits there yet); ``trial`` the trial number (-1: none).
    ``log10_learning_rate_edges`` and ``momentum_edges`` bound the cells for pcolormesh: midway
    between grid points, half a step beyond the end points (momentum edges clipped to [0, 1]).
    """

    learning_rates: np.ndarray
    momenta: np.ndarray
    log10_learning_rate_edges: np.ndarray
    momentum_edges: np.ndarray
    value: np.ndarray
    state: np.ndarray
    trial: np.ndarray

    @property
    def diverged(self) -> np.ndarray:
        return self.state == "diverged"


def grid_landscape(
    records: Iterable[TrialRecord], learning_rates: Sequence[float], momenta: Sequence[float]
) -> GridLandscape:
    """Place each trained trial in the grid cell of its nearest grid point.

    learning_rates, momenta: the grid's points (any order; learning rates > 0). A trial further
    than half a cell from every point is not a grid trial and is left out. Two trials in one
    cell (a retry): the COMPLETE one with the lower value wins, then the later one.
    """
    lr_axis = np.log10(np.sort(np.asarray(learning_rates, dtype=float)))
    m_axis = np.sort(np.asarray(momenta, dtype=float))
    lr_edges = _edges(lr_axis, 0.5)
    # Momentum lives in [0, 1): the end cells stop at its bounds rather than run past them.
    m_edges = np.clip(_edges(m_axis, 0.05), 0.0, 1.0)
    shape = (len(m_axis), len(lr_axis))
    value = np.full(shape, np.nan)
    state = np.full(shape, "", dtype=object)
    trial = np.full(shape, -1, dtype=int)
    for p in landscape_points(records):
        x = p.log10_learning_rate
        j = int(np.argmin(np.abs(lr_axis - x)))
        i = int(np.argmin(np.abs(m_axis - p.momentum)))
        if not (lr_edges[j] <= x <= lr_edges[j + 1] and m_edges[i] <= p.momentum <= m_edges[i + 1]):
            continue
        held = value[i, j]
        if trial[i, j] >= 0 and not math.isnan(held) and (p.value is None or p.value >= held):
            continue  # a COMPLETE trial at least as good already holds the cell
        value[i, j] = np.nan if p.value is None else p.value
        state[i, j] = p.state
        trial[i, j] = p.number
    return GridLandscape(
        learning_rates=10**lr_axis,
        momenta=m_axis,
        log10_learning_rate_edges=lr_edges,
        momentum_edges=m_edges,
        value=value,
        state=state.astype(str),
        trial=trial,
    )


def colour_limits(values: Iterable[float], quantiles=(0.05, 0.95)) -> tuple[float, float] | None:
    """(low, high) for a logarithmic colour scale over positive objective values.

    The ``quantiles`` of the values (on a log scale), so that neither a lucky low value nor a
    few far-off ones (near-divergent settings) squash the rest into one colour: the values
    outside are clipped to the end colours. None when no value is positive.
    """
    finite = np.array([v for v in values if v is not None and math.isfinite(v) and v > 0])
    if not len(finite):
        return None
    low, high = (float(np.exp(q)) for q in np.quantile(np.log(finite), quantiles))
    if high <= low * 1.0001:
        high = low * 1.1
    return low, high


# ---------------------------------------------------------------------------------------------
# Momentum against none


@dataclass(frozen=True)
class ComparedTrial:
    """One side of the momentum-versus-none comparison: a trial and the study it comes from."""

    study: str
    record: TrialRecord
    epochs_to_target: int | None  # first epoch with validation loss <= target; None: not reached
    train_epochs_to_target: int | None  # the same for the training loss
    final_val_loss: float


@dataclass(frozen=True)
class MomentumComparison:
    """The best momentum trial beside the best no-momentum (momentum 0) trial.

    Either side may be None: a study with momentum fixed at 0 and no comparable study has no
    momentum trial; a study without a momentum-0 trial and no comparable study has no plain one.
    """

    target_loss: float
    momentum: ComparedTrial | None
    no_momentum: ComparedTrial | None


def _compared(found: tuple[str, TrialRecord] | None, target_loss: float) -> ComparedTrial | None:
    if found is None:
        return None
    study, record = found
    return ComparedTrial(
        study,
        record,
        epochs_to_target(record.val_loss, target_loss),
        epochs_to_target(record.train_loss, target_loss),
        _last(record.val_loss),
    )


def _best_of(
    sources: Sequence[tuple[str, Sequence[TrialRecord]]], keep
) -> tuple[str, TrialRecord] | None:
    """The best COMPLETE trial passing ``keep`` over several studies; ties go to the earlier one."""
    found = [
        (best, i, name)
        for i, (name, records) in enumerate(sources)
        if (best := best_trial(r for r in records if keep(r))) is not None
    ]
    if not found:
        return None
    best, _, name = min(found, key=lambda f: (f[0].value, f[1]))
    return name, best


# A momentum-0 side counts as tuned when its study tried plain SGD at this many learning rates
# (a grid's momentum-0 row, a learning-rate-only study); one baseline trial is not tuned.
MIN_TUNED_LEARNING_RATES = 4


def tuned_without_momentum(records: Sequence[TrialRecord]) -> bool:
    """Whether a study's momentum-0 COMPLETE trials tuned the learning rate: at least
    ``MIN_TUNED_LEARNING_RATES`` distinct learning rates."""
    rates = {r.learning_rate for r in completed(records) if r.momentum == 0}
    return len(rates) >= MIN_TUNED_LEARNING_RATES


def compare_momentum(
    study: str,
    records: Sequence[TrialRecord],
    target_loss: float,
    comparable: Sequence[tuple[str, Sequence[TrialRecord]]] = (),
) -> MomentumComparison:
    """Pick the two settings to compare, tuned against tuned, and the epochs each needs to reach
    ``target_loss``.

    comparable: (study name, records) of other studies on the same data, network, epochs,
    objective and folds, whose values rank with this study's.

    Momentum side: this study's best COMPLETE trial with momentum > 0 (its answer); when it has
    none (momentum fixed at 0), the best such trial of the comparable studies.
    No-momentum side: the best COMPLETE momentum-0 trial among the studies (this one and the
    comparable ones) that tuned plain SGD's learning rate (:func:`tuned_without_momentum`).
    Never a single untuned trial: without a tuned side it is None, and the plot says so.
    """
    own = [(study, records)]
    with_momentum = _best_of(own, lambda r: r.momentum > 0) or _best_of(
        comparable, lambda r: r.momentum > 0
    )
    tuned = [(name, rs) for name, rs in [*own, *comparable] if tuned_without_momentum(rs)]
    without = _best_of(tuned, lambda r: r.momentum == 0)
    return MomentumComparison(
        target_loss, _compared(with_momentum, target_loss), _compared(without, target_loss)
    )


# ---------------------------------------------------------------------------------------------
# Statistics


@dataclass(frozen=True)
class Interval:
    """A sample mean with its two-sided confidence interval (see :func:`mean_interval`).

    n = 1: the bounds are NaN (one value says nothing about spread); n = 0: all NaN.
    """

    mean: float
    low: float
    high: float
    n: int
    confidence: float = 0.95


INTERVAL_METHOD = "95% percentile-bootstrap interval of the mean (2,000 resamples)"
BOOTSTRAP_RESAMPLES = 2000


def mean_interval(values: Iterable[float], confidence: float = 0.95) -> Interval:
    """Mean of ``values`` with its percentile-bootstrap ``confidence`` interval.

    Resampling the values with replacement (a fixed seed, so the same values give the same
    bounds) and taking the quantiles of the resampled means: the bounds lie between the smallest
    and the largest value, so a positive quantity (a loss, a count of epochs) never gets a
    negative bound, as the Student-t interval gives small skewed samples.
    """
    x = np.asarray(list(values), dtype=float)
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, confidence)
    mean = float(x.mean())
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1, confidence)
    rng = np.random.default_rng(0)
    means = x[rng.integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    # A resample of one value repeated averages to it give or take a rounding: clip to the
    # sample's range, so the bounds never leave it.
    low, high = max(low, x.min()), min(high, x.max())
    return Interval(mean, float(min(low, mean)), float(max(high, mean)), n, confidence)


# ---------------------------------------------------------------------------------------------
# Confirmation on fresh seeds


@dataclass(frozen=True)
class RobustCandidate:
    """One of the search's top settings re-trained on fresh seeds.

    ``objective`` is over the fresh networks (none diverged, else it is all NaN: a setting that
    diverges on a fresh seed is not confirmed). ``epochs_to_target`` is over the networks that
    reached the target only; ``reached`` says how many of ``seeds`` did. ``optimism`` is how far
    the search's own figure (``search_value``) undercut the fresh mean, as a fraction of it.
    """

    number: int
    learning_rate: float
    momentum: float
    seeds: int
    search_value: float
    objective: Interval
    epochs_to_target: Interval
    reached: int
    diverged: int

    @property
    def optimism(self) -> float:
        return (self.objective.mean - self.search_value) / self.objective.mean


def robust_candidates(
    trials: Sequence[TrialRecord],
    val_loss: np.ndarray,
    diverged_epoch: np.ndarray,
    objective,
) -> list[RobustCandidate]:
    """Summarise the re-training of ``trials`` (the search's top settings, in its order).

    val_loss: (K, S, epochs) validation curves of trial k's s-th fresh network (NaN after
    divergence). diverged_epoch: (K, S), 0 where the network did not diverge. objective: the
    study's ``ObjectiveSpec`` (name, target_loss). The order stays the search's: this confirms
    its ranking (and says how optimistic it was), it does not pick again.
    """
    val_loss = np.asarray(val_loss, dtype=float)
    out = []
    for k, trial in enumerate(trials):
        diverged = int(np.count_nonzero(diverged_epoch[k]))
        curves = [] if diverged else list(val_loss[k])
        reached = [epochs_to_target(curve, objective.target_loss) for curve in curves]
        out.append(
            RobustCandidate(
                number=trial.number,
                learning_rate=trial.learning_rate,
                momentum=trial.momentum,
                seeds=val_loss.shape[1],
                search_value=float(trial.value),
                objective=mean_interval([objective_value(objective, c) for c in curves]),
                epochs_to_target=mean_interval([e for e in reached if e is not None]),
                reached=sum(e is not None for e in reached),
                diverged=diverged,
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# Where the answer lies in its search range


EDGE_FRACTION = 0.05


def edge_warnings(spec, learning_rate: float, momentum: float) -> list[str]:
    """One sentence per searched parameter whose chosen value lies within ``EDGE_FRACTION`` of
    its search range from a bound (on the range's own scale: logarithmic for a log range).

    Momentum 0 is no edge: it is the end of momentum itself, and the answer "no momentum" is
    an answer. spec: the study's ``StudySpec``.
    """
    warnings = []
    for name, value in (("learning_rate", learning_rate), ("momentum", momentum)):
        param = spec.searched().get(name)
        if param is None or not math.isfinite(value) or param.high <= param.low:
            continue
        scale = math.log if param.log else float
        position = (scale(value) - scale(param.low)) / (scale(param.high) - scale(param.low))
        label = name.replace("_", " ")
        if position <= EDGE_FRACTION and not (name == "momentum" and param.low == 0):
            bound = "lower"
        elif position >= 1 - EDGE_FRACTION:
            bound = "upper"
        else:
            continue
        warnings.append(
            f"the chosen {label} {value:.4g} lies at the {bound} edge of its search range "
            f"[{param.low:g}, {param.high:g}]: widen the range and search again"
        )
    return warnings
