"""The "What momentum does" page in a real browser: headless Chromium opens it from file://,
every image loads, and every claim is answered for the study."""

import pytest
from test_gallery import chromium, rendered

from sweep.claims_page import write_momentum_page
from sweep.report import load_study
from sweep.search import run_study
from sweep.spec import parse_study
from sweep.store.connect import open_storage
from sweep.store.studies import study_names

pytestmark = pytest.mark.slow

GRID = {
    "name": "claims-grid",
    "description": "A <b>tiny</b> & correlated grid",
    "seed": 1,
    "folds": 3,
    "data": {"source": "correlated", "items": 90, "inputs": 3, "classes": 3},
    "network": {"hidden": 4, "epochs": 8, "rule": "heavy-ball"},
    "search": {"learning_rate": {"low": 0.01, "high": 3.0, "points": 5},
               "momentum": {"values": [0.0, 0.5, 0.9]}},
    "sampler": {"name": "grid"},
}


def test_momentum_page_answers_every_claim_with_no_broken_image(tmp_path):
    binary = chromium()
    storage = open_storage(f"sqlite:///{tmp_path / 'sweep.db'}")
    run_study(parse_study(GRID, str(tmp_path / "grid.toml")), storage)
    studies = [load_study(storage, name) for name in study_names(storage)]
    page = write_momentum_page(studies, tmp_path / "results")
    assert page == tmp_path / "results" / "momentum.html"

    dom, attributes = rendered(binary, page, tmp_path / "profile")
    assert int(attributes["images"]) == 3  # speed, updates, stability
    assert int(attributes["broken"]) == 0
    for claim in range(1, 6):
        assert f"<h4>{claim}. " in dom
    assert "A &lt;b&gt;tiny&lt;/b&gt; &amp; correlated grid" in dom  # escaped, not markup
    assert "95 % interval" in dom
