"""The small things of everyday use: --version, plurals, a CSV's delimiter, tuned.toml's
first line, the plots of a no-momentum or one-trial study, and report progress on a terminal."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sweep import plots  # noqa: E402
from sweep.analysis import Curve, LandscapePoint  # noqa: E402
from sweep.cli import main  # noqa: E402
from sweep.data import DataError, load_csv  # noqa: E402
from sweep.folders import RESULTS_ENV  # noqa: E402
from sweep.spec import parse_study  # noqa: E402

TINY = {
    "name": "tiny", "trials": 1, "batch_size": 1, "seed": 1,
    "data": {"source": "synthetic", "items": 40, "inputs": 3, "classes": 3},
    "network": {"epochs": 4},
}


def test_version_is_printed(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith("sweep (momentum-sweep) 0.")


@pytest.mark.parametrize(("separator", "name"), [(";", "semicolons"), ("\t", "tabs")])
def test_a_csv_separated_otherwise_gets_a_hint(tmp_path, separator, name):
    path = tmp_path / "x.csv"
    path.write_text(separator.join(["a", "b", "label"]) + "\n" + separator.join("12x") + "\n")
    with pytest.raises(DataError, match=f"looks separated by {name}; save the file comma-"):
        load_csv(path, "label")


def test_a_comma_separated_csv_without_the_target_gets_no_delimiter_hint(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b,label\n1,2,x\n")
    with pytest.raises(DataError) as error:
        load_csv(path, "klass")
    assert "looks separated" not in str(error.value)


def test_tuned_toml_says_in_words_where_it_came_from(tmp_path):
    text = parse_study(TINY, str(tmp_path / "tiny.toml")).with_fixed(0.05, 0.5)
    assert text.startswith("# Tuned from study 'tiny' by momentum-sweep: its answer's learning")
    assert "with_fixed" not in text and str(tmp_path) not in text


def _curve(number, momentum, rank=None, diverged=None, loss=(1.0, 0.8, 0.6, 0.5)):
    return Curve(
        number=number, state="diverged" if diverged else "complete", learning_rate=0.1,
        momentum=momentum, epochs=np.arange(1, len(loss) + 1), val_loss=np.array(loss),
        diverged_epoch=diverged, diverged_loss=None, rank=rank,
    )


def test_highlighted_curves_have_colours_of_their_own_and_a_legend_that_matches():
    from matplotlib.colors import to_hex

    curves = [_curve(n, 0.9, rank=n + 1) for n in range(5)] + [_curve(9, 0.9)]
    figure = plots.curves_figure(curves, title="t")
    (ax,) = figure.axes  # no colour bar: the colours are the ranks', not momentum's
    ranked = [line for line in ax.lines if line.get_label().startswith(("the answer", "#"))]
    colours = {to_hex(line.get_color()) for line in ranked}
    assert len(ranked) == 5 and len(colours) == 5  # one momentum, still five colours
    legend = figure.legends[0]
    entries = {text.get_text(): to_hex(handle.get_color())
               for text, handle in zip(legend.get_texts(), legend.legend_handles)
               if text.get_text().startswith(("the answer", "#"))}
    assert set(entries.values()) == colours
    assert next(iter(entries)).startswith("the answer: trial 0")
    plots.close(figure)


def test_a_blow_up_does_not_stretch_the_curves_axis():
    curves = [_curve(0, 0.5, rank=1), _curve(1, 0.5),
              _curve(2, 0.9, diverged=2, loss=(1.0, 30.0))]
    figure = plots.curves_figure(curves, title="t")
    (ax,) = figure.axes
    assert ax.get_ylim()[1] < 5  # not 30: the blow-up is a mark on the top edge
    plots.close(figure)


def test_a_one_setting_study_draws_a_message_not_a_one_point_landscape():
    one = [LandscapePoint(number=0, state="complete", learning_rate=0.1, momentum=0.5, value=0.3)]
    figure = plots.landscape_figure(one, title="t", objective_label="final validation loss", best=0)
    (ax,) = figure.axes
    assert [t.get_text() for t in ax.texts] == [plots.ONE_SETTING]
    assert not ax.collections and not ax.lines
    plots.close(figure)


def test_run_counts_one_trial_in_the_singular_and_report_shows_progress_on_a_terminal(
    tmp_path, capsys, monkeypatch
):
    study = tmp_path / "tiny.toml"
    study.write_text(
        'name = "tiny"\ntrials = 1\nbatch_size = 1\n[data]\nsource = "synthetic"\n'
        "items = 40\ninputs = 3\nclasses = 3\n[network]\nepochs = 4\n"
    )
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    assert main(["run", str(study), "--quiet", "--storage", url]) == 0
    assert "tiny: 1 trial finished (1 added this run)" in capsys.readouterr().out
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "results"))
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert main(["report", "--all", "--storage", url]) == 0
    assert "report: study 1/1 tiny" in capsys.readouterr().err


def test_the_readme_cites_the_article_and_needs_nothing_outside_the_repository():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert "\"Neural Network Momentum\"" in readme and "James D. McCaffrey" in readme
    assert "../" not in readme


# ---- issue 24: a command from anywhere, the small gaps ----------------------------------------


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with results/ and studies/, and one tiny study run in it."""
    monkeypatch.delenv(RESULTS_ENV, raising=False)
    (tmp_path / "results").mkdir()
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "tiny.toml").write_text(
        'name = "tiny"\ntrials = 4\nbatch_size = 4\nseed = 1\nfolds = 2\nrepeats = 1\n'
        '[data]\nsource = "synthetic"\nitems = 40\ninputs = 3\nclasses = 3\n'
        "[network]\nepochs = 4\n")
    monkeypatch.chdir(tmp_path / "studies")
    # From studies/, by name: the project's studies/tiny.toml, stored in its results/.
    assert main(["run", "tiny", "--quiet", "--no-confirm"]) == 0
    return tmp_path


def test_commands_find_the_projects_results_from_any_folder_inside_it(project, capsys,
                                                                       monkeypatch):
    assert (project / "results" / "sweep.db").exists()
    for folder in (project, project / "studies", project / "results"):
        monkeypatch.chdir(folder)
        assert main(["list"]) == 0
        assert "tiny" in capsys.readouterr().out
    monkeypatch.chdir(project.parent)  # outside the project: no results/ here or above
    assert main(["list"]) == 2
    assert "--storage" in capsys.readouterr().err  # says how to point at one


def test_list_breaks_trials_down_by_state_and_replay_gives_the_valid_range(project, capsys):
    assert main(["list"]) == 0
    assert "4 complete" in capsys.readouterr().out
    assert main(["replay", "tiny", "99999"]) == 2
    assert "numbered 0 to 3" in capsys.readouterr().err


def test_a_mistyped_verb_gets_a_suggestion(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["lst"])
    assert stop.value.code == 2 and "did you mean 'list'?" in capsys.readouterr().err


def test_progress_piped_is_plain_lines_with_a_rate(monkeypatch, capsys):
    from types import SimpleNamespace

    from sweep import cli

    show = cli._progress_printer("s", quiet=False)
    progress = SimpleNamespace(done=0, total=10, complete=0, pruned=0, diverged=0, failed=0)
    show(progress)
    progress.done = progress.complete = 10
    show(progress)
    err = capsys.readouterr().err
    assert "\r" not in err and err.count("\n") == 2
    assert err.splitlines()[-1].startswith("s: 10/10  complete 10")


def test_delete_rewrites_the_gallery_and_a_rerun_with_nothing_new_reads_no_trials(
    project, capsys, monkeypatch
):
    from sweep import report

    monkeypatch.chdir(project)
    assert main(["report", "--all"]) == 0
    assert 'href="tiny/index.html"' in (project / "results" / "index.html").read_text()
    read = []
    real = report.load_study
    monkeypatch.setattr(report, "load_study", lambda *a: read.append(a[1]) or real(*a))
    capsys.readouterr()
    assert main(["report", "--all"]) == 0
    assert read == []  # nothing new: decided from a few queries per study, no trial read
    assert main(["delete", "tiny", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "index: wrote" in out
    assert "tiny/index.html" not in (project / "results" / "index.html").read_text()
