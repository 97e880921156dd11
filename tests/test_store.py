"""The storage seam: batches written by sweep.store.bulk read back exactly as the same trials
written by Optuna's API, and the Optuna behaviour the seam relies on (stored datetimes, the read
cache, leases) is pinned, so that a new Optuna release that changes it fails here."""

import math
import os
import socket
import time
from datetime import datetime, timedelta, timezone

import optuna
import pytest
import sqlalchemy
from optuna.distributions import FloatDistribution
from optuna.storages._rdb import models
from optuna.trial import TrialState

from sweep.errors import SweepError
from sweep.store import bulk, running, studies
from sweep.store.connect import open_storage

SPACE = {
    "learning_rate": FloatDistribution(1e-3, 1.0, log=True),
    "momentum": FloatDistribution(0.0, 0.95),
}
CURVES = {"train_loss": [0.9, 0.5, None], "val_loss": [1.0, 0.6, None], "diverged_epoch": 3}
# Intermediate values as trial.report stores them, non-finite ones included.
INTERMEDIATE = {1: 1.0, 2: 0.6, 3: math.nan, 4: math.inf, 5: -math.inf}
# (params, user attrs, end state, value): complete, pruned with a value, diverged without one,
# and an infinite value (stored as a type flag, not a number).
TRIALS = [
    (
        {"learning_rate": 0.01, "momentum": 0.5},
        {"sweep": {"seed": 1, "host": "h"}},
        TrialState.COMPLETE,
        0.125,
    ),
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
        template = optuna.trial.create_trial(
            state=TrialState.RUNNING, params=params, distributions=SPACE, user_attrs=attrs
        )
        trial_id = storage.create_new_trial(study_id, template_trial=template)
        storage.set_trial_user_attr(trial_id, "curves", CURVES)
        for step, reported in INTERMEDIATE.items():
            storage.set_trial_intermediate_value(trial_id, step, reported)
        storage.set_trial_state_values(trial_id, state, None if value is None else [value])


def written_in_bulk(storage, study_id):
    ids = bulk.create_running(
        storage, study_id, [bulk.NewTrial(p, SPACE, a) for p, a, _, _ in TRIALS]
    )
    stored = bulk.finish(
        storage,
        [
            bulk.Finished(i, s, v, {"curves": CURVES}, intermediate_values=INTERMEDIATE)
            for i, (_, _, s, v) in zip(ids, TRIALS)
        ],
    )
    assert stored == [True] * len(TRIALS)


def fields(trial):
    return (
        trial.number,
        trial.state,
        trial.values,
        trial.params,
        trial.distributions,
        trial.user_attrs,
        trial.system_attrs,
        {step: repr(value) for step, value in trial.intermediate_values.items()},  # NaN != NaN
        trial.datetime_start is not None,
        trial.datetime_complete is not None,
    )


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
    first, second = bulk.create_running(
        storage, study_id, [bulk.NewTrial(p, SPACE, a) for p, a, _, _ in TRIALS[:2]]
    )
    storage.set_trial_state_values(first, TrialState.FAIL)
    stored = bulk.finish(
        storage,
        [
            bulk.Finished(first, TrialState.COMPLETE, 0.1, {"curves": CURVES}),
            bulk.Finished(second, TrialState.COMPLETE, 0.2, {"curves": CURVES}),
        ],
    )
    assert stored == [False, True]
    failed, done = storage.get_trial(first), storage.get_trial(second)
    assert (
        failed.state == TrialState.FAIL
        and failed.value is None
        and "curves" not in failed.user_attrs
    )
    assert (
        done.state == TrialState.COMPLETE
        and done.value == 0.2
        and done.user_attrs["curves"] == CURVES
    )


def test_a_batch_that_fails_writes_nothing(tmp_path):
    storage, study_id = new_study(tmp_path, "s")
    (trial_id,) = bulk.create_running(
        storage, study_id, [bulk.NewTrial(TRIALS[0][0], SPACE, {"curves": 1})]
    )
    before = [fields(t) for t in storage.get_all_trials(study_id)]
    # The result adds an attribute the trial already has: the database refuses that row, and
    # the state change before it in the same transaction is undone with it.
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        bulk.finish(
            storage, [bulk.Finished(trial_id, TrialState.COMPLETE, 0.3, {"curves": CURVES})]
        )
    assert [fields(t) for t in storage.get_all_trials(study_id)] == before


def test_values_optuna_could_not_read_back_are_refused_before_writing(tmp_path):
    storage, study_id = new_study(tmp_path, "s")
    before = [fields(t) for t in storage.get_all_trials(study_id)]
    with pytest.raises(ValueError, match="momentum = 1.5 is outside"):
        bulk.create_running(
            storage, study_id, [bulk.NewTrial({"learning_rate": 0.1, "momentum": 1.5}, SPACE)]
        )
    (trial_id,) = bulk.create_running(storage, study_id, [bulk.NewTrial(TRIALS[0][0], SPACE)])
    with pytest.raises(ValueError, match="NaN"):
        bulk.finish(storage, [bulk.Finished(trial_id, TrialState.COMPLETE, math.nan)])
    assert [fields(t) for t in storage.get_all_trials(study_id)][:-1] == before
    assert storage.get_trial(trial_id).state == TrialState.RUNNING


# --- what a new Optuna release could break ----------------------------------------------------


def raw_datetimes(storage, trial_id):
    table = models.TrialModel.__table__
    query = sqlalchemy.select(table.c.datetime_start, table.c.datetime_complete).where(
        table.c.trial_id == trial_id
    )
    with storage.engine.connect() as connection:
        return connection.execute(query).one()


def test_stored_datetimes_are_naive_utc_like_optunas_own(tmp_path, monkeypatch):
    # Away from UTC, so that local time and UTC differ by hours: a write in local time would show.
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        storage, study_id = new_study(tmp_path, "s")
        before = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=1)
        (by_bulk,) = bulk.create_running(storage, study_id, [bulk.NewTrial(TRIALS[0][0], SPACE)])
        bulk.finish(storage, [bulk.Finished(by_bulk, TrialState.COMPLETE, 0.1)])
        by_api = storage.create_new_trial(study_id)
        storage.set_trial_state_values(by_api, TrialState.COMPLETE, [0.2])
        after = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(seconds=1)
        for trial_id in (by_bulk, by_api):
            start, complete = raw_datetimes(storage, trial_id)
            assert start.tzinfo is None and complete.tzinfo is None
            assert before <= start <= complete <= after  # naive UTC, not local time
            # Optuna reads them back as naive local time, both ways alike.
            read = storage.get_trial(trial_id)
            assert read.datetime_start - start == timedelta(hours=5, minutes=30)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_the_cached_reader_sees_trials_finished_by_another_handle(tmp_path):
    storage, study_id = new_study(tmp_path, "s")
    reader = studies.trial_reader(storage)
    (trial_id,) = bulk.create_running(storage, study_id, [bulk.NewTrial(TRIALS[0][0], SPACE)])
    assert [t.state for t in studies.read_frozen(reader, study_id)] == [
        TrialState.WAITING,
        TrialState.RUNNING,
    ]
    other = open_storage(str(storage.url))
    bulk.finish(other, [bulk.Finished(trial_id, TrialState.COMPLETE, 0.5, {"curves": CURVES})])
    again = studies.read_frozen(reader, study_id)
    assert again[1].state == TrialState.COMPLETE and again[1].value == 0.5


def test_running_trials_carry_a_lease_and_dead_workers_trials_are_failed(tmp_path, monkeypatch):
    storage, study_id = new_study(tmp_path, "s")
    settings = [{"learning_rate": 0.01, "momentum": 0.5, "seed": 1, "rule": "seed"}] * 3
    ids = running.create_running(storage, study_id, [TRIALS[0][0]] * 3, SPACE, settings)
    info = studies.trial_info(storage.get_trial(ids[0]))
    assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
    assert info["lease_until"] > time.time() + running.LEASE_SECONDS - 60
    assert {k: info[k] for k in settings[0]} == settings[0]
    # Trial 1's worker is gone (a process id no process has); trial 2's lease ran out.
    storage.set_trial_user_attr(ids[1], studies.TRIAL_ATTR, {**info, "pid": 2**22 + 17})
    storage.set_trial_user_attr(
        ids[2], studies.TRIAL_ATTR, {**info, "lease_until": time.time() - 1}
    )
    assert running.fail_abandoned(storage, studies.read_frozen(storage, study_id)) == 2
    states = [storage.get_trial(i).state for i in ids]
    assert states == [TrialState.RUNNING, TrialState.FAIL, TrialState.FAIL]


def test_stored_spec_refuses_foreign_studies_unless_asked(tmp_path):
    storage, _ = new_study(tmp_path, "foreign")
    with pytest.raises(SweepError, match="was not made by momentum-sweep"):
        studies.stored_spec(storage, "foreign")
    assert studies.stored_spec(storage, "foreign", foreign_ok=True) is None
    with pytest.raises(SweepError, match="no study named 'missing'"):
        studies.stored_spec(storage, "missing", foreign_ok=True)


def test_summaries_agree_with_optunas_own(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'summaries.db'}")
    lowest = optuna.create_study(storage=storage, study_name="lowest")
    highest = optuna.create_study(storage=storage, study_name="highest", direction="maximize")
    optuna.create_study(storage=storage, study_name="empty")
    optuna.create_study(storage=storage, study_name="two", directions=["minimize", "maximize"])
    for study in (lowest, highest):
        for value in (0.5, 0.25, -math.inf, 2.0):
            study.add_trial(optuna.trial.create_trial(value=value))
        study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED, value=-9.0))
        study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
    expected = sorted(
        (s.study_name, s.n_trials, s.best_trial.value if s.best_trial else None)
        for s in optuna.get_all_study_summaries(storage, include_best_trial=True)
    )
    assert studies.summaries(storage) == expected
    assert expected[2] == ("lowest", 6, -math.inf)


def test_the_searchs_reader_reads_optunas_trials_but_their_intermediate_values(tmp_path):
    storage, study_id = new_study(tmp_path, "read")
    written_in_bulk(storage, study_id)
    reader = studies.trial_reader(storage)
    first = reader.get_all_trials(study_id, deepcopy=False)
    # A new trial and a finished one are read again, as Optuna's own cache does.
    more = bulk.create_running(storage, study_id, [bulk.NewTrial(TRIALS[0][0], SPACE, {})])
    again = reader.get_all_trials(study_id, deepcopy=False)
    bulk.finish(storage, [bulk.Finished(more[0], TrialState.COMPLETE, 0.5, {})])
    finished = reader.get_all_trials(study_id, deepcopy=False)
    assert len(first) == 5 and len(again) == 6 and finished[-1].state == TrialState.COMPLETE

    def without_intermediate(trial):
        return fields(trial)[:7] + fields(trial)[8:]

    own = storage.get_all_trials(study_id)
    assert [without_intermediate(t) for t in finished] == [without_intermediate(t) for t in own]
    assert all(t.intermediate_values == {} for t in finished)
    assert own[1].intermediate_values[4] == math.inf  # stored, only not read here


# ---------------------------------------------------------------------------------------------
# `sweep list` read with sqlite3 alone


def _listed_database(tmp_path) -> str:
    """A SQLite database with every trial state, both directions, infinite values and a study
    of two objectives, written through Optuna."""
    url = f"sqlite:///{tmp_path / 'listed.db'}"
    storage = open_storage(url)
    lowest = optuna.create_study(study_name="lowest", storage=storage)
    for state, value in [(TrialState.COMPLETE, 0.5), (TrialState.COMPLETE, -math.inf),
                         (TrialState.PRUNED, 0.1), (TrialState.FAIL, None)]:
        lowest.tell(lowest.ask(), value if state == TrialState.COMPLETE else None, state=state)
    lowest.ask()  # left RUNNING
    lowest.enqueue_trial({})  # WAITING
    highest = optuna.create_study(study_name="highest", storage=storage, direction="maximize")
    for value in (0.25, 0.75, math.inf):
        highest.tell(highest.ask(), value)
    both = optuna.create_study(study_name="both", storage=storage,
                               directions=["minimize", "maximize"])
    both.tell(both.ask(), [1.0, 2.0])
    optuna.create_study(study_name="empty", storage=storage)
    return url


def test_the_quick_listing_gives_the_rows_optuna_s_storage_gives(tmp_path):
    from sweep.cli import _listing
    from sweep.store.listing import quick_listing

    url = _listed_database(tmp_path)
    quick = quick_listing(url)
    assert quick == _listing(url)
    assert [row[0] for row in quick] == ["both", "empty", "highest", "lowest"]
    assert dict((row[0], row[2]) for row in quick) == {
        "both": None, "empty": None, "highest": math.inf, "lowest": -math.inf}
    assert dict((row[0], row[3]) for row in quick)["lowest"] == (
        "2 complete, 1 pruned or diverged, 1 failed, 1 running, 1 waiting")


def test_the_quick_listing_leaves_to_optuna_what_it_does_not_know(tmp_path):
    import sqlite3

    from sweep.store.listing import quick_listing

    url = _listed_database(tmp_path)
    assert quick_listing("postgresql://u@localhost/db") is None
    assert quick_listing(f"sqlite:///{tmp_path / 'none.db'}") is None
    assert quick_listing(url + "?timeout=5") is None
    connection = sqlite3.connect(tmp_path / "listed.db")
    with connection:  # a state this Optuna does not write, as a damaged byte could read
        connection.execute("UPDATE trials SET state = 'COMPLETX' WHERE trial_id = 1")
    assert quick_listing(url) is None
    with connection:
        connection.execute("UPDATE trials SET state = 'COMPLETE' WHERE trial_id = 1")
        connection.execute("UPDATE alembic_version SET version_num = 'v0.9.0.a'")
    connection.close()
    assert quick_listing(url) is None  # an older schema: Optuna says what to do
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    assert quick_listing(f"sqlite:///{tmp_path / 'junk.db'}") is None


def test_sweep_list_of_a_sqlite_file_loads_neither_optuna_nor_sqlalchemy(tmp_path):
    import subprocess
    import sys

    url = _listed_database(tmp_path)
    script = ("import sys\nfrom sweep.cli import main\n"
              f"assert main(['list', '--storage', {url!r}]) == 0\n"
              "print(sorted(m for m in ('optuna', 'sqlalchemy', 'alembic') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    assert "lowest" in done.stdout and done.stdout.strip().endswith("[]"), done.stdout


def test_a_run_that_loses_the_race_to_create_the_tables_opens_them_again(tmp_path, monkeypatch):
    # A reader opening a half-made SQLite file creates the missing tables too; the run that
    # was making them then hit SQLite's "table ... already exists" (an OperationalError) and
    # stopped with exit 2. It now opens the tables the other process made.
    from sweep.store import connect

    made = optuna.storages.RDBStorage
    calls = []

    def racing(url, **kwargs):
        calls.append(url)
        if len(calls) == 1:
            made(url, **kwargs)  # the other process's tables
            raise sqlalchemy.exc.OperationalError(
                "CREATE TABLE trial_user_attributes", {},
                Exception("table trial_user_attributes already exists"))
        return made(url, **kwargs)

    monkeypatch.setattr(connect.optuna.storages, "RDBStorage", racing)
    monkeypatch.setattr(connect.time, "sleep", lambda seconds: None)
    storage = open_storage(f"sqlite:///{tmp_path / 'raced.db'}")
    assert len(calls) == 2 and storage.get_all_studies() == []


def test_any_other_operational_error_opening_a_storage_is_one_line(tmp_path, monkeypatch):
    from sweep.store import connect

    def failing(url, **kwargs):
        raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(connect.optuna.storages, "RDBStorage", failing)
    with pytest.raises(connect.StorageError, match="cannot open storage .*: disk I/O error"):
        open_storage(f"sqlite:///{tmp_path / 'io.db'}")
