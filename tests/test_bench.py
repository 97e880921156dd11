"""`make bench`: its entry point's options reach only its own parser, and the sampler
comparison runs in its quick mode."""

import sys

import pytest

import sweep.bench as bench
import sweep.bench_answers as bench_answers
import sweep.bench_sampler as bench_sampler
import sweep.bench_search as bench_search


def test_bench_options_are_not_passed_on_to_the_search_bench(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(bench, "trainer_figures", lambda epochs: {1: 10.0, 16: 1.0})
    monkeypatch.setattr(bench_search, "main", lambda argv=None: calls.append(argv))
    monkeypatch.setattr(bench_sampler, "main", lambda argv=None: calls.append(("sampler", argv)))
    monkeypatch.setattr(bench_answers, "main", lambda argv=None: calls.append(("answers", argv)))
    monkeypatch.setattr(sys, "argv", ["python -m sweep.bench", "--skip-kernel"])
    bench.main()
    assert calls == [[], ("sampler", []), ("answers", [])]
    assert "train_many K =   16:    1.000 us" in capsys.readouterr().out


@pytest.mark.slow
def test_the_sampler_bench_runs_in_its_quick_mode(capsys):
    bench_sampler.main(["--quick"])
    out = capsys.readouterr().out
    for name in ("iris-tpe", "valley", "rosenbrock"):
        assert f"  {name}" in out
    assert out.count("batch TPE   median") == 3 and out.count("Optuna TPE  median") == 3
    assert "1,000 stored: batch TPE" in out
