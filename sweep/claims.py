"""The article's five claims about momentum, answered from stored trials and diagnostics.

Pure analysis: stored :class:`~sweep.records.TrialRecord`s and
:class:`~sweep.diagnostics.Diagnostics` in, plain records and sentences out. Every sentence is
generated from the numbers it states, with a 95 % percentile-bootstrap interval of the mean over
the trials' networks (:func:`sweep.stats.mean_interval`); where an interval does not rule out
"no effect", the sentence says the data shows none.

The claims ("Neural Network Momentum", the seed article):

1. speed: "during the early part of training, momentum just moves you faster";
2. the momentum term fades: "the update delta values become very small so the momentum becomes
   small";
3. "an adaptive learning rate, and one that varies for different weights";
4. speed "with a reduced risk of oscillating";
5. "the momentum factor is a free parameter and you have to use trial and error".
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .analysis import completed
from .diagnostics import MEDIAN, QUANTILES, Diagnostics
from .records import TrialRecord, epochs_to_target
from .rules import get_rule
from .stats import Interval, mean_interval

CHECKPOINTS = (5, 10, 20)
# The first and last tenth of training: "early" and "late" for claim 2.
PHASE_SHARE = 0.1
# Weights' effective steps "vary" when the middle half of them spans more than this fraction
# of the median: a stated threshold, so the sentence can say which side the data fell on.
VARIES_SPREAD = 0.1


@dataclass(frozen=True)
class Answer:
    """One claim's answer: its number (1-5), a short title, and the generated sentences."""

    claim: int
    title: str
    sentences: tuple[str, ...]


def _fmt(value: float, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}g}"


def interval_text(interval: Interval, digits: int = 3) -> str:
    """'0.12 (95 % interval 0.10 to 0.14, n = 5)'; one value has no interval."""
    if interval.n == 0:
        return "no value"
    if interval.n == 1 or not math.isfinite(interval.low):
        return f"{_fmt(interval.mean, digits)} (one network, no interval)"
    return (
        f"{_fmt(interval.mean, digits)} (95 % interval {_fmt(interval.low, digits)} to "
        f"{_fmt(interval.high, digits)}, n = {interval.n})"
    )


def excludes_zero(interval: Interval) -> bool:
    """Whether the interval lies wholly on one side of 0 (needs at least two values)."""
    return interval.n >= 2 and (interval.low > 0 or interval.high < 0)


def _setting(record: TrialRecord) -> str:
    return f"learning rate {_fmt(record.learning_rate)}, momentum {_fmt(record.momentum, 2)}"


# ---------------------------------------------------------------------------------------------
# Claim 1: speed


@dataclass(frozen=True)
class Measure:
    """One quantity on both sides: each side's values per network, paired by fold or not."""

    name: str
    momentum: np.ndarray
    none: np.ndarray
    paired: bool

    @property
    def difference(self) -> Interval:
        """Momentum minus none: the interval of the mean per-pair difference when paired, else
        of the difference of the two means, each side resampled on its own."""
        if self.paired:
            return mean_interval(self.momentum - self.none)
        return difference_interval(self.momentum, self.none)


def difference_interval(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> Interval:
    """mean(a) - mean(b) with a percentile-bootstrap interval, a and b resampled independently
    (fixed seed, as :func:`sweep.stats.mean_interval`)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    n = min(len(a), len(b))
    mean = float(a.mean() - b.mean()) if n else math.nan
    if n < 2:
        return Interval(mean, math.nan, math.nan, n, confidence)
    rng = np.random.default_rng(0)
    resamples = 2000
    drawn = (a[rng.integers(0, len(a), (resamples, len(a)))].mean(axis=1)
             - b[rng.integers(0, len(b), (resamples, len(b)))].mean(axis=1))
    tail = (1 - confidence) / 2
    low, high = np.quantile(drawn, [tail, 1 - tail])
    return Interval(mean, float(min(low, mean)), float(max(high, mean)), n, confidence)


def _network_rows(record: TrialRecord, curve: str) -> tuple[list[tuple[int, int]], np.ndarray]:
    """(fold, repeat) keys and the (n, epochs) curves of a trial's networks."""
    if record.networks is None:
        return [(0, 0)], np.asarray(getattr(record, curve), dtype=float)[None]
    seen: Counter = Counter()
    keys = []
    for fold in record.networks.folds:
        keys.append((fold, seen[fold]))
        seen[fold] += 1
    return keys, np.asarray(getattr(record.networks, curve), dtype=float)


def _paired_rows(momentum: TrialRecord, none: TrialRecord):
    """Each side's val-loss rows, in matching order when both trials' networks cover the same
    folds (paired), else as they are (unpaired)."""
    keys_m, rows_m = _network_rows(momentum, "val_loss")
    keys_n, rows_n = _network_rows(none, "val_loss")
    common = [k for k in keys_m if k in set(keys_n)]
    if len(common) >= 2:
        return (rows_m[[keys_m.index(k) for k in common]],
                rows_n[[keys_n.index(k) for k in common]], True)
    return rows_m, rows_n, False


def _paired_values(momentum: TrialRecord, none: TrialRecord):
    """Each side's per-network objective values, paired as :func:`_paired_rows` pairs."""
    keys_m, keys_n = _network_rows(momentum, "val_loss")[0], _network_rows(none, "val_loss")[0]
    values_m, values_n = momentum.network_values, none.network_values
    common = [k for k in keys_m if k in set(keys_n)]
    if len(common) >= 2:
        return (values_m[[keys_m.index(k) for k in common]],
                values_n[[keys_n.index(k) for k in common]], True)
    return values_m, values_n, False


def _reach(rows: np.ndarray, target: float) -> np.ndarray:
    """Epochs to reach ``target`` per row; a row that never does counts as epochs + 1."""
    return np.array([epochs_to_target(r, target) or rows.shape[1] + 1 for r in rows], float)


@dataclass(frozen=True)
class Speed:
    """Claim 1's measurements: tuned momentum against tuned plain SGD, network by network."""

    momentum: TrialRecord
    none: TrialRecord
    target_loss: float
    measures: tuple[Measure, ...]
    never_reached: tuple[int, int]  # networks that never reached the target: momentum, none


def speed(momentum: TrialRecord, none: TrialRecord, target_loss: float,
          checkpoints: Sequence[int] = CHECKPOINTS) -> Speed:
    """Epochs to ``target_loss`` and the validation loss after each checkpoint epoch (those
    within both trials' epochs), and at the end, per network of each trial."""
    rows_m, rows_n, paired = _paired_rows(momentum, none)
    measures = [Measure("epochs to target", _reach(rows_m, target_loss),
                        _reach(rows_n, target_loss), paired)]
    epochs = min(rows_m.shape[1], rows_n.shape[1])
    for epoch in checkpoints:
        if epoch <= epochs:
            measures.append(Measure(f"loss after {epoch} epochs", rows_m[:, epoch - 1],
                                    rows_n[:, epoch - 1], paired))
    measures.append(Measure(f"loss after {epochs} epochs (the end)", rows_m[:, epochs - 1],
                            rows_n[:, epochs - 1], paired))
    values_m, values_n, paired_values = _paired_values(momentum, none)
    if not np.array_equal(values_m, measures[-1].momentum):  # final_val_loss: said already
        measures.append(Measure("the study's objective (what the search ranked by)",
                                values_m, values_n, paired_values))
    never = (int(np.sum(_reach(rows_m, target_loss) > rows_m.shape[1])),
             int(np.sum(_reach(rows_n, target_loss) > rows_n.shape[1])))
    return Speed(momentum, none, target_loss, tuple(measures), never)


def compare_sentence(measure: Measure, unit: str = "", digits: int = 3) -> str:
    """One sentence comparing momentum with none on ``measure``: which side is lower and by how
    much, with the interval of the difference; or that the data shows no difference."""
    m, n, d = mean_interval(measure.momentum), mean_interval(measure.none), measure.difference
    how = ("paired over the same folds" if measure.paired
           else "unpaired (the trials' networks do not share folds)")
    head = (f"{measure.name.capitalize()}: momentum {interval_text(m, digits)}{unit} against "
            f"no momentum {interval_text(n, digits)}{unit}")
    if not excludes_zero(d):
        return (f"{head}; the difference, {interval_text(d, digits)}{unit}, {how}, includes 0: "
                f"the data shows no difference.")
    side = "lower" if d.mean < 0 else "higher"
    return (f"{head}: momentum is {side} by {_fmt(abs(d.mean), digits)}{unit} "
            f"(difference {interval_text(d, digits)}, {how}).")


def speed_answer(result: Speed) -> Answer:
    lead = (f"Tuned momentum ({_setting(result.momentum)}) against tuned plain SGD "
            f"({_setting(result.none)}), each at its own best learning rate; target validation "
            f"loss {_fmt(result.target_loss)}.")
    sentences = [lead]
    for measure in result.measures:
        sentences.append(compare_sentence(measure, " epochs" if "epochs to" in measure.name
                                          else ""))
    if any(result.never_reached):
        sentences.append(
            f"Networks that never reached the target count as one epoch past the end: "
            f"{result.never_reached[0]} with momentum, {result.never_reached[1]} without.")
    return Answer(1, "Does momentum move you faster early on?", tuple(sentences))


# ---------------------------------------------------------------------------------------------
# Claims 2 and 3: the updates, from diagnostics


def _phase_means(diagnostics: Diagnostics, name: str, column: int) -> tuple[float, float]:
    """A diagnostic's quantile ``column`` averaged over the first and the last PHASE_SHARE of
    the epochs the network trained."""
    values = getattr(diagnostics, name)[:, column]
    values = values[np.isfinite(values)]
    span = max(1, int(round(len(values) * PHASE_SHARE)))
    return float(np.mean(values[:span])), float(np.mean(values[-span:]))


def fading_answer(diagnostics: Sequence[Diagnostics]) -> Answer:
    """Claim 2 from networks trained at one setting: the momentum share and the update size,
    early against late."""
    title = "Does the momentum term become small near convergence?"
    if not diagnostics:
        return Answer(2, title, ("No diagnostics were recorded for this study.",))
    shares = np.array([_phase_means(d, "momentum_share", MEDIAN) for d in diagnostics])
    sizes = np.array([_phase_means(d, "update_size", MEDIAN) for d in diagnostics])
    early, late = mean_interval(shares[:, 0]), mean_interval(shares[:, 1])
    change = mean_interval(shares[:, 1] - shares[:, 0])
    shrink = mean_interval(sizes[:, 1] / sizes[:, 0])
    carried = mean_interval(sizes[:, 1] * shares[:, 1] / (sizes[:, 0] * shares[:, 0]))
    first = diagnostics[0]
    sentences = [
        f"At {_setting_of(first)}, the median weight's momentum share of its updates was "
        f"{interval_text(early)} over the first tenth of training and {interval_text(late)} "
        f"over the last tenth."
    ]
    if excludes_zero(change):
        sentences.append(f"The share {'fell' if change.mean < 0 else 'rose'} by "
                         f"{_fmt(abs(change.mean))} (change {interval_text(change)}).")
    else:
        sentences.append(f"The share did not change measurably (change "
                         f"{interval_text(change)}): the momentum term stays the same fraction "
                         f"of each update.")
    if shrink.n >= 2 and shrink.high < 1:
        sentences.append(
            f"The updates themselves shrank to {interval_text(shrink)} of their early size, "
            f"and the momentum term's absolute size to {interval_text(carried)}: it becomes "
            f"small because every update does, not because its share falls."
            if not (excludes_zero(change) and change.mean < 0) else
            f"The updates themselves shrank to {interval_text(shrink)} of their early size, "
            f"and the momentum term's absolute size to {interval_text(carried)}.")
    elif shrink.n >= 2 and shrink.low > 1:
        sentences.append(f"The median update grew rather than shrank: late size over early size "
                         f"{interval_text(shrink)}; at a constant learning rate each item's "
                         f"gradient stays noisy, so the momentum term does not fade.")
    else:
        sentences.append(f"The median update did not shrink measurably: late size over early "
                         f"size {interval_text(shrink)}; at a constant learning rate each item's "
                         f"gradient stays noisy, so the momentum term does not fade.")
    return Answer(2, title, tuple(sentences))


def _setting_of(diagnostics: Diagnostics) -> str:
    return (f"{diagnostics.rule} rule, learning rate {_fmt(diagnostics.learning_rate)}, momentum "
            f"{_fmt(diagnostics.momentum, 2)} ({len(QUANTILES)} quantiles across weights, per "
            f"epoch)")


def step_answer(diagnostics: Sequence[Diagnostics]) -> Answer:
    """Claim 3: the effective step per weight as a distribution, beside the rule's bound and
    the other rules' bound."""
    title = "Is momentum an adaptive learning rate that varies across weights?"
    if not diagnostics:
        return Answer(3, title, ("No diagnostics were recorded for this study.",))
    first = diagnostics[0]
    mu = first.momentum

    def over_epochs(column):
        return mean_interval([float(np.nanmean(d.effective_step[:, column]))
                              for d in diagnostics])

    low, median, high = (over_epochs(QUANTILES.index(q)) for q in (0.25, 0.5, 0.75))
    top = over_epochs(len(QUANTILES) - 1)
    spread = mean_interval([float(np.nanmean(
        (d.effective_step[:, QUANTILES.index(0.75)] - d.effective_step[:, QUANTILES.index(0.25)])
        / d.effective_step[:, MEDIAN])) for d in diagnostics])
    own, article, velocity = first.bound, 1 + mu, 1 / (1 - mu)
    sentences = [
        f"At {_setting_of(first)}, a weight's path over an epoch was {interval_text(median)} "
        f"times plain SGD's for the median weight; the quartiles across weights were "
        f"{_fmt(low.mean)} and {_fmt(high.mean)}, the 95th percentile {_fmt(top.mean)}.",
        f"Bounds: 1 + momentum = {_fmt(article)} for the article's rule (one previous step), "
        f"1 / (1 - momentum) = {_fmt(velocity)} for heavy ball and Nesterov (a geometric sum); "
        f"this rule's is {_fmt(own)}, and its median weight reached "
        f"{_fmt(100 * median.mean / own, 3)} % of it.",
    ]
    if spread.n >= 1 and spread.mean > VARIES_SPREAD:
        sentences.append(
            f"It varies across weights: the middle half spans {interval_text(spread)} of the "
            f"median (more than {_fmt(VARIES_SPREAD)}), so momentum does act as a per-weight "
            f"learning rate, larger where a weight's gradient keeps its sign.")
    else:
        sentences.append(
            f"It barely varies across weights: the middle half spans {interval_text(spread)} of "
            f"the median (at most {_fmt(VARIES_SPREAD)}), so momentum acts as one larger "
            f"learning rate, not a per-weight one.")
    return Answer(3, title, tuple(sentences))


# ---------------------------------------------------------------------------------------------
# Claim 4: stability


@dataclass(frozen=True)
class Boundary:
    """At one momentum, the grid's largest learning rate below every diverged one, and the
    smallest diverged one (None when nothing diverged, or nothing below it stayed stable)."""

    momentum: float
    largest_stable: float | None
    first_diverged: float | None


def stability_boundary(cells: Iterable[tuple[float, float, bool]]) -> list[Boundary]:
    """From grid cells (learning rate, momentum, diverged), the stability boundary per
    momentum, in increasing momentum."""
    by_momentum: dict[float, list[tuple[float, bool]]] = {}
    for learning_rate, momentum, diverged in cells:
        by_momentum.setdefault(float(momentum), []).append((float(learning_rate), bool(diverged)))
    boundaries = []
    for momentum in sorted(by_momentum):
        cells_here = sorted(by_momentum[momentum])
        diverged = [lr for lr, bad in cells_here if bad]
        first = min(diverged) if diverged else None
        stable = [lr for lr, bad in cells_here if not bad and (first is None or lr < first)]
        boundaries.append(Boundary(momentum, max(stable) if stable else None, first))
    return boundaries


def grid_cells(records: Sequence[TrialRecord]) -> list[tuple[float, float, bool]]:
    """(learning rate, momentum, diverged) of a study's finished trials."""
    return [(r.learning_rate, r.momentum, r.state == "diverged") for r in records
            if r.state in ("complete", "diverged")]


def predicted_boundary(rule: str, stable_at_zero: float, momentum: float) -> float:
    """The effective-learning-rate theory: training stays stable while the effective rate,
    learning rate * (1 + momentum) for the article's rule and learning rate / (1 - momentum)
    for heavy ball and Nesterov, stays below plain SGD's largest stable rate."""
    return stable_at_zero / get_rule(rule).effective_factor(momentum)


def stability_answer(rule: str, boundaries: Sequence[Boundary]) -> Answer:
    title = "Does momentum reduce the risk of oscillating (diverging)?"
    zero = next((b for b in boundaries if b.momentum == 0), None)
    if zero is None or len(boundaries) < 2:
        return Answer(4, title, ("This study is not a grid with a momentum-0 row: no boundary.",))
    if zero.first_diverged is None:
        return Answer(4, title, (
            f"Nothing diverged at momentum 0 up to learning rate {_fmt(zero.largest_stable)}: "
            f"the grid does not reach the boundary, so it says nothing about stability.",))
    last = boundaries[-1]
    sentences = [
        f"At momentum 0 the largest stable learning rate was {_fmt(zero.largest_stable)} "
        f"(diverged from {_fmt(zero.first_diverged)}); at momentum {_fmt(last.momentum, 2)} it "
        f"was {_fmt(last.largest_stable)} (diverged from {_fmt(last.first_diverged)}); the grid's "
        f"spacing is the interval."
    ]
    if last.first_diverged is not None and last.first_diverged <= (zero.largest_stable or 0):
        sentences.append(
            "Momentum made training diverge at smaller learning rates: at a fixed learning "
            "rate it raises the risk of oscillating, the opposite of the claim; it can only "
            "reduce it by letting a smaller learning rate do the same work.")
    elif last.largest_stable is not None and last.largest_stable >= zero.first_diverged:
        sentences.append("Momentum let training stay stable at larger learning rates.")
    else:
        sentences.append("The grid shows no shift of the boundary with momentum.")
    agree, total = 0, 0
    for b in boundaries:
        if b.momentum == 0 or b.first_diverged is None or zero.largest_stable is None:
            continue
        total += 1
        predicted = predicted_boundary(rule, zero.largest_stable, b.momentum)
        upper = predicted_boundary(rule, zero.first_diverged, b.momentum)
        lower_measured = b.largest_stable or 0.0
        # Theory and grid agree when their brackets overlap.
        agree += int(predicted <= b.first_diverged and upper >= lower_measured)
    if total:
        sentences.append(
            f"The effective-rate theory for the {rule} rule ({get_rule(rule).effective_formula} "
            f"below plain SGD's limit) matched the grid's bracket at "
            f"{agree} of {total} momenta with a boundary.")
    return Answer(4, title, tuple(sentences))


# ---------------------------------------------------------------------------------------------
# Claim 5: how free the parameter is


@dataclass(frozen=True)
class FreeRange:
    """At one learning rate: the best trial's interval, and the momenta whose trials' means
    lie within it (at or below its upper bound)."""

    learning_rate: float
    best: TrialRecord
    interval: Interval
    momenta: tuple[float, ...]  # all the momenta tried at this learning rate
    within: tuple[float, ...]


def free_ranges(records: Sequence[TrialRecord]) -> list[FreeRange]:
    """Per learning rate with at least two COMPLETE trials of different momentum (a grid's
    rows), the range of momentum within the interval of that row's best."""
    rows: dict[float, list[TrialRecord]] = {}
    for record in completed(records):
        rows.setdefault(record.learning_rate, []).append(record)
    found = []
    for learning_rate in sorted(rows):
        row = rows[learning_rate]
        if len({r.momentum for r in row}) < 2:
            continue
        best = min(row, key=lambda r: r.value)
        interval = mean_interval(best.network_values)
        ceiling = interval.high if math.isfinite(interval.high) else interval.mean
        within = tuple(sorted(r.momentum for r in row if r.value <= ceiling))
        found.append(FreeRange(learning_rate, best, interval,
                               tuple(sorted(r.momentum for r in row)), within))
    return found


def freedom_answer(records: Sequence[TrialRecord]) -> Answer:
    """Claim 5: at each learning rate (grid) or over the whole search (others), the momenta
    that score within the interval of the best."""
    title = "Is momentum a free parameter that needs trial and error?"
    done = completed(records)
    if not done:
        return Answer(5, title, ("No completed trials.",))
    best = min(done, key=lambda r: r.value)
    interval = mean_interval(best.network_values)
    ceiling = interval.high if math.isfinite(interval.high) else interval.mean
    near = [r for r in done if r.value <= ceiling]
    momenta = [r.momentum for r in near]
    tried = [r.momentum for r in done]
    sentences = [
        f"The best trial ({_setting(best)}) scored {interval_text(interval, 4)}; "
        f"{len(near)} of {len(done)} completed trials scored within that interval, with "
        f"momentum from {_fmt(min(momenta), 2)} to {_fmt(max(momenta), 2)} (tried "
        f"{_fmt(min(tried), 2)} to {_fmt(max(tried), 2)}) and learning rates from "
        f"{_fmt(min(r.learning_rate for r in near))} to {_fmt(max(r.learning_rate for r in near))}."
    ]
    rows = free_ranges(records)
    own_row = next((f for f in rows if f.learning_rate == best.learning_rate), None)
    if own_row is not None:
        width = max(own_row.within) - min(own_row.within)
        span = max(own_row.momenta) - min(own_row.momenta)
        sentences.append(
            f"At the best learning rate, {len(own_row.within)} of {len(own_row.momenta)} "
            f"momenta tried scored within the best's interval, from "
            f"{_fmt(min(own_row.within), 2)} to {_fmt(max(own_row.within), 2)}.")
        if span > 0 and width >= 0.5 * span:
            sentences.append("So at a tuned learning rate momentum is nearly free: most of its "
                             "range does as well as the best, within the noise.")
        else:
            sentences.append("So momentum does need tuning: only a narrow band of it does as "
                             "well as the best, within the noise.")
        widest = max(rows, key=lambda f: (max(f.within) - min(f.within), -f.learning_rate))
        sentences.append(
            f"Over the grid's learning rates the widest such band was at learning rate "
            f"{_fmt(widest.learning_rate)} (momentum {_fmt(min(widest.within), 2)} to "
            f"{_fmt(max(widest.within), 2)}); the learning rate and momentum trade off, so the "
            f"search is over the pair, not momentum alone.")
    return Answer(5, title, tuple(sentences))
