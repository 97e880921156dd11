"""A study's whole life: `sweep delete` removes one study and its results folder, and asks
first; `make clean` keeps the stored trials."""

import shutil
import subprocess
from pathlib import Path

import optuna
import pytest

from sweep.cli import main
from sweep.folders import RESULTS_ENV
from sweep.search import run_study
from sweep.spec import parse_study
from sweep.store.connect import open_storage

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
