"""``sweep check``: an fsck for the results store.

It looks for, and says in one line each:

- **integrity**: what SQLite's own ``integrity_check`` finds (PostgreSQL checks its pages
  itself);
- **orphan**: rows that belong to no study or no trial (trials a run wrote after their study
  was deleted, before foreign keys were enforced);
- **damaged**: rows that cannot be read (a state or value type Optuna does not write, JSON
  that does not parse);
- **value**: a trial whose stored value is not the value its stored curves give, computed as
  the search computed it (:func:`recomputed_value`; a flipped bit in the value passes every
  database check and would silently change the ranking);
- **running**: a RUNNING trial whose worker is gone (its process ended, or its lease ran out).

Only what is safe to change is repaired, and only with ``--repair``: orphans are deleted and
dead RUNNING trials failed (the next run retries them). A damaged row or a wrong value is
reported, never guessed at: the curves and the value disagree, and which is right is for a
person (or ``sweep replay``) to say.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from .errors import SweepError
from .records import TrialRecord


@dataclass(frozen=True)
class Finding:
    """One problem: its kind (integrity, orphan, damaged, value, running), what it is, and
    whether ``--repair`` repaired it."""

    kind: str
    what: str
    repairable: bool = False
    repaired: bool = False

    def __str__(self) -> str:
        if self.repaired:
            suffix = "; repaired"
        elif self.repairable:
            suffix = "; `sweep check --repair` repairs it"
        else:
            suffix = ""
        return f"{self.kind}: {self.what}{suffix}"


@dataclass(frozen=True)
class _StoredRun:
    """A network's stored curves in the shape the search scores runs in (``sweep.train.Run``'s
    fields that ``trial_outcome`` reads)."""

    val_loss: np.ndarray
    epochs_trained: int
    diverged_epoch: int | None
    stopped_epoch: int | None


def _stored_runs(record: TrialRecord) -> list[_StoredRun]:
    curves = [record.val_loss] if record.networks is None else list(record.networks.val_loss)
    return [_StoredRun(np.asarray(curve, dtype=float), len(curve), record.diverged_epoch,
                       record.stopped_epoch) for curve in curves]


def recomputed_value(spec, record: TrialRecord) -> tuple[float | None, list[float | None]]:
    """The value of a finished trial, and each network's, computed from its stored curves as
    the search computed them when it stored the trial (``sweep.search.trial_outcome``)."""
    from .search import trial_outcome

    _, value, network_values = trial_outcome(spec, _stored_runs(record))
    return value, network_values


def _same(stored, fresh) -> bool:
    if stored is None or fresh is None:
        return stored is None and fresh is None
    stored, fresh = float(stored), float(fresh)
    return stored == fresh or (math.isnan(stored) and math.isnan(fresh))


def _shown(value) -> str:
    return "none" if value is None else repr(float(value))


def value_mismatch(spec, record: TrialRecord) -> str | None:
    """How a finished trial's stored value (or one of its networks' values) differs from what
    its stored curves give, or None when they agree exactly."""
    if record.state not in ("complete", "pruned", "diverged"):
        return None
    value, network_values = recomputed_value(spec, record)
    if not _same(record.value, value):
        return (f"stored value {_shown(record.value)}, but its stored curves give "
                f"{_shown(value)} ({spec.objective.name})")
    if record.networks is not None:
        for i, (stored, fresh) in enumerate(zip(record.networks.values, network_values)):
            fresh = math.nan if fresh is None else fresh
            if not _same(stored, fresh):
                return (f"network {i}'s stored value {_shown(stored)}, but its stored curve "
                        f"gives {_shown(fresh)} ({spec.objective.name})")
    return None


def check(storage, *, repair: bool = False) -> tuple[list[Finding], int, int]:
    """Check the whole store; (findings, studies checked, trials checked). With ``repair``,
    orphans are deleted and dead RUNNING trials failed, and their findings say so."""
    from .store import damage
    from .store.connect import never_reuse_ids, sqlite_path
    from .store.studies import made_here, read_records_except, stored_spec, study_names

    findings = []
    path = sqlite_path(str(storage.url))
    if path is not None:
        with storage.engine.connect() as connection:
            for (line,) in connection.exec_driver_sql("PRAGMA integrity_check(20)"):
                if line != "ok":
                    findings.append(Finding("integrity", f"{path}: {line}"))
    if repair:
        never_reuse_ids(storage)  # before deleting orphans, so that their ids stay used
    with storage.engine.begin() as connection:
        lost = damage.orphans(connection)
        if repair and lost:
            damage.delete_orphans(connection)
    findings += [Finding("orphan", str(orphan), True, repair) for orphan in lost]
    damaged = damage.damaged_rows(storage)
    findings += [Finding("damaged", str(row)) for row in damaged]

    names = study_names(storage)
    trials_checked = 0
    for name in names:
        rows = [row for row in damaged if row.study == name]
        if any(row.trial is None for row in rows) or not made_here(storage, name):
            continue  # a damaged spec is said above; another tool's study has no curves
        spec = stored_spec(storage, name)
        try:  # every trial but the damaged ones, said above
            records = read_records_except(storage, name, {row.trial for row in rows})
        except SweepError as error:
            findings.append(Finding("damaged", str(error)))
            continue
        trials_checked += len(records)
        for record in records:
            mismatch = value_mismatch(spec, record)
            if mismatch:
                findings.append(Finding("value", f"study {name!r} trial {record.number}: "
                                                 f"{mismatch}"))
        findings += _dead_running(storage, name, repair)
    return findings, len(names), trials_checked


def _dead_running(storage, name: str, repair: bool) -> list[Finding]:
    """RUNNING trials of the study whose worker is gone, failed with ``repair``."""
    from .store.running import abandoned_trials, fail_trial
    from .store.studies import trial_info

    now = time.time()
    found = []
    for trial in abandoned_trials(storage, storage.get_study_id_from_name(name)):
        repaired = repair and fail_trial(storage, trial)
        if repair and not repaired:
            continue  # finished or failed by its worker meanwhile: nothing to repair
        found.append(Finding(
            "running",
            f"study {name!r} trial {trial.number}: RUNNING, but {_gone(trial_info(trial), now)}"
            + ("; failed, and the next run retries it" if repaired else ""),
            True, repaired,
        ))
    return found


def _gone(info: dict, now: float) -> str:
    """Why a RUNNING trial's worker is taken for gone."""
    import socket

    if not info or "pid" not in info:
        return "it has no lease"
    if info.get("host") == socket.gethostname() and float(info.get("lease_until", 0)) >= now:
        return f"its process {info['pid']} on this machine has ended"
    return (f"the lease of process {info['pid']} on {info.get('host', '?')} ran out "
            f"{_ago(now - float(info.get('lease_until', 0)))} ago")


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"
