"""The gallery in a real browser: headless Chromium opens results/index.html from file:// and
every study is listed and every image loads.

The product's HTML is not touched: the test renders a copy of index.html, in the same folder
(so the relative links still resolve), with a script appended that counts broken images and
study rows into attributes of <body>, and reads them back from Chromium's --dump-dom.
"""

import os
import re
import shutil
import subprocess

import pytest

from sweep.folders import RESULTS_ENV
from sweep.report import write_reports
from sweep.search import run_study
from sweep.spec import parse_study
from sweep.store.connect import open_storage

pytestmark = pytest.mark.slow

STUDIES = [
    {
        "name": "gallery-a",
        "description": "A <b>tiny</b> & search",
        "trials": 12,
        "batch_size": 12,
        "seed": 1,
        "data": {"source": "synthetic", "items": 60, "inputs": 3, "classes": 3},
        "network": {"hidden": 4, "epochs": 10},
    },
    {
        "name": "gallery-grid",
        "description": "a tiny grid",
        "seed": 2,
        "data": {"source": "synthetic", "items": 60, "inputs": 3, "classes": 3},
        "network": {"hidden": 4, "epochs": 10},
        "search": {"learning_rate": {"high": 60.0, "points": 4}, "momentum": {"points": 3}},
        "sampler": {"name": "grid"},
    },
]
PROBE = """
<script>
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  document.body.dataset.images = images.length;
  document.body.dataset.broken = images.filter(function (i) {
    return !i.complete || i.naturalWidth === 0;
  }).length;
  document.body.dataset.studies = document.querySelectorAll("tr.study").length;
  // What does not fit the window: the page's own width, and each table's right edge.
  var width = document.documentElement.clientWidth;
  document.body.dataset.pagewidth = document.documentElement.scrollWidth;
  document.body.dataset.viewport = width;
  document.body.dataset.overflowing = Array.prototype.slice.call(
    document.querySelectorAll("table, img, pre")).filter(function (t) {
      return t.getBoundingClientRect().right > width + 1;
    }).length;
  document.body.dataset.done = "yes";
});
</script>
"""
_INSTALL_TRIED = False


def chromium() -> str:
    """The chromium binary; installed with apt-get once when running as root; else skip."""
    global _INSTALL_TRIED
    for name in ("/usr/bin/chromium", "/usr/bin/chromium-browser", shutil.which("chromium") or ""):
        if name and os.access(name, os.X_OK):
            return name
    if (
        hasattr(os, "geteuid")
        and os.geteuid() == 0
        and shutil.which("apt-get")
        and not _INSTALL_TRIED
    ):
        _INSTALL_TRIED = True
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(
            ["apt-get", "update"], capture_output=True, env=env, timeout=600, check=False
        )
        subprocess.run(
            ["apt-get", "install", "-y", "chromium"],
            capture_output=True,
            env=env,
            timeout=1200,
            check=False,
        )
        if os.access("/usr/bin/chromium", os.X_OK):
            return "/usr/bin/chromium"
    pytest.skip(
        "headless Chromium is not installed (/usr/bin/chromium) and could not be installed here"
    )


def browser_args(binary: str, profile, width: int = 1400) -> list[str]:
    return [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={width},900",
        "--hide-scrollbars",
        "--virtual-time-budget=5000",
    ]


def rendered(binary: str, page, profile, width: int = 1400,
             screenshot=None) -> tuple[str, dict[str, str]]:
    """The DOM headless Chromium builds from ``page`` with PROBE added, in a window ``width``
    pixels wide, and the data-* attributes PROBE's load handler set on its body; with
    ``screenshot`` (a path), also a PNG of the page as a person sees it."""
    probe = page.with_name("probe-" + page.name)
    probe.write_text(
        page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8"
    )
    if screenshot is not None:
        subprocess.run(
            [*browser_args(binary, profile, width), f"--screenshot={screenshot}", page.as_uri()],
            capture_output=True, timeout=120, check=False,
        )
    done = subprocess.run(
        [*browser_args(binary, profile, width), "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    body = re.search(r"<body([^>]*)>", done.stdout)
    assert body, f"no DOM from chromium (exit {done.returncode}): {done.stderr[-2000:]}"
    attributes = dict(re.findall(r'data-(\w+)="([^"]*)"', body.group(1)))
    assert attributes.get("done") == "yes", f"the load handler did not run: {body.group(0)}"
    return done.stdout, attributes


def test_gallery_renders_every_study_with_no_broken_image(tmp_path, monkeypatch):
    binary = chromium()
    storage = open_storage(f"sqlite:///{tmp_path / 'sweep.db'}")
    for data in STUDIES:
        run_study(parse_study(data, str(tmp_path / f"{data['name']}.toml")), storage)
    results = tmp_path / "results"
    monkeypatch.setenv(RESULTS_ENV, str(results))
    write_reports(storage, None)

    dom, attributes = rendered(binary, results / "index.html", tmp_path / "profile")
    assert int(attributes["studies"]) == len(STUDIES)
    assert int(attributes["images"]) == 3 * len(STUDIES)  # curves, landscape, momentum-vs-none each
    assert int(attributes["broken"]) == 0
    for data in STUDIES:
        assert f'href="{data["name"]}/index.html"' in dom
    assert "A &lt;b&gt;tiny&lt;/b&gt; &amp; search" in dom  # escaped text, not markup


def test_study_page_renders_with_no_broken_image(tmp_path, monkeypatch):
    binary = chromium()
    storage = open_storage(f"sqlite:///{tmp_path / 'sweep.db'}")
    data = STUDIES[1]
    run_study(parse_study(data, str(tmp_path / "grid.toml")), storage)
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "results"))
    write_reports(storage, [data["name"]])
    _, attributes = rendered(
        binary, tmp_path / "results" / data["name"] / "index.html", tmp_path / "profile"
    )
    assert int(attributes["images"]) >= 3 and int(attributes["broken"]) == 0
