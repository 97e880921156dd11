"""The HTML pages: each study's page and the gallery index, as static files.

The pages only draw: :func:`study_page` and :func:`gallery_page` render plain records (a
:class:`StudyView`, a :class:`GalleryView`) that :mod:`sweep.report` builds from what it has
written; nothing here reads a file, so a page can be rendered in a test from records alone.
The HTML is static, with relative links and inline CSS: it reads from file:// with no server
and no network. Every study name and description is HTML-escaped.
"""

from __future__ import annotations

import datetime
import html
import math
from dataclasses import dataclass, field
from urllib.parse import quote

import numpy as np

from . import analysis
from .folders import GALLERY_PLOTS, NO_TRIALS, PLOTS, Study
from .records import lowest_epoch

TOP_TABLE = 10


@dataclass(frozen=True)
class StudyView:
    """What a study's page shows: the study, and what the report wrote for it.

    plots: the plot files in the study's folder; files: the other files to link (best.json,
    tuned.toml, trials.csv, curves.csv); confirmation: the "robust" entry of best.json (the
    fresh-seed confirmation's summary) with its table rows (one dict per setting, robust.csv's
    columns), or None.
    """

    study: Study
    plots: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    confirmation: dict | None = None
    confirmation_rows: tuple[dict, ...] = ()


@dataclass(frozen=True)
class GalleryEntry:
    """One study in the gallery: whether its page exists, the setting it recommends (a
    ``tuned_pick``, or None) and the plots to show as thumbnails."""

    study: Study
    has_page: bool = False
    pick: dict | None = None
    thumbnails: tuple[str, ...] = ()


@dataclass(frozen=True)
class GalleryView:
    """The gallery: every study, and whether the "What momentum does" page exists."""

    entries: tuple[GalleryEntry, ...] = field(default_factory=tuple)
    momentum_page: bool = False
    root: str = "results"
# A final validation loss this many times the lowest of the run is worth a warning.
OVERFIT_RATIO = 1.25

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
    return "unknown" if spec is None else spec.data.describe()


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


def _facts(study: Study) -> str:
    spec = study.spec
    rows = [("Trials", _states_label(study.records))]
    if spec is not None:
        pruner = (
            spec.pruner.name
            if spec.pruner.name == "none"
            else (
                f"{spec.pruner.name} (warm-up {spec.pruner.warmup_steps} epochs, "
                f"every {spec.pruner.interval})"
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


def _top_table(study: Study) -> str:
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


def _robust_section(robust: dict | None, rows_data: tuple[dict, ...]) -> str:
    if not isinstance(robust, dict) or not rows_data:
        return ""
    head = (
        "rank",
        "trial",
        "learning rate",
        "momentum",
        "search's value",
        "fresh mean",
        "95% low",
        "95% high",
        "optimism",
        "epochs to target (of those reaching it)",
        "reached",
        "diverged",
    )
    rows = []
    for row in rows_data:
        optimism = row["optimism"]
        cells = (
            _e(row["rank"]),
            _e(row["trial"]),
            _num(row["learning_rate"]),
            _num(row["momentum"], 3),
            _num(row["search_value"]),
            _num(row["fresh_mean"]),
            _num(row["fresh_low95"]),
            _num(row["fresh_high95"]),
            _e(f"{optimism:.0%}") if math.isfinite(optimism) else "&ndash;",
            _num(row["epochs_to_target_mean"], 3),
            _e(f"{row['reached_target']}/{row['networks']}"),
            _e(f"{row['diverged']}/{row['networks']}"),
        )
        rows.append(_number_row(cells))
    return (
        "<h2>Confirmation on fresh seeds</h2>\n"
        f"<p>The search's top settings re-trained on {_e(robust.get('networks', '?'))} fresh "
        f"networks each, seeds the search never used ({_e(robust.get('interval', ''))}; "
        '<a href="robust.csv">robust.csv</a>). <em>Optimism</em> is how much lower the '
        "search's own figure was than the fresh mean: the price of picking the best of many "
        "noisy measurements.</p>\n" + _table(head, rows)
    )


def study_page(view: StudyView) -> str:
    study = view.study
    spec = study.spec
    parts = [
        '<p><a href="../index.html">&larr; all studies</a></p>',
        f"<h1>{_e(study.name)}</h1>",
        f'<p class="lead">{_e(spec.description if spec else "")}</p>',
        _facts(study),
        "<h2>Best setting</h2>",
    ]
    best = analysis.best_trial(study.records)
    if best is None:
        parts.append(f'<p class="note">{_e(NO_TRIALS)}</p>')
    else:
        target = study.objective.target_loss
        reached = analysis.epochs_to_target(best.val_loss, target)
        lowest = float(np.nanmin(best.val_loss))
        final = float(best.val_loss[-1])
        values = best.network_values
        spread = ""
        if len(values) > 1:
            spread = f" (networks {_num(np.min(values))} to {_num(np.max(values))})"
        rows = [
            ("trial", str(best.number)),
            ("learning rate", _num(best.learning_rate, 6)),
            ("momentum", _num(best.momentum, 6)),
            (
                f"{study.objective.name}, mean of {len(values)} networks",
                _num(best.value, 6) + spread,
            ),
            (f"epochs to loss {target:g}", "not reached" if reached is None else str(reached)),
            (
                "lowest validation loss",
                f"{_num(lowest)} at epoch {lowest_epoch(best.val_loss)}; final {_num(final)}",
            ),
            ("final validation accuracy", _num(best.val_accuracy[-1], 3)),
            ("seed", str(best.seed)),
        ]
        notes = []
        if final > OVERFIT_RATIO * lowest:
            notes.append(
                f"This setting overfits: its final validation loss is {final / lowest:.2g} times "
                f"its lowest (epoch {lowest_epoch(best.val_loss)}). The objective min_val_loss "
                "scores what early stopping would keep."
            )
        if spec is not None:
            notes += [w[0].upper() + w[1:] + "." for w in analysis.edge_warnings(
                spec, best.learning_rate, best.momentum)]
        parts += [f'<p class="note">{_e(note)}</p>' for note in notes]
        files = view.files
        parts += [
            "<table>\n"
            + "\n".join(f'<tr><th>{_e(k)}</th><td class="num">{v}</td></tr>' for k, v in rows)
            + "\n</table>",
            "<p>Files: "
            + ", ".join(f'<a href="{_e(quote(f))}">{_e(f)}</a>' for f in files)
            + "</p>",
        ]
    parts.append(_robust_section(view.confirmation, view.confirmation_rows))
    shown = [(file, caption) for file, caption in PLOTS if file in view.plots]
    if shown:
        parts.append("<h2>Plots</h2>")
        parts += [
            f'<figure><img src="{_e(quote(file))}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>"
            for file, caption in shown
        ]
    if best is not None:
        parts += [f"<h2>Top {TOP_TABLE} trials</h2>", _top_table(study)]
    return _page(f"{study.name}: momentum-sweep", "\n".join(p for p in parts if p))


def _pick_cell(pick: dict | None, key: str, digits: int) -> str:
    if pick is None:
        return "&ndash;"
    return (
        f"{_num(pick[key], digits)}<br>"
        f"<small>{_e(pick['source'])}: trial {_e(pick['trial'])}</small>"
    )


def gallery_page(view: GalleryView) -> str:
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
    for entry in sorted(view.entries, key=lambda e: e.study.name):
        study, pick = entry.study, entry.pick
        spec = study.spec
        best = analysis.best_trial(study.records)
        link = quote(study.name)
        name = (
            f'<a href="{_e(link)}/index.html">{_e(study.name)}</a>'
            if entry.has_page
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
        if entry.has_page:
            images = [
                f'<a href="{_e(link)}/{file}">'
                f'<img src="{_e(link)}/{file}" alt="{_e(study.name)}: {_e(caption)}"></a>'
                for file, caption in PLOTS
                if file in GALLERY_PLOTS and file in entry.thumbnails
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
            f"Written {_e(when)}; each study's page has all its plots, the top trials and the "
            "tuned parameters.</p>"
        ),
        (
            '<p><a href="momentum.html">What momentum does</a>: the article\'s claims about '
            "momentum, measured on these studies, with intervals.</p>"
            if view.momentum_page
            else ""
        ),
        (
            _table(head, rows)
            if rows
            else (
                '<p class="note">No studies in the storage yet: '
                f"run sweep run studies/NAME.toml. ({_e(view.root)})</p>"
            )
        ),
        *sections,
    ]
    return _page("momentum-sweep results", "\n".join(parts))
