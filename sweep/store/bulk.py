"""Writing a batch of trials to Optuna's RDB storage in one transaction.

Optuna's storage API writes a trial in several ORM round trips: creating a RUNNING trial with
its parameters and attributes took 4.7 ms here on SQLite, storing its curves and finishing it
2.8 ms more, and it is the ORM work, not the commits, that costs (the same calls inside one
session took as long). That was 43 % of a 200-trial search. These two functions write the very
rows those calls write, through Optuna's own table definitions (the tables of its ORM models),
with a few plain statements per batch. Optuna, optuna-dashboard and the optuna command line read
them as their own: ``tests/test_bulk.py`` compares every field of trials written both ways.

A batch is all or nothing: a worker killed while writing leaves none of the batch behind.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

from optuna.distributions import BaseDistribution, distribution_to_json
from optuna.storages._rdb import models
from optuna.trial import TrialState
from sqlalchemy import func, insert, select, update

from ..errors import StudyDeleted

_STUDIES = models.StudyModel.__table__
_TRIALS = models.TrialModel.__table__
_PARAMS = models.TrialParamModel.__table__
_USER_ATTRS = models.TrialUserAttributeModel.__table__
_VALUES = models.TrialValueModel.__table__
_INTERMEDIATE = models.TrialIntermediateValueModel.__table__


@dataclass(frozen=True)
class NewTrial:
    """A trial to create RUNNING: its parameters (name -> value in ``distributions``) and user
    attributes."""

    params: dict[str, float]
    distributions: dict[str, BaseDistribution]
    user_attrs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Finished:
    """A RUNNING trial's end: its state, its value (None for none), user attributes to add and
    intermediate values (step -> value, what ``trial.report`` stores; any float, NaN and
    infinities included)."""

    trial_id: int
    state: TrialState
    value: float | None = None
    user_attrs: dict = field(default_factory=dict)
    intermediate_values: dict[int, float] = field(default_factory=dict)


def _utc_now() -> datetime:
    # Optuna stores datetimes as naive UTC (see models.TrialModel).
    return datetime.now(timezone.utc).replace(tzinfo=None)


def create_running(storage, study_id: int, trials: list[NewTrial]) -> list[int]:
    """Create ``trials`` RUNNING in the study, numbered on from its last trial; their trial ids."""
    if not trials:
        return []
    for trial in trials:  # what optuna.trial.create_trial checks: a value outside would break reads
        for name, value in trial.params.items():
            distribution = trial.distributions[name]
            if not distribution._contains(distribution.to_internal_repr(value)):
                raise ValueError(f"parameter {name} = {value!r} is outside {distribution}")
    now = _utc_now()
    with storage.engine.begin() as connection:
        # Optuna numbers a trial by counting the study's earlier ones, holding the study's row
        # for update (PostgreSQL, MySQL; SQLite's writer lock serialises this already).
        # A study deleted meanwhile (`sweep delete --force`) stops the run here: nothing is
        # written for it, and its id is never another study's (see schema.py).
        if connection.execute(
            select(_STUDIES.c.study_id).where(_STUDIES.c.study_id == study_id).with_for_update()
        ).first() is None:
            raise StudyDeleted()
        first = connection.execute(
            select(func.count()).select_from(_TRIALS).where(_TRIALS.c.study_id == study_id)
        ).scalar_one()
        trial_ids = [
            connection.execute(
                insert(_TRIALS).values(
                    number=first + offset,
                    study_id=study_id,
                    state=TrialState.RUNNING,
                    datetime_start=now,
                )
            ).inserted_primary_key[0]
            for offset in range(len(trials))
        ]
        params = [
            {
                "trial_id": trial_id,
                "param_name": name,
                "param_value": trial.distributions[name].to_internal_repr(value),
                "distribution_json": distribution_to_json(trial.distributions[name]),
            }
            for trial_id, trial in zip(trial_ids, trials)
            for name, value in trial.params.items()
        ]
        if params:
            connection.execute(insert(_PARAMS), params)
        _insert_user_attrs(
            connection, [(trial_id, trial.user_attrs) for trial_id, trial in zip(trial_ids, trials)]
        )
    return trial_ids


def finish(storage, results: list[Finished]) -> list[bool]:
    """Store each result; False for a trial that is no longer RUNNING (another worker failed it),
    which is left as it is. StudyDeleted, and nothing stored, when a trial is gone."""
    if not results:
        return []
    for result in results:
        if result.value is not None and math.isnan(result.value):
            # Optuna stores NaN as a NULL finite value, and every later read of the study fails.
            raise ValueError(f"trial {result.trial_id}: a NaN value cannot be stored")
    now = _utc_now()
    with storage.engine.begin() as connection:
        stored = [
            connection.execute(
                update(_TRIALS)
                .where(_TRIALS.c.trial_id == result.trial_id, _TRIALS.c.state == TrialState.RUNNING)
                .values(state=result.state, datetime_complete=now)
            ).rowcount
            == 1
            for result in results
        ]
        if not all(stored):
            missing = _missing_trials(connection, [r.trial_id for r, ok in zip(results, stored)
                                                   if not ok])
            if missing:  # deleted with their study: nothing of the batch is stored
                raise StudyDeleted()
        kept = [result for result, ok in zip(results, stored) if ok]
        _insert_user_attrs(connection, [(result.trial_id, result.user_attrs) for result in kept])
        values = []
        for result in kept:
            if result.value is not None:
                value, value_type = models.TrialValueModel.value_to_stored_repr(result.value)
                values.append(
                    {
                        "trial_id": result.trial_id,
                        "objective": 0,
                        "value": value,
                        "value_type": value_type,
                    }
                )
        if values:
            connection.execute(insert(_VALUES), values)
        _insert_intermediate_values(connection, kept)
    return stored


def _missing_trials(connection, trial_ids: list[int]) -> set[int]:
    """The ids among ``trial_ids`` with no trial row (deleted)."""
    found = connection.execute(
        select(_TRIALS.c.trial_id).where(_TRIALS.c.trial_id.in_(trial_ids))
    ).scalars()
    return set(trial_ids) - set(found)


def _insert_intermediate_values(connection, results: list[Finished]) -> None:
    # Optuna keeps a non-finite intermediate value as NULL with its kind in value_type; the
    # model's own conversion writes exactly what trial.report would.
    model = models.TrialIntermediateValueModel
    finite = model.TrialIntermediateValueType.FINITE
    rows = []
    for result in results:
        for step, value in result.intermediate_values.items():
            if math.isfinite(value):
                stored, value_type = value, finite
            else:
                stored, value_type = model.intermediate_value_to_stored_repr(value)
            rows.append((result.trial_id, step, stored, value_type))
    if not rows:
        return
    if connection.dialect.name == "sqlite":
        # A curve is a hundred rows per trial. SQLAlchemy's per-row parameter processing cost
        # three times what SQLite takes to insert them; SQLite's driver gets the values as
        # SQLAlchemy would store them (the type by its name: the column is a non-native enum).
        connection.exec_driver_sql(
            f"INSERT INTO {_INTERMEDIATE.name} (trial_id, step, intermediate_value, "
            "intermediate_value_type) VALUES (?, ?, ?, ?)",
            [(trial_id, step, stored, kind.name) for trial_id, step, stored, kind in rows],
        )
    else:
        columns = ("trial_id", "step", "intermediate_value", "intermediate_value_type")
        connection.execute(insert(_INTERMEDIATE), [dict(zip(columns, row)) for row in rows])


def _insert_user_attrs(connection, attrs: list[tuple[int, dict]]) -> None:
    rows = [
        {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
        for trial_id, user_attrs in attrs
        for key, value in user_attrs.items()
    ]
    if rows:
        connection.execute(insert(_USER_ATTRS), rows)
