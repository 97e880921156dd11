"""Command-line behaviours beyond the bad-input table: what read-only verbs leave behind,
studies made by other tools, odd file names, and SIGTERM with several workers."""

import os
import subprocess
import sys

import numpy as np
import optuna
import pytest

from sweep.cli import main
from sweep.folders import RESULTS_ENV
from sweep.search import run_study
from sweep.spec import parse_study
from sweep.store.connect import open_storage

TINY = {
    "name": "tiny", "trials": 4, "batch_size": 4, "seed": 1,
    "data": {"source": "synthetic", "items": 40, "inputs": 3, "classes": 3},
    "network": {"epochs": 5},
}


def test_list_on_a_fresh_checkout_says_so_and_creates_nothing(tmp_path, capsys):
    db = tmp_path / "sweep.db"
    assert main(["list", "--storage", f"sqlite:///{db}"]) == 0
    assert "no studies yet" in capsys.readouterr().out
    assert not db.exists()


def test_a_hash_in_the_database_name_is_read_not_misread(tmp_path, capsys):
    db = tmp_path / "a#b.db"
    run_study(parse_study(TINY, str(tmp_path / "t.toml")), open_storage(f"sqlite:///{db}"))
    assert main(["best", "tiny", "--storage", f"sqlite:///{db}"]) == 0
    assert "learning_rate" in capsys.readouterr().out
    assert not (tmp_path / "a").exists()  # no stray file at the name cut at '#'


def test_export_to_an_impossible_folder_is_one_line(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    run_study(parse_study(TINY, str(tmp_path / "t.toml")), open_storage(url))
    (tmp_path / "afile").write_text("x")
    assert main(["export", "tiny", "--out", str(tmp_path / "afile" / "sub"), "--storage", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out" in err and "Traceback" not in err


def test_report_and_robust_all_live_beside_a_study_made_by_another_tool(
    tmp_path, monkeypatch, capsys
):
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    storage = open_storage(url)
    run_study(parse_study(TINY, str(tmp_path / "t.toml")), storage)
    foreign = optuna.create_study(storage=storage, study_name="foreign")
    foreign.optimize(lambda trial: trial.suggest_float("x", 0, 1) ** 2, n_trials=3)
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "results"))
    assert main(["robust", "--all", "--top", "2", "--seeds", "2", "--storage", url]) == 0
    assert main(["report", "--all", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "the search said" in out and "foreign" in out
    assert (tmp_path / "results" / "index.html").exists()


def test_float32_training_keeps_the_rule_state_in_float32():
    from sweep.rules import RULES, make_rule

    for name in RULES:
        rule = make_rule(name, (3, 2), np.float32)
        assert all(getattr(rule, attribute).dtype == np.float32 for attribute in rule.state)


def test_a_database_whose_optuna_tables_are_still_being_created_is_opened_not_refused(tmp_path):
    import sqlite3

    db = tmp_path / "sweep.db"
    connection = sqlite3.connect(db)  # as another worker leaves it midway through creating tables
    connection.execute(
        "CREATE TABLE studies (study_id INTEGER PRIMARY KEY, study_name VARCHAR(512))"
    )
    connection.commit()
    connection.close()
    storage = open_storage(f"sqlite:///{db}")
    run_study(parse_study(TINY, str(tmp_path / "t.toml")), storage)
    assert len(storage.get_all_trials(storage.get_study_id_from_name("tiny"))) == 4


def test_a_database_sqlite_has_analysed_is_still_ours(tmp_path, capsys):
    import sqlite3

    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    run_study(parse_study(TINY, str(tmp_path / "t.toml")), open_storage(url))
    connection = sqlite3.connect(tmp_path / "sweep.db")
    connection.execute("ANALYZE")  # SQLite adds its own sqlite_stat1 table
    connection.close()
    assert main(["best", "tiny", "--storage", url]) == 0
    assert "learning_rate" in capsys.readouterr().out


@pytest.mark.slow
def test_a_run_says_when_it_compiles_the_kernel_and_not_when_it_loads_it(tmp_path):
    # A fresh install's first run pauses for seconds to compile; the pause is said on stderr.
    # The compiled code then comes from the cache (NUMBA_CACHE_DIR, empty at first), silently.
    environment = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    outputs = []
    for name in ("first", "second"):
        study = tmp_path / f"{name}.toml"
        study.write_text(
            f'name = "{name}"\ntrials = 4\nbatch_size = 4\nseed = 3\n'
            '[data]\nsource = "synthetic"\nitems = 40\n[network]\nepochs = 3\n'
        )
        outputs.append(subprocess.run(
            [sys.executable, "-m", "sweep", "run", str(study), "--storage",
             f"sqlite:///{tmp_path / 'sweep.db'}"],
            capture_output=True, text=True, env=environment, check=True,
        ))
    first, second = (output.stderr for output in outputs)
    assert "sweep: compiling the trainer kernel's seed training loop (once" in first
    assert "sweep: compiling the trainer kernel's evaluation loop" in first
    assert "compiling" not in second
    assert "4 trials finished" in outputs[1].stdout
