"""Tests for sweep.spec: study files load, defaults apply, and every bad input is named."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pytest

from sweep.spec import (
    DataSpec,
    ObjectiveSpec,
    ParamSpec,
    PrunerSpec,
    SpecError,
    StudySpec,
    load_study,
    parse_study,
)

STUDIES = Path(__file__).resolve().parent.parent / "studies"
SHIPPED = sorted(STUDIES.glob("*.toml"))


def write(folder: Path, text: str, name: str = "bad.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------
# Shipped studies


def test_the_four_studies_are_shipped():
    assert {p.name for p in SHIPPED} >= {
        "iris-tpe.toml",
        "iris-grid.toml",
        "iris-no-momentum.toml",
        "synthetic-tpe.toml",
    }


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_study_loads(path):
    spec = load_study(path)
    assert spec.name == path.stem
    assert spec.path == str(path)
    assert spec.description


def test_shipped_studies_say_what_the_brief_says():
    tpe = load_study(STUDIES / "iris-tpe.toml")
    assert (tpe.trials, tpe.batch_size, tpe.epochs, tpe.seed) == (200, 50, 100, 1)
    assert tpe.learning_rate == ParamSpec(low=1e-3, high=1.0, log=True)
    assert tpe.momentum == ParamSpec(low=0.0, high=0.95, log=False)
    assert tpe.sampler == "tpe" and tpe.baseline is True
    assert (tpe.pruner.name, tpe.pruner.warmup_steps, tpe.pruner.interval) == ("median", 10, 5)

    grid = load_study(STUDIES / "iris-grid.toml")
    assert grid.sampler == "grid" and grid.pruner.name == "none"
    assert (grid.trials, grid.batch_size, grid.epochs, grid.seed) == (576, 576, 60, 2)
    assert len(grid.learning_rate.grid()) == len(grid.momentum.grid()) == 24
    assert grid.learning_rate.grid()[0] == 1e-3 and grid.learning_rate.grid()[-1] == 3.0
    assert grid.momentum.grid()[0] == 0.0 and grid.momentum.grid()[-1] == 0.95
    assert grid.baseline is False

    plain = load_study(STUDIES / "iris-no-momentum.toml")
    assert plain.momentum.fixed == 0.0 and list(plain.searched()) == ["learning_rate"]
    assert (plain.trials, plain.batch_size, plain.epochs, plain.seed) == (60, 30, 100, 3)
    assert plain.baseline is False  # momentum fixed: the default baseline is silently off

    synthetic = load_study(STUDIES / "synthetic-tpe.toml")
    assert synthetic.data == DataSpec(
        source="synthetic", items=600, inputs=8, classes=4, noise=0.1, seed=7
    )
    assert synthetic.hidden == 10 and synthetic.pruner.name == "median"
    assert (synthetic.trials, synthetic.batch_size, synthetic.epochs, synthetic.seed) == (
        120, 40, 100, 4,
    )


# --------------------------------------------------------------------------
# Defaults


def test_a_name_alone_gives_every_default():
    spec = parse_study({"name": "x"}, "studies/x.toml")
    assert spec == StudySpec(name="x", path="studies/x.toml")
    assert spec.data == DataSpec()
    assert spec.pruner == PrunerSpec() and spec.objective == ObjectiveSpec()
    assert (spec.hidden, spec.rule, spec.init, spec.epochs) == (7, "seed", "glorot", 100)
    assert (spec.sampler, spec.trials, spec.batch_size, spec.seed) == ("tpe", 100, 64, 0)
    assert spec.baseline is True
    assert set(spec.searched()) == {"learning_rate", "momentum"}


def test_a_partial_table_keeps_the_other_defaults():
    spec = parse_study(
        {"name": "x", "search": {"learning_rate": {"high": 2}}, "pruner": {"name": "median"}},
        "x.toml",
    )
    assert spec.learning_rate == ParamSpec(low=1e-3, high=2.0, log=True)
    assert spec.pruner == PrunerSpec(name="median")


def test_ints_are_accepted_where_floats_are():
    spec = parse_study({"name": "x", "search": {"momentum": {"high": 0}}}, "x.toml")
    assert spec.momentum.high == 0.0 and isinstance(spec.momentum.high, float)


def test_fixed_alone_is_a_fixed_parameter():
    spec = parse_study({"name": "x", "search": {"learning_rate": {"fixed": 0.1}}}, "x.toml")
    assert spec.learning_rate.fixed == 0.1 and spec.learning_rate.grid() == (0.1,)
    assert list(spec.searched()) == ["momentum"]


def test_baseline_silently_off_when_zero_momentum_is_outside_the_range():
    spec = parse_study({"name": "x", "search": {"momentum": {"low": 0.5}}}, "x.toml")
    assert spec.baseline is False
    spec = parse_study({"name": "x", "baseline": False}, "x.toml")
    assert spec.baseline is False


def test_csv_path_is_resolved_against_the_study_folder(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "t.csv").write_text("a,b,y\n1,2,0\n", encoding="utf-8")
    study = write(
        tmp_path,
        'name = "c"\n[data]\nsource = "csv"\npath = "data/t.csv"\ntarget = "y"\n',
        "c.toml",
    )
    spec = load_study(study)
    assert spec.data.path == str((tmp_path / "data" / "t.csv").resolve())
    assert Path(spec.data.path).is_absolute() and spec.data.target == "y"


def test_grid_trials_default_to_the_grid_size_and_may_be_fewer():
    base = {
        "name": "g",
        "sampler": {"name": "grid"},
        "search": {"learning_rate": {"points": 3}, "momentum": {"values": [0.9, 0.0]}},
    }
    assert parse_study(base, "g.toml").trials == 6
    assert parse_study({**base, "trials": 4}, "g.toml").trials == 4
    assert parse_study(base, "g.toml").momentum.values == (0.0, 0.9)


# --------------------------------------------------------------------------
# Bad input: (id, TOML text, dotted key, phrase of the reason)

BAD = [
    ("missing-name", 'description = "no name"', "name", "required"),
    ("empty-name", 'name = ""', "name", "must not be empty"),
    ("long-name", f'name = "{"a" * 65}"', "name", "at most 64 characters"),
    ("slash-name", 'name = "a/b"', "name", "only letters, digits"),
    ("dotdot-name", 'name = "a..b"', "name", "must not contain '..'"),
    ("space-name", 'name = "a b"', "name", "only letters, digits"),
    ("dot-first-name", 'name = ".hidden"', "name", "start with a letter or digit"),
    ("name-not-string", "name = 3", "name", "must be a string"),
    ("unknown-top-key", 'name = "x"\ntrails = 3', "trails", "did you mean 'trials'"),
    ("table-key-at-top", 'name = "x"\nepochs = 3', "epochs", "belongs in [network]"),
    ("unknown-network-key", 'name = "x"\n[network]\nhiden = 3', "network.hiden",
     "allowed: epochs, hidden, init, precision, rule (did you mean 'hidden'?)"),
    ("unknown-param-key", 'name = "x"\n[search.momentum]\nhigh = 0.9\nmax = 1',
     "search.momentum.max", "unknown key"),
    ("unknown-search-param", 'name = "x"\n[search.batch]\nlow = 1', "search.batch", "unknown key"),
    ("table-not-table", 'name = "x"\nnetwork = 3', "network", "must be a table"),
    ("bool-as-int", 'name = "x"\n[network]\nhidden = true', "network.hidden",
     "must be an integer, got boolean"),
    ("float-as-int", 'name = "x"\ntrials = 10.0', "trials", "must be an integer, got float"),
    ("string-as-float", 'name = "x"\n[search.momentum]\nhigh = "0.9"', "search.momentum.high",
     "must be a number, got string"),
    ("string-as-bool", 'name = "x"\nbaseline = "yes"', "baseline", "must be true or false"),
    ("nan-number", 'name = "x"\n[objective]\ntarget_loss = nan', "objective.target_loss",
     "finite"),
    ("lr-low-zero", 'name = "x"\n[search.learning_rate]\nlow = 0.0',
     "search.learning_rate.low", "must be > 0, got 0.0"),
    ("lr-fixed-negative", 'name = "x"\n[search.learning_rate]\nfixed = -1',
     "search.learning_rate.fixed", "must be > 0"),
    ("momentum-high-1.5", 'name = "x"\n[search.momentum]\nhigh = 1.5',
     "search.momentum.high", "must be < 1, got 1.5"),
    ("momentum-low-negative", 'name = "x"\n[search.momentum]\nlow = -0.1',
     "search.momentum.low", "must be >= 0"),
    ("momentum-fixed-1", 'name = "x"\n[search.momentum]\nfixed = 1', "search.momentum.fixed",
     "must be < 1"),
    ("low-above-high", 'name = "x"\n[search.learning_rate]\nlow = 0.5\nhigh = 0.1',
     "search.learning_rate.high", "must be >= low (0.5)"),
    ("low-above-default-high", 'name = "x"\n[search.momentum]\nlow = 0.99',
     "search.momentum.low", "must be <= high (0.95)"),
    ("log-with-zero-low", 'name = "x"\n[search.momentum]\nlog = true', "search.momentum.log",
     "needs low > 0"),
    ("fixed-outside-range", 'name = "x"\n[search.momentum]\nlow = 0.1\nfixed = 0.05',
     "search.momentum.fixed", "must be >= low (0.1), got 0.05"),
    ("fixed-with-points", 'name = "x"\n[sampler]\nname = "grid"\n[search.learning_rate]\n'
     'points = 2\n[search.momentum]\nfixed = 0\npoints = 3', "search.momentum.points",
     "not allowed with fixed"),
    ("grid-value-outside", 'name = "x"\n[sampler]\nname = "grid"\n[search.learning_rate]\n'
     'high = 1.0\nvalues = [0.01, 2.0]\n[search.momentum]\nfixed = 0',
     "search.learning_rate.values[1]", "within [low, high] = [0.001, 1.0], got 2.0"),
    ("grid-value-repeated", 'name = "x"\n[sampler]\nname = "grid"\n[search.learning_rate]\n'
     'values = [0.01, 0.01]\n[search.momentum]\nfixed = 0', "search.learning_rate.values[1]",
     "repeats"),
    ("grid-values-empty", 'name = "x"\n[sampler]\nname = "grid"\n[search.learning_rate]\n'
     'values = []\n[search.momentum]\nfixed = 0', "search.learning_rate.values",
     "must not be empty"),
    ("grid-without-points", 'name = "x"\n[sampler]\nname = "grid"\n[search.learning_rate]\n'
     'points = 4', "search.momentum", "grid sampler needs values or points"),
    ("values-and-points", 'name = "x"\n[sampler]\nname = "grid"\n[search.learning_rate]\n'
     'points = 2\n[search.momentum]\nvalues = [0.0]\npoints = 3', "search.momentum.points",
     "not both"),
    ("points-without-grid", 'name = "x"\n[search.momentum]\npoints = 5',
     "search.momentum.points", "only used by the grid sampler"),
    ("points-one", 'name = "x"\n[sampler]\nname = "grid"\n[search.momentum]\npoints = 1\n'
     '[search.learning_rate]\npoints = 2', "search.momentum.points", "must be >= 2"),
    ("trials-over-grid", 'name = "x"\ntrials = 10\n[sampler]\nname = "grid"\n'
     '[search.learning_rate]\npoints = 3\n[search.momentum]\npoints = 3', "trials",
     "must be <= the grid size 9"),
    ("trials-zero", 'name = "x"\ntrials = 0', "trials", "must be >= 1"),
    ("batch-zero", 'name = "x"\nbatch_size = 0', "batch_size", "must be >= 1"),
    ("negative-seed", 'name = "x"\nseed = -1', "seed", "must be >= 0"),
    ("huge-seed", 'name = "x"\nseed = 4294967296', "seed", "must be <= 4294967295"),
    ("unknown-rule", 'name = "x"\n[network]\nrule = "nesterof"', "network.rule",
     "did you mean 'nesterov'"),
    ("unknown-init", 'name = "x"\n[network]\ninit = "he"', "network.init",
     "must be one of glorot, small-uniform"),
    ("unknown-precision", 'name = "x"\n[network]\nprecision = "float16"', "network.precision",
     "must be one of float64, float32"),
    ("hidden-too-many", 'name = "x"\n[network]\nhidden = 5000', "network.hidden",
     "must be <= 4096"),
    ("epochs-zero", 'name = "x"\n[network]\nepochs = 0', "network.epochs", "must be >= 1"),
    ("unknown-sampler", 'name = "x"\n[sampler]\nname = "cmaes"', "sampler.name",
     "must be one of tpe, optuna-tpe, random, qmc, grid"),
    ("unknown-pruner", 'name = "x"\n[pruner]\nname = "hyperband"', "pruner.name",
     "must be one of none, median"),
    ("unknown-objective", 'name = "x"\n[objective]\nname = "accuracy"', "objective.name",
     "must be one of final_val_loss"),
    ("unknown-source", 'name = "x"\n[data]\nsource = "mnist"', "data.source",
     "must be one of iris, synthetic, csv"),
    ("csv-without-path", 'name = "x"\n[data]\nsource = "csv"\ntarget = "y"', "data.path",
     "required for source = 'csv'"),
    ("csv-without-target", 'name = "x"\n[data]\nsource = "csv"\npath = "bad.toml"',
     "data.target", "required for source = 'csv'"),
    ("csv-file-missing", 'name = "x"\n[data]\nsource = "csv"\npath = "nope.csv"\ntarget = "y"',
     "data.path", "file not found"),
    ("target-with-iris", 'name = "x"\n[data]\ntarget = "y"', "data.target",
     "only used with source = 'csv' (source is 'iris')"),
    ("items-with-csv", 'name = "x"\n[data]\nsource = "csv"\nitems = 10', "data.items",
     "only used with source = 'synthetic'"),
    ("too-few-items", 'name = "x"\n[data]\nsource = "synthetic"\nclasses = 4\nitems = 7',
     "data.items", "must be >= 2 * classes (8)"),
    ("negative-noise", 'name = "x"\n[data]\nsource = "synthetic"\nnoise = -0.1', "data.noise",
     "must be >= 0"),
    ("fraction-one", 'name = "x"\n[data]\nvalidation_fraction = 1.0',
     "data.validation_fraction", "must be in (0, 1)"),
    ("negative-data-seed", 'name = "x"\n[data]\nseed = -3', "data.seed", "must be >= 0"),
    ("baseline-momentum-fixed", 'name = "x"\nbaseline = true\n[search.momentum]\nfixed = 0.5',
     "baseline", "momentum is fixed"),
    ("baseline-zero-outside", 'name = "x"\nbaseline = true\n[search.momentum]\nlow = 0.3',
     "baseline", "0 is outside it"),
    ("percentile-100", 'name = "x"\n[pruner]\nname = "percentile"\npercentile = 100',
     "pruner.percentile", "must be in (0, 100)"),
    ("threshold-zero", 'name = "x"\n[pruner]\nname = "threshold"\nthreshold = 0',
     "pruner.threshold", "must be > 0"),
    ("pruner-key-for-other-pruner", 'name = "x"\n[pruner]\nname = "median"\nthreshold = 3.0',
     "pruner.threshold", "only used by the threshold pruner"),
    ("warmup-without-pruner", 'name = "x"\n[pruner]\nwarmup_steps = 3', "pruner.warmup_steps",
     "median, percentile or threshold pruners"),
    ("warmup-past-epochs", 'name = "x"\n[network]\nepochs = 10\n[pruner]\nname = "median"',
     "pruner.warmup_steps", "must be < network.epochs (10)"),
    ("target-loss-zero", 'name = "x"\n[objective]\ntarget_loss = 0', "objective.target_loss",
     "must be > 0"),
]


@pytest.mark.parametrize("text,key,phrase", [case[1:] for case in BAD], ids=[c[0] for c in BAD])
def test_bad_input_names_file_key_and_reason(tmp_path, monkeypatch, text, key, phrase):
    (tmp_path / "studies").mkdir()
    write(tmp_path / "studies", text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as caught:
        load_study("studies/bad.toml")
    message = str(caught.value)
    assert message.startswith(f"studies/bad.toml: {key}: "), message
    assert phrase in message, message
    assert "\n" not in message
    assert (caught.value.path, caught.value.key) == ("studies/bad.toml", key)


def test_enough_bad_cases():
    assert len(BAD) >= 25


def test_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(SpecError, match=r"nope\.toml: file not found$"):
        load_study(path)


def test_a_directory_is_not_a_study(tmp_path):
    with pytest.raises(SpecError, match="is a directory"):
        load_study(tmp_path)


def test_toml_syntax_error_gives_the_line(tmp_path):
    path = write(tmp_path, 'name = "x"\n[network\nhidden = 3\n')
    with pytest.raises(SpecError) as caught:
        load_study(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: invalid TOML: ")
    assert "line 2" in message and "\n" not in message


def test_not_utf8(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_bytes(b'name = "\xff"\n')
    with pytest.raises(SpecError, match="not UTF-8"):
        load_study(path)


def test_spec_error_is_a_value_error_and_one_line():
    err = SpecError("a\nb.toml", "k", "why\nnot")
    assert isinstance(err, ValueError)
    assert str(err) == "a b.toml: k: why not"


# --------------------------------------------------------------------------
# Grid points


def test_linear_grid_points():
    grid = ParamSpec(low=0.0, high=0.9, log=False, points=4).grid()
    assert len(grid) == 4
    assert grid[0] == 0.0 and grid[-1] == 0.9
    assert grid == pytest.approx((0.0, 0.3, 0.6, 0.9))


def test_log_grid_points():
    grid = ParamSpec(low=1e-3, high=1.0, log=True, points=4).grid()
    assert len(grid) == 4
    assert grid[0] == 1e-3 and grid[-1] == 1.0
    assert grid == pytest.approx((1e-3, 1e-2, 1e-1, 1.0))
    ratios = [b / a for a, b in zip(grid, grid[1:])]
    assert ratios == pytest.approx([10.0] * 3)


def test_grid_values_and_fixed():
    assert ParamSpec(low=0, high=1, log=False, values=(0.1, 0.5)).grid() == (0.1, 0.5)
    assert ParamSpec(low=0.3, high=0.3, log=False, fixed=0.3).grid() == (0.3,)
    with pytest.raises(ValueError):
        ParamSpec(low=0, high=1, log=False).grid()


def test_grid_points_are_strictly_increasing():
    grid = load_study(STUDIES / "iris-grid.toml").learning_rate.grid()
    assert all(a < b for a, b in zip(grid, grid[1:]))
    assert all(math.isfinite(x) for x in grid)


# --------------------------------------------------------------------------
# to_dict and the fingerprint


def test_to_dict_is_plain_json_without_path():
    import json

    spec = load_study(STUDIES / "iris-grid.toml")
    plain = spec.to_dict()
    assert "path" not in plain
    assert plain["data"]["source"] == "iris" and plain["learning_rate"]["points"] == 24
    assert json.loads(json.dumps(plain)) == plain


def _fingerprint(**changes) -> str:
    data = {"name": "x", **changes}
    return parse_study(data, "x.toml").search_fingerprint()


def test_a_stated_default_precision_keeps_a_stored_study_resumable():
    # precision came after studies were stored: float64, said or not, is the same search.
    assert _fingerprint(network={"precision": "float64"}) == _fingerprint()
    assert parse_study({"name": "x"}, "x.toml").network()["dtype"] == "float64"


def test_fingerprint_ignores_description_trials_and_batch_size():
    base = _fingerprint()
    assert len(base) == 64 and int(base, 16) >= 0
    assert _fingerprint(description="reworded") == base
    assert _fingerprint(trials=500, batch_size=7) == base


@pytest.mark.parametrize(
    "changes",
    [
        {"search": {"learning_rate": {"high": 2.0}}},
        {"search": {"momentum": {"low": 0.1}}},
        {"search": {"momentum": {"fixed": 0.0}}},
        {"search": {"learning_rate": {"log": False}}},
        {"sampler": {"name": "random"}},
        {"seed": 9},
        {"network": {"rule": "nesterov"}},
        {"data": {"seed": 1}},
        {"network": {"precision": "float32"}},
    ],
    ids=["lr-high", "momentum-low", "momentum-fixed", "lr-linear", "sampler", "seed", "rule",
         "data-seed", "float32"],
)
def test_fingerprint_changes_with_the_search(changes):
    assert _fingerprint(**changes) != _fingerprint()


# --------------------------------------------------------------------------
# with_fixed


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_with_fixed_parses_back_with_both_fixed(tmp_path, path):
    spec = load_study(path)
    text = spec.with_fixed(0.05, 0.9)
    tuned = load_study(write(tmp_path, text, "tuned.toml"))
    assert tuned == parse_study(tomllib.loads(text), str(tmp_path / "tuned.toml"))
    assert tuned.name == f"{spec.name}-tuned"
    assert tuned.learning_rate.fixed == 0.05 and tuned.momentum.fixed == 0.9
    assert tuned.searched() == {}
    assert (tuned.trials, tuned.sampler, tuned.baseline) == (1, "random", False)
    assert tuned.data == spec.data
    assert (tuned.hidden, tuned.rule, tuned.init, tuned.epochs) == (
        spec.hidden, spec.rule, spec.init, spec.epochs,
    )
    assert tuned.objective == spec.objective and tuned.seed == spec.seed


def test_with_fixed_keeps_a_csv_study_and_long_names(tmp_path):
    (tmp_path / "t.csv").write_text("a,y\n1,0\n", encoding="utf-8")
    spec = parse_study(
        {
            "name": "n" * 64,
            "description": 'quotes " and \\ and\ttabs',
            "data": {"source": "csv", "path": "t.csv", "target": "the \"class\""},
            "network": {"rule": "heavy-ball", "init": "small-uniform", "epochs": 30},
            "objective": {"name": "epochs_to_target", "target_loss": 0.25},
        },
        str(tmp_path / "study.toml"),
    )
    text = spec.with_fixed(1e-05, 0)
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    tuned = load_study(write(elsewhere, text, "tuned.toml"))
    assert len(tuned.name) == 64 and tuned.name.endswith("-tuned")
    assert tuned.data == spec.data and tuned.data.target == 'the "class"'
    assert (tuned.rule, tuned.init, tuned.epochs) == ("heavy-ball", "small-uniform", 30)
    assert tuned.objective == ObjectiveSpec(name="epochs_to_target", target_loss=0.25)
    assert (tuned.learning_rate.fixed, tuned.momentum.fixed) == (1e-05, 0.0)


def test_with_fixed_keeps_a_float32_study_in_float32(tmp_path):
    spec = parse_study({"name": "f", "network": {"precision": "float32"}}, "f.toml")
    text = spec.with_fixed(0.01, 0.5)
    assert 'precision = "float32"' in text
    assert load_study(write(tmp_path, text, "tuned.toml")).network() == spec.network()


def test_with_fixed_refuses_values_out_of_range():
    spec = parse_study({"name": "x"}, "x.toml")
    with pytest.raises(SpecError, match="search.momentum.fixed: must be < 1"):
        spec.with_fixed(0.1, 1.2)
    with pytest.raises(SpecError, match="search.learning_rate.fixed: must be > 0"):
        spec.with_fixed(0.0, 0.5)


def test_correlated_source_reads_its_keys_and_loads_folds(tmp_path):
    spec = parse_study(
        {"name": "c", "folds": 3, "data": {"source": "correlated", "items": 300, "inputs": 6}},
        str(tmp_path / "c.toml"),
    )
    assert spec.data.source == "correlated" and spec.data.items == 300
    folds = spec.datasets()
    assert len(folds) == 3 and folds[0].n_inputs == 6 and folds[0].name == "correlated"
    assert spec.data.load().n_inputs == 6
    with pytest.raises(SpecError, match="data.path"):
        parse_study({"name": "c", "data": {"source": "correlated", "path": "x.csv"}}, "c.toml")


def test_grid_values_beyond_the_default_range_widen_it_without_a_bound_beside_them():
    spec = parse_study({"name": "wide", "sampler": {"name": "grid"},
                        "search": {"learning_rate": {"values": [1e-4, 0.01]},
                                   "momentum": {"values": [0.0, 0.9, 0.99]}}}, "wide.toml")
    assert (spec.learning_rate.low, spec.learning_rate.high) == (1e-4, 1.0)
    assert (spec.momentum.low, spec.momentum.high) == (0.0, 0.99)
    # Values inside the default range leave it as it was: a stored study keeps its fingerprint.
    inside = parse_study({"name": "in", "sampler": {"name": "grid"},
                          "search": {"momentum": {"values": [0.1, 0.5]},
                                     "learning_rate": {"points": 3}}}, "in.toml")
    assert (inside.momentum.low, inside.momentum.high) == (0.0, 0.95)
