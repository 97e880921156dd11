"""The confirmation race on real (tiny) studies: its networks are fresh, its pick comes from them
alone and never has a failed network, every output names that pick, `sweep.measure` reproduces
its figure, and a minimal study file gets cross-validation by default."""

import json
import tomllib

import numpy as np
import pytest

import sweep
from sweep import confirm as confirming
from sweep.analysis import best_trial, top_trials
from sweep.folders import RESULTS_ENV
from sweep.records import TrialRecord
from sweep.report import write_reports
from sweep.search import run_study
from sweep.spec import parse_study
from sweep.store.connect import open_storage
from sweep.store.studies import (
    confirmation_key,
    current_confirmation,
    read_records,
    save_confirmation,
)

SMALL = {
    "name": "small",
    "trials": 16,
    "batch_size": 16,
    "seed": 3,
    "data": {"source": "synthetic", "items": 90, "inputs": 3, "classes": 3},
    "network": {"hidden": 4, "epochs": 10},
    "search": {"learning_rate": {"low": 0.01, "high": 0.5}},
}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    base = tmp_path_factory.mktemp("confirm")
    storage = open_storage(f"sqlite:///{base / 'sweep.db'}")
    spec = parse_study(SMALL, str(base / "small.toml"))
    run_study(spec, storage)
    confirmation = confirming.confirm_study(storage, "small", spec, max_networks=20)
    return {"base": base, "storage": storage, "spec": spec, "confirmation": confirmation}


def test_a_minimal_study_file_gets_five_folds_of_two_seeds(tmp_path):
    spec = parse_study({"name": "minimal"}, str(tmp_path / "minimal.toml"))
    assert (spec.folds, spec.repeats) == (5, 2)
    # A study stored before folds existed (one network per trial) keeps the fingerprint it was
    # stored with, which had no folds, repeats or precision in it; the new default is another
    # search.
    import hashlib

    legacy = parse_study({"name": "minimal", "folds": 1, "repeats": 1}, "old.toml")
    plain = legacy.to_dict()
    for key in ("description", "trials", "batch_size", "folds", "repeats", "confirms",
                "precision"):
        del plain[key]
    stored = hashlib.sha256(
        json.dumps(plain, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert legacy.search_fingerprint() == stored != spec.search_fingerprint()


def test_race_networks_are_fresh_partitions_and_fresh_seeds(study):
    spec = study["spec"]
    race = confirming.RaceNetworks(spec)
    datasets, index, seeds = race.datasets(0, 10)
    # Its partitions are not the search's: no race fold validates on a search fold's items.
    from sweep.data import split_folds

    y = race.table.y
    searched = {tuple(sorted(v)) for _, v in split_folds(y, spec.folds, spec.data.seed)}
    assert len(race.partitions) == 2 and spec.data.seed not in race.partitions
    for partition in race.partitions:
        assert not searched & {tuple(sorted(v)) for _, v in split_folds(y, spec.folds, partition)}
    # Two partitions of five folds: each block of five networks covers every item once.
    assert index == list(range(10)) and len({confirming.race_network(spec, j)[0]
                                             for j in range(10)}) == 2
    used = {s for r in read_records(study["storage"], "small") for s in r.networks.seeds}
    assert not used & set(seeds) and len(set(seeds)) == 10
    # Same setup, another study: the same networks, so answers compare network by network.
    other = parse_study({**SMALL, "name": "other", "seed": 9}, "other.toml")
    assert confirming.RaceNetworks(other).datasets(0, 10)[2] == seeds


def test_the_pick_is_measured_until_its_interval_is_planned_within_the_precision():
    block, most = 5, confirming.MAX_PICK_NETWORKS
    steady = np.full(40, 0.1) + np.linspace(-1e-4, 1e-4, 40)
    assert confirming.networks_for_precision(steady, block) == 40  # already precise
    # A spread of 30 % of the mean: (1.96 * 0.3 / 0.05)^2 = 138.3 networks, whole blocks.
    spread = np.tile([0.07, 0.13], 20)
    planned = confirming.networks_for_precision(spread, block)
    assert planned % block == 0 and 140 <= planned <= 150
    assert confirming.networks_for_precision(np.tile([0.01, 1.0], 20), block) == most
    assert confirming.networks_for_precision(np.full(40, np.nan), block) == 40


def test_the_pick_comes_from_the_race_and_sweep_measure_reproduces_it(study):
    confirmation = study["confirmation"]
    pick = confirmation["pick"]
    outcome = next(c for c in confirmation["candidates"] if c["trial"] == pick["trial"])
    # The pick then trains on the race networks that follow its own, as many as its figure's
    # planned precision needs.
    wanted = confirming.networks_for_precision(np.array(outcome["values"]),
                                               confirming.block_size(study["spec"]))
    assert pick["networks"] == wanted >= outcome["networks"] >= 20 and pick["failures"] == 0
    if wanted == outcome["networks"]:
        assert pick["value"]["mean"] == pytest.approx(np.mean(outcome["values"]), rel=1e-12)
    assert pick["value"]["low"] <= pick["value"]["mean"] <= pick["value"]["high"]
    # The user's check through the public API gives the page's figure, to the last digit.
    measured = sweep.measure(study["spec"], pick["learning_rate"], pick["momentum"],
                             networks=pick["networks"])
    assert measured.value.mean == pick["value"]["mean"] and measured.failures == 0
    # Among the settings the race could not separate, the pick has the lowest effective rate
    # of those within one standard error of the best.
    survivors = [c for c in confirmation["candidates"] if c["trial"] in confirmation["survivors"]]
    best_mean = min(c["race_mean"] for c in survivors)
    best = next(c for c in survivors if c["race_mean"] == best_mean)
    se = np.std(best["values"], ddof=1) / np.sqrt(len(best["values"]))
    close = [c for c in survivors if c["race_mean"] <= best_mean + se]
    assert pick["effective_rate"] == min(c["effective_rate"] for c in close)


def test_a_setting_whose_race_network_blows_up_is_never_picked(study):
    spec = study["spec"]

    def record(number, learning_rate, value):
        curve = np.full(10, value)
        return TrialRecord(number, "complete", learning_rate, 0.5, number, value, False, None,
                           None, curve, curve, curve)

    # The search's (made-up) best is a learning rate far past blow-up.
    records = [record(0, 40.0, 0.01), record(1, 0.05, 0.3), record(2, 0.08, 0.31)]
    confirmation = confirming.confirm(spec, records, max_networks=20)
    wild = next(c for c in confirmation["candidates"] if c["trial"] == 0)
    assert wild["dropped_by"] == "failure" and wild["failures"] >= 1
    assert confirmation["pick"]["trial"] in (1, 2)


def test_every_output_names_the_confirmed_setting(study, tmp_path, monkeypatch, capsys):
    from sweep import plots
    from sweep.cli import main

    storage, spec = study["storage"], study["spec"]
    records = read_records(storage, "small")
    # A confirmation whose pick is not the search's best, as the race may decide.
    second = top_trials(records, 2)[1]
    assert second.number != best_trial(records).number
    confirmation = json.loads(json.dumps(study["confirmation"]))
    confirmation["pick"] = {**confirmation["pick"], "trial": second.number,
                            "learning_rate": second.learning_rate,
                            "momentum": second.momentum}
    confirmation["key"] = confirmation_key(storage, "small", spec, confirmation["settings"])
    save_confirmation(storage, "small", confirmation)
    try:
        assert current_confirmation(storage, "small", spec)["pick"]["trial"] == second.number
        seen = {}
        real_landscape, real_curves = plots.landscape_figure, plots.curves_figure

        def landscape(points, **options):
            seen["star"] = options["best"]
            return real_landscape(points, **options)

        def curves(drawn, **options):
            seen["first curve"] = [c.number for c in drawn if c.rank == 1]
            return real_curves(drawn, **options)

        monkeypatch.setattr(plots, "landscape_figure", landscape)
        monkeypatch.setattr(plots, "curves_figure", curves)
        monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "results"))
        write_reports(storage, ["small"])
        assert main(["best", "small", "--json", "--storage", str(storage.url)]) == 0
        printed = json.loads(capsys.readouterr().out)
        best = json.loads((tmp_path / "results" / "small" / "best.json").read_text())
        path = tmp_path / "results" / "small" / "tuned.toml"
        text = path.read_text()
        tuned = parse_study(tomllib.loads(text), str(path))
        assert printed["trial"] == best["trial"] == seen["star"] == second.number
        assert seen["first curve"] == [second.number]
        assert printed["confirmed"] and best["confirmed"]
        assert (tuned.learning_rate.fixed, tuned.momentum.fixed) == (
            second.learning_rate, second.momentum)
        assert f"{best['value']:.4g}" in text and "fresh networks" in text  # its header
        page = (tmp_path / "results" / "small" / "index.html").read_text()
        assert "Confirmation race" in page and "the search&#x27;s own figure" in page
        gallery = (tmp_path / "results" / "index.html").read_text()
        assert f"{second.learning_rate:.4g}" in gallery and "One answer per setup" in gallery
    finally:
        save_confirmation(storage, "small", study["confirmation"])


def test_sweep_run_confirms_a_finished_study_and_says_its_answer(tmp_path, capsys):
    from sweep.cli import main

    path = tmp_path / "run.toml"
    path.write_text(
        'name = "run"\ntrials = 8\nbatch_size = 8\nseed = 2\nfolds = 2\nrepeats = 1\n'
        '[data]\nsource = "synthetic"\nitems = 60\ninputs = 3\nclasses = 3\n'
        "[network]\nhidden = 4\nepochs = 6\n")
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    assert main(["run", str(path), "--quiet", "--no-confirm", "--storage", url]) == 0
    assert "confirmed" not in capsys.readouterr().out
    assert main(["run", str(path), "--quiet", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "run: confirmed: learning rate" in out and "fresh networks, none failed" in out
    assert main(["run", str(path), "--quiet", "--storage", url]) == 0
    assert "confirmation up to date" in capsys.readouterr().out


def test_running_a_tuned_toml_measures_its_setting_and_stores_no_study(study, tmp_path, capsys):
    from sweep.cli import main
    from sweep.store.studies import study_names

    spec, storage = study["spec"], study["storage"]
    pick = study["confirmation"]["pick"]
    path = tmp_path / "tuned.toml"
    path.write_text(spec.with_fixed(pick["learning_rate"], pick["momentum"]))
    before = study_names(storage)
    assert main(["run", str(path), "--quiet", "--storage", str(storage.url)]) == 0
    line = capsys.readouterr().out
    expected = sweep.measure(spec, pick["learning_rate"], pick["momentum"])
    assert line.startswith("small-tuned: learning rate") and "study 'small''s answer" in line
    assert f"{expected.value.mean:.4g} (95% interval" in line and "40 fresh networks" in line
    assert study_names(storage) == before  # a confirmation, not a new study in the gallery
