"""The "What momentum does" page on a tiny confirmed study: it opens with its verdict table,
momentum.json holds issue 22's fields, every image exists, and headless Chromium opens it from
file:// with no broken image."""

import json

import pytest
from test_gallery import chromium, rendered

from sweep.claims_page import write_momentum_page
from sweep.confirm import confirm_study
from sweep.report import load_study
from sweep.search import run_study
from sweep.spec import parse_study
from sweep.store.connect import open_storage

pytestmark = pytest.mark.slow

GRID = {
    "name": "claims-grid",
    "description": "A <b>tiny</b> & learnable grid",
    "seed": 1,
    "folds": 3,
    "repeats": 1,
    "data": {"source": "synthetic", "items": 120, "inputs": 3, "classes": 3},
    "network": {"hidden": 4, "epochs": 15, "rule": "heavy-ball"},
    "search": {"learning_rate": {"low": 0.01, "high": 3.0, "points": 5},
               "momentum": {"values": [0.0, 0.5, 0.9]}},
    "sampler": {"name": "grid"},
}


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    base = tmp_path_factory.mktemp("claims")
    storage = open_storage(f"sqlite:///{base / 'sweep.db'}")
    spec = parse_study(GRID, str(base / "grid.toml"))
    run_study(spec, storage)
    confirm_study(storage, "claims-grid", spec, max_networks=20)
    written = write_momentum_page([load_study(storage, "claims-grid")], base / "results")
    return base, written


def test_the_page_opens_with_its_verdicts_and_momentum_json_has_the_numbers(page):
    base, written = page
    assert written == base / "results" / "momentum.html"
    html = written.read_text()
    body = html[html.index("<body>"):]
    assert body.index("The answers") < body.index("<table") < body.index("the evidence")
    numbers = json.loads((base / "results" / "momentum.json").read_text())
    study = numbers["studies"]["claims-grid"]
    assert study["rule"] == "heavy-ball"
    matched = study["matched"]
    assert matched is not None, "the tiny grid's race confirms a setting with momentum"
    for key in ("momentum", "learning_rate", "sgd_learning_rate", "networks"):
        assert key in matched
    assert matched["networks"] >= 20 and matched["momentum"] > 0
    assert matched["sgd_learning_rate"] == pytest.approx(
        matched["learning_rate"] / (1 - matched["momentum"]))
    for key in ("final_loss_difference", "epochs_difference"):
        assert {"estimate", "low", "high"} <= set(matched[key])
    assert study["stability"], "the page measures where training blows up"
    for boundary in study["stability"]:
        assert {"momentum", "blowup_learning_rate", "low", "high", "effective_step_prediction",
                "linear_prediction"} <= set(boundary)
    # Every figure rests on at least 20 networks; one Holm step over the page's tests.
    assert all(t["networks"] >= 20 for t in numbers["tests"] if t["networks"])
    assert all(t["adjusted_p_value"] is None or t["adjusted_p_value"] >= t["p_value"]
               for t in numbers["tests"])
    for image in (base / "results" / "momentum").glob("*.png"):
        assert image.stat().st_size > 1000
    assert "theory" not in html.lower() and "oscillat" not in html.lower()


def test_the_page_in_a_browser_has_no_broken_image(page, tmp_path):
    binary = chromium()
    base, written = page
    dom, attributes = rendered(binary, written, tmp_path / "profile")
    assert int(attributes["images"]) == 2  # the effective-rate landscape, the stability plot
    assert int(attributes["broken"]) == 0
    assert "A &lt;b&gt;tiny&lt;/b&gt; &amp; learnable grid" in dom  # escaped, not markup
