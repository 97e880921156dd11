"""The momentum rules against values built by hand, and their reduction to plain SGD."""

import numpy as np
import pytest

from sweep.rules import make_rule, rule_names

RULES = rule_names()

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
    rule.memory[...] = 0.044  # the article's rule's memory is prev_delta
    weights = np.array([[3.56]])
    downhill_gradient = 2.70
    rule.step(weights, np.array([[0.01 * downhill_gradient]]), np.array([[0.50]]))
    assert weights[0, 0] == pytest.approx(3.609, abs=1e-12)
    assert rule.memory[0, 0] == pytest.approx(0.027, abs=1e-15)


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


# ---------------------------------------------------------------- one rule, one object


@pytest.mark.parametrize("name", RULES)
def test_each_rules_in_place_step_is_its_formula_bit_for_bit(name):
    # The shipped rules' in-place NumPy steps are optimisations of their scalar formula; the
    # generic step (the formula applied to the block) must give the same bits.
    from sweep.rules import Rule, get_rule

    rng = np.random.default_rng(11)
    fast, generic = make_rule(name, (5, 4)), make_rule(name, (5, 4))
    generic.step = Rule.step.__get__(generic)
    weights_fast, weights_generic = np.zeros((5, 4)), np.zeros((5, 4))
    momentum = np.repeat(rng.uniform(0, 0.99, 4)[None], 5, axis=0)
    for _ in range(30):
        sgd_step = rng.normal(size=(5, 4)) * 0.1
        fast.step(weights_fast, sgd_step.copy(), momentum)
        generic.step(weights_generic, sgd_step.copy(), momentum)
    assert weights_fast.tobytes() == weights_generic.tobytes()
    assert fast.memory.tobytes() == generic.memory.tobytes()
    assert get_rule(name).name == name


def spectral_boundary(rule, momentum: float) -> float:
    """The smallest a = learning rate x curvature at which the rule's own iteration on the
    quadratic w**2 / 2 (gradient w) stops being stable: the spectral radius of the 2 x 2 map
    (weight, memory) -> scalar_step(weight, memory, -a * weight, momentum) reaches 1."""

    def radius(a):
        columns = [rule.scalar_step(w, m, -a * w, momentum) for w, m in ((1.0, 0.0), (0.0, 1.0))]
        return max(abs(np.linalg.eigvals(np.array(columns, dtype=float).T)))

    high = 1e-3
    while radius(high) <= 1 + 1e-12:
        high *= 1.01
    low = high / 1.01
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if radius(middle) <= 1 + 1e-12 else (low, middle)
    return high


@pytest.mark.parametrize("name", RULES)
@pytest.mark.parametrize("momentum", [0.0, 0.1, 1 / 3, 0.5, 0.9, 0.95])
def test_each_rules_linear_bound_is_the_spectral_boundary_of_its_iteration(name, momentum):
    from sweep.rules import get_rule

    rule = get_rule(name)
    assert rule.linear_stability_limit(momentum) == pytest.approx(
        spectral_boundary(rule, momentum), rel=1e-6)


@pytest.mark.parametrize("name", RULES)
@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
def test_effective_factor_is_how_far_a_constant_gradient_carries_a_weight(name, momentum):
    # A constant gradient, many steps: the weight moves effective_factor plain steps per step.
    from sweep.rules import get_rule

    rule = get_rule(name)
    weight, memory = 0.0, 0.0
    for _ in range(2000):
        weight, memory = rule.scalar_step(weight, memory, -1.0, momentum)
    before = weight
    weight, memory = rule.scalar_step(weight, memory, -1.0, momentum)
    assert before - weight == pytest.approx(rule.effective_factor(momentum), rel=1e-9)


def test_an_unknown_rule_is_refused_with_the_valid_ones():
    from sweep.rules import get_rule

    with pytest.raises(ValueError, match="expected one of seed, heavy-ball, nesterov"):
        get_rule("adam")


# ---------------------------------------------------------------- a rule and an objective added


class DampedHeavyBall:
    """Defined here only, as a user adding a rule would: heavy ball whose step is scaled by
    (1 - momentum), so a constant gradient moves it as far as plain SGD.

    ``velocity = momentum * velocity - learning_rate * grad; w += (1 - momentum) * velocity``
    """


@pytest.fixture
def added(monkeypatch):
    """A rule and an objective registered for one test, as the modules' recipes say, and gone
    after it."""
    from sweep import records, rules

    monkeypatch.setattr(rules.RULES, "entries", dict(rules.RULES.entries))
    monkeypatch.setattr(records.OBJECTIVES, "entries", dict(records.OBJECTIVES.entries))

    @rules.register
    class Damped(rules.Rule):
        __doc__ = DampedHeavyBall.__doc__
        name = "damped-heavy-ball"
        effective_formula = "learning rate"

        @staticmethod
        def scalar_step(weight, memory, sgd_step, momentum):
            velocity = memory * momentum + sgd_step
            return weight + (1.0 - momentum) * velocity, velocity

        @staticmethod
        def effective_factor(momentum):
            return 1.0

        @staticmethod
        def linear_stability_limit(momentum):
            return 2.0 * (1.0 + momentum) / (1.0 - momentum)

    @records.register_objective
    class MedianValLoss(records.Objective):
        """The median validation loss over the epochs."""

        name = "median_val_loss"
        label = "median validation loss"

        @staticmethod
        def final(val_loss, target_loss):
            return float(np.median(val_loss))

    return Damped, MedianValLoss


def test_an_added_rule_has_a_true_bound_and_trains_in_both_arithmetics(added):
    import sweep

    rule, _ = added
    assert "damped-heavy-ball" in rule_names()
    for momentum in (0.0, 0.5, 0.9):
        assert rule.linear_stability_limit(momentum) == pytest.approx(
            spectral_boundary(rule, momentum), rel=1e-6)
    iris = sweep.load_dataset("iris")
    options = dict(epochs=6, rule="damped-heavy-ball")
    reference = sweep.train_many(iris, [0.05, 0.2], [0.5, 0.9], [1, 2], **options)
    compiled = sweep.train_many(iris, [0.05, 0.2], [0.5, 0.9], [1, 2], arithmetic="compiled",
                                **options)
    # The kernel's exp, log and tanh differ from NumPy's by an ulp or two, nothing else does.
    np.testing.assert_allclose(compiled.val_loss, reference.val_loss, rtol=1e-9)
    plain = sweep.train_many(iris, [0.05], [0.0], [1], epochs=6)
    damped_at_zero = sweep.train_many(iris, [0.05], [0.0], [1], epochs=6,
                                      rule="damped-heavy-ball")
    assert damped_at_zero.val_loss.tobytes() == plain.val_loss.tobytes()  # momentum 0 is SGD


def test_an_added_rule_and_objective_run_a_study_and_its_report(added, tmp_path, monkeypatch):
    from sweep.analysis import best_trial
    from sweep.folders import RESULTS_ENV
    from sweep.report import write_reports
    from sweep.search import run_study
    from sweep.spec import parse_study
    from sweep.store.connect import open_storage
    from sweep.store.studies import read_records

    study = {
        "name": "added", "trials": 6, "batch_size": 6, "seed": 3,
        "data": {"source": "synthetic", "items": 60, "inputs": 3, "classes": 3},
        "network": {"hidden": 4, "epochs": 8, "rule": "damped-heavy-ball"},
        "objective": {"name": "median_val_loss"},
    }
    spec = parse_study(study, str(tmp_path / "added.toml"))
    storage = open_storage(f"sqlite:///{tmp_path / 'sweep.db'}")
    run_study(spec, storage)
    records = read_records(storage, "added")
    best = best_trial(records)
    assert best is not None and best.value == pytest.approx(
        np.mean([np.median(curve) for curve in best.networks.val_loss])
        if best.networks is not None else np.median(best.val_loss))
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "results"))
    write_reports(storage, ["added"])
    page = (tmp_path / "results" / "added" / "index.html").read_text()
    assert "damped-heavy-ball" in page and "median_val_loss" in page
    assert (tmp_path / "results" / "added" / "landscape.png").stat().st_size > 0


def test_unknown_names_are_refused_with_the_valid_ones_where_the_study_is_read(tmp_path):
    from sweep.spec import SpecError, parse_study

    cases = [({"network": {"rule": "adam"}}, "network.rule", "seed, heavy-ball, nesterov"),
             ({"objective": {"name": "accuracy"}}, "objective.name", "final_val_loss"),
             ({"data": {"source": "mnist"}}, "data.source", "iris, synthetic, csv, correlated")]
    for extra, key, valid in cases:
        with pytest.raises(SpecError, match=key) as info:
            parse_study({"name": "x", **extra}, str(tmp_path / "x.toml"))
        assert valid in str(info.value)
