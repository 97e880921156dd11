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

# A password in a URL's user part (scheme://user:password@host) or its query (?password=...).
_USERINFO_PASSWORD = re.compile(r"(//[^:/@\s]*:)[^@\s]*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)(?!\*\*\*)[^&\s'\"]*", re.IGNORECASE)


def redact_text(text: str) -> str:
    """``text`` with the password of any URL in it replaced by *** (for messages that echo
    input)."""
    return _QUERY_PASSWORD.sub(r"\1***", _USERINFO_PASSWORD.sub(r"\1***@", text))


def redact(url: str) -> str:
    """``url`` with its password replaced by ***."""
    from sqlalchemy.engine import make_url

    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: mask anything between ':' and '@'
        shown = url
    return redact_text(shown)


def passwords(url: str) -> list[str]:
    """The passwords written in ``url`` (user part and query), to mask in driver messages."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return []
    query = parsed.query.get("password")
    query = [query] if isinstance(query, str) else list(query or ())
    return [str(p) for p in [parsed.password, *query] if p]


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
