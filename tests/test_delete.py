"""A study's whole life: `sweep delete` removes one study and its results folder, and asks
first; it refuses while live workers train the study, and a study's ids are never another's;
`make clean` keeps the stored trials."""

import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import optuna
import pytest
from live_run import LONG_BATCHES, start_run, wait_for_running, write_study
from optuna.trial import TrialState

from sweep.cli import main
from sweep.errors import StudyDeleted
from sweep.folders import RESULTS_ENV
from sweep.search import distributions, run_study
from sweep.spec import parse_study
from sweep.store import bulk, running
from sweep.store.connect import open_storage
from sweep.store.delete import delete_study
from sweep.store.studies import open_study

ROOT = Path(__file__).resolve().parent.parent
TINY = {
    "name": "keep", "trials": 3, "batch_size": 3, "seed": 1,
    "data": {"source": "synthetic", "items": 40, "inputs": 3, "classes": 3},
    "network": {"epochs": 4},
}


@pytest.fixture
def two_studies(tmp_path, monkeypatch):
    results = tmp_path / "results"
    monkeypatch.setenv(RESULTS_ENV, str(results))
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    storage = open_storage(url)
    for name in ("keep", "drop"):
        run_study(parse_study({**TINY, "name": name}, str(tmp_path / f"{name}.toml")), storage)
        (results / name).mkdir(parents=True)
        (results / name / "best.json").write_text("{}")
    return url, results


def test_delete_removes_exactly_one_study_and_its_folder(two_studies, capsys):
    url, results = two_studies
    assert main(["delete", "drop", "--yes", "--storage", url]) == 0
    assert "deleted study 'drop' (3 trials)" in capsys.readouterr().out
    assert optuna.get_all_study_names(url) == ["keep"]
    assert len(optuna.load_study(study_name="keep", storage=url).trials) == 3
    assert not (results / "drop").exists() and (results / "keep" / "best.json").exists()


def test_delete_refuses_without_yes_when_not_on_a_terminal(two_studies, capsys, monkeypatch):
    url, results = two_studies
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["delete", "drop", "--storage", url]) == 2
    assert "pass --yes" in capsys.readouterr().err
    assert sorted(optuna.get_all_study_names(url)) == ["drop", "keep"]
    assert (results / "drop").exists()


def test_delete_on_a_terminal_asks_and_a_no_keeps_the_study(two_studies, capsys, monkeypatch):
    url, results = two_studies
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert main(["delete", "drop", "--storage", url]) == 1
    assert sorted(optuna.get_all_study_names(url)) == ["drop", "keep"]
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert main(["delete", "drop", "--storage", url]) == 0
    assert optuna.get_all_study_names(url) == ["keep"]


def test_an_unknown_name_gets_the_closest_stored_names(two_studies, capsys):
    url, _ = two_studies
    assert main(["best", "kepe", "--storage", url]) == 2
    assert "did you mean 'keep'?" in capsys.readouterr().err
    assert main(["delete", "zzz", "--yes", "--storage", url]) == 2
    assert "stored studies: drop, keep" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize(
    ("target", "kept"),
    [
        ("clean", {"README.md", "sweep.db", "sweep.db-wal", "sweep.db-shm", "sweep.db.lock"}),
        ("clean-all", {"README.md"}),
    ],
)
def test_make_clean_keeps_the_stored_trials_and_clean_all_does_not(tmp_path, target, kept):
    results = tmp_path / "results"
    (results / "iris-tpe").mkdir(parents=True)
    for name in ("README.md", "index.html", "sweep.db", "sweep.db-wal", "sweep.db-shm",
                 "sweep.db.lock", "iris-tpe/best.json"):
        (results / name).write_text("x")
    subprocess.run(["make", "-s", "-C", str(ROOT), target, f"RESULTS={results}"], check=True)
    assert {path.name for path in results.iterdir()} == kept


# --- deleting while workers write (issue 26) -------------------------------------------------


def orphans(db: Path) -> dict[str, int]:
    """Rows that belong to no study or no trial, counted per table, read with SQLite alone."""
    connection = sqlite3.connect(db)
    try:
        counts = {
            "trials": "SELECT COUNT(*) FROM trials WHERE study_id NOT IN "
                      "(SELECT study_id FROM studies)",
            "trial_user_attributes": "SELECT COUNT(*) FROM trial_user_attributes WHERE "
                                     "trial_id NOT IN (SELECT trial_id FROM trials)",
            "trial_values": "SELECT COUNT(*) FROM trial_values WHERE "
                            "trial_id NOT IN (SELECT trial_id FROM trials)",
        }
        found = {table: connection.execute(sql).fetchone()[0] for table, sql in counts.items()}
        found["foreign_key_check"] = len(connection.execute("PRAGMA foreign_key_check").fetchall())
        return {table: n for table, n in found.items() if n}
    finally:
        connection.close()


@pytest.mark.slow
def test_delete_during_a_live_run_is_refused_and_with_force_the_run_stops_leaving_no_orphan(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "results"))
    study = write_study(tmp_path, name="del", **LONG_BATCHES)
    db = tmp_path / "sweep.db"
    url = f"sqlite:///{db}"
    process = start_run(study, url)
    try:
        wait_for_running(url, "del", process)
        assert main(["delete", "del", "--yes", "--storage", url]) == 2
        err = capsys.readouterr().err
        assert f"process {process.pid} on this machine" in err and "--force" in err, err
        assert "del" in optuna.get_all_study_names(url)

        assert main(["delete", "del", "--yes", "--force", "--storage", url]) == 0
        out = capsys.readouterr().out
        _, run_err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    deleted = int(re.search(r"deleted study 'del' \((\d+) trials?\)", out).group(1))
    assert deleted >= 4  # at least the batch it was training
    assert process.returncode == 2, run_err
    lines = run_err.strip().splitlines()
    assert lines == ["sweep: error: study 'del' was deleted while this run was writing to it; "
                     "stopped, and nothing more of the run was stored"], run_err
    assert optuna.get_all_study_names(url) == []
    assert orphans(db) == {}
    connection = sqlite3.connect(db)
    assert connection.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 0
    connection.close()


def test_a_new_study_never_inherits_a_deleted_studys_trials_or_ids(tmp_path, monkeypatch):
    # What a run does when its study is deleted under it, step by step in one process: it has
    # a batch RUNNING, the study is deleted, a new study is created, then the run writes.
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "results"))
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    storage = open_storage(url)
    old = parse_study({**TINY, "name": "del"}, str(tmp_path / "del.toml"))
    run_study(old, storage)
    old_id = storage.get_study_id_from_name("del")
    ghost = running.create_running(
        storage, old_id, [{"learning_rate": 0.01, "momentum": 0.5}] * 2, distributions(old),
        [{"learning_rate": 0.01, "momentum": 0.5, "seed": s, "rule": "seed"} for s in (1, 2)],
    )
    old_trial_ids = {t._trial_id for t in storage.get_all_trials(old_id)}
    assert delete_study(storage, "del", force=True) == 5

    fresh = parse_study({**TINY, "name": "fresh"}, str(tmp_path / "fresh.toml"))
    fresh_id = open_study(fresh, storage)
    assert fresh_id > old_id  # never the deleted study's id
    with pytest.raises(StudyDeleted):
        running.create_running(storage, old_id, [{"learning_rate": 0.01, "momentum": 0.5}],
                               distributions(old), [{"seed": 3}])
    with pytest.raises(StudyDeleted):
        bulk.finish(storage, [bulk.Finished(trial_id, TrialState.COMPLETE, 0.5)
                              for trial_id in ghost])
    with pytest.raises(StudyDeleted):
        running.renew_leases(storage, ghost, [{"seed": 1}, {"seed": 2}])
    assert storage.get_all_trials(fresh_id) == []
    run_study(fresh, storage)
    trials = storage.get_all_trials(fresh_id)
    assert [t.number for t in trials] == [0, 1, 2]
    assert not {t._trial_id for t in trials} & old_trial_ids  # trial ids are never reused either


def test_an_old_database_is_made_to_never_reuse_ids_even_those_of_orphans(tmp_path):
    # A database Optuna created (ids reused), holding orphaned trials of a deleted study 3,
    # as the earlier delete left them: no new study may take id 3 and adopt them.
    db = tmp_path / "sweep.db"
    url = f"sqlite:///{db}"
    for name in ("a", "b"):
        study = optuna.create_study(storage=url, study_name=name)
        study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    connection = sqlite3.connect(db)
    connection.execute("INSERT INTO trials (trial_id, number, study_id, state) "
                       "VALUES (9, 0, 3, 'COMPLETE')")
    connection.commit()
    connection.close()
    storage = open_storage(url)
    with storage.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    new = optuna.create_study(storage=storage, study_name="new")
    assert new._study_id == 4
    new.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    assert new.trials[0]._trial_id == 10
    assert [len(optuna.load_study(study_name=n, storage=url).trials) for n in ("a", "b")] == [2, 2]
    assert delete_study(storage, "b") == 2
    again = optuna.create_study(storage=storage, study_name="again")
    assert again._study_id == 5


def test_delete_of_a_foreign_study_named_as_the_results_root_keeps_its_files(
    tmp_path, monkeypatch, capsys
):
    # Another tool's studies named as a folder cannot be: far too long, the gallery's index,
    # the database, the momentum page's plot folder. `delete` removes each from the storage
    # and never touches those files.
    results = tmp_path / "results"
    monkeypatch.setenv(RESULTS_ENV, str(results))
    results.mkdir()
    url = f"sqlite:///{results / 'sweep.db'}"
    names = ["x" * 5000, "momentum", "index.html", "sweep.db", "Sweep.DB-wal"]
    for name in names:
        optuna.create_study(storage=url, study_name=name).optimize(
            lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    capsys.readouterr()
    assert main(["report", "--all", "--storage", url]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    skipped = [line for line in out.splitlines() if line.startswith("skipped")]
    assert len(skipped) == len(names), out
    assert "(5000 characters)" in out and "x" * 100 not in out
    assert (results / "sweep.db").is_file() and (results / "index.html").is_file()
    (results / "momentum").mkdir(exist_ok=True)
    (results / "momentum" / "claim-1.png").write_bytes(b"png")
    for name in names:
        assert main(["delete", name, "--yes", "--storage", url]) == 0, capsys.readouterr().err
    out, err = capsys.readouterr()
    assert err == "" and out.count("deleted study") == len(names) and "x" * 100 not in out
    assert optuna.get_all_study_names(url) == []
    assert (results / "momentum" / "claim-1.png").read_bytes() == b"png"
