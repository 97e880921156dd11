"""The diagnostic trainer: the effective step and the momentum share on hand-built one-weight
problems, for each rule, its curves against the trainer's, and several networks trained side by
side against each trained alone."""


import numpy as np
import pytest

import sweep
from sweep.diagnostics import (
    MEDIAN,
    UpdateTally,
    apply_rule,
    diagnose,
    diagnose_many,
)
from sweep.network import Layout, initial_block
from sweep.rules import get_rule, make_rule, rule_names
from sweep.sources import load_folds, make_correlated

RULES = rule_names()


def step_bound(rule, momentum):
    return get_rule(rule).effective_factor(momentum)


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


# ---------------------------------------------------------------------------------------------
# Several networks side by side: each must get, bit for bit, what it gets alone.

RECORDED = ("train_loss", "val_loss", "val_accuracy", "momentum_share", "update_size",
            "effective_step")


def assert_same_diagnostics(batched, alone):
    assert (batched.learning_rate, batched.momentum, batched.seed, batched.rule) == (
        alone.learning_rate, alone.momentum, alone.seed, alone.rule)
    assert batched.diverged_epoch == alone.diverged_epoch
    for name in RECORDED:
        np.testing.assert_array_equal(getattr(batched, name), getattr(alone, name), err_msg=name)


def assert_each_as_alone(pairs, learning_rate, momentum, **settings):
    batched = diagnose_many(pairs, learning_rate, momentum, **settings)
    assert len(batched) == len(pairs)
    for (dataset, seed), diagnostics in zip(pairs, batched):
        assert_same_diagnostics(
            diagnostics, diagnose(dataset, learning_rate, momentum, seed, **settings))
    return batched


@pytest.mark.parametrize("init", ["glorot", "small-uniform"])
def test_initial_block_columns_are_each_generators_own_draws(init):
    layout = Layout(4, 7, 3)
    together = initial_block(layout, [np.random.default_rng(seed) for seed in (5, 6, 7)], init)
    for column, seed in enumerate((5, 6, 7)):
        alone = initial_block(layout, [np.random.default_rng(seed)], init)
        np.testing.assert_array_equal(together[:, [column]], alone)
    assert not np.array_equal(together[:, 0], together[:, 1])


@pytest.mark.parametrize("rule", RULES)
def test_each_network_of_a_batch_on_iris_folds_is_the_network_alone(rule):
    folds = load_folds("iris", folds=5)
    pairs = [(folds[0], 3), (folds[1], 4), (folds[2], 3)]  # seed 3 twice, on different folds
    batched = assert_each_as_alone(pairs, 0.05, 0.7, rule=rule, epochs=8)
    assert all(d.diverged_epoch is None for d in batched)
    assert not np.array_equal(batched[0].train_loss, batched[2].train_loss)


@pytest.mark.parametrize("rule", RULES)
def test_each_network_of_a_batch_on_correlated_folds_is_the_network_alone(rule):
    # Ill-conditioned data: online training magnifies a last-digit difference into a visible one
    # within a few epochs, so any difference in the arithmetic of a batch would show.
    folds = make_correlated(items=150, inputs=8, folds=3)
    pairs = [(folds[2], 11), (folds[0], 12), (folds[1], 13)]
    assert_each_as_alone(pairs, 0.1, 0.8, rule=rule, hidden=5, epochs=10)


def test_a_network_gets_the_same_numbers_whatever_its_batch():
    folds = load_folds("iris", folds=5)
    settings = dict(rule="nesterov", epochs=6)
    small = diagnose_many([(folds[1], 9), (folds[0], 2)], 0.2, 0.9, **settings)
    large = diagnose_many([(folds[4], 1), (folds[0], 2), (folds[3], 0), (folds[1], 9)], 0.2,
                          0.9, **settings)
    assert_same_diagnostics(small[0], large[3])
    assert_same_diagnostics(small[1], large[1])


@pytest.mark.parametrize("rule", RULES)
def test_ragged_folds_train_as_they_would_alone(rule):
    # Four iris folds hold 112, 112, 113 and 113 training items; the last pair's length has a
    # lone network. Every network's updates, tally and curves are its own.
    folds = load_folds("iris", folds=4)
    assert sorted({len(fold.y_train) for fold in folds}) == [112, 113]
    lone = load_folds("iris", folds=3)[0]  # 100 items
    pairs = [(folds[2], 1), (folds[0], 2), (lone, 3), (folds[3], 4), (folds[1], 5)]
    batched = assert_each_as_alone(pairs, 0.1, 0.7, rule=rule, epochs=5)
    assert [d.seed for d in batched] == [1, 2, 3, 4, 5]


def test_some_networks_diverge_and_the_others_train_on():
    # At learning rate 1.5 and momentum 0.9 on iris some folds and seeds diverge, at different
    # epochs, and some do not.
    folds = load_folds("iris", folds=5)
    pairs = [(folds[fold], seed) for fold in range(3) for seed in range(3)]
    batched = assert_each_as_alone(pairs, 1.5, 0.9, epochs=8)
    stopped = [d.diverged_epoch for d in batched]
    assert None in stopped
    assert len({epoch for epoch in stopped if epoch is not None}) >= 3
    for diagnostics in batched:
        last = diagnostics.diverged_epoch or 8
        assert np.isfinite(diagnostics.val_loss[:last]).all()
        assert np.isnan(diagnostics.val_loss[last:]).all()
        assert np.isnan(diagnostics.effective_step[last:]).all()
        assert not np.isnan(diagnostics.effective_step[:last]).all(axis=1).any()
        if diagnostics.diverged_epoch is not None:
            assert not diagnostics.train_loss[last - 1] <= 5.0 * np.log(3)


def test_every_network_diverging_stops_the_batch():
    folds = load_folds("iris", folds=5)
    batched = assert_each_as_alone([(folds[0], 1), (folds[1], 2)], 8.0, 0.9, epochs=10)
    assert [d.diverged_epoch for d in batched] == [1, 1]
    assert np.isnan(batched[0].train_loss[1:]).all()


def test_no_pairs_and_mismatched_data_sets():
    iris = sweep.load_dataset("iris")
    assert diagnose_many([], 0.1, 0.5) == []
    correlated = make_correlated(items=60, inputs=8)[0]
    with pytest.raises(ValueError, match="share inputs and classes"):
        diagnose_many([(iris, 1), (correlated, 2)], 0.1, 0.5, epochs=1)
    with pytest.raises(ValueError, match="momentum"):
        diagnose_many([(iris, 1)], 0.1, 1.0)


def test_the_pages_fading_question_diagnoses_the_answers_race_networks(monkeypatch):
    from sweep import claims_page
    from sweep.confirm import RaceNetworks
    from sweep.spec import parse_study

    monkeypatch.setattr(claims_page, "DIAGNOSED_NETWORKS", 3)
    spec = parse_study({"name": "f", "folds": 3, "repeats": 1,
                        "network": {"rule": "heavy-ball", "hidden": 5, "epochs": 10}}, "f.toml")
    found = claims_page.fading(spec, 0.05, 0.8)
    datasets, index, seeds = RaceNetworks(spec).datasets(0, 3)
    shares = [diagnose(datasets[i], 0.05, 0.8, seed, rule="heavy-ball", hidden=5, epochs=10)
              .momentum_share[:, MEDIAN] for i, seed in zip(index, seeds)]
    early = [float(np.nanmean(share[:1])) for share in shares]
    late = [float(np.nanmean(share[-1:])) for share in shares]
    assert found.interval.n == 3
    assert found.interval.mean == pytest.approx(np.mean(late) - np.mean(early))
    assert found.early == pytest.approx(np.mean(early))
