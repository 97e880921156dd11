"""Writing results: each study's plots, best.json, tuned.toml and page, and the gallery index.

Layout under the results root (``results/`` in the current folder, or ``$MOMENTUM_SWEEP_RESULTS``)::

    index.html                 every study in the storage: a table and its main plots
    <study>/index.html         the study's plots, best trial and top-10 table
    <study>/curves.png         validation loss per epoch of every trial
    <study>/landscape.png      objective over learning rate x momentum
    <study>/momentum-vs-none.png   best momentum trial beside the best momentum-0 trial
    <study>/history.png        Optuna's optimisation history (not for grid studies)
    <study>/importances.png    Optuna's parameter importances (two searched parameters)
    <study>/best.json          the best trial, plus the most robust one after `sweep robust`
    <study>/tuned.toml         a study file that trains once at the recommended parameters:
                               the most robust candidate after `sweep robust`, else the best
    <study>/robust.csv         `sweep robust`: top trials re-trained with fresh seeds

The pages are static HTML with relative links and inline CSS: they read from file:// with no
server and no network. Every study name and description is HTML-escaped.
"""

from __future__ import annotations

import datetime
import functools
import html
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from . import analysis
from .search import SweepError, TrialRecord, dataset_for, read_records, stored_spec

RESULTS_ENV = "MOMENTUM_SWEEP_RESULTS"
# (file, caption) of the plots a study page can show, in page order.
PLOTS = (
    ("curves.png", "Validation loss per epoch of every trial; the best five highlighted"),
    ("landscape.png", "The objective over learning rate and momentum"),
    ("momentum-vs-none.png", "The best momentum trial beside the best trial without momentum"),
    ("history.png", "Optuna: optimisation history"),
    ("importances.png", "Optuna: hyper-parameter importances"),
)
GALLERY_PLOTS = ("curves.png", "landscape.png", "momentum-vs-none.png")
TOP_CURVES = 5
TOP_TABLE = 10
# Optuna's importances need enough completed trials to say anything.
MIN_TRIALS_FOR_IMPORTANCE = 10
# Mixed into the robust re-training's seeds so they differ from every trial's own seed.
ROBUST_SEED_SALT = 0x0B05
NO_TRIALS = (
    "No completed trials yet: run the study (sweep run STUDY.toml), then write the report again."
)


class FolderNameError(SweepError, ValueError):
    """A study name that cannot be a folder under the results root."""


def results_root() -> Path:
    """``$MOMENTUM_SWEEP_RESULTS`` when set, else ``results`` in the current folder."""
    return Path(os.environ.get(RESULTS_ENV) or "results")


def study_folder(name: str) -> Path:
    """``<results root>/<name>``; FolderNameError (a ValueError) for any name that could escape it.

    Refused: empty names, a leading '.', '..', path separators, NUL and other control
    characters, and anything that does not resolve to a direct child of the root.
    """
    if (
        not isinstance(name, str)
        or not name
        or name.startswith(".")
        or ".." in name
        or "/" in name
        or "\\" in name
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name)
    ):
        raise FolderNameError(f"study name {name!r} cannot be a folder under {results_root()}/")
    root = results_root()
    folder = root / name
    if folder.resolve().parent != root.resolve():
        raise FolderNameError(f"study name {name!r} cannot be a folder under {root}/")
    return folder


# ---------------------------------------------------------------------------------------------
# Reading studies


@dataclass
class _Study:
    name: str
    spec: object | None  # StudySpec; None for a study not made by momentum-sweep
    records: list[TrialRecord]

    @property
    def objective(self):
        from .spec import ObjectiveSpec

        return self.spec.objective if self.spec else ObjectiveSpec()


def _load(storage, name: str) -> _Study:
    records = read_records(storage, name)  # SweepError for an unknown study
    return _Study(name, stored_spec(storage, name), records)


def _comparable(study: _Study, others: dict[str, _Study]) -> list[tuple[str, list[TrialRecord]]]:
    """Other studies whose trials rank with this one's: same data, network, epochs and objective."""
    if study.spec is None:
        return []

    def key(spec):
        return (spec.data, spec.hidden, spec.init, spec.epochs, spec.objective)

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


def _best_entry(study: _Study) -> dict:
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
        }
    )
    return entry


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


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
        earlier = _read_json(folder / "best.json").get("robust")
        robust = earlier if records is not None and _still_current(earlier, records) else None
    if robust is not None:
        entry = {**entry, "robust": robust}
    (folder / "best.json").write_text(
        json.dumps(entry, indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    return entry


def _save(figure, path: Path) -> None:
    from .plots import DPI, close

    try:
        figure.savefig(path, dpi=DPI)
    finally:
        close(figure)


def _write_plots(storage, study: _Study, others: dict[str, _Study], folder: Path) -> list[str]:
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
                title=f"{name}: {plots.OBJECTIVE_LABELS.get(study.objective.name, study.objective.name)}"
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
        optuna_study = functools.cache(lambda: _optuna_study(storage, name))
        if complete >= 2 and (spec is None or spec.sampler != "grid"):
            figures["history.png"] = lambda: plots.history_figure(
                optuna_study(), title=f"{name}: optimisation history"
            )
        if searched >= 2 and complete >= MIN_TRIALS_FOR_IMPORTANCE:
            figures["importances.png"] = lambda: plots.importance_figure(
                optuna_study(), title=f"{name}: hyper-parameter importances"
            )
        for file, draw in figures.items():
            _save(draw(), folder / file)
            written.append(file)
    for file, _ in PLOTS:
        if file not in written:
            (folder / file).unlink(missing_ok=True)
    return written


def _searched_label(spec) -> str:
    """'learning rate x momentum', or only the one searched when the other is fixed."""
    names = list(spec.searched()) if spec is not None else ["learning_rate", "momentum"]
    return " x ".join(n.replace("_", " ") for n in names) or "learning rate x momentum"


def _optuna_study(storage, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=storage)


def tuned_pick(best: dict) -> dict | None:
    """The parameters to recommend from a best.json: the most robust candidate once `sweep
    robust` has named one (the single best trial is partly a lucky seed), else the best trial.
    Returns {"trial", "learning_rate", "momentum", "source"} or None without completed trials.
    """
    robust = best.get("robust")
    if isinstance(robust, dict) and robust.get("trial") is not None:
        return {**{k: robust[k] for k in ("trial", "learning_rate", "momentum")}, "source": "most robust"}
    if best.get("trial") is None:
        return None
    return {**{k: best[k] for k in ("trial", "learning_rate", "momentum")}, "source": "best"}


def _write_tuned(folder: Path, spec, best: dict) -> bool:
    """Write tuned.toml fixed at the parameters recommended by ``best`` (what best.json holds);
    False (and no file) if none."""
    tuned = folder / "tuned.toml"
    pick = tuned_pick(best)
    if spec is None or pick is None:
        tuned.unlink(missing_ok=True)
        return False
    tuned.write_text(spec.with_fixed(pick["learning_rate"], pick["momentum"]), encoding="utf-8")
    return True


def _write_study(storage, study: _Study, others: dict[str, _Study]) -> str:
    folder = study_folder(study.name)
    folder.mkdir(parents=True, exist_ok=True)
    written = _write_plots(storage, study, others, folder)
    entry = _best_entry(study)
    best = _write_best(folder, entry, records=study.records)
    written.append("best.json")
    if _write_tuned(folder, study.spec, best):
        written.append("tuned.toml")
    (folder / "index.html").write_text(_study_page(study, folder, written), encoding="utf-8")
    written.append("index.html")
    return f"{study.name}: wrote {folder}/ ({', '.join(written)})"


def write_reports(storage, names: list[str] | None = None) -> list[str]:
    """Write the pages of the studies ``names`` (None: every study in the storage), then the
    gallery index of every study in the storage. Returns one line per folder written.

    SweepError for a name not in the storage or one that cannot be a folder name; with
    ``names=None`` such a study (made outside momentum-sweep) is skipped with a line saying so.
    """
    import optuna

    every = sorted(optuna.get_all_study_names(storage))
    chosen = every if names is None else list(dict.fromkeys(names))
    studies = {name: _load(storage, name) for name in dict.fromkeys([*every, *chosen])}
    lines = []
    for name in chosen:
        try:
            study_folder(name)
        except FolderNameError as error:
            if names is not None:
                raise
            lines.append(f"skipped {error}")
            continue
        lines.append(_write_study(storage, studies[name], studies))
    root = results_root()
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.html").write_text(_gallery_page(list(studies.values())), encoding="utf-8")
    lines.append(f"index: wrote {root / 'index.html'} ({len(studies)} studies)")
    return lines


# ---------------------------------------------------------------------------------------------
# Robustness


def robust_seeds(study_seed: int, trial_number: int, seeds: int) -> list[int]:
    """``seeds`` fresh, reproducible training seeds for re-training one trial."""
    state = np.random.SeedSequence([study_seed, ROBUST_SEED_SALT, trial_number]).generate_state(
        seeds
    )
    return [int(s & 0x7FFFFFFF) for s in state]


def write_robust(storage, name: str, spec, top: int = 5, seeds: int = 10) -> str:
    """Re-train the ``top`` best COMPLETE trials with ``seeds`` fresh seeds each, all in one
    vectorised ``train_many`` call, and rank them by how reliably they do well.

    Writes ``robust.csv`` and the "robust" section of ``best.json`` (the candidate with the
    fewest diverged seeds, then the lowest upper 95 % bound of the objective). Returns the
    ranking as a printable table. top >= 1, seeds >= 2.
    """
    from .train import train_many

    if top < 1 or seeds < 2:
        raise SweepError("robust needs top >= 1 and seeds >= 2")
    study = _Study(name, spec, read_records(storage, name))  # the spec given, not the stored one
    chosen = analysis.top_trials(study.records, top)
    if not chosen:
        raise SweepError(f"study {name!r} has no completed trial yet: nothing to re-train")
    folder = study_folder(name)
    batch = train_many(
        dataset_for(spec),
        np.repeat([t.learning_rate for t in chosen], seeds),
        np.repeat([t.momentum for t in chosen], seeds),
        [s for t in chosen for s in robust_seeds(spec.seed, t.number, seeds)],
        hidden=spec.hidden,
        epochs=spec.epochs,
        rule=spec.rule,
        init=spec.init,
    )
    k = len(chosen)
    ranked = analysis.robust_candidates(
        chosen,
        batch.val_loss.reshape(k, seeds, -1),
        batch.diverged_epoch.reshape(k, seeds),
        spec.objective,
    )
    folder.mkdir(parents=True, exist_ok=True)
    frame = _robust_frame(ranked)
    frame.to_csv(folder / "robust.csv", index=False)
    winner = ranked[0]
    robust = {
        "trial": winner.number,
        "learning_rate": winner.learning_rate,
        "momentum": winner.momentum,
        "objective_mean": _plain_number(winner.objective.mean),
        "objective_low95": _plain_number(winner.objective.low),
        "objective_high95": _plain_number(winner.objective.high),
        "epochs_to_target_mean": _plain_number(winner.epochs_to_target.mean),
        "diverged": winner.diverged,
        "seeds": seeds,
        "candidates": [t.number for t in chosen],
        "ranked_by": "fewest diverged seeds, then lowest upper 95% bound of the objective",
        "file": "robust.csv",
    }
    _write_tuned(folder, spec, _write_best(folder, _best_entry(study), robust))
    return _robust_table(name, spec, ranked, folder)


def _robust_frame(ranked: list[analysis.RobustCandidate]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "rank": i + 1,
                "trial": c.number,
                "learning_rate": c.learning_rate,
                "momentum": c.momentum,
                "seeds": c.seeds,
                "objective_mean": c.objective.mean,
                "objective_low95": c.objective.low,
                "objective_high95": c.objective.high,
                "epochs_to_target_mean": c.epochs_to_target.mean,
                "epochs_to_target_low95": c.epochs_to_target.low,
                "epochs_to_target_high95": c.epochs_to_target.high,
                "reached_target": c.reached,
                "diverged": c.diverged,
            }
            for i, c in enumerate(ranked)
        ]
    )


def _robust_table(name: str, spec, ranked: list[analysis.RobustCandidate], folder: Path) -> str:
    seeds = ranked[0].seeds
    lines = [
        (
            f"{name}: top {len(ranked)} trials re-trained with {seeds} fresh seeds each "
            f"(objective {spec.objective.name}; epochs to target loss {spec.objective.target_loss:g}, "
            f"not reached = {spec.epochs + 1})"
        ),
        (
            f"{'rank':>4} {'trial':>6} {'learning_rate':>13} {'momentum':>8}  "
            f"{'objective mean [95% interval]':<34} {'epochs to target [95%]':<24} {'reached':>7} {'diverged':>8}"
        ),
    ]
    for i, c in enumerate(ranked):
        o, e = c.objective, c.epochs_to_target
        lines.append(
            f"{i + 1:>4} {c.number:>6} {c.learning_rate:>13.4g} {c.momentum:>8.3f}  "
            f"{f'{o.mean:.4g} [{o.low:.4g}, {o.high:.4g}]':<34} {f'{e.mean:.1f} [{e.low:.1f}, {e.high:.1f}]':<24}"
            f" {c.reached:>4}/{seeds:<2} {c.diverged:>5}/{seeds:<2}"
        )
    best = ranked[0]
    lines.append(
        f"most robust: trial {best.number} (learning rate {best.learning_rate:.4g}, momentum "
        f'{best.momentum:.3f}); wrote {folder / "robust.csv"} and the "robust" entry of {folder / "best.json"}'
    )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# HTML


STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f;
       margin: 0 auto; padding: 1.5em 2em 4em; max-width: 1250px; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
p.lead { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 14px; }
th, td { border: 1px solid #d5d5d5; padding: 0.3em 0.65em; text-align: left; vertical-align: top; }
th { background: #f3f3f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { background: #fff6d6; border: 1px solid #e5c64d; padding: 0.6em 0.9em; border-radius: 4px; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #e3e3e3; }
figcaption { color: #555; font-size: 14px; }
.thumbs { display: grid; grid-template-columns: repeat(3, 1fr); gap: 0.8em; }
.thumbs img { width: 100%; height: auto; border: 1px solid #e3e3e3; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.2em 1em; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; }
a { color: #0b57d0; }
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _num(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "&ndash;"
    return _e(f"{value:.{digits}g}")


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _data_label(spec) -> str:
    if spec is None:
        return "unknown"
    data = spec.data
    if data.source == "synthetic":
        return (
            f"synthetic ({data.items} items, {data.inputs} inputs, {data.classes} classes, "
            f"noise {data.noise:g})"
        )
    if data.source == "csv":
        return f"CSV {Path(data.path or '').name} (target {data.target})"
    return "Iris"


def _param_label(param) -> str:
    if param.fixed is not None:
        return f"fixed at {param.fixed:g}"
    text = f"{param.low:g} to {param.high:g}" + (", log scale" if param.log else "")
    if param.values is not None or param.points is not None:
        text += f", grid of {len(param.grid())}"
    return text


def _states_label(records) -> str:
    counts = analysis.state_counts(records)
    shown = [
        f"{counts[s]} {s}"
        for s in ("complete", "pruned", "diverged", "failed", "running")
        if counts[s]
    ]
    return f"{len(records)} trials" + (f": {', '.join(shown)}" if shown else "")


def _facts(study: _Study) -> str:
    spec = study.spec
    rows = [("Trials", _states_label(study.records))]
    if spec is not None:
        pruner = (
            spec.pruner.name
            if spec.pruner.name == "none"
            else (
                f"{spec.pruner.name} (warm-up {spec.pruner.warmup_steps} epochs, every {spec.pruner.interval})"
            )
        )
        objective = spec.objective.name + (f" (target loss {spec.objective.target_loss:g})")
        rows = [
            ("Data set", _data_label(spec)),
            (
                "Network",
                f"{spec.hidden} hidden units, {spec.init} initialisation, {spec.epochs} epochs",
            ),
            ("Momentum rule", spec.rule),
            ("Learning rate", _param_label(spec.learning_rate)),
            ("Momentum", _param_label(spec.momentum)),
            ("Sampler / pruner", f"{spec.sampler} / {pruner}"),
            ("Objective", objective),
            *rows,
        ]
    return (
        '<dl class="facts">\n'
        + "\n".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
        + "\n</dl>"
    )


def _top_table(study: _Study) -> str:
    target = study.objective.target_loss
    head = (
        "rank",
        "trial",
        "learning rate",
        "momentum",
        study.objective.name,
        f"epochs to {target:g}",
        "final val loss",
        "final val accuracy",
        "seed",
    )
    rows = []
    for i, r in enumerate(analysis.top_trials(study.records, TOP_TABLE)):
        reached = analysis.epochs_to_target(r.val_loss, target)
        cells = (
            str(i + 1),
            str(r.number) + (" (baseline)" if r.baseline else ""),
            _num(r.learning_rate),
            _num(r.momentum, 3),
            _num(r.value),
            "not reached" if reached is None else str(reached),
            _num(r.val_loss[-1]),
            _num(r.val_accuracy[-1], 3),
            str(r.seed),
        )
        rows.append(_number_row(cells))
    return _table(head, rows)


def _table(head, rows: list[str]) -> str:
    """An HTML table: a header row of ``head`` (escaped) over the rows given as markup."""
    header = "".join(f"<th>{_e(h)}</th>" for h in head)
    return f"<table>\n<tr>{header}</tr>\n" + "\n".join(rows) + "\n</table>"


def _number_row(cells) -> str:
    """A table row of already formatted numbers."""
    return "<tr>" + "".join(f'<td class="num">{c}</td>' for c in cells) + "</tr>"


def _robust_section(folder: Path) -> str:
    robust = _read_json(folder / "best.json").get("robust")
    if not isinstance(robust, dict) or not (folder / "robust.csv").exists():
        return ""
    try:
        frame = pd.read_csv(folder / "robust.csv")
    except (OSError, ValueError):
        return ""
    head = (
        "rank",
        "trial",
        "learning rate",
        "momentum",
        "objective mean",
        "95% low",
        "95% high",
        "epochs to target",
        "reached",
        "diverged",
    )
    rows = []
    for row in frame.itertuples():
        cells = (
            str(row.rank),
            str(row.trial),
            _num(row.learning_rate),
            _num(row.momentum, 3),
            _num(row.objective_mean),
            _num(row.objective_low95),
            _num(row.objective_high95),
            _num(row.epochs_to_target_mean, 3),
            f"{row.reached_target}/{row.seeds}",
            f"{row.diverged}/{row.seeds}",
        )
        rows.append(_number_row(cells))
    return (
        "<h2>Robustness to the seed</h2>\n"
        f"<p>The top trials re-trained with {_e(robust.get('seeds', '?'))} fresh seeds each (95% t-intervals; "
        f'<a href="robust.csv">robust.csv</a>; a seed that never reaches the target loss counts '
        f"as epochs + 1). Most robust: trial {_e(robust.get('trial'))}, "
        f"ranked by {_e(robust.get('ranked_by', ''))}.</p>\n" + _table(head, rows)
    )


def _study_page(study: _Study, folder: Path, written: list[str]) -> str:
    spec = study.spec
    parts = [
        '<p><a href="../index.html">&larr; all studies</a></p>',
        f"<h1>{_e(study.name)}</h1>",
        f'<p class="lead">{_e(spec.description if spec else "")}</p>',
        _facts(study),
        "<h2>Best trial</h2>",
    ]
    best = analysis.best_trial(study.records)
    if best is None:
        parts.append(f'<p class="note">{_e(NO_TRIALS)}</p>')
    else:
        target = study.objective.target_loss
        reached = analysis.epochs_to_target(best.val_loss, target)
        rows = [
            ("trial", str(best.number)),
            ("learning rate", _num(best.learning_rate, 6)),
            ("momentum", _num(best.momentum, 6)),
            (study.objective.name, _num(best.value, 6)),
            (f"epochs to loss {target:g}", "not reached" if reached is None else str(reached)),
            ("final validation accuracy", _num(best.val_accuracy[-1], 3)),
            ("seed", str(best.seed)),
        ]
        files = [
            f
            for f in ("best.json", "tuned.toml", "trials.csv", "curves.csv")
            if (folder / f).exists()
        ]
        parts += [
            "<table>\n"
            + "\n".join(f'<tr><th>{_e(k)}</th><td class="num">{v}</td></tr>' for k, v in rows)
            + "\n</table>",
            "<p>Files: "
            + ", ".join(f'<a href="{_e(quote(f))}">{_e(f)}</a>' for f in files)
            + "</p>",
        ]
    parts.append(_robust_section(folder))
    shown = [(file, caption) for file, caption in PLOTS if file in written]
    if shown:
        parts.append("<h2>Plots</h2>")
        parts += [
            f'<figure><img src="{_e(quote(file))}" alt="{_e(caption)}"><figcaption>{_e(caption)}</figcaption></figure>'
            for file, caption in shown
        ]
    if best is not None:
        parts += [f"<h2>Top {TOP_TABLE} trials</h2>", _top_table(study)]
    return _page(f"{study.name}: momentum-sweep", "\n".join(p for p in parts if p))


def _pick_cell(pick: dict | None, key: str, digits: int) -> str:
    if pick is None:
        return "&ndash;"
    return f"{_num(pick[key], digits)}<br><small>{_e(pick['source'])}: trial {_e(pick['trial'])}</small>"


def _gallery_page(studies: list[_Study]) -> str:
    root = results_root()
    head = (
        "study",
        "description",
        "data set",
        "rule",
        "trials",
        "best value",
        "tuned learning rate",
        "tuned momentum",
    )
    rows, sections = [], []
    for study in sorted(studies, key=lambda s: s.name):
        spec = study.spec
        best = analysis.best_trial(study.records)
        try:
            folder = study_folder(study.name)
        except FolderNameError:
            folder = None
        has_page = folder is not None and (folder / "index.html").exists()
        pick = tuned_pick(_read_json(folder / "best.json")) if folder is not None else None
        link = quote(study.name)
        name = (
            f'<a href="{_e(link)}/index.html">{_e(study.name)}</a>'
            if has_page
            else f"{_e(study.name)}<br><small>no page yet: sweep report {_e(study.name)}</small>"
        )
        value = (
            "no completed trials yet"
            if best is None
            else f"{_num(best.value)} <small>({_e(study.objective.name)})</small>"
        )
        cells = (
            name,
            _e(spec.description if spec else ""),
            _e(_data_label(spec)),
            _e(spec.rule if spec else "?"),
            _e(_states_label(study.records)),
            value,
            _pick_cell(pick, "learning_rate", 4),
            _pick_cell(pick, "momentum", 3),
        )
        rows.append('<tr class="study">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        if has_page:
            images = [
                f'<a href="{_e(link)}/{file}"><img src="{_e(link)}/{file}" alt="{_e(study.name)}: {_e(caption)}"></a>'
                for file, caption in PLOTS
                if file in GALLERY_PLOTS and (folder / file).exists()
            ]
            body = (
                f'<div class="thumbs">{"".join(images)}</div>'
                if images
                else f'<p class="note">{_e(NO_TRIALS)}</p>'
            )
            sections.append(
                f'<h2 id="{_e(link)}"><a href="{_e(link)}/index.html">{_e(study.name)}</a></h2>\n'
                f'<p class="lead">{_e(spec.description if spec else "")}</p>\n{body}'
            )
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    parts = [
        "<h1>momentum-sweep results</h1>",
        (
            '<p class="lead">Learning rate and momentum found by systematic trial and error. '
            f"Written {_e(when)}; each study's page has all its plots, the top trials and the tuned "
            "parameters.</p>"
        ),
        (
            _table(head, rows)
            if rows
            else f'<p class="note">No studies in the storage yet: run sweep run studies/NAME.toml. ({_e(root)})</p>'
        ),
        *sections,
    ]
    return _page("momentum-sweep results", "\n".join(parts))
