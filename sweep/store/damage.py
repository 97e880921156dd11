"""Finding stored rows that cannot be read, and rows that belong to nothing.

A flipped byte in a trial's state or value type, or in the JSON of its curves, makes Optuna's
reads fail with a bare ``LookupError`` or ``JSONDecodeError`` that names no trial. The queries
here read Optuna's tables as plain text, so that each damaged row can be named: which study,
which trial, which field. ``sweep check`` reports them all; a command whose read fails names
the first one (:func:`named_damage`).

Orphans are rows whose study or trial is gone: trials of a deleted study (before foreign keys
were enforced, a run could go on writing them after ``sweep delete``), attributes and values
of a trial that is gone.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

from optuna.storages._rdb import models
from optuna.study import StudyDirection
from optuna.trial import TrialState
from sqlalchemy import text

from ..errors import SweepError

_STUDIES = models.StudyModel.__table__.name
_TRIALS = models.TrialModel.__table__.name
# The value kinds each enum column may hold, as Optuna stores them (by name).
_ENUM_COLUMNS = [
    (models.TrialValueModel.__table__.name, "value_type", "value",
     set(models.TrialValueModel.TrialValueType.__members__)),
    (models.TrialIntermediateValueModel.__table__.name, "intermediate_value_type",
     "intermediate value", set(models.TrialIntermediateValueModel.TrialIntermediateValueType
                               .__members__)),
]
_JSON_COLUMNS = [
    (models.TrialUserAttributeModel.__table__.name, "value_json", "attribute"),
    (models.TrialSystemAttributeModel.__table__.name, "value_json", "system attribute"),
]
# Every table whose rows belong to a trial, and every one whose rows belong to a study.
TRIAL_CHILDREN = [model.__table__.name for model in (
    models.TrialParamModel, models.TrialValueModel, models.TrialIntermediateValueModel,
    models.TrialUserAttributeModel, models.TrialSystemAttributeModel, models.TrialHeartbeatModel,
)]
STUDY_CHILDREN = [model.__table__.name for model in (
    models.StudyDirectionModel, models.StudyUserAttributeModel, models.StudySystemAttributeModel,
)]


@dataclass(frozen=True)
class Damage:
    """A stored row that cannot be read: the study and trial it belongs to (trial None for a
    study's own row) and what is wrong with it."""

    study: str
    trial: int | None
    what: str

    def __str__(self) -> str:
        where = f"study {self.study!r}" + (f" trial {self.trial}" if self.trial is not None else "")
        return f"{where}: {self.what}"


def _where(study_id: int | None, column: str) -> tuple[str, dict]:
    return ("", {}) if study_id is None else (f" WHERE {column} = :study_id",
                                               {"study_id": study_id})


def damaged_rows(storage, study_id: int | None = None) -> list[Damage]:
    """Every unreadable row of the study ``study_id`` (None: of every study), trials in
    number order."""
    found = []
    with storage.engine.connect() as connection:
        where, bind = _where(study_id, "t.study_id")
        trials = connection.execute(text(
            f"SELECT t.trial_id, s.study_name, t.number, t.state FROM {_TRIALS} t "
            f"JOIN {_STUDIES} s ON s.study_id = t.study_id{where} ORDER BY s.study_name, t.number"
        ), bind).all()
        owner = {trial_id: (study, number) for trial_id, study, number, _ in trials}
        for trial_id, study, number, state in trials:
            if str(state) not in TrialState.__members__:
                found.append(Damage(study, number, f"its state {state!r} is not a trial state"))
        for table, column, noun, allowed in _ENUM_COLUMNS:
            rows = connection.execute(text(
                f"SELECT c.trial_id, c.{column} FROM {table} c "
                f"JOIN {_TRIALS} t ON t.trial_id = c.trial_id{where}"
            ), bind)
            for trial_id, kind in rows:
                if str(kind) not in allowed:
                    study, number = owner[trial_id]
                    found.append(Damage(study, number, f"its {noun} row has the type {kind!r}, "
                                                       "which is not one Optuna writes"))
        for table, column, noun in _JSON_COLUMNS:
            rows = connection.execute(text(
                f"SELECT c.trial_id, c.key, c.{column} FROM {table} c "
                f"JOIN {_TRIALS} t ON t.trial_id = c.trial_id{where}"
            ), bind)
            for trial_id, key, value in rows:
                problem = _json_problem(value)
                if problem:
                    study, number = owner[trial_id]
                    found.append(Damage(study, number,
                                        f"its {noun} {key!r} is not valid JSON ({problem})"))
        where, bind = _where(study_id, "s.study_id")
        for study, key, value in connection.execute(text(
            f"SELECT s.study_name, a.key, a.value_json FROM "
            f"{models.StudyUserAttributeModel.__table__.name} a "
            f"JOIN {_STUDIES} s ON s.study_id = a.study_id{where}"
        ), bind):
            problem = _json_problem(value)
            if problem:
                found.append(Damage(study, None, f"its attribute {key!r} is not valid JSON "
                                                 f"({problem})"))
        for study, direction in connection.execute(text(
            f"SELECT s.study_name, d.direction FROM "
            f"{models.StudyDirectionModel.__table__.name} d "
            f"JOIN {_STUDIES} s ON s.study_id = d.study_id{where}"
        ), bind):
            if str(direction) not in StudyDirection.__members__:
                found.append(Damage(study, None, f"its direction {direction!r} is not one "
                                                 "Optuna writes"))
    return sorted(found, key=lambda d: (d.study, -1 if d.trial is None else d.trial))


def _json_problem(value) -> str | None:
    try:
        json.loads(value)
    except (TypeError, ValueError) as error:
        return str(error).splitlines()[0] if str(error) else type(error).__name__
    return None


@contextlib.contextmanager
def named_damage(storage, study_id: int | None = None):
    """Turn a read of the study that fails on a damaged row into a SweepError naming the row
    (its study, trial and field) and pointing to ``sweep check``; any other error is raised as
    it was."""
    try:
        yield
    except (LookupError, ValueError, TypeError):
        try:
            damaged = damaged_rows(storage, study_id)
        except Exception:
            damaged = []
        if not damaged:
            raise
        more = f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else ""
        raise SweepError(
            f"{damaged[0]}{more}; `sweep check` lists every damaged row"
        ) from None


@dataclass(frozen=True)
class Orphans:
    """Rows of ``table`` whose owner (a study or a trial) is gone: how many, and of what."""

    table: str
    rows: int
    owner: str

    def __str__(self) -> str:
        rows = "1 row" if self.rows == 1 else f"{self.rows} rows"
        return f"{rows} of {self.table} belong{'s' * (self.rows == 1)} to {self.owner}"


def orphans(connection) -> list[Orphans]:
    """Every kind of row that belongs to no study or no trial."""
    found = []
    gone_studies = connection.execute(text(
        f"SELECT study_id, COUNT(*) FROM {_TRIALS} WHERE study_id IS NULL OR study_id NOT IN "
        f"(SELECT study_id FROM {_STUDIES}) GROUP BY study_id ORDER BY study_id"
    )).all()
    for study_id, rows in gone_studies:
        owner = "no study" if study_id is None else f"study id {study_id}, which is gone"
        found.append(Orphans(_TRIALS, rows, owner))
    for table in TRIAL_CHILDREN:
        rows = connection.execute(text(
            f"SELECT COUNT(*) FROM {table} WHERE trial_id IS NULL OR trial_id NOT IN "
            f"(SELECT trial_id FROM {_TRIALS} WHERE study_id IN (SELECT study_id FROM "
            f"{_STUDIES}))"
        )).scalar_one()
        if rows:
            found.append(Orphans(table, rows, "trials that are gone or belong to no study"))
    for table in STUDY_CHILDREN:
        rows = connection.execute(text(
            f"SELECT COUNT(*) FROM {table} WHERE study_id IS NULL OR study_id NOT IN "
            f"(SELECT study_id FROM {_STUDIES})"
        )).scalar_one()
        if rows:
            found.append(Orphans(table, rows, "studies that are gone"))
    return found


def delete_orphans(connection) -> int:
    """Delete every orphaned row, children first; how many rows were deleted."""
    deleted = 0
    kept_trials = (f"SELECT trial_id FROM {_TRIALS} WHERE study_id IN "
                   f"(SELECT study_id FROM {_STUDIES})")
    for table in TRIAL_CHILDREN:
        deleted += connection.execute(text(
            f"DELETE FROM {table} WHERE trial_id IS NULL OR trial_id NOT IN ({kept_trials})"
        )).rowcount
    deleted += connection.execute(text(
        f"DELETE FROM {_TRIALS} WHERE study_id IS NULL OR study_id NOT IN "
        f"(SELECT study_id FROM {_STUDIES})"
    )).rowcount
    for table in STUDY_CHILDREN:
        deleted += connection.execute(text(
            f"DELETE FROM {table} WHERE study_id IS NULL OR study_id NOT IN "
            f"(SELECT study_id FROM {_STUDIES})"
        )).rowcount
    return deleted
