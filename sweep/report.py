"""Writing results: each study's plots, best.json and tuned.toml, its page and the gallery.

Where each file lives is :mod:`sweep.folders`; the HTML is :mod:`sweep.pages`; re-training for
the confirmation race is :mod:`sweep.confirm`. This module reads studies through the storage seam,
draws their plots (:mod:`sweep.plots` over :mod:`sweep.analysis`'s records) and writes the files.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from . import analysis, files
from .errors import SweepError
from .folders import (
    GALLERY_PLOTS,
    MOMENTUM_PAGE,
    PLOTS,
    FolderNameError,
    Study,
    read_json,
    read_stamp,
    results_root,
    study_folder,
    tuned_pick,
    write_stamp,
)
from .pages import GalleryEntry, GalleryView, StudyView, gallery_page, study_page
from .records import TrialRecord, get_objective
from .rules import get_rule
from .store.studies import (
    current_confirmation,
    load_optuna_study,
    read_records,
    stored_spec,
    study_names,
    trials_digest,
    unreadable,
)


class Undrawable(SweepError):
    """A plot of a study that cannot be drawn; ``sweep report --all`` skips the study."""


TOP_CURVES = 5
# Optuna's importances need enough completed trials to say anything.
MIN_TRIALS_FOR_IMPORTANCE = 10


# ---------------------------------------------------------------------------------------------
# Reading studies


def load_study(storage, name: str) -> Study:
    records = read_records(storage, name)  # SweepError for an unknown study
    spec = stored_spec(storage, name, foreign_ok=True)
    return Study(name, spec, records, current_confirmation(storage, name, spec))


def _comparable(study: Study, others: dict[str, Study]) -> list[tuple[str, list[TrialRecord]]]:
    """Other studies whose trials rank with this one's: same data, network, epochs, objective and
    measurement (folds and repeats)."""
    if study.spec is None:
        return []

    def key(spec):
        return (spec.data, spec.hidden, spec.init, spec.epochs, spec.precision, spec.objective,
                spec.folds, spec.repeats)

    return [
        (other.name, other.records)
        for other in sorted(others.values(), key=lambda o: o.name)
        if other.name != study.name
        and other.spec is not None
        and key(other.spec) == key(study.spec)
    ]


# ---------------------------------------------------------------------------------------------
# Files


def _write_best(folder: Path, study: Study) -> dict:
    """Write best.json, the study's answer (``sweep.analysis.answer``), and return it."""
    entry = analysis.answer(study.name, study.spec, study.records, study.confirmation)
    files.write_text(folder / "best.json", json.dumps(entry, indent=2, allow_nan=False) + "\n")
    return entry


def _save(figure, path: Path) -> None:
    from .plots import DPI, close

    try:
        files.write_with(path, lambda temporary: figure.savefig(temporary, dpi=DPI, format="png"))
    finally:
        close(figure)


def _write_plots(storage, study: Study, others: dict[str, Study], folder: Path) -> list[str]:
    """Draw and save the study's plots; returns the files written (stale ones are removed)."""
    from . import plots

    records, spec, name = study.records, study.spec, study.name
    written = []
    if any(r.state in analysis.TRAINED_STATES for r in records):
        best = study.chosen
        target = study.objective.target_loss
        objective = get_objective(study.objective.name)
        figures = {
            "curves.png": lambda: plots.curves_figure(
                analysis.curves(records, TOP_CURVES, best.number if best else None),
                target_loss=target,
                title=f"{name}: validation loss per epoch ({len(records)} trials)",
            ),
            "landscape.png": lambda: plots.landscape_figure(
                analysis.landscape_points(records),
                objective_label=objective.label,
                best=best.number if best else None,
                grid=analysis.grid_landscape(
                    records, spec.learning_rate.grid(), spec.momentum.grid()
                )
                if spec is not None and spec.sampler == "grid"
                else None,
                title=f"{name}: {objective.label} over {_searched_label(spec)}",
            ),
            "landscape-effective.png": lambda: plots.scatter_landscape_figure(
                analysis.effective_points(analysis.landscape_points(records), spec.rule),
                objective_label=objective.label,
                best=best.number if best else None,
                x_label=f"effective learning rate: {get_rule(spec.rule).effective_formula} "
                "(log scale)",
                title=f"{name}: {objective.label} over the effective learning rate",
            ),
            "momentum-vs-none.png": lambda: plots.comparison_figure(
                analysis.compare_momentum(name, records, target, _comparable(study, others)),
                title=f"{name}: momentum against none",
            ),
        }
        if spec is None or spec.momentum.fixed is not None:
            del figures["landscape-effective.png"]  # one momentum: the map itself
        complete = len(analysis.completed(records))
        searched = len(spec.searched()) if spec is not None else 0
        # Optuna's own plots share one loaded study: each load reads every trial again.
        optuna_study = functools.cache(lambda: load_optuna_study(storage, name))
        if complete >= 2 and (spec is None or spec.sampler != "grid"):
            figures["history.png"] = lambda: plots.history_figure(
                optuna_study(), title=f"{name}: optimisation history"
            )
        if searched >= 2 and complete >= MIN_TRIALS_FOR_IMPORTANCE:
            figures["importances.png"] = lambda: plots.importance_figure(
                optuna_study(), title=f"{name}: hyper-parameter importances"
            )
        for file, draw in figures.items():
            try:
                with np.errstate(all="ignore"):  # an overflow is what is reported below
                    figure = draw()
            except (ValueError, OverflowError) as error:
                # A range the study file accepted may still be too wide to draw on a float64
                # axis (5e-324 to 1e300): one line, not a traceback.
                raise Undrawable(
                    f"{folder / file}: cannot draw it ({type(error).__name__}: "
                    f"{str(error).splitlines()[0] if str(error) else ''}); its learning-rate "
                    "or momentum range may be too wide to draw"
                ) from None
            _save(figure, folder / file)
            written.append(file)
    for file, _ in PLOTS:
        if file not in written:
            files.remove(folder / file)
    return written


def _searched_label(spec) -> str:
    """'learning rate x momentum', or only the one searched when the other is fixed."""
    names = list(spec.searched()) if spec is not None else ["learning_rate", "momentum"]
    return " x ".join(n.replace("_", " ") for n in names) or "learning rate x momentum"


def _write_tuned(folder: Path, spec, best: dict) -> bool:
    """Write tuned.toml fixed at the parameters recommended by ``best`` (what best.json holds);
    False (and no file) if none."""
    tuned = folder / "tuned.toml"
    pick = tuned_pick(best)
    if spec is None or pick is None:
        files.remove(tuned)
        return False
    files.write_text(tuned, spec.with_fixed(pick["learning_rate"], pick["momentum"],
                                            _notes(best)))
    return True


def _notes(answer: dict) -> tuple[str, ...]:
    """The answer's figures as comment lines for tuned.toml's header."""
    if not answer.get("confirmed"):
        return ("Not confirmed on fresh networks: the search's own figure, "
                f"{answer.get('value'):.4g}, flatters it. Run `sweep confirm {answer['study']}`.",)
    search = answer.get("search") or {}
    notes = [
        f"{answer['objective']}: {answer['value']:.4g} (95% interval {answer['value_low']:.4g} "
        f"to {answer['value_high']:.4g}) on {answer['networks']} fresh networks, "
        f"{answer['failures']} failed;",
        f"reached loss {answer['target_loss']:g} in {answer['epochs_to_target'] or 0:.3g} epochs "
        f"(by {answer['reached']} of {answer['networks']}).",
        f"{answer.get('equivalent', '')}.",
        f"The search's own figure was {search.get('value'):.4g} over {search.get('networks')} "
        "networks.",
    ]
    return tuple(notes)


def _write_study(storage, study: Study, others: dict[str, Study]) -> str:
    folder = study_folder(study.name)
    files.make_folder(folder)
    written = _write_plots(storage, study, others, folder)
    best = _write_best(folder, study)
    written.append("best.json")
    if _write_tuned(folder, study.spec, best):
        written.append("tuned.toml")
    view = StudyView(
        study,
        plots=tuple(written),
        files=tuple(f for f in LINKED_FILES if (folder / f).exists()),
        answer=best,
    )
    files.write_text(folder / "index.html", study_page(view))
    written.append("index.html")
    return f"{study.name}: wrote {folder}/ ({', '.join(written)})"


# The files a study page links to, when they are in its folder.
LINKED_FILES = ("best.json", "tuned.toml", "trials.csv", "curves.csv")


def _gallery_entry(study: Study, loaded) -> GalleryEntry:
    """What the gallery shows of a study, from the files its folder holds: its answer (with its
    trials' states, as best.json keeps them), its page and its plots. A study whose best.json
    does not say (none written yet) has its trials read (``loaded(name)``) for its states."""
    try:
        folder = study_folder(study.name)
    except FolderNameError:
        folder = None
    answer = (read_json(folder / "best.json") or None) if folder is not None else None
    states = (answer or {}).get("trials")
    if not isinstance(states, dict):
        states = analysis.state_counts(loaded(study.name).records)
    return GalleryEntry(
        study,
        has_page=folder is not None and (folder / "index.html").exists(),
        answer=answer,
        thumbnails=tuple(f for f in GALLERY_PLOTS if folder is not None
                         and (folder / f).exists()),
        states=states,
    )


def _key(**parts) -> str:
    """A digest of what a step's files are written from: the same parts give the same files."""
    from . import _version

    text = json.dumps({**parts, "version": _version()}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _spec_digest(spec) -> str | None:
    return None if spec is None else json.dumps(spec.to_dict(), sort_keys=True)


def _report_key(study: Study, digests: dict[str, str], others: dict[str, Study]) -> str:
    # The comparison plot draws comparable studies' trials, and the page shows the
    # confirmation's results.
    # results: a change in either is a change in this study's report.
    return _key(
        trials=digests[study.name],
        spec=_spec_digest(study.spec),
        compared={name: digests[name] for name, _ in _comparable(study, others)},
        confirmation=(study.confirmation or {}).get("key"),
    )


def write_reports(
    storage, names: list[str] | None = None, *,
    on_study: Callable[[int, int, str], None] | None = None,
) -> list[str]:
    """Write the pages of the studies ``names`` (None: every study in the storage, and the
    "What momentum does" page), then the gallery index of every study in the storage.
    Returns one line per folder written.

    A study whose trials, spec, compared studies and confirmation are those its files were
    written from (its ``.stamp.json``), by this version of momentum-sweep, is left as it is,
    and its trials are not read: deciding so costs a few queries per study, whatever its
    number of trials. ``on_study(i, count, name)`` is called before each of the ``count``
    studies (i from 0).

    SweepError for a name not in the storage or one that cannot be a folder name; with
    ``names=None`` such a study (made outside momentum-sweep) is skipped with a line saying so.
    """
    every = study_names(storage)
    # Studies of several objectives (made with Optuna) have no records: listed and skipped.
    skipped = {name: why for name in every if (why := unreadable(storage, name))}
    every = [name for name in every if name not in skipped]
    chosen = every if names is None else list(dict.fromkeys(names))
    for name in chosen:
        if name not in every:
            read_records(storage, name)  # SweepError naming the closest stored names
    # Light studies (no trials read): enough to tell what is stale and to draw the gallery.
    studies = {name: _light_study(storage, name) for name in dict.fromkeys([*every, *chosen])}
    digests = {name: trials_digest(storage, name) for name in studies}
    loaded = functools.cache(lambda name: load_study(storage, name))
    lines = [f"skipped study {name!r}: {why}" for name, why in skipped.items()]
    root = results_root()
    files.make_folder(root)
    # The "What momentum does" page re-trains networks: it is drawn in a process of its own
    # while this one draws the studies' pages, one core each.
    with ExitStack() as stack:
        momentum = (_start_momentum(stack, root, digests, studies, loaded) if names is None
                    else None)
        for i, name in enumerate(chosen):
            if on_study is not None:
                on_study(i, len(chosen), name)
            lines.append(_write_if_stale(storage, studies[name], digests, studies, loaded,
                                         names is None))
        if momentum is not None:
            lines.append(momentum())
    entries = tuple(_gallery_entry(study, loaded) for study in studies.values())
    setups = analysis.setup_answers(
        [(e.study.name, e.study.spec, e.answer, e.study.confirmation) for e in entries])
    gallery = GalleryView(
        entries,
        setups=tuple(setups),
        momentum_page=(root / MOMENTUM_PAGE).exists(),
        root=str(root),
    )
    files.write_text(root / "index.html", gallery_page(gallery))
    lines.append(f"index: wrote {root / 'index.html'} ({len(studies)} studies)")
    return lines


def write_gallery(storage) -> str:
    """Write the gallery index alone (after a study was deleted, say), from what each study's
    folder holds; its line."""
    studies = {name: _light_study(storage, name) for name in study_names(storage)
               if not unreadable(storage, name)}
    loaded = functools.cache(lambda name: load_study(storage, name))
    entries = tuple(_gallery_entry(study, loaded) for study in studies.values())
    root = results_root()
    files.make_folder(root)
    gallery = GalleryView(
        entries,
        setups=tuple(analysis.setup_answers(
            [(e.study.name, e.study.spec, e.answer, e.study.confirmation) for e in entries])),
        momentum_page=(root / MOMENTUM_PAGE).exists(),
        root=str(root),
    )
    files.write_text(root / "index.html", gallery_page(gallery))
    return f"index: wrote {root / 'index.html'} ({len(studies)} studies)"


def _light_study(storage, name: str) -> Study:
    """A study without its trials: its spec and its current confirmation."""
    spec = stored_spec(storage, name, foreign_ok=True)
    return Study(name, spec, [], current_confirmation(storage, name, spec))


def _write_if_stale(storage, study: Study, digests: dict[str, str], studies: dict, loaded,
                    every: bool):
    """Write one study's folder unless its stamp says it is up to date; its line."""
    try:
        folder = study_folder(study.name)
    except FolderNameError as error:
        if not every:
            raise
        return f"skipped {error}"
    key = _report_key(study, digests, studies)
    if read_stamp(folder).get("report") == key and (folder / "index.html").exists():
        return f"{study.name}: {folder}/ is up to date (nothing changed since it was written)"
    # Its trials, and those of the studies its comparison draws, are read now.
    others = {name: loaded(name) if name in dict(_comparable(study, studies)) else other
              for name, other in studies.items()}
    try:
        line = _write_study(storage, loaded(study.name), others)
    except Undrawable as error:
        if not every:
            raise
        return f"skipped study {study.name!r}: {error}"
    write_stamp(folder, "report", key)
    return line


def _quiet_arithmetic() -> None:
    """NumPy's overflow warnings are not for the terminal: a plot they spoil is reported."""
    np.seterr(all="ignore")


# Processes measuring the momentum page's networks: a core each.
MOMENTUM_PROCESSES = max(1, min(4, os.cpu_count() or 1))


def _start_momentum(stack: ExitStack, root: Path, digests: dict[str, str], studies: dict,
                    loaded):
    """Start the "What momentum does" page in a process of its own (closed by ``stack``),
    unless no study's trials, spec or confirmation, nor the version, changed since it was
    written (its digest is in the results root's stamp); returns a function that waits for it
    and gives its line. Only then are the trials of the studies it draws read (``loaded``)."""
    from .claims_page import drawn_from, write_momentum_page

    key = _key(studies={name: (digests[name], _spec_digest(s.spec),
                               (s.confirmation or {}).get("key"))
                        for name, s in studies.items()})
    if read_stamp(root).get("momentum") == key and (root / MOMENTUM_PAGE).exists():
        line = (f"momentum: {root / MOMENTUM_PAGE} is up to date "
                "(nothing changed since it was written)")
        return lambda: line
    pool = stack.enter_context(ProcessPoolExecutor(1, mp_context=get_context("spawn"),
                                                   initializer=_quiet_arithmetic))
    drawn = pool.submit(write_momentum_page,
                        [loaded(name) if drawn_from(s) else s for name, s in studies.items()],
                        root, MOMENTUM_PROCESSES)

    def finish() -> str:
        try:
            page = drawn.result()
        except OSError as error:  # raised in the page's own process: named here in one line
            raise files.FileWriteError(
                f"{error.filename or root / MOMENTUM_PAGE}: cannot write "
                f"({error.strerror or error or type(error).__name__})"
            ) from None
        except (ValueError, OverflowError) as error:  # as a study's plots, in _write_plots
            return (f"skipped {root / MOMENTUM_PAGE}: cannot draw it ({type(error).__name__}: "
                    f"{str(error).splitlines()[0] if str(error) else ''}); a study's "
                    "learning-rate or momentum range may be too wide to draw")
        write_stamp(root, "momentum", key)
        return f"momentum: wrote {page}"

    return finish
