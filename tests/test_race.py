"""The confirmation race on synthetic measurements drawn from known distributions: what it
drops, what it keeps, what it picks, when it stops, and that it spends no more than its budget."""

import json
import math

import numpy as np
import pytest

from sweep.race import (
    DROPPED_FAILURE,
    DROPPED_WORSE,
    STOP_ALL_FAILED,
    STOP_BUDGET,
    STOP_ONE_LEFT,
    STOP_UNCHANGED,
    Candidate,
    equivalent_sentence,
    run_race,
)
from sweep.stats import holm, mean_interval


class Synthetic:
    """A ``measure`` with known distributions, paired like real networks.

    Network j of the race has one effect shared by every candidate (what its fold and seed do
    to any setting: right-skewed, as real losses are) and candidate i adds ``means[i]`` and its
    own noise. A value depends only on (seed, i, j), never on who else is racing, as a real
    network's does only on its setting, seed and fold. ``failures`` maps (i, j) to the value
    that failed network reports (NaN for a blow-up). Calls are logged.
    """

    def __init__(self, means, noise=0.01, shared=0.05, seed=0, failures=None):
        self.means = list(means)
        self.noise = noise
        self.shared = shared
        self.seed = seed
        self.failures = dict(failures or {})
        self.calls = []
        self.asked = set()  # (candidate, network) pairs measured

    def value(self, i, j):
        shared = self.shared * np.random.default_rng([self.seed, j]).lognormal(0, 0.6)
        own = self.noise * np.random.default_rng([self.seed, j, i + 1]).standard_normal()
        return shared + self.means[i] + own

    def __call__(self, alive, first_network, networks):
        self.calls.append((tuple(alive), first_network, networks))
        span = range(first_network, first_network + networks)
        asked = {(i, j) for i in alive for j in span}
        assert not asked & self.asked, "a network was asked for twice"
        self.asked |= asked
        values = np.array([[self.value(i, j) for j in span] for i in alive])
        failed = np.array([[(i, j) in self.failures for j in span] for i in alive], dtype=bool)
        for row, i in enumerate(alive):
            for col, j in enumerate(span):
                if (i, j) in self.failures:
                    values[row, col] = self.failures[(i, j)]
        return values, failed


def candidates(effective_rates):
    return [Candidate(key=100 + i, learning_rate=rate / 1.5, momentum=0.5, effective_rate=rate)
            for i, rate in enumerate(effective_rates)]


def test_a_clearly_worse_candidate_is_dropped_and_equal_ones_kept():
    measure = Synthetic([0.10, 0.10, 0.10, 0.13])
    result = run_race(candidates([0.01, 0.02, 0.03, 0.04]), measure)
    worse = result.outcome(103)
    assert worse.dropped_by == DROPPED_WORSE and worse.dropped_round == 0
    assert worse.drop_p_value <= 0.05
    assert set(result.survivors) == {100, 101, 102}
    assert result.pick.candidate.key in result.survivors


def test_every_pair_is_tested_and_the_drop_p_value_is_holms_adjusted_one():
    result = run_race(candidates([0.01, 0.02, 0.03, 0.04]), Synthetic([0.10, 0.10, 0.10, 0.13]))
    first = result.rounds[0]
    assert len(first.tests) == 6  # four candidates, every pair once
    adjusted, rejected = holm([t.p_value for t in first.tests])
    assert [t.adjusted_p_value for t in first.tests] == pytest.approx(adjusted)
    assert [t.rejected for t in first.tests] == rejected.tolist()
    against_103 = [t for t in first.tests if t.worse == 103 and t.rejected]
    assert against_103 and first.dropped_worse == (103,)
    assert result.outcome(103).drop_p_value == min(t.adjusted_p_value for t in against_103)


def test_a_candidate_with_one_blown_up_network_is_never_picked():
    # Candidate 0 is best on every network but one, which blows up (NaN) in round 1.
    measure = Synthetic([0.08, 0.10, 0.10], failures={(0, 13): math.nan})
    result = run_race(candidates([0.01, 0.02, 0.03]), measure)
    best = result.outcome(100)
    assert best.dropped_by == DROPPED_FAILURE and best.dropped_round == 1
    assert best.failed_networks == (13,) and math.isnan(best.mean)
    assert result.pick.candidate.key != 100 and 100 not in result.survivors
    assert result.pick.failures == 0


def test_those_dropped_only_for_losing_to_a_setting_that_then_fails_come_back():
    # Candidate 0 beats the others clearly in round 0, then blows up in round 1: the two it
    # knocked out return, catch up on the networks they missed, and one of them is picked.
    measure = Synthetic([0.05, 0.10, 0.10], failures={(0, 13): math.nan})
    result = run_race(candidates([0.01, 0.02, 0.03]), measure)
    first, second = result.rounds[:2]
    assert first.dropped_worse == (101, 102)
    assert second.dropped_failed == (100,) and second.revived == (101, 102)
    assert measure.calls[:3] == [((0, 1, 2), 0, 10), ((0,), 10, 10), ((1, 2), 10, 10)]
    assert result.pick.candidate.key in (101, 102) and result.pick.networks >= 20
    assert result.outcome(101).dropped_by is None and result.outcome(102).dropped_by is None


def test_one_that_lost_to_a_setting_still_racing_stays_out():
    # 2 is worse than both 0 and 1; when 0 fails, 1 still stands, so 2 stays dropped.
    measure = Synthetic([0.05, 0.07, 0.12], noise=0.002, failures={(0, 13): math.nan})
    result = run_race(candidates([0.01, 0.02, 0.03]), measure)
    assert {t.better for t in result.rounds[0].tests if t.worse == 102 and t.rejected} == {100, 101}
    assert 102 not in result.rounds[1].revived and result.outcome(102).dropped_by == DROPPED_WORSE


def test_a_network_worse_than_chance_is_a_failure_even_with_a_finite_value():
    # The caller flags a network that ended above ln(k); its value (here a small one, to show
    # the flag alone decides) does not rescue the setting.
    measure = Synthetic([0.05, 0.10], failures={(0, 2): 0.01})
    result = run_race(candidates([0.01, 0.02]), measure)
    assert result.outcome(100).dropped_by == DROPPED_FAILURE
    assert result.outcome(100).values[2] == 0.01  # the value is kept as measured
    assert result.pick.candidate.key == 101


def test_when_every_candidate_fails_there_is_no_pick():
    measure = Synthetic([0.1, 0.1], failures={(0, 1): math.nan, (1, 12): math.nan})
    result = run_race(candidates([0.01, 0.02]), measure)
    assert result.pick is None and result.stop == STOP_ALL_FAILED and result.survivors == ()
    assert result.equivalent_sentence() == "no setting is left: every candidate failed"


def test_the_safety_rule_picks_the_lowest_effective_rate_among_equals():
    measure = Synthetic([0.10, 0.10, 0.10])
    result = run_race(candidates([0.03, 0.01, 0.02]), measure)
    assert set(result.survivors) == set(result.within_one_se) == {100, 101, 102}
    assert result.pick.candidate.effective_rate == 0.01
    means = {k: result.outcome(k).mean for k in result.survivors}
    assert means[101] > min(means.values())  # not the lowest mean: the safest of the equals


class Table:
    """A ``measure`` that hands out fixed rows: row i of ``table`` is candidate i's networks."""

    def __init__(self, table):
        self.table = np.asarray(table, dtype=float)

    def __call__(self, alive, first_network, networks):
        span = slice(first_network, first_network + networks)
        values = self.table[list(alive), span]
        return values, np.zeros(values.shape, dtype=bool)


def test_the_safety_rule_does_not_take_a_survivor_beyond_one_standard_error():
    # Candidate 0 (the lowest effective rate) swings by +-0.02 from network to network, so no
    # test can tell its mean 0.1015 from candidate 1's 0.1000; but candidate 1's own figure is
    # known to +-0.0001 (one standard error), and 0.1015 is beyond it: candidate 1 is picked.
    swing = np.tile([0.02, -0.02], 20)
    steady = np.tile([0.0005, -0.0005], 20)
    result = run_race(candidates([0.01, 0.02]), Table([0.1015 + swing, 0.100 + steady]))
    assert set(result.survivors) == {100, 101}
    best = result.outcome(101)
    se = np.std(best.values, ddof=1) / math.sqrt(best.networks)
    assert best.mean + se < result.outcome(100).mean
    assert result.within_one_se == (101,) and result.pick.candidate.key == 101


def test_the_pick_comes_from_the_race_values_only():
    # The caller lists its favourite first (say the search's best, with a flattering figure of
    # its own); on the race's networks it is worse and it is dropped. The order of the list
    # does not change the pick, and the pick's figures are its race values'.
    rates = [0.01, 0.02, 0.03, 0.04]
    means = [0.14, 0.10, 0.10, 0.11]
    result = run_race(candidates(rates), Synthetic(means, seed=5))
    assert result.outcome(100).dropped_by == DROPPED_WORSE
    assert result.pick.candidate.key != 100
    reordered = list(reversed(candidates(rates)))
    means_reordered = list(reversed(means))
    again = run_race(reordered, Synthetic(means_reordered, seed=5))
    assert again.pick.candidate.key == result.pick.candidate.key
    picked = result.outcome(result.pick.candidate.key)
    assert result.pick.value == mean_interval(picked.values)
    assert result.pick.networks == picked.networks == len(picked.values)


def test_it_stops_when_one_remains_after_the_minimum():
    measure = Synthetic([0.10, 0.20])
    result = run_race(candidates([0.01, 0.02]), measure)
    assert result.stop == STOP_ONE_LEFT
    # Dropped in round 0 at 10 networks; the survivor raced alone up to the minimum of 20.
    assert measure.calls == [((0, 1), 0, 10), ((0,), 10, 10)]
    assert result.pick.networks == 20 and result.outcome(101).networks == 10


def test_it_stops_when_the_set_stops_changing():
    measure = Synthetic([0.10, 0.10, 0.10])
    result = run_race(candidates([0.01, 0.02, 0.03]), measure)
    assert result.stop == STOP_UNCHANGED
    assert [r.total_networks for r in result.rounds] == [10, 20]
    assert result.networks_trained == 60


def test_it_stops_at_the_budget_and_cuts_the_last_round_to_fit():
    # A failure in each of rounds 1, 2 and 3 keeps the set changing until the budget.
    failures = {(2, 12): math.nan, (3, 22): math.nan, (4, 31): math.nan}
    measure = Synthetic([0.10] * 5, failures=failures)
    result = run_race(candidates([0.01, 0.02, 0.03, 0.04, 0.05]), measure, max_networks=35)
    assert result.stop == STOP_BUDGET
    assert [call[2] for call in measure.calls] == [10, 10, 10, 5]
    assert max(o.networks for o in result.outcomes) == 35
    assert result.pick.networks == 35 and set(result.survivors) == {100, 101}


def test_the_same_inputs_give_the_same_result():
    def race():
        measure = Synthetic([0.10, 0.105, 0.11, 0.10, 0.12], seed=7)
        return run_race(candidates([0.05, 0.04, 0.03, 0.02, 0.01]), measure).to_dict()

    assert race() == race()


@pytest.mark.parametrize("seed", range(12))
def test_budgets_and_the_minimum_are_respected(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 8))
    first_round = int(rng.choice([2, 5, 10]))
    round_size = int(rng.choice([1, 5, 10]))
    min_failure_free = int(rng.choice([5, 20]))
    max_networks = max(first_round, min_failure_free) + int(rng.choice([0, 3, 20]))
    means = 0.1 + rng.choice([0.0, 0.005, 0.05], size=k)
    failures = {(int(rng.integers(k)), int(rng.integers(max_networks))): math.nan
                for _ in range(int(rng.integers(0, 3)))}
    measure = Synthetic(means, seed=seed, failures=failures)
    result = run_race(candidates(rng.uniform(0.01, 0.1, k)), measure,
                      first_round=first_round, round_size=round_size,
                      max_networks=max_networks, min_failure_free=min_failure_free)
    assert max(j for _, j in measure.asked) < max_networks
    assert all(o.networks <= max_networks for o in result.outcomes)
    assert result.networks_trained == len(measure.asked)
    if result.pick is not None:
        picked = result.outcome(result.pick.candidate.key)
        assert picked.failures == 0 and picked.networks >= min_failure_free
        assert result.pick.candidate.key in result.survivors


def test_equal_candidates_are_seldom_dropped_and_a_worse_one_usually_is():
    # 100 races of four equal candidates and one 15 % worse, with real-looking spread.
    wrongly_dropped, worse_dropped = 0, 0
    for seed in range(100):
        measure = Synthetic([0.10, 0.10, 0.10, 0.10, 0.115], noise=0.01, seed=seed)
        result = run_race(candidates([0.01, 0.02, 0.03, 0.04, 0.05]), measure)
        wrongly_dropped += any(result.outcome(k).dropped_by for k in (100, 101, 102, 103))
        worse_dropped += result.outcome(104).dropped_by == DROPPED_WORSE
    assert wrongly_dropped <= 15
    assert worse_dropped >= 80


def test_the_result_is_json_and_says_what_it_found():
    measure = Synthetic([0.10, 0.10, 0.20], failures={(1, 3): math.nan})
    result = run_race(candidates([0.01, 0.02, 0.03]), measure)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["pick"]["key"] == 100 and data["pick"]["failures"] == 0
    assert data["pick"]["failure_rate_upper"] == pytest.approx(1 - 0.05 ** (1 / 20))
    assert data["pick"]["value"]["n"] == 20
    row = {o["key"]: o for o in data["outcomes"]}
    assert row[101]["dropped_by"] == "failure" and row[101]["values"][3] is None
    assert row[102]["dropped_by"] == "worse" and row[102]["values"][10] is None
    assert data["stop"] == STOP_ONE_LEFT and data["settings"]["max_networks"] == 40
    assert data["rounds"][0]["tests"][0]["worse"] == 102


def test_the_equivalent_set_reads_as_ranges():
    found = [
        Candidate(1, 0.00812, 0.0, 0.00812),
        Candidate(2, 0.0301, 0.7, 0.05117),
        Candidate(3, 0.0155, 0.35, 0.020925),
    ]
    assert equivalent_sentence(found) == (
        "learning rate 0.00812\u20130.0301 with momentum 0\u20130.7 are equivalent here "
        "(3 settings, effective learning rate 0.00812\u20130.0512)"
    )
    assert equivalent_sentence(found[:1]) == (
        "learning rate 0.00812 with momentum 0 is the only setting left; "
        "no other is equivalent here"
    )
    same_momentum = [Candidate(1, 0.01, 0.5, 0.015), Candidate(2, 0.02, 0.5, 0.03)]
    assert "with momentum 0.5 are" in equivalent_sentence(same_momentum)


def test_bad_arguments_and_a_bad_measure_are_refused():
    with pytest.raises(ValueError, match="at least one candidate"):
        run_race([], Synthetic([]))
    with pytest.raises(ValueError, match="unique"):
        run_race([Candidate(1, 0.1, 0, 0.1), Candidate(1, 0.2, 0, 0.2)], Synthetic([0.1, 0.1]))
    with pytest.raises(ValueError, match="max_networks"):
        run_race(candidates([0.01]), Synthetic([0.1]), max_networks=15)
    with pytest.raises(ValueError, match="first_round"):
        run_race(candidates([0.01]), Synthetic([0.1]), first_round=1)

    def short(alive, round_index, networks):
        return np.zeros((len(alive), networks - 1)), np.zeros((len(alive), networks - 1), bool)

    with pytest.raises(ValueError, match="expected"):
        run_race(candidates([0.01, 0.02]), short)
