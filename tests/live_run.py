"""Helpers for tests that act on a `sweep run` while it runs: a study file, the run started as
a separate process, and waiting (on the storage, never a fixed sleep) until it has a batch in
flight."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

from optuna.trial import TrialState

from sweep.store.connect import open_storage

STUDY = """
name = "{name}"
trials = {trials}
batch_size = {batch}
seed = 5
# One network a trial: the batch lengths below were measured so (the default is 5 folds x 2).
folds = 1
repeats = 1
[data]
source = "synthetic"
items = {items}
inputs = 4
classes = 3
[network]
epochs = {epochs}
"""

# Batches of about 3 s with the compiled kernel, so that one is surely seen in flight: at 300
# items and 200 epochs a batch took 0.1 s and the run could end between two looks.
LONG_BATCHES = dict(trials=12, batch=4, items=2000, epochs=2000)
# Generous: a loaded machine starts Python, imports and opens the storage slowly.
WAIT_SECONDS = 120.0


def write_study(folder: Path, name="work", trials=24, batch=4, items=80, epochs=15) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(STUDY.format(name=name, trials=trials, batch=batch, items=items, epochs=epochs))
    return path


def trials_of(url: str, name: str):
    storage = open_storage(url, create=False)
    try:
        return storage.get_all_trials(storage.get_study_id_from_name(name))
    finally:
        storage.engine.dispose()


def sweep_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "sweep", *args]


def start_run(study: Path, url: str, *extra: str, **popen) -> subprocess.Popen:
    """`sweep run STUDY --storage URL --quiet` in a process of its own (stdout and stderr
    piped unless ``popen`` says otherwise)."""
    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **popen}
    return subprocess.Popen(
        sweep_command("run", str(study), "--storage", url, "--quiet", *extra), **popen
    )


def _counts(url: str, name: str) -> tuple[int, int] | None:
    """(RUNNING trials, finished trials) of the study; None before it exists. A SQLite file is
    read with sqlite3 in a millisecond: opening Optuna's storage takes a second on a loaded
    machine, long enough for a run of short batches to start and end between two looks."""
    if not url.startswith("sqlite:///"):
        trials = trials_of(url, name)
        return (sum(t.state == TrialState.RUNNING for t in trials),
                sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials))
    path = Path(url[len("sqlite:///"):])
    if not path.exists():
        return None
    with closing(sqlite3.connect(path, timeout=30)) as db:
        rows = dict(db.execute(
            "SELECT t.state, COUNT(*) FROM trials t JOIN studies s ON s.study_id = t.study_id "
            "WHERE s.study_name = ? GROUP BY t.state", (name,)).fetchall())
    return rows.get("RUNNING", 0), rows.get("COMPLETE", 0) + rows.get("PRUNED", 0)


def wait_for_running(url: str, name: str, process, minimum_finished: int = 0,
                     timeout: float = WAIT_SECONDS):
    """Wait until the study has RUNNING trials and at least ``minimum_finished`` finished ones;
    the finished ones' values by trial number (read once the batch is seen; none asked for,
    none read)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, err = process.communicate()
            raise AssertionError(f"the run ended (exit {process.returncode}) before it could be "
                                 f"acted on: {err}")
        try:
            counts = _counts(url, name)
        except Exception:  # no tables or study yet
            counts = None
        if counts is not None and counts[0] and counts[1] >= minimum_finished:
            if not minimum_finished:
                return {}
            return {t.number: t.value for t in trials_of(url, name)
                    if t.state in (TrialState.COMPLETE, TrialState.PRUNED)}
        time.sleep(0.05)
    raise AssertionError(f"no batch in flight seen within {timeout} s")
