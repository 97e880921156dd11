"""Several worker processes on one study: ``sweep run STUDY --workers N``.

Each worker is an ordinary ``run_study`` loop in its own process on the same storage; they
coordinate only through it (RUNNING trials count toward the total, so workers share the work).
The parent creates the study and fails abandoned trials once before starting them, so the
workers never race to do either, then shows progress until they finish.

Who fails what on an interrupt: a worker ignores SIGINT and SIGHUP, so a Ctrl-C in a terminal,
which reaches every process of the group, and the hang-up of a closing terminal are the
parent's alone to handle. The parent then sends each
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

from .errors import (
    EXIT_USAGE,
    INTERRUPTS,
    StudyDeleted,
    SweepError,
    catch_interrupts,
    interrupt_on_terminate,
    interrupted_exit_code,
    user_errors,
)
from .limits import check_batch
from .store.connect import open_storage, redact_text, storage_failure
from .store.running import fail_abandoned
from .store.studies import open_study, read_frozen, to_record, trial_reader

if TYPE_CHECKING:
    from .search import Progress

# More processes than this only compete for memory and the storage's lock.
MAX_WORKERS = 64
# How long the parent waits for interrupted workers to fail their batches before killing them.
STOP_SECONDS = 60.0
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# What a terminal sends the whole process group, which the parent alone handles.
_PARENTS_SIGNALS = {signal.SIGINT, signal.SIGHUP}


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

    # A terminal's Ctrl-C and hang-up are the parent's, which then sends each worker SIGTERM.
    # Every interrupt is blocked until here (see _start): one that came meanwhile is dropped
    # with the ignored ones, or handled once unblocked.
    for ignored in _PARENTS_SIGNALS:
        signal.signal(ignored, signal.SIG_IGN)
    catch_interrupts(signal.SIGTERM)
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, INTERRUPTS)
        _die_with_parent(parent_pid)
        run_study(
            load_study(study_file), open_storage(storage_url), allow_spec_change=allow_spec_change
        )
    except StudyDeleted:
        sys.exit(EXIT_USAGE)  # the parent says so, once for all its workers
    except user_errors() as error:
        print(f"sweep: worker error: {redact_text(str(error))}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        sys.exit(interrupted_exit_code())
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
        datasets = spec.datasets()  # bad data fails here, before anything is written
    check_batch(spec, datasets, min(spec.batch_size, spec.trials), processes=workers)
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
    reader = trial_reader(storage)  # re-reads only the trials new or unfinished since the last
    try:
        for _ in range(min(workers, needed)):
            _start(context, processes, spec.path, storage_url, allow_spec_change)
        while any(p.is_alive() for p in processes):
            time.sleep(poll_seconds)
            progress.count([to_record(t) for t in read_frozen(reader, study_id)])
            if on_progress:
                on_progress(progress)
    except KeyboardInterrupt:
        _stop(processes)
        if _exists(storage, study_id):
            fail_abandoned(storage, read_frozen(storage, study_id))
        raise
    for process in processes:
        process.join()
    if not _exists(storage, study_id):  # deleted meanwhile: each worker said so and stopped
        raise StudyDeleted(spec.name)
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


def _exists(storage, study_id: int) -> bool:
    try:
        storage.get_study_name_from_id(study_id)
    except KeyError:
        return False
    return True


def _start(context, processes: list, *args) -> None:
    """Start one worker and add it to ``processes``, without losing a signal meanwhile.

    The worker starts with every interrupt blocked, which it inherits from the thread that
    starts it, so that a Ctrl-C while it is still importing cannot end it with a traceback: it
    unblocks them once it ignores SIGINT and SIGHUP (dropping one that came meanwhile) and
    handles SIGTERM. Here, an interrupt that arrives during the start is only noted, and
    raised once the worker is in ``processes`` (raised inside ``Process.start``, it would leave
    a started worker no one stops).
    """
    if threading.current_thread() is not threading.main_thread():  # signals are main's only
        processes.append(context.Process(target=_worker, args=(*args, os.getpid())))
        processes[-1].start()
        return
    noted = []

    def note(signum, frame):
        noted.append(signum)

    # The mask is what the new process inherits; the handlers are what this one runs (a
    # signal may be delivered to another thread of it, whose mask is its own).
    signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTS)
    handlers = {signum: signal.signal(signum, note) for signum in INTERRUPTS}
    try:
        process = context.Process(target=_worker, args=(*args, os.getpid()))
        process.start()
        processes.append(process)
    finally:
        # Unblocked first, with ``note`` still the handler: a signal that waited is noted (and
        # raised below), and one already flagged on another thread cannot raise out of this
        # block while the mask still blocks it (a KeyboardInterrupt between restoring a handler
        # and unblocking left this process's interrupts blocked for good).
        signal.pthread_sigmask(signal.SIG_UNBLOCK, INTERRUPTS)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    if noted:
        interrupt_on_terminate(noted[0], None)


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
