"""Opening Optuna's RDB storage: SQLite under results/ by default, or any URL (PostgreSQL).

Everything here exists so that a storage problem becomes one clear line, never a traceback and
never a write: a SQLite file is checked (is it SQLite? is it an Optuna database of the schema
this Optuna writes?) before Optuna is allowed to create tables in it. Passwords in URLs are
masked in every message (:mod:`.urls`).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading
import time
from pathlib import Path

import optuna
import sqlalchemy
from sqlalchemy.engine import make_url

from ..errors import StorageError
from .urls import DEFAULT_STORAGE, _user_info, passwords, redact, redact_text, sqlite_path

__all__ = ["DEFAULT_STORAGE", "open_storage", "redact", "redact_text", "sqlite_path"]

# Optuna logs a failed query at WARNING with its whole SQL and every bound parameter (18 KB for
# a study of 500 trials) before it retries; SQLAlchemy's pool logs a lost connection with its
# traceback. The error that follows is said in one line (storage_failure): neither reaches the
# terminal.
logging.getLogger("optuna.storages._rdb.storage").setLevel(logging.ERROR)
logging.getLogger("sqlalchemy").addHandler(logging.NullHandler())
logging.getLogger("sqlalchemy").propagate = False

# Workers on one SQLite file wait this long for each other's write locks before giving up.
SQLITE_LOCK_TIMEOUT_SECONDS = 120
SCHEMA_RACE_ATTEMPTS = 5
# A wait for another process's lock on the SQLite file longer than this is said on stderr.
LOCK_NOTICE_SECONDS = 2.0
# The tables Optuna's RDB storage creates (schema v3.2.0.a); a file holding others is not ours.
OPTUNA_TABLES = frozenset({
    "studies", "study_directions", "study_user_attributes", "study_system_attributes", "trials",
    "trial_user_attributes", "trial_system_attributes", "trial_params", "trial_values",
    "trial_intermediate_values", "trial_heartbeats", "version_info", "alembic_version",
})


def _one_line(error: BaseException, url: str) -> str:
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    message = text[0] if text and text[0] != "()" else type(error).__name__
    for password in passwords(url):
        message = message.replace(password, "***")
    return redact_text(message)


def _check_sqlite_file(path: Path) -> bool:
    """Refuse a file that is not an Optuna SQLite database of the current schema, without writing.

    Returns whether the file holds an Optuna database (False: no file, or an empty one).
    """
    if not path.parent.is_dir():
        raise StorageError(
            f"{path}: folder {path.parent} does not exist (no results/ folder here or in a "
            "folder above: run from inside a momentum-sweep project, or say where the results "
            "are with --storage sqlite:///PATH/sweep.db or MOMENTUM_SWEEP_RESULTS=PATH)")
    if path.is_dir():
        raise StorageError(f"{path}: is a directory, not a results database file")
    if not path.exists() or path.stat().st_size == 0:
        return False
    # Only SQLite itself opens the file: closing any other descriptor of it would drop the POSIX
    # locks this process's SQLite connections hold on it, and other workers could then checkpoint
    # the WAL under them and corrupt the database (seen here: 'database disk image is malformed').
    if not os.access(path, os.R_OK):
        raise StorageError(f"{path}: cannot read the results database: permission denied")
    try:
        tables, version = _read_schema(path, read_only=True)
    except sqlite3.DatabaseError as error:
        if "not a database" in str(error):
            raise StorageError(
                f"{path}: not a SQLite database (corrupt, or another kind of file)"
            ) from None
        try:
            # A read-only connection cannot replay the WAL of a worker that was killed; an
            # ordinary one can (it changes no data), so give the file that chance first.
            tables, version = _read_schema(path, read_only=False)
        except sqlite3.DatabaseError as second:
            if not os.access(path.parent, os.W_OK):
                # The file reads fine; SQLite cannot create its -wal and -shm files beside it.
                raise StorageError(
                    f"{path}: folder {path.parent} is read-only, and SQLite needs to write its "
                    "lock files (-wal, -shm) beside the database; make the folder writable, or "
                    "copy the database to a writable folder and pass --storage"
                ) from None
            raise StorageError(f"{path}: unreadable SQLite database ({second})") from None
    if not tables:
        return False
    # SQLite's own tables (sqlite_stat1 after ANALYZE or PRAGMA optimize, sqlite_sequence) may
    # sit in any database.
    foreign = {name for name in tables - OPTUNA_TABLES if not name.startswith("sqlite_")}
    if foreign:
        raise StorageError(
            f"{path}: a SQLite database, but not an Optuna one "
            f"(tables {', '.join(sorted(foreign)[:3])})"
        )
    if "alembic_version" not in tables:
        return True  # another worker is creating Optuna's tables right now: Optuna finishes them
    expected = _head_schema_version()
    if version is not None and expected is not None and version[0] != expected:
        raise StorageError(
            f"{path}: Optuna schema {version[0]!r}, but this Optuna {optuna.__version__} writes "
            f"{expected!r}; use a new --storage file or `optuna storage upgrade`"
        )
    return True


def _writable_lock_files(path: Path) -> None:
    """Make SQLite's -shm and -wal files beside a writable database writable again.

    A command run while the database file was read-only (or by a user who could only read it)
    leaves them read-only behind it, and SQLite then refuses every later write with "attempt
    to write a readonly database" though the database itself is writable. Ours are made
    writable (a mode change does not disturb a process using them); another user's, when no
    process holds a lock on them (Linux says in /proc/locks) and the -wal holds nothing, are
    removed, and SQLite makes new ones. Anything else is one line saying what to do.
    """
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        return  # a read-only database: SQLite reads it as it is
    stuck = [lock for lock in (Path(f"{path}-shm"), Path(f"{path}-wal"))
             if lock.exists() and not os.access(lock, os.W_OK)]
    for lock in list(stuck):
        try:
            lock.chmod(lock.stat().st_mode | 0o200)
        except OSError:
            continue
        if os.access(lock, os.W_OK):
            stuck.remove(lock)
    if not stuck:
        return
    wal = Path(f"{path}-wal")
    if _locked(stuck) is False and not (wal.exists() and wal.stat().st_size):
        try:
            for lock in stuck:
                lock.unlink()
            return
        except OSError:
            pass
    raise StorageError(
        f"{path}: its lock files ({', '.join(lock.name for lock in stuck)}) are read-only, "
        "left by a command that could only read the database; make them writable (chmod u+w), "
        "or, once no sweep uses the database, remove them"
    )


def _locked(files: list[Path]) -> bool | None:
    """Whether any process holds a lock on one of ``files`` (None where it cannot be told)."""
    try:
        held = Path("/proc/locks").read_text()
    except OSError:
        return None
    inodes = set()
    for file in files:
        stat = file.stat()
        inodes.add(f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}")
    return any(line.split()[5] in inodes for line in held.splitlines() if len(line.split()) > 5)


def _read_schema(path: Path, read_only: bool) -> tuple[set[str], tuple | None]:
    """The file's table names and its Optuna schema version row (None without one)."""
    # as_uri() percent-encodes '#' and '?', which a plain "file:" string would cut the name at.
    uri = path.resolve().as_uri() + ("?mode=ro" if read_only else "")
    connection = sqlite3.connect(
        uri, uri=True, timeout=SQLITE_LOCK_TIMEOUT_SECONDS, factory=_NoticingConnection
    )
    connection.database = str(path)
    try:
        tables = {
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        version = None
        if "alembic_version" in tables:
            version = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        return tables, version
    finally:
        connection.close()


def _head_schema_version() -> str | None:
    """The schema version this Optuna writes, read from its bundled migration scripts."""
    try:
        from alembic.script import ScriptDirectory

        scripts = Path(optuna.storages.__file__).parent / "_rdb" / "alembic"
        return ScriptDirectory(str(scripts)).get_current_head()
    except Exception:
        return None


class _LockWatch:
    """Says on stderr when a statement has waited LOCK_NOTICE_SECONDS for another process's
    lock on the SQLite file, instead of leaving the user to a silent wait of up to
    SQLITE_LOCK_TIMEOUT_SECONDS. One daemon thread per process watches every statement: each
    costs only two dictionary writes."""

    def __init__(self):
        self.started = {}  # thread id -> (monotonic start, database file, already said)
        self.thread = None

    def __enter__(self):
        if self.thread is None:  # started by the first statement
            self.thread = threading.Thread(target=self._watch, name="sqlite-lock-watch",
                                           daemon=True)
            self.thread.start()
        return self

    def statement(self, database: str):
        self.started[threading.get_ident()] = (time.monotonic(), database, False)
        return self

    def __exit__(self, *exc):
        self.started.pop(threading.get_ident(), None)

    def _watch(self):
        while True:
            time.sleep(LOCK_NOTICE_SECONDS / 4)
            now = time.monotonic()
            for ident, (start, database, said) in list(self.started.items()):
                if not said and now - start >= LOCK_NOTICE_SECONDS:
                    self.started[ident] = (start, database, True)
                    print(
                        f"sweep: waiting for {database}: another process holds a lock on it "
                        f"(waiting up to {SQLITE_LOCK_TIMEOUT_SECONDS} s)",
                        file=sys.stderr, flush=True,
                    )


_LOCK_WATCH = _LockWatch()


class _NoticingCursor(sqlite3.Cursor):
    def execute(self, *args):
        with _LOCK_WATCH.statement(self.connection.database):
            return super().execute(*args)

    def executemany(self, *args):
        with _LOCK_WATCH.statement(self.connection.database):
            return super().executemany(*args)


class _NoticingConnection(sqlite3.Connection):
    """A SQLite connection whose statements say so when they wait long for a lock."""

    def __init__(self, database, *args, **kwargs):
        super().__init__(database, *args, **kwargs)
        self.database = str(database)  # what a notice names; a file: URI sets it after

    def cursor(self, factory=_NoticingCursor):
        return super().cursor(factory)

    def execute(self, *args):
        return self.cursor().execute(*args)


def _sqlite_connector(path: Path):
    def connect():
        connection = sqlite3.connect(
            str(path), timeout=SQLITE_LOCK_TIMEOUT_SECONDS, check_same_thread=False,
            factory=_NoticingConnection,
        )
        # No implicit BEGIN from pysqlite: _begin_immediate below starts every transaction.
        connection.isolation_level = None
        # WAL lets readers work while a worker writes; NORMAL sync is safe with WAL (a power cut
        # can lose the last commits, never corrupt the file) and makes each commit cheaper.
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        # SQLite checks foreign keys only when asked, per connection: with it a trial can never
        # be written for a study that is gone (see schema.py for why ids are never reused).
        connection.execute("PRAGMA foreign_keys=ON")
        return connection

    return connect


def _begin_immediate(connection) -> None:
    # A deferred SQLite transaction that reads and then writes fails at once with "database is
    # locked" when another worker wrote in between, without waiting for the lock timeout.
    # Taking the write lock at BEGIN makes workers queue for it instead.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def open_storage(url: str = DEFAULT_STORAGE, *, create: bool = True) -> optuna.storages.RDBStorage:
    """An RDBStorage for ``url``; raises StorageError with one line if it cannot be used.

    ``create=False`` (commands that only read) refuses a SQLite file that holds no Optuna
    database yet instead of creating one, and changes nothing in it; otherwise a SQLite
    database is first made to never reuse a deleted study's or trial's id (``schema.py``).
    """
    path = sqlite_path(url)
    engine_kwargs = {}
    if path is not None:
        if path.exists():
            _writable_lock_files(path)
        if not _check_sqlite_file(path) and not create:
            raise StorageError(
                f"{path}: no results database there (check --storage, or run `sweep run` first)"
            )
        engine_kwargs = {"creator": _sqlite_connector(path)}
    else:
        info = _user_info(url)
        if info and "@" in info:
            raise StorageError(
                f"storage URL {redact(url)!r}: its user or password holds a raw '@'; "
                "write it as %40"
            )
        try:
            backend = make_url(url).get_backend_name()
        except Exception:
            raise StorageError(
                f"storage URL {redact(url)!r} is not a database URL (e.g. sqlite:///results/sweep.db)"
            ) from None
        if backend == "sqlite":
            raise StorageError(f"storage URL {redact(url)!r} names no file")
        engine_kwargs = {"pool_pre_ping": True}
    for attempt in range(SCHEMA_RACE_ATTEMPTS):
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
            break
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError,
                sqlalchemy.exc.OperationalError) as error:
            # Two processes creating Optuna's tables in one new database at once (two workers,
            # or a run and a reader that opens the half-made file): the loser sees "already
            # exists" (SQLite: an OperationalError) or a duplicate key. The tables are there
            # now; open them again.
            raced = not isinstance(error, sqlalchemy.exc.OperationalError) or (
                "already exists" in str(error))
            if not raced:
                raise _open_failure(error, url) from None
            if attempt == SCHEMA_RACE_ATTEMPTS - 1:
                raise StorageError(
                    f"cannot open storage {redact(url)}: {_one_line(error, url)}"
                ) from None
            time.sleep(0.2 * (attempt + 1))
        except (sqlalchemy.exc.SQLAlchemyError, RuntimeError, ValueError, ImportError) as error:
            raise _open_failure(error, url) from None
    if path is not None:
        sqlalchemy.event.listen(storage.engine, "begin", _begin_immediate)
        storage.engine.dispose()  # connections opened before the listener would not use it
        if create:
            never_reuse_ids(storage)
    return storage


def _open_failure(error: BaseException, url: str) -> StorageError:
    """One line for a storage that cannot be opened, with the way to give a missing password."""
    reason = _one_line(error, url)
    if "no password supplied" in reason:
        reason += ("; give the password in PGPASSWORD or a password file (~/.pgpass), "
                   "where `ps` cannot show it")
    return StorageError(f"cannot open storage {redact(url)}: {reason}")


def never_reuse_ids(storage) -> None:
    """Make a SQLite storage hand out each study and trial id once only (see ``schema.py``);
    nothing to do on PostgreSQL, whose ids come from sequences. Every command that deletes or
    creates studies calls it first."""
    path = sqlite_path(str(storage.url))
    if path is not None:
        from .schema import never_reuse_ids as rebuild

        rebuild(path, SQLITE_LOCK_TIMEOUT_SECONDS)


def storage_failure(error: BaseException, url: str) -> StorageError | None:
    """One line for an error the storage raised in the middle of a command, or None when
    ``error`` did not come from the storage. A full disk says what to do: the trials in flight
    were left RUNNING or failed, and the next run fails and retries them as a dead worker's."""
    chain, seen = [], error
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = getattr(seen, "orig", None) or seen.__cause__ or seen.__context__
    from_storage = (sqlalchemy.exc.SQLAlchemyError, sqlite3.Error,
                    optuna.exceptions.StorageInternalError)
    if not any(isinstance(link, from_storage) for link in chain):
        return None
    text = " ".join(str(link) for link in chain)
    if "database or disk is full" in text or "No space left on device" in text:
        return StorageError(
            f"storage {redact(url)}: the disk is full; free some space, then run the same "
            "command again (the trials in flight are retried)"
        )
    if "database is locked" in text:
        return StorageError(
            f"storage {redact(url)}: another process held its lock for over "
            f"{SQLITE_LOCK_TIMEOUT_SECONDS} s; run again once it has finished"
        )
    return StorageError(f"storage {redact(url)} failed: {_one_line(_cause(chain), url)}")


def _cause(chain: list[BaseException]) -> BaseException:
    """The link of an error's chain that says what went wrong: the database driver's own error
    where there is one (an ``orig``), else the deepest link with something to say. (After a
    lost connection the deepest is SQLAlchemy's pool error, whose message is "()".)"""
    for link in chain:
        if isinstance(link, sqlalchemy.exc.DBAPIError) and link.orig is not None:
            return link.orig
    for link in reversed(chain):
        if str(link).strip() not in ("", "()"):
            return link
    return chain[0]
