"""The batch TPE (sweep.sampler): its points, its model of the history, and the search's use
of it."""

import math

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

import sweep.search as search
from sweep.sampler import BatchTPE, Dimension, RandomModel, TPEModel
from sweep.spec import parse_study
from sweep.store.connect import open_storage
from sweep.store.studies import read_frozen, read_records, to_record

LEARNING_RATE = Dimension("learning_rate", 1e-3, 1.0, log=True)
MOMENTUM = Dimension("momentum", 0.0, 0.95)
SPACE = [LEARNING_RATE, MOMENTUM]
# The optimum of the quadratic below, in the unit box (log learning rate x momentum).
OPTIMUM = np.array([LEARNING_RATE.to_unit(0.03), MOMENTUM.to_unit(0.6)])


def unit_distance(point: dict) -> float:
    """Distance from the optimum in the unit box: 1 is the whole range of either parameter."""
    unit = np.array([LEARNING_RATE.to_unit(point["learning_rate"]),
                     MOMENTUM.to_unit(point["momentum"])])
    return float(np.linalg.norm(unit - OPTIMUM))


def rows(points: list[dict], names=("learning_rate", "momentum")) -> np.ndarray:
    return np.array([[point[name] for name in names] for point in points])


def random_history(count: int, seed: int = 0, sampler: BatchTPE | None = None) -> BatchTPE:
    """``count`` COMPLETE trials uniform in SPACE, valued by the quadratic's squared distance."""
    sampler = BatchTPE(SPACE) if sampler is None else sampler
    points = RandomModel(SPACE).suggest(count, np.random.default_rng(seed))
    start = len(sampler)
    sampler.add_complete(np.arange(start, start + count), rows(points),
                         [unit_distance(p) ** 2 for p in points])
    return sampler


def test_points_lie_in_the_space_on_its_scale():
    startup = BatchTPE(SPACE).suggest(400, np.random.default_rng(1))
    fitted = random_history(60).suggest(50, np.random.default_rng(1))
    for points in (startup, fitted):
        values = rows(points)
        assert np.all((values[:, 0] >= 1e-3) & (values[:, 0] <= 1.0))
        assert np.all((values[:, 1] >= 0.0) & (values[:, 1] <= 0.95))
    # Start-up points are log-uniform in the learning rate: half below the geometric middle
    # 0.0316 (uniform on a linear scale would put nine in ten above it), uniform in momentum.
    values = rows(startup)
    assert 0.4 < np.mean(values[:, 0] < math.sqrt(1e-3)) < 0.6
    assert 0.4 < np.mean(values[:, 1] < 0.475) < 0.6


def test_a_one_parameter_space_suggests_that_parameter_only():
    sampler = BatchTPE([LEARNING_RATE])
    points = sampler.suggest(5, np.random.default_rng(0))
    sampler.add_complete(np.arange(5), rows(points, ["learning_rate"]), [1.0, 2, 3, 4, 5])
    random_points = RandomModel([LEARNING_RATE]).suggest(10, np.random.default_rng(2))
    sampler.add_complete(np.arange(5, 15), rows(random_points, ["learning_rate"]),
                         np.arange(10.0))
    assert isinstance(sampler.fit(), TPEModel)
    assert all(set(p) == {"learning_rate"} for p in sampler.suggest(8, np.random.default_rng(0)))


def test_the_search_leaves_a_fixed_parameter_as_fixed(tmp_path):
    spec = parse_study({
        "name": "fixed", "trials": 15, "batch_size": 5, "seed": 2,
        "data": {"source": "synthetic", "items": 60, "inputs": 3, "classes": 3},
        "network": {"epochs": 5}, "search": {"momentum": {"fixed": 0.3}},
    }, str(tmp_path / "fixed.toml"))
    storage = open_storage(f"sqlite:///{tmp_path / 'sweep.db'}")
    search.run_study(spec, storage)  # the third batch is planned by TPE (10 trials finished)
    records = read_records(storage, "fixed")
    assert len(records) == 15 and all(r.momentum == 0.3 for r in records)
    assert len({r.learning_rate for r in records}) == 15


def test_a_batch_is_distinct():
    sampler = random_history(200)
    for batch in (sampler.suggest(50, np.random.default_rng(3)),
                  BatchTPE(SPACE).suggest(50, np.random.default_rng(3))):
        assert len({tuple(p.values()) for p in batch}) == 50


def test_the_seed_decides_the_points():
    sampler = random_history(80)
    first = sampler.suggest(20, np.random.default_rng(7))
    assert sampler.suggest(20, np.random.default_rng(7)) == first
    assert sampler.suggest(20, np.random.default_rng(8)) != first
    assert random_history(80).suggest(20, np.random.default_rng(7)) == first  # a rebuild too


def test_a_late_batch_favours_the_good_region():
    sampler = BatchTPE(SPACE)
    rng = np.random.default_rng(0)
    for _ in range(8):
        points = sampler.suggest(20, rng)
        start = len(sampler)
        sampler.add_complete(np.arange(start, start + 20), rows(points),
                             [unit_distance(p) ** 2 for p in points])
    late = sampler.suggest(20, rng)
    # Within 0.15 of the optimum (0.45 decades of learning rate, 0.14 of momentum): 7 % of
    # the space, where uniform points would land one time in fourteen.
    assert np.mean([unit_distance(p) < 0.15 for p in late]) > 0.5


def test_state_appended_batch_by_batch_equals_one_built_at_once():
    points = RandomModel(SPACE).suggest(90, np.random.default_rng(4))
    params, values = rows(points), np.array([unit_distance(p) for p in points])
    steps = np.arange(90) % 7
    whole = BatchTPE(SPACE)
    whole.add_complete(np.arange(0, 90, 3), params[0::3], values[0::3])
    pruned = np.setdiff1d(np.arange(90), np.arange(0, 90, 3))
    whole.add_pruned(pruned, params[pruned], steps[pruned], values[pruned])
    pieces = BatchTPE(SPACE)
    # In batches of ten, the last two out of order, as several workers finish them.
    order = np.r_[np.arange(70), np.arange(80, 90), np.arange(70, 80)]
    for batch in order.reshape(-1, 10):
        complete = batch[batch % 3 == 0]
        pieces.add_complete(complete, params[complete], values[complete])
        cut = batch[batch % 3 != 0]
        pieces.add_pruned(cut, params[cut], steps[cut], values[cut])
    for name, array in whole.state().items():
        assert np.array_equal(pieces.state()[name], array), name
    assert (pieces.suggest(10, np.random.default_rng(5))
            == whole.suggest(10, np.random.default_rng(5)))


def test_a_trial_added_twice_is_refused():
    sampler = random_history(12)
    with pytest.raises(ValueError, match="added twice"):
        sampler.add_complete([3], [[0.01, 0.5]], [1.0])
    with pytest.raises(ValueError, match="added twice"):
        sampler.add_pruned([20, 20], [[0.01, 0.5], [0.02, 0.5]], [1, 1], [1.0, 1.0])


def test_pruned_trials_fill_the_good_set_by_step_then_value_and_diverged_ones_come_last():
    sampler = BatchTPE(SPACE)
    # 16 trials: one COMPLETE, fifteen PRUNED. gamma(16) = 2 good: the COMPLETE one, then the
    # PRUNED one that trained longest (step 9), the lower value first between two at step 9.
    params = np.column_stack([np.geomspace(0.002, 0.5, 16), np.linspace(0.0, 0.9, 16)])
    sampler.add_complete([0], params[:1], [5.0])
    steps = [3, 9, 9, 1, 0] + [2] * 10
    values = [0.1, 0.8, 0.6, 0.01, math.inf] + [0.5] * 10
    sampler.add_pruned(np.arange(1, 16), params[1:], steps, values)
    model = sampler.fit()
    good = {tuple(np.round(m, 12)) for m in model.good.mus}
    unit = sampler.unit_points(params)[0]
    assert good == {tuple(np.round(unit[0], 12)), tuple(np.round(unit[3], 12))}
    # A diverged trial (no step, no value) ranks below every other PRUNED one.
    few = BatchTPE(SPACE, n_startup=2)
    few.add_pruned([0, 1], params[:2], [0, 1], [math.nan, 7.0])
    assert np.array_equal(few.fit().good.mus, few.unit_points(params[1:2])[0])


def test_running_trials_count_as_bad_and_not_in_the_split():
    sampler = random_history(40)
    alone = sampler.fit()
    running = np.array([[0.03, 0.6], [0.05, 0.5], [5.0, 0.5]])  # the last is outside the space
    model = sampler.fit([40, 41, 42], running)
    assert np.array_equal(model.good.mus, alone.good.mus)  # gamma counts finished trials only
    assert len(model.bad.mus) == len(alone.bad.mus) + 2
    # The two in the space are g's newest kernels; one at the optimum lowers its score there.
    assert np.allclose(model.bad.mus[-2:], sampler.unit_points(running[:2])[0])
    at_optimum = [[0.03, 0.6]]
    assert model.score(at_optimum)[0] < alone.score(at_optimum)[0]


def test_the_score_is_optunas_tpe_acquisition():
    """log l - log g, fitted once, is what Optuna's TPESampler computes for an ask on the same
    history: COMPLETE, PRUNED (with and without a value) and RUNNING trials. Reads Optuna's
    private TPE functions (optuna.samplers._tpe.sampler), pinned to Optuna 5."""
    from optuna.samplers._tpe.sampler import _split_trials, default_gamma

    space = {"learning_rate": FloatDistribution(1e-3, 1.0, log=True),
             "momentum": FloatDistribution(0.0, 0.95)}
    rng = np.random.default_rng(6)
    study = optuna.create_study()
    sampler = BatchTPE(SPACE)
    trials, running_numbers, running_params = [], [], []
    for number in range(150):
        point = {"learning_rate": float(np.exp(rng.uniform(math.log(1e-3), 0.0))),
                 "momentum": float(rng.uniform(0.0, 0.95))}
        row = [[point["learning_rate"], point["momentum"]]]
        if number % 9 == 5:
            trials.append(create_trial(state=TrialState.RUNNING, params=point,
                                       distributions=space))
            running_numbers.append(number)
            running_params += row
        elif number % 7 == 3:
            step, value = int(rng.integers(1, 4)), float(rng.uniform(0.0, 2.0))
            trials.append(create_trial(state=TrialState.PRUNED, params=point,
                                       distributions=space, intermediate_values={step: value}))
            sampler.add_pruned([number], row, [step], [value])
        elif number % 11 == 4:
            trials.append(create_trial(state=TrialState.PRUNED, params=point,
                                       distributions=space))
            sampler.add_pruned([number], row, [0], [math.nan])
        else:
            value = unit_distance(point) ** 2
            trials.append(create_trial(state=TrialState.COMPLETE, value=value, params=point,
                                       distributions=space))
            sampler.add_complete([number], row, [value])
    study.add_trials(trials)
    tpe = optuna.samplers.TPESampler(seed=0)
    stored = study.get_trials(deepcopy=False)
    finished = sum(t.state != TrialState.RUNNING for t in stored)
    below, above = _split_trials(study, stored, default_gamma(finished))
    good = tpe._build_parzen_estimator(study, space, below, handle_below=True)
    bad = tpe._build_parzen_estimator(study, space, above, handle_below=False)
    probes = {"learning_rate": np.exp(rng.uniform(math.log(1e-3), 0.0, 300)),
              "momentum": rng.uniform(0.0, 0.95, 300)}
    expected = good.log_pdf(probes) - bad.log_pdf(probes)
    model = sampler.fit(running_numbers, running_params)
    got = model.score(np.column_stack([probes["learning_rate"], probes["momentum"]]))
    # g's bulk is summed in float32: about 1e-5 of each term.
    assert np.allclose(got, expected, rtol=0, atol=1e-4)


def test_empty_and_tiny_histories():
    empty = BatchTPE(SPACE)
    assert isinstance(empty.fit(), RandomModel)
    assert len(empty.suggest(3, np.random.default_rng(0))) == 3
    assert empty.suggest(0, np.random.default_rng(0)) == []
    nine = random_history(9)
    assert isinstance(nine.fit(), RandomModel)  # fewer than the 10 start-up trials
    ten = random_history(1, sampler=random_history(9))
    assert isinstance(ten.fit(), TPEModel)
    assert len(ten.suggest(30, np.random.default_rng(0))) == 30
    # One trial and no start-up: it is the good set, g is the prior alone.
    one = random_history(1, sampler=BatchTPE(SPACE, n_startup=1))
    model = one.fit()
    assert len(model.good.mus) == 1 and len(model.bad.mus) == 0
    assert len(one.suggest(4, np.random.default_rng(0))) == 4
    assert BatchTPE([]).suggest(2, np.random.default_rng(0)) == [{}, {}]


def test_trials_outside_the_space_are_not_modelled():
    sampler = BatchTPE(SPACE)
    sampler.add_complete([0, 1, 2], [[0.01, 0.5], [2.0, 0.5], [math.nan, 0.1]], [1.0, 0.0, 0.0])
    sampler.add_pruned([3], [[0.01, -0.1]], [4], [0.5])  # none inside: nothing to add
    assert list(sampler.numbers) == [0]


# --- the search's use of it ------------------------------------------------------------------


TINY = {
    "trials": 25, "batch_size": 5, "seed": 3,
    "data": {"source": "synthetic", "items": 60, "inputs": 3, "classes": 3},
    "network": {"epochs": 8},
}


def test_the_search_feeds_the_sampler_as_a_rebuild_from_storage_would(tmp_path, monkeypatch):
    feeds = []

    class Recorded(search.BatchTPEFeed):
        def feed(self, spec, trials, records):
            super().feed(spec, trials, records)
            feeds.append((self, list(trials)))

    monkeypatch.setattr(search, "BatchTPEFeed", Recorded)
    pruner = {"name": "median", "startup_trials": 2, "warmup_steps": 2, "interval": 2}
    spec = parse_study({**TINY, "name": "fed", "pruner": pruner}, str(tmp_path / "fed.toml"))
    storage = open_storage(f"sqlite:///{tmp_path / 'sweep.db'}")
    search.run_study(spec, storage)
    assert len(feeds) == 5 and len({id(feed) for feed, _ in feeds}) == 1  # one, fed each round
    feed, trials = feeds[-1]
    assert any(t.state == TrialState.PRUNED for t in trials)
    rebuilt = search.BatchTPEFeed(spec)
    study_id = storage.get_study_id_from_name("fed")
    stored = [t for t in read_frozen(storage, study_id) if t.number in {t.number for t in trials}]
    rebuilt.feed(spec, stored, [to_record(t) for t in stored])
    for name, array in rebuilt.sampler.state().items():
        assert np.array_equal(feed.sampler.state()[name], array), name


def test_optunas_tpe_stays_selectable(tmp_path):
    spec = parse_study({**TINY, "name": "optuna", "trials": 15, "sampler": {"name": "optuna-tpe"}},
                       str(tmp_path / "optuna.toml"))
    storage = open_storage(f"sqlite:///{tmp_path / 'sweep.db'}")
    progress = search.run_study(spec, storage)
    assert progress.added == 15
    assert search.build_mirror(spec, [], []).sampler.__class__ is optuna.samplers.TPESampler
    tpe = parse_study({**TINY, "name": "tpe"}, str(tmp_path / "tpe.toml"))
    assert isinstance(search.build_mirror(tpe, [], []).sampler, optuna.samplers.RandomSampler)
