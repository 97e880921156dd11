"""Storage URLs without a database library: the default URL, passwords masked, a SQLite URL's
file.

Kept apart from :mod:`.connect` so that a usage error, which may echo a URL, is printed without
importing SQLAlchemy and Optuna. SQLAlchemy's URL parser is imported only where a URL must be
taken apart, and a command that does so opens a storage anyway.
"""

from __future__ import annotations

import re
from pathlib import Path

DEFAULT_STORAGE = "sqlite:///results/sweep.db"


def default_storage() -> str:
    """The storage a command uses without --storage: ``sweep.db`` in the results root
    (``sweep.folders.results_root``: the project's results/ folder from anywhere inside it)."""
    from ..folders import results_root

    root = results_root()
    return DEFAULT_STORAGE if str(root) == "results" else f"sqlite:///{root / 'sweep.db'}"

# A password in a URL's user part: scheme, ':' and any slashes (a typo may drop one), user, ':',
# then the password up to the *last* '@' before a space (a raw '@' in it must not leave its tail
# shown); or in the query (?password=...); or a URL cut at a space in its password, which has
# no '@' left (a port, all digits, is not masked).
_USERINFO_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*:/*[^:/@\s'\"]*:)\S*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)(?!\*\*\*)[^&\s'\"]*", re.IGNORECASE)
_CUT_PASSWORD = re.compile(
    r"(\b[A-Za-z][A-Za-z0-9+.-]*:/+[^:/@\s'\"]+:)(?!\d+(?:[/?'\"\s]|$))(?!\*\*\*)"
    r"[^@\s/'\"]+(?=['\"\s]|$)"
)


def redact_text(text: str) -> str:
    """``text`` with the password of any URL in it replaced by *** (for messages that echo
    input)."""
    text = _USERINFO_PASSWORD.sub(r"\1***@", text)
    return _CUT_PASSWORD.sub(r"\1***", _QUERY_PASSWORD.sub(r"\1***", text))


def redact(url: str) -> str:
    """``url`` with its password replaced by ***."""
    from sqlalchemy.engine import make_url

    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: mask anything between ':' and '@'
        shown = url
    return redact_text(shown)


def _user_info(url: str) -> str | None:
    """The user part of ``url`` (before its last '@'), parsed here: SQLAlchemy ends it at the
    first '@', so a raw '@' in a password would make the rest of it the host name."""
    match = re.match(r"[A-Za-z][A-Za-z0-9+.-]*:/*([^?#]*)@", url)
    return match.group(1) if match else None


def passwords(url: str) -> list[str]:
    """The passwords written in ``url`` (user part and query), to mask in driver messages,
    longest first: a password that holds another one is masked whole."""
    from sqlalchemy.engine import make_url

    info = _user_info(url)
    found = [info.split(":", 1)[1]] if info and ":" in info else []
    try:
        parsed = make_url(url)
    except Exception:
        return [p for p in found if p]
    query = parsed.query.get("password")
    query = [query] if isinstance(query, str) else list(query or ())
    return sorted({str(p) for p in [*found, parsed.password, *query] if p}, key=len, reverse=True)


def sqlite_path(url: str) -> Path | None:
    """The database file of a sqlite URL, or None for other back ends and in-memory SQLite."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return None
    if (
        parsed.get_backend_name() != "sqlite"
        or not parsed.database
        or parsed.database == ":memory:"
    ):
        return None
    return Path(parsed.database)
