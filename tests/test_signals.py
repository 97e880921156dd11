"""Every signal that ends a run ends it cleanly: Ctrl-C (SIGINT), `kill` (SIGTERM) and a closing
terminal (SIGHUP) fail the batch in flight, say how to resume, leave no trial RUNNING, and
exit with the shell's code for the signal (128 + its number: 130, 143, 129)."""

from __future__ import annotations

import os
import signal

import pytest
from live_run import start_run, trials_of, wait_for_running, write_study
from optuna.trial import TrialState

from sweep.errors import interrupted_exit_code

# Batches of about half a second: the run is surely still going when the signal comes.
BATCHES = dict(trials=400, batch=4, items=2000, epochs=200)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(("signum", "code", "said"), [
    (signal.SIGTERM, 143, "terminated (SIGTERM)"),
    (signal.SIGHUP, 129, "hung up (SIGHUP: its terminal closed)"),
])
def test_sigterm_and_sighup_fail_the_batch_and_exit_with_the_signals_code(
    tmp_path, workers, signum, code, said
):
    study = write_study(tmp_path, name="sig", **BATCHES)
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    # The leader of its own process group, as a terminal starts a command: a hang-up reaches
    # the whole group, a `kill` only the process named.
    process = start_run(study, url, "--workers", str(workers), start_new_session=True)
    try:
        wait_for_running(url, "sig", process)
        if signum == signal.SIGHUP:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == code, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"sweep: {said}; the batch in flight was "
                                                   "failed"), err
    trials = trials_of(url, "sig")
    assert len(trials) < BATCHES["trials"]  # it stopped instead of finishing the study
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    assert [t for t in trials if t.state == TrialState.FAIL]  # the batch in flight, to retry


def test_an_interrupt_without_a_signal_exits_130():
    assert interrupted_exit_code() == 130  # a KeyboardInterrupt raised by no handler of ours


def test_a_signal_during_a_worker_start_is_raised_once_the_worker_is_registered(tmp_path):
    # The start of a worker is where a Ctrl-C used to be lost: it is noted, then raised, and
    # the worker it came during is one the parent knows to stop.
    from sweep import errors, workers

    started = []

    class Starting:
        def start(self):
            os.kill(os.getpid(), signal.SIGINT)
            started.append(self)

    class Context:
        def Process(self, target, args):  # noqa: N802 (multiprocessing's name)
            return Starting()

    kept = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGHUP,
                                                              signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    processes = []
    try:
        with pytest.raises(KeyboardInterrupt):
            workers._start(Context(), processes, "study.toml", "sqlite://", False)
    finally:
        for signum, handler in kept.items():
            signal.signal(signum, handler)
        errors._first_signal = None  # what the interrupt noted, for this test process only
    assert processes == started and len(processes) == 1
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == set()  # nothing left blocked


def test_a_signal_during_an_exec_of_a_string_still_exits_with_the_signals_code(tmp_path):
    # A SIGTERM that lands inside exec() of a string (scipy's imports run some) made CPython
    # note the KeyboardInterrupt as unhandled, and the process died of SIGINT (-2) after
    # saying "terminated" and failing the batch, instead of exiting 143.
    import subprocess
    import sys

    script = (
        "from sweep import cli, data, spec  # as in a run: loaded before the signal\n"
        "def command(args):\n"
        "    exec('import os, signal, time; os.kill(os.getpid(), signal.SIGTERM); "
        "time.sleep(60)')\n"
        "cli.COMMANDS['list'] = command\n"
        f"raise SystemExit(cli.main(['list', '--storage', 'sqlite:///{tmp_path}/s.db']))\n"
    )
    # Run as `sweep` runs, with -m: CPython's exit path for -c and files ignores the note.
    (tmp_path / "signalled.py").write_text(script)
    done = subprocess.run([sys.executable, "-m", "signalled"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 143, done.stderr
    assert done.stderr.strip().startswith("sweep: terminated (SIGTERM)"), done.stderr
