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
from .records import get_objective, lowest_epoch

TOP_TABLE = 10


@dataclass(frozen=True)
class StudyView:
    """What a study's page shows: the study, and what the report wrote for it.

    plots: the plot files in the study's folder; files: the other files to link (best.json,
    tuned.toml, trials.csv, curves.csv); answer: what best.json holds
    (``sweep.analysis.answer``). The study's confirmation race is ``study.confirmation``.
    """

    study: Study
    plots: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    answer: dict | None = None


@dataclass(frozen=True)
class GalleryEntry:
    """One study in the gallery: whether its page exists, its answer (what its best.json
    holds, or None) and the plots to show as thumbnails."""

    study: Study
    has_page: bool = False
    answer: dict | None = None
    thumbnails: tuple[str, ...] = ()
    states: dict | None = None  # trials per state (``analysis.state_counts``)


@dataclass(frozen=True)
class GalleryView:
    """The gallery: every study, one answer per setup (``sweep.analysis.setup_answers``), and
    whether the "What momentum does" page exists."""

    entries: tuple[GalleryEntry, ...] = field(default_factory=tuple)
    setups: tuple = ()
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
small.edge { color: #9a5b00; font-weight: 600; }
.note { background: #fff6d6; border: 1px solid #e5c64d; padding: 0.6em 0.9em; border-radius: 4px; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #e3e3e3; }
figcaption { color: #555; font-size: 14px; }
.thumbs { display: grid; grid-template-columns: repeat(3, 1fr); gap: 0.8em; }
.thumbs img { width: 100%; height: auto; border: 1px solid #e3e3e3; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.2em 1em; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; }
a { color: #0b57d0; }
/* A long word (a path, a URL) breaks rather than widening the page; on a wide screen a table
   column still keeps its words whole ("anywhere" would let it squeeze them to "learni|ng"). */
td, th, li, p { overflow-wrap: break-word; }
/* A verdict moves whole below its label on a phone card rather than breaking mid-word. */
.verdict { padding: 0 0.3em; border-radius: 3px; display: inline-block; overflow-wrap: break-word; }
.verdict.effect { background: #d9efd9; }
.verdict.none-detected { background: #e6ebf3; } .verdict.cannot-tell { background: #f8eccb; }
details > summary { cursor: pointer; font-weight: 600; margin: 0.8em 0; }
/* A phone: one card per table row, each value beside its column's name; one column of plots. */
@media (max-width: 700px) {
  body { padding: 1em 0.8em 3em; }
  td, th { overflow-wrap: anywhere; }
  table.cards thead { display: none; }
  table.cards, table.cards tbody, table.cards tr, table.cards td { display: block; width: auto; }
  table.cards tr { border: 1px solid #d5d5d5; margin: 0.6em 0; }
  table.cards td { border: none; border-bottom: 1px solid #eee; text-align: right; }
  table.cards td::before { content: attr(data-label); float: left; font-weight: 600;
                           color: #444; padding-right: 0.8em; text-align: left; }
  table.facts th, table.facts td { display: block; border: none; text-align: left; }
  .thumbs { grid-template-columns: 1fr; }
  dl.facts { grid-template-columns: 1fr; }
}
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


def _states_label(counts: dict) -> str:
    """'12 trials: 9 complete, 3 diverged' from trials per state."""
    shown = [
        f"{counts[s]} {s}"
        for s in ("complete", "pruned", "diverged", "failed", "running")
        if counts.get(s)
    ]
    return f"{sum(counts.values())} trials" + (f": {', '.join(shown)}" if shown else "")


def _facts(study: Study) -> str:
    spec = study.spec
    rows = [("Trials", _states_label(analysis.state_counts(study.records)))]
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
                f"{spec.hidden} hidden units, {spec.init} initialisation, {spec.epochs} epochs, "
                f"{spec.precision} arithmetic",
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
    objective = get_objective(study.objective.name)
    # The final loss is its own column unless it is the objective already.
    final = objective.name != "final_val_loss"
    head = ("rank", "trial", "learning rate", "momentum", objective.label,
            f"epochs to {target:g}", *(["final val loss"] if final else []),
            "final val accuracy", "seed")
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
            *([_num(r.val_loss[-1])] if final else []),
            _num(r.val_accuracy[-1], 3),
            str(r.seed),
        )
        rows.append(cells)
    return table(head, rows)


def table(head, rows, *, numeric: bool = True, row_class: str = "") -> str:
    """An HTML table of ``head`` (escaped) over ``rows``, each a sequence of cells already
    marked up. Each cell carries its column's name, so on a narrow screen (a phone) the table
    reads as one card per row, every value beside its name, and never overflows the page."""
    header = "".join(f"<th>{_e(h)}</th>" for h in head)
    kind = ' class="num"' if numeric else ""
    marked = [f'<tr{f" class={chr(34)}{row_class}{chr(34)}" if row_class else ""}>'
              + "".join(f'<td{kind} data-label="{_e(h)}">{c}</td>' for h, c in zip(head, row))
              + "</tr>" for row in rows]
    return (f'<table class="cards">\n<thead><tr>{header}</tr></thead>\n<tbody>\n'
            + "\n".join(marked) + "\n</tbody>\n</table>")


def _interval_text(answer: dict) -> str:
    """"0.07330 (95% interval 0.06600 to 0.08100)", or the value alone without bounds."""
    text = _num(answer.get("value"))
    if answer.get("value_low") is not None and answer.get("value_high") is not None:
        text += (f" (95% interval {_num(answer['value_low'])} to "
                 f"{_num(answer['value_high'])})")
    return text


def _answer_rows(answer: dict, target: float, objective: str) -> list[tuple[str, str]]:
    """The answer's figures as (label, escaped cell) rows: the race's, or the search's own
    (labelled so) when it is not confirmed."""
    rows = [
        ("trial", _e(answer["trial"])),
        ("learning rate", _num(answer["learning_rate"])),
        ("momentum", _num(answer["momentum"])),
    ]
    search = answer.get("search") or {}
    if not answer.get("confirmed"):
        rows.append((f"{objective}: the search's own figure, mean of {search.get('networks')} "
                     "networks", _num(search.get("value"))))
        return rows
    n = answer.get("networks")
    reached = answer.get("reached")
    upper = answer.get("failure_rate_upper")
    rows += [
        ("effective learning rate", _num(answer.get("effective_learning_rate"))),
        (f"{objective}, mean of {n} fresh networks", _interval_text(answer)),
        (f"epochs to loss {target:g}",
         "not reached" if not reached else
         f"{_num(answer.get('epochs_to_target'), 3)} (reached by {reached} of {n})"),
        ("final validation loss / accuracy",
         f"{_num(answer.get('final_val_loss'))} / {_num(answer.get('final_val_accuracy'), 3)}"),
        ("failures (blew up or worse than chance)",
         f"{_e(answer.get('failures'))} of {_e(n)}"
         + (f" (failure rate below {upper:.1%} at 95%)" if upper is not None else "")),
    ]
    optimism = search.get("optimism")
    rows.append((
        "the search's own figure (not the answer's)",
        f"{_num(search.get('value'))} over {_e(search.get('networks'))} networks"
        + (f"; {optimism:+.0%} against the fresh networks' mean" if optimism is not None
           else ""),
    ))
    return rows


def _race_section(confirmation: dict | None) -> str:
    """The confirmation race: every candidate, its search figure, its race mean and its fate."""
    if not confirmation or not confirmation.get("candidates"):
        return ""
    pick = (confirmation.get("pick") or {}).get("trial")
    survivors = set(confirmation.get("survivors") or [])
    head = ("trial", "learning rate", "momentum", "effective rate", "search's figure",
            "race mean", "networks", "in the race")
    rows = []
    for c in confirmation["candidates"]:
        if c["trial"] == pick:
            fate = "picked"
        elif c["trial"] in survivors:
            fate = "equivalent"
        elif c.get("dropped_by") == "failure":
            fate = f"failed (round {c.get('dropped_round')})"
        else:
            fate = f"worse (dropped in round {c.get('dropped_round')})"
        rows.append((
            _e(c["trial"]), _num(c["learning_rate"]), _num(c["momentum"], 3),
            _num(c["effective_rate"]), _num(c["search_value"]), _num(c.get("race_mean")),
            _e(c.get("networks")), _e(fate),
        ))
    settings = confirmation.get("settings") or {}
    return (
        "<h2>Confirmation race</h2>\n"
        f"<p>The search's {len(confirmation['candidates'])} best settings (those within its "
        f"noise of its best) raced on {_e(confirmation.get('networks', 'fresh networks'))}, "
        f"up to {_e(settings.get('max_networks', '?'))} networks each, in rounds: after each "
        "round every pair was compared network by network (a paired test, Holm-corrected "
        "across the pairs) and the clearly worse dropped; a network that blew up or ended worse "
        "than chance disqualified its setting. Among the settings the race could not separate, "
        "the pick is the lowest effective learning rate within one standard error of the best "
        f"mean, the furthest from blow-up. {_e(confirmation.get('stop', '')).capitalize()}; "
        f"{_e(confirmation.get('networks_trained'))} networks in all. Intervals: "
        f"{_e(confirmation.get('interval', ''))}.</p>\n" + table(head, rows)
    )


def study_page(view: StudyView) -> str:
    study = view.study
    spec = study.spec
    answer = view.answer or {}
    parts = [
        '<p><a href="../index.html">&larr; all studies</a></p>',
        f"<h1>{_e(study.name)}</h1>",
        f'<p class="lead">{_e(spec.description if spec else "")}</p>',
        _facts(study),
        "<h2>The answer</h2>",
    ]
    chosen = study.chosen
    if chosen is None or answer.get("trial") is None:
        parts.append(f'<p class="note">{_e(NO_TRIALS)}</p>')
    else:
        target = study.objective.target_loss
        notes = []
        if answer.get("confirmed"):
            parts.append(
                f"<p>Confirmed on {_e(answer.get('networks'))} networks the search never saw "
                f"({_e(answer.get('race_networks', ''))}). {_e(answer.get('equivalent', ''))}."
                "</p>")
        else:
            notes.append(answer.get("note", ""))
        lowest = float(np.nanmin(chosen.val_loss))
        final = float(chosen.val_loss[-1])
        if final > OVERFIT_RATIO * lowest:
            notes.append(
                f"This setting overfits: in the search its final validation loss was "
                f"{final / lowest:.2g} times its lowest (epoch {lowest_epoch(chosen.val_loss)}). "
                "The objective min_val_loss scores what early stopping would keep."
            )
        notes += [w[0].upper() + w[1:] + "." for w in answer.get("edge_warnings", [])]
        parts += [f'<p class="note">{_e(note)}</p>' for note in notes if note]
        rows = _answer_rows(answer, target, study.objective.name)
        parts += [
            '<table class="facts">\n'
            + "\n".join(f'<tr><th>{_e(k)}</th><td class="num">{v}</td></tr>' for k, v in rows)
            + "\n</table>",
            "<p>Files: "
            + ", ".join(f'<a href="{_e(quote(f))}">{_e(f)}</a>' for f in view.files)
            + "</p>",
        ]
    parts.append(_race_section(study.confirmation))
    shown = [(file, caption) for file, caption in PLOTS if file in view.plots]
    if shown:
        parts.append("<h2>Plots</h2>")
        parts += [
            f'<figure><img src="{_e(quote(file))}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>"
            for file, caption in shown
        ]
    if chosen is not None:
        parts += [f"<h2>Top {TOP_TABLE} trials (the search's own figures)</h2>",
                  _top_table(study)]
    return _page(f"{study.name}: momentum-sweep", "\n".join(p for p in parts if p))


def _answer_cell(answer: dict | None) -> str:
    """The answer's value: the race's mean with its network count, or the search's own figure
    marked unconfirmed."""
    if not answer or answer.get("trial") is None:
        return "no completed trials yet"
    edge = ""
    if answer.get("edge_warnings"):
        edge = ('<br><small class="edge">at the edge of its search range: widen it (see its '
                'page)</small>')
    if answer.get("confirmed"):
        return (f"{_interval_text(answer)}<br><small>{_e(answer.get('objective'))}, "
                f"{_e(answer.get('networks'))} fresh networks</small>{edge}")
    return (f"{_num(answer.get('value'))}<br><small>search's own figure, "
            f"not confirmed</small>{edge}")


def gallery_page(view: GalleryView) -> str:
    head = (
        "study",
        "description",
        "data set",
        "rule",
        "trials",
        "answer's value",
        "learning rate",
        "momentum",
    )
    rows, sections = [], []
    for entry in sorted(view.entries, key=lambda e: e.study.name):
        study, answer = entry.study, entry.answer or {}
        spec = study.spec
        link = quote(study.name)
        name = (
            f'<a href="{_e(link)}/index.html">{_e(study.name)}</a>'
            if entry.has_page
            else f"{_e(study.name)}<br><small>no page yet: sweep report {_e(study.name)}</small>"
        )
        cells = (
            name,
            _e(spec.description if spec else ""),
            _e(_data_label(spec)),
            _e(spec.rule if spec else "?"),
            _e(_states_label(entry.states if entry.states is not None
                             else analysis.state_counts(study.records))),
            _answer_cell(answer),
            _num(answer.get("learning_rate")),
            _num(answer.get("momentum")),
        )
        rows.append(cells)
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
        _setups_section(view.setups),
        (
            table(head, rows, numeric=False, row_class="study")
            if rows
            else (
                '<p class="note">No studies in the storage yet: '
                f"run sweep run studies/NAME.toml. ({_e(view.root)})</p>"
            )
        ),
        *sections,
    ]
    return _page("momentum-sweep results", "\n".join(parts))


def _setups_section(setups) -> str:
    """One answer per setup: which setting to use, and which are equivalent."""
    if not setups:
        return ""
    items = "\n".join(
        f"<li><strong>{_e(s.setup)}</strong> ({_e(', '.join(s.studies))}): {_e(s.sentence)}</li>"
        for s in setups)
    return ("<h2>One answer per setup</h2>\n<p>Studies of the same data set, network, rule, "
            "epochs and objective answer one question; their answers, confirmed on the same "
            "fresh networks, are compared network by network.</p>\n"
            f"<ul>\n{items}\n</ul>")
