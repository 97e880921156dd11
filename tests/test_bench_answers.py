"""`python -m sweep.bench_answers`: its data sets are what the criterion asks for, its fresh
networks are ones the race never trains, its grid spans the study's ranges, and its quick mode
runs end to end."""

import math

import numpy as np
import pytest

import sweep.bench_answers as bench_answers
from sweep.confirm import MAX_PICK_NETWORKS, race_network
from sweep.spec import load_study


def test_the_data_sets_are_the_criterions_size_and_the_same_on_every_run(tmp_path):
    for name in bench_answers.DATA_SETS:
        study = bench_answers.write_study(tmp_path, name, trials=200)
        first = (tmp_path / f"{name}.csv").read_bytes()
        bench_answers.write_study(tmp_path, name, trials=200)
        assert (tmp_path / f"{name}.csv").read_bytes() == first
        rows = first.decode().splitlines()[1:]
        assert 150 <= len(rows) <= 2000
        # The study file is the README's minimal one: nothing but name, trials and [data].
        spec = load_study(study)
        assert (spec.folds, spec.repeats, spec.sampler) == (5, 2, "tpe")


def test_fresh_networks_share_no_partition_or_seed_with_the_race(tmp_path):
    spec = load_study(bench_answers.write_study(tmp_path, "noisy", trials=200))
    # The confirmation trains race networks 0 .. MAX_PICK_NETWORKS - 1 at most (the pick's).
    race = [race_network(spec, j) for j in range(MAX_PICK_NETWORKS)]
    first = bench_answers.first_fresh(spec)
    fresh = [race_network(spec, j) for j in range(first, first + bench_answers.FRESH)]
    assert first % spec.folds == 0
    assert not {p for p, _, _ in race} & {p for p, _, _ in fresh}
    assert not {s for _, _, s in race} & {s for _, _, s in fresh}
    assert len({p for p, _, _ in fresh}) == bench_answers.FRESH // spec.folds


def test_the_dense_grid_spans_the_studys_own_ranges(tmp_path):
    spec = load_study(bench_answers.write_study(tmp_path, "noisy", trials=200))
    cells = bench_answers.grid(spec, 24, None)
    rates = sorted({lr for lr, _ in cells})
    momenta = sorted({mu for _, mu in cells})
    assert len(cells) == 24 * 11
    assert rates[0] == spec.learning_rate.low and rates[-1] == spec.learning_rate.high
    assert np.allclose(momenta, [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95])
    assert np.allclose(np.diff(np.log(rates)), math.log(1000) / 23)


@pytest.mark.slow
def test_quick_mode_runs_end_to_end(tmp_path, capsys):
    rows = bench_answers.main(["--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert [row["name"] for row in rows] == list(bench_answers.QUICK_DATA_SETS)
    table = [line for line in out.splitlines()
             if line.split() and line.split()[0] in bench_answers.QUICK_DATA_SETS]
    assert len(table) == len(rows)
    for row in rows:
        spec = load_study(tmp_path / f"{row['name']}.toml")
        lr, mu = row["pick"]
        assert spec.learning_rate.low <= lr <= spec.learning_rate.high
        assert spec.momentum.low <= mu <= spec.momentum.high
        assert row["confirmed"] and row["grid_cells"] == 6 * 4
        assert row["fresh_networks"][0] >= 1000
        assert all(math.isfinite(row[k]) and row[k] >= 0
                   for k in ("reported", "fresh_mean", "grid_mean", "ratio", "report_error"))
    assert f"held (all three conditions) on {sum(map(bench_answers.passes, rows))} of 2" in out
