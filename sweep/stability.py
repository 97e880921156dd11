"""Where training blows up, per momentum, measured on fresh networks beside two predictions.

A network *blows up* when the trainer's divergence test fires (training loss above
5 ln(classes), or not finite; :mod:`sweep.train`). That is what is measured here, not
oscillation. Per momentum, the *blow-up learning rate* is where half the networks blow up: the
median, over networks, of each network's own threshold (the smallest learning rate at which it
blew up).

Two predictions are set beside it, each scaled by the measured momentum-0 boundary b0:

- the effective-step rule: a rule at (learning rate, momentum) moves like plain SGD at the
  learning rate x the rule's ``effective_factor`` (1 + momentum for the article's rule,
  1 / (1 - momentum) for heavy ball and Nesterov), so it should blow up where that product
  reaches b0: ``b0 / effective_factor(momentum)``;
- the rule's linear-stability bound on a quadratic: its 2 x 2 iteration on
  ``curvature * w**2 / 2`` stays bounded while learning rate x curvature is below
  ``linear_stability_limit(momentum)``, so ``b0 * limit(momentum) / limit(0)``.

:func:`which_fits` says which one the measurement follows where the two differ most.

How it is measured, and why:

- The same networks at every learning rate and momentum (at least 10; fresh seeds, each on its
  own fresh partition of the data, never the search's), so each has a threshold of its own and
  the thresholds are independent draws.
- The boundary is the median of the thresholds, and its interval the span between two order
  statistics: distribution-free, with an exact coverage (1 - 22/1024 = 97.85 % with 10
  networks, :func:`median_ranks`) that needs no model of how the share blowing up grows with
  the learning rate. A scan sees each threshold only to within a bracket; the interval is
  taken from the brackets' outer ends, so its coverage is at least that.
- The scan is coarse, then fine inside each network's own bracket, on one lattice of learning
  rates: a network that stays stable trains every epoch and costs nearly all the time, so the
  scan trains few rates far below the boundary (:func:`find_boundaries`).
- The study's epochs by default: near its threshold a network may blow up only late in
  training, so fewer epochs move the boundary up (by at most one fine step at half the epochs
  on the shipped studies).

:func:`find_boundaries` is the measurement given any way of telling whether network i blows up
at (momentum, learning rate); :func:`measure_boundary` gives it the trainer and a study's data.
Pure but for the training: no Optuna, no files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .confirm import race_network
from .rules import get_rule
from .sources import spec_folds, spec_table
from .train import train_many

# Every learning rate scanned is 2 ** (n / LATTICE_STEPS_PER_OCTAVE) for an integer n, so scans
# nest and a point is the same float whichever pass trained it.
LATTICE_STEPS_PER_OCTAVE = 16  # the fine scan's step: a factor 2 ** (1/16), 4.4 %
COARSE_STEP = 8  # the coarse scan's step in lattice steps: a factor sqrt(2)
# The momentum-0 coarse scan first spans the study's highest searched learning rate / 8 to x 4.
ZERO_SCAN_OCTAVES = (-3, 2)
# The coarse scan at momentum > 0 spans both predictions, widened by this factor either way.
PREDICTION_MARGIN = 2.0
# A coarse scan that leaves a network unbracketed grows on that side by this many coarse steps
# (a factor 4), twice as many each time, at most MAX_EXTENSIONS times (a factor 2**30 in all).
EXTENSION_STEPS = 4
MAX_EXTENSIONS = 4
MIN_NETWORKS = 10
CONFIDENCE = 0.95
# Momenta every rule is measured at; stability_momenta adds where the predictions differ most.
BASE_MOMENTA = (0.0, 0.5, 0.7, 0.9, 0.95, 0.98)
ARITHMETIC = "compiled"

# blows_up(network, momentum, learning_rate) -> bool, each argument an array over cells.
BlowUp = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


# ---------------------------------------------------------------------------------------------
# The median and its distribution-free interval


def median_ranks(networks: int, confidence: float = CONFIDENCE) -> tuple[int, int, float]:
    """(l, u, coverage): the order statistics whose span [T_(l), T_(u)] (1-based) covers the
    median of ``networks`` independent continuous thresholds with probability at least
    ``confidence``, chosen as narrow as possible and symmetric, and that probability exactly:
    P(l <= B <= u - 1) for B ~ Binomial(networks, 1/2), the number of thresholds below the
    median. networks = 10 gives (2, 9, 1 - 22/1024 = 0.9785); 20 gives (6, 15, 0.9586).
    ValueError when no pair reaches ``confidence`` (fewer than 6 networks at 95 %).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    tail = 0.0  # P(B <= l - 1)
    best = None
    for below in range(networks // 2 + 1):  # l = below + 1
        tail += math.comb(networks, below) / 2**networks
        if 1 - 2 * tail < confidence:
            break
        best = (below + 1, networks - below, 1 - 2 * tail)
    if best is None:
        raise ValueError(
            f"{networks} networks cannot give a {confidence:.0%} interval for their median")
    return best


@dataclass(frozen=True)
class Bracket:
    """One network's threshold as a scan resolves it: stable at ``stable`` (0: at no scanned
    rate below), blew up at ``blew_up`` (inf: at no scanned rate), nothing scanned between.
    ``non_monotone``: stable somewhere above ``blew_up``."""

    stable: float
    blew_up: float
    non_monotone: bool

    @property
    def midpoint(self) -> float:
        """The log-midpoint of the bracket; NaN when either end is unknown."""
        if self.stable > 0 and math.isfinite(self.blew_up):
            return math.sqrt(self.stable * self.blew_up)
        return math.nan


def bracket(outcomes: dict[float, bool]) -> Bracket:
    """A network's bracket from its scan, {learning rate: blew up}. The threshold is the
    smallest scanned rate at which it blew up, whatever happened above it."""
    rates = sorted(outcomes)
    blown = [lr for lr in rates if outcomes[lr]]
    if not blown:
        return Bracket(rates[-1] if rates else 0.0, math.inf, False)
    first = blown[0]
    below = [lr for lr in rates if lr < first]
    return Bracket(below[-1] if below else 0.0, first,
                   any(not outcomes[lr] for lr in rates if lr > first))


def median_boundary(brackets: Sequence[Bracket], confidence: float = CONFIDENCE,
                    ) -> tuple[float | None, float | None, float | None, float]:
    """(estimate, low, high, coverage) of the median threshold over ``brackets``.

    estimate: the median of the brackets' log-midpoints (for an even count, the geometric mean
    of the middle two); None if either is unknown. low, high: the l-th smallest ``stable`` end
    and the u-th smallest ``blew_up`` end (:func:`median_ranks`); None where the scan did not
    reach (0 or inf). Since every network's threshold lies in its bracket, the l-th smallest
    threshold is at least the l-th smallest ``stable`` end, and likewise above, so the interval
    covers the median threshold with at least ``coverage`` (exact for the order statistics of
    continuous thresholds; the brackets only widen it, by at most one scan step each side).
    """
    n = len(brackets)
    first, last, coverage = median_ranks(n, confidence)
    order = sorted(_order_key(b) for b in brackets)
    middle = (order[(n - 1) // 2], order[n // 2])
    estimate = (math.sqrt(middle[0] * middle[1])
                if all(0 < key < math.inf for key in middle) else None)
    low = sorted(b.stable for b in brackets)[first - 1]
    high = sorted(b.blew_up for b in brackets)[last - 1]
    return (estimate, low if low > 0 else None, high if math.isfinite(high) else None,
            coverage)


def _order_key(b: Bracket) -> float:
    """Where a bracket sorts among thresholds: its log-midpoint, 0 when censored below, inf
    when censored above."""
    if not math.isfinite(b.blew_up):
        return math.inf
    if b.stable <= 0:
        return 0.0
    return b.midpoint


# ---------------------------------------------------------------------------------------------
# The boundary per momentum and its two predictions


def predictions(rule: str, zero_boundary: float, momentum: float) -> tuple[float, float]:
    """(effective-step prediction, linear-stability prediction) of the blow-up learning rate at
    ``momentum`` for ``rule``, each scaled by the measured momentum-0 boundary ``zero_boundary``
    (> 0): ``b0 / effective_factor(momentum)`` and
    ``b0 * linear_stability_limit(momentum) / linear_stability_limit(0)``."""
    rule_class = get_rule(rule)
    return (zero_boundary / rule_class.effective_factor(momentum),
            zero_boundary * rule_class.linear_stability_limit(momentum)
            / rule_class.linear_stability_limit(0.0))


@dataclass(frozen=True)
class Boundary:
    """The measured blow-up learning rate at one momentum, with its predictions.

    blowup_learning_rate: where half of the networks blew up (the median of their thresholds);
    low, high: its interval, covering with probability at least ``coverage``; None where the
    scan did not reach. effective_step_prediction, linear_prediction: :func:`predictions` from
    the momentum-0 boundary (None without one). brackets: each network's (stable, blew up)
    learning rates, network by network. non_monotone: networks that were stable somewhere above
    their threshold.
    """

    momentum: float
    blowup_learning_rate: float | None
    low: float | None
    high: float | None
    effective_step_prediction: float | None
    linear_prediction: float | None
    coverage: float
    brackets: tuple[Bracket, ...]
    non_monotone: int

    @property
    def networks(self) -> int:
        return len(self.brackets)

    def to_dict(self) -> dict:
        """The fields of ``results/momentum.json``'s ``stability`` entries."""
        return {
            "momentum": self.momentum,
            "blowup_learning_rate": self.blowup_learning_rate,
            "low": self.low,
            "high": self.high,
            "effective_step_prediction": self.effective_step_prediction,
            "linear_prediction": self.linear_prediction,
        }


def stability_momenta(rule: str) -> tuple[float, ...]:
    """The momenta to measure ``rule``'s boundary at: ``BASE_MOMENTA`` (0 and the high momenta
    where heavy ball and Nesterov's predictions part most) and the momentum in [0, 0.98], to
    0.001, where the rule's two predictions differ most (1/3 for the article's rule, where its
    linear bound peaks at 3)."""
    grid = np.round(np.arange(0.0, 0.98 + 1e-9, 0.001), 3)
    separations = [abs(math.log(_separation(rule, float(mu)))) for mu in grid]
    widest = float(grid[int(np.argmax(separations))])
    return tuple(sorted(set(BASE_MOMENTA) | {widest}))


def _separation(rule: str, momentum: float) -> float:
    """How many times larger the linear prediction is than the effective-step one."""
    effective, linear = predictions(rule, 1.0, momentum)
    return linear / effective


def _rate(step: int) -> float:
    """Lattice point ``step``: every learning rate the automatic scan trains."""
    return 2.0 ** (step / LATTICE_STEPS_PER_OCTAVE)


def _step(rate: float) -> int:
    return round(math.log2(rate) * LATTICE_STEPS_PER_OCTAVE)


def _coarse_steps(low: float, high: float) -> list[int]:
    """The coarse lattice points from at or below ``low`` to at or above ``high``."""
    first = math.floor(math.log2(low) * LATTICE_STEPS_PER_OCTAVE / COARSE_STEP) * COARSE_STEP
    last = math.ceil(math.log2(high) * LATTICE_STEPS_PER_OCTAVE / COARSE_STEP) * COARSE_STEP
    return list(range(first, last + 1, COARSE_STEP))


class _Scan:
    """What has been trained: per momentum, per learning rate, each network's outcome
    (1 blew up, 0 did not, -1 not trained)."""

    def __init__(self, networks: int, blows_up: BlowUp):
        self.networks = networks
        self.blows_up = blows_up
        self.outcomes: dict[float, dict[float, np.ndarray]] = {}

    def run(self, cells: list[tuple[int, float, float]]) -> None:
        """Train the (network, momentum, learning rate) ``cells`` not trained yet, together."""
        fresh = sorted({cell for cell in cells if self.outcome(*cell) < 0})
        if not fresh:
            return
        network, momentum, rate = (np.array(column) for column in zip(*fresh))
        blew_up = np.asarray(self.blows_up(network.astype(np.int64), momentum, rate), dtype=bool)
        for (i, mu, lr), value in zip(fresh, blew_up):
            row = self.outcomes.setdefault(mu, {}).setdefault(
                lr, np.full(self.networks, -1, dtype=np.int8))
            row[i] = int(value)

    def outcome(self, network: int, momentum: float, rate: float) -> int:
        row = self.outcomes.get(momentum, {}).get(rate)
        return -1 if row is None else int(row[network])

    def run_everywhere(self, momentum: float, rates: Sequence[float]) -> None:
        self.run([(i, momentum, lr) for lr in rates for i in range(self.networks)])

    def brackets(self, momentum: float) -> list[Bracket]:
        rows = self.outcomes.get(momentum, {})
        return [bracket({lr: bool(row[i]) for lr, row in rows.items() if row[i] >= 0})
                for i in range(self.networks)]

    def extend(self, momenta: Sequence[float]) -> None:
        """Grow each coarse scan of ``momenta`` until every network blew up at some rate and
        was stable at some rate below (at most ``MAX_EXTENSIONS`` rounds, one batch each)."""
        for extension in range(MAX_EXTENSIONS):
            grow = EXTENSION_STEPS * 2**extension
            cells = []
            for mu in momenta:
                steps = sorted(_step(lr) for lr in self.outcomes.get(mu, {}))
                brackets = self.brackets(mu)
                if any(not math.isfinite(b.blew_up) for b in brackets):
                    cells += [(i, mu, _rate(steps[-1] + COARSE_STEP * k))
                              for k in range(1, grow + 1)
                              for i in range(self.networks)]
                if any(b.stable <= 0 for b in brackets):
                    cells += [(i, mu, _rate(steps[0] - COARSE_STEP * k))
                              for k in range(1, grow + 1)
                              for i in range(self.networks)]
            if not cells:
                return
            self.run(cells)

    def refine(self, momenta: Sequence[float]) -> None:
        """Train each network at every lattice point inside its bracket, in one batch."""
        cells = []
        for mu in momenta:
            for i, b in enumerate(self.brackets(mu)):
                if b.stable > 0 and math.isfinite(b.blew_up):
                    cells += [(i, mu, _rate(step))
                              for step in range(_step(b.stable) + 1, _step(b.blew_up))]
        self.run(cells)


def find_boundaries(momenta: Sequence[float], rule: str, blows_up: BlowUp, *,
                    networks: int = MIN_NETWORKS, learning_rates: Sequence[float] | None = None,
                    around: float = 1.0, confidence: float = CONFIDENCE) -> list[Boundary]:
    """The blow-up learning rate at each momentum, from ``blows_up`` (whether network i blows
    up at a momentum and learning rate; arrays over cells in, booleans out; network i must be
    the same network, its seed and data, in every call), with its predictions.

    momenta: in [0, 1); momentum 0 is always measured too (it scales the predictions). Returns
    one :class:`Boundary` per momentum, in increasing momentum.
    rule: a ``sweep.rules`` name, for the predictions. networks: >= ``MIN_NETWORKS``.
    learning_rates: scan exactly these (> 0) at every momentum, in one batch; None (default):
    the scan below. around: a learning rate near plain SGD's boundary, where the automatic scan
    starts (a study's highest searched one). confidence: the interval's, in (0, 1).

    The automatic scan trains few rates far below the networks' thresholds, since a network
    that stays stable trains every epoch and costs almost all the time, and it needs three
    batches, each of every cell it can know to ask for; every rate is a point of the lattice
    2 ** (n / 16):

    1. momentum 0, every network at rates sqrt(2) apart from ``around`` / 8 to ``around`` x 4,
       the span grown (by a factor 4, then 16, 256, 65536) where a network did not blow up at
       the top or blew up at the bottom; so b0 to within sqrt(2);
    2. every other momentum the same way, spanning both predictions from that b0 with a factor
       2 to spare either side, in one batch (and one per growth, if needed);
    3. every network, at every momentum, at each rate 2 ** (1/16) apart strictly inside its
       bracket from 1 and 2, in one batch.

    A network's threshold is the smallest scanned rate at which it blew up. Near its threshold
    whether a network blows up depends on how its item order meets its learning rate, so it
    may be stable again a fine step or two higher (on Iris, about half the networks): it is
    counted in ``non_monotone`` and keeps that smallest rate, so the boundary is
    the learning rate from which a network can blow up. Only scanned rates are seen: the coarse
    ones for every network, the fine ones inside its own bracket.
    """
    if networks < MIN_NETWORKS:
        raise ValueError(f"networks must be at least {MIN_NETWORKS}, got {networks}")
    momenta = sorted({0.0, *(float(mu) for mu in momenta)})
    if any(not 0 <= mu < 1 for mu in momenta):
        raise ValueError(f"every momentum must be in [0, 1), got {momenta}")
    get_rule(rule)
    scan = _Scan(networks, blows_up)
    if learning_rates is not None:
        rates = sorted({float(lr) for lr in learning_rates})
        if not rates or rates[0] <= 0:
            raise ValueError("learning_rates must be one or more rates > 0")
        scan.run([(i, mu, lr) for mu in momenta for lr in rates for i in range(networks)])
    else:
        if not around > 0:
            raise ValueError(f"around must be > 0, got {around}")
        octaves = ZERO_SCAN_OCTAVES
        scan.run_everywhere(0.0, [_rate(s) for s in _coarse_steps(around * 2.0 ** octaves[0],
                                                                   around * 2.0 ** octaves[1])])
        scan.extend([0.0])
        coarse_zero = median_boundary(scan.brackets(0.0), confidence)[0]
        cells = []
        for mu in momenta[1:]:
            if coarse_zero is None:  # no b0 to place by: the momentum-0 span
                rates = sorted(scan.outcomes[0.0])
            else:
                guesses = predictions(rule, coarse_zero, mu)
                rates = [_rate(s) for s in _coarse_steps(min(guesses) / PREDICTION_MARGIN,
                                                         max(guesses) * PREDICTION_MARGIN)]
            cells += [(i, mu, lr) for lr in rates for i in range(networks)]
        scan.run(cells)
        scan.extend(momenta[1:])
        scan.refine(momenta)
    measured = {mu: median_boundary(scan.brackets(mu), confidence) for mu in momenta}
    zero = measured[0.0][0]
    boundaries = []
    for mu in momenta:
        estimate, low, high, coverage = measured[mu]
        brackets = scan.brackets(mu)
        effective, linear = predictions(rule, zero, mu) if zero is not None else (None, None)
        boundaries.append(Boundary(
            momentum=mu, blowup_learning_rate=estimate, low=low, high=high,
            effective_step_prediction=effective, linear_prediction=linear, coverage=coverage,
            brackets=tuple(brackets), non_monotone=sum(b.non_monotone for b in brackets)))
    return boundaries


def stability_networks(spec, networks: int) -> tuple[list, np.ndarray, np.ndarray]:
    """(data sets, each network's position among them, each network's seed) of a study's
    stability networks: network i is the confirmation race's network i x folds + i mod folds
    (``sweep.confirm.race_network``), so each has its own fresh partition of the data (its
    thresholds independent of the others', as the interval needs), a fold of it and a fresh
    seed, none the search used."""
    table = spec_table(spec.data)
    datasets, seeds = [], []
    for i in range(networks):
        partition, fold, seed = race_network(spec, i * spec.folds + i % spec.folds)
        datasets.append(spec_folds(spec.data, spec.folds, table=table,
                                   split_seed=partition)[fold])
        seeds.append(seed)
    return datasets, np.arange(networks), np.array(seeds, dtype=np.int64)


def measure_boundary(spec, momenta: Sequence[float], *, networks: int = MIN_NETWORKS,
                     learning_rates: Sequence[float] | None = None,
                     epochs: int | None = None) -> list[Boundary]:
    """The blow-up learning rate per momentum for a study's setup (``find_boundaries``, whose
    docstring gives the scan), with both predictions.

    spec: a ``StudySpec``: its data, folds, network (hidden units, rule, initialisation) and,
    by default, epochs. momenta: in [0, 1) (0 is added). networks: >= 10, trained at every
    learning rate (``stability_networks``: fresh seeds on fresh partitions, never the
    search's). learning_rates: a fixed scan instead of the automatic one. epochs: >= 1; the
    study's by default, since blow-up near the boundary can take many epochs to show.

    With 10 networks the interval covers the median threshold with probability at least
    1 - 22/1024 = 97.85 % (:func:`median_ranks`). Every batch trains with the compiled kernel.
    """
    epochs = spec.epochs if epochs is None else epochs
    datasets, index, seeds = stability_networks(spec, networks)

    def blows_up(network, momentum, learning_rate):
        batch = train_many(datasets, learning_rate, momentum, seeds[network],
                           dataset_index=index[network], **{**spec.network(), "epochs": epochs},
                           arithmetic=ARITHMETIC)
        return batch.diverged_epoch > 0

    around = spec.learning_rate.fixed or spec.learning_rate.high
    return find_boundaries(momenta, spec.rule, blows_up, networks=networks,
                           learning_rates=learning_rates, around=around)


# ---------------------------------------------------------------------------------------------
# Which prediction the measurement follows

EFFECTIVE = "effective-step"
LINEAR = "linear"
VERDICTS = (EFFECTIVE, LINEAR, "neither", "cannot tell")


@dataclass(frozen=True)
class Judged:
    """The measurement against both predictions at one momentum where they differ.

    separation: the larger prediction over the smaller. effective_ratio, linear_ratio:
    measured / predicted, as (estimate, low, high); the bounds combine the interval at this
    momentum with the momentum-0 one that scales the predictions (low: this low over b0's
    high; high: this high over b0's low), so they cover with probability at least
    1 - (1 - c) - (1 - c0) (95.7 % with 10 networks), and are None where an interval is open.
    effective_inside, linear_inside: whether the prediction lies inside this momentum's
    measured interval. nearer: the prediction the whole ratio interval lies nearer to, on a log
    scale (beyond the geometric midpoint of the two), or None when it reaches past it.
    """

    momentum: float
    separation: float
    effective_ratio: tuple[float | None, float | None, float | None]
    linear_ratio: tuple[float | None, float | None, float | None]
    effective_inside: bool
    linear_inside: bool
    nearer: str | None


@dataclass(frozen=True)
class Fit:
    """Which prediction the measured boundary follows, and the page's sentence for it.

    verdict: one of ``VERDICTS``: "effective-step" or "linear" when the measurement is nearer
    that prediction at every judged momentum, "neither" when it is nearer one at some and the
    other at others, "cannot tell" otherwise. judged: the momenta it is judged at.
    """

    rule: str
    verdict: str
    judged: tuple[Judged, ...]
    sentence: str


def effective_step_name(rule: str) -> str:
    """The effective-step rule, named for what it is."""
    return f"the effective-step rule ({get_rule(rule).effective_formula} below plain SGD's limit)"


LINEAR_NAME = "the rule's linear-stability bound on a quadratic"


def which_fits(boundaries: Sequence[Boundary], rule: str) -> Fit:
    """Which prediction, the effective-step rule or the rule's linear-stability bound, the
    measured blow-up learning rate follows, judged where they differ most.

    boundaries: :func:`measure_boundary`'s, momentum 0 among them. rule: the rule they were
    measured for.

    Judged momenta: those whose two predictions are at least half as far apart, on a log
    scale, as at the momentum where they are furthest apart (for the article's rule about
    0.2-0.5 around 1/3, for heavy ball and Nesterov the highest momenta). At each, the measured
    / predicted ratio's interval (:class:`Judged`) either lies wholly on one prediction's side
    of the geometric midpoint between them, or it does not and that momentum cannot choose.
    The verdict needs every judged momentum to agree; whether each prediction lies inside the
    measured interval is reported beside it.
    """
    by_momentum = {b.momentum: b for b in boundaries}
    zero = by_momentum.get(0.0)
    measured = len(boundaries[0].brackets) if boundaries else 0
    subject = f"the learning rate at which half of {measured} networks blew up"
    effective_name = effective_step_name(rule)
    if zero is None or zero.blowup_learning_rate is None:
        return Fit(rule, "cannot tell", (), (
            f"No momentum-0 boundary was measured (no network blew up in the scan at "
            f"momentum 0), so neither {effective_name} nor {LINEAR_NAME} can be scaled to "
            f"compare with {subject}."))
    candidates = [b for b in boundaries if b.momentum > 0]
    spread = {b.momentum: abs(math.log(_separation(rule, b.momentum))) for b in candidates}
    widest = max(spread.values(), default=0.0)
    if widest < 1e-9:
        return Fit(rule, "cannot tell", (), (
            f"At the momenta measured, {effective_name} and {LINEAR_NAME} predict the same "
            f"blow-up learning rate, so {subject} cannot tell them apart."))
    judged = tuple(_judge(b, zero, rule) for b in candidates if spread[b.momentum] >= widest / 2)
    sides = {j.nearer for j in judged}
    if sides == {EFFECTIVE} or sides == {LINEAR}:
        verdict = sides.pop()
    elif {EFFECTIVE, LINEAR} <= sides:
        verdict = "neither"
    else:
        verdict = "cannot tell"
    return Fit(rule, verdict, judged, _sentence(verdict, judged, effective_name, subject))


def _judge(boundary: Boundary, zero: Boundary, rule: str) -> Judged:
    b0 = zero.blowup_learning_rate
    effective, linear = predictions(rule, b0, boundary.momentum)
    ratio_low = _divide(boundary.low, zero.high)
    ratio_high = _divide(boundary.high, zero.low)
    estimate = _divide(boundary.blowup_learning_rate, b0)
    factors = {EFFECTIVE: effective / b0, LINEAR: linear / b0}
    midpoint = math.sqrt(factors[EFFECTIVE] * factors[LINEAR])
    lower_side = EFFECTIVE if factors[EFFECTIVE] < factors[LINEAR] else LINEAR
    upper_side = LINEAR if lower_side == EFFECTIVE else EFFECTIVE
    nearer = None
    if ratio_high is not None and ratio_high < midpoint:
        nearer = lower_side
    elif ratio_low is not None and ratio_low > midpoint:
        nearer = upper_side

    def ratios(factor):
        return tuple(None if r is None else r / factor for r in (estimate, ratio_low, ratio_high))

    return Judged(
        momentum=boundary.momentum,
        separation=max(effective, linear) / min(effective, linear),
        effective_ratio=ratios(factors[EFFECTIVE]),
        linear_ratio=ratios(factors[LINEAR]),
        effective_inside=_inside(effective, boundary),
        linear_inside=_inside(linear, boundary),
        nearer=nearer,
    )


def _divide(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a / b


def _inside(prediction: float, boundary: Boundary) -> bool:
    low = boundary.low if boundary.low is not None else 0.0
    high = boundary.high if boundary.high is not None else math.inf
    return low <= prediction <= high


def _number(x: float) -> str:
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def _span(values: Sequence[float]) -> str:
    """'0.93' or '0.93 to 1.1', from the smallest to the largest."""
    low, high = _number(min(values)), _number(max(values))
    return low if low == high else f"{low} to {high}"


def _momenta_text(momenta: Sequence[float]) -> str:
    names = [f"{mu:.3g}" for mu in momenta]
    if len(names) == 1:
        return f"momentum {names[0]}"
    return f"momenta {', '.join(names[:-1])} and {names[-1]}"


def _sentence(verdict: str, judged: Sequence[Judged], effective_name: str, subject: str) -> str:
    where = (f"Where the two predictions differ most ({_momenta_text([j.momentum for j in judged])}"
             f", a factor {_span([j.separation for j in judged])} apart)")
    effective_ratios = _span_or_none([j.effective_ratio[0] for j in judged])
    linear_ratios = _span_or_none([j.linear_ratio[0] for j in judged])
    count = len(judged)
    details = (f"measured / predicted is {effective_ratios} for the effective-step rule (its "
               f"prediction inside the measured interval at "
               f"{sum(j.effective_inside for j in judged)} of {count}) and {linear_ratios} for "
               f"the linear bound (inside at {sum(j.linear_inside for j in judged)} of {count})")
    if verdict == EFFECTIVE:
        return f"{where}, {subject} lies nearer {effective_name} than {LINEAR_NAME}: {details}."
    if verdict == LINEAR:
        return f"{where}, {subject} lies nearer {LINEAR_NAME} than {effective_name}: {details}."
    if verdict == "neither":
        return (f"{where}, {subject} lies nearer {effective_name} at some momenta and "
                f"{LINEAR_NAME} at others, so it follows neither: {details}.")
    open_momenta = [j.momentum for j in judged if j.nearer is None]
    return (f"{where}, {subject} cannot tell {effective_name} from {LINEAR_NAME}: its interval "
            f"reaches past the point midway between them at {_momenta_text(open_momenta)}; "
            f"{details}.")


def _span_or_none(values: Sequence[float | None]) -> str:
    known = [v for v in values if v is not None]
    return _span(known) if known else "not measured"
