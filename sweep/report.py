"""Writing results: each study's plots, best.json and tuned.toml, its page and the gallery.

Where each file lives is :mod:`sweep.folders`; the HTML is :mod:`sweep.pages`; re-training for
``sweep robust`` is :mod:`sweep.robust`. This module reads studies through the storage seam,
draws their plots (:mod:`sweep.plots` over :mod:`sweep.analysis`'s records) and writes the files.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from . import analysis, files
from .errors import SweepError
from .folders import (
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
from .pages import gallery_page, study_page
from .records import TrialRecord, lowest_epoch
from .store.studies import (
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
    return Study(name, stored_spec(storage, name, foreign_ok=True), records)


def _comparable(study: Study, others: dict[str, Study]) -> list[tuple[str, list[TrialRecord]]]:
    """Other studies whose trials rank with this one's: same data, network, epochs, objective and
    measurement (folds and repeats)."""
    if study.spec is None:
        return []

    def key(spec):
        return (spec.data, spec.hidden, spec.init, spec.epochs, spec.objective, spec.folds,
                spec.repeats)

    return [
        (other.name, other.records)
        for other in sorted(others.values(), key=lambda o: o.name)
        if other.name != study.name
        and other.spec is not None
        and key(other.spec) == key(study.spec)
    ]


# ---------------------------------------------------------------------------------------------
# Files


def _plain_number(value):
    """A JSON-safe number: NaN and infinities become null."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _best_entry(study: Study) -> dict:
    best = analysis.best_trial(study.records)
    spec = study.spec
    entry = {
        "study": study.name,
        "trial": None,
        "learning_rate": None,
        "momentum": None,
        "rule": spec.rule if spec else None,
        "objective": study.objective.name,
        "value": None,
        "seed": None,
        "epochs": spec.epochs if spec else None,
    }
    if best is None:
        entry["note"] = "no completed trials yet"
        return entry
    entry.update(
        {
            "trial": best.number,
            "learning_rate": _plain_number(best.learning_rate),
            "momentum": _plain_number(best.momentum),
            "value": _plain_number(best.value),
            "seed": best.seed,
            "target_loss": study.objective.target_loss,
            "epochs_to_target": analysis.epochs_to_target(
                best.val_loss, study.objective.target_loss
            ),
            "final_val_loss": _plain_number(best.val_loss[-1]) if len(best.val_loss) else None,
            "final_val_accuracy": _plain_number(best.val_accuracy[-1])
            if len(best.val_accuracy)
            else None,
            "lowest_val_loss": _plain_number(np.nanmin(best.val_loss)),
            "lowest_val_loss_epoch": lowest_epoch(best.val_loss),
            "networks": best.network_count,
            "network_values": [_plain_number(v) for v in best.network_values],
            "edge_warnings": analysis.edge_warnings(spec, best.learning_rate, best.momentum)
            if spec
            else [],
        }
    )
    return entry


def _still_current(robust, records: list[TrialRecord]) -> bool:
    """Whether an earlier `sweep robust` result still describes these trials: the same top
    candidates, and its pick still stored with the same parameters. A study run again under the
    same name, or topped up since, gets no stale recommendation."""
    if not isinstance(robust, dict) or not isinstance(robust.get("candidates"), list):
        return False
    top = analysis.top_trials(records, len(robust["candidates"]))
    if sorted(t.number for t in top) != sorted(robust["candidates"]):
        return False
    pick = next((t for t in top if t.number == robust.get("trial")), None)
    return pick is not None and (pick.learning_rate, pick.momentum) == (
        robust.get("learning_rate"), robust.get("momentum"))


def _write_best(folder: Path, entry: dict, robust: dict | None = None,
                records: list[TrialRecord] | None = None) -> dict:
    """Write best.json and return what it holds. Without ``robust``, keep the "robust" section
    of an earlier `sweep robust` while it is still current for ``records``."""
    if robust is None:
        earlier = read_json(folder / "best.json").get("robust")
        robust = earlier if records is not None and _still_current(earlier, records) else None
    if robust is not None:
        entry = {**entry, "robust": robust}
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
        best = analysis.best_trial(records)
        target = study.objective.target_loss
        figures = {
            "curves.png": lambda: plots.curves_figure(
                analysis.curves(records, TOP_CURVES),
                target_loss=target,
                title=f"{name}: validation loss per epoch ({len(records)} trials)",
            ),
            "landscape.png": lambda: plots.landscape_figure(
                analysis.landscape_points(records),
                objective=study.objective.name,
                best=best.number if best else None,
                grid=analysis.grid_landscape(
                    records, spec.learning_rate.grid(), spec.momentum.grid()
                )
                if spec is not None and spec.sampler == "grid"
                else None,
                title=f"{name}: "
                f"{plots.OBJECTIVE_LABELS.get(study.objective.name, study.objective.name)}"
                f" over {_searched_label(spec)}",
            ),
            "momentum-vs-none.png": lambda: plots.comparison_figure(
                analysis.compare_momentum(name, records, target, _comparable(study, others)),
                title=f"{name}: momentum against none",
            ),
        }
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
    files.write_text(tuned, spec.with_fixed(pick["learning_rate"], pick["momentum"]))
    return True


def _write_study(storage, study: Study, others: dict[str, Study]) -> str:
    folder = study_folder(study.name)
    files.make_folder(folder)
    written = _write_plots(storage, study, others, folder)
    entry = _best_entry(study)
    best = _write_best(folder, entry, records=study.records)
    written.append("best.json")
    if _write_tuned(folder, study.spec, best):
        written.append("tuned.toml")
    files.write_text(folder / "index.html", study_page(study, folder, written))
    written.append("index.html")
    return f"{study.name}: wrote {folder}/ ({', '.join(written)})"


def _key(**parts) -> str:
    """A digest of what a step's files are written from: the same parts give the same files."""
    from . import _version

    text = json.dumps({**parts, "version": _version()}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _spec_digest(spec) -> str | None:
    return None if spec is None else json.dumps(spec.to_dict(), sort_keys=True)


def _report_key(study: Study, digests: dict[str, str], others: dict[str, Study]) -> str:
    # The comparison plot draws comparable studies' trials, and the page shows `sweep robust`'s
    # results: a change in either is a change in this study's report.
    return _key(
        trials=digests[study.name],
        spec=_spec_digest(study.spec),
        compared={name: digests[name] for name, _ in _comparable(study, others)},
        robust=read_stamp(study_folder(study.name)).get("robust"),
    )


def write_reports(
    storage, names: list[str] | None = None, *,
    on_study: Callable[[int, int, str], None] | None = None,
) -> list[str]:
    """Write the pages of the studies ``names`` (None: every study in the storage, and the
    "What momentum does" page), then the gallery index of every study in the storage.
    Returns one line per folder written.

    A study whose trials, spec, compared studies and robust results are those its files were
    written from (its ``.stamp.json``), by this version of momentum-sweep, is left as it is.
    ``on_study(i, count, name)`` is called before each of the ``count`` studies (i from 0).

    SweepError for a name not in the storage or one that cannot be a folder name; with
    ``names=None`` such a study (made outside momentum-sweep) is skipped with a line saying so.
    """
    every = study_names(storage)
    # Studies of several objectives (made with Optuna) have no records: listed and skipped.
    skipped = {name: why for name in every if (why := unreadable(storage, name))}
    every = [name for name in every if name not in skipped]
    chosen = every if names is None else list(dict.fromkeys(names))
    studies = {name: load_study(storage, name) for name in dict.fromkeys([*every, *chosen])}
    digests = {name: trials_digest(storage, name) for name in studies}
    lines = [f"skipped study {name!r}: {why}" for name, why in skipped.items()]
    root = results_root()
    files.make_folder(root)
    # The "What momentum does" page re-trains networks: it is drawn in a process of its own
    # while this one draws the studies' pages, one core each.
    with ExitStack() as stack:
        momentum = _start_momentum(stack, root, digests, studies) if names is None else None
        for i, name in enumerate(chosen):
            if on_study is not None:
                on_study(i, len(chosen), name)
            lines.append(_write_if_stale(storage, studies[name], digests, studies, names is None))
        if momentum is not None:
            lines.append(momentum())
    files.write_text(root / "index.html", gallery_page(list(studies.values())))
    lines.append(f"index: wrote {root / 'index.html'} ({len(studies)} studies)")
    return lines


def _write_if_stale(storage, study: Study, digests: dict[str, str], studies: dict, every: bool):
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
    try:
        line = _write_study(storage, study, studies)
    except Undrawable as error:
        if not every:
            raise
        return f"skipped study {study.name!r}: {error}"
    write_stamp(folder, "report", key)
    return line


def _quiet_arithmetic() -> None:
    """NumPy's overflow warnings are not for the terminal: a plot they spoil is reported."""
    np.seterr(all="ignore")


def _start_momentum(stack: ExitStack, root: Path, digests: dict[str, str], studies: dict):
    """Start the "What momentum does" page in a process of its own (closed by ``stack``),
    unless no study's trials or spec, nor the version, changed since it was written (its digest
    is in the results root's stamp); returns a function that waits for it and gives its line."""
    from .claims_page import PAGE, write_momentum_page

    key = _key(studies={name: (digests[name], _spec_digest(s.spec)) for name, s in studies.items()})
    if read_stamp(root).get("momentum") == key and (root / PAGE).exists():
        line = f"momentum: {root / PAGE} is up to date (nothing changed since it was written)"
        return lambda: line
    pool = stack.enter_context(ProcessPoolExecutor(1, mp_context=get_context("spawn"),
                                                   initializer=_quiet_arithmetic))
    drawn = pool.submit(write_momentum_page, list(studies.values()), root)

    def finish() -> str:
        try:
            page = drawn.result()
        except OSError as error:  # raised in the page's own process: named here in one line
            raise files.FileWriteError(
                f"{error.filename or root / PAGE}: cannot write "
                f"({error.strerror or error or type(error).__name__})"
            ) from None
        except (ValueError, OverflowError) as error:  # as a study's plots, in _write_plots
            return (f"skipped {root / PAGE}: cannot draw it ({type(error).__name__}: "
                    f"{str(error).splitlines()[0] if str(error) else ''}); a study's "
                    "learning-rate or momentum range may be too wide to draw")
        write_stamp(root, "momentum", key)
        return f"momentum: wrote {page}"

    return finish


# ---------------------------------------------------------------------------------------------
# Robustness


def write_robust(storage, name: str, spec, top: int = 5, seeds: int = 10) -> str:
    """Confirm the search's ``top`` settings on ``seeds`` fresh seeds per fold, all in one
    vectorised ``train_many`` call: how each holds up, and how much the search's figure
    overstated it.

    Writes ``robust.csv`` and the "robust" section of ``best.json``. The recommendation stays
    the search's best (``sweep best`` and ``tuned.toml`` agree); this says how far to trust it.
    Returns the summary as a printable table. top >= 1, seeds >= 2.
    """
    from .robust import retrain

    if top < 1 or seeds < 2:
        raise SweepError("robust needs top >= 1 and seeds >= 2")
    folder = study_folder(name)
    key = _key(trials=trials_digest(storage, name), spec=_spec_digest(spec), top=top, seeds=seeds)
    if read_stamp(folder).get("robust") == key and (folder / "robust.csv").exists():
        return (
            f"{name}: {folder / 'robust.csv'} is up to date "
            "(same trials, spec, --top and --seeds as when it was written)"
        )
    study = Study(name, spec, read_records(storage, name))  # the spec given, not the stored one
    chosen = analysis.top_trials(study.records, top)
    if not chosen:
        raise SweepError(f"study {name!r} has no completed trial yet: nothing to re-train")
    confirmed = retrain(spec, chosen, seeds)
    files.make_folder(folder)
    frame = _robust_frame(confirmed)
    files.write_with(folder / "robust.csv", lambda temporary: frame.to_csv(temporary, index=False))
    best = confirmed[0]
    robust = {
        "trial": best.number,
        "learning_rate": best.learning_rate,
        "momentum": best.momentum,
        "networks": best.seeds,
        "search_value": _plain_number(best.search_value),
        "fresh_mean": _plain_number(best.objective.mean),
        "fresh_low95": _plain_number(best.objective.low),
        "fresh_high95": _plain_number(best.objective.high),
        "optimism": _plain_number(best.optimism),
        "diverged": best.diverged,
        "interval": analysis.INTERVAL_METHOD,
        "candidates": [t.number for t in chosen],
        "file": "robust.csv",
    }
    _write_tuned(folder, spec, _write_best(folder, _best_entry(study), robust))
    write_stamp(folder, "robust", key)
    return _robust_table(name, spec, confirmed, folder)


def _robust_frame(confirmed: list[analysis.RobustCandidate]):
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "rank": i + 1,
                "trial": c.number,
                "learning_rate": c.learning_rate,
                "momentum": c.momentum,
                "networks": c.seeds,
                "search_value": c.search_value,
                "fresh_mean": c.objective.mean,
                "fresh_low95": c.objective.low,
                "fresh_high95": c.objective.high,
                "optimism": c.optimism,
                "epochs_to_target_mean": c.epochs_to_target.mean,
                "epochs_to_target_low95": c.epochs_to_target.low,
                "epochs_to_target_high95": c.epochs_to_target.high,
                "reached_target": c.reached,
                "diverged": c.diverged,
            }
            for i, c in enumerate(confirmed)
        ]
    )


def _robust_table(name: str, spec, confirmed: list[analysis.RobustCandidate], folder: Path) -> str:
    networks = confirmed[0].seeds
    lines = [
        (
            f"{name}: the search's top {len(confirmed)} settings re-trained on {networks} fresh "
            f"networks each (objective {spec.objective.name}; "
            f"{analysis.INTERVAL_METHOD}; epochs to target loss "
            f"{spec.objective.target_loss:g} over the networks that reached it)"
        ),
        (
            f"{'rank':>4} {'trial':>6} {'learning_rate':>13} {'momentum':>8}  {'search':>8}  "
            f"{'fresh mean [95% interval]':<32} {'optimism':>8}  {'epochs to target':<22} "
            f"{'reached':>7} {'diverged':>8}"
        ),
    ]
    for i, c in enumerate(confirmed):
        o, e = c.objective, c.epochs_to_target
        lines.append(
            f"{i + 1:>4} {c.number:>6} {c.learning_rate:>13.4g} {c.momentum:>8.3f}  "
            f"{c.search_value:>8.4g}  "
            f"{f'{o.mean:.4g} [{o.low:.4g}, {o.high:.4g}]':<32} {c.optimism:>8.1%}  "
            f"{f'{e.mean:.1f} [{e.low:.1f}, {e.high:.1f}]':<22}"
            f" {c.reached:>4}/{networks:<3} {c.diverged:>4}/{networks:<3}"
        )
    best = confirmed[0]
    lines.append(
        f"best: trial {best.number} (learning rate {best.learning_rate:.4g}, momentum "
        f"{best.momentum:.3f}): the search said {best.search_value:.4g}, fresh seeds give "
        f"{best.objective.mean:.4g}; wrote {folder / 'robust.csv'} "
        f'and the "robust" entry of {folder / "best.json"}'
    )
    return "\n".join(lines)
