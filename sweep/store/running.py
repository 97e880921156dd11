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
import math
import os
import socket
import time
from dataclasses import dataclass

import numpy as np
import sqlalchemy
from optuna.distributions import BaseDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from ..errors import StudyDeleted
from ..records import mean_curve
from . import bulk
from .connect import sqlite_path
from .studies import CURVES_ATTR, TRIAL_ATTR, json_curve, trial_info

# A RUNNING trial whose worker has not renewed its lease for this long is taken as dead.
LEASE_SECONDS = 300.0


@dataclass(frozen=True)
class Outcome:
    """How a RUNNING trial ended: its state, its value (None for none), and its networks' runs
    (``sweep.train.Run``) with the fold each trained on, whose curves are stored."""

    trial_id: int
    state: TrialState
    value: float | None
    runs: list
    folds: list[int]
    network_values: list[float | None]


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
        except KeyError:  # Optuna's "no trial with that id": deleted with its study
            raise StudyDeleted() from None


def finish(storage, outcomes: list[Outcome]) -> None:
    """Each trial's curves, state and value, the whole batch in one transaction.

    A trial another worker took for abandoned (our lease ran out: a suspended machine, or clocks
    apart) and failed is left failed; its retry will train it again.
    """
    results = []
    for outcome in outcomes:
        curves = trial_curves(outcome.runs, outcome.folds, outcome.network_values)
        results.append(
            bulk.Finished(
                outcome.trial_id, outcome.state, outcome.value, {CURVES_ATTR: curves},
                intermediate_values=learning_curve(outcome.runs),
            )
        )
    bulk.finish(storage, results)


def learning_curve(runs: list) -> dict[int, float]:
    """The trial's intermediate values: its networks' mean validation loss at each epoch they
    trained (step = epoch, 1-based, the steps the search's pruner saw), which optuna-dashboard's
    learning-curve panel and ``optuna.visualization.plot_intermediate_values`` draw. A
    non-finite mean (a diverged network) is kept as it is, as ``trial.report`` would keep it."""
    trained = max(run.epochs_trained for run in runs)
    curve = mean_curve([run.val_loss for run in runs])[:trained]
    return dict(enumerate(np.asarray(curve, dtype=float).tolist(), start=1))


def trial_curves(runs: list, folds: list[int], values: list[float | None]) -> dict:
    """A trial's ``curves`` attribute: the mean curves of its networks over the epochs they
    trained, the first epoch one diverged or the epoch they were stopped, and (with more than
    one network) each network's curves, seed, fold and objective value."""
    trained = max(run.epochs_trained for run in runs)
    diverged = [run.diverged_epoch for run in runs if run.diverged_epoch]
    curves = {
        name: json_curve(mean_curve([getattr(run, name) for run in runs]), trained)
        for name in ("train_loss", "val_loss", "val_accuracy")
    }
    curves["diverged_epoch"] = min(diverged) if diverged else None
    curves["stopped_epoch"] = None if diverged else runs[0].stopped_epoch
    if len(runs) > 1:
        curves["networks"] = {
            "seeds": [run.seed for run in runs],
            "folds": list(folds),
            "values": [None if v is None or not math.isfinite(v) else float(v) for v in values],
            **{
                name: [json_curve(getattr(run, name), trained) for run in runs]
                for name in ("train_loss", "val_loss", "val_accuracy")
            },
        }
    return curves


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


def abandoned(info: dict, now: float) -> bool:
    """Whether a RUNNING trial whose ``sweep`` attribute is ``info`` has lost its worker: no
    lease at all, a process that no longer runs on this host, or a lease that ran out before
    ``now`` (seconds since the epoch; the lease also covers this host, for a dead worker whose
    process id was reused)."""
    if not info:
        return True
    try:
        alive = _alive(str(info.get("host", "")), int(info.get("pid", -1)))
        return alive is False or float(info.get("lease_until", 0)) < now
    except (TypeError, ValueError):
        return True  # an unreadable lease is no lease


def fail_abandoned(storage, trials: list[FrozenTrial]) -> int:
    """Fail RUNNING trials whose worker is gone (dead process here, or an expired lease)."""
    now = time.time()
    failed = 0
    for trial in trials:
        if trial.state != TrialState.RUNNING or not abandoned(trial_info(trial), now):
            continue
        try:
            if storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                failed += 1
        except (UpdateFinishedTrialError, KeyError):
            pass  # another worker finished or failed it first, or its study was deleted
    return failed


def abandoned_trials(storage, study_id: int) -> list[FrozenTrial]:
    """The study's RUNNING trials whose worker is gone (see :func:`abandoned`)."""
    now = time.time()
    return [trial for trial in storage.get_all_trials(study_id, deepcopy=False,
                                                      states=(TrialState.RUNNING,))
            if abandoned(trial_info(trial), now)]


def fail_trial(storage, trial: FrozenTrial) -> bool:
    """Fail one RUNNING trial; False if it was finished or failed meanwhile, or is gone."""
    try:
        return bool(storage.set_trial_state_values(trial._trial_id, TrialState.FAIL))
    except (UpdateFinishedTrialError, KeyError):
        return False
