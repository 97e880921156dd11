"""The momentum rules against values built by hand, and their reduction to plain SGD."""

import numpy as np
import pytest

from sweep.rules import RULES, make_rule

LEARNING_RATES = [1e-4, 0.01, 0.1, 0.5, 2.0]
MOMENTA = [0.0, 0.1, 0.5, 0.9, 0.99]


def run_rule(name, weight, grads, learning_rate, momentum):
    """Apply rule ``name`` to one scalar weight for each gradient in turn, through the block API."""
    rule = make_rule(name, (1, 1))
    weights = np.array([[weight]])
    momentum_block = np.array([[momentum]])
    history = []
    for grad in grads:
        rule.step(weights, np.array([[-learning_rate * grad]]), momentum_block)
        history.append(weights[0, 0])
    return history


def by_hand(name, weight, grads, learning_rate, momentum):
    """The same updates written out one scalar at a time, straight from each rule's formula."""
    history, prev_delta, velocity = [], 0.0, 0.0
    for grad in grads:
        if name == "seed":
            delta = -learning_rate * grad
            weight = weight + delta
            weight = weight + momentum * prev_delta
            prev_delta = delta
        elif name == "heavy-ball":
            velocity = momentum * velocity - learning_rate * grad
            weight = weight + velocity
        else:  # nesterov, scikit-learn's form
            velocity = momentum * velocity - learning_rate * grad
            weight = weight + (momentum * velocity - learning_rate * grad)
        history.append(weight)
    return history


def test_the_articles_worked_example_gives_3_609():
    # The article: w = 3.56, learning rate 0.01, gradient 2.70 (downhill), momentum 0.50 and a
    # previous delta of 0.044 give 3.56 + 0.027 + 0.022 = 3.609.
    rule = make_rule("seed", (1, 1))
    rule.prev_delta[...] = 0.044
    weights = np.array([[3.56]])
    downhill_gradient = 2.70
    rule.step(weights, np.array([[0.01 * downhill_gradient]]), np.array([[0.50]]))
    assert weights[0, 0] == pytest.approx(3.609, abs=1e-12)
    assert rule.prev_delta[0, 0] == pytest.approx(0.027, abs=1e-15)


@pytest.mark.parametrize("name", RULES)
@pytest.mark.parametrize("learning_rate", LEARNING_RATES)
@pytest.mark.parametrize("momentum", MOMENTA)
def test_rule_matches_its_formula_written_by_hand(name, learning_rate, momentum):
    grads = np.random.default_rng(7).normal(size=12)
    got = run_rule(name, 0.3, grads, learning_rate, momentum)
    expected = by_hand(name, 0.3, grads, learning_rate, momentum)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", RULES)
@pytest.mark.parametrize("learning_rate", LEARNING_RATES)
def test_momentum_zero_is_plain_sgd_for_every_rule(name, learning_rate):
    grads = np.random.default_rng(3).normal(size=20)
    weight, expected = -1.2, []
    for grad in grads:
        weight = weight - learning_rate * grad
        expected.append(weight)
    assert run_rule(name, -1.2, grads, learning_rate, 0.0) == expected  # exactly


def test_the_seed_rule_looks_back_one_step_only():
    # Heavy ball remembers every old step (geometrically); the article's rule only the last one.
    grads = [1.0, 0.0, 0.0]
    seed = run_rule("seed", 0.0, grads, 1.0, 0.5)
    heavy = run_rule("heavy-ball", 0.0, grads, 1.0, 0.5)
    assert seed == pytest.approx([-1.0, -1.5, -1.5])
    assert heavy == pytest.approx([-1.0, -1.5, -1.75])


def test_rules_update_many_trials_independently():
    rng = np.random.default_rng(0)
    steps = rng.normal(size=(5, 6, 3))  # 5 updates of a (6 parameters, 3 trials) block
    momenta = np.array([0.0, 0.5, 0.9])
    for name in RULES:
        rule = make_rule(name, (6, 3))
        weights = np.zeros((6, 3))
        for step in steps:
            rule.step(weights, step.copy(), np.repeat(momenta[None], 6, axis=0))
        for trial, momentum in enumerate(momenta):
            single = make_rule(name, (6, 1))
            alone = np.zeros((6, 1))
            for step in steps:
                single.step(alone, step[:, trial : trial + 1].copy(), np.full((6, 1), momentum))
            np.testing.assert_array_equal(weights[:, trial], alone[:, 0])


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="unknown momentum rule 'adam'"):
        make_rule("adam", (1, 1))
