"""Deleting a study, safe against the workers that may be writing to it.

Optuna's own ``delete_study`` is not: it ignores a refusal from the database (on PostgreSQL a
run inserting a trial at that moment makes the delete fail, and it reports success), and it
deletes whatever live workers are training. Here the study's rows are deleted in one
transaction that holds the study's planning lock and its row, after checking that no live
worker holds a lease on one of its trials; every refusal of the database is an error, and the
count returned is what was really deleted. A run whose study is deleted under it (``--force``)
finds it gone at its next write and stops (:class:`sweep.errors.StudyDeleted`).
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass

from optuna.storages._rdb import models
from optuna.trial import TrialState
from sqlalchemy import delete, select

from ..errors import SweepError
from .connect import never_reuse_ids
from .running import abandoned, planning_lock
from .studies import TRIAL_ATTR, unknown_study_error

_STUDIES = models.StudyModel.__table__
_TRIALS = models.TrialModel.__table__
_USER_ATTRS = models.TrialUserAttributeModel.__table__
# Every table whose rows belong to a trial, then to a study: deleted children first.
TRIAL_TABLES = tuple(model.__table__ for model in (
    models.TrialParamModel, models.TrialValueModel, models.TrialIntermediateValueModel,
    models.TrialUserAttributeModel, models.TrialSystemAttributeModel, models.TrialHeartbeatModel,
))
STUDY_TABLES = tuple(model.__table__ for model in (
    models.StudyDirectionModel, models.StudyUserAttributeModel, models.StudySystemAttributeModel,
))


@dataclass(frozen=True)
class Worker:
    """A live process holding leases on RUNNING trials: its host, process id, how many trials
    and when its latest lease ends (seconds since the epoch)."""

    host: str
    pid: int
    trials: int
    lease_until: float

    def __str__(self) -> str:
        where = "this machine" if self.host == socket.gethostname() else f"host {self.host}"
        ends = time.strftime("%H:%M:%S", time.localtime(self.lease_until))
        return (f"process {self.pid} on {where}, leasing {self.trials} trial"
                f"{'s' * (self.trials != 1)} until {ends}")


def live_workers(connection, study_id: int) -> list[Worker]:
    """The live workers holding RUNNING trials of the study: a process still running on this
    machine, or one on another machine whose lease has not run out."""
    rows = connection.execute(
        select(_USER_ATTRS.c.value_json)
        .join(_TRIALS, _TRIALS.c.trial_id == _USER_ATTRS.c.trial_id)
        .where(_TRIALS.c.study_id == study_id, _TRIALS.c.state == TrialState.RUNNING,
               _USER_ATTRS.c.key == TRIAL_ATTR)
    ).scalars()
    now = time.time()
    found: dict[tuple[str, int], Worker] = {}
    for text in rows:
        try:
            info = json.loads(text)
            host, pid = str(info["host"]), int(info["pid"])
            lease = float(info["lease_until"])
        except (ValueError, KeyError, TypeError):
            continue  # no readable lease: `sweep check` reports it, a run fails it
        if abandoned(info, now):
            continue
        earlier = found.get((host, pid))
        found[(host, pid)] = Worker(
            host, pid, (earlier.trials if earlier else 0) + 1,
            max(lease, earlier.lease_until if earlier else lease),
        )
    return sorted(found.values(), key=lambda w: (w.host, w.pid))


def live_workers_of(storage, study_name: str) -> list[Worker]:
    """:func:`live_workers` of the study named ``study_name`` (SweepError if unknown)."""
    study_id = _study_id(storage, study_name)
    with storage.engine.connect() as connection:
        return live_workers(connection, study_id)


def refusal(study_name: str, workers: list[Worker]) -> SweepError:
    """Why a study with live workers is not deleted, and the flag that overrides it."""
    shown = "; ".join(str(w) for w in workers[:5]) + ("; ..." if len(workers) > 5 else "")
    return SweepError(
        f"study {study_name!r} is being trained by live workers ({shown}); stop them first, "
        "or pass --force to delete it anyway (a run then stops at its next write and stores "
        "nothing more)"
    )


def _study_id(storage, study_name: str) -> int:
    try:
        return storage.get_study_id_from_name(study_name)
    except KeyError:
        raise unknown_study_error(storage, study_name) from None


def delete_study(storage, study_name: str, *, force: bool = False) -> int:
    """Delete the study and everything of it from the storage; the number of trials deleted.

    Refuses (SweepError naming them) while live workers hold RUNNING trials of it, unless
    ``force``. SweepError for an unknown study; any refusal of the database propagates.
    """
    never_reuse_ids(storage)
    study_id = _study_id(storage, study_name)
    # The planning lock waits for a worker that is writing a batch right now, so that its
    # trials are seen as RUNNING below rather than written the moment after.
    with planning_lock(storage, study_id), storage.engine.begin() as connection:
        # The study's row, locked (PostgreSQL): a worker writing a batch locks it first too,
        # and no trial can be inserted for it until this transaction ends. (A SQLite
        # transaction here holds the whole database's write lock from its start.)
        locked = connection.execute(
            select(_STUDIES.c.study_id).where(_STUDIES.c.study_id == study_id).with_for_update()
        ).first()
        if locked is None:
            raise unknown_study_error(storage, study_name)
        workers = live_workers(connection, study_id)
        if workers and not force:
            raise refusal(study_name, workers)
        return delete_rows(connection, study_id)


def delete_rows(connection, study_id: int) -> int:
    """Delete the study ``study_id``'s rows, children first; the number of trials deleted."""
    trial_ids = select(_TRIALS.c.trial_id).where(_TRIALS.c.study_id == study_id)
    for table in TRIAL_TABLES:
        connection.execute(delete(table).where(table.c.trial_id.in_(trial_ids)))
    trials = connection.execute(delete(_TRIALS).where(_TRIALS.c.study_id == study_id)).rowcount
    for table in STUDY_TABLES:
        connection.execute(delete(table).where(table.c.study_id == study_id))
    connection.execute(delete(_STUDIES).where(_STUDIES.c.study_id == study_id))
    return trials
