"""Incremental results: `sweep report` and the confirmation redo a study only when its trials,
its spec or the tool's version changed since they were written."""

import dataclasses
from pathlib import Path

import pytest

import sweep
from sweep.folders import RESULTS_ENV, read_stamp
from sweep.report import write_reports
from sweep.search import run_study
from sweep.spec import parse_study
from sweep.store.connect import open_storage

ONE = {
    "name": "one", "trials": 4, "batch_size": 4, "seed": 5,
    "data": {"source": "synthetic", "items": 60, "inputs": 3, "classes": 3},
    "network": {"hidden": 4, "epochs": 8},
}
# A different network: its trials never rank with ONE's, so its report does not depend on them.
TWO = {**ONE, "name": "two", "seed": 6, "network": {"hidden": 5, "epochs": 8}}


def modified(results):
    """Every file under the results root with its modification time, the gallery index (which
    is rewritten each time) aside."""
    return {
        path.relative_to(results): path.stat().st_mtime_ns
        for path in results.rglob("*")
        if path.is_file() and path != results / "index.html"
    }


@pytest.fixture
def reported(tmp_path, monkeypatch):
    results = tmp_path / "results"
    monkeypatch.setenv(RESULTS_ENV, str(results))
    storage = open_storage(f"sqlite:///{tmp_path / 'sweep.db'}")
    specs = {d["name"]: parse_study(d, str(tmp_path / f"{d['name']}.toml")) for d in (ONE, TWO)}
    for spec in specs.values():
        run_study(spec, storage)
    write_reports(storage)
    return storage, specs, results


def test_a_second_report_with_nothing_new_rewrites_no_study_file(reported):
    storage, _, results = reported
    before = modified(results)
    lines = write_reports(storage)
    assert modified(results) == before
    assert sum("up to date" in line for line in lines) == 3  # two studies and the momentum page


def test_one_new_trial_redoes_only_its_study(reported):
    storage, specs, results = reported
    before = modified(results)
    run_study(dataclasses.replace(specs["two"], trials=5), storage)  # one more trial
    write_reports(storage)
    after = modified(results)
    changed = {path.parts[0] for path in after if after[path] != before.get(path)}
    # Study "one" is left alone; the momentum page, drawn from every study, is redone (its
    # plot folder is empty: no study here is confirmed).
    assert changed == {"two", "momentum.html", "momentum.json", ".stamp.json"}
    curves = Path("two", "curves.png")
    assert after[curves] != before[curves]


def test_a_new_version_of_the_tool_redoes_every_study(reported, monkeypatch):
    storage, _, results = reported
    before = modified(results)
    monkeypatch.setattr(sweep, "_version", lambda: "99.0")
    write_reports(storage)
    after = modified(results)
    changed = {path.parts[0] for path in after if after[path] != before[path]}
    assert changed == {"one", "two", "momentum.html", "momentum.json", ".stamp.json"}


def test_a_confirmation_is_current_until_its_inputs_change_and_the_report_follows(reported):
    from sweep.confirm import confirm_study
    from sweep.store.studies import current_confirmation

    storage, specs, results = reported
    assert current_confirmation(storage, "one", specs["one"]) is None
    first = confirm_study(storage, "one", specs["one"], max_networks=20)
    assert current_confirmation(storage, "one", specs["one"]) == first
    # The page shows the confirmation: written again; the other study is left alone.
    lines = write_reports(storage)
    assert any(line.startswith("one: wrote") for line in lines)
    assert any(line.startswith("two:") and "up to date" in line for line in lines)
    assert set(read_stamp(results / "one")) == {"report"}
    # A new trial makes it stale: the answer is the search's again, marked unconfirmed.
    run_study(dataclasses.replace(specs["one"], trials=5), storage)
    assert current_confirmation(storage, "one", specs["one"]) is None
