"""The life of a batch of trials in the storage: planned under a lock, RUNNING under a lease,
then finished or failed.

Workers share a study only through the storage. Counting, sampling and writing a batch as
RUNNING happen under one lock per study, so the declared total is reached exactly. Each RUNNING
trial records its worker's host, process id and a lease the worker renews while it trains; a
trial whose process is gone (checked directly on the same host) or whose lease has run out (any
host) is failed by the next worker that looks, and its parameters are retried.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from dataclasses import dataclass

import sqlalchemy
from optuna.distributions import BaseDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from . import bulk
from .connect import sqlite_path
from .studies import CURVES_ATTR, TRIAL_ATTR, json_curve, trial_info

# A RUNNING trial whose worker has not renewed its lease for this long is taken as dead.
LEASE_SECONDS = 300.0


@dataclass(frozen=True)
class Outcome:
    """How a RUNNING trial ended: its state, its value (None for none) and the network's run
    (a ``sweep.train.Run``), whose curves are stored."""

    trial_id: int
    state: TrialState
    value: float | None
    run: object


@contextlib.contextmanager
def planning_lock(storage, study_id: int):
    """Hold the study's planning lock: a file lock beside a SQLite database (workers on one
    machine), a PostgreSQL advisory lock on PostgreSQL (workers on many). Other back ends get no
    lock; workers there may overshoot the total by up to one batch each.
    """
    path = sqlite_path(str(storage.url))
    if path is not None:
        with open(f"{path}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    elif storage.engine.dialect.name == "postgresql":
        key = 0x5357_0000 + study_id  # "SW" + study: one lock per study
        with storage.engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
    else:
        yield


def _leased(settings: dict) -> dict:
    """A trial's settings with this worker's lease: host, process id, and the time it ends."""
    return {
        **settings,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "lease_until": time.time() + LEASE_SECONDS,
    }


def create_running(
    storage, study_id: int, params: list[dict[str, float]],
    distributions: dict[str, BaseDistribution], settings: list[dict],
) -> list[int]:
    """Write a batch RUNNING in one transaction, each trial leased to this worker; their ids.

    params[i], settings[i]: trial i's searched parameters and its settings (learning_rate,
    momentum, seed, rule, and baseline or retry_of where they apply). A worker interrupted here
    leaves none of the batch behind.
    """
    return bulk.create_running(storage, study_id, [
        bulk.NewTrial(params=point, distributions=distributions,
                      user_attrs={TRIAL_ATTR: _leased(trial)})
        for point, trial in zip(params, settings)
    ])


def renew_leases(storage, trial_ids: list[int], settings: list[dict]) -> None:
    """Extend this worker's lease on the trials it is still training."""
    for trial_id, trial in zip(trial_ids, settings):
        try:
            storage.set_trial_user_attr(trial_id, TRIAL_ATTR, _leased(trial))
        except UpdateFinishedTrialError:
            pass  # already failed by another worker; finish() skips it too


def finish(storage, outcomes: list[Outcome]) -> None:
    """Each trial's curves, state and value, the whole batch in one transaction.

    A trial another worker took for abandoned (our lease ran out: a suspended machine, or clocks
    apart) and failed is left failed; its retry will train it again.
    """
    results = []
    for outcome in outcomes:
        run = outcome.run
        trained = run.epochs_trained
        curves = {
            "train_loss": json_curve(run.train_loss, trained),
            "val_loss": json_curve(run.val_loss, trained),
            "val_accuracy": json_curve(run.val_accuracy, trained),
            "diverged_epoch": run.diverged_epoch,
            "stopped_epoch": run.stopped_epoch,
        }
        results.append(
            bulk.Finished(outcome.trial_id, outcome.state, outcome.value, {CURVES_ATTR: curves})
        )
    bulk.finish(storage, results)


def fail(storage, trial_ids: list[int]) -> None:
    """Fail trials whose training was interrupted (Ctrl-C) or broke, so that the next run
    retries them; trials already finished stay as they are."""
    for trial_id in trial_ids:
        try:
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except Exception:  # already finished, or the storage itself is what broke
            pass


def _alive(host: str, pid: int) -> bool | None:
    """Whether process ``pid`` on ``host`` runs; None when it is on another machine."""
    if host != socket.gethostname():
        return None
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_abandoned(storage, trials: list[FrozenTrial]) -> int:
    """Fail RUNNING trials whose worker is gone (dead process here, or an expired lease)."""
    now = time.time()
    failed = 0
    for trial in trials:
        if trial.state != TrialState.RUNNING:
            continue
        info = trial_info(trial)
        alive = _alive(info.get("host", ""), int(info.get("pid", -1)))
        # The lease also covers this host: a dead worker whose process id was reused.
        if not info or alive is False or info.get("lease_until", 0) < now:
            try:
                if storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                    failed += 1
            except UpdateFinishedTrialError:
                pass  # another worker finished or failed it first
    return failed
