"""Start-up: what the quick commands import. Times vary by machine; the modules they import do
not, and they are what made `sweep --help` take seconds."""

import subprocess
import sys

from sweep.search import run_study
from sweep.spec import parse_study
from sweep.store.connect import open_storage

TINY = {
    "name": "tiny", "trials": 3, "batch_size": 3, "seed": 1,
    "data": {"source": "synthetic", "items": 40, "inputs": 3, "classes": 3},
    "network": {"epochs": 4},
}
HEAVY = ("pandas", "scipy", "matplotlib", "sweep.train", "sweep.report")


def imported_after(code: str, cwd) -> set[str]:
    probe = (
        "import sys\n" + code
        + "\nprint(' '.join(m for m in sys.modules if m in "
        + repr(HEAVY + ("optuna", "sqlalchemy")) + "))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True, check=True
    )
    return set(result.stdout.split("\n")[-2].split())


def test_help_and_usage_errors_import_no_database_or_numeric_library(tmp_path):
    code = (
        "from sweep.cli import build_parser\n"
        "build_parser().format_help()\n"
        "try:\n    build_parser().parse_args(['run', '--storage', 'postgresql://u:pw@h/db'])\n"
        "except SystemExit:\n    pass"
    )
    assert imported_after(code, tmp_path) == set()


def test_list_and_best_import_no_plotting_scipy_pandas_or_trainer(tmp_path):
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    run_study(parse_study(TINY, str(tmp_path / "t.toml")), open_storage(url))
    code = (
        "from sweep.cli import main\n"
        f"assert main(['list', '--storage', {url!r}]) == 0\n"
        f"assert main(['best', 'tiny', '--storage', {url!r}]) == 0"
    )
    assert imported_after(code, tmp_path) == {"optuna", "sqlalchemy"}


def test_the_public_names_are_the_functions_even_after_their_modules_are_imported(tmp_path):
    code = (
        "import sweep.train, sweep.sources\nimport sweep\n"
        "assert sweep.train is sweep.train_many.__globals__['train']\n"
        "assert sweep.load_dataset.__module__ == 'sweep.sources'\n"
        "assert set(sweep.__all__) <= set(dir(sweep))"
    )
    assert "pandas" not in imported_after(code, tmp_path)


def test_run_on_a_full_study_adds_nothing_without_loading_the_search(tmp_path):
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    study = tmp_path / "tiny.toml"
    study.write_text(
        'name = "tiny"\ntrials = 3\nbatch_size = 3\nseed = 1\n[data]\nsource = "synthetic"\n'
        "items = 40\ninputs = 3\nclasses = 3\n[network]\nepochs = 4\n"
    )
    code = (
        "from sweep.cli import main\n"
        f"assert main(['run', {str(study)!r}, '--quiet', '--storage', {url!r}]) == 0\n"
    )
    assert "sweep.train" in imported_after(code, tmp_path)  # the first run trains
    again = imported_after(code, tmp_path)
    assert "scipy" not in again and "sweep.train" not in again
