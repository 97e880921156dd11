"""`sweep check`: an fsck for the results store. It finds a flipped value, orphans, damaged rows
and dead RUNNING trials, one line each, and repairs only orphans and dead RUNNING trials, only
with --repair. `sweep replay` compares the stored value too, and a damaged row is one line
naming its trial in every command that reads it."""

from __future__ import annotations

import signal
import sqlite3
import struct
import subprocess
import sys

import pytest
from optuna.trial import TrialState

from sweep.cli import main
from sweep.search import distributions
from sweep.spec import load_study
from sweep.store import running
from sweep.store.connect import open_storage
from sweep.store.studies import TRIAL_ATTR, open_study

TINY = """\
name = "tiny"
trials = 6
batch_size = 3
seed = 1
folds = 2
[data]
source = "synthetic"
items = 40
inputs = 2
classes = 2
[network]
epochs = 5
hidden = 2
"""


@pytest.fixture
def study(tmp_path, monkeypatch):
    """A finished 6-trial study (two networks a trial); returns (url, database file)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOMENTUM_SWEEP_RESULTS", str(tmp_path / "results"))
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    (tmp_path / "tiny.toml").write_text(TINY)
    db = tmp_path / "sweep.db"
    url = f"sqlite:///{db}"
    assert main(["run", str(tmp_path / "tiny.toml"), "--quiet", "--storage", url]) == 0
    yield url, db
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def sql(db, statement: str, *parameters):
    connection = sqlite3.connect(db)
    try:
        rows = connection.execute(statement, parameters).fetchall()
        connection.commit()
        return rows
    finally:
        connection.close()


def flip_a_bit_of_the_best_value(db) -> int:
    """Flip one mantissa bit of the lowest stored value, as a bad disk would; its trial's
    number. The database still passes SQLite's integrity check."""
    trial_id, number, value = sql(
        db, "SELECT v.trial_id, t.number, v.value FROM trial_values v JOIN trials t "
            "ON t.trial_id = v.trial_id ORDER BY v.value LIMIT 1")[0]
    bits = struct.unpack("<Q", struct.pack("<d", value))[0] ^ (1 << 50)
    flipped = struct.unpack("<d", struct.pack("<Q", bits))[0]
    sql(db, "UPDATE trial_values SET value = ? WHERE trial_id = ?", flipped, trial_id)
    return number


def add_orphans(db) -> None:
    """Trials of a study that is gone, as a run writing after `sweep delete` left them."""
    for trial_id in (900, 901):
        sql(db, "INSERT INTO trials (trial_id, number, study_id, state) "
                "VALUES (?, 0, 77, 'COMPLETE')", trial_id)
        sql(db, "INSERT INTO trial_values (trial_id, objective, value, value_type) "
                "VALUES (?, 0, 0.5, 'FINITE')", trial_id)


def add_dead_running_trial(url, folder) -> int:
    """A RUNNING trial leased to a process that has ended; its number."""
    spec = load_study(folder / "tiny.toml")
    storage = open_storage(url)
    (trial_id,) = running.create_running(
        storage, open_study(spec, storage), [{"learning_rate": 0.01, "momentum": 0.5}],
        distributions(spec), [{"learning_rate": 0.01, "momentum": 0.5, "seed": 3, "rule": "seed"}])
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    info = storage.get_trial(trial_id).user_attrs[TRIAL_ATTR]
    storage.set_trial_user_attr(trial_id, TRIAL_ATTR, {**info, "pid": int(ended.stdout)})
    number = storage.get_trial(trial_id).number
    storage.engine.dispose()
    return number


def test_a_sound_store_has_no_findings(study, capsys):
    url, _ = study
    assert main(["check", "--storage", url]) == 0
    assert capsys.readouterr().out == (
        f"no problems found in {url} (1 study, 6 trials checked against their curves)\n")


def test_check_finds_a_flipped_value_an_orphan_and_a_dead_running_trial_and_repairs_two(
    study, tmp_path, capsys
):
    url, db = study
    flipped = flip_a_bit_of_the_best_value(db)
    add_orphans(db)
    dead = add_dead_running_trial(url, tmp_path)
    assert sql(db, "PRAGMA integrity_check") == [("ok",)]  # invisible to the database's own
    capsys.readouterr()

    assert main(["check", "--storage", url]) == 1
    lines = capsys.readouterr().out.splitlines()
    value = [line for line in lines if line.startswith("value:")]
    assert len(value) == 1 and f"study 'tiny' trial {flipped}: stored value" in value[0]
    assert "but its stored curves give" in value[0]
    orphan = [line for line in lines if line.startswith("orphan:")]
    assert orphan[0] == ("orphan: 2 rows of trials belong to study id 77, which is gone; "
                         "`sweep check --repair` repairs it")
    assert any("trial_values belong to trials that are gone" in line for line in orphan)
    (running_line,) = [line for line in lines if line.startswith("running:")]
    assert running_line.startswith(f"running: study 'tiny' trial {dead}: RUNNING, but its process")
    assert "has ended" in running_line
    assert lines[-1].endswith(f"`sweep check --repair` repairs {len(orphan) + 1} of them")
    assert sql(db, "SELECT COUNT(*) FROM trials WHERE state = 'RUNNING'") == [(1,)]  # no repair

    assert main(["check", "--repair", "--storage", url]) == 1  # the value is not repaired
    out = capsys.readouterr().out
    assert "; repaired" in out and "failed, and the next run retries it" in out
    assert sql(db, "SELECT COUNT(*) FROM trials WHERE study_id = 77") == [(0,)]
    assert sql(db, "SELECT state FROM trials WHERE number = ?", dead) == [("FAIL",)]

    assert main(["check", "--storage", url]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == ["value"]


def test_replay_compares_the_stored_value_with_its_curves(study, capsys):
    url, db = study
    assert main(["replay", "tiny", "0", "--storage", url]) == 0
    assert "the value its curves give" in capsys.readouterr().out
    flipped = flip_a_bit_of_the_best_value(db)
    assert main(["replay", "tiny", str(flipped), "--storage", url]) == 1
    out = capsys.readouterr().out
    assert "curves identical" in out and "value DIFFERENT: stored value" in out


@pytest.mark.parametrize("verb", [["list"], ["best", "tiny"], ["export", "tiny"],
                                  ["report", "tiny"]])
@pytest.mark.parametrize("damage", ["value type", "curves"])
def test_a_damaged_row_is_one_line_naming_its_trial(study, capsys, verb, damage):
    url, db = study
    if damage == "value type":  # one byte of the enum's name
        sql(db, "UPDATE trial_values SET value_type = 'FINITF' WHERE trial_id = "
                "(SELECT trial_id FROM trials WHERE number = 4)")
    else:  # one byte of the curves' JSON
        sql(db, "UPDATE trial_user_attributes SET value_json = "
                "substr(value_json, 1, 40) || '#' || substr(value_json, 42) WHERE key = 'curves' "
                "AND trial_id = (SELECT trial_id FROM trials WHERE number = 4)")
    capsys.readouterr()
    if verb == ["list"] and damage == "curves":
        assert main([*verb, "--storage", url]) == 0  # list reads no curves
        return
    assert main([*verb, "--storage", url]) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert "study 'tiny' trial 4: its " in err and "sweep check" in err, err

    assert main(["check", "--storage", url]) == 1
    out = capsys.readouterr().out
    assert out.startswith("damaged: study 'tiny' trial 4: its "), out


def test_a_run_killed_mid_batch_leaves_a_dead_running_trial_check_names(study, tmp_path,
                                                                          capsys):
    url, db = study
    dead = add_dead_running_trial(url, tmp_path)
    assert main(["check", "--repair", "--storage", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"running: study 'tiny' trial {dead}: RUNNING")
    assert lines[-1].endswith("1 repaired")
    storage = open_storage(url)
    trial = storage.get_all_trials(storage.get_study_id_from_name("tiny"))[dead]
    assert trial.state == TrialState.FAIL
