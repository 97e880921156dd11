"""Optuna's SQLite tables made safe to share: ids are never reused.

Optuna declares ``studies.study_id`` and ``trials.trial_id`` as plain ``INTEGER PRIMARY KEY``,
and SQLite gives such a row one more than the largest id *now* in the table. Delete the newest
study and the next study created gets its id: a run still writing to the deleted study then
writes its trials into the new one, and trial ids are recycled the same way. With SQLite's
``AUTOINCREMENT`` an id is never handed out twice (SQLite keeps the highest one issued in its
``sqlite_sequence`` table), whoever writes: momentum-sweep, Optuna's own API or the dashboard.

SQLite cannot add ``AUTOINCREMENT`` to a table in place, so :func:`never_reuse_ids` rebuilds
the two tables once, in one transaction, the way SQLite's documentation describes a table
change (create the new table, copy the rows, drop the old one, rename, re-create its indexes).
Rows keep their ids. The highest id issued is set above any id still referenced anywhere
(an orphaned trial's deleted study included), so no new study or trial can take one over.

PostgreSQL needs none of this: Optuna's ids there come from sequences, which never go back.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from optuna.storages._rdb import models
from sqlalchemy import MetaData
from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateTable

# Each table whose ids must never be reused, with every (table, column) that refers to them.
_REFERENCES = {
    models.StudyModel.__table__.name: [
        (model.__table__.name, "study_id")
        for model in (models.TrialModel, models.StudyDirectionModel,
                      models.StudyUserAttributeModel, models.StudySystemAttributeModel)
    ],
    models.TrialModel.__table__.name: [
        (model.__table__.name, "trial_id")
        for model in (models.TrialParamModel, models.TrialValueModel,
                      models.TrialIntermediateValueModel, models.TrialUserAttributeModel,
                      models.TrialSystemAttributeModel, models.TrialHeartbeatModel)
    ],
}
_ID_COLUMN = {models.StudyModel.__table__.name: "study_id",
              models.TrialModel.__table__.name: "trial_id"}
_NEW_SUFFIX = "_sweep_rebuild"


def _model(table: str):
    return models.StudyModel if table == models.StudyModel.__table__.name else models.TrialModel


def reuses_ids(connection: sqlite3.Connection) -> list[str]:
    """The tables of ``connection``'s Optuna database that would reuse a deleted row's id."""
    tables = dict(connection.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
    ).fetchall())
    return [name for name in _REFERENCES
            if name in tables and "AUTOINCREMENT" not in (tables[name] or "").upper()]


def _create_statement(name: str) -> str:
    """Optuna's own CREATE TABLE for ``name``, with AUTOINCREMENT, under a temporary name."""
    metadata = MetaData()
    # The studies table goes into the same metadata so that the trials' foreign key resolves.
    models.StudyModel.__table__.to_metadata(metadata)
    copy = _model(name).__table__.to_metadata(metadata, name=name + _NEW_SUFFIX)
    copy.dialect_options["sqlite"]["autoincrement"] = True
    return str(CreateTable(copy).compile(dialect=sqlite.dialect())).strip()


def never_reuse_ids(path: Path, timeout: float) -> bool:
    """Make the Optuna database at ``path`` hand out every study and trial id only once;
    returns whether it had to be changed. Safe to call from several processes at once: the
    change is one transaction, and a database already changed is left as it is.

    ``timeout``: seconds to wait for another process's write lock.
    """
    connection = sqlite3.connect(str(path), timeout=timeout, isolation_level=None)
    try:
        if not reuses_ids(connection):
            return False
        # Dropping the old table must not cascade or be refused over the rows that refer to
        # it; the pragma only takes effect outside a transaction.
        connection.execute("PRAGMA foreign_keys = OFF")
        connection.execute("BEGIN IMMEDIATE")
        try:
            changed = reuses_ids(connection)  # another process may have done it meanwhile
            for name in changed:
                _rebuild(connection, name)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return bool(changed)
    finally:
        connection.close()


def _rebuild(connection: sqlite3.Connection, name: str) -> None:
    new = name + _NEW_SUFFIX
    id_column = _ID_COLUMN[name]
    indexes = [sql for (sql,) in connection.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
        (name,),
    )]
    columns = ", ".join(c.name for c in _model(name).__table__.columns)
    connection.execute(f"DROP TABLE IF EXISTS {new}")
    connection.execute(_create_statement(name))
    connection.execute(f"INSERT INTO {new} ({columns}) SELECT {columns} FROM {name}")
    highest = max(
        connection.execute(f"SELECT COALESCE(MAX({column}), 0) FROM {table}").fetchone()[0]
        for table, column in [(name, id_column), *_REFERENCES[name]]
    )
    connection.execute(f"DROP TABLE {name}")
    connection.execute(f"ALTER TABLE {new} RENAME TO {name}")
    connection.execute("DELETE FROM sqlite_sequence WHERE name = ?", (name,))
    connection.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (name, highest))
    for sql in indexes:
        connection.execute(sql)
