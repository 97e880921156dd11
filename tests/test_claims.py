"""The claims' analysis on hand-built numbers: the stability boundary of a synthetic grid, and
the generated sentences for an effect and for none."""

import numpy as np
import pytest

from sweep import claims
from sweep.diagnostics import QUANTILES, Diagnostics
from sweep.records import NetworkCurves, TrialRecord


def record(number, learning_rate, momentum, curves, values=None, state="complete", folds=None):
    """A trial whose networks have the given (n, epochs) validation-loss curves."""
    curves = np.asarray(curves, dtype=float)
    values = curves.min(axis=1) if values is None else np.asarray(values, dtype=float)
    folds = tuple(range(len(curves))) if folds is None else folds
    networks = NetworkCurves(tuple(range(len(curves))), folds, values, curves, curves,
                             np.zeros_like(curves))
    mean = curves.mean(axis=0)
    return TrialRecord(number, state, learning_rate, momentum, number, float(values.mean()),
                       False, None, None, mean, mean, np.zeros_like(mean), networks=networks)


def decaying(rate, n=6, epochs=30, noise=0.0):
    """n networks' curves falling as exp(-rate * epoch) from 1 towards 0.1."""
    epochs_axis = np.arange(1, epochs + 1)
    rng = np.random.default_rng(int(rate * 1000))
    return np.array([0.1 + 0.9 * np.exp(-rate * epochs_axis) + noise * rng.standard_normal()
                     for _ in range(n)])


def test_stability_boundary_from_a_synthetic_grid():
    rates = [0.1, 0.2, 0.4, 0.8, 1.6]
    # Diverges from 1.6 at momentum 0, from 0.8 at 0.5 and from 0.2 at 0.9; one stray diverged
    # cell below a stable one at 0.5 moves that boundary down to it.
    limit = {0.0: 1.6, 0.5: 0.8, 0.9: 0.2}
    cells = [(lr, m, lr >= limit[m]) for m in limit for lr in rates]
    boundaries = claims.stability_boundary(cells)
    assert [(b.momentum, b.largest_stable, b.first_diverged) for b in boundaries] == [
        (0.0, 0.8, 1.6), (0.5, 0.4, 0.8), (0.9, 0.1, 0.2)]
    cells = [(lr, m, bad or (m == 0.5 and lr == 0.2)) for lr, m, bad in cells]
    assert claims.stability_boundary(cells)[1] == claims.Boundary(0.5, 0.1, 0.2)


def test_stability_boundary_when_nothing_diverges_or_everything_does():
    boundaries = claims.stability_boundary([(0.1, 0.0, False), (1.0, 0.0, False),
                                            (0.1, 0.9, True), (1.0, 0.9, True)])
    assert boundaries == [claims.Boundary(0.0, 1.0, None), claims.Boundary(0.9, None, 0.1)]


def test_stability_sentence_says_momentum_lowers_the_boundary_and_checks_the_theory():
    rates = [0.1, 0.2, 0.4, 0.8, 1.6]
    limit = {0.0: 1.6, 0.5: 0.8, 0.9: 0.2}
    boundaries = claims.stability_boundary(
        [(lr, m, lr >= limit[m]) for m in limit for lr in rates])
    text = " ".join(claims.stability_answer("heavy-ball", boundaries).sentences)
    assert "largest stable learning rate was 0.8 (diverged from 1.6)" in text
    assert "diverge at smaller learning rates" in text
    # Theory: 0.8 * (1 - 0.5) = 0.4 is in [0.4, 0.8); 0.8 * 0.1 = 0.08 is below [0.1, 0.2),
    # but 1.6 * 0.1 = 0.16 overlaps it: both brackets overlap.
    assert "matched the grid's bracket at 2 of 2 momenta" in text


def test_stability_sentence_without_a_boundary_says_the_grid_says_nothing():
    boundaries = claims.stability_boundary([(0.1, 0.0, False), (0.1, 0.5, False)])
    (sentence,) = claims.stability_answer("seed", boundaries).sentences
    assert "says nothing about stability" in sentence


def test_predicted_boundary_divides_by_each_rules_amplification():
    assert claims.predicted_boundary("seed", 1.5, 0.5) == pytest.approx(1.0)
    assert claims.predicted_boundary("heavy-ball", 1.5, 0.5) == pytest.approx(0.75)
    assert claims.predicted_boundary("nesterov", 1.0, 0.9) == pytest.approx(0.1)


def test_speed_sentence_reports_an_effect_when_momentum_is_faster():
    fast = record(1, 0.05, 0.9, decaying(0.5))
    slow = record(2, 0.2, 0.0, decaying(0.1))
    result = claims.speed(fast, slow, target_loss=0.3)
    epochs = result.measures[0]
    assert epochs.paired
    np.testing.assert_array_equal(epochs.momentum, 4.0)  # 0.1 + 0.9 e^{-2} = 0.22 <= 0.3
    np.testing.assert_array_equal(epochs.none, 16.0)
    sentence = claims.compare_sentence(epochs, " epochs")
    assert "momentum is lower by 12 epochs" in sentence
    assert "paired over the same folds" in sentence
    assert [m.name for m in result.measures][1:4] == [
        "loss after 5 epochs", "loss after 10 epochs", "loss after 20 epochs"]


def test_speed_sentence_says_no_difference_when_the_interval_includes_zero():
    base = decaying(0.3)
    # Per-network differences of mean 0: +-0.01, +-0.02, +-0.005.
    offsets = np.array([0.01, -0.01, 0.02, -0.02, 0.005, -0.005])[:, None]
    a = record(1, 0.05, 0.9, base + offsets)
    b = record(2, 0.1, 0.0, base)
    result = claims.speed(a, b, target_loss=0.3)
    loss_at_10 = result.measures[2]
    sentence = claims.compare_sentence(loss_at_10)
    assert "includes 0: the data shows no difference" in sentence
    assert "lower by" not in sentence and "higher by" not in sentence


def test_speed_is_unpaired_when_the_networks_share_no_folds():
    a = record(1, 0.05, 0.9, decaying(0.5, n=3), folds=(0, 1, 2))
    b = record(2, 0.1, 0.0, decaying(0.1, n=3), folds=(3, 4, 5))
    result = claims.speed(a, b, target_loss=0.3)
    assert not result.measures[0].paired
    assert "unpaired" in claims.compare_sentence(result.measures[0])


def test_a_target_never_reached_counts_one_epoch_past_the_end():
    a = record(1, 0.05, 0.9, decaying(0.5, epochs=10))
    b = record(2, 0.1, 0.0, np.ones((6, 10)))
    result = claims.speed(a, b, target_loss=0.3)
    np.testing.assert_array_equal(result.measures[0].none, 11.0)
    assert result.never_reached == (0, 6)
    assert "one epoch past the end: 0 with momentum, 6 without" in " ".join(
        claims.speed_answer(result).sentences)


def diagnostics(share, size, step, momentum=0.5, rule="seed", epochs=20):
    """A network's diagnostics with the given per-epoch median values (all quantiles equal to
    the median times (0.9, 0.95, 1, 1.05, 1.1) for the step, to give it a known spread)."""
    def grid(values, spread=(1, 1, 1, 1, 1)):
        return np.outer(np.broadcast_to(values, (epochs,)), spread)
    assert len(QUANTILES) == 5
    curve = np.linspace(1, 0.2, epochs)
    return Diagnostics(0.1, momentum, 0, rule, curve, curve, curve, None, grid(share),
                       grid(size), grid(step, (0.8, 0.9, 1, 1.1, 1.2)))


def test_fading_sentence_for_a_share_that_falls_and_one_that_does_not():
    falling = [diagnostics(np.linspace(0.4, 0.1 + k * 0.01, 20), np.geomspace(1, 0.01, 20), 1.3)
               for k in range(4)]
    text = " ".join(claims.fading_answer(falling).sentences)
    assert "The share fell by" in text and "shrank to" in text
    steady = [diagnostics(0.33 + 0.001 * (-1) ** k, 1.0 + 0.01 * k, 1.3) for k in range(4)]
    text = " ".join(claims.fading_answer(steady).sentences)
    assert "did not change measurably" in text and "does not fade" in text


def test_step_sentence_states_the_bounds_and_whether_weights_differ():
    text = " ".join(claims.step_answer([diagnostics(0.3, 1.0, 1.4) for _ in range(3)]).sentences)
    assert "1 + momentum = 1.5" in text and "1 / (1 - momentum) = 2" in text
    assert "reached 93.3 % of it" in text
    assert "It varies across weights" in text  # middle half 0.9..1.1 of the median: 0.2


def test_freedom_sentence_for_a_free_and_for_a_critical_momentum():
    # At learning rate 0.1: momenta 0..0.9 all within noise of the best, except 0.9.
    def row(learning_rate, scores):
        spread = np.linspace(-0.02, 0.02, 5)[:, None]
        return [record(i, learning_rate, m, np.full((5, 3), s) + spread)
                for i, (m, s) in enumerate(scores)]
    free = row(0.1, [(0.0, 0.30), (0.3, 0.29), (0.6, 0.295), (0.9, 0.5)])
    text = " ".join(claims.freedom_answer(free).sentences)
    assert "3 of 4 momenta tried scored within the best's interval, from 0 to 0.6" in text
    assert "nearly free" in text
    critical = row(0.1, [(0.0, 0.6), (0.3, 0.5), (0.6, 0.29), (0.9, 0.45)])
    text = " ".join(claims.freedom_answer(critical).sentences)
    assert "1 of 4 momenta" in text and "does need tuning" in text
