"""The analysis records behind the plots, on hand-built trials: which trials are picked, where
they sit, and the statistics against hand computation."""

import math

import numpy as np
import pytest

from sweep.analysis import (
    best_trial,
    colour_limits,
    compare_momentum,
    curves,
    edge_warnings,
    epochs_to_target,
    grid_landscape,
    landscape_points,
    records_frames,
    state_counts,
    top_trials,
    tuned_without_momentum,
)
from sweep.records import TrialRecord
from sweep.spec import parse_study


def record(
    number,
    state="complete",
    lr=0.1,
    momentum=0.5,
    value=None,
    val_loss=None,
    baseline=False,
    diverged_epoch=None,
    stopped_epoch=None,
):
    val_loss = np.array([1.0, 0.5, 0.2] if val_loss is None else val_loss, dtype=float)
    if value is None and state == "complete":
        value = float(val_loss[-1])
    return TrialRecord(
        number=number,
        state=state,
        learning_rate=lr,
        momentum=momentum,
        seed=100 + number,
        value=value,
        baseline=baseline,
        diverged_epoch=diverged_epoch,
        stopped_epoch=stopped_epoch,
        train_loss=val_loss * 0.8,
        val_loss=val_loss,
        val_accuracy=np.full(len(val_loss), 0.9),
    )


MIXED = [
    record(0, value=0.30, momentum=0.0, baseline=True),
    record(1, value=0.10),
    record(2, state="pruned", value=0.01, stopped_epoch=2, val_loss=[1.0, 0.01]),
    record(3, state="diverged", value=None, diverged_epoch=2, val_loss=[1.0, np.nan]),
    record(4, state="failed", value=None, val_loss=[]),
    record(5, value=0.20),
    record(6, value=0.10),
    record(7, state="running", value=None, val_loss=[]),
]


# --- picking trials --------------------------------------------------------------------------


def test_best_trial_is_the_lowest_complete_value_ignoring_pruned_diverged_failed():
    best = best_trial(MIXED)
    assert (
        best.number == 1
    )  # pruned trial 2 holds 0.01 but did not complete; 1 and 6 tie: lower number


def test_best_trial_is_none_without_a_completed_trial():
    assert best_trial([r for r in MIXED if r.state != "complete"]) is None
    assert best_trial([]) is None


def test_top_trials_are_the_k_best_complete_in_order():
    assert [r.number for r in top_trials(MIXED, 3)] == [1, 6, 5]
    assert [r.number for r in top_trials(MIXED, 10)] == [1, 6, 5, 0]
    assert top_trials(MIXED, 0) == []


def test_state_counts_count_every_state_including_diverged():
    assert state_counts(MIXED) == {
        "complete": 4,
        "pruned": 1,
        "diverged": 1,
        "failed": 1,
        "running": 1,
    }


def test_epochs_to_target_is_the_first_epoch_at_or_below_the_target():
    assert epochs_to_target(np.array([0.5, 0.3, 0.1, 0.05]), 0.1) == 3
    assert epochs_to_target(np.array([0.5, 0.3]), 0.1) is None
    assert epochs_to_target(np.array([np.nan, 0.05]), 0.1) == 2


# --- tables ----------------------------------------------------------------------------------


def test_records_frames_have_one_row_per_trial_and_one_per_epoch_trained():
    trials, curve_rows = records_frames(MIXED)
    assert list(trials["number"]) == list(range(8))
    assert list(trials.loc[trials.number == 3, "diverged_epoch"]) == [2]
    assert trials.loc[trials.number == 2, "epochs_trained"].item() == 2
    assert trials.loc[trials.number == 1, "final_val_loss"].item() == pytest.approx(0.2)
    assert math.isnan(trials.loc[trials.number == 4, "final_val_loss"].item())
    assert len(curve_rows) == sum(len(r.val_loss) for r in MIXED)
    assert list(curve_rows.columns) == ["number", "epoch", "train_loss", "val_loss", "val_accuracy"]
    assert list(curve_rows[curve_rows.number == 2]["epoch"]) == [1, 2]


def test_records_frames_of_no_trials_are_empty_with_columns():
    trials, curve_rows = records_frames([])
    assert len(trials) == 0 and "value" in trials.columns
    assert len(curve_rows) == 0 and "val_loss" in curve_rows.columns


# --- curves ----------------------------------------------------------------------------------


def test_curves_rank_the_top_complete_trials_and_skip_untrained_ones():
    drawn = {c.number: c for c in curves(MIXED, top=2)}
    assert set(drawn) == {0, 1, 2, 3, 5, 6}  # failed and running trials have no curve
    assert drawn[1].rank == 1 and drawn[6].rank == 2
    assert drawn[5].rank is None and drawn[2].rank is None


def test_a_diverged_curve_ends_at_its_divergence_epoch():
    diverging = record(
        9, state="diverged", value=None, diverged_epoch=3, val_loss=[1.0, 2.0, 40.0, np.nan, np.nan]
    )
    curve = curves([diverging])[0]
    assert list(curve.epochs) == [1, 2, 3]
    assert curve.diverged_epoch == 3 and curve.diverged_loss == 40.0
    # A non-finite loss at the divergence epoch has no height: the plot puts the mark at the top.
    assert curves(MIXED)[3].diverged_loss is None


# --- landscape -------------------------------------------------------------------------------


def test_landscape_points_carry_values_of_complete_trials_only():
    points = {p.number: p for p in landscape_points(MIXED)}
    assert set(points) == {0, 1, 2, 3, 5, 6}
    assert points[1].value == 0.10 and points[2].value is None and points[3].value is None
    assert points[3].state == "diverged"
    assert points[1].log10_learning_rate == pytest.approx(-1)


def test_grid_landscape_puts_each_trial_in_its_cell_and_marks_diverged_cells():
    lrs, momenta = [0.01, 0.1, 1.0], [0.0, 0.5]
    trials = [
        record(0, lr=0.01, momentum=0.0, value=0.4),
        record(1, lr=0.1, momentum=0.5, value=0.2),
        record(
            2, state="diverged", lr=1.0, momentum=0.5, value=None, diverged_epoch=1, val_loss=[9.0]
        ),
        record(3, lr=1.0 + 1e-12, momentum=0.0, value=0.3),  # float noise still lands in its cell
        record(4, lr=0.1, momentum=0.5, value=0.5),  # same cell as trial 1, worse: trial 1 stays
        record(5, lr=30.0, momentum=0.0, value=0.1),  # far outside the grid: left out
    ]
    grid = grid_landscape(trials, lrs, momenta)
    assert grid.value.shape == (2, 3)
    assert grid.trial.tolist() == [[0, -1, 3], [-1, 1, 2]]
    assert grid.value[1, 1] == 0.2 and math.isnan(grid.value[1, 2]) and math.isnan(grid.value[0, 1])
    assert grid.diverged.tolist() == [[False, False, False], [False, False, True]]
    assert grid.state[0, 1] == ""  # no trial there yet
    # Edges are midpoints in log10 learning rate and in momentum, half a step beyond the ends.
    assert grid.log10_learning_rate_edges == pytest.approx([-2.5, -1.5, -0.5, 0.5])
    assert grid.momentum_edges == pytest.approx([0.0, 0.25, 0.75])  # momentum is never below 0


def test_grid_landscape_with_one_fixed_value_has_one_row():
    grid = grid_landscape([record(0, lr=0.1, momentum=0.5, value=0.3)], [0.01, 0.1], [0.5])
    assert grid.value.shape == (1, 2) and grid.trial.tolist() == [[-1, 0]]
    assert grid.momentum_edges == pytest.approx([0.45, 0.55])


def test_colour_limits_come_from_percentiles_so_one_lucky_value_does_not_set_the_scale():
    values = [0.00087] + list(np.linspace(0.1, 0.3, 18)) + [100.0]
    low, high = colour_limits(values)
    assert 0.05 < low < 0.12 and 0.25 < high < 100.0  # neither the lucky nor the far-off value
    assert colour_limits([]) is None and colour_limits([None, float("nan")]) is None
    assert colour_limits([0.2, 0.2]) == (pytest.approx(0.2), pytest.approx(0.22))


# --- momentum against none -------------------------------------------------------------------

FAST = [1.0, 0.3, 0.08, 0.05]  # reaches 0.1 at epoch 3
SLOW = [1.0, 0.6, 0.3, 0.15]  # never reaches 0.1


def plain_sgd_row(first: int, best_loss: list, others: int = 3) -> list:
    """A tuned momentum-0 row: one good learning rate and ``others`` slower ones."""
    rows = [record(first, lr=0.05, momentum=0.0, val_loss=best_loss)]
    rows += [
        record(first + 1 + i, lr=0.001 * (i + 1), momentum=0.0, val_loss=SLOW)
        for i in range(others)
    ]
    return rows


def test_comparison_pairs_the_best_momentum_trial_with_the_best_tuned_momentum_zero_trial():
    trials = [
        *plain_sgd_row(0, [1.0, 0.5, 0.2, 0.12]),
        record(10, momentum=0.9, val_loss=FAST),
        record(11, momentum=0.5, val_loss=[1.0, 0.5, 0.4, 0.3]),
    ]
    pair = compare_momentum("s", trials, 0.1)
    assert pair.momentum.record.number == 10 and pair.momentum.study == "s"
    assert pair.momentum.epochs_to_target == 3 and pair.momentum.final_val_loss == 0.05
    assert pair.no_momentum.record.number == 0 and pair.no_momentum.epochs_to_target is None
    assert pair.momentum.train_epochs_to_target == 3  # train loss is 0.8 x val loss here


def test_comparison_takes_a_tuned_momentum_zero_trial_from_a_comparable_study():
    trials = [
        record(0, momentum=0.0, baseline=True, val_loss=[1.0, 0.4, 0.1, 0.05]),
        record(1, momentum=0.9, val_loss=FAST),
    ]
    plain = plain_sgd_row(7, [1.0, 0.4, 0.12, 0.09])
    pair = compare_momentum("s", trials, 0.1, [("s-no-momentum", plain)])
    # The own baseline is better, but one untuned trial: the tuned study's best is taken.
    assert (pair.no_momentum.study, pair.no_momentum.record.number) == ("s-no-momentum", 7)
    assert pair.no_momentum.epochs_to_target == 4


def test_comparison_refuses_an_untuned_baseline():
    trials = [
        record(0, momentum=0.0, baseline=True, val_loss=SLOW),
        *[record(5 + i, lr=0.01, momentum=0.0, val_loss=SLOW) for i in range(3)],  # one rate
        record(1, momentum=0.9, val_loss=FAST),
    ]
    assert not tuned_without_momentum(trials)
    pair = compare_momentum("s", trials, 0.1)
    assert pair.no_momentum is None and pair.momentum.record.number == 1
    assert tuned_without_momentum(plain_sgd_row(0, FAST))


def test_a_study_without_momentum_trials_borrows_the_momentum_side():
    plain = plain_sgd_row(0, SLOW)
    pair = compare_momentum(
        "plain", plain, 0.1, [("tuned", [record(30, momentum=0.7, val_loss=FAST)])]
    )
    assert (pair.momentum.study, pair.momentum.record.number) == ("tuned", 30)
    assert compare_momentum("plain", plain, 0.1).momentum is None


def test_comparison_without_any_momentum_zero_trial_has_one_side():
    pair = compare_momentum("s", [record(1, momentum=0.9, val_loss=FAST)], 0.1)
    assert pair.no_momentum is None and pair.momentum.record.number == 1
    empty = compare_momentum("s", [], 0.1)
    assert empty.momentum is None and empty.no_momentum is None


@pytest.mark.parametrize(
    "learning_rate, momentum, warned",
    [
        (0.001, 0.5, ["learning rate", "lower edge"]),  # the floor of a log range
        (0.0012, 0.5, ["learning rate", "lower edge"]),  # within 5 % of it on the log scale
        (0.95, 0.5, ["learning rate", "upper edge"]),
        (0.03, 0.94, ["momentum", "upper edge"]),
        (0.03, 0.5, []),  # inside
        (0.03, 0.0, []),  # no momentum is an answer, not an edge
    ],
)
def test_edge_warning_fires_at_a_bound_and_not_inside(learning_rate, momentum, warned):
    spec = parse_study({"name": "s"}, "s.toml")  # lr 1e-3..1 (log), momentum 0..0.95
    warnings = edge_warnings(spec, learning_rate, momentum)
    if warned:
        assert len(warnings) == 1 and all(w in warnings[0] for w in warned)
        assert "widen the range" in warnings[0]
    else:
        assert warnings == []


def test_a_grid_answer_is_at_the_edge_only_at_its_first_or_last_grid_point():
    spec = parse_study({"name": "g", "sampler": {"name": "grid"},
                        "search": {"learning_rate": {"points": 5},
                                   "momentum": {"values": [0.0, 0.5, 0.9, 0.97, 0.99]}}},
                       "g.toml")
    assert edge_warnings(spec, 0.03, 0.97) == []  # 0.97 is inside: 0.98 of the way, not last
    (warning,) = edge_warnings(spec, 0.03, 0.99)
    assert "upper edge of its search grid's values" in warning and "more values" in warning
    (warning,) = edge_warnings(spec, 1.0, 0.5)
    assert "learning rate" in warning and "a larger high" in warning
