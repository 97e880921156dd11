"""Files written whole: every page, image, JSON, TOML and CSV the tool writes.

Each is written to a temporary file in the folder it belongs in, then renamed over its name in
one step, so a full disk, a read-only file or a kill part-way leaves the old file, or none,
never a truncated or empty one. Any OS error becomes a :class:`FileWriteError`: one line naming
the file and what the system said, which the command line prints as it prints every user error.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import SweepError


def _current_umask() -> int:
    umask = os.umask(0)  # the only way to read it is to set it
    os.umask(umask)
    return umask


# The permissions a plain write gives a new file; read once, as setting the umask to read it
# is not safe while other threads create files.
_NEW_FILE_MODE = 0o666 & ~_current_umask()


class FileWriteError(SweepError):
    """A file or folder that could not be written; the message names it."""


def _error(path: Path, action: str, error: OSError) -> FileWriteError:
    reason = error.strerror or str(error) or type(error).__name__
    return FileWriteError(f"{path}: cannot {action} ({reason})")


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write into; renamed to ``path`` when the block ends
    without an error, removed when it raises. FileWriteError names ``path`` for any OS error.
    """
    path = Path(path)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name[:100]}.", suffix=".part",
                                             dir=path.parent)
        os.close(handle)
    except OSError as error:
        raise _error(path, "write", error) from None
    temporary = Path(temporary)
    try:
        yield temporary
        # mkstemp makes the file readable by its owner alone; give it what a plain write would
        # (the umask's permissions), so the results can be served or shared as before.
        os.chmod(temporary, _NEW_FILE_MODE)
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise _error(path, "write", error) from None
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` whole."""
    with replacing(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_with(path: str | os.PathLike, write: Callable[[Path], object]) -> None:
    """Have ``write(temporary_path)`` write the file (``DataFrame.to_csv``, ``Figure.savefig``
    with an explicit format), then put it in place whole."""
    with replacing(path) as temporary:
        write(temporary)


def make_folder(path: str | os.PathLike) -> None:
    """Create ``path`` and its parents if missing; FileWriteError naming it if that fails."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _error(path, "create the folder", error) from None


def remove(path: str | os.PathLike) -> None:
    """Remove the file ``path`` if it is there; FileWriteError naming it if that fails."""
    path = Path(path)
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        raise _error(path, "remove", error) from None
