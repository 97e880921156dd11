"""Reliability: several workers on one SQLite study, a worker killed mid-batch, Ctrl-C."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from live_run import LONG_BATCHES, start_run, trials_of, wait_for_running, write_study
from optuna.trial import TrialState

from sweep.search import run_study
from sweep.spec import load_study
from sweep.store.connect import open_storage
from sweep.store.studies import TRIAL_ATTR
from sweep.workers import run_workers


@pytest.mark.slow
@pytest.mark.parametrize("workers", [2, 4])
def test_local_workers_reach_the_exact_total_with_unique_numbers_and_no_failures(tmp_path, workers):
    # Batches long enough (about a second with the compiled kernel) that every worker is up
    # before the work runs out.
    study = write_study(tmp_path, items=2000, epochs=700)
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    run_workers(load_study(study), url, workers)
    trials = trials_of(url, "work")
    assert len(trials) == 24
    assert len({t.number for t in trials}) == 24
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    pids = {t.user_attrs[TRIAL_ATTR]["pid"] for t in trials}
    assert len(pids) >= 2, "the work should be shared between processes"


@pytest.mark.slow
def test_a_worker_killed_mid_batch_is_recovered_without_losing_a_completed_trial(tmp_path):
    study = write_study(tmp_path, **LONG_BATCHES)
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    process = start_run(study, url)
    finished_before = wait_for_running(url, "work", process, minimum_finished=4)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    left = trials_of(url, "work")
    assert any(t.state == TrialState.RUNNING for t in left)  # what the killed worker was training

    run_study(load_study(study), open_storage(url))
    trials = trials_of(url, "work")
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    finished = {
        t.number: t.value for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
    }
    assert len(finished) == 12
    for number, value in finished_before.items():
        assert finished[number] == value  # no completed trial lost or redone
    failed = [t for t in trials if t.state == TrialState.FAIL]
    retried = {t.user_attrs[TRIAL_ATTR].get("retry_of"): t for t in trials}
    for trial in failed:  # every trial of the killed batch was retried with its seed
        again = retried[trial.number]
        assert again.user_attrs[TRIAL_ATTR]["seed"] == trial.user_attrs[TRIAL_ATTR]["seed"]
        assert again.params == trial.params


@pytest.mark.slow
def test_ctrl_c_leaves_a_consistent_study_that_resumes(tmp_path):
    study = write_study(tmp_path, **LONG_BATCHES)
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    process = start_run(study, url)
    wait_for_running(url, "work", process, minimum_finished=0)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "run the same command again to resume" in stderr and "Traceback" not in stderr
    trials = trials_of(url, "work")
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert [t for t in trials if t.state == TrialState.FAIL]  # the batch in flight

    run_study(load_study(study), open_storage(url))
    trials = trials_of(url, "work")
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 12
    assert not [t for t in trials if t.state == TrialState.RUNNING]


def start_group(study: Path, url: str, output=subprocess.PIPE) -> subprocess.Popen:
    """`sweep run --workers 2` as a terminal starts it: the leader of its own process group."""
    return subprocess.Popen(
        [sys.executable, "-m", "sweep", "run", str(study), "--storage", url, "--quiet",
         "--workers", "2"],
        stdout=output, stderr=output, text=True, start_new_session=True,
    )


@pytest.mark.slow
def test_ctrl_c_to_the_whole_group_leaves_no_running_trial_ten_times_in_a_row(tmp_path):
    # A terminal's Ctrl-C reaches the parent and every worker at once; each time the study
    # must be left with no RUNNING trial, the command must end (no hang), and say so once.
    # Batches of about 0.1 s: at 60 items and 60 epochs (1 ms) the ten runs could finish the
    # study's trials before the last interrupt, and that run ended before it was sent. 4,000
    # trials, far more than ten interrupted runs train: on a loaded machine 400 ran out.
    study = write_study(tmp_path, name="group", trials=4000, batch=2, items=2000, epochs=100)
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    for attempt in range(10):
        process = start_group(study, url)
        wait_for_running(url, "group", process, minimum_finished=0)
        os.killpg(process.pid, signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise AssertionError(f"attempt {attempt}: the interrupted run hung") from None
        assert process.returncode == 130, (attempt, stderr)
        assert "Traceback" not in stderr and "resume" in stderr, (attempt, stderr)
        running = [t.number for t in trials_of(url, "group") if t.state == TrialState.RUNNING]
        assert not running, f"attempt {attempt}: trials {running} left RUNNING"


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_workers_end_with_their_parent_killed_and_fail_their_batches(tmp_path):
    # Batches of about a second (with the compiled kernel), so that workers left running would
    # still be busy after 30 s; no pipes, which a worker might die of writing to once its parent
    # is gone.
    study = write_study(tmp_path, name="orphans", trials=400, batch=2, items=2000, epochs=1300)
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    process = start_group(study, url, output=subprocess.DEVNULL)
    workers = []
    try:
        wait_for_running(url, "orphans", process, minimum_finished=0)
        workers = children_of(process.pid)
        assert len(workers) >= 2, workers
        process.kill()
        process.communicate(timeout=30)
        deadline = time.time() + 30
        while time.time() < deadline and any(alive(pid) for pid in workers):
            time.sleep(0.1)
        assert not [pid for pid in workers if alive(pid)], "workers outlived their parent"
    finally:
        for pid in workers:  # never leave a failing test's orphans behind
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert not [t for t in trials_of(url, "orphans") if t.state == TrialState.RUNNING]
