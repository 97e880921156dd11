"""Every page in a real browser at a desktop's and a phone's width: headless Chromium opens
the gallery, each study's page and the momentum page from file://, and no table, image or text
runs off the window, and no image is broken. Screenshots of each are kept in the test's folder
(``--basetemp`` keeps them) for a person to look at."""

import pytest
from test_gallery import chromium, rendered

from sweep.cli import main
from sweep.folders import RESULTS_ENV

pytestmark = pytest.mark.slow

WIDTHS = (1400, 420)
STUDY = """
name = "{name}"
description = "A tiny study with a long description that must wrap on a phone, not overflow"
trials = 12
batch_size = 12
seed = {seed}
folds = 3
repeats = 1
[data]
source = "synthetic"
items = 90
inputs = 3
classes = 3
[network]
hidden = 4
epochs = 10
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    base = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{base / 'sweep.db'}"
    for seed, name in enumerate(("phone-a", "phone-b-with-a-rather-long-study-name")):
        path = base / f"{name}.toml"
        path.write_text(STUDY.format(name=name, seed=seed))
        assert main(["run", str(path), "--quiet", "--storage", url]) == 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(RESULTS_ENV, str(base / "results"))
        assert main(["report", "--all", "--storage", url]) == 0
    return base / "results"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("page", ["index.html", "momentum.html", "phone-a/index.html",
                                  "phone-b-with-a-rather-long-study-name/index.html"])
def test_no_page_overflows_or_breaks_an_image_at_desktop_or_phone_width(
    results, tmp_path, page, width
):
    binary = chromium()
    shot = tmp_path / f"{page.replace('/', '-')}-{width}.png"
    _, found = rendered(binary, results / page, tmp_path / "profile", width, screenshot=shot)
    assert int(found["broken"]) == 0, f"{page} at {width}px: a broken image"
    assert int(found["overflowing"]) == 0, f"{page} at {width}px: something runs off the window"
    assert int(found["pagewidth"]) <= int(found["viewport"]) + 1, (
        f"{page} at {width}px is {found['pagewidth']}px wide")
    assert shot.stat().st_size > 1000  # a real screenshot, for a person to look at
