"""The storage seam: the only code that touches Optuna's storage.

- :mod:`.urls`: the default URL, passwords masked, a SQLite URL's file (no SQLAlchemy import);
- :mod:`.connect`: opening and checking a storage URL (SQLite under results/, or PostgreSQL),
  passwords masked in every message;
- :mod:`.schema`: SQLite's tables made to never give a deleted study's or trial's id again;
- :mod:`.bulk`: a batch of trials written in one transaction through Optuna's own tables;
- :mod:`.studies`: creating and finding studies, their stored spec, and reading their trials
  into plain :class:`sweep.records.TrialRecord`;
- :mod:`.running`: the planning lock, leases on RUNNING trials, finishing and failing them, and
  recovering the trials of workers that died;
- :mod:`.delete`: deleting a study, refused while live workers hold leases on it;
- :mod:`.damage`: naming the rows that cannot be read, and the rows that belong to nothing.

Every private Optuna name the project relies on is used in this package and nowhere else, so a
new Optuna release that changes them breaks here, where ``tests/test_store.py`` pins them. The
package's ``__init__`` imports nothing: commands that only need a URL masked stay quick.
"""
