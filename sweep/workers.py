"""Several worker processes on one study: ``sweep run STUDY --workers N``.

Each worker is an ordinary ``run_study`` loop in its own process on the same storage; they
coordinate only through it (RUNNING trials count toward the total, so workers share the work).
The parent creates the study and fails abandoned trials once before starting them, so the
workers never race to do either, then shows progress until they finish.

Who fails what on an interrupt: a worker ignores SIGINT, so a Ctrl-C in a terminal, which
reaches every process of the group, is the parent's alone to handle. The parent then sends each
worker one SIGTERM; a worker fails its batch in flight and exits, and ignores any later signal
until it has. Once every worker has ended (or been killed after ``STOP_SECONDS``), the parent
fails whatever RUNNING trial a worker still left behind (one caught between writing its batch and
training it), as it would a dead worker's. A worker whose parent dies gets a SIGTERM too.
"""

from __future__ import annotations

import ctypes
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

from .errors import EXIT_INTERRUPTED, EXIT_USAGE, SweepError, catch_interrupts, user_errors
from .store.connect import open_storage, redact_text, storage_failure
from .store.running import fail_abandoned
from .store.studies import open_study, read_frozen, to_record

if TYPE_CHECKING:
    from .search import Progress

# More processes than this only compete for memory and the storage's lock.
MAX_WORKERS = 64
# How long the parent waits for interrupted workers to fail their batches before killing them.
STOP_SECONDS = 60.0
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die_with_parent(parent_pid: int) -> None:
    """Have this worker sent SIGTERM when its parent dies (even by SIGKILL), so that it fails
    its batch and ends instead of running on as an orphan."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        linux = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux: no prctl
        linux = False
    if not linux:
        def watch():
            while os.getppid() == parent_pid:
                time.sleep(1.0)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


def _worker(study_file: str, storage_url: str, allow_spec_change: bool, parent_pid: int) -> None:
    # Workers share the cores between them: each compiled kernel keeps to one thread (Numba
    # reads this when it loads, which is later, on the first batch).
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    from .search import run_study
    from .spec import load_study

    # SIGINT is ignored from the start (see _start): a terminal's Ctrl-C is the parent's.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    catch_interrupts(signal.SIGTERM)
    try:
        _die_with_parent(parent_pid)
        run_study(
            load_study(study_file), open_storage(storage_url), allow_spec_change=allow_spec_change
        )
    except user_errors() as error:
        print(f"sweep: worker error: {redact_text(str(error))}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except Exception as error:
        failure = storage_failure(error, storage_url)
        if failure is None:
            raise
        print(f"sweep: worker error: {failure}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def batches_needed(spec, trials) -> int:
    """How many more batches the study needs to reach its declared total."""
    counted = sum(to_record(t).state in ("complete", "pruned", "diverged", "running")
                  for t in trials)
    return math.ceil(max(spec.trials - counted, 0) / spec.batch_size)


def run_workers(
    spec,
    storage_url: str,
    workers: int,
    *,
    datasets=None,
    allow_spec_change: bool = False,
    on_progress=None,
    poll_seconds: float = 0.5,
) -> Progress:
    """Run up to ``workers`` processes on ``spec``'s study until it reaches its declared total.

    ``workers``: 1..MAX_WORKERS; no more are started than the study still needs batches (a
    line on stderr says so). ``datasets``: ``spec.datasets()`` if already loaded (and so
    checked).
    """
    from .search import Progress  # the search and its trainer: only a run that trains loads them

    if not 1 <= workers <= MAX_WORKERS:
        raise SweepError(f"--workers must be between 1 and {MAX_WORKERS}, got {workers}")
    if datasets is None:
        spec.datasets()  # bad data fails here, before anything is written
    storage = open_storage(storage_url)
    study_id = open_study(spec, storage, allow_spec_change=allow_spec_change)
    before = len(read_frozen(storage, study_id))
    fail_abandoned(storage, read_frozen(storage, study_id))
    needed = batches_needed(spec, read_frozen(storage, study_id))
    if needed < workers:
        print(
            f"sweep: {spec.name}: starting {needed} worker{'s' * (needed != 1)}, not {workers}: "
            f"the study needs only {needed} more batch{'es' * (needed != 1)} of "
            f"{spec.batch_size} trials",
            file=sys.stderr,
        )
    context = multiprocessing.get_context("spawn")  # no inherited database connections
    processes = []
    progress = Progress(total=spec.trials)
    try:
        for _ in range(min(workers, needed)):
            processes.append(_start(context, spec.path, storage_url, allow_spec_change))
        while any(p.is_alive() for p in processes):
            time.sleep(poll_seconds)
            progress.count([to_record(t) for t in read_frozen(storage, study_id)])
            if on_progress:
                on_progress(progress)
    except KeyboardInterrupt:
        _stop(processes)
        fail_abandoned(storage, read_frozen(storage, study_id))
        raise
    for process in processes:
        process.join()
    trials = read_frozen(storage, study_id)
    progress.count([to_record(t) for t in trials])
    progress.added = len(trials) - before
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    if failed:
        raise SweepError(
            f"{len(failed)} of {len(processes)} workers stopped with an error (exit codes "
            f"{failed}); run again to resume"
        )
    return progress


def _start(context, *args):
    """Start one worker with SIGINT ignored, which the new process inherits (a handler would
    not be), so that a Ctrl-C while it is still importing cannot end it with a traceback.

    A Ctrl-C to this process in the few milliseconds of the start is lost with it (blocking
    SIGINT meanwhile does not keep it: starting a process may drop it); pressing again works.
    """
    main = threading.current_thread() is threading.main_thread()  # signals are main's only
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        process = context.Process(target=_worker, args=(*args, os.getpid()))
        process.start()
    finally:
        if main:
            signal.signal(signal.SIGINT, handler)
    return process


def _stop(processes) -> None:
    """End interrupted workers: one SIGTERM each, then SIGKILL for any still running after
    STOP_SECONDS. This process ignores further signals meanwhile (see interrupt_on_terminate)."""
    for process in processes:
        if process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for process in processes:
        process.join(max(deadline - time.monotonic(), 0))
        if process.is_alive():
            process.kill()
            process.join()
