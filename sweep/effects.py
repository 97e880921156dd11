"""What momentum does, measured against the right baseline: plain SGD at the matched learning rate.

Trained one item at a time, momentum at (learning rate, mu) moves like plain SGD at the rule's
effective learning rate (learning rate x (1 + mu) for the article's rule, learning rate / (1 - mu)
for heavy ball and Nesterov: ``Rule.effective_rate``). So "momentum trains faster" may only mean
"a larger learning rate trains faster". Two comparisons tell them apart, each paired (the same
networks: seeds and folds) on a study's race networks (``sweep.confirm``), never the search's:

* **matched**: the study's answer against plain SGD at its effective learning rate, on race
  networks 0 .. n - 1 (the ones that confirmed the answer);
* **tuned**: momentum at the answer's momentum against plain SGD, each with its learning rate
  tuned over the same ``TUNING_POINTS`` learning rates of the study's range (equal selection
  budgets), the best of each chosen on ``SELECTION_NETWORKS`` race networks and compared on
  ``EVALUATION_NETWORKS`` others (selection kept apart from evaluation).

Each comparison gives paired differences (momentum minus SGD) in the study's objective, the final
validation loss, the lowest validation loss and the epochs to the target loss (a network that
never reaches it counts one epoch past the budget), with intervals and two-sided p-values for the
page's multiple-comparison step. Plain data out; the sentences are :mod:`sweep.claims`'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .confirm import MAX_NETWORKS, RaceNetworks
from .rules import get_rule
from .stats import Interval, paired_difference_interval, paired_p_value

TUNING_POINTS = 12
SELECTION_NETWORKS = 20
EVALUATION_NETWORKS = 40
# Race networks the answer was confirmed on come first; the tuned comparison's come after them.
TUNED_FIRST = MAX_NETWORKS
# What is compared, each a per-network figure of RaceNetworks.train (epochs handled apart).
MEASURES = ("objective", "final_loss", "lowest_loss", "epochs")


@dataclass(frozen=True)
class Difference:
    """Momentum minus plain SGD over paired networks: the interval and the two-sided p-value.
    ``baseline`` is plain SGD's mean, which sets the scale of a difference worth reporting."""

    measure: str
    interval: Interval
    p_value: float
    baseline: float

    def to_dict(self) -> dict:
        interval = self.interval.to_dict()
        return {"estimate": interval["mean"], "low": interval["low"], "high": interval["high"],
                "networks": self.interval.n, "p_value": _json(self.p_value),
                "sgd_mean": _json(self.baseline)}


@dataclass(frozen=True)
class Comparison:
    """Momentum at (learning_rate, momentum) against plain SGD at ``sgd_learning_rate``."""

    kind: str  # "matched" or "tuned"
    learning_rate: float
    momentum: float
    sgd_learning_rate: float
    networks: int
    differences: dict  # measure -> Difference
    failures: tuple[int, int]  # networks that failed: momentum's, SGD's

    def to_dict(self) -> dict:
        return {
            "momentum": self.momentum,
            "learning_rate": self.learning_rate,
            "sgd_learning_rate": self.sgd_learning_rate,
            "networks": self.networks,
            "failures": {"momentum": self.failures[0], "sgd": self.failures[1]},
            "objective_difference": self.differences["objective"].to_dict(),
            "final_loss_difference": self.differences["final_loss"].to_dict(),
            "lowest_loss_difference": self.differences["lowest_loss"].to_dict(),
            "epochs_difference": self.differences["epochs"].to_dict(),
        }


def _json(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _figures(trained: dict, row: int, epochs: int) -> dict:
    """Per-network figures of one setting: the objective, final and lowest loss, and epochs to
    target with a network that never reached it counted at epochs + 1 (a failed network's
    figures are NaN)."""
    reached = trained["epochs"][row]
    failed = trained["failed"][row]
    return {
        "objective": trained["value"][row],
        "final_loss": trained["final_loss"][row],
        "lowest_loss": trained["lowest_loss"][row],
        "epochs": np.where(failed, np.nan, np.where(np.isnan(reached), epochs + 1, reached)),
    }


def _compare(kind, learning_rate, momentum, sgd_learning_rate, trained, epochs) -> Comparison:
    """The comparison of row 0 (momentum) against row 1 (SGD) of ``trained``, over the networks
    where neither failed."""
    with_momentum, plain = _figures(trained, 0, epochs), _figures(trained, 1, epochs)
    both = ~(trained["failed"][0] | trained["failed"][1])
    differences = {}
    for measure in MEASURES:
        a, b = with_momentum[measure][both], plain[measure][both]
        if len(a) < 2:  # too few networks where both trained: nothing to compare
            differences[measure] = Difference(
                measure, Interval(math.nan, math.nan, math.nan, len(a)), math.nan, math.nan)
            continue
        differences[measure] = Difference(
            measure, paired_difference_interval(a, b), paired_p_value(a, b, "two-sided"),
            float(np.mean(b)))
    return Comparison(kind, float(learning_rate), float(momentum), float(sgd_learning_rate),
                      int(both.sum()), differences,
                      (int(trained["failed"][0].sum()), int(trained["failed"][1].sum())))


def matched(spec, learning_rate: float, momentum: float,
            networks: int = MAX_NETWORKS) -> Comparison:
    """The setting against plain SGD at its rule's effective learning rate, on race networks
    0 .. networks - 1 (where the study's answer was confirmed)."""
    sgd_rate = get_rule(spec.rule).effective_rate(learning_rate, momentum)
    trained = RaceNetworks(spec).train([(learning_rate, momentum), (sgd_rate, 0.0)], 0, networks)
    return _compare("matched", learning_rate, momentum, sgd_rate, trained, spec.epochs)


def tuned(spec, momentum: float) -> Comparison:
    """Momentum at ``momentum`` against plain SGD, each tuned over the same ``TUNING_POINTS``
    learning rates of the study's range on ``SELECTION_NETWORKS`` race networks, the two winners
    compared on ``EVALUATION_NETWORKS`` race networks neither selection saw."""
    rates = np.geomspace(spec.learning_rate.low, spec.learning_rate.high, TUNING_POINTS)
    if spec.learning_rate.low == spec.learning_rate.high:
        rates = np.array([spec.learning_rate.low])
    race = RaceNetworks(spec)
    settings = [(lr, momentum) for lr in rates] + [(lr, 0.0) for lr in rates]
    selection = race.train(settings, TUNED_FIRST, SELECTION_NETWORKS)
    # A learning rate with a failed selection network is out, as the race rules it out.
    scores = np.full(len(settings), np.inf)
    usable = ~selection["failed"].any(axis=1)
    scores[usable] = selection["value"][usable].mean(axis=1)
    n = len(rates)
    best_momentum, best_sgd = rates[int(np.argmin(scores[:n]))], rates[int(np.argmin(scores[n:]))]
    evaluation = race.train([(best_momentum, momentum), (best_sgd, 0.0)],
                            TUNED_FIRST + SELECTION_NETWORKS, EVALUATION_NETWORKS)
    return _compare("tuned", best_momentum, momentum, best_sgd, evaluation, spec.epochs)
