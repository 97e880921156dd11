"""Named kinds of a thing, each registered once: the momentum rules, the objectives and the data
sources keep one :class:`Registry` each, and every other module asks it by name."""

from __future__ import annotations


class Registry:
    """Classes (or instances) by their ``name`` attribute, in the order they were registered.

    kind: what the entries are, for messages ("momentum rule", "objective", "data source").
    make: what is stored for a registered class (the class itself by default).
    """

    def __init__(self, kind: str, make=lambda cls: cls):
        self.kind = kind
        self.make = make
        self.entries: dict = {}

    def register(self, cls):
        """Class decorator: make ``cls`` known by ``cls.name``; a name is taken only once."""
        taken = self.entries.get(cls.name)
        if not cls.name or (taken is not None and (taken is not cls and type(taken) is not cls)):
            raise ValueError(f"a {self.kind} needs a name of its own; {cls.name!r} is taken "
                             "or empty")
        self.entries[cls.name] = self.make(cls)
        return cls

    def names(self) -> tuple[str, ...]:
        return tuple(self.entries)

    def get(self, name: str):
        """The entry called ``name``; ValueError naming the valid ones for any other name."""
        try:
            return self.entries[name]
        except (KeyError, TypeError):
            raise ValueError(
                f"unknown {self.kind} {name!r}; expected one of {', '.join(self.entries)}"
            ) from None
