"""The sweep end to end on a temporary SQLite file: top-up, recovery, determinism, pruning."""

import dataclasses
import socket
import subprocess
import sys
import time

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from sweep.errors import SweepError
from sweep.records import objective_value
from sweep.search import replay, run_study
from sweep.spec import ObjectiveSpec, parse_study
from sweep.store.connect import open_storage
from sweep.store.studies import TRIAL_ATTR, read_records

# One network per trial (not the default five folds of two seeds): these tests are about the
# search's mechanics, which a trial's networks do not change.
TINY = {
    "name": "tiny",
    "trials": 12,
    "batch_size": 5,
    "seed": 3,
    "folds": 1,
    "repeats": 1,
    "data": {"source": "synthetic", "items": 60, "inputs": 3, "classes": 3},
    "network": {"epochs": 12},
}


def tiny_spec(tmp_path, **changes):
    data = {**TINY, **changes}
    return parse_study(data, str(tmp_path / "tiny.toml"))


@pytest.fixture
def storage(tmp_path):
    return open_storage(f"sqlite:///{tmp_path / 'sweep.db'}")


def states(storage, name="tiny"):
    study_id = storage.get_study_id_from_name(name)
    return [t.state for t in storage.get_all_trials(study_id)]


def test_a_tiny_study_runs_end_to_end_and_stores_curves(tmp_path, storage):
    spec = tiny_spec(tmp_path)
    progress = run_study(spec, storage)
    records = read_records(storage, "tiny")
    assert len(records) == 12 and progress.added == 12
    assert all(r.state == "complete" for r in records)
    for record in records:
        assert len(record.val_loss) == 12 and np.all(np.isfinite(record.val_loss))
        assert record.value == pytest.approx(record.val_loss[-1])
        assert spec.learning_rate.low <= record.learning_rate <= spec.learning_rate.high
    # The baseline trial (momentum 0) goes first.
    assert records[0].baseline and records[0].momentum == 0.0
    assert sum(r.baseline for r in records) == 1
    # Seeds are distinct per trial.
    assert len({r.seed for r in records}) == 12


def test_top_up_reaches_the_declared_total_and_a_second_run_adds_none(tmp_path, storage):
    run_study(tiny_spec(tmp_path, trials=7), storage)
    assert len(states(storage)) == 7
    again = run_study(tiny_spec(tmp_path, trials=7), storage)
    assert again.added == 0 and len(states(storage)) == 7
    more = run_study(tiny_spec(tmp_path, trials=10), storage)  # raising the total tops up
    assert more.added == 3 and len(states(storage)) == 10


def test_same_seed_gives_same_parameters_and_curves(tmp_path):
    first = open_storage(f"sqlite:///{tmp_path / 'a.db'}")
    second = open_storage(f"sqlite:///{tmp_path / 'b.db'}")
    run_study(tiny_spec(tmp_path), first)
    run_study(tiny_spec(tmp_path), second)
    a, b = read_records(first, "tiny"), read_records(second, "tiny")
    assert [(r.learning_rate, r.momentum, r.seed) for r in a] == [
        (r.learning_rate, r.momentum, r.seed) for r in b
    ]
    for x, y in zip(a, b):
        assert x.val_loss.tobytes() == y.val_loss.tobytes()
    other = open_storage(f"sqlite:///{tmp_path / 'c.db'}")
    run_study(tiny_spec(tmp_path, seed=4), other)
    assert [r.learning_rate for r in read_records(other, "tiny")] != [r.learning_rate for r in a]


def test_replay_is_bit_identical(tmp_path, storage):
    spec = tiny_spec(
        tmp_path, pruner={"name": "median", "startup_trials": 2, "warmup_steps": 2, "interval": 2}
    )
    run_study(spec, storage)
    for record in read_records(storage, "tiny"):
        identical, _ = replay(spec, record)
        assert identical, record.number
    # and a tampered curve is caught
    record = read_records(storage, "tiny")[1]
    record.val_loss[-1] += 1e-12
    assert not replay(spec, record)[0]


def test_a_trial_left_running_by_a_dead_worker_is_failed_and_retried_with_its_seed(
    tmp_path, storage
):
    spec = tiny_spec(tmp_path, trials=6)
    run_study(spec, storage, max_batches=1)  # 5 trials
    study_id = storage.get_study_id_from_name("tiny")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)
    template = optuna.trial.create_trial(
        state=TrialState.RUNNING,
        params={"learning_rate": 0.05, "momentum": 0.3},
        distributions=storage.get_all_trials(study_id)[0].distributions,
        user_attrs={
            TRIAL_ATTR: {
                "learning_rate": 0.05,
                "momentum": 0.3,
                "seed": 1234,
                "rule": "seed",
                "host": socket.gethostname(),
                "pid": dead_pid,
                "lease_until": time.time() + 999,
            }
        },
    )
    orphan_id = storage.create_new_trial(study_id, template_trial=template)
    run_study(spec, storage)
    trials = storage.get_all_trials(study_id)
    assert storage.get_trial(orphan_id).state == TrialState.FAIL
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    retry = [
        t
        for t in trials
        if t.user_attrs[TRIAL_ATTR].get("retry_of") == storage.get_trial(orphan_id).number
    ]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].user_attrs[TRIAL_ATTR]["seed"] == 1234
    assert retry[0].params == {"learning_rate": 0.05, "momentum": 0.3}
    finished = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(finished) == 6  # the declared total, the failed one not counted


def test_a_diverging_region_is_recorded_without_crashing(tmp_path, storage):
    spec = tiny_spec(
        tmp_path,
        search={
            "learning_rate": {"low": 20.0, "high": 60.0},
            "momentum": {"low": 0.5, "high": 0.9},
        },
        baseline=False,
        trials=6,
    )
    run_study(spec, storage)
    records = read_records(storage, "tiny")
    assert len(records) == 6 and all(r.state == "diverged" for r in records)
    for record in records:
        assert 1 <= record.diverged_epoch <= 12
        assert len(record.val_loss) == record.diverged_epoch
    assert all(t == TrialState.PRUNED for t in states(storage))


def test_pruning_removes_networks_from_a_batch(tmp_path, storage):
    spec = tiny_spec(
        tmp_path,
        trials=20,
        batch_size=10,
        pruner={"name": "median", "startup_trials": 3, "warmup_steps": 2, "interval": 2},
    )
    run_study(spec, storage)
    records = read_records(storage, "tiny")
    pruned = [r for r in records if r.state == "pruned"]
    assert pruned, "the median pruner should stop some of 20 random-ish trials"
    for record in pruned:
        assert record.stopped_epoch < 12 and record.stopped_epoch % 2 == 0
        assert len(record.val_loss) == record.stopped_epoch  # trained no further
        assert record.value == pytest.approx(record.val_loss[-1])


def test_a_changed_search_space_is_refused_unless_allowed(tmp_path, storage):
    run_study(tiny_spec(tmp_path, trials=3), storage)
    changed = tiny_spec(tmp_path, trials=3, network={"epochs": 13})
    with pytest.raises(SweepError, match=r"another search \(epochs: stored 12, the file 13\).*"
                                         r"--allow-spec-change"):
        run_study(changed, storage)
    run_study(changed, storage, allow_spec_change=True)


def test_objectives():
    curve = np.array([1.0, 0.5, 0.09, 0.2])
    assert objective_value(ObjectiveSpec("final_val_loss"), curve) == 0.2
    assert objective_value(ObjectiveSpec("auc_val_loss"), curve) == pytest.approx(np.mean(curve))
    assert objective_value(ObjectiveSpec("epochs_to_target", 0.1), curve) == 3
    assert objective_value(ObjectiveSpec("epochs_to_target", 0.01), curve) == 5


def test_grid_study_visits_every_point_once(tmp_path, storage):
    spec = tiny_spec(tmp_path, trials=12, batch_size=5, baseline=False, sampler={"name": "grid"},
                     search={"learning_rate": {"low": 0.01, "high": 0.3, "points": 4},
                             "momentum": {"low": 0.0, "high": 0.9, "points": 3}})
    run_study(spec, storage)
    records = read_records(storage, "tiny")
    points = {(r.learning_rate, r.momentum) for r in records}
    assert len(records) == 12 and len(points) == 12
    expected = {(lr, m) for lr in spec.learning_rate.grid() for m in spec.momentum.grid()}
    assert points == expected
    assert run_study(spec, storage).added == 0


def test_qmc_continues_its_sequence_across_batches(tmp_path, storage):
    spec = tiny_spec(tmp_path, trials=12, batch_size=3, baseline=False, sampler={"name": "qmc"})
    run_study(spec, storage)
    points = [(r.learning_rate, r.momentum) for r in read_records(storage, "tiny")]
    assert len(set(points)) == 12  # Optuna's own QMC sampler restarted in every fresh mirror
    # The same study from scratch gives the same points in the same order.
    again = open_storage(f"sqlite:///{tmp_path / 'again.db'}")
    run_study(spec, again)
    assert [(r.learning_rate, r.momentum) for r in read_records(again, "tiny")] == points


def test_epochs_to_target_keeps_epoch_units_pruned_trials_carry_no_value(tmp_path, storage):
    spec = tiny_spec(
        tmp_path,
        trials=20,
        batch_size=10,
        objective={"name": "epochs_to_target", "target_loss": 0.5},
        pruner={"name": "median", "startup_trials": 3, "warmup_steps": 2, "interval": 2},
    )
    run_study(spec, storage)
    records = read_records(storage, "tiny")
    for record in records:
        if record.state == "complete":
            assert record.value == float(int(record.value)) and 1 <= record.value <= 13
        elif record.state == "pruned":
            assert record.value is None
    assert any(r.state == "pruned" for r in records)


def test_a_retry_outside_a_narrowed_search_space_is_skipped(tmp_path, storage):
    wide = tiny_spec(tmp_path, trials=4, batch_size=4, baseline=False)
    run_study(wide, storage)
    study_id = storage.get_study_id_from_name("tiny")
    victim = next(t for t in storage.get_all_trials(study_id) if t.params["learning_rate"] > 0.05)
    # Pretend its worker died: the trial becomes FAIL, to be retried.
    fresh = optuna.trial.create_trial(
        state=TrialState.RUNNING,
        params=victim.params,
        distributions=victim.distributions,
        user_attrs={
            TRIAL_ATTR: {
                **victim.user_attrs[TRIAL_ATTR],
                "pid": -1,
                "host": "gone",
                "lease_until": 0,
            }
        },
    )
    storage.create_new_trial(study_id, template_trial=fresh)
    narrow = tiny_spec(tmp_path, trials=6, batch_size=4, baseline=False,
                       search={"learning_rate": {"low": 0.001, "high": 0.05}})
    run_study(narrow, storage, allow_spec_change=True)  # must not crash on the out-of-range retry
    new = [r for r in read_records(storage, "tiny") if r.number >= 5]
    assert new and all(r.learning_rate <= 0.05 for r in new)


def test_a_trial_failed_by_another_worker_meanwhile_is_skipped_not_fatal(
    tmp_path, storage, monkeypatch
):
    import sweep.search as search

    spec = tiny_spec(tmp_path, trials=3, batch_size=3)
    real = search._train_batch

    def fail_one_first(spec_, dataset, storage_, planned, progress):
        batch = real(spec_, dataset, storage_, planned, progress)
        storage_.set_trial_state_values(planned[0].trial_id, TrialState.FAIL)  # "another worker"
        return batch

    monkeypatch.setattr(search, "_train_batch", fail_one_first)
    run_study(spec, storage, max_batches=1)
    assert [r.state for r in read_records(storage, "tiny")] == ["failed", "complete", "complete"]


# --- folds and repeats: a trial measured over several networks ------------------------------


def test_a_trials_value_is_the_mean_of_its_networks_and_each_network_replays(tmp_path, storage):
    spec = tiny_spec(tmp_path, folds=3, repeats=2, trials=6)
    run_study(spec, storage)
    records = read_records(storage, "tiny")
    assert len(records) == 6
    for record in records:
        networks = record.networks
        assert record.network_count == 6 and networks.folds == (0, 0, 1, 1, 2, 2)
        assert len(set(networks.seeds)) == 6  # each network its own seed
        assert networks.val_loss.shape == (6, len(record.val_loss))
        if record.state == "complete":
            assert record.value == pytest.approx(np.mean(networks.values))
            assert np.allclose(record.val_loss, networks.val_loss.mean(axis=0))
    identical, _ = replay(spec, records[2])
    assert identical
    # The networks' seeds are a pure function of the trial's seed: a second run draws the same.
    other = open_storage(f"sqlite:///{tmp_path / 'again.db'}")
    run_study(spec, other)
    assert [r.networks.seeds for r in read_records(other, "tiny")] == [
        r.networks.seeds for r in records
    ]


def test_a_fold_network_of_a_trial_equals_that_network_trained_alone(tmp_path, storage):
    spec = tiny_spec(tmp_path, folds=3, repeats=1, trials=3)
    run_study(spec, storage)
    record = read_records(storage, "tiny")[1]
    from sweep.train import train

    assert record.arithmetic == "compiled"  # new trials are trained by the compiled kernel
    folds = spec.datasets()
    for row, (seed, fold) in enumerate(zip(record.networks.seeds, record.networks.folds)):
        alone = train(folds[fold], record.learning_rate, record.momentum, seed,
                      hidden=spec.hidden, epochs=spec.epochs, rule=spec.rule, init=spec.init,
                      arithmetic=record.arithmetic)
        assert np.array_equal(record.networks.val_loss[row], alone.val_loss)


def test_pruning_removes_whole_trials(tmp_path, storage):
    pruner = {"name": "median", "startup_trials": 2, "warmup_steps": 2, "interval": 2}
    spec = tiny_spec(tmp_path, folds=2, repeats=2, trials=20, batch_size=10, pruner=pruner)
    run_study(spec, storage)
    pruned = [r for r in read_records(storage, "tiny") if r.state == "pruned"]
    assert pruned, "the pruner stopped nothing: the test checks nothing"
    for record in pruned:
        trained = len(record.val_loss)
        assert record.stopped_epoch == trained < spec.epochs
        # Every network of the trial stopped at the same epoch: none trained on alone.
        assert np.isfinite(record.networks.val_loss[:, trained - 1]).all()


def test_a_trial_with_one_diverged_network_is_never_recommended(tmp_path, storage):
    from sweep.analysis import best_trial
    from sweep.search import trial_outcome
    from sweep.train import train_many

    spec = tiny_spec(tmp_path, repeats=3)
    data = spec.datasets()
    # Three networks at one setting on the edge of stability: some diverge, some do not.
    batch = train_many(data, 1.0, 0.9, list(range(40)), epochs=spec.epochs)
    runs = batch.runs()
    diverged = [r for r in runs if r.diverged_epoch]
    stable = [r for r in runs if not r.diverged_epoch]
    assert diverged and stable, "the setting must split the seeds for this test to mean anything"
    state, value, values = trial_outcome(spec, [stable[0], stable[1], diverged[0]])
    assert state.name == "PRUNED" and value is None and values == [None] * 3
    state, value, _ = trial_outcome(spec, stable[:3])
    assert state.name == "COMPLETE"
    # And through a whole search: no diverged trial is ever the best.
    search = {"learning_rate": {"low": 0.5, "high": 20.0}}
    run_study(tiny_spec(tmp_path, repeats=3, search=search), storage)
    records = read_records(storage, "tiny")
    assert any(r.state == "diverged" for r in records)
    assert best_trial(records).state == "complete"


def test_trials_record_their_arithmetic_and_replay_in_it(tmp_path, storage, monkeypatch):
    import sweep.search

    monkeypatch.setattr(sweep.search, "ARITHMETIC", "numpy")  # as trials stored before the kernel
    spec = tiny_spec(tmp_path, trials=3)
    run_study(spec, storage)
    record = read_records(storage, "tiny")[1]
    assert record.arithmetic == "numpy"
    assert replay(spec, record)[0]
    # The other arithmetic's numbers differ in the last bits: replay must not mix them up.
    other = dataclasses.replace(record, arithmetic="compiled")
    assert not replay(spec, other)[0]
