"""The page "What momentum does": the article's five claims answered per data set and rule.

``write_momentum_page(studies, root)`` takes the stored studies (as the report reads them),
answers the claims for each study that searched momentum (:mod:`sweep.claims`, from its trials
and from a few networks re-trained by :mod:`sweep.diagnostics` at its tuned setting), draws the
plots and writes ``root/momentum.html`` with its PNGs under ``root/momentum/``: static HTML,
relative links, escaped text, readable from file://.

Momentum 0 is plain SGD whatever the rule, so a study's tuned plain SGD may come from any study
with the same data, network, epochs, objective and folds (:func:`sweep.analysis.compare_momentum`).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import numpy as np

from . import claims
from .analysis import MIN_TUNED_LEARNING_RATES, compare_momentum
from .diagnostics import QUANTILES, diagnose_many
from .folders import MOMENTUM_FOLDER, MOMENTUM_PAGE, Study
from .pages import _e, _page
from .rules import get_rule
from .stats import INTERVAL_METHOD, mean_interval

# Networks re-trained with diagnostics per study: the tuned setting's first few folds.
DIAGNOSED_NETWORKS = 3


def _measurement(spec) -> tuple:
    """What must match for two studies' trials to rank together (as the report's comparison)."""
    return (spec.data, spec.hidden, spec.init, spec.epochs, spec.objective, spec.folds,
            spec.repeats)


def _searches_momentum(spec) -> bool:
    return spec.momentum.fixed is None or spec.momentum.fixed > 0


def _diagnostics(spec, record, limit: int = DIAGNOSED_NETWORKS):
    """The tuned trial's first ``limit`` networks re-trained with diagnostics (same data fold,
    seed and settings), side by side in one batch."""
    datasets = spec.datasets()
    if record.networks is None:
        pairs = [(0, record.seed)]
    else:
        pairs = list(zip(record.networks.folds, record.networks.seeds))
    return diagnose_many(
        [(datasets[fold], seed) for fold, seed in pairs[:limit]],
        record.learning_rate, record.momentum,
        rule=spec.rule, hidden=spec.hidden, epochs=spec.epochs, init=spec.init,
    )


# ---------------------------------------------------------------------------------------------
# Drawing (matplotlib Figure objects, no pyplot state)


def _figure(rows: int = 1, columns: int = 1, size=(10.0, 4.2)):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=100, layout="constrained")
    return figure, figure.subplots(rows, columns, squeeze=False)[0]


def _band(ax, rows: np.ndarray, label: str, colour: str) -> None:
    """The networks' mean validation loss per epoch with its bootstrap interval."""
    epochs = np.arange(1, rows.shape[1] + 1)
    intervals = [mean_interval(rows[np.isfinite(rows[:, e]), e]) for e in range(rows.shape[1])]
    ax.plot(epochs, [i.mean for i in intervals], color=colour, label=label)
    ax.fill_between(epochs, [i.low for i in intervals], [i.high for i in intervals],
                    color=colour, alpha=0.25, lw=0)


def speed_figure(result: claims.Speed, title: str):
    figure, (ax,) = _figure()
    for record, label, colour in ((result.momentum, "tuned momentum", "#1f77b4"),
                                  (result.none, "tuned plain SGD", "#7f7f7f")):
        rows = claims._network_rows(record, "val_loss")[1]
        _band(ax, rows, f"{label}: learning rate {record.learning_rate:.3g}, momentum "
                        f"{record.momentum:.2g}", colour)
    ax.axhline(result.target_loss, color="black", ls=":", lw=1, label="target loss")
    for epoch in claims.CHECKPOINTS:
        ax.axvline(epoch, color="#cccccc", lw=0.8, zorder=0)
    ax.set(xlabel="epoch", ylabel="validation loss (mean over networks, 95 % band)",
           title=title)
    ax.set_yscale("log")
    ax.legend()
    return figure


def updates_figure(diagnostics, title: str):
    """Momentum share, update size and effective step per epoch: median and quartiles across
    weights, one line per re-trained network, with the rules' bounds on the last panel."""
    figure, axes = _figure(1, 3, size=(13.0, 4.2))
    q25, q50, q75 = (QUANTILES.index(q) for q in (0.25, 0.5, 0.75))
    names = (("momentum_share", "momentum share of updates"),
             ("update_size", "mean |update| per weight"),
             ("effective_step", "effective step (path / plain SGD's)"))
    for ax, (name, label) in zip(axes, names):
        for i, d in enumerate(diagnostics):
            values = getattr(d, name)
            epochs = np.arange(1, len(values) + 1)
            ax.plot(epochs, values[:, q50], color=f"C{i}", label=f"network {i + 1} median")
            ax.fill_between(epochs, values[:, q25], values[:, q75], color=f"C{i}", alpha=0.2,
                            lw=0)
        ax.set(xlabel="epoch", title=label)
    axes[1].set_yscale("log")
    momentum = diagnostics[0].momentum
    axes[2].axhline(1 + momentum, color="black", ls="--", lw=1, label="1 + momentum")
    axes[2].axhline(1 / (1 - momentum), color="black", ls=":", lw=1, label="1 / (1 - momentum)")
    axes[2].axhline(1, color="#999999", lw=0.8, label="plain SGD")
    axes[0].legend(fontsize=8)
    axes[2].legend(fontsize=8)
    figure.suptitle(title)
    return figure


def stability_figure(rule: str, boundaries, title: str):
    figure, (ax,) = _figure()
    momenta = [b.momentum for b in boundaries]
    ax.plot(momenta, [b.largest_stable or np.nan for b in boundaries], "o-", color="#2ca02c",
            label="largest stable learning rate (grid)")
    ax.plot(momenta, [b.first_diverged or np.nan for b in boundaries], "x--", color="#d62728",
            label="smallest diverged learning rate (grid)")
    zero = next((b for b in boundaries if b.momentum == 0), None)
    if zero is not None and zero.largest_stable is not None:
        smooth = np.linspace(0, max(momenta), 100)
        theory = [claims.predicted_boundary(rule, zero.largest_stable, m) for m in smooth]
        ax.plot(smooth, theory, "-", color="black", lw=1,
                label=f"theory: {get_rule(rule).effective_formula} below plain SGD's limit")
    ax.set_yscale("log")
    ax.set(xlabel="momentum", ylabel="learning rate", title=title)
    ax.legend(fontsize=8)
    return figure


# ---------------------------------------------------------------------------------------------
# The page


def _save(figure, path: Path) -> None:
    figure.savefig(path, dpi=100)
    figure.clear()


def _answer_html(answer: claims.Answer) -> str:
    items = "".join(f"<li>{_e(s)}</li>" for s in answer.sentences)
    return f'<h4>{answer.claim}. {_e(answer.title)}</h4>\n<ul class="answer">{items}</ul>'


def _image(folder_name: str, file: str, caption: str) -> str:
    link = f"{quote(folder_name)}/{quote(file)}"
    return (f'<figure><a href="{_e(link)}"><img src="{_e(link)}" alt="{_e(caption)}"></a>'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def study_section(study: Study, others: list[Study], folder: Path) -> tuple[str, list[str]]:
    """The claims for one study that searched momentum: (HTML, PNG files written)."""
    spec, records, name = study.spec, study.records, study.name
    target = spec.objective.target_loss
    comparable = [(o.name, o.records) for o in others
                  if o.name != name and _measurement(o.spec) == _measurement(spec)]
    comparison = compare_momentum(name, records, target, comparable)
    written, parts, answers = [], [], []
    if comparison.momentum is not None and comparison.no_momentum is not None:
        result = claims.speed(comparison.momentum.record, comparison.no_momentum.record, target)
        answer = claims.speed_answer(result)
        if comparison.no_momentum.study != name:
            answer = claims.Answer(1, answer.title, answer.sentences + (
                f"Plain SGD's side comes from study {comparison.no_momentum.study}.",))
        answers.append(answer)
        file = f"{name}-speed.png"
        _save(speed_figure(result, f"{name}: tuned momentum against tuned plain SGD"),
              folder / file)
        written.append(file)
    else:
        answers.append(claims.Answer(1, "Does momentum move you faster early on?", (
            "No comparison: the study needs a completed momentum trial and plain SGD tuned at "
            f"{MIN_TUNED_LEARNING_RATES} or more learning rates in it or in a study measured "
            "the same way.",)))
    tuned = comparison.momentum
    diagnostics = _diagnostics(spec, tuned.record) if tuned is not None else []
    answers.append(claims.fading_answer(diagnostics))
    answers.append(claims.step_answer(diagnostics))
    if diagnostics:
        file = f"{name}-updates.png"
        _save(updates_figure(diagnostics, f"{name}: updates across weights at the tuned "
                                          f"setting ({spec.rule} rule)"), folder / file)
        written.append(file)
    if spec.sampler == "grid":
        boundaries = claims.stability_boundary(claims.grid_cells(records))
        answers.append(claims.stability_answer(spec.rule, boundaries))
        if len(boundaries) >= 2:
            file = f"{name}-stability.png"
            _save(stability_figure(spec.rule, boundaries, f"{name}: where training diverges "
                                                          f"({spec.rule} rule)"), folder / file)
            written.append(file)
    else:
        answers.append(claims.Answer(4, "Does momentum reduce the risk of oscillating "
                                        "(diverging)?",
                                     ("Not a grid study: its diverged trials do not map the "
                                      "boundary; see a grid study on the same data.",)))
    answers.append(claims.freedom_answer(records))
    captions = {"speed": "Validation loss of the networks of tuned momentum and tuned plain SGD",
                "updates": "Momentum share, update size and effective step across weights",
                "stability": "The largest stable learning rate against momentum, with theory"}
    images = [_image(MOMENTUM_FOLDER, f, captions[f.rsplit("-", 1)[1][:-4]]) for f in written]
    parts.append(f'<h3 id="{_e(quote(name))}">{_e(name)}: {_e(spec.rule)} rule</h3>')
    parts.append(f'<p class="lead">{_e(spec.description)}</p>')
    parts += [_answer_html(a) for a in answers]
    parts += images
    return "\n".join(parts), written


def write_momentum_page(studies: list[Study], root: Path) -> Path:
    """Write ``root/momentum.html`` and its plots under ``root/momentum/`` from the stored
    ``studies`` (those made outside momentum-sweep, with no spec, are left out); returns the
    page's path. Takes a few seconds per study that searched momentum: each re-trains a few
    networks with diagnostics. Reads no storage, so it can run in a process of its own."""
    root = Path(root)
    folder = root / MOMENTUM_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    studies = [study for study in studies if study.spec is not None]
    groups: dict[str, list[Study]] = {}
    for study in sorted(studies, key=lambda s: s.name):
        if _searches_momentum(study.spec):
            groups.setdefault(study.spec.data.describe(), []).append(study)
    sections, written = [], []
    for label, members in groups.items():
        sections.append(f"<h2>{_e(label)}</h2>")
        for study in members:
            html, files = study_section(study, studies, folder)
            sections.append(html)
            written += files
    for stale in folder.glob("*.png"):
        if stale.name not in written:
            stale.unlink()
    lead = (
        "The seed article's five claims about momentum, each answered per data set and rule "
        "from the stored trials and from a few networks re-trained with diagnostics at the "
        f"study's tuned setting. Every sentence is generated from the numbers; intervals are "
        f"{INTERVAL_METHOD} over the trials' networks."
    )
    body = "\n".join([
        "<h1>What momentum does</h1>",
        f'<p class="lead">{_e(lead)}</p>',
        '<p><a href="index.html">All studies</a></p>',
        *(sections or ['<p class="note">No study in the storage searched momentum.</p>']),
    ])
    page = root / MOMENTUM_PAGE
    page.write_text(_page("What momentum does: momentum-sweep", body), encoding="utf-8")
    return page

