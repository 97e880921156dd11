"""The confirmation race: re-measure a search's top settings on fresh networks and pick one.

The search's own figure for its best setting is the minimum of many noisy means, so it flatters
the setting it picks, and it may be a lucky split. The race measures the candidates again on
networks the search never saw, in rounds, and drops the clearly worse as evidence accumulates,
after irace's F-race (Birattari et al. 2002: candidates race on the same instances, tests drop
the worse after each round) and SMAC's intensification (a challenger must match the
incumbent on the same seeds and instances before it can replace it).

Everything here is pure: the caller trains the networks through ``measure`` and this module only
decides. It knows nothing of Optuna, storage or the trainer; it imports NumPy and
:mod:`sweep.stats`.

The rules:

- **Rounds.** Every candidate still racing gets the same new networks each round
  (``first_round`` in round 0, ``round_size`` after): network j of the race is the same seed
  and fold for every candidate, so candidates are compared pair by pair and what the fold or
  the seed does to every setting cancels.
- **Failures.** A network that failed (the caller says so: it blew up, or ended worse than
  chance) or has no finite value is a failure of its setting; a candidate with one is dropped
  in that round and can never be picked. A candidate dropped as worse only than candidates
  that have since failed comes back (being worse than a disqualified setting is no reason to
  stay out): it is measured on the networks it missed and races on. Otherwise a fast setting
  that beats the rest and then blows up would leave the race with nothing to pick.
- **Dropping the worse.** After each round every pair of candidates still racing is tested
  with :func:`sweep.stats.paired_p_value` (two-sided, over all their networks so far; the
  smaller one-sided p-value names the worse of the two), the round's p-values are
  Holm-corrected (:func:`sweep.stats.holm`), and a candidate found worse than any other at
  ``alpha`` is dropped. Why every pair and not only each candidate against the current best:
  the best is the lowest of several noisy means, so the others look worse next to it than
  they are: on synthetic races with four equal candidates and a worse one, that way dropped
  an equal one in about a quarter of races, every pair in 7 %, with the same power against
  the worse. Holm over every pair bounds the chance of any false "worse" in a round at
  ``alpha``. Across rounds the repeated looks add to it, which the race accepts as F-race
  does: wrongly dropping a setting that is truly equal costs little, as an equal one stays.
- **Stopping**, checked in this order once the survivors have ``min_failure_free`` networks:
  one candidate remains; a round dropped nobody and brought nobody back (the set stopped
  changing); every candidate has ``max_networks``. Before that minimum the race goes on even
  with one candidate left, so whatever is picked has at least ``min_failure_free`` networks,
  none failed.
- **Picking.** The survivors are the settings the race could not separate (the equivalent
  set). Among them the safety rule applies: take the survivor with the lowest mean, and
  among the survivors whose mean is within one standard error of that mean, pick the lowest
  effective learning rate (the one furthest from blow-up). The standard error is the best
  survivor's own, its networks' standard deviation over sqrt(n) (Breiman's and Hastie,
  Tibshirani and Friedman's one-standard-error rule): a difference smaller than the
  uncertainty of the best figure itself is not worth the extra risk of a faster rate. The
  paired standard error of a difference would be smaller (what the fold does cancels), but
  it measures whether two settings can be told apart, which the race's test has already
  judged; the rule asks a different question, whether the difference is large next to how
  well the best's own figure is known. The pick uses only the race's values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .stats import Interval, failure_upper_bound, holm, mean_interval, paired_p_value

Measure = Callable[[Sequence[int], int, int], tuple[np.ndarray, np.ndarray]]
"""``measure(positions, first_network, networks) -> (values, failed)``.

positions: the candidates (positions in the race's sequence) to measure, in increasing order.
first_network, networks: train the race's networks number ``first_network`` to
``first_network + networks - 1`` for each of them. Race network j is one seed and one fold,
the same for every candidate and never one the search used; the race asks for each
(candidate, network) at most once. A round asks the racing candidates for its new networks;
a candidate that comes back (see the module docstring) is asked for the ones it missed.
values: (len(positions), networks) floats, the objective of each network, lower is better (NaN
allowed for a failed network). failed: (len(positions), networks) bools, True for a network that
failed (blew up, or ended worse than chance).
"""

STOP_ONE_LEFT = "one candidate remains"
STOP_UNCHANGED = "the set stopped changing"
STOP_BUDGET = "the budget is spent"
STOP_ALL_FAILED = "every candidate failed"

DROPPED_FAILURE = "failure"
DROPPED_WORSE = "worse"


@dataclass(frozen=True)
class Candidate:
    """One setting entering the race.

    key: the caller's name for it, e.g. the search trial it came from; unique in a race.
    learning_rate: > 0. momentum: in [0, 1).
    effective_rate: the rule's effective learning rate, computed by the caller (lr * (1 + mu)
        for the article's rule, lr / (1 - mu) for heavy ball and Nesterov); the safety rule
        prefers the lowest.
    """

    key: int
    learning_rate: float
    momentum: float
    effective_rate: float

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "learning_rate": self.learning_rate,
            "momentum": self.momentum,
            "effective_rate": self.effective_rate,
        }


@dataclass(frozen=True)
class Outcome:
    """How one candidate did.

    values: the race's networks in order, this candidate's objective on each as ``measure``
        gave it, NaN where it was not measured (it had been dropped).
    networks: how many it was measured on. failed_networks: the positions in ``values`` of its
        failed networks (failed, or no finite value); failures: how many.
    dropped_round: the round it was dropped in, None if it survived.
    dropped_by: DROPPED_FAILURE, DROPPED_WORSE or None.
    drop_p_value: the Holm-adjusted p-value that dropped it (dropped as worse only: the
        smallest of its rejected tests in that round).
    """

    candidate: Candidate
    values: tuple[float, ...]
    networks: int
    failed_networks: tuple[int, ...]
    dropped_round: int | None
    dropped_by: str | None
    drop_p_value: float | None

    @property
    def failures(self) -> int:
        return len(self.failed_networks)

    @property
    def mean(self) -> float:
        """Mean over its networks; NaN once it has a failure."""
        measured = np.asarray(self.values[: self.networks], dtype=float)
        if self.failures or not len(measured):
            return math.nan
        return float(measured.mean())

    def to_dict(self) -> dict:
        return {
            **self.candidate.to_dict(),
            "values": [_json_float(v) for v in self.values],
            "networks": self.networks,
            "failed_networks": list(self.failed_networks),
            "failures": self.failures,
            "mean": _json_float(self.mean),
            "dropped_round": self.dropped_round,
            "dropped_by": self.dropped_by,
            "drop_p_value": self.drop_p_value,
        }


@dataclass(frozen=True)
class PairTest:
    """One paired comparison of a round: ``worse`` against ``better`` (keys; the side whose
    one-sided p-value is the smaller is called the worse), the two-sided p-value and the
    Holm-adjusted one; ``rejected`` when the adjusted one is <= alpha."""

    worse: int
    better: int
    p_value: float
    adjusted_p_value: float
    rejected: bool

    def to_dict(self) -> dict:
        return {
            "worse": self.worse,
            "better": self.better,
            "p_value": self.p_value,
            "adjusted_p_value": self.adjusted_p_value,
            "rejected": self.rejected,
        }


@dataclass(frozen=True)
class Round:
    """One round: who raced, who was the best after it, the tests and who was dropped.

    index: 0 for the first round. networks: new networks per candidate this round;
    total_networks: per candidate after it. raced: keys measured on the round's new networks.
    revived: keys that came back this round (see the module docstring) and raced on.
    best: the key with the lowest mean after the failures were dropped (None if none was
    left). tests: every pair of the candidates left then. dropped_failed, dropped_worse: keys.
    """

    index: int
    networks: int
    total_networks: int
    raced: tuple[int, ...]
    revived: tuple[int, ...]
    best: int | None
    tests: tuple[PairTest, ...]
    dropped_failed: tuple[int, ...]
    dropped_worse: tuple[int, ...]

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "networks": self.networks,
            "total_networks": self.total_networks,
            "raced": list(self.raced),
            "revived": list(self.revived),
            "best": self.best,
            "tests": [test.to_dict() for test in self.tests],
            "dropped_failed": list(self.dropped_failed),
            "dropped_worse": list(self.dropped_worse),
        }


@dataclass(frozen=True)
class Pick:
    """The race's pick and its figures, all from its race networks.

    value: the mean objective with :func:`sweep.stats.mean_interval`. networks: n.
    failures: 0 (a candidate with one is never picked). failure_rate_upper: the one-sided
    Clopper-Pearson bound on its failure rate from 0 failures in n networks, at
    ``value.confidence``. Epochs to target are the caller's to add: the race sees one value
    per network.
    """

    candidate: Candidate
    value: Interval
    networks: int
    failures: int
    failure_rate_upper: float

    def to_dict(self) -> dict:
        return {
            **self.candidate.to_dict(),
            "value": self.value.to_dict(),
            "networks": self.networks,
            "failures": self.failures,
            "failure_rate_upper": self.failure_rate_upper,
        }


@dataclass(frozen=True)
class RaceResult:
    """Everything the race decided, as plain data.

    outcomes: one per candidate, in the order given. rounds: in order.
    survivors: keys of the candidates still in the race at the end, the equivalent set.
    within_one_se: keys of the survivors within one standard error of the best survivor's
        mean, those the safety rule chose among. pick: None when every candidate failed.
    stop: why the race ended (one of the STOP_ constants). networks_trained: networks over all
    candidates, the race's cost. settings: the race's parameters.
    """

    outcomes: tuple[Outcome, ...]
    rounds: tuple[Round, ...]
    survivors: tuple[int, ...]
    within_one_se: tuple[int, ...]
    pick: Pick | None
    stop: str
    networks_trained: int
    settings: dict

    def outcome(self, key: int) -> Outcome:
        """The outcome of the candidate with this key."""
        for outcome in self.outcomes:
            if outcome.candidate.key == key:
                return outcome
        raise KeyError(key)

    def equivalent_sentence(self) -> str:
        """The equivalent set as one sentence (see :func:`equivalent_sentence`)."""
        return equivalent_sentence([self.outcome(key).candidate for key in self.survivors])

    def to_dict(self) -> dict:
        """JSON-able: lists, numbers, strings and None (for NaN)."""
        return {
            "outcomes": [outcome.to_dict() for outcome in self.outcomes],
            "rounds": [r.to_dict() for r in self.rounds],
            "survivors": list(self.survivors),
            "within_one_se": list(self.within_one_se),
            "pick": None if self.pick is None else self.pick.to_dict(),
            "stop": self.stop,
            "networks_trained": self.networks_trained,
            "settings": dict(self.settings),
            "equivalent": self.equivalent_sentence(),
        }


def _json_float(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def run_race(
    candidates: Sequence[Candidate],
    measure: Measure,
    *,
    first_round: int = 10,
    round_size: int = 10,
    max_networks: int = 40,
    alpha: float = 0.05,
    min_failure_free: int = 20,
) -> RaceResult:
    """Race ``candidates`` on networks ``measure`` trains, and pick one (rules: module docstring).

    candidates: at least one, keys unique.
    measure: trains a round's networks (see :data:`Measure`).
    first_round: networks per candidate in round 0, >= 2 (the paired test needs two).
    round_size: networks per candidate in each later round, >= 1.
    max_networks: the most networks any candidate gets, >= first_round and >= min_failure_free;
        the last round is cut to fit.
    alpha: the family-wise error rate of each round's Holm-corrected tests, in (0, 1).
    min_failure_free: the fewest networks, none failed, a pick must have; >= 1 (issue 21 asks
        for 20, the default).
    """
    candidates = tuple(candidates)
    _check_race(candidates, first_round, round_size, max_networks, alpha, min_failure_free)
    keys = [c.key for c in candidates]
    race = _Standings(candidates, measure, max_networks)
    rounds: list[Round] = []
    done = 0  # networks each candidate still racing has had
    index = 0
    while True:
        size = min(first_round if index == 0 else round_size, max_networks - done)
        raced = tuple(keys[i] for i in race.alive)
        race.measure(race.alive, done + size)
        done += size
        dropped_failed = race.drop_failures(race.alive, index)
        revived, failed_on_return = race.revive(done, index)
        best, tests = race.test_pairs(done, alpha)
        dropped_worse = race.drop_worse(tests, index)
        rounds.append(Round(
            index=index,
            networks=size,
            total_networks=done,
            raced=raced,
            revived=tuple(keys[i] for i in revived),
            best=None if best is None else keys[best],
            tests=tuple(
                PairTest(keys[t.worse], keys[t.better], t.p_value, t.adjusted_p_value, t.rejected)
                for t in tests
            ),
            dropped_failed=tuple(keys[i] for i in sorted(dropped_failed + failed_on_return)),
            dropped_worse=tuple(keys[i] for i in sorted(dropped_worse)),
        ))
        changed = bool(dropped_failed or revived or failed_on_return or dropped_worse)
        stop = _stop(len(race.alive), changed, done, min_failure_free, max_networks)
        if stop:
            break
        index += 1

    chosen, within = _safest(candidates, race.values[:, :done], race.alive)
    pick = None
    if chosen is not None:
        pick = Pick(
            candidate=candidates[chosen],
            value=mean_interval(race.values[chosen, :done]),
            networks=done,
            failures=0,
            failure_rate_upper=failure_upper_bound(0, done),
        )
    return RaceResult(
        outcomes=race.outcomes(done),
        rounds=tuple(rounds),
        survivors=tuple(keys[i] for i in race.alive),
        within_one_se=tuple(keys[i] for i in within),
        pick=pick,
        stop=stop,
        networks_trained=int(race.measured.sum()),
        settings={
            "first_round": first_round,
            "round_size": round_size,
            "max_networks": max_networks,
            "alpha": alpha,
            "min_failure_free": min_failure_free,
        },
    )


class _Standings:
    """The race so far: every candidate's values and failures, who is racing and why the others
    are not. Candidates are positions in the race's tuple here."""

    def __init__(self, candidates: tuple[Candidate, ...], measure: Measure, max_networks: int):
        k = len(candidates)
        self.candidates = candidates
        self._measure = measure
        self.values = np.full((k, max_networks), np.nan)
        self.failed = np.zeros((k, max_networks), dtype=bool)
        self.measured = np.zeros(k, dtype=int)
        self.alive = list(range(k))
        self.dropped_round: list[int | None] = [None] * k
        self.dropped_by: list[str | None] = [None] * k
        self.drop_p: list[float | None] = [None] * k
        # Whom a candidate dropped as worse was found worse than, in the round it was dropped.
        self.beaten_by: list[set[int]] = [set() for _ in range(k)]

    def measure(self, positions: list[int], done: int) -> None:
        """Measure each of ``positions`` on the networks it has not had, up to network ``done``
        (one call per distinct starting network: a returning candidate catches up)."""
        starts: dict[int, list[int]] = {}
        for i in positions:
            starts.setdefault(int(self.measured[i]), []).append(i)
        for start, group in sorted(starts.items()):
            if start >= done:
                continue
            values, failed = _measured(self._measure, tuple(group), start, done - start)
            self.values[group, start:done] = values
            self.failed[group, start:done] = failed | ~np.isfinite(values)
            self.measured[group] = done

    def drop_failures(self, positions: list[int], index: int) -> list[int]:
        """Drop those of ``positions`` with a failed network; returns them."""
        failing = [i for i in positions if self.failed[i, : self.measured[i]].any()]
        for i in failing:
            self.dropped_round[i], self.dropped_by[i], self.drop_p[i] = index, DROPPED_FAILURE, None
        self.alive = [i for i in self.alive if i not in failing]
        return failing

    def revive(self, done: int, index: int) -> tuple[list[int], list[int]]:
        """Bring back every candidate dropped as worse only than candidates that have since
        failed: being worse than a disqualified setting is no reason to stay out. Each catches
        up on the networks it missed; one that fails there is dropped as failed, which may free
        others in turn. Returns (revived and racing, revived and failed)."""
        revived, failed = [], []
        while True:
            back = [
                i for i, why in enumerate(self.dropped_by)
                if why == DROPPED_WORSE
                and all(self.dropped_by[j] == DROPPED_FAILURE for j in self.beaten_by[i])
            ]
            if not back:
                return revived, failed
            for i in back:
                self.dropped_round[i] = self.dropped_by[i] = self.drop_p[i] = None
                self.beaten_by[i] = set()
            self.measure(back, done)
            self.alive = sorted(self.alive + back)
            failing = self.drop_failures(back, index)
            failed += failing
            revived += [i for i in back if i not in failing]

    def test_pairs(self, done: int, alpha: float) -> tuple[int | None, list[PairTest]]:
        """The best racing candidate (lowest mean; ties: the earlier) and every pair's test."""
        if not self.alive:
            return None, []
        means = self.values[self.alive, :done].mean(axis=1)
        best = self.alive[int(np.argmin(means))]
        return best, _pair_tests(self.values[:, :done], self.alive, alpha)

    def drop_worse(self, tests: list[PairTest], index: int) -> list[int]:
        """Drop every candidate a rejected test found worse; returns them."""
        dropped = []
        for test in tests:  # in increasing adjusted p-value: the first rejection drops
            if not test.rejected:
                continue
            if test.worse not in dropped:
                dropped.append(test.worse)
                self.dropped_round[test.worse], self.dropped_by[test.worse] = index, DROPPED_WORSE
                self.drop_p[test.worse] = test.adjusted_p_value
            self.beaten_by[test.worse].add(test.better)
        self.alive = [i for i in self.alive if i not in dropped]
        return dropped

    def outcomes(self, done: int) -> tuple[Outcome, ...]:
        return tuple(
            Outcome(
                candidate=candidate,
                values=tuple(float(v) for v in self.values[i, :done]),
                networks=int(self.measured[i]),
                failed_networks=tuple(int(j) for j in np.flatnonzero(self.failed[i, :done])),
                dropped_round=self.dropped_round[i],
                dropped_by=self.dropped_by[i],
                drop_p_value=self.drop_p[i],
            )
            for i, candidate in enumerate(self.candidates)
        )


def _check_race(candidates, first_round, round_size, max_networks, alpha, min_failure_free):
    if not candidates:
        raise ValueError("a race needs at least one candidate")
    keys = [c.key for c in candidates]
    if len(set(keys)) != len(keys):
        raise ValueError(f"candidate keys must be unique, got {keys}")
    if first_round < 2:
        raise ValueError(
            f"first_round must be at least 2 (a paired test needs two), got {first_round}"
        )
    if round_size < 1:
        raise ValueError(f"round_size must be at least 1, got {round_size}")
    if min_failure_free < 1:
        raise ValueError(f"min_failure_free must be at least 1, got {min_failure_free}")
    if max_networks < max(first_round, min_failure_free):
        raise ValueError(
            f"max_networks ({max_networks}) must be at least first_round ({first_round}) and "
            f"min_failure_free ({min_failure_free})"
        )
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _measured(measure: Measure, alive: tuple[int, ...], first: int, size: int):
    """Call ``measure`` and check what it returns has one row per candidate asked."""
    values, failed = measure(alive, first, size)
    values = np.asarray(values, dtype=float)
    failed = np.asarray(failed)
    expected = (len(alive), size)
    if values.shape != expected or failed.shape != expected:
        raise ValueError(
            f"measure returned values of shape {values.shape} and failed of shape "
            f"{failed.shape} for networks {first} to {first + size - 1}; expected {expected} each"
        )
    if failed.dtype != bool:
        raise ValueError(f"measure's failed must be booleans, got {failed.dtype}")
    return values, failed


def _pair_tests(values: np.ndarray, alive: list[int], alpha: float) -> list[PairTest]:
    """Every pair of ``alive`` (positions) tested and Holm-corrected together; the tests come
    back in increasing order of adjusted p-value, so a candidate's first rejected test is the
    one that drops it. Keys here are positions; the caller maps them."""
    pairs, p_values = [], []
    for n, i in enumerate(alive):
        for j in alive[n + 1:]:
            i_worse = paired_p_value(values[i], values[j], "greater")
            j_worse = paired_p_value(values[j], values[i], "greater")
            pairs.append((i, j) if i_worse <= j_worse else (j, i))
            p_values.append(min(1.0, 2 * min(i_worse, j_worse)))
    if not pairs:
        return []
    adjusted, rejected = holm(p_values, alpha)
    tests = [
        PairTest(worse, better, float(p), float(q), bool(r))
        for (worse, better), p, q, r in zip(pairs, p_values, adjusted, rejected, strict=True)
    ]
    return sorted(tests, key=lambda t: t.adjusted_p_value)


def _stop(alive: int, changed: bool, done: int, min_failure_free: int,
          max_networks: int) -> str | None:
    """Why the race stops after a round, or None to go on."""
    if alive == 0:
        return STOP_ALL_FAILED
    if done >= min_failure_free:
        if alive == 1:
            return STOP_ONE_LEFT
        if not changed:
            return STOP_UNCHANGED
        if done >= max_networks:
            return STOP_BUDGET
    return None


def _safest(candidates, values: np.ndarray, survivors: list[int]):
    """The safety rule: (the picked position or None, the positions it chose among)."""
    if not survivors:
        return None, []
    means = {i: float(values[i].mean()) for i in survivors}
    best = min(survivors, key=lambda i: (means[i], i))
    se = float(values[best].std(ddof=1) / math.sqrt(values.shape[1]))
    within = [i for i in survivors if means[i] <= means[best] + se]
    pick = min(within, key=lambda i: (candidates[i].effective_rate, means[i], i))
    return pick, within


def _figure(x: float) -> str:
    """A number to 3 significant figures, without an exponent for the usual ranges."""
    return f"{x:.3g}"


def _span(low: float, high: float) -> str:
    low_text, high_text = _figure(low), _figure(high)
    return low_text if low_text == high_text else f"{low_text}\u2013{high_text}"


def equivalent_sentence(candidates: Sequence[Candidate]) -> str:
    """The equivalent set as a range sentence, e.g. "learning rate 0.008–0.03 with momentum
    0–0.7 are equivalent here (4 settings, effective learning rate 0.0251–0.0302)".

    The ranges are the smallest and largest of each over the set, to 3 significant figures;
    they bound the set, which is often a ridge along the effective rate rather than the whole
    box, hence the effective-rate range beside them.
    """
    if not candidates:
        return "no setting is left: every candidate failed"
    rates = [c.learning_rate for c in candidates]
    momenta = [c.momentum for c in candidates]
    effective = [c.effective_rate for c in candidates]
    if len(candidates) == 1:
        return (f"learning rate {_figure(rates[0])} with momentum {_figure(momenta[0])} "
                "is the only setting left; no other is equivalent here")
    return (
        f"learning rate {_span(min(rates), max(rates))} with momentum "
        f"{_span(min(momenta), max(momenta))} are equivalent here ({len(candidates)} settings, "
        f"effective learning rate {_span(min(effective), max(effective))})"
    )
