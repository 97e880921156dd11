"""The blow-up boundary per momentum: its interval's coverage, the scan on thresholds we set,
the predictions' formulas, which prediction fits, and the rules' matched rates on a quadratic."""

import dataclasses
import math
import re

import numpy as np
import pytest

from sweep import stability
from sweep.rules import get_rule, rule_names
from sweep.spec import load_study
from sweep.stability import (
    Boundary,
    Bracket,
    find_boundaries,
    measure_boundary,
    median_boundary,
    median_ranks,
    predictions,
    stability_momenta,
    stability_networks,
    which_fits,
)
from sweep.train import train_many

FINE_STEP = 2 ** (1 / stability.LATTICE_STEPS_PER_OCTAVE)


# ---------------------------------------------------------------------------------------------
# The interval and its coverage


def test_ten_networks_give_the_second_and_ninth_thresholds_with_coverage_1_minus_22_over_1024():
    assert median_ranks(10) == (2, 9, pytest.approx(1 - 22 / 1024))
    low, high, coverage = median_ranks(20)
    assert (low, high) == (6, 15)
    assert coverage == pytest.approx(1 - 2 * sum(math.comb(20, k) for k in range(6)) / 2**20)
    assert coverage >= 0.95


def test_too_few_networks_for_a_95_percent_interval_are_refused():
    with pytest.raises(ValueError, match="5 networks"):
        median_ranks(5)
    assert median_ranks(6)[:2] == (1, 6)


def _coverage(thresholds: np.ndarray, true_median: float, scan_step: float | None) -> float:
    """Share of samples (rows of ``thresholds``) whose interval covers ``true_median``, each
    threshold seen exactly (scan_step None) or through a log scan of that step."""
    covered = 0
    for row in thresholds:
        if scan_step is None:
            brackets = [Bracket(t * (1 - 1e-12), t, False) for t in row]
        else:
            ranks = np.ceil(np.log(row) / math.log(scan_step))
            brackets = [Bracket(scan_step ** (k - 1), scan_step**k, False) for k in ranks]
        _, low, high, _ = median_boundary(brackets)
        covered += low <= true_median <= high
    return covered / len(thresholds)


@pytest.mark.parametrize("distribution", ["lognormal", "uniform"])
def test_the_intervals_coverage_at_ten_networks_is_the_stated_one(distribution):
    # Distribution-free: the same exact coverage whatever the thresholds' distribution.
    rng = np.random.default_rng(1)
    samples = 20_000
    if distribution == "lognormal":
        thresholds, true_median = np.exp(rng.normal(0.0, 0.3, (samples, 10))), 1.0
    else:
        thresholds, true_median = rng.uniform(0.5, 2.5, (samples, 10)), 1.5
    stated = median_ranks(10)[2]
    error = 3 * math.sqrt(stated * (1 - stated) / samples)
    assert abs(_coverage(thresholds, true_median, None) - stated) < error
    # Seen through a scan, each threshold only known to lie in its bracket: never less.
    assert _coverage(thresholds, true_median, FINE_STEP) >= stated - error


def test_a_bracket_is_the_first_blow_up_and_the_scanned_rate_below_it():
    b = stability.bracket({0.5: False, 1.0: False, 1.1: True, 1.2: False, 1.3: True})
    assert (b.stable, b.blew_up, b.non_monotone) == (1.0, 1.1, True)
    assert stability.bracket({0.5: True, 1.0: True}) == Bracket(0.0, 0.5, False)
    assert stability.bracket({0.5: False, 1.0: False}) == Bracket(1.0, math.inf, False)


def test_an_unreached_end_leaves_the_interval_open_and_the_median_unknown_when_central():
    censored = [Bracket(1.0, math.inf, False)] * 5 + [Bracket(0.9, 1.0, False)] * 5
    estimate, low, high, _ = median_boundary(censored)
    assert estimate is None and high is None and low == pytest.approx(0.9)


# ---------------------------------------------------------------------------------------------
# The scan, on networks whose thresholds we set


NETWORKS = 10
# Each network's momentum-0 threshold: spread about 1.7 like real networks' (+-15 %).
BASE = 1.7 * np.exp(0.15 * np.random.default_rng(7).standard_normal(NETWORKS))


class Thresholds:
    """A fake trainer: network i blows up at (momentum, lr) when lr >= its threshold there;
    counts the batches and every cell it is asked, to check none is asked twice."""

    def __init__(self, threshold, stable_windows=None):
        self.threshold = threshold  # (network, momentum) -> learning rate
        self.stable_windows = stable_windows or {}  # network -> (low, high) factors of it
        self.batches = 0
        self.asked: list[tuple[int, float, float]] = []

    def __call__(self, network, momentum, learning_rate):
        self.batches += 1
        out = []
        for i, mu, lr in zip(network.tolist(), momentum.tolist(), learning_rate.tolist()):
            self.asked.append((i, mu, lr))
            t = self.threshold(i, mu)
            window = self.stable_windows.get(i)
            quiet = window is not None and t * window[0] < lr < t * window[1]
            out.append(lr >= t and not quiet)
        return np.array(out)


def effective_world(rule):
    return lambda i, mu: BASE[i] / get_rule(rule).effective_factor(mu)


def linear_world(rule):
    limit = get_rule(rule).linear_stability_limit
    return lambda i, mu: BASE[i] * limit(mu) / limit(0.0)


def _true_median(world, momentum):
    return float(np.median([world(i, momentum) for i in range(NETWORKS)]))


@pytest.mark.parametrize("rule", rule_names())
def test_the_scan_finds_each_networks_threshold_and_the_median_in_three_batches(rule):
    world = effective_world(rule)
    trainer = Thresholds(world)
    momenta = stability_momenta(rule)
    boundaries = find_boundaries(momenta, rule, trainer, networks=NETWORKS, around=3.0)
    assert [b.momentum for b in boundaries] == sorted(momenta)
    assert trainer.batches == 3  # momentum 0, the other momenta, the fine steps
    assert len(trainer.asked) == len(set(trainer.asked))
    for b in boundaries:
        for i, (network, bracket) in enumerate(zip(range(NETWORKS), b.brackets)):
            threshold = world(network, b.momentum)
            assert bracket.stable < threshold <= bracket.blew_up
            assert bracket.blew_up / bracket.stable == pytest.approx(FINE_STEP)
        true = _true_median(world, b.momentum)
        assert b.low <= true <= b.high
        assert b.blowup_learning_rate == pytest.approx(true, rel=FINE_STEP - 1)
        assert b.non_monotone == 0 and b.coverage == pytest.approx(1 - 22 / 1024)


def test_a_scan_started_far_from_the_boundary_grows_until_it_brackets_it():
    world = effective_world("heavy-ball")
    for around in (1000.0, 0.001):
        trainer = Thresholds(world)
        boundaries = find_boundaries([0.9], "heavy-ball", trainer, networks=NETWORKS,
                                     around=around)
        assert trainer.batches > 3
        for b in boundaries:
            true = _true_median(world, b.momentum)
            assert b.low <= true <= b.high


def test_a_non_monotone_network_keeps_its_smallest_blow_up_and_is_counted():
    world = effective_world("seed")
    # Network 3 is stable again between 1.5 and 2.2 times its threshold: wide enough to hold a
    # coarse point, which every network is trained at, and leave one below it.
    trainer = Thresholds(world, stable_windows={3: (1.5, 2.2)})
    boundaries = find_boundaries([0.5], "seed", trainer, networks=NETWORKS, around=3.0)
    for b in boundaries:
        assert b.non_monotone == 1
        assert b.brackets[3].stable < world(3, b.momentum) <= b.brackets[3].blew_up


def test_given_learning_rates_are_scanned_at_every_momentum_in_one_batch():
    world = effective_world("seed")
    trainer = Thresholds(world)
    rates = np.geomspace(0.5, 4.0, 40)
    boundaries = find_boundaries([0.5, 0.9], "seed", trainer, networks=NETWORKS,
                                 learning_rates=rates)
    assert trainer.batches == 1
    assert {lr for _, _, lr in trainer.asked} == set(rates.tolist())
    for b in boundaries:
        assert b.low <= _true_median(world, b.momentum) <= b.high


def test_fewer_than_ten_networks_or_a_momentum_of_one_are_refused():
    trainer = Thresholds(effective_world("seed"))
    with pytest.raises(ValueError, match="at least 10"):
        find_boundaries([0.5], "seed", trainer, networks=9)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        find_boundaries([1.0], "seed", trainer, networks=NETWORKS)


# ---------------------------------------------------------------------------------------------
# The predictions and the record


@pytest.mark.parametrize("momentum", [0.0, 0.2, 1 / 3, 0.5, 0.9, 0.98])
def test_predictions_are_the_effective_step_rule_and_the_scaled_linear_bound(momentum):
    b0, mu = 1.7, momentum
    by_hand = {
        "seed": (b0 / (1 + mu), b0 * min([2 / (1 - mu)] + ([1 / mu] if mu else [])) / 2),
        "heavy-ball": (b0 * (1 - mu), b0 * (1 + mu)),
        "nesterov": (b0 * (1 - mu), b0 * (1 + mu) / (1 + 2 * mu)),
    }
    for rule, (effective, linear) in by_hand.items():
        assert predictions(rule, b0, mu) == pytest.approx((effective, linear), rel=1e-12)


def test_each_boundary_carries_its_predictions_from_the_measured_momentum_0_boundary():
    trainer = Thresholds(effective_world("nesterov"))
    boundaries = find_boundaries([0.9, 0.95], "nesterov", trainer, networks=NETWORKS,
                                 around=3.0)
    b0 = boundaries[0].blowup_learning_rate
    for b in boundaries:
        assert (b.effective_step_prediction, b.linear_prediction) == pytest.approx(
            predictions("nesterov", b0, b.momentum))


def test_to_dict_has_exactly_the_fields_momentum_json_asks():
    trainer = Thresholds(effective_world("seed"))
    b = find_boundaries([0.5], "seed", trainer, networks=NETWORKS, around=3.0)[1]
    assert b.to_dict() == {
        "momentum": 0.5, "blowup_learning_rate": b.blowup_learning_rate, "low": b.low,
        "high": b.high, "effective_step_prediction": b.effective_step_prediction,
        "linear_prediction": b.linear_prediction,
    }


def test_the_momenta_include_where_the_predictions_differ_most():
    seed = stability_momenta("seed")
    assert 0.333 in seed and 0.0 in seed and 0.95 in seed
    for rule in ("heavy-ball", "nesterov"):
        assert {0.0, 0.9, 0.95, 0.98} <= set(stability_momenta(rule))


# ---------------------------------------------------------------------------------------------
# Which prediction fits


def _boundary(rule, momentum, measured, b0=1.0, spread=1.05):
    effective, linear = predictions(rule, b0, momentum)
    brackets = (Bracket(measured / spread, measured * spread, False),) * NETWORKS
    return Boundary(momentum, measured, measured / spread, measured * spread, effective, linear,
                    median_ranks(NETWORKS)[2], brackets, 0)


def _constructed(rule, measured_at, spread=1.05):
    """Boundaries at momentum 0 (b0 = 1) and at the rule's momenta, ``measured_at(mu)``."""
    return [_boundary(rule, mu, 1.0 if mu == 0 else measured_at(mu), spread=spread)
            for mu in stability_momenta(rule)]


FORBIDDEN = re.compile(r"theory|oscillat", re.IGNORECASE)


@pytest.mark.parametrize("rule", rule_names())
def test_which_fits_picks_the_prediction_the_boundaries_were_built_on(rule):
    effective = _constructed(rule, lambda mu: predictions(rule, 1.0, mu)[0])
    linear = _constructed(rule, lambda mu: predictions(rule, 1.0, mu)[1])
    for boundaries, expected in ((effective, "effective-step"), (linear, "linear")):
        fit = which_fits(boundaries, rule)
        assert fit.verdict == expected
        assert fit.judged and all(j.nearer == expected for j in fit.judged)
        assert "the effective-step rule (" in fit.sentence
        assert "the rule's linear-stability bound on a quadratic" in fit.sentence
        assert not FORBIDDEN.search(fit.sentence)


def test_which_fits_judges_where_the_predictions_part_most():
    fit = which_fits(_constructed("heavy-ball", lambda mu: 1 - mu), "heavy-ball")
    assert [j.momentum for j in fit.judged] == [0.9, 0.95, 0.98]
    assert fit.judged[-1].separation == pytest.approx(1.98 / 0.02)
    assert all(j.effective_inside and not j.linear_inside for j in fit.judged)
    assert 0.333 in [j.momentum for j in which_fits(
        _constructed("seed", lambda mu: 1 / (1 + mu)), "seed").judged]


def test_which_fits_cannot_tell_when_the_interval_reaches_past_the_midpoint():
    # The measurement halfway (on a log scale) between the predictions, with a wide interval.
    def between(mu):
        return math.sqrt(math.prod(predictions("seed", 1.0, mu)))

    fit = which_fits(_constructed("seed", between, spread=1.3), "seed")
    assert fit.verdict == "cannot tell"
    assert "cannot tell" in fit.sentence and not FORBIDDEN.search(fit.sentence)


def test_which_fits_says_neither_when_momenta_disagree():
    judged = [0.9, 0.95, 0.98]

    def mixed(mu):
        effective, linear = predictions("heavy-ball", 1.0, mu)
        return linear if mu == judged[0] else effective

    fit = which_fits(_constructed("heavy-ball", mixed), "heavy-ball")
    assert fit.verdict == "neither"
    assert "follows neither" in fit.sentence and not FORBIDDEN.search(fit.sentence)


def test_which_fits_without_a_momentum_0_boundary_cannot_scale_the_predictions():
    boundaries = [dataclasses.replace(_boundary("seed", 0.0, 1.0), blowup_learning_rate=None),
                  _boundary("seed", 0.5, 0.7)]
    fit = which_fits(boundaries, "seed")
    assert fit.verdict == "cannot tell" and not FORBIDDEN.search(fit.sentence)


# ---------------------------------------------------------------------------------------------
# Real networks: the boundary is what the trainer does at its bracket's ends


def test_measured_brackets_are_what_the_trainer_gives_those_networks():
    spec = dataclasses.replace(load_study("studies/iris-grid.toml"), epochs=2)
    boundaries = measure_boundary(spec, [0.5], networks=NETWORKS)
    datasets, index, seeds = stability_networks(spec, NETWORKS)
    assert len(set(seeds.tolist())) == NETWORKS
    rates, momenta, expected = [], [], []
    for b in boundaries:
        assert b.low <= b.blowup_learning_rate <= b.high
        for bracket in b.brackets:
            rates += [bracket.stable, bracket.blew_up]
            momenta += [b.momentum] * 2
            expected += [False, True]
    networks = np.tile(np.repeat(np.arange(NETWORKS), 2), len(boundaries))
    batch = train_many(datasets, rates, momenta, seeds[networks], dataset_index=index[networks],
                       hidden=spec.hidden, epochs=2, rule=spec.rule, init=spec.init,
                       arithmetic="compiled")
    assert ((batch.diverged_epoch > 0) == np.array(expected)).all()


# ---------------------------------------------------------------------------------------------
# Matched effective rates on a quadratic


CURVATURES = np.array([0.3, 1.0, 3.0])
EFFECTIVE_TIME = 1.0  # steps x effective learning rate


def _losses_after(rule, momentum, effective_rate, matched=True):
    """Losses on quadratics of CURVATURES after EFFECTIVE_TIME / effective_rate steps: the
    rule at learning rate effective_rate / its factor (through its own ``scalar_step``), and
    plain SGD at effective_rate (or, unmatched, at the rule's own learning rate)."""
    rule_class = get_rule(rule)
    learning_rate = effective_rate / rule_class.effective_factor(momentum)
    sgd_rate = effective_rate if matched else learning_rate
    weight, memory, sgd_weight = np.ones(3), np.zeros(3), np.ones(3)
    for _ in range(round(EFFECTIVE_TIME / effective_rate)):
        sgd_step = -learning_rate * CURVATURES * weight
        weight, memory = rule_class.scalar_step(weight, memory, sgd_step, momentum)
        sgd_weight = sgd_weight - sgd_rate * CURVATURES * sgd_weight
    return CURVATURES * weight**2 / 2, CURVATURES * sgd_weight**2 / 2


@pytest.mark.parametrize("rule", rule_names())
@pytest.mark.parametrize("momentum", [0.3, 0.9])
def test_on_a_quadratic_each_rule_and_sgd_at_the_matched_rate_reach_the_same_loss_as_lr_goes_to_0(
        rule, momentum):
    gaps = []
    for effective_rate in (1e-2, 1e-3, 1e-4):
        rule_loss, sgd_loss = _losses_after(rule, momentum, effective_rate)
        gaps.append(float(np.max(np.abs(rule_loss / sgd_loss - 1))))
    # First order in the learning rate: each tenfold smaller rate shrinks the gap about tenfold.
    assert gaps[0] > 5 * gaps[1] > 25 * gaps[2]
    assert gaps[2] < 0.02
    # Against SGD at the rule's own (unmatched) learning rate the gap does not close.
    rule_loss, sgd_loss = _losses_after(rule, momentum, 1e-4, matched=False)
    assert np.max(np.abs(rule_loss / sgd_loss - 1)) > 0.2


# ---------------------------------------------------------------------------------------------
# The drawing


def test_the_drawing_shows_the_measured_points_and_both_named_predictions():
    from sweep.stability_plot import draw_stability

    rule = "heavy-ball"
    boundaries = _constructed(rule, lambda mu: 1 - mu)
    figure = draw_stability(boundaries, rule, which_fits(boundaries, rule))
    (ax,) = figure.axes
    labels = ax.get_legend_handles_labels()[1]
    assert stability.effective_step_name(rule) in labels
    assert stability.LINEAR_NAME in labels
    assert any(label.startswith("measured: half of 10 networks blew up") for label in labels)
    assert ax.get_yscale() == "log"
    effective_line, linear_line = ax.get_lines()[:2]
    momenta = effective_line.get_xdata()
    assert effective_line.get_ydata() == pytest.approx(1 - momenta)
    assert linear_line.get_ydata() == pytest.approx(1 + momenta)
