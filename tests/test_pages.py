"""The pages only draw: a study page and the gallery render from plain records, with no file
read and no results folder in sight."""

import numpy as np

from sweep.folders import Study
from sweep.pages import GalleryEntry, GalleryView, StudyView, gallery_page, study_page
from sweep.records import TrialRecord
from sweep.spec import parse_study


def record(number, value, learning_rate, momentum, state="complete"):
    curve = np.linspace(1.0, value, 6)
    return TrialRecord(
        number=number, state=state, learning_rate=learning_rate, momentum=momentum, seed=number,
        value=value if state == "complete" else None, baseline=False, diverged_epoch=None,
        stopped_epoch=None, train_loss=curve, val_loss=curve, val_accuracy=1 - curve / 2,
    )


def test_pages_render_from_records_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no results/ here: a page that looked for files finds none
    spec = parse_study({"name": "drawn", "description": "from <records>"}, "drawn.toml")
    study = Study("drawn", spec, [record(0, 0.31, 0.01, 0.5), record(1, 0.2, 0.02, 0.9),
                                  record(2, 0.5, 0.3, 0.1, state="pruned")])
    study.confirmation = {
        "pick": {"trial": 1}, "survivors": [1, 0], "networks": "fresh networks",
        "interval": "a t interval", "settings": {"max_networks": 20}, "stop": "the budget",
        "networks_trained": 40,
        "candidates": [{"trial": 1, "learning_rate": 0.02, "momentum": 0.9,
                        "effective_rate": 0.038, "search_value": 0.2, "race_mean": 0.25,
                        "networks": 20},
                       {"trial": 0, "learning_rate": 0.01, "momentum": 0.5,
                        "effective_rate": 0.015, "search_value": 0.31, "race_mean": 0.26,
                        "networks": 20}]}
    answer = {"trial": 1, "learning_rate": 0.02, "momentum": 0.9, "confirmed": True,
              "value": 0.25, "value_low": 0.22, "value_high": 0.28, "networks": 20,
              "reached": 18, "epochs_to_target": 4.0, "failures": 0,
              "failure_rate_upper": 0.139, "effective_learning_rate": 0.038,
              "equivalent": "learning rate 0.01-0.02 are equivalent here", "objective": "x",
              "search": {"value": 0.2, "networks": 10, "optimism": 0.2}}
    page = study_page(StudyView(study, plots=("curves.png",), files=("best.json",),
                                answer=answer))
    assert "from &lt;records&gt;" in page
    assert 'src="curves.png"' in page and 'src="landscape.png"' not in page
    assert 'href="best.json"' in page and "tuned.toml" not in page
    assert "reached by 18 of 20" in page and "Confirmation race" in page
    assert "picked" in page and "equivalent" in page
    gallery = gallery_page(GalleryView(
        (GalleryEntry(study, has_page=True, thumbnails=("curves.png",), answer=answer),),
        momentum_page=False))
    assert 'href="drawn/index.html"' in gallery and 'src="drawn/curves.png"' in gallery
    assert "momentum.html" not in gallery and "edge of its search range" not in gallery
    edged = gallery_page(GalleryView((GalleryEntry(
        study, has_page=True, answer={**answer, "edge_warnings": ["the chosen momentum..."]}),)))
    assert "edge of its search range: widen it" in edged
    assert not (tmp_path / "results").exists()
