"""The momentum page's verdicts on hand-built numbers: one Holm step over the page's tests,
the sentences for an effect, for none detected and for cannot tell, and the free-momentum
reading of a race."""

import math

import pytest

from sweep import claims
from sweep.effects import Difference
from sweep.stats import Interval


def difference(estimate, low, high, p_value, baseline=0.1, n=40, measure="objective"):
    return Difference(measure, Interval(estimate, low, high, n), p_value, baseline)


def test_one_holm_step_over_the_pages_tests_on_known_p_values():
    # Holm at 0.05 over 0.01, 0.04, 0.03, 0.005: sorted 0.005, 0.01, 0.03, 0.04 against
    # 0.05/4, 0.05/3, 0.05/2, 0.05/1 -> 0.0125 yes, 0.0167 yes, 0.025 no (stop).
    entries = [("a", "matched", "objective", difference(-0.02, -0.03, -0.01, 0.01)),
               ("a", "matched", "epochs", difference(-2, -3, -1, 0.04, measure="epochs")),
               ("b", "matched", "objective", difference(-0.02, -0.03, -0.01, 0.03)),
               ("b", "tuned", "objective", difference(-0.02, -0.03, -0.01, 0.005))]
    tests = claims.adjusted_tests(entries)
    assert [t.adjusted_p_value for t in tests] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [t.verdict for t in tests] == ["effect", "cannot tell", "cannot tell", "effect"]


def test_a_test_without_a_p_value_takes_no_part_and_cannot_tell():
    entries = [("a", "matched", "objective", difference(-0.02, -0.03, -0.01, 0.001)),
               ("a", "matched", "lowest_loss",
                Difference("lowest_loss", Interval(math.nan, math.nan, math.nan, 1), math.nan,
                           math.nan))]
    first, second = claims.adjusted_tests(entries)
    assert first.adjusted_p_value == pytest.approx(0.001) and first.verdict == "effect"
    assert second.verdict == "cannot tell" and math.isnan(second.adjusted_p_value)


def test_sentences_for_effect_none_detected_and_cannot_tell():
    entries = [
        ("a", "matched", "objective", difference(-0.019, -0.029, -0.009, 1e-5, baseline=0.3)),
        ("a", "matched", "epochs", difference(0.1, -0.1, 0.2, 0.4, baseline=20,
                                              measure="epochs")),
        ("a", "matched", "lowest_loss", difference(0.01, -0.05, 0.07, 0.7, baseline=0.3,
                                                   measure="lowest_loss")),
    ]
    effect, none, unknown = claims.adjusted_tests(entries)
    assert (effect.verdict, none.verdict, unknown.verdict) == (
        "effect", "none detected", "cannot tell")
    assert claims.verdict_sentence(effect).startswith("Momentum's the study's objective was lower")
    assert "-0.029 to -0.009" in claims.verdict_sentence(effect)
    assert claims.verdict_sentence(none).startswith("No difference that matters detected in "
                                                    "epochs")
    assert "within +-1" in claims.verdict_sentence(none)
    assert "-0.1 to 0.2" in claims.verdict_sentence(none)
    assert claims.verdict_sentence(unknown).startswith("Cannot tell for the lowest validation")
    # The question's summary: one effect makes it an effect, with its direction.
    assert claims.summary([effect, none, unknown]).startswith("Yes: against plain SGD at the "
                                                              "matched effective learning rate")
    assert claims.verdict_word([effect, none, unknown]) == "effect"
    assert claims.summary([none]).startswith("No: at the matched effective learning rate")
    assert claims.verdict_word([none]) == "none detected"
    assert claims.verdict_word([unknown, none]) == "cannot tell"
    assert claims.verdict_phrase([effect, none]) == "momentum better"
    assert claims.verdict_phrase([none]) == "no difference that matters"


def test_margins_scale_with_plain_sgds_loss_and_are_an_epoch_for_epochs():
    assert claims.margin("objective", 0.2) == pytest.approx(0.01)
    assert claims.margin("epochs", 30.0) == 1.0
    # 0.005 of a 0.2 loss is inside the 5 % margin: none detected, not cannot tell.
    (test,) = claims.adjusted_tests([("a", "tuned", "objective",
                                      difference(0.001, -0.005, 0.007, 0.6, baseline=0.2))])
    assert test.verdict == "none detected"


def test_the_fading_sentence_says_what_was_measured_and_no_cause():
    (test,) = claims.adjusted_tests(
        [("a", "fading", claims.SHARE, difference(-0.2, -0.25, -0.15, 1e-6, baseline=0.45,
                                                  measure=claims.SHARE))])
    sentence = claims.verdict_sentence(test)
    assert "smaller in the last tenth of training" in sentence and "because" not in sentence


def test_free_momentum_reads_the_races_equivalent_set():
    confirmation = {"survivors": [1, 2, 3], "candidates": [
        {"trial": 1, "momentum": 0.0, "effective_rate": 0.01},
        {"trial": 2, "momentum": 0.7, "effective_rate": 0.012},
        {"trial": 3, "momentum": 0.4, "effective_rate": 0.011},
        {"trial": 4, "momentum": 0.9, "effective_rate": 0.2}]}
    sentence = claims.free_momentum(confirmation)
    assert "3 settings" in sentence and "from 0 to 0.7" in sentence
    assert "separated" in claims.free_momentum({"survivors": [1], "candidates": [
        {"trial": 1, "momentum": 0.5, "effective_rate": 0.1}]})
    assert "Not confirmed" in claims.free_momentum(None)


def test_a_detected_difference_too_small_to_matter_is_none_detected():
    # Forty networks can detect a 0.0001 difference in a 0.1 loss; it is still none that matters.
    (test,) = claims.adjusted_tests([("a", "matched", "objective",
                                      difference(0.0001, 0.00005, 0.00015, 1e-9))])
    assert test.verdict == "none detected" and test.adjusted_p_value < 0.05
