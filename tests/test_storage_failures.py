"""Issue 14: what the storage does under a full disk, another process's lock, a read-only
folder, foreign studies and other workers' live trials, seen from the command line."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import optuna
import pytest
from optuna.trial import TrialState

from sweep.cli import main
from sweep.errors import StorageError
from sweep.search import distributions
from sweep.spec import load_study
from sweep.store import connect, running
from sweep.store.connect import open_storage
from sweep.store.studies import open_study

TINY = """\
name = "tiny"
trials = 4
batch_size = 2
seed = 1
[data]
source = "synthetic"
items = 30
inputs = 2
classes = 2
[network]
epochs = 3
hidden = 2
"""


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Reports land under tmp_path; main's signal handlers do not outlive a test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOMENTUM_SWEEP_RESULTS", str(tmp_path / "results"))
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for number, handler in handlers.items():
        signal.signal(number, handler)


def trials_of(url: str, name: str):
    storage = open_storage(url)
    try:
        return storage.get_all_trials(storage.get_study_id_from_name(name))
    finally:
        storage.engine.dispose()


# A `sweep run` whose SQLite connections report a full disk once the study has `ok_batches`
# finished batches: every INSERT or UPDATE of trials fails from then on, as on a real full disk.
FULL_DISK_RUN = textwrap.dedent("""\
    import sqlite3, sys
    real_connect = sqlite3.connect
    writes = 0

    class FullCursor(sqlite3.Cursor):
        def execute(self, sql, *args):
            global writes
            if sql.lstrip().upper().startswith(("INSERT", "UPDATE")):
                writes += 1
                if writes > {ok_writes}:
                    raise sqlite3.OperationalError("database or disk is full")
            return super().execute(sql, *args)

    class FullConnection(sqlite3.Connection):
        def cursor(self, factory=FullCursor):
            return super().cursor(factory)

    def connect_full(*args, **kwargs):
        kwargs.pop("factory", None)
        return real_connect(*args, factory=FullConnection, **kwargs)

    sqlite3.connect = connect_full
    from sweep.cli import main
    sys.exit(main(sys.argv[1:]))
    """)


@pytest.mark.parametrize("ok_writes", [0, 12], ids=["creating-the-study", "mid-run"])
def test_a_full_disk_is_one_line_that_says_what_to_do_and_the_next_run_recovers(
    tmp_path, ok_writes
):
    (tmp_path / "tiny.toml").write_text(TINY)
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    command = [sys.executable, "-c", FULL_DISK_RUN.format(ok_writes=ok_writes), "run",
               str(tmp_path / "tiny.toml"), "--storage", url, "--quiet"]
    failed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 2, failed.stderr
    assert "Traceback" not in failed.stderr
    assert failed.stderr.strip().count("\n") == 0, failed.stderr
    assert "disk is full" in failed.stderr and "free some space" in failed.stderr

    assert main(["run", str(tmp_path / "tiny.toml"), "--storage", url, "--quiet"]) == 0
    trials = trials_of(url, "tiny")
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 4
    assert not [t for t in trials if t.state == TrialState.RUNNING]


def test_a_wait_for_another_process_lock_is_said_on_stderr(tmp_path, monkeypatch, capsys):
    (tmp_path / "tiny.toml").write_text(TINY)
    db = tmp_path / "sweep.db"
    url = f"sqlite:///{db}"
    assert main(["run", str(tmp_path / "tiny.toml"), "--storage", url, "--quiet"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(connect, "LOCK_NOTICE_SECONDS", 0.5)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys, time\n"
         f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
         "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(3)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["run", str(tmp_path / "tiny.toml"), "--storage", url, "--quiet"]) == 0
    finally:
        holder.wait(timeout=30)
    err = capsys.readouterr().err
    assert "waiting for" in err and str(db) in err and "another process holds a lock" in err


def test_a_read_only_results_folder_is_named_as_such(tmp_path, monkeypatch):
    db = tmp_path / "sweep.db"
    db.write_bytes(b"")
    open_storage(f"sqlite:///{db}").engine.dispose()  # an Optuna database
    real_access = connect.os.access

    def unable(path, read_only):
        raise sqlite3.OperationalError("unable to open database file")

    # What a read-only file system does: the file reads, the folder refuses new files.
    monkeypatch.setattr(connect, "_read_schema", unable)
    monkeypatch.setattr(connect.os, "access", lambda path, mode: (
        mode != connect.os.W_OK and real_access(path, mode)
    ))
    with pytest.raises(StorageError, match="is read-only.*make the folder writable"):
        open_storage(f"sqlite:///{db}", create=False)


def foreign_studies(url: str) -> None:
    single = optuna.create_study(storage=url, study_name="plain")
    single.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    multi = optuna.create_study(storage=url, study_name="multi", directions=["minimize"] * 2)
    multi.optimize(lambda trial: (trial.suggest_float("x", 0, 1), 1.0), n_trials=2)


def test_best_of_a_plain_optuna_study_is_optunas_best_trial(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    foreign_studies(url)
    assert main(["best", "plain", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "not made by momentum-sweep" in out
    assert "trial          0" in out and "x " in out


def test_report_all_lists_and_skips_a_multi_objective_study(tmp_path, capsys):
    (tmp_path / "tiny.toml").write_text(TINY)
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    assert main(["run", str(tmp_path / "tiny.toml"), "--storage", url, "--quiet"]) == 0
    foreign_studies(url)
    capsys.readouterr()
    assert main(["report", "--all", "--storage", url]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert [line for line in out.splitlines() if "multi" in line] == [
        "skipped study 'multi': it has 2 objectives (made with Optuna, not momentum-sweep, "
        "which reads single-objective studies only)"
    ]
    assert "tiny: wrote" in out and (tmp_path / "results" / "tiny" / "index.html").exists()


def test_a_run_short_of_the_total_because_of_live_trials_says_so(tmp_path, capsys):
    (tmp_path / "tiny.toml").write_text(TINY)
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    spec = load_study(tmp_path / "tiny.toml")
    storage = open_storage(url)
    # A live worker's batch: leased to this very process, so no run takes it for abandoned.
    running.create_running(
        storage, open_study(spec, storage), [{"learning_rate": 0.01, "momentum": 0.5}] * 2,
        distributions(spec), [{"learning_rate": 0.01, "momentum": 0.5, "seed": s, "rule": "seed"}
                              for s in (1, 2)],
    )
    storage.engine.dispose()
    assert main(["run", str(tmp_path / "tiny.toml"), "--storage", url, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "2 trials are RUNNING in other workers" in out and "short of the declared 4" in out


@pytest.mark.slow
def test_workers_beyond_the_batches_needed_are_not_started(tmp_path):
    (tmp_path / "tiny.toml").write_text(TINY)  # 4 trials in batches of 2: two batches
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "sweep", "run", str(tmp_path / "tiny.toml"), "--workers", "64",
         "--storage", url, "--quiet"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "starting 2 workers, not 64: the study needs only 2 more batches" in result.stderr
    pids = {t.user_attrs["sweep"]["pid"] for t in trials_of(url, "tiny")}
    assert 1 <= len(pids) <= 2
    assert time.monotonic() - started < 60


def test_optunas_sql_dumps_never_reach_the_terminal(capfd):
    import logging

    import sweep.store.connect  # noqa: F401 (what configures it)

    # What Optuna logs before retrying a failed query: the whole SQL and its bound keys.
    logging.getLogger("optuna.storages._rdb.storage").warning(
        "Caught an error from sqlalchemy: SELECT ... %s", ", ".join(["?"] * 500))
    logging.getLogger("sqlalchemy.pool.impl.QueuePool").error("Exception during reset")
    assert capfd.readouterr().err == ""


def unprivileged(command: list[str]) -> list[str]:
    """``command`` as a process whose file permissions are checked: root's own are not, so as
    root it runs in a user namespace of its own (``unshare -U``), where they are."""
    return ["unshare", "-U", *command] if os.geteuid() == 0 else command


@pytest.mark.skipif(os.geteuid() == 0 and (shutil.which("unshare") is None or subprocess.run(
    ["unshare", "-U", "true"], capture_output=True).returncode != 0),
    reason="as root, needs `unshare -U` to run a command whose permissions are checked")
def test_read_only_lock_files_left_by_a_read_only_command_do_not_block_later_writes(tmp_path):
    (tmp_path / "tiny.toml").write_text(TINY)
    db = tmp_path / "sweep.db"
    url = f"sqlite:///{db}"
    subprocess.run([sys.executable, "-m", "sweep", "run", str(tmp_path / "tiny.toml"),
                    "--storage", url, "--quiet"], check=True, capture_output=True, timeout=120)
    # `sweep list` while the database is read-only leaves its -shm and -wal read-only.
    db.chmod(0o444)
    listed = subprocess.run(unprivileged([sys.executable, "-m", "sweep", "list", "--storage",
                                          url]), capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    shm = tmp_path / "sweep.db-shm"
    assert shm.exists() and not shm.stat().st_mode & 0o200
    db.chmod(0o644)
    (tmp_path / "tiny.toml").write_text(TINY.replace("trials = 4", "trials = 6"))
    more = subprocess.run(unprivileged([sys.executable, "-m", "sweep", "run",
                                        str(tmp_path / "tiny.toml"), "--storage", url,
                                        "--quiet"]),
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    assert len(trials_of(url, "tiny")) == 6
