"""The page "What momentum does" (``momentum.html``), its plots and ``momentum.json``.

``write_momentum_page(studies, root)`` takes the stored studies (as the report reads them) and,
for each confirmed study that searched momentum, measures on fresh networks (its race networks,
``sweep.confirm``): its answer against plain SGD at the rule's matched effective learning rate
and tuned against tuned (:mod:`sweep.effects`), whether the momentum term fades late in training
(:mod:`sweep.diagnostics`, on the same networks), and, once per data set, network and rule, where
training blows up (:mod:`sweep.stability`). :mod:`sweep.claims` turns the numbers into verdicts
after one Holm step over the page's tests. The page opens with a table of verdicts; the evidence
follows, per data set. Static HTML, relative links, escaped text, readable from file://.
Reads no storage, so it can run in a process of its own.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np

from . import claims, effects, files, stability
from .diagnostics import MEDIAN, diagnose_many
from .folders import MOMENTUM_FOLDER, MOMENTUM_PAGE, Study
from .pages import _e, _page, table
from .rules import get_rule
from .stats import INTERVAL_METHOD, Interval, paired_difference_interval, paired_p_value

JSON = "momentum.json"
# The verdict table's words for which prediction the measured blow-up follows.
FIT_WORDS = {"effective-step": "the effective-step rule", "linear": "the linear bound",
             "neither": "neither prediction", "cannot tell": "cannot tell"}
# Networks behind the fading question: the answer's first race networks.
DIAGNOSED_NETWORKS = 20
# The first and last tenth of training: "early" and "late" for the fading question.
PHASE_SHARE = 0.1


@dataclass(frozen=True)
class Fading:
    """Late minus early momentum share of the median weight's updates, per network, paired."""

    interval: Interval
    p_value: float
    baseline: float  # the early share's mean
    early: float
    late: float


@dataclass(frozen=True)
class Measured:
    """One study's measurements for the page (None where the answer has no momentum)."""

    study: Study
    pick: dict  # the setting compared: the answer, or the best confirmed one with momentum
    matched: object | None
    tuned: object | None
    fading: Fading | None
    is_answer: bool = True  # whether ``pick`` is the study's answer


def _searches_momentum(spec) -> bool:
    return spec.momentum.fixed is None or spec.momentum.fixed > 0


def drawn_from(study: Study) -> bool:
    """Whether the page draws from this study's trials: a confirmed study that searched
    momentum (the others it only lists)."""
    return (study.spec is not None and _searches_momentum(study.spec)
            and bool((study.confirmation or {}).get("pick")))


def _setup(spec) -> tuple:
    """What a stability measurement depends on: the data set, the network and the rule."""
    return (spec.data, spec.hidden, spec.init, spec.epochs, spec.precision, spec.folds, spec.rule)


def fading(spec, learning_rate: float, momentum: float) -> Fading | None:
    """The momentum term's share of the median weight's updates in the first and the last
    tenth of training, on the answer's first ``DIAGNOSED_NETWORKS`` race networks."""
    from .confirm import RaceNetworks

    datasets, index, seeds = RaceNetworks(spec).datasets(0, DIAGNOSED_NETWORKS)
    # The diagnostics' trainer is NumPy's float64 one: a float32 study's shares are those of
    # its setting trained in float64.
    diagnosed = diagnose_many([(datasets[i], seed) for i, seed in zip(index, seeds)],
                              learning_rate, momentum, rule=spec.rule, hidden=spec.hidden,
                              epochs=spec.epochs, init=spec.init)
    phase = max(1, int(round(PHASE_SHARE * spec.epochs)))
    early, late = [], []
    for d in diagnosed:
        if d.diverged_epoch:
            continue
        share = d.momentum_share[:, MEDIAN]
        early.append(float(np.nanmean(share[:phase])))
        late.append(float(np.nanmean(share[-phase:])))
    if len(early) < 2:
        return None
    return Fading(paired_difference_interval(late, early), paired_p_value(late, early,
                                                                           "two-sided"),
                  float(np.mean(early)), float(np.mean(early)), float(np.mean(late)))


def momentum_setting(confirmation: dict | None) -> dict | None:
    """The confirmed setting with momentum: the race's pick when it has momentum, else the
    setting with momentum the race did best with (a survivor first), else None."""
    if not confirmation or confirmation.get("pick") is None:
        return None
    pick = confirmation["pick"]
    if pick["momentum"] > 0:
        return pick
    survivors = set(confirmation.get("survivors") or [])
    with_momentum = [c for c in confirmation.get("candidates", [])
                     if c["momentum"] > 0 and not c.get("failures") and c.get("race_mean")]
    if not with_momentum:
        return None
    best = min(with_momentum, key=lambda c: (c["trial"] not in survivors, c["race_mean"]))
    return {**best, "value": {"mean": best["race_mean"]}}


def measure(study: Study) -> Measured | None:
    """The study's measurements, or None when it has no confirmed answer."""
    parts = _measure_setting(study.spec, study.confirmation)
    return None if parts is None else Measured(study, *parts)


def _measure_setting(spec, confirmation: dict | None) -> tuple | None:
    """``Measured``'s fields after the study: (pick, matched, tuned, fading, is_answer), or
    None without a confirmed answer. Takes only what it needs, to be sent to a process."""
    if not confirmation or confirmation.get("pick") is None:
        return None
    pick = momentum_setting(confirmation)
    if pick is None:
        return confirmation["pick"], None, None, None, True
    lr, mu = pick["learning_rate"], pick["momentum"]
    return (pick, effects.matched(spec, lr, mu), effects.tuned(spec, mu), fading(spec, lr, mu),
            pick is confirmation["pick"])


def _measure_boundaries(spec) -> list:
    return stability.measure_boundary(spec, stability.stability_momenta(spec.rule))


def _cost(spec) -> float:
    """A study's networks' relative cost: their updates (items a fold, taken as the generated
    sources' ``items`` for every source, times epochs) times their size."""
    return spec.epochs * spec.data.items * spec.hidden


def _measure_all(candidates: list[Study], processes: int) -> tuple[list[Measured], dict]:
    """Every candidate's measurements and, once per data set, network and rule, its blow-up
    boundaries ({setup: (spec, boundaries)}), in ``processes`` processes side by side: the page's
    networks are many small batches, a core each (two processes took 20 s where one took 34)."""
    setups = {}
    for study in candidates:
        if study.confirmation and study.confirmation.get("pick") is not None:
            setups.setdefault(_setup(study.spec), study.spec)
    if processes <= 1 or len(candidates) + len(setups) <= 1:
        parts = [_measure_setting(s.spec, s.confirmation) for s in candidates]
        found = {key: _measure_boundaries(spec) for key, spec in setups.items()}
    else:
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        with ProcessPoolExecutor(processes, mp_context=get_context("spawn"),
                                 initializer=np.seterr, initargs=("ignore",)) as pool:
            # The costliest first (a study's settings cost about twice its boundaries), so
            # that no long task starts last while the other process idles.
            tasks = [(2 * _cost(s.spec), _measure_setting, (s.spec, s.confirmation), s.name)
                     for s in candidates]
            tasks += [(_cost(spec), _measure_boundaries, (spec,), key)
                      for key, spec in setups.items()]
            futures = {key: pool.submit(work, *arguments) for _, work, arguments, key in
                       sorted(tasks, key=lambda task: -task[0])}
            parts = [futures[s.name].result() for s in candidates]
            found = {key: futures[key].result() for key in setups}
    measured = [Measured(study, *p) for study, p in zip(candidates, parts) if p is not None]
    return measured, {key: (setups[key], found[key]) for key in setups}


# ---------------------------------------------------------------------------------------------
# Drawing (matplotlib Figure objects, no pyplot state)


def _save(figure, path: Path) -> None:
    try:
        files.write_with(path, lambda temporary: figure.savefig(temporary, dpi=100, format="png"))
    finally:
        figure.clear()


def _image(file: str, caption: str) -> str:
    link = f"{quote(MOMENTUM_FOLDER)}/{quote(file)}"
    return (f'<figure><a href="{_e(link)}"><img src="{_e(link)}" alt="{_e(caption)}"></a>'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _effective_figure(study: Study):
    from . import plots
    from .analysis import effective_points, landscape_points
    from .records import get_objective

    rule = get_rule(study.spec.rule)
    chosen = study.chosen
    return plots.scatter_landscape_figure(
        effective_points(landscape_points(study.records), study.spec.rule),
        objective_label=get_objective(study.spec.objective.name).label,
        best=chosen.number if chosen else None,
        x_label=f"effective learning rate: {rule.effective_formula} (log scale)",
        title=f"{study.name}: the search's trials over the effective learning rate",
    )


# ---------------------------------------------------------------------------------------------
# The page


def _tests_of(tests, name: str, question: str):
    return [t for t in tests if t.study == name and t.question == question]


def _verdict_cell(tests) -> str:
    """A verdict with its direction, coloured by its kind."""
    if tests is None:
        return "no momentum setting confirmed"
    kind = claims.verdict_word(tests).replace(" ", "-")
    return f'<span class="verdict {_e(kind)}">{_e(claims.verdict_phrase(tests))}</span>'


def _verdict_table(measured: list[Measured], tests, fits: dict) -> str:
    head = ("data set", "study (rule)", "setting compared", "more than a larger learning rate?",
            "tuned momentum beats tuned SGD?", "momentum term fades late?",
            "blow-up follows", "momentum free?")
    rows = []
    for m in measured:
        spec, name = m.study.spec, m.study.name
        fit = fits.get(_setup(spec))
        if m.matched is None:
            words = [None] * 3
        else:
            words = [_tests_of(tests, name, q) for q in ("matched", "tuned", "fading")]
        survivors = len((m.study.confirmation or {}).get("survivors") or [])
        rows.append((
            _e(spec.data.describe()),
            f'<a href="#{_e(quote(name))}">{_e(name)}</a> ({_e(spec.rule)})',
            _e(f"learning rate {m.pick['learning_rate']:.3g}, momentum "
               f"{m.pick['momentum']:.2g}" + ("" if m.is_answer else
                                              " (the answer has no momentum: its best "
                                              "confirmed setting with momentum)")),
            *(_verdict_cell(w) for w in words),
            _e(FIT_WORDS.get(fit.verdict, fit.verdict) if fit else "not measured"),
            _e(f"{survivors} equivalent settings" if survivors > 1 else "no"),
        ))
    return table(head, rows, numeric=False)


def _question_html(title: str, tests, lead: str = "") -> str:
    items = "".join(f"<li>{_e(claims.verdict_sentence(t))}</li>" for t in tests)
    summary = claims.summary(tests) if tests and tests[0].question != "fading" else ""
    return (f"<h4>{_e(title)}</h4>\n" + (f"<p>{_e(lead)}</p>\n" if lead else "")
            + (f"<p><strong>{_e(summary)}</strong></p>\n" if summary else "")
            + f'<ul class="answer">{items}</ul>')


def _study_section(m: Measured, tests, folder: Path, written: list[str]) -> str:
    study, spec, name = m.study, m.study.spec, m.study.name
    rule = get_rule(spec.rule)
    parts = [f'<h3 id="{_e(quote(name))}">{_e(name)}: {_e(spec.rule)} rule</h3>',
             f'<p class="lead">{_e(spec.description)}</p>']
    if m.matched is None:
        parts.append("<p>The confirmed answer uses no momentum: there is nothing to compare.</p>")
    else:
        parts.append(_question_html(
            "Is momentum here more than a larger learning rate?",
            _tests_of(tests, name, "matched"),
            ("The answer" if m.is_answer else "The answer uses no momentum; its best confirmed "
             "setting with momentum")
            + f" (learning rate {m.matched.learning_rate:.3g}, momentum "
            f"{m.matched.momentum:.2g}) against plain SGD at its effective learning rate "
            f"{m.matched.sgd_learning_rate:.3g} ({rule.effective_formula}), on the same "
            f"{m.matched.networks} fresh networks; momentum minus plain SGD."))
        parts.append(_question_html(
            "Does tuned momentum beat tuned plain SGD?",
            _tests_of(tests, name, "tuned"),
            f"Momentum {m.tuned.momentum:.2g} and plain SGD, each with its learning rate chosen "
            f"from the same {effects.TUNING_POINTS} learning rates on "
            f"{effects.SELECTION_NETWORKS} networks (momentum chose {m.tuned.learning_rate:.3g}, "
            f"plain SGD {m.tuned.sgd_learning_rate:.3g}), then compared on "
            f"{m.tuned.networks} others."))
        if m.fading is not None:
            parts.append(_question_html(
                "Does the momentum term fade late in training?",
                _tests_of(tests, name, "fading"),
                f"The share of the median weight's update that is the momentum term: "
                f"{m.fading.early:.2g} in the first tenth of training, {m.fading.late:.2g} in "
                f"the last, on {DIAGNOSED_NETWORKS} fresh networks at the answer."))
    parts.append(f"<h4>Is the momentum factor free?</h4>\n<p>"
                 f"{_e(claims.free_momentum(study.confirmation))}</p>")
    file = f"{name}-effective.png"
    _save(_effective_figure(study), folder / file)
    written.append(file)
    parts.append(_image(file, "The search's trials over the rule's effective learning rate and "
                              "momentum: where momentum only rescales the learning rate, the "
                              "valley stands upright"))
    return "\n".join(parts)


def _stability_section(spec, boundaries, fit, folder: Path, written: list[str]) -> str:
    from .stability_plot import draw_stability

    label = f"{spec.data.describe()}, {spec.rule} rule"
    parts = [f"<h4>Where training blows up: {_e(label)}</h4>", f"<p>{_e(fit.sentence)}</p>"]
    file = f"stability-{len(written)}.png"
    _save(draw_stability(boundaries, spec.rule, fit), folder / file)
    written.append(file)
    parts.append(_image(file, "The learning rate where half of the networks blow up, per "
                              "momentum, with both predictions scaled by the measured "
                              "momentum-0 boundary"))
    return "\n".join(parts)


def _json(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    return value


def _with_verdicts(comparison, tests) -> dict:
    """A comparison's record with each difference's adjusted p-value and verdict."""
    plain = comparison.to_dict()
    names = {"objective": "objective_difference", "final_loss": "final_loss_difference",
             "lowest_loss": "lowest_loss_difference", "epochs": "epochs_difference"}
    for test in tests:
        key = names[test.measure]
        plain[key] = {**plain[key], "adjusted_p_value": test.adjusted_p_value,
                      "verdict": test.verdict}
    return plain


def write_momentum_page(studies: list[Study], root: Path, processes: int = 1) -> Path:
    """Write ``root/momentum.html``, ``root/momentum.json`` and the plots under
    ``root/momentum/`` from the stored ``studies`` (those made outside momentum-sweep, with no
    spec, are left out), measuring in ``processes`` processes; returns the page's path."""
    root = Path(root)
    folder = root / MOMENTUM_FOLDER
    files.make_folder(folder)
    candidates = sorted((s for s in studies if s.spec is not None
                         and _searches_momentum(s.spec)), key=lambda s: s.name)
    measured, boundaries = _measure_all(candidates, processes)
    fits = {key: stability.which_fits(found, spec.rule) for key, (spec, found) in
            boundaries.items()}
    entries = []
    for m in measured:
        if m.matched is not None:
            for question, comparison in (("matched", m.matched), ("tuned", m.tuned)):
                entries += [(m.study.name, question, measure_name, comparison.differences[
                    measure_name]) for measure_name in claims.MEASURES]
        if m.fading is not None:
            entries.append((m.study.name, "fading", claims.SHARE, m.fading))
    tests = claims.adjusted_tests(entries)

    written: list[str] = []
    by_data: dict[str, list[Measured]] = {}
    for m in measured:
        by_data.setdefault(m.study.spec.data.describe(), []).append(m)
    sections = []
    for label, members in by_data.items():
        sections.append(f"<h2>{_e(label)}</h2>")
        for m in members:
            sections.append(f"<details open><summary>{_e(m.study.name)}: the evidence"
                            f"</summary>\n{_study_section(m, tests, folder, written)}\n"
                            "</details>")
        shown = set()
        for m in members:
            key = _setup(m.study.spec)
            if key in boundaries and key not in shown:
                shown.add(key)
                spec, found = boundaries[key]
                sections.append(_stability_section(spec, found, fits[key], folder, written))
    for stale in folder.glob("*.png"):
        if stale.name not in written:
            files.remove(stale)

    lead = (
        "Trained one item at a time, momentum at (learning rate, momentum) moves like plain SGD "
        "at the rule's effective learning rate, so every claim is tested against plain SGD at "
        "that matched rate, and against plain SGD tuned with the same budget. Every figure is "
        "measured on networks the search never saw (fresh seeds on fresh partitions), at least "
        f"20 per figure; intervals are {INTERVAL_METHOD}; the page's "
        f"{sum(math.isfinite(t.p_value) for t in tests)} tests share one Holm step at "
        f"{claims.ALPHA:g}. A verdict is an effect (the adjusted test rejects), none detected "
        "(the whole interval lies within a margin that matters: 5 % of plain SGD's loss, one "
        "epoch, two points of share) or cannot tell."
    )
    body = "\n".join([
        "<h1>What momentum does</h1>",
        f'<p class="lead">{_e(lead)}</p>',
        '<p><a href="index.html">All studies</a> &middot; '
        f'<a href="{_e(JSON)}">the numbers (momentum.json)</a></p>',
        "<h2>The answers</h2>",
        _verdict_table(measured, tests, fits) if measured
        else '<p class="note">No confirmed study searched momentum.</p>',
        *sections,
    ])
    page = root / MOMENTUM_PAGE
    files.write_text(page, _page("What momentum does: momentum-sweep", body))
    numbers = {
        "alpha": claims.ALPHA,
        "interval": INTERVAL_METHOD,
        "tests": [t.to_dict() for t in tests],
        "studies": {},
    }
    for m in measured:
        name, spec = m.study.name, m.study.spec
        fit = fits.get(_setup(spec))
        numbers["studies"][name] = {
            "rule": spec.rule,
            "data": spec.data.describe(),
            "compared": {"learning_rate": m.pick["learning_rate"],
                         "momentum": m.pick["momentum"], "is_answer": m.is_answer,
                         "race_mean": m.pick["value"]["mean"], "networks": m.pick["networks"]},
            "matched": _with_verdicts(m.matched, _tests_of(tests, name, "matched"))
            if m.matched else None,
            "tuned": _with_verdicts(m.tuned, _tests_of(tests, name, "tuned"))
            if m.tuned else None,
            "fading": ({"early": m.fading.early, "late": m.fading.late,
                        **_tests_of(tests, name, "fading")[0].to_dict()}
                       if m.fading else None),
            "stability": [b.to_dict() for b in boundaries[_setup(spec)][1]]
            if _setup(spec) in boundaries else [],
            "stability_fit": {"verdict": fit.verdict, "sentence": fit.sentence} if fit else None,
            "free_momentum": claims.free_momentum(m.study.confirmation),
        }
    files.write_text(root / JSON, json.dumps(_json(numbers), indent=1, allow_nan=False) + "\n")
    return page
