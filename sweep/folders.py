"""The results folder: where each study's files live, and what the report and its pages share.

Layout under the results root (``results/`` in the current folder, or ``$MOMENTUM_SWEEP_RESULTS``)::

    index.html                 every study in the storage: a table and its main plots
    <study>/index.html         the study's plots, best trial and top-10 table
    <study>/curves.png         validation loss per epoch of every trial
    <study>/landscape.png      objective over learning rate x momentum
    <study>/landscape-effective.png   the same over the rule's effective learning rate
    <study>/momentum-vs-none.png   best momentum trial beside the best momentum-0 trial
    <study>/history.png        Optuna's optimisation history (not for grid studies)
    <study>/importances.png    Optuna's parameter importances (two searched parameters)
    <study>/best.json          the answer: the confirmation race's pick with its figures from
                               fresh networks (or, unconfirmed, the search's best, so marked)
    <study>/tuned.toml         a study file that trains once at the answer
    <study>/.stamp.json        what the study's results were written from (see ``read_stamp``)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import SweepError
from .records import TrialRecord

RESULTS_ENV = "MOMENTUM_SWEEP_RESULTS"
# (file, caption) of the plots a study page can show, in page order.
PLOTS = (
    ("curves.png", "Validation loss per epoch of every trial; the best five highlighted"),
    ("landscape.png", "The objective over learning rate and momentum"),
    ("landscape-effective.png",
     "The same trials over the rule's effective learning rate and momentum: where momentum only "
     "rescales the learning rate, the valley stands upright"),
    ("momentum-vs-none.png", "The best momentum trial beside the best trial without momentum"),
    ("history.png", "Optuna: optimisation history"),
    ("importances.png", "Optuna: hyper-parameter importances"),
)
GALLERY_PLOTS = ("curves.png", "landscape.png", "momentum-vs-none.png")
# The "What momentum does" page beside the gallery, and the folder of its plots.
MOMENTUM_PAGE = "momentum.html"
MOMENTUM_FOLDER = "momentum"
NO_TRIALS = (
    "No completed trials yet: run the study (sweep run STUDY.toml), then write the report again."
)



class FolderNameError(SweepError, ValueError):
    """A study name that cannot be a folder under the results root."""


def results_root() -> Path:
    """``$MOMENTUM_SWEEP_RESULTS`` when set; else the ``results`` folder of the current folder
    or of the nearest folder above it that has one (as git finds its repository), so commands
    work from anywhere inside a project (its studies/ folder, results/ itself); else
    ``results`` in the current folder."""
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV])
    here = Path.cwd()
    for folder in (here, *here.parents):
        if folder.name == "results" and (folder / "sweep.db").exists():
            return folder
        if (folder / "results").is_dir():
            return folder / "results" if folder != here else Path("results")
    return Path("results")


# The longest folder name most file systems take (NAME_MAX), in bytes of UTF-8.
MAX_FOLDER_BYTES = 255
# Names shown in messages are cut to this many characters: a name another tool stored may be
# thousands long.
SHOWN_NAME_CHARACTERS = 60


def _reserved(name: str) -> bool:
    """Whether ``name`` is that of something the results root keeps beside the study folders,
    ignoring case: the list the study files' own names are checked against."""
    from .spec import _DATABASE_SUFFIXES, _RESULTS_ROOT_FILES

    folded = name.lower()
    return folded in _RESULTS_ROOT_FILES or folded.endswith(_DATABASE_SUFFIXES)


def shown_name(name: str) -> str:
    """``name`` as messages show it: whole when short, else its start and its length."""
    if len(name) <= SHOWN_NAME_CHARACTERS:
        return name
    return f"{name[:SHOWN_NAME_CHARACTERS]}... ({len(name)} characters)"


def study_folder(name: str) -> Path:
    """``<results root>/<name>``; FolderNameError (a ValueError) for a name that cannot be a
    folder there, which then has none (``sweep report --all`` skips it with a line saying why).

    Refused: empty names, a leading '.', '..', path separators, NUL and other control
    characters, anything that does not resolve to a direct child of the root, names longer
    than a folder name can be, and the names of what the results root holds beside the study
    folders (its index, README, the momentum page and its folder, a database and its files;
    compared ignoring case, as on macOS). A study momentum-sweep made never has such a name
    (``sweep.spec`` refuses it); one stored by another tool may.
    """
    root = results_root()
    if (
        not isinstance(name, str)
        or not name
        or name.startswith(".")
        or ".." in name
        or "/" in name
        or "\\" in name
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name)
    ):
        raise FolderNameError(f"study name {shown_name(name)!r} cannot be a folder under {root}/")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_FOLDER_BYTES:
        raise FolderNameError(
            f"study name {shown_name(name)!r} is too long to be a folder name under {root}/ "
            f"(at most {MAX_FOLDER_BYTES} bytes)"
        )
    if _reserved(name):
        raise FolderNameError(
            f"study name {name!r} is the name of a file or folder the results root {root}/ "
            "keeps beside the study folders, so it has no folder of its own"
        )
    folder = root / name
    if folder.resolve().parent != root.resolve():
        raise FolderNameError(f"study name {shown_name(name)!r} cannot be a folder under {root}/")
    return folder


@dataclass
class Study:
    """A stored study as the report reads it: its name, its spec, its trials and its current
    confirmation (None when it has none, or one raced from other trials)."""

    name: str
    spec: object | None  # StudySpec; None for a study not made by momentum-sweep
    records: list[TrialRecord]
    confirmation: dict | None = None

    @property
    def chosen(self) -> TrialRecord | None:
        """The trial whose setting the study recommends (``sweep.analysis.chosen_trial``)."""
        from .analysis import chosen_trial

        return chosen_trial(self.records, self.confirmation)

    @property
    def objective(self):
        from .spec import ObjectiveSpec

        return self.spec.objective if self.spec else ObjectiveSpec()


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


STAMP = ".stamp.json"


def read_stamp(folder: Path) -> dict:
    """What the results in ``folder`` were written from: ``{"report": key}`` (and the results
    root's ``{"momentum": key}``), each a digest of the trials, spec and tool version that step
    used ({} if none).
    A step whose key is unchanged has nothing new to write."""
    return read_json(folder / STAMP)


def write_stamp(folder: Path, step: str, key: str | None) -> None:
    """Record (or with None forget) the key ``step`` ("report" or "momentum") wrote from."""
    stamp = read_stamp(folder)
    if key is None:
        stamp.pop(step, None)
    else:
        stamp[step] = key
    from .files import write_text

    write_text(folder / STAMP, json.dumps(stamp, indent=1, sort_keys=True) + "\n")


def tuned_pick(best: dict) -> dict | None:
    """The parameters a best.json recommends: {"trial", "learning_rate", "momentum",
    "confirmed"}, or None without completed trials."""
    if best.get("trial") is None:
        return None
    return {**{k: best[k] for k in ("trial", "learning_rate", "momentum")},
            "confirmed": bool(best.get("confirmed"))}
