"""Every file written whole: a full disk, a read-only folder or a write that fails part-way
leaves the old file or none, never a truncated or empty one, and is one line naming the file.

The end-to-end cases run `sweep` in a private mount namespace (``unshare -rm``, no privilege
needed where user namespaces are enabled), where the results folder is a tiny tmpfs that fills
up (a real ENOSPC) or a read-only bind mount (a real EROFS); nothing is mounted outside it.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sweep import files
from sweep.cli import main
from sweep.files import FileWriteError

TINY = """\
name = "tiny"
trials = {trials}
batch_size = 4
seed = 1
[data]
source = "synthetic"
items = 60
inputs = 2
classes = 2
[network]
epochs = 30
hidden = 2
"""


# --- the helper itself -----------------------------------------------------------------------


def test_a_write_that_fails_part_way_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "best.json"
    target.write_text("old contents")

    def half_then_full(temporary: Path):
        temporary.write_text("half of the new")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(FileWriteError) as caught:
        files.write_with(target, half_then_full)
    assert str(caught.value) == f"{target}: cannot write (No space left on device)"
    assert target.read_text() == "old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.json"]


def test_an_interrupted_write_leaves_no_file_where_there_was_none(tmp_path):
    def interrupted(temporary: Path):
        temporary.write_text("part")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.write_with(tmp_path / "curves.png", interrupted)
    assert list(tmp_path.iterdir()) == []


def test_a_file_is_replaced_whole_with_the_permissions_a_plain_write_gives(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    target = tmp_path / "index.html"
    target.write_text("old")
    target.chmod(0o444)  # a read-only file in a writable folder is replaced, as editors do
    files.write_text(target, "new page")
    assert target.read_text() == "new page"
    assert target.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_a_folder_that_cannot_be_made_is_one_line_naming_it(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(FileWriteError, match=r"afile/study: cannot create the folder"):
        files.make_folder(tmp_path / "afile" / "study")


# --- full disk and read-only folders, end to end ---------------------------------------------


def namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return probe.returncode == 0


needs_namespaces = pytest.mark.skipif(
    not namespaces_work(), reason="needs `unshare -rm` (user and mount namespaces)"
)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def run_in_namespace(setup: str, argv: list[str], results: Path, env: dict):
    """Run ``sweep ARGV`` after the shell lines ``setup`` in a private mount namespace; the
    results folder's contents as the command left them are copied out to ``results``.after."""
    after = results.with_name(results.name + ".after")
    script = "\n".join([
        "set -e",
        setup,
        "set +e",
        " ".join(f"'{a}'" for a in [sys.executable, "-m", "sweep", *argv]) + " 2>command.err",
        "code=$?",
        f"mkdir -p '{after}' && cp -a '{results}/.' '{after}/'",
        "exit $code",
    ])
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True,
                          text=True, timeout=300, cwd=results.parent, env=env)
    err = (results.parent / "command.err").read_text()
    return done.returncode, err, snapshot(after)


@pytest.fixture
def study_reported_then_grown(tmp_path, monkeypatch):
    """A study with a report written at 4 trials, then grown to 8: its next report and export
    write new files. Returns (url, results folder, its files before, the files a report and an
    export on a healthy disk write now, the environment to run in)."""
    results = tmp_path / "results"
    monkeypatch.setenv("MOMENTUM_SWEEP_RESULTS", str(results))
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    study = tmp_path / "tiny.toml"
    study.write_text(TINY.format(trials=4))
    assert main(["run", str(study), "--quiet", "--storage", url]) == 0
    assert main(["report", "tiny", "--storage", url]) == 0
    assert main(["export", "tiny", "--storage", url]) == 0
    before = snapshot(results)
    study.write_text(TINY.format(trials=8))
    assert main(["run", str(study), "--quiet", "--storage", url]) == 0
    healthy = tmp_path / "healthy"
    monkeypatch.setenv("MOMENTUM_SWEEP_RESULTS", str(healthy))
    shutil.copytree(results, healthy)
    assert main(["report", "tiny", "--storage", url]) == 0
    assert main(["export", "tiny", "--storage", url]) == 0
    monkeypatch.setenv("MOMENTUM_SWEEP_RESULTS", str(results))
    env = {**__import__("os").environ, "MOMENTUM_SWEEP_RESULTS": str(results)}
    return url, results, before, snapshot(healthy), env


def assert_whole(after: dict, before: dict, healthy: dict) -> None:
    """Every file is the old one or the new one whole, and no temporary is left."""
    assert set(after) <= set(before) | set(healthy), sorted(set(after) - set(before))
    for name, data in after.items():
        assert data in (before.get(name), healthy.get(name)), f"{name}: a partial file"
        assert data, f"{name}: an empty file"


@needs_namespaces
@pytest.mark.slow
@pytest.mark.parametrize("verb", ["report", "export"])
def test_a_full_disk_during_report_or_export_leaves_whole_files_and_one_line(
    study_reported_then_grown, verb
):
    url, results, before, healthy, env = study_reported_then_grown
    saved = results.with_name("saved")
    shutil.copytree(results, saved)
    # A tmpfs holding the old results and a filler that leaves 12 KB free: too little for a
    # new plot or curves.csv beside the old one.
    setup = "\n".join([
        f"mount -t tmpfs -o size=4m tmpfs '{results}'",
        f"cp -a '{saved}/.' '{results}/'",
        f"head -c 8m /dev/zero > '{results}/filler' 2>/dev/null || true",
        f"truncate -s -12K '{results}/filler'",
    ])
    code, err, after = run_in_namespace(setup, [verb, "tiny", "--storage", url], results, env)
    after.pop("filler")
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"sweep: error: {results}/"), err
    assert lines[0].endswith("cannot write (No space left on device)"), err
    assert_whole(after, before, healthy)


@needs_namespaces
@pytest.mark.slow
@pytest.mark.parametrize("verb", ["report", "export"])
def test_a_read_only_study_folder_during_report_or_export_is_one_line_naming_the_file(
    study_reported_then_grown, verb
):
    url, results, before, healthy, env = study_reported_then_grown
    folder = results / "tiny"
    setup = f"mount --bind '{folder}' '{folder}'\nmount -o remount,bind,ro '{folder}'"
    code, err, after = run_in_namespace(setup, [verb, "tiny", "--storage", url], results, env)
    assert code == 2, err
    assert err.strip().count("\n") == 0 and "Traceback" not in err, err
    assert err.startswith(f"sweep: error: {folder}/") and "Read-only file system" in err, err
    assert_whole(after, before, healthy)
    assert snapshot(folder) == {k[len("tiny/"):]: v for k, v in before.items()
                                if k.startswith("tiny/")}
