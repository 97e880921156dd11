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
    confirmation = {"networks": 20, "interval": "t interval"}
    rows = ({"rank": 1, "trial": 1, "learning_rate": 0.02, "momentum": 0.9,
             "search_value": 0.2, "fresh_mean": 0.25, "fresh_low95": 0.22,
             "fresh_high95": 0.28, "optimism": 0.2, "epochs_to_target_mean": 4.0,
             "reached_target": 18, "networks": 20, "diverged": 0},)
    page = study_page(StudyView(study, plots=("curves.png",), files=("best.json",),
                                confirmation=confirmation, confirmation_rows=rows))
    assert "from &lt;records&gt;" in page
    assert 'src="curves.png"' in page and 'src="landscape.png"' not in page
    assert 'href="best.json"' in page and "tuned.toml" not in page
    assert "Confirmation on fresh seeds" in page and "18/20" in page
    gallery = gallery_page(GalleryView(
        (GalleryEntry(study, has_page=True, thumbnails=("curves.png",),
                      pick={"trial": 1, "learning_rate": 0.02, "momentum": 0.9,
                            "source": "best"}),),
        momentum_page=False))
    assert 'href="drawn/index.html"' in gallery and 'src="drawn/curves.png"' in gallery
    assert "momentum.html" not in gallery
    assert not (tmp_path / "results").exists()
