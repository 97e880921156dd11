"""`make bench`'s entry point: its options reach only its own parser."""

import sys

import sweep.bench as bench
import sweep.bench_search as bench_search


def test_bench_options_are_not_passed_on_to_the_search_bench(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(bench, "trainer_figures", lambda epochs: {1: 10.0, 16: 1.0})
    monkeypatch.setattr(bench_search, "main", lambda argv=None: calls.append(argv))
    monkeypatch.setattr(sys, "argv", ["python -m sweep.bench", "--skip-kernel"])
    bench.main()
    assert calls == [[]]
    assert "train_many K =   16:    1.000 us" in capsys.readouterr().out
