"""The diagnostic trainer: the effective step and the momentum share on hand-built one-weight
problems, for each rule, and its curves against the trainer's."""

import numpy as np
import pytest

import sweep
from sweep.diagnostics import MEDIAN, UpdateTally, apply_rule, diagnose, step_bound
from sweep.rules import RULES, make_rule


def quadratic_window(rule, learning_rate, momentum, curvature, start, steps):
    """One weight on loss curvature * w**2 / 2 (gradient curvature * w), ``steps`` updates in one
    window: the tally's per-weight figures, and the weight's path."""
    state = make_rule(rule, (1, 1))
    weights = np.array([[start]])
    momentum_block = np.full((1, 1), momentum)
    tally = UpdateTally((1, 1))
    path = [start]
    for _ in range(steps):
        sgd_step = -learning_rate * curvature * weights.copy()
        update, carried = apply_rule(state, weights, sgd_step, momentum_block)
        tally.add(sgd_step, update, carried)
        path.append(float(weights[0, 0]))
    return {name: float(v[0, 0]) for name, v in tally.close().items()}, path


def test_article_rule_two_steps_by_hand():
    # w0 = 1, gradient w: step 1 moves -0.1 (no previous step); step 2 moves
    # -0.09 + 0.5 * -0.1 = -0.14. Path lengths 0.24 against plain 0.19; momentum part 0.05.
    window, path = quadratic_window("seed", 0.1, 0.5, 1.0, 1.0, 2)
    assert path == pytest.approx([1.0, 0.9, 0.76])
    assert window["effective_step"] == pytest.approx(0.24 / 0.19)
    assert window["momentum_share"] == pytest.approx(0.05 / 0.24)
    assert window["update_size"] == pytest.approx(0.12)


@pytest.mark.parametrize("momentum", [0.5, 0.9])
def test_article_rule_steady_gradient_reaches_one_plus_momentum(momentum):
    # A nearly flat quadratic: the gradient barely changes, each update is one plain step plus
    # momentum times another.
    window, _ = quadratic_window("seed", 1e-3, momentum, 1e-3, 1.0, 2000)
    assert window["effective_step"] == pytest.approx(1 + momentum, rel=2e-3)
    assert window["effective_step"] <= step_bound("seed", momentum)
    assert window["momentum_share"] == pytest.approx(momentum / (1 + momentum), rel=2e-3)


@pytest.mark.parametrize("rule", ["heavy-ball", "nesterov"])
@pytest.mark.parametrize("momentum", [0.5, 0.9])
def test_velocity_rules_steady_gradient_reach_one_over_one_minus_momentum(rule, momentum):
    window, _ = quadratic_window(rule, 1e-4, momentum, 1e-4, 1.0, 5000)
    assert window["effective_step"] == pytest.approx(1 / (1 - momentum), rel=1e-2)
    assert window["effective_step"] <= step_bound(rule, momentum)
    # Steady state: velocity -> step / (1 - m). Heavy ball's momentum part m * velocity is m of
    # its update; Nesterov's m * velocity is m of its update step + m * velocity too.
    assert window["momentum_share"] == pytest.approx(momentum, rel=1e-2)


def test_velocity_rule_outruns_the_article_rule_on_a_steady_gradient():
    seed, _ = quadratic_window("seed", 1e-4, 0.9, 1e-4, 1.0, 3000)
    heavy, _ = quadratic_window("heavy-ball", 1e-4, 0.9, 1e-4, 1.0, 3000)
    assert heavy["effective_step"] > 4 * seed["effective_step"]


@pytest.mark.parametrize("rule", RULES)
def test_no_momentum_is_plain_sgd_in_every_rule(rule):
    window, path = quadratic_window(rule, 0.3, 0.0, 1.0, 1.0, 5)
    assert window["effective_step"] == pytest.approx(1.0)
    assert window["momentum_share"] == 0.0
    assert path == pytest.approx([0.7**t for t in range(6)])


def test_overshooting_weight_stays_within_the_article_rules_bound():
    # learning rate * curvature = 1.5: plain SGD overshoots and oscillates; the article's rule's
    # path still never exceeds 1 + momentum plain paths.
    window, path = quadratic_window("seed", 1.5, 0.5, 1.0, 1.0, 40)
    assert np.sign(path[0]) != np.sign(path[1])
    assert window["effective_step"] <= 1.5 + 1e-12


@pytest.mark.parametrize("rule", RULES)
def test_diagnostics_reproduce_the_trainers_curves(rule):
    iris = sweep.load_dataset("iris")
    run = sweep.train(iris, learning_rate=0.05, momentum=0.7, seed=3, epochs=12, rule=rule)
    diagnosed = diagnose(iris, 0.05, 0.7, 3, rule=rule, epochs=12)
    for name in ("train_loss", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(getattr(diagnosed, name), getattr(run, name), rtol=0, atol=1e-12)
    assert diagnosed.diverged_epoch is None
    assert diagnosed.effective_step.shape == (12, 5)
    medians = diagnosed.effective_step[:, MEDIAN]
    assert np.all((medians >= 1.0) & (medians <= step_bound(rule, 0.7)))


def test_diagnostics_stop_where_the_trainer_diverges():
    iris = sweep.load_dataset("iris")
    run = sweep.train(iris, learning_rate=8.0, momentum=0.9, seed=1, epochs=10)
    diagnosed = diagnose(iris, 8.0, 0.9, 1, epochs=10)
    assert run.diverged_epoch is not None
    assert diagnosed.diverged_epoch == run.diverged_epoch
    np.testing.assert_allclose(diagnosed.train_loss, run.train_loss, rtol=1e-9, equal_nan=True)
