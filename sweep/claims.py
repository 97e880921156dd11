"""What momentum does: the momentum page's questions, answered as verdicts with intervals.

Pure: measured records in (:mod:`sweep.effects`' comparisons, :mod:`sweep.stability`'s
boundaries, a study's confirmation), verdicts and sentences out. The questions, per study:

1. **Is momentum more than a larger learning rate?** The answer against plain SGD at the rule's
   matched effective learning rate, paired on the networks that confirmed the answer: the
   objective, epochs to the target loss and the lowest validation loss (the article's "moves
   you faster" is a claim about speed, and a larger learning rate is also faster).
2. **Does tuned momentum beat tuned plain SGD?** Each with its learning rate tuned over the same
   learning rates (equal selection budgets), chosen and compared on different networks.
3. **Where does training blow up, and which prediction says where?** The measured blow-up
   learning rate per momentum beside the effective-step rule and the rule's linear-stability
   bound (:mod:`sweep.stability`'s sentence).
4. **Is the momentum factor free?** The momenta among the settings the confirmation race could
   not separate.

Every p-value of questions 1 and 2 on the page goes into one Holm step
(:func:`sweep.stats.holm`), and each verdict uses the adjusted result: "effect" (rejected),
"none detected" (the interval lies within the practical margin: 5 % of plain SGD's mean loss,
1 epoch) or "cannot tell". A sentence says what was measured and never a cause that was not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .stats import EPOCHS_MARGIN, LOSS_MARGIN_FRACTION, holm, verdict

ALPHA = 0.05
# The measures each comparison reports, in the page's order, with their names in sentences.
MEASURES = {
    "objective": "the study's objective",
    "epochs": "epochs to the target loss",
    "lowest_loss": "the lowest validation loss",
}
# What the fading question measures, and the margin of a share that matters.
SHARE = "momentum_share"
SHARE_MARGIN = 0.02


@dataclass(frozen=True)
class Test:
    """One paired difference on the page, with its Holm-adjusted verdict."""

    study: str
    question: str  # "matched" or "tuned"
    measure: str  # a key of MEASURES
    estimate: float
    low: float
    high: float
    networks: int
    p_value: float
    adjusted_p_value: float
    verdict: str  # "effect", "none detected" or "cannot tell"
    margin: float  # the practical margin the verdict used

    def to_dict(self) -> dict:
        return {key: _json(getattr(self, key)) if isinstance(getattr(self, key), float)
                else getattr(self, key) for key in self.__dataclass_fields__}


def _json(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def margin(measure: str, baseline: float) -> float:
    """The practical margin of a difference: ``EPOCHS_MARGIN`` for epochs, ``SHARE_MARGIN`` for
    a share of the update, else ``LOSS_MARGIN_FRACTION`` of plain SGD's mean (a tiny positive
    one when that is unknown)."""
    if measure == "epochs":
        return EPOCHS_MARGIN
    if measure == SHARE:
        return SHARE_MARGIN
    return LOSS_MARGIN_FRACTION * baseline if baseline and math.isfinite(baseline) else 1e-12


def page_tests(comparisons: dict) -> list[tuple[str, str, str, object]]:
    """(study, question, measure, Difference) of every comparison's measures.

    comparisons: {(study, question): sweep.effects.Comparison}."""
    return [(study, question, measure, comparison.differences[measure])
            for (study, question), comparison in comparisons.items() for measure in MEASURES]


def adjusted_tests(entries) -> list[Test]:
    """Every test of the page with its verdict after one Holm step over all of them.

    entries: (study, question, measure, difference) with ``difference.interval``,
    ``.p_value`` and ``.baseline`` (a ``sweep.effects.Difference``). A test without a p-value
    (too few networks) takes no part in the step and is "cannot tell".
    """
    entries = list(entries)
    tested = [i for i, entry in enumerate(entries) if math.isfinite(entry[3].p_value)]
    adjusted, rejected = holm([entries[i][3].p_value for i in tested], ALPHA) if tested \
        else ([], [])
    results = {i: (float(a), bool(r)) for i, a, r in zip(tested, adjusted, rejected)}
    tests = []
    for i, (study, question, measure, difference) in enumerate(entries):
        adjusted_p, reject = results.get(i, (math.nan, False))
        interval = difference.interval
        practical = margin(measure, difference.baseline)
        tests.append(Test(
            study, question, measure, interval.mean, interval.low, interval.high, interval.n,
            difference.p_value, adjusted_p,
            verdict(interval, practical, rejected=reject) if i in results else "cannot tell",
            practical))
    return tests


def _figure(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def difference_text(test: Test) -> str:
    """'+0.0003 (-0.001 to 0.002), 40 networks'."""
    unit = " epochs" if test.measure == "epochs" else ""
    return (f"{test.estimate:+.3g}{unit} ({_figure(test.low)} to {_figure(test.high)}), "
            f"{test.networks} networks")


def verdict_sentence(test: Test) -> str:
    """One sentence for one test, its words chosen by its verdict: an effect says which side
    is lower; none detected says no difference was detected, with the interval; cannot tell
    says so. Momentum minus plain SGD: lower is better for every measure."""
    if test.measure == SHARE:
        return fading_sentence(test)
    what = MEASURES[test.measure]
    if test.verdict == "effect":
        side = "lower" if test.estimate < 0 else "higher"
        return (f"Momentum's {what} was {side} than plain SGD's: {difference_text(test)} "
                f"(adjusted p = {test.adjusted_p_value:.2g}).")
    if test.verdict == "none detected":
        return (f"No difference that matters detected in {what}: {difference_text(test)}, the "
                f"whole interval within +-{test.margin:.2g}.")
    return (f"Cannot tell for {what}: {difference_text(test)}; too few networks or too much "
            "spread to say.")


def summary(tests: list[Test]) -> str:
    """The question's answer in one sentence, from its tests' verdicts."""
    verdicts = {t.measure: t.verdict for t in tests}
    question = tests[0].question if tests else "matched"
    effects = [t for t in tests if t.verdict == "effect"]
    if not tests:
        return "Not measured."
    if question == "matched":
        if all(v == "none detected" for v in verdicts.values()):
            return ("No: at the matched effective learning rate momentum trained as plain SGD "
                    "does, within the margins.")
        if effects:
            better = [MEASURES[t.measure] for t in effects if t.estimate < 0]
            worse = [MEASURES[t.measure] for t in effects if t.estimate > 0]
            parts = []
            if better:
                parts.append(f"better in {' and '.join(better)}")
            if worse:
                parts.append(f"worse in {' and '.join(worse)}")
            return ("Yes: against plain SGD at the matched effective learning rate momentum was "
                    + "; ".join(parts) + ".")
        return "Cannot tell: the comparison leaves room for an effect in either direction."
    if effects:
        better = [MEASURES[t.measure] for t in effects if t.estimate < 0]
        worse = [MEASURES[t.measure] for t in effects if t.estimate > 0]
        parts = []
        if better:
            parts.append(f"tuned momentum was better in {' and '.join(better)}")
        if worse:
            parts.append(f"worse in {' and '.join(worse)}")
        return "; ".join(parts).capitalize() + "."
    if all(v == "none detected" for v in verdicts.values()):
        return "No difference detected between tuned momentum and tuned plain SGD."
    return "Cannot tell between tuned momentum and tuned plain SGD."


def verdict_phrase(tests: list[Test]) -> str:
    """The verdict table's words for a question, with the direction of an effect: for a
    comparison "momentum better", "momentum worse" or "mixed"; for fading "fades" or "grows";
    else "no difference that matters", "cannot tell" or "not measured"."""
    word = verdict_word(tests)
    if word != "effect":
        return {"none detected": "no difference that matters"}.get(word, word)
    signs = {t.estimate < 0 for t in tests if t.verdict == "effect"}
    if tests[0].question == "fading":
        return "fades" if signs == {True} else "grows"
    if len(signs) > 1:
        return "mixed: better in one measure, worse in another"
    return "momentum better" if signs == {True} else "momentum worse"


def verdict_word(tests: list[Test]) -> str:
    """The verdict table's cell for a question: effect / none detected / cannot tell, from the
    question's tests (an effect in any measure is an effect)."""
    if not tests:
        return "not measured"
    if any(t.verdict == "effect" for t in tests):
        return "effect"
    if all(t.verdict == "none detected" for t in tests):
        return "none detected"
    return "cannot tell"


def free_momentum(confirmation: dict | None) -> str:
    """Question 4 from the race: the momenta of the settings it could not separate."""
    if not confirmation or not confirmation.get("candidates"):
        return "Not confirmed yet: no race to read."
    survivors = [c for c in confirmation["candidates"]
                 if c["trial"] in set(confirmation.get("survivors") or [])]
    if len(survivors) < 2:
        return ("The race separated its candidates: one setting was left, so momentum is not "
                "free among them.")
    momenta = [c["momentum"] for c in survivors]
    rates = [c["effective_rate"] for c in survivors]
    return (f"{len(survivors)} settings the race could not separate had momentum from "
            f"{min(momenta):.2g} to {max(momenta):.2g}, at effective learning rates from "
            f"{min(rates):.3g} to {max(rates):.3g}: within that band momentum is free once the "
            "effective learning rate is set.")


def fading_sentence(test: Test) -> str:
    """The fading question's sentence: late minus early share of each update that is the
    momentum term (the median weight's), over paired networks."""
    text = (f"{test.estimate:+.3g} ({_figure(test.low)} to {_figure(test.high)}), "
            f"{test.networks} networks")
    if test.verdict == "effect":
        way = "smaller" if test.estimate < 0 else "larger"
        return (f"The momentum term's share of each update was {way} in the last tenth of "
                f"training than in the first: {text} (adjusted p = "
                f"{test.adjusted_p_value:.2g}).")
    if test.verdict == "none detected":
        return f"The momentum term's share of each update did not change detectably: {text}."
    return f"Cannot tell whether the momentum term's share of each update fades: {text}."
