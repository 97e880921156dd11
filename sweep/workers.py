"""Several worker processes on one study: ``sweep run STUDY --workers N``.

Each worker is an ordinary ``run_study`` loop in its own process on the same storage; they
coordinate only through it (RUNNING trials count toward the total, so workers share the work).
The parent creates the study and fails abandoned trials once before starting them, so the
workers never race to do either, then shows progress until they finish.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time

from .errors import EXIT_INTERRUPTED, EXIT_USAGE, SweepError, interrupt_on_terminate, user_errors
from .search import Progress, run_study
from .store.connect import open_storage
from .store.running import fail_abandoned
from .store.studies import open_study, read_frozen, to_record


def _worker(study_file: str, storage_url: str, allow_spec_change: bool) -> None:
    from .spec import load_study

    # Explicitly: a process started from a background shell inherits SIGINT ignored.
    signal.signal(signal.SIGINT, interrupt_on_terminate)
    signal.signal(signal.SIGTERM, interrupt_on_terminate)
    try:
        run_study(
            load_study(study_file), open_storage(storage_url), allow_spec_change=allow_spec_change
        )
    except user_errors() as error:
        print(f"sweep: worker error: {error}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)


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
    """Run ``workers`` processes on ``spec``'s study until it reaches its declared total.

    ``datasets``: ``spec.datasets()`` if already loaded (and so checked).
    """
    if datasets is None:
        spec.datasets()  # bad data fails here, before anything is written
    storage = open_storage(storage_url)
    study_id = open_study(spec, storage, allow_spec_change=allow_spec_change)
    before = len(read_frozen(storage, study_id))
    fail_abandoned(storage, read_frozen(storage, study_id))
    context = multiprocessing.get_context("spawn")  # no inherited database connections
    processes = [
        context.Process(
            target=_worker, args=(spec.path, storage_url, allow_spec_change), daemon=False
        )
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    progress = Progress(total=spec.trials)
    try:
        while any(p.is_alive() for p in processes):
            time.sleep(poll_seconds)
            progress.count([to_record(t) for t in read_frozen(storage, study_id)])
            if on_progress:
                on_progress(progress)
    except KeyboardInterrupt:
        # Ctrl-C in a terminal reaches the workers too, a SIGTERM only this process: pass it on,
        # so that each worker fails its batch in flight, then wait for them.
        for process in processes:
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        for process in processes:
            process.join()
        raise
    for process in processes:
        process.join()
    trials = read_frozen(storage, study_id)
    progress.count([to_record(t) for t in trials])
    progress.added = len(trials) - before
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    if failed:
        raise SweepError(
            f"{len(failed)} of {workers} workers stopped with an error (exit codes {failed}); "
            "run again to resume"
        )
    return progress
