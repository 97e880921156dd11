"""Studies in the storage: creating and finding them, their stored spec, and their trials as
records.

What a momentum-sweep study keeps in Optuna's storage:

- study user attributes ``spec`` (the study file as ``StudySpec.to_dict()``) and
  ``search_fingerprint`` (what decides the search; a study whose file changed is refused);
- per trial, the user attribute ``sweep`` (settings: learning rate, momentum, seed, rule,
  baseline, retry_of; and the lease: host, process id, lease_until) and, once finished,
  ``curves`` (per-epoch training loss, validation loss and accuracy as JSON lists, non-finite
  values as null, with ``diverged_epoch`` and ``stopped_epoch``).

Everything outside this package sees trials only as :class:`sweep.records.TrialRecord` or as
Optuna's public ``FrozenTrial``.
"""

from __future__ import annotations

import math
import time

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import SweepError
from ..records import NetworkCurves, TrialRecord

SPEC_ATTR, FINGERPRINT_ATTR = "spec", "search_fingerprint"
TRIAL_ATTR, CURVES_ATTR = "sweep", "curves"
FINGERPRINT_WAIT_SECONDS = 30.0

optuna.logging.set_verbosity(optuna.logging.WARNING)


def changed_search_error(spec) -> SweepError:
    """The refusal of a study file whose search differs from the study stored under its name."""
    return SweepError(
        f"{spec.path}: study {spec.name!r} was stored with a different data set, network or "
        "search space; give it a new name, or pass --allow-spec-change to add trials anyway"
    )


def _study_id(storage, study_name: str) -> int:
    try:
        return storage.get_study_id_from_name(study_name)
    except KeyError:
        raise SweepError(f"no study named {study_name!r} in the storage") from None


def open_study(spec, storage, *, allow_spec_change: bool = False) -> int:
    """The study's id in ``storage``, creating it if new; refuses a study whose search changed."""
    try:
        study_id = storage.get_study_id_from_name(spec.name)
    except KeyError:
        study_id = None
    if study_id is not None:
        stored = storage.get_study_user_attrs(study_id).get(FINGERPRINT_ATTR)
        # Another worker may have created the study an instant ago and not yet stored its
        # fingerprint: give a study with no trials yet a moment before calling it foreign.
        wait = FINGERPRINT_WAIT_SECONDS if storage.get_n_trials(study_id) == 0 else 0
        deadline = time.monotonic() + wait
        while stored is None and time.monotonic() < deadline:
            time.sleep(0.1)
            stored = storage.get_study_user_attrs(study_id).get(FINGERPRINT_ATTR)
        if stored is None:
            raise SweepError(
                f"study {spec.name!r} exists in the storage but was not made by momentum-sweep; "
                "give the study a new name"
            )
        if stored != spec.search_fingerprint():
            if not allow_spec_change:
                raise changed_search_error(spec)
            storage.set_study_user_attr(study_id, SPEC_ATTR, spec.to_dict())
            storage.set_study_user_attr(study_id, FINGERPRINT_ATTR, spec.search_fingerprint())
        return study_id
    study = optuna.create_study(
        storage=storage, study_name=spec.name, direction="minimize", load_if_exists=True
    )
    study.set_user_attr(SPEC_ATTR, spec.to_dict())
    study.set_user_attr(FINGERPRINT_ATTR, spec.search_fingerprint())
    return study._study_id


def stored_fingerprint(storage, study_name: str) -> str | None:
    """The search fingerprint stored with ``study_name``; None for a new or a foreign study."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return None
    return storage.get_study_user_attrs(study_id).get(FINGERPRINT_ATTR)


def study_names(storage) -> list[str]:
    """Every study in the storage, sorted by name."""
    return sorted(optuna.get_all_study_names(storage))


def made_here(storage, study_name: str) -> bool:
    """Whether momentum-sweep made the study (it has a search fingerprint)."""
    return stored_fingerprint(storage, study_name) is not None


def stored_spec(storage, study_name: str, *, foreign_ok: bool = False):
    """The StudySpec stored with a study when it was created.

    SweepError for a study that does not exist, and for one that momentum-sweep did not make
    unless ``foreign_ok``, which returns None for it instead.
    """
    from ..spec import spec_from_dict

    stored = storage.get_study_user_attrs(_study_id(storage, study_name)).get(SPEC_ATTR)
    if stored:
        return spec_from_dict(stored)
    if foreign_ok:
        return None
    raise SweepError(f"study {study_name!r} was not made by momentum-sweep")


def summaries(storage) -> list[tuple[str, int, float | None]]:
    """(name, number of trials, best value or None) of every study, sorted by name."""
    found = optuna.get_all_study_summaries(storage, include_best_trial=True)
    return [
        (s.study_name, s.n_trials, s.best_trial.value if s.best_trial else None)
        for s in sorted(found, key=lambda s: s.study_name)
    ]


def load_optuna_study(storage, study_name: str) -> optuna.Study:
    """The study as Optuna's own object, for Optuna's plots."""
    return optuna.load_study(study_name=study_name, storage=storage)


# ---------------------------------------------------------------------------------------------
# Trials


def trial_reader(storage):
    """A reader of ``get_all_trials`` that re-reads only new trials and ones not finished at the
    last read (finished trials never change), instead of every trial with its curves.

    It is Optuna's read cache, which ``optuna.create_study`` wraps an RDB storage in; without it
    (a future Optuna), the storage itself reads everything.
    """
    cached = getattr(optuna.storages, "_CachedStorage", None)
    return cached(storage) if cached else storage


def trial_info(trial: FrozenTrial) -> dict:
    """The trial's ``sweep`` attribute: its settings and lease ({} for a foreign trial)."""
    return trial.user_attrs.get(TRIAL_ATTR, {})


def _curve(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def json_curve(values: np.ndarray, epochs: int) -> list:
    """A curve as JSON: its epochs trained, non-finite values as null (JSON has no NaN)."""
    return [float(v) if math.isfinite(v) else None for v in values[:epochs]]


def to_record(trial: FrozenTrial) -> TrialRecord:
    info = trial_info(trial)
    curves = trial.user_attrs.get(CURVES_ATTR, {})
    diverged = curves.get("diverged_epoch")
    state = {
        TrialState.COMPLETE: "complete",
        TrialState.PRUNED: "diverged" if diverged else "pruned",
        TrialState.FAIL: "failed",
        TrialState.RUNNING: "running",
        TrialState.WAITING: "waiting",
    }[trial.state]
    return TrialRecord(
        number=trial.number,
        state=state,
        learning_rate=float(info.get("learning_rate", math.nan)),
        momentum=float(info.get("momentum", math.nan)),
        seed=int(info.get("seed", -1)),
        value=trial.value if trial.state in (TrialState.COMPLETE, TrialState.PRUNED) else None,
        baseline=bool(info.get("baseline", False)),
        diverged_epoch=diverged,
        stopped_epoch=curves.get("stopped_epoch"),
        train_loss=_curve(curves.get("train_loss", [])),
        val_loss=_curve(curves.get("val_loss", [])),
        val_accuracy=_curve(curves.get("val_accuracy", [])),
        retry_of=info.get("retry_of"),
        networks=_networks(curves.get("networks")),
    )


def _networks(stored: dict | None) -> NetworkCurves | None:
    if not stored:
        return None
    return NetworkCurves(
        seeds=tuple(int(s) for s in stored["seeds"]),
        folds=tuple(int(f) for f in stored["folds"]),
        values=_curve(stored["values"]),
        **{
            name: np.array([_curve(c) for c in stored[name]])
            for name in ("train_loss", "val_loss", "val_accuracy")
        },
    )


def unreadable(storage, study_name: str) -> str | None:
    """Why the study's trials cannot be read as records (a study made with Optuna for several
    objectives), or None when they can."""
    directions = storage.get_study_directions(_study_id(storage, study_name))
    if len(directions) > 1:
        return (
            f"it has {len(directions)} objectives (made with Optuna, not momentum-sweep, "
            "which reads single-objective studies only)"
        )
    return None


def foreign_best(storage, study_name: str) -> FrozenTrial | None:
    """Optuna's own best trial of a study momentum-sweep did not make (its parameters are
    whatever that study searched); None without a completed trial. SweepError for a study of
    several objectives, which has no single best."""
    reason = unreadable(storage, study_name)
    if reason:
        raise SweepError(f"study {study_name!r} has no single best trial: {reason}")
    try:
        return storage.get_best_trial(_study_id(storage, study_name))
    except ValueError:  # Optuna's "no trials are completed yet"
        return None


def read_records(storage, study_name: str) -> list[TrialRecord]:
    """Every trial of the study ``study_name`` as a TrialRecord, in trial-number order.

    SweepError for a study of several objectives (made with Optuna), which has no records.
    """
    reason = unreadable(storage, study_name)
    if reason:
        raise SweepError(f"study {study_name!r} cannot be read: {reason}")
    study_id = _study_id(storage, study_name)
    return [to_record(t) for t in storage.get_all_trials(study_id, deepcopy=False)]


def read_frozen(storage, study_id: int) -> list[FrozenTrial]:
    """Every trial of the study as Optuna's FrozenTrial, without copies."""
    return storage.get_all_trials(study_id, deepcopy=False)
