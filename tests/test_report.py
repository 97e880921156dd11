"""The report on tiny real studies: plot files are PNGs of a sensible size, best.json and
tuned.toml name the best trial, pages escape what they show, and names cannot leave results/."""

import json
import shutil
import struct
import tomllib

import pytest

from sweep.analysis import best_trial, top_trials
from sweep.errors import SweepError
from sweep.folders import RESULTS_ENV, study_folder
from sweep.report import write_reports
from sweep.search import run_study
from sweep.spec import parse_study
from sweep.store.connect import open_storage
from sweep.store.studies import open_study, read_records

HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
TINY = {
    "name": "tiny",
    "description": HOSTILE,
    "trials": 12,
    "batch_size": 12,
    "seed": 5,
    "data": {"source": "synthetic", "items": 60, "inputs": 3, "classes": 3},
    "network": {"hidden": 4, "epochs": 12},
    "objective": {"target_loss": 0.3},
}
# The same data and network with momentum fixed at 0: the comparison may borrow from it.
PLAIN = {
    **TINY,
    "name": "tiny-plain",
    "description": "plain SGD",
    "trials": 4,
    "seed": 6,
    "search": {"momentum": {"fixed": 0.0}},
}
# Every network diverges at once: trials are trained but none completes.
WILD = {
    **TINY,
    "name": "wild",
    "description": "diverges",
    "trials": 3,
    "seed": 7,
    "search": {"learning_rate": {"fixed": 50.0}},
}


def png_size(path):
    """(width, height) from a PNG's IHDR chunk, after checking the 8-byte signature."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    """Three tiny studies and an empty one in one storage, reported into a temporary results
    root."""
    base = tmp_path_factory.mktemp("report")
    storage = open_storage(f"sqlite:///{base / 'sweep.db'}")
    specs = {
        d["name"]: parse_study(d, str(base / f"{d['name']}.toml")) for d in (TINY, PLAIN, WILD)
    }
    for spec in specs.values():
        run_study(spec, storage)
    empty = parse_study(
        {**TINY, "name": "empty", "description": "nothing yet"}, str(base / "empty.toml")
    )
    open_study(empty, storage)
    specs["empty"] = empty
    results = base / "results"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(RESULTS_ENV, str(results))
        lines = write_reports(storage, None)
    return {"storage": storage, "specs": specs, "results": results, "lines": lines}


@pytest.fixture
def results_env(gallery, monkeypatch, tmp_path):
    """A copy of the gallery's results for one test: what a test writes there (robust.csv, a
    changed best.json) stays its own, so no test depends on which ran before it."""
    results = tmp_path / "results"
    shutil.copytree(gallery["results"], results)
    monkeypatch.setenv(RESULTS_ENV, str(results))
    return results


# --- study folders ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "../x",
        "a/../../b",
        "a/b",
        "/etc",
        ".hidden",
        "a..b",
        "a\x00b",
        "a\\b",
        "new\nline",
    ],
)
def test_study_folder_refuses_names_that_could_leave_the_results_root(name, tmp_path, monkeypatch):
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path))
    with pytest.raises(ValueError):
        study_folder(name)
    with pytest.raises(SweepError):  # the CLI reports it as one line
        study_folder(name)


def test_study_folder_is_a_child_of_the_results_root(tmp_path, monkeypatch):
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path))
    assert study_folder("iris-tpe") == tmp_path / "iris-tpe"
    monkeypatch.delenv(RESULTS_ENV)
    assert str(study_folder("iris-tpe")) == "results/iris-tpe"


# --- files -----------------------------------------------------------------------------------


def test_every_plot_is_written_as_a_png_of_sensible_size(gallery):
    folder = gallery["results"] / "tiny"
    for name in (
        "curves.png",
        "landscape.png",
        "momentum-vs-none.png",
        "history.png",
        "importances.png",
    ):
        width, height = png_size(folder / name)
        assert width >= 400 and height >= 300, f"{name} is {width}x{height}"
    # One searched parameter: no importances; a study with no trials has no plots at all.
    assert (gallery["results"] / "tiny-plain" / "landscape.png").exists()
    assert not (gallery["results"] / "tiny-plain" / "importances.png").exists()
    assert not list((gallery["results"] / "empty").glob("*.png"))


def test_an_unconfirmed_best_json_names_the_search_best_and_says_it_is_unconfirmed(gallery):
    best = best_trial(read_records(gallery["storage"], "tiny"))
    data = json.loads((gallery["results"] / "tiny" / "best.json").read_text())
    assert data["study"] == "tiny" and data["trial"] == best.number
    assert data["learning_rate"] == best.learning_rate and data["momentum"] == best.momentum
    assert data["value"] == pytest.approx(best.value) and data["objective"] == "final_val_loss"
    assert data["rule"] == "seed" and data["epochs"] == 12
    assert data["confirmed"] is False and "sweep confirm tiny" in data["note"]
    assert data["search"]["networks"] == best.network_count


def test_tuned_toml_is_a_study_file_fixed_at_the_best_parameters(gallery):
    best = best_trial(read_records(gallery["storage"], "tiny"))
    path = gallery["results"] / "tiny" / "tuned.toml"
    tuned = parse_study(tomllib.loads(path.read_text()), str(path))
    assert tuned.learning_rate.fixed == best.learning_rate and tuned.momentum.fixed == best.momentum
    assert tuned.data == gallery["specs"]["tiny"].data


def test_a_study_without_completed_trials_still_gets_a_page_and_a_best_json(gallery):
    for name, trained in (("empty", False), ("wild", True)):
        folder = gallery["results"] / name
        assert "No completed trials yet" in (folder / "index.html").read_text()
        assert json.loads((folder / "best.json").read_text())["trial"] is None
        assert not (folder / "tuned.toml").exists()
        assert (folder / "curves.png").exists() == trained


def test_write_reports_says_what_it_wrote(gallery):
    lines = gallery["lines"]
    assert len(lines) == 6 and lines[-1].startswith("index: wrote")
    assert any(line.startswith("tiny: wrote") and "curves.png" in line for line in lines)
    # Every study reported: the "What momentum does" page too, linked from the gallery.
    assert lines[-2].startswith("momentum: wrote") and lines[-2].endswith("momentum.html")
    assert 'href="momentum.html"' in (gallery["results"] / "index.html").read_text()


def test_unknown_study_is_a_one_line_error(results_env, gallery):
    with pytest.raises(SweepError, match="no study named 'nope'"):
        write_reports(gallery["storage"], ["nope"])


# --- pages -----------------------------------------------------------------------------------


def test_pages_escape_descriptions_and_link_relatively(gallery):
    top = (gallery["results"] / "index.html").read_text()
    page = (gallery["results"] / "tiny" / "index.html").read_text()
    for text in (top, page):
        assert HOSTILE not in text and "<script>" not in text and "<img src=x" not in text
        assert (
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; "
            "&amp; &lt;img src=x onerror=alert(1)&gt;"
            in text
        )
        assert "http://" not in text and "https://" not in text  # nothing fetched from anywhere
    assert 'href="tiny/index.html"' in top and 'src="tiny/curves.png"' in top
    assert 'href="../index.html"' in page and 'src="landscape.png"' in page


def test_gallery_lists_every_study_with_diverged_trials_counted(gallery):
    top = (gallery["results"] / "index.html").read_text()
    assert top.count('<tr class="study">') == 4
    assert "3 trials: 3 diverged" in top
    assert "no completed trials yet" in top


def test_study_page_shows_the_top_trials(gallery):
    page = (gallery["results"] / "tiny" / "index.html").read_text()
    best = top_trials(read_records(gallery["storage"], "tiny"), 10)
    assert f'<td class="num" data-label="trial">{best[0].number}' in page
    assert page.count('<tr><td class="num" data-label="rank">') == len(best)


def test_comparison_may_borrow_only_from_studies_on_the_same_data_and_network(gallery):
    from sweep.report import _comparable, load_study

    names = ("tiny", "tiny-plain", "wild", "empty")
    studies = {name: load_study(gallery["storage"], name) for name in names}
    # wild and empty share data and network too; tiny-plain differs only in its search.
    assert [name for name, _ in _comparable(studies["tiny"], studies)] == [
        "empty",
        "tiny-plain",
        "wild",
    ]
    studies["other"] = load_study(gallery["storage"], "tiny")
    studies["other"].spec = parse_study(
        {**TINY, "network": {"hidden": 5, "epochs": 12}}, "other.toml"
    )
    studies["other"].name = "other"
    assert "other" not in [name for name, _ in _comparable(studies["tiny"], studies)]
