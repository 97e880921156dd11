"""Limits said before they bite: a batch too large for the memory is refused before any trial
row is written, with the figures; the estimate it is judged by bounds the measured peak; a
large CSV is read with progress, in memory close to the file's size."""

from __future__ import annotations

import signal
import sqlite3
import tracemalloc

import numpy as np
import pytest

from sweep import data, limits
from sweep.cli import main
from sweep.search import run_study
from sweep.spec import parse_study
from sweep.store.connect import open_storage


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOMENTUM_SWEEP_RESULTS", str(tmp_path / "results"))
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def tables(db) -> dict[str, int]:
    connection = sqlite3.connect(db)
    try:
        return {table: connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("studies", "trials")}
    finally:
        connection.close()


def test_a_batch_no_machine_can_hold_is_refused_before_any_trial_row_is_written(
    tmp_path, capsys
):
    # 10^7 trials of 2,000 networks each in one batch: petabytes, on any machine.
    (tmp_path / "huge.toml").write_text(
        'name = "huge"\ntrials = 10000000\nbatch_size = 10000000\nfolds = 20\nrepeats = 100\n'
        '[data]\nsource = "synthetic"\nitems = 400\n[network]\nepochs = 5\n')
    db = tmp_path / "sweep.db"
    assert main(["run", "huge.toml", "--storage", f"sqlite:///{db}", "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "huge.toml: a batch of 10,000,000 trials (20,000,000,000 networks) needs about" in err
    assert "more than the" in err
    assert tables(db) == {"studies": 0, "trials": 0}


def test_a_batch_larger_than_the_memory_left_says_the_largest_that_fits(tmp_path, monkeypatch,
                                                                        capsys):
    spec = parse_study({"name": "big", "trials": 5000, "batch_size": 5000,
                        "data": {"source": "iris"}, "network": {"epochs": 50}},
                       str(tmp_path / "big.toml"))
    datasets = spec.datasets()
    available = 40_000_000
    monkeypatch.setattr(limits, "available_memory", lambda: available)
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    with pytest.raises(limits.SweepError) as refused:
        run_study(spec, open_storage(url), datasets=datasets)
    fits = int(str(refused.value).split("at most ")[1].replace(",", ""))
    usable = limits.USABLE_SHARE * available
    assert limits.batch_bytes(spec, datasets, fits) <= usable
    assert limits.batch_bytes(spec, datasets, fits + 1) > usable
    assert tables(tmp_path / "sweep.db") == {"studies": 0, "trials": 0}
    # With --workers, each worker trains a batch at once: four need four times the memory.
    monkeypatch.setattr(limits, "available_memory",
                        lambda: limits.batch_bytes(spec, datasets, 5000) * 2)
    limits.check_batch(spec, datasets, 5000)
    with pytest.raises(limits.SweepError, match="in each of 4 workers"):
        limits.check_batch(spec, datasets, 5000, processes=4)


def measured_peak(spec, storage) -> int:
    datasets = spec.datasets()
    tracemalloc.start()
    try:
        run_study(spec, storage, datasets=datasets)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
@pytest.mark.parametrize(("trials", "folds", "items", "epochs", "hidden"), [
    (400, 1, 100, 3, 7),     # many small trials: the per-trial cost
    (200, 5, 100, 60, 7),    # several networks a trial, longer curves
    (200, 1, 1500, 20, 7),   # many items: the item orders
    (200, 1, 100, 3, 64),    # a larger network
])
def test_the_batch_estimate_bounds_the_measured_peak_closely(tmp_path, trials, folds, items,
                                                             epochs, hidden):
    storage = open_storage(f"sqlite:///{tmp_path / 'sweep.db'}")
    warm = parse_study({"name": "warm", "trials": 2, "batch_size": 2,
                        "data": {"source": "synthetic", "items": 60}}, "warm.toml")
    run_study(warm, storage)  # the kernel loaded and the storage's first costs paid
    spec = parse_study({
        "name": "m", "trials": trials, "batch_size": trials, "folds": folds,
        "sampler": {"name": "random"},
        "data": {"source": "synthetic", "items": items, "inputs": 8, "classes": 3},
        "network": {"epochs": epochs, "hidden": hidden},
    }, "m.toml")
    peak = measured_peak(spec, storage)
    estimate = limits.batch_bytes(spec, spec.datasets(), trials)
    print(f"peak {peak / 1e6:.1f} MB, estimate {estimate / 1e6:.1f} MB")
    assert peak <= estimate <= 3.5 * peak, (peak, estimate)


def write_csv(path, rows: int, columns: int) -> int:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(rows, columns))
    with open(path, "w") as f:
        f.write(",".join(f"f{j}" for j in range(columns)) + ",label\n")
        for i in range(rows):
            f.write(",".join(f"{v:.10g}" for v in values[i]) + f",c{i % 3}\n")
    return path.stat().st_size


def test_a_large_csv_is_read_with_progress_in_memory_close_to_its_size(tmp_path, monkeypatch,
                                                                      capsys):
    path = tmp_path / "wide.csv"
    size = write_csv(path, 4000, 40)
    import pandas  # noqa: F401 (imported before measuring: its import is not the file's)

    # Small chunks, so that a chunk's text is small beside the file, as it is beside a file of
    # hundreds of megabytes; and "large" from the first byte, so that progress is said.
    monkeypatch.setattr(data, "CHUNK_CELLS", 1 << 13)
    monkeypatch.setattr(data, "PROGRESS_BYTES", 1)
    tracemalloc.start()
    try:
        data.read_csv_table(path, "label", "wide")
        read_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        dataset = data.load_csv(path, "label")
        load_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(dataset.x_train) + len(dataset.x_val) == 4000 and dataset.x_train.shape[1] == 40
    # Beside a fixed 2 MB (the buffer lines are counted in, a chunk of text), the features as
    # float64 alone; reading the text whole took 7 times the file.
    fixed = 2_000_000
    assert read_peak < size + fixed, (read_peak, size)
    assert load_peak < 3 * size + fixed, (load_peak, size)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"sweep: reading wide.csv ({size / 1e6:.0f} MB)"
    assert err[1].startswith("sweep: read wide.csv: 4,000 rows in ")


def test_a_bad_cell_far_into_a_csv_is_still_named_by_its_line(tmp_path, monkeypatch):
    path = tmp_path / "late.csv"
    write_csv(path, 300, 3)
    lines = path.read_text().splitlines()
    lines[250] = lines[250].replace(lines[250].split(",")[1], "oops", 1)
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(data, "CHUNK_CELLS", 64)  # the bad row in a later chunk
    with pytest.raises(data.DataError, match="column 'f1' has a non-numeric value 'oops' "
                                             "on line 251"):
        data.load_csv(path, "label")
