"""Analysis of stored trials: pure functions from TrialRecords to plain data.

Nothing here draws, writes files or talks to Optuna. Each plot in :mod:`sweep.plots` first asks
this module for a small record (the curves to draw, the landscape's points or grid cells, the
momentum-versus-none pair) and then only draws it, so the tests check these records and not
pixels. Intervals are :mod:`sweep.stats`'.

Conventions: epochs are 1-based (epoch e is the curve's entry e - 1); "reached the target"
means a validation loss <= the target loss; an objective value is lower-is-better.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from .records import TrialRecord, epochs_to_target
from .rules import get_rule

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


def curves(records: Sequence[TrialRecord], top: int = 5, chosen: int | None = None) -> list[Curve]:
    """Every trained trial's curve, in trial order, ``top`` of them ranked: the trial
    ``chosen`` (the study's answer) first when given, then the best COMPLETE trials."""
    ranked = [r.number for r in top_trials(records, top)]
    if chosen is not None:
        ranked = [chosen, *[n for n in ranked if n != chosen]][:top]
    ranks = {number: i + 1 for i, number in enumerate(ranked)}
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


def effective_points(points: Iterable[LandscapePoint], rule: str) -> list[LandscapePoint]:
    """The points with their learning rate replaced by the rule's effective learning rate: the
    landscape in effective-rate coordinates, where momentum that only rescales the learning
    rate leaves the valley upright (the same effective rate at every momentum)."""
    effective = get_rule(rule).effective_rate
    return [replace(p, learning_rate=effective(p.learning_rate, p.momentum)) for p in points]


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
# The answer: one selection for every output


def chosen_trial(records: Iterable[TrialRecord], confirmation: dict | None = None):
    """The trial whose setting the study recommends: the confirmation race's pick when the
    study has a current confirmation (``confirmation``, as ``sweep.confirm`` stores it), else
    the search's best. Every output (``sweep best``, best.json, tuned.toml, the pages and the
    plots' star) names this one."""
    records = list(records)
    pick = (confirmation or {}).get("pick")
    if pick is not None:
        found = next((r for r in records if r.number == pick.get("trial")), None)
        if found is not None:
            return found
    return best_trial(records)


def _plain(value):
    """A JSON-safe number: NaN and infinities become None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def answer(name: str, spec, records: Sequence[TrialRecord], confirmation: dict | None) -> dict:
    """What the study recommends, as ``sweep best --json`` and best.json give it.

    With a current confirmation every figure comes from the race's networks ("confirmed":
    true): the value with its interval, the networks, the failures and their upper bound,
    epochs to target with how many reached it, the equivalent settings. The search's own figure
    is kept apart, under "search", with its optimism. Without one, the search's best is named
    with "confirmed": false and a note saying how to confirm it.
    """
    objective = spec.objective if spec is not None else None
    entry = {
        "study": name,
        "confirmed": False,
        "trial": None,
        "learning_rate": None,
        "momentum": None,
        "rule": spec.rule if spec else None,
        "objective": objective.name if objective else None,
        "target_loss": objective.target_loss if objective else None,
        "epochs": spec.epochs if spec else None,
        "value": None,
    }
    entry["trials"] = state_counts(records)  # the gallery's count, without reading trials
    chosen = chosen_trial(records, confirmation)
    if chosen is None:
        return {**entry, "note": "no completed trials yet"}
    entry.update({
        "trial": chosen.number,
        "learning_rate": _plain(chosen.learning_rate),
        "momentum": _plain(chosen.momentum),
        "edge_warnings": edge_warnings(spec, chosen.learning_rate, chosen.momentum)
        if spec else [],
    })
    pick = (confirmation or {}).get("pick")
    search = {
        "value": _plain(chosen.value),
        "networks": chosen.network_count,
        "note": "the search's own figure for this setting, from the networks it was picked on",
    }
    if pick is None or pick.get("trial") != chosen.number:
        return {**entry, "value": _plain(chosen.value), "networks": chosen.network_count,
                "search": search,
                "note": f"not confirmed on fresh networks: run `sweep confirm {name}`; the "
                        "search's own figure flatters the setting it picks"}
    value = pick["value"]
    epochs = pick.get("epochs_to_target") or {}
    return {
        **entry,
        "confirmed": True,
        "effective_learning_rate": pick.get("effective_rate"),
        "value": value.get("mean"),
        "value_low": value.get("low"),
        "value_high": value.get("high"),
        "networks": pick.get("networks"),
        "interval": confirmation.get("interval"),
        "failures": pick.get("failures"),
        "failure_rate_upper": pick.get("failure_rate_upper"),
        "epochs_to_target": epochs.get("mean"),
        "reached": pick.get("reached"),
        "final_val_loss": pick.get("final_val_loss"),
        "final_val_accuracy": pick.get("final_val_accuracy"),
        "equivalent": confirmation.get("equivalent"),
        "race_networks": confirmation.get("networks"),
        "search": {**search, "optimism": pick.get("optimism")},
    }


# ---------------------------------------------------------------------------------------------
# Where the answer lies in its search range


EDGE_FRACTION = 0.05


def edge_warnings(spec, learning_rate: float, momentum: float) -> list[str]:
    """One sentence per searched parameter whose chosen value lies at an edge of its search
    range: for a grid (``values`` or ``points``), at its first or last grid point; otherwise
    within ``EDGE_FRACTION`` of the range from a bound, on the range's own scale (logarithmic
    for a log range).

    Momentum 0 is no edge: it is the end of momentum itself, and the answer "no momentum" is
    an answer. spec: the study's ``StudySpec``.
    """
    warnings = []
    for name, value in (("learning_rate", learning_rate), ("momentum", momentum)):
        param = spec.searched().get(name)
        if param is None or not math.isfinite(value) or param.high <= param.low:
            continue
        if param.values is not None or param.points is not None:
            grid = param.grid()
            lower, upper = value <= min(grid), value >= max(grid)
        else:
            scale = math.log if param.log else float
            position = ((scale(value) - scale(param.low))
                        / (scale(param.high) - scale(param.low)))
            lower, upper = position <= EDGE_FRACTION, position >= 1 - EDGE_FRACTION
        label = name.replace("_", " ")
        if lower and not (name == "momentum" and param.low == 0):
            bound, key, side = "lower", "low", "smaller"
        elif upper:
            bound, key, side = "upper", "high", "larger"
        else:
            continue
        what = "grid's values" if param.values is not None else "range"
        warnings.append(
            f"the chosen {label} {value:.4g} lies at the {bound} edge of its search {what} "
            f"[{param.low:g}, {param.high:g}]: widen the range and search again (in the study "
            f"file, [search.{name}] with a {side} {key}"
            + (" or more values" if param.values is not None else "")
            + ", under a new study name)"
        )
    return warnings


# ---------------------------------------------------------------------------------------------
# One answer per setup


@dataclass(frozen=True)
class SetupAnswer:
    """The studies of one setup (data set, network, rule, epochs and objective) and the one
    sentence that says which setting to use."""

    setup: str
    studies: tuple[str, ...]
    sentence: str


def setup_key(spec) -> tuple:
    """What must match for two studies' answers to be one question: data set, network, rule,
    epochs, precision, folds and objective."""
    return (spec.data, spec.hidden, spec.init, spec.rule, spec.epochs, spec.precision, spec.folds,
            spec.objective)


def _precision_label(spec) -> str:
    # float64 is every study's unless it says otherwise: only the exception is named.
    return "" if spec.precision == "float64" else f", {spec.precision}"


def setup_answers(studies) -> list[SetupAnswer]:
    """One sentence per setup: the setting to use and those equivalent to it.

    studies: (name, spec, answer, confirmation) per study (``answer`` as best.json holds it).
    Within a setup the confirmed answers are compared on the race networks they share (the
    race's networks depend only on the setup, so they are the same networks): the lowest race
    mean is recommended, and each other study's answer is said to be equivalent or worse by
    the paired interval of its difference.
    """
    from .stats import paired_difference_interval

    groups: dict = {}
    for name, spec, answer, confirmation in studies:
        if spec is None or not answer or answer.get("trial") is None:
            continue
        groups.setdefault(setup_key(spec), []).append((name, spec, answer, confirmation))
    found = []
    for members in groups.values():
        spec = members[0][1]
        setup = (f"{spec.data.describe()}; {spec.hidden} hidden units, {spec.rule} rule, "
                 f"{spec.epochs} epochs{_precision_label(spec)}; {spec.objective.name}")
        confirmed = [m for m in members if m[2].get("confirmed")]
        if not confirmed:
            names = ", ".join(m[0] for m in members)
            found.append(SetupAnswer(setup, tuple(m[0] for m in members),
                                     f"Not confirmed yet: run `sweep confirm` on {names}."))
            continue
        best = min(confirmed, key=lambda m: (m[2]["value"], m[0]))
        answer = best[2]
        sentence = (
            f"Use learning rate {answer['learning_rate']:.3g} with momentum "
            f"{answer['momentum']:.3g} ({best[0]}'s answer: {answer['value']:.4g}, 95% interval "
            f"{answer['value_low']:.4g} to {answer['value_high']:.4g}, on {answer['networks']} "
            f"fresh networks); {answer.get('equivalent', '')}.")
        own = _pick_values(best[3])
        for name, _, other, confirmation in confirmed:
            if name == best[0]:
                continue
            values = _pick_values(confirmation)
            n = min(len(own), len(values))
            if n < 2:
                continue
            difference = paired_difference_interval(values[:n], own[:n])
            verdict = ("worse" if difference.low > 0 else "no worse, as far as "
                       f"{n} shared networks can tell")
            sentence += (
                f" {name}'s answer (learning rate {other['learning_rate']:.3g}, momentum "
                f"{other['momentum']:.3g}) is {verdict}: {difference.mean:+.3g} "
                f"({difference.low:+.3g} to {difference.high:+.3g}).")
        found.append(SetupAnswer(setup, tuple(m[0] for m in members), sentence))
    return found


def _pick_values(confirmation: dict | None) -> np.ndarray:
    """The race values of a confirmation's pick, network by network."""
    pick = (confirmation or {}).get("pick") or {}
    for candidate in (confirmation or {}).get("candidates", []):
        if candidate["trial"] == pick.get("trial"):
            return np.array([np.nan if v is None else v for v in candidate["values"]])
    return np.array([])
