"""Studies in the storage: creating and finding them, their stored spec, and their trials as
records.

What a momentum-sweep study keeps in Optuna's storage:

- study user attributes ``spec`` (the study file as ``StudySpec.to_dict()``),
  ``search_fingerprint`` (what decides the search; a study whose file changed is refused) and
  ``confirmation`` (the confirmation race's result, see :mod:`sweep.confirm`);
- per trial, the user attribute ``sweep`` (settings: learning rate, momentum, seed, rule,
  baseline, retry_of; and the lease: host, process id, lease_until) and, once finished,
  ``curves`` (per-epoch training loss, validation loss and accuracy as JSON lists, non-finite
  values as null, with ``diverged_epoch`` and ``stopped_epoch``).

Everything outside this package sees trials only as :class:`sweep.records.TrialRecord` or as
Optuna's public ``FrozenTrial``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import time

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import SweepError
from ..records import NetworkCurves, TrialRecord
from .damage import named_damage

SPEC_ATTR, FINGERPRINT_ATTR = "spec", "search_fingerprint"
# The confirmation race's result (sweep.confirm), with the key of what it was raced from.
CONFIRMATION_ATTR = "confirmation"
TRIAL_ATTR, CURVES_ATTR = "sweep", "curves"
FINGERPRINT_WAIT_SECONDS = 30.0

optuna.logging.set_verbosity(optuna.logging.WARNING)


def changed_search_error(spec, stored: dict | None = None) -> SweepError:
    """The refusal of a study file whose search differs from the study stored under its name,
    saying what differs (from ``stored``, the stored spec's dict, when given) and the two ways
    on."""
    differences = _differences(stored, spec.to_dict()) if isinstance(stored, dict) else []
    what = ("; ".join(differences[:4]) + ("; ..." if len(differences) > 4 else "")
            if differences else "its data set, network or search space")
    return SweepError(
        f"{spec.path}: study {spec.name!r} was stored with another search ({what}); to search "
        f"afresh, give the file a new name (name = \"{spec.name}-2\"); to add trials to the "
        "stored ones under the new search, pass --allow-spec-change"
    )


def _differences(stored: dict, current: dict, prefix: str = "") -> list[str]:
    """'key: stored X, the file Y' for each key whose value differs, nested keys dotted; the
    keys a study may change freely (description, trials, batch_size) left out."""
    found = []
    for key in sorted(set(stored) | set(current)):
        if not prefix and key in ("description", "trials", "batch_size", "name"):
            continue
        old, new = stored.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            found += _differences(old, new, f"{prefix}{key}.")
        elif old != new:
            found.append(f"{prefix}{key}: stored {old!r}, the file {new!r}")
    return found


def _study_id(storage, study_name: str) -> int:
    try:
        return storage.get_study_id_from_name(study_name)
    except KeyError:
        raise unknown_study_error(storage, study_name) from None


def unknown_study_error(storage, study_name: str) -> SweepError:
    """'no study named ...', with the stored names closest to it, or every name if few."""
    known = study_names(storage)
    close = difflib.get_close_matches(study_name, known, n=3, cutoff=0.6)
    if close:
        hint = "; did you mean " + " or ".join(repr(n) for n in close) + "?"
    elif known:
        shown = known[:8]
        hint = "; stored studies: " + ", ".join(shown) + (", ..." if len(known) > 8 else "")
    else:
        hint = "; the storage holds no studies yet"
    return SweepError(f"no study named {study_name!r} in the storage{hint}")


def trial_count(storage, study_id: int) -> int:
    """How many trials the study has, counted by the database (``get_n_trials`` of Optuna's
    RDB storage reads every trial with its curves)."""
    from optuna.storages._rdb import models
    from sqlalchemy import func, select

    trials = models.TrialModel.__table__
    with storage.engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(trials).where(trials.c.study_id == study_id)
        ).scalar_one()


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
        new = stored is None and trial_count(storage, study_id) == 0
        wait = FINGERPRINT_WAIT_SECONDS if new else 0
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
                raise changed_search_error(
                    spec, storage.get_study_user_attrs(study_id).get(SPEC_ATTR))
            storage.set_study_user_attr(study_id, SPEC_ATTR, spec.to_dict())
            storage.set_study_user_attr(study_id, FINGERPRINT_ATTR, spec.search_fingerprint())
        return study_id
    study = optuna.create_study(
        storage=storage, study_name=spec.name, direction="minimize", load_if_exists=True
    )
    study.set_user_attr(SPEC_ATTR, spec.to_dict())
    study.set_user_attr(FINGERPRINT_ATTR, spec.search_fingerprint())
    return study._study_id


def save_confirmation(storage, study_name: str, confirmation: dict) -> None:
    """Keep a study's confirmation (JSON-able, with its "key") in the storage beside its trials,
    where every machine sharing the study sees it."""
    storage.set_study_user_attr(_study_id(storage, study_name), CONFIRMATION_ATTR, confirmation)


def read_confirmation(storage, study_name: str) -> dict | None:
    """The confirmation stored with a study, or None."""
    stored = storage.get_study_user_attrs(_study_id(storage, study_name)).get(CONFIRMATION_ATTR)
    return stored if isinstance(stored, dict) else None


def confirmation_key(storage, study_name: str, spec, budget: dict) -> str:
    """What a confirmation is raced from: the study's trials, its search (the fingerprint of its
    data, network, search space and objective), the race's budget
    (``max_candidates``, ``max_networks``) and momentum-sweep's version. A stored confirmation
    whose key differs is out of date."""
    from .. import _version

    text = json.dumps({
        "trials": trials_digest(storage, study_name),
        "search": spec.search_fingerprint(),
        "budget": {key: budget.get(key) for key in ("max_candidates", "max_networks")},
        # How far the pick is measured after the race: a confirmation made before it was is out
        # of date (its stored settings lack it).
        "pick": {key: budget.get(key) for key in ("pick_precision", "max_pick_networks")},
        "version": _version(),
    }, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def current_confirmation(storage, study_name: str, spec) -> dict | None:
    """The stored confirmation when it still describes the study's trials and spec (its key
    recomputed with its own budget matches), else None."""
    stored = read_confirmation(storage, study_name)
    if stored is None or spec is None:
        return None
    budget = stored.get("settings") if isinstance(stored.get("settings"), dict) else {}
    return stored if stored.get("key") == confirmation_key(storage, study_name, spec,
                                                           budget) else None


def stored_spec_dict(storage, study_name: str) -> dict | None:
    """The stored study file as ``StudySpec.to_dict()`` gave it, or None."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return None
    stored = storage.get_study_user_attrs(study_id).get(SPEC_ATTR)
    return stored if isinstance(stored, dict) else None


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

    study_id = _study_id(storage, study_name)
    with named_damage(storage, study_id):
        stored = storage.get_study_user_attrs(study_id).get(SPEC_ATTR)
    if stored:
        return spec_from_dict(stored)
    if foreign_ok:
        return None
    raise SweepError(f"study {study_name!r} was not made by momentum-sweep")


def state_breakdown(storage) -> dict[str, str]:
    """Each study's trials by state, as a short text ('180 complete, 15 pruned or diverged, 5
    failed'): one grouped query, no trial read."""
    from optuna.storages._rdb import models
    from sqlalchemy import func, select

    studies, trials = models.StudyModel.__table__, models.TrialModel.__table__
    words = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned or diverged",
             TrialState.FAIL: "failed", TrialState.RUNNING: "running",
             TrialState.WAITING: "waiting"}
    with named_damage(storage), storage.engine.connect() as connection:
        rows = connection.execute(
            select(studies.c.study_name, trials.c.state, func.count())
            .join(trials, trials.c.study_id == studies.c.study_id)
            .group_by(studies.c.study_name, trials.c.state)
        ).all()
    found: dict[str, dict] = {}
    for name, state, count in rows:
        found.setdefault(name, {})[state] = count
    return {name: ", ".join(f"{counts[state]} {word}" for state, word in words.items()
                            if counts.get(state))
            for name, counts in found.items()}


def summaries(storage) -> list[tuple[str, int, float | None]]:
    """(name, number of trials, best value or None) of every study, sorted by name.

    Three small queries on Optuna's tables: ``optuna.get_all_study_summaries`` would read and
    copy every trial with its curves, seconds for a results database of a few thousand trials.
    The best value is Optuna's: the best COMPLETE value in the study's direction, None for a
    study with several objectives.
    """
    from optuna.storages._rdb import models
    from sqlalchemy import func, select

    studies, trials = models.StudyModel.__table__, models.TrialModel.__table__
    directions, values = models.StudyDirectionModel.__table__, models.TrialValueModel.__table__
    with named_damage(storage), storage.engine.connect() as connection:
        names = dict(connection.execute(select(studies.c.study_id, studies.c.study_name)).all())
        counts = dict(
            connection.execute(
                select(trials.c.study_id, func.count()).group_by(trials.c.study_id)
            ).all()
        )
        directions_of = {}
        for study_id, direction in connection.execute(
            select(directions.c.study_id, directions.c.direction)
        ):
            directions_of.setdefault(study_id, []).append(direction)
        completed = connection.execute(
            select(trials.c.study_id, values.c.value, values.c.value_type)
            .join(values, values.c.trial_id == trials.c.trial_id)
            .where(trials.c.state == TrialState.COMPLETE, values.c.objective == 0)
        ).all()
    best = {}
    for study_id, stored, value_type in completed:
        if len(directions_of.get(study_id, ())) != 1:
            continue
        value = models.TrialValueModel.stored_repr_to_value(stored, value_type)
        maximise = directions_of[study_id][0] == optuna.study.StudyDirection.MAXIMIZE
        earlier = best.get(study_id)
        if earlier is None or (value > earlier if maximise else value < earlier):
            best[study_id] = value
    return sorted(
        (name, counts.get(study_id, 0), best.get(study_id)) for study_id, name in names.items()
    )


def state_counts(storage, study_name: str) -> dict[TrialState, int]:
    """How many of the study's trials are in each state (states with none left out), counted by
    the database; {} for a study not in the storage."""
    from optuna.storages._rdb import models
    from sqlalchemy import func, select

    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return {}
    trials = models.TrialModel.__table__
    query = (
        select(trials.c.state, func.count())
        .where(trials.c.study_id == study_id)
        .group_by(trials.c.state)
    )
    with storage.engine.connect() as connection:
        return dict(connection.execute(query).all())


def trials_digest(storage, study_name: str) -> str:
    """A digest of the study's trials as a report sees them: each trial's number, state, value
    and completion time. One query, no curves read; it changes whenever a trial is added,
    finished or failed. SweepError for an unknown study."""
    from optuna.storages._rdb import models
    from sqlalchemy import and_, select

    study_id = _study_id(storage, study_name)
    trials, values = models.TrialModel.__table__, models.TrialValueModel.__table__
    query = (
        select(trials.c.number, trials.c.state, trials.c.datetime_complete, values.c.value,
               values.c.value_type)
        .outerjoin(values, and_(values.c.trial_id == trials.c.trial_id, values.c.objective == 0))
        .where(trials.c.study_id == study_id)
        .order_by(trials.c.number)
    )
    with named_damage(storage, study_id), storage.engine.connect() as connection:
        rows = [
            [number, state.name, str(completed), value, getattr(value_type, "name", None)]
            for number, state, completed, value, value_type in connection.execute(query)
        ]
    return hashlib.sha256(json.dumps([study_id, rows]).encode()).hexdigest()


def load_optuna_study(storage, study_name: str) -> optuna.Study:
    """The study as Optuna's own object, for Optuna's plots, read through ``trial_reader``:
    each plot asks for every trial several times, and each ask re-read every trial with its
    curves (which the plots do not draw), a third of a study page's time."""
    return optuna.load_study(study_name=study_name, storage=trial_reader(storage))


# ---------------------------------------------------------------------------------------------
# Trials


def trial_reader(storage):
    """A reader of ``get_all_trials`` that re-reads only new trials and ones not finished at the
    last read (finished trials never change), instead of every trial with its curves.

    It is Optuna's read cache, which ``optuna.create_study`` wraps an RDB storage in; without it
    (a future Optuna), the storage itself reads everything. Its trials carry no intermediate
    values (see :class:`_WithoutIntermediateValues`): the search reads a trial's curves from its
    ``curves`` attribute.
    """
    cached = getattr(optuna.storages, "_CachedStorage", None)
    return cached(_WithoutIntermediateValues(storage)) if cached else storage


class _WithoutIntermediateValues:
    """An RDB storage whose trial reads leave out the intermediate values.

    A trial's learning curve is a hundred intermediate-value rows, stored for the dashboard and
    Optuna's plots. Built into ORM objects on every read of new trials they doubled the search's
    storage time, and the search never looks at them. Everything else is the storage's own; the
    query is Optuna's ``RDBStorage._get_trials`` without that one relationship
    (``tests/test_store.py`` compares the trials read both ways).
    """

    def __init__(self, storage):
        self._storage = storage

    def __getattr__(self, name):
        return getattr(self._storage, name)

    def _get_trials(self, study_id, states, included_trial_ids, trial_id_greater_than):
        from optuna.storages._rdb import models
        from sqlalchemy import or_, orm, select

        trial = models.TrialModel
        included = {i for i in included_trial_ids if i <= trial_id_greater_than}
        query = (
            select(trial)
            .options(
                orm.selectinload(trial.params),
                orm.selectinload(trial.values),
                orm.selectinload(trial.user_attributes),
                orm.selectinload(trial.system_attributes),
            )
            .where(trial.study_id == study_id)
            .order_by(trial.trial_id)
        )
        if states is not None:
            query = query.where(trial.state.in_(list(states)))
        if trial_id_greater_than > -1:
            query = query.where(
                or_(trial.trial_id.in_(included), trial.trial_id > trial_id_greater_than)
            )
        with orm.Session(self._storage.engine) as session:
            return [_frozen(model) for model in session.scalars(query)]


def _frozen(model) -> FrozenTrial:
    """Optuna's ``RDBStorage._build_frozen_trial_from_trial_model`` without intermediate values
    (it would load them)."""
    from optuna.distributions import json_to_distribution
    from optuna.storages._rdb import models

    values = None
    if model.values:
        values = [0.0] * len(model.values)
        for value in model.values:
            values[value.objective] = models.TrialValueModel.stored_repr_to_value(
                value.value, value.value_type
            )
    params = sorted(model.params, key=lambda p: p.param_id)
    distributions = {p.param_name: json_to_distribution(p.distribution_json) for p in params}
    return FrozenTrial(
        number=model.number,
        state=model.state,
        value=None,
        values=values,
        datetime_start=model.datetime_start,
        datetime_complete=model.datetime_complete,
        params={
            p.param_name: distributions[p.param_name].to_external_repr(p.param_value)
            for p in params
        },
        distributions=distributions,
        user_attrs={a.key: json.loads(a.value_json) for a in model.user_attributes},
        system_attrs={a.key: json.loads(a.value_json) for a in model.system_attributes},
        intermediate_values={},
        trial_id=model.trial_id,
    )


def trial_info(trial: FrozenTrial) -> dict:
    """The trial's ``sweep`` attribute: its settings and lease ({} for a foreign trial)."""
    return trial.user_attrs.get(TRIAL_ATTR, {})


def _curve(values) -> np.ndarray:
    """A stored curve (or rows of curves) as floats: NumPy reads JSON's null as NaN."""
    return np.array(values, dtype=float)


def json_curve(values: np.ndarray, epochs: int) -> list:
    """A curve as JSON: its epochs trained, non-finite values as null (JSON has no NaN)."""
    # NumPy converts the whole curve at once; only the rare non-finite values are patched.
    trained = np.asarray(values[:epochs], dtype=float)
    curve = trained.tolist()
    for epoch in np.flatnonzero(~np.isfinite(trained)):
        curve[epoch] = None
    return curve


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
        arithmetic=info.get("arithmetic", "numpy"),
    )


def _networks(stored: dict | None) -> NetworkCurves | None:
    if not stored:
        return None
    return NetworkCurves(
        seeds=tuple(int(s) for s in stored["seeds"]),
        folds=tuple(int(f) for f in stored["folds"]),
        values=_curve(stored["values"]),
        **{
            name: _curve(stored[name])
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
    study_id = _study_id(storage, study_name)
    with named_damage(storage, study_id):
        try:
            return storage.get_best_trial(study_id)
        except ValueError as error:
            if "no trials are completed" in str(error).lower():
                return None
            raise


def read_records(storage, study_name: str) -> list[TrialRecord]:
    """Every trial of the study ``study_name`` as a TrialRecord, in trial-number order.

    SweepError for a study of several objectives (made with Optuna), which has no records.
    """
    reason = unreadable(storage, study_name)
    if reason:
        raise SweepError(f"study {study_name!r} cannot be read: {reason}")
    study_id = _study_id(storage, study_name)
    with named_damage(storage, study_id):
        trials = storage.get_all_trials(study_id, deepcopy=False)
    return [_readable_record(study_name, t) for t in trials]


def read_records_except(storage, study_name: str, numbers: set[int]) -> list[TrialRecord]:
    """The study's trials as records, leaving out the trials ``numbers`` (damaged ones, which
    cannot be read), in trial-number order."""
    from optuna.storages._rdb import models
    from sqlalchemy import orm, select

    trial = models.TrialModel
    query = (
        select(trial)
        .options(orm.selectinload(trial.params), orm.selectinload(trial.values),
                 orm.selectinload(trial.user_attributes),
                 orm.selectinload(trial.system_attributes))
        .where(trial.study_id == _study_id(storage, study_name), trial.number.not_in(numbers))
        .order_by(trial.number)
    )
    with orm.Session(storage.engine) as session:
        return [_readable_record(study_name, _frozen(model)) for model in session.scalars(query)]


def _readable_record(study_name: str, trial: FrozenTrial) -> TrialRecord:
    """``to_record(trial)``, or a SweepError naming the trial whose stored attributes hold
    JSON of the wrong shape (readable, but not what momentum-sweep wrote)."""
    try:
        return to_record(trial)
    except (LookupError, ValueError, TypeError, AttributeError) as error:
        raise SweepError(
            f"study {study_name!r} trial {trial.number}: its stored settings or curves are "
            f"damaged ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
            "; `sweep check` lists every damaged row"
        ) from None


def read_frozen(storage, study_id: int) -> list[FrozenTrial]:
    """Every trial of the study as Optuna's FrozenTrial, without copies."""
    return storage.get_all_trials(study_id, deepcopy=False)
