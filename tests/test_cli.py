"""Command-line behaviours beyond the bad-input table: what read-only verbs leave behind,
studies made by other tools, odd file names, numbers as they are printed, studies every trial
of which diverged, and ranges too wide to draw."""

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


def test_report_and_confirm_all_live_beside_a_study_made_by_another_tool(
    tmp_path, monkeypatch, capsys
):
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    storage = open_storage(url)
    run_study(parse_study(TINY, str(tmp_path / "t.toml")), storage)
    foreign = optuna.create_study(storage=storage, study_name="foreign")
    foreign.optimize(lambda trial: trial.suggest_float("x", 0, 1) ** 2, n_trials=3)
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "results"))
    assert main(["confirm", "--all", "--networks", "20", "--storage", url]) == 0
    assert main(["report", "--all", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "the search said" in out and "foreign" in out
    assert (tmp_path / "results" / "index.html").exists()


def test_float32_training_keeps_the_rule_state_in_float32():
    from sweep.rules import make_rule, rule_names

    for name in rule_names():
        rule = make_rule(name, (3, 2), np.float32)
        assert rule.memory.dtype == np.float32


def test_a_float32_study_trains_replays_and_confirms_in_float32(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    storage = open_storage(url)
    for name, precision in (("f64", "float64"), ("f32", "float32")):
        study = {**TINY, "name": name, "network": {"epochs": 5, "precision": precision}}
        run_study(parse_study(study, str(tmp_path / f"{name}.toml")), storage)
    values = {name: [t.value for t in optuna.load_study(study_name=name, storage=url).trials]
              for name in ("f64", "f32")}
    # The same networks in the other arithmetic: close, and not the same numbers.
    assert values["f32"] != values["f64"]
    assert np.allclose(values["f32"], values["f64"], rtol=1e-4)
    assert main(["replay", "f32", "0", "--storage", url]) == 0
    assert "identical" in capsys.readouterr().out
    assert main(["confirm", "f32", "--networks", "20", "--storage", url]) == 0


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
    # A run of studies with two rules compiles the first rule's loop here and, meanwhile, the
    # evaluation loop and the second rule's loop in another process, which it then loads.
    outputs = []
    for names in (("first", "first-heavy-ball"), ("second", "second-heavy-ball")):
        studies = []
        for name in names:
            studies.append(tmp_path / f"{name}.toml")
            rule = "heavy-ball" if name.endswith("heavy-ball") else "seed"
            studies[-1].write_text(
                f'name = "{name}"\ntrials = 4\nbatch_size = 4\nseed = 3\n'
                '[data]\nsource = "synthetic"\nitems = 40\n'
                f'[network]\nepochs = 3\nrule = "{rule}"\n'
            )
        outputs.append(subprocess.run(
            [sys.executable, "-m", "sweep", "run", *map(str, studies), "--no-confirm",
             "--storage", f"sqlite:///{tmp_path / 'sweep.db'}"],
            capture_output=True, text=True, env=environment, check=True,
        ))
    first, second = (output.stderr for output in outputs)
    assert "sweep: compiling the trainer kernel's seed training loop (once" in first
    assert ("sweep: compiling the evaluation loop and the heavy-ball training loop alongside, "
            "in another process (once" in first)
    assert "kernel's evaluation loop" not in first and "kernel's heavy-ball" not in first
    assert "compiling" not in second
    assert outputs[1].stdout.count("4 trials finished") == 2
    # The Python API says so too: a rule no run has compiled yet.
    api = subprocess.run(
        [sys.executable, "-c", "import sweep; sweep.train_many(sweep.load_dataset('iris'), "
         "[0.1, 0.2], 0.5, [1, 2], epochs=1, rule='nesterov', arithmetic='compiled')"],
        capture_output=True, text=True, env=environment, check=True,
    )
    assert "sweep: compiling the trainer kernel's nesterov training loop (once" in api.stderr


@pytest.mark.parametrize(("value", "shown"), [
    (0.9999999999999999, "0.9999999999999999"),  # not 1: a momentum of 1 is out of range
    (0.95000000001, "0.95000000001"),            # not the 0.95 of a range's edge
    (0.122628395, "0.122628"),                   # six digits, as usual
    (0.23720000004, "0.23720000004"),            # would read as 0.2372 exactly
    (1.0, "1"), (0.001, "0.001"), (2.5e-07, "2.5e-07"), (123456789.0, "1.23457e+08"),
])
def test_a_number_that_rounds_to_a_round_one_it_is_not_is_printed_in_full(value, shown):
    from sweep.cli import number_text

    assert number_text(value) == shown
    assert float(number_text(value)) == value or len(shown.replace(".", "")) >= 6


def test_a_rounding_that_only_drops_a_trailing_zero_is_kept_short():
    from sweep.cli import number_text

    # 0.23720 to four digits is 0.2372: no round number a reader would take it for exactly.
    assert number_text(0.2371974895921305, 4) == "0.2372"
    assert number_text(0.2371974895921305, 5) == "0.2372"


def test_best_of_a_study_whose_every_trial_diverged_says_so(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    wild = tmp_path / "wild.toml"
    wild.write_text('name = "wild"\ntrials = 4\nbatch_size = 4\n'
                    '[data]\nsource = "synthetic"\nitems = 40\n[network]\nepochs = 5\n'
                    '[search.learning_rate]\nfixed = 50.0\n')
    assert main(["run", str(wild), "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "wild: warning: all 4 trials diverged, at every learning rate tried" in out
    assert main(["best", "wild", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sweep: error: study 'wild' has no completed trial yet: all 4 trials "
                          "diverged"), err


def test_a_range_too_wide_to_draw_is_one_line_and_report_all_skips_it(tmp_path, monkeypatch,
                                                                        capsys):
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "results"))
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    wide = tmp_path / "wide.toml"
    wide.write_text('name = "wide"\ntrials = 4\nbatch_size = 4\n'
                    '[data]\nsource = "synthetic"\nitems = 40\n[network]\nepochs = 3\n'
                    '[sampler]\nname = "grid"\n[search.learning_rate]\nlow = 1e307\n'
                    'high = 1.7e308\npoints = 2\n[search.momentum]\npoints = 2\n')
    assert main(["run", str(wide), "--storage", url, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["report", "wide", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "wide/landscape.png: cannot draw it" in err and "too wide to draw" in err
    assert main(["report", "--all", "--storage", url]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "RuntimeWarning" not in err, err
    assert "skipped study 'wide': " in out and "index: wrote" in out
