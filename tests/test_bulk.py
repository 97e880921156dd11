"""Batches written by sweep.bulk read back exactly as the same trials written by Optuna's API."""

import math

import optuna
import pytest
import sqlalchemy
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from sweep import bulk
from sweep.storage import open_storage

SPACE = {"learning_rate": FloatDistribution(1e-3, 1.0, log=True), "momentum": FloatDistribution(0.0, 0.95)}
CURVES = {"train_loss": [0.9, 0.5, None], "val_loss": [1.0, 0.6, None], "diverged_epoch": 3}
# (params, user attrs, end state, value): complete, pruned with a value, diverged without one,
# and an infinite value (stored as a type flag, not a number).
TRIALS = [
    ({"learning_rate": 0.01, "momentum": 0.5}, {"sweep": {"seed": 1, "host": "h"}}, TrialState.COMPLETE, 0.125),
    ({"learning_rate": 0.3, "momentum": 0.0}, {"sweep": {"seed": 2}}, TrialState.PRUNED, 0.75),
    ({"learning_rate": 0.9, "momentum": 0.9}, {"sweep": {"seed": 3}}, TrialState.PRUNED, None),
    ({"learning_rate": 0.002, "momentum": 0.94}, {}, TrialState.COMPLETE, math.inf),
]


def new_study(tmp_path, name):
    storage = open_storage(f"sqlite:///{tmp_path / name}.db")
    study = optuna.create_study(storage=storage, study_name=name)
    study.enqueue_trial({"learning_rate": 0.05, "momentum": 0.1})  # a WAITING trial numbered first
    return storage, study._study_id


def written_by_optuna(storage, study_id):
    for params, attrs, state, value in TRIALS:
        template = optuna.trial.create_trial(state=TrialState.RUNNING, params=params, distributions=SPACE, user_attrs=attrs)
        trial_id = storage.create_new_trial(study_id, template_trial=template)
        storage.set_trial_user_attr(trial_id, "curves", CURVES)
        storage.set_trial_state_values(trial_id, state, None if value is None else [value])


def written_in_bulk(storage, study_id):
    ids = bulk.create_running(storage, study_id, [bulk.NewTrial(p, SPACE, a) for p, a, _, _ in TRIALS])
    stored = bulk.finish(storage, [bulk.Finished(i, s, v, {"curves": CURVES}) for i, (_, _, s, v) in zip(ids, TRIALS)])
    assert stored == [True] * len(TRIALS)


def fields(trial):
    return (trial.number, trial.state, trial.values, trial.params, trial.distributions, trial.user_attrs,
            trial.system_attrs, trial.intermediate_values, trial.datetime_start is not None,
            trial.datetime_complete is not None)


def test_bulk_rows_read_back_as_optunas_own(tmp_path):
    by_api, api_id = new_study(tmp_path, "api")
    by_bulk, bulk_id = new_study(tmp_path, "bulk")
    written_by_optuna(by_api, api_id)
    written_in_bulk(by_bulk, bulk_id)
    expected = [fields(t) for t in by_api.get_all_trials(api_id)]
    assert [fields(t) for t in by_bulk.get_all_trials(bulk_id)] == expected
    assert [t.number for t in by_bulk.get_all_trials(bulk_id)] == [0, 1, 2, 3, 4]
    # Optuna itself goes on numbering after a bulk batch, and its study API reads the trials.
    assert by_bulk.create_new_trial(bulk_id) and by_bulk.get_all_trials(bulk_id)[-1].number == 5
    study = optuna.load_study(study_name="bulk", storage=by_bulk)
    assert study.best_trial.params == {"learning_rate": 0.01, "momentum": 0.5}


def test_finish_leaves_a_trial_another_worker_failed(tmp_path):
    storage, study_id = new_study(tmp_path, "s")
    first, second = bulk.create_running(storage, study_id, [bulk.NewTrial(p, SPACE, a) for p, a, _, _ in TRIALS[:2]])
    storage.set_trial_state_values(first, TrialState.FAIL)
    stored = bulk.finish(storage, [bulk.Finished(first, TrialState.COMPLETE, 0.1, {"curves": CURVES}),
                                   bulk.Finished(second, TrialState.COMPLETE, 0.2, {"curves": CURVES})])
    assert stored == [False, True]
    failed, done = storage.get_trial(first), storage.get_trial(second)
    assert failed.state == TrialState.FAIL and failed.value is None and "curves" not in failed.user_attrs
    assert done.state == TrialState.COMPLETE and done.value == 0.2 and done.user_attrs["curves"] == CURVES


def test_a_batch_that_fails_writes_nothing(tmp_path):
    storage, study_id = new_study(tmp_path, "s")
    (trial_id,) = bulk.create_running(storage, study_id, [bulk.NewTrial(TRIALS[0][0], SPACE, {"curves": 1})])
    before = [fields(t) for t in storage.get_all_trials(study_id)]
    # The result adds an attribute the trial already has: the database refuses that row, and
    # the state change before it in the same transaction is undone with it.
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        bulk.finish(storage, [bulk.Finished(trial_id, TrialState.COMPLETE, 0.3, {"curves": CURVES})])
    assert [fields(t) for t in storage.get_all_trials(study_id)] == before


def test_values_optuna_could_not_read_back_are_refused_before_writing(tmp_path):
    storage, study_id = new_study(tmp_path, "s")
    before = [fields(t) for t in storage.get_all_trials(study_id)]
    with pytest.raises(ValueError, match="momentum = 1.5 is outside"):
        bulk.create_running(storage, study_id, [bulk.NewTrial({"learning_rate": 0.1, "momentum": 1.5}, SPACE)])
    (trial_id,) = bulk.create_running(storage, study_id, [bulk.NewTrial(TRIALS[0][0], SPACE)])
    with pytest.raises(ValueError, match="NaN"):
        bulk.finish(storage, [bulk.Finished(trial_id, TrialState.COMPLETE, math.nan)])
    assert [fields(t) for t in storage.get_all_trials(study_id)][:-1] == before
    assert storage.get_trial(trial_id).state == TrialState.RUNNING
