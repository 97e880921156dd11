"""Issue 5: every bad input fails with one clear line, exit code 2, no traceback, and no write.

Each case drives the real command line (``sweep.cli.main``) in-process against a copy of a
small results database made by a valid study, and checks that the copy is byte-for-byte the
same afterwards. Storage URL passwords must never be printed.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pytest

from sweep.cli import main

# A valid study, small enough to run in well under a second.
TINY = """\
name = "tiny"
trials = 2
batch_size = 2
seed = 1
[data]
source = "synthetic"
items = 30
inputs = 2
classes = 2
[network]
epochs = 3
hidden = 2
"""

# Same name as TINY, different search space (epochs is part of the search fingerprint).
TINY_CHANGED = TINY.replace("epochs = 3", "epochs = 4")

# A valid study with a new name: running it would write to the storage.
FRESH = TINY.replace('name = "tiny"', 'name = "fresh"')


def study(body: str, name: str = "bad") -> str:
    """A small study file named ``name`` with ``body`` appended (tables go after the top keys)."""
    return f'name = "{name}"\ntrials = 2\nbatch_size = 2\n{body}'


def csv_study(target: str = "label") -> str:
    return study(f'[data]\nsource = "csv"\npath = "data.csv"\ntarget = "{target}"\n[network]\nepochs = 3\nhidden = 2\n')


# Rows "i,i % 3,x|y" for i = 0..19: row i is on line i + 2, label x for odd i.
GOOD_CSV = "a,b,label\n" + "".join(f"{i},{i % 3},{'x' if i % 2 else 'y'}\n" for i in range(20))


def bad_csv(old: str, new: str) -> str:
    assert old in GOOD_CSV
    return GOOD_CSV.replace(old, new)


@dataclass
class Case:
    id: str
    argv: list[str]  # {tmp}: the test's folder; {url}: sqlite URL of the results database
    expect: list[str]  # phrases the one error line must contain
    files: dict[str, str | bytes] = field(default_factory=dict)
    # Which results database {url} points at: "copy" (of the valid one), "garbage", "other"
    # (SQLite, not Optuna), "alembic" (Optuna, unknown schema version), "multi" (the copy and a
    # multi-objective study made with Optuna), "newer" (the copy, its stored spec holding a key
    # from a newer version), or "absent" (no file, and none may be created).
    db: str = "copy"
    marks: tuple = ()


def case(*args, **kwargs):
    c = Case(*args, **kwargs)
    return pytest.param(c, id=c.id, marks=c.marks)


S = ["--storage", "{url}"]

CASES = [
    # ---- study files -----------------------------------------------------------------------
    case("study-file-missing", ["run", "{tmp}/nope.toml", *S], ["nope.toml", "file not found"]),
    case("study-file-is-a-directory", ["run", "{tmp}/dir.toml", *S], ["dir.toml", "is a directory"],
         files={"dir.toml/": ""}),
    case("study-file-not-utf8", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "not UTF-8"],
         files={"bad.toml": b'name = "caf\xe9"\n'}),
    case("toml-syntax-error", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "invalid TOML", "line 2"],
         files={"bad.toml": 'name = "bad"\ntrials = = 3\n'}),
    case("unknown-top-level-key", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "trails", "unknown key", "did you mean 'trials'"],
         files={"bad.toml": 'name = "bad"\ntrails = 3\n'}),
    case("key-of-a-table-at-top-level", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "epochs", "belongs in [network]"],
         files={"bad.toml": 'name = "bad"\nepochs = 3\n'}),
    case("unknown-key-in-network", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "network.layers", "unknown key"],
         files={"bad.toml": study("[network]\nlayers = 2\n")}),
    case("name-missing", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "name", "required"],
         files={"bad.toml": "trials = 2\n"}),
    case("epochs-is-a-string", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "network.epochs", "must be an integer", "'ten'"],
         files={"bad.toml": study('[network]\nepochs = "ten"\n')}),
    case("bool-where-int", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "network.hidden", "must be an integer", "boolean"],
         files={"bad.toml": study("[network]\nhidden = true\n")}),
    case("batch-size-above-the-limit", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "batch_size", "must be <= 10000000", "1000000000000"],
         files={"bad.toml": 'name = "bad"\nbatch_size = 1000000000000\n'}),
    case("trials-zero", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "trials", "must be >= 1"],
         files={"bad.toml": 'name = "bad"\ntrials = 0\n'}),
    case("learning-rate-low-zero", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "search.learning_rate.low", "must be > 0"],
         files={"bad.toml": study("[search.learning_rate]\nlow = 0.0\n")}),
    case("learning-rate-low-negative", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "search.learning_rate.low", "must be > 0"],
         files={"bad.toml": study("[search.learning_rate]\nlow = -0.1\n")}),
    case("momentum-high-one", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "search.momentum.high", "must be < 1"],
         files={"bad.toml": study("[search.momentum]\nhigh = 1.0\n")}),
    case("momentum-low-above-high", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "search.momentum.high", "must be >= low"],
         files={"bad.toml": study("[search.momentum]\nlow = 0.8\nhigh = 0.5\n")}),
    case("grid-value-outside-range", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "search.momentum.values[1]", "within [low, high]"],
         files={"bad.toml": study('[sampler]\nname = "grid"\n[search.learning_rate]\nfixed = 0.1\n'
                                  "[search.momentum]\nvalues = [0.1, 0.99]\nhigh = 0.9\n")}),
    case("unknown-rule", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "network.rule", "must be one of", "'nestorov'", "did you mean 'nesterov'"],
         files={"bad.toml": study('[network]\nrule = "nestorov"\n')}),
    case("unknown-sampler", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "sampler.name", "must be one of", "'cmaes'"],
         files={"bad.toml": study('[sampler]\nname = "cmaes"\n')}),
    case("unknown-pruner", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "pruner.name", "must be one of", "'hyperband'"],
         files={"bad.toml": study('[pruner]\nname = "hyperband"\n')}),
    case("unknown-objective", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "objective.name", "must be one of"],
         files={"bad.toml": study('[objective]\nname = "accuracy"\n')}),
    case("pruner-warmup-past-epochs", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "pruner.warmup_steps", "must be < network.epochs"],
         files={"bad.toml": study('[network]\nepochs = 5\n[pruner]\nname = "median"\nwarmup_steps = 5\n')}),
    case("validation-fraction-above-one", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "data.validation_fraction", "must be in (0, 1)"],
         files={"bad.toml": study("[data]\nvalidation_fraction = 1.5\n")}),
    case("study-name-with-slash", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "name", "may contain only", "'a/b'"],
         files={"bad.toml": 'name = "a/b"\n'}),
    case("study-name-with-dotdot", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "name", "must not contain '..'"],
         files={"bad.toml": 'name = "x..y"\n'}),
    case("study-name-escaping-results", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "name", "'../evil'"],
         files={"bad.toml": 'name = "../evil"\n'}),
    case("study-name-is-the-results-index", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "name", "'index.html'", "results folder", "another name"],
         files={"bad.toml": 'name = "index.html"\n'}),
    case("study-name-is-the-momentum-page-folder", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "name", "'Momentum'", "results folder"],
         files={"bad.toml": 'name = "Momentum"\n'}),
    case("study-name-is-the-results-readme", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "name", "'README.md'", "results folder"],
         files={"bad.toml": 'name = "README.md"\n'}),
    case("study-name-is-the-database", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "name", "'sweep.db'", "results folder"],
         files={"bad.toml": 'name = "sweep.db"\n'}),
    case("study-name-is-a-database-lock-in-other-case", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "name", "'Sweep.DB.lock'"],
         files={"bad.toml": 'name = "Sweep.DB.lock"\n'}),
    case("trials-2-to-the-63", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "trials", "must be <= 10000000"],
         files={"bad.toml": 'name = "bad"\ntrials = 9223372036854775807\n'}),
    case("study-file-is-a-fifo", ["run", "{tmp}/pipe.toml", *S], ["pipe.toml", "not a regular file"],
         files={"pipe.toml|": ""}),
    case("second-file-bad-first-good", ["run", "{tmp}/fresh.toml", "{tmp}/bad.toml", *S], ["bad.toml", "network.epochs"],
         files={"fresh.toml": FRESH, "bad.toml": study("[network]\nepochs = 0\n")}),
    # ---- CSV data ----------------------------------------------------------------------------
    case("csv-missing", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "data.path", "file not found", "data.csv"],
         files={"bad.toml": csv_study()}),
    case("csv-without-target-key", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "data.target", "required"],
         files={"bad.toml": study('[data]\nsource = "csv"\npath = "data.csv"\n'), "data.csv": GOOD_CSV}),
    case("csv-non-numeric-feature", ["run", "{tmp}/bad.toml", *S], ["data.csv", "column 'b'", "line 4"],
         files={"bad.toml": csv_study(), "data.csv": bad_csv("2,2,y", "2,two,y")}),
    case("csv-nan-feature", ["run", "{tmp}/bad.toml", *S], ["data.csv", "column 'a'", "line 5"],
         files={"bad.toml": csv_study(), "data.csv": bad_csv("3,0,x", "nan,0,x")}),
    case("csv-infinite-feature", ["run", "{tmp}/bad.toml", *S], ["data.csv", "column 'b'", "line 5"],
         files={"bad.toml": csv_study(), "data.csv": bad_csv("3,0,x", "3,inf,x")}),
    case("csv-feature-too-large-to-standardise", ["run", "{tmp}/bad.toml", *S], ["data.csv", "feature column 'b'", "cannot be standardised in float64", "rescale"],
         files={"bad.toml": csv_study(), "data.csv": GOOD_CSV.replace(",1,", ",1e154,").replace(",2,", ",-3e160,")}),
    case("csv-one-class", ["run", "{tmp}/bad.toml", *S], ["data.csv", "only one class"],
         files={"bad.toml": csv_study(), "data.csv": bad_csv(",x\n", ",y\n")}),
    case("csv-target-column-missing", ["run", "{tmp}/bad.toml", *S], ["data.csv", "target column 'klass' not found", "'label'"],
         files={"bad.toml": csv_study("klass"), "data.csv": GOOD_CSV}),
    case("csv-empty", ["run", "{tmp}/bad.toml", *S], ["data.csv", "empty"],
         files={"bad.toml": csv_study(), "data.csv": ""}),
    case("csv-ragged-row", ["run", "{tmp}/bad.toml", *S], ["data.csv", "line 3", "fields"],
         files={"bad.toml": csv_study(), "data.csv": bad_csv("1,1,x", "1,1,x,9")}),
    case("csv-not-utf8", ["run", "{tmp}/bad.toml", *S], ["data.csv", "not UTF-8"],
         files={"bad.toml": csv_study(), "data.csv": GOOD_CSV.encode() + b"1,2,\xff\n"}),
    case("csv-bad-after-a-good-study", ["run", "{tmp}/fresh.toml", "{tmp}/bad.toml", *S], ["data.csv", "only one class"],
         files={"fresh.toml": FRESH, "bad.toml": csv_study(), "data.csv": bad_csv(",x\n", ",y\n")}),
    case("csv-bad-with-workers", ["run", "{tmp}/bad.toml", "--workers", "2", *S], ["data.csv", "only one class"],
         files={"bad.toml": csv_study(), "data.csv": bad_csv(",x\n", ",y\n")}),
    case("csv-repeated-feature-column", ["run", "{tmp}/bad.toml", *S], ["data.csv", "column 'a'", "more than once"],
         files={"bad.toml": csv_study(), "data.csv": GOOD_CSV.replace("a,b,label", "a,a,label")}),
    case("csv-repeated-target-column", ["run", "{tmp}/bad.toml", *S], ["data.csv", "column 'label'", "more than once"],
         files={"bad.toml": csv_study(), "data.csv": GOOD_CSV.replace("a,b,label", "a,label,label")}),
    case("csv-too-many-columns", ["run", "{tmp}/bad.toml", *S], ["data.csv", "10002 columns", "at most 10000"],
         files={"bad.toml": csv_study(), "data.csv": ",".join(f"c{i}" for i in range(10001)) + ",label\n" + "0," * 10001 + "x\n"}),
    case("csv-one-number-spelt-two-ways", ["run", "{tmp}/bad.toml", *S], ["data.csv", "'1' and '1.0'", "labels are text"],
         files={"bad.toml": csv_study(), "data.csv": GOOD_CSV.replace(",x\n", ",1\n").replace(",y\n", ",1.0\n")}),
    case("csv-is-a-fifo", ["run", "{tmp}/bad.toml", *S], ["bad.toml", "data.path", "not a file"],
         files={"bad.toml": csv_study(), "data.csv|": ""}),
    # ---- command-line arguments ---------------------------------------------------------------
    case("no-verb", [], ["required", "VERB"]),
    case("unknown-verb", ["frobnicate"], ["invalid choice", "'frobnicate'"]),
    case("run-without-study", ["run", *S], ["required", "STUDY"]),
    case("unknown-option", ["list", "--colour", *S], ["unrecognized arguments", "--colour"]),
    case("storage-without-value", ["list", "--storage"], ["--storage", "expected one argument"]),
    case("workers-zero", ["run", "{tmp}/fresh.toml", "--workers", "0", *S], ["--workers", "at least 1"],
         files={"fresh.toml": FRESH}),
    case("workers-not-a-number", ["run", "{tmp}/fresh.toml", "--workers", "abc", *S], ["--workers", "invalid int value", "'abc'"],
         files={"fresh.toml": FRESH}),
    case("workers-abbreviated", ["run", "{tmp}/fresh.toml", "--worker", "2", *S], ["unrecognized arguments", "--worker"],
         files={"fresh.toml": FRESH}),
    case("workers-above-the-maximum", ["run", "{tmp}/fresh.toml", "--workers", "65", *S], ["--workers", "at most 64", "got 65"],
         files={"fresh.toml": FRESH}),
    case("workers-twenty-digits", ["run", "{tmp}/fresh.toml", "--workers", "99999999999999999999", *S], ["--workers", "at most 64"],
         files={"fresh.toml": FRESH}),
    case("storage-abbreviated", ["list", "--stor", "{url}"], ["unrecognized arguments", "--stor"]),
    case("report-all-and-a-name", ["report", "--all", "tiny", *S], ["name studies or pass --all, not both"]),
    case("replay-trial-not-a-number", ["replay", "tiny", "first", *S], ["TRIAL", "invalid int value", "'first'"]),
    case("confirm-no-candidates", ["confirm", "tiny", "--candidates", "0", *S], ["--candidates", "at least 1"]),
    case("confirm-too-few-networks", ["confirm", "tiny", "--networks", "10", *S], ["--networks", "at least 20"]),
    # ---- names in the storage ------------------------------------------------------------------
    case("best-unknown-study", ["best", "nosuch", *S], ["no study named 'nosuch'"]),
    case("best-of-missing-study-file", ["best", "{tmp}/nope.toml", *S], ["nope.toml", "file not found"]),
    case("replay-unknown-study", ["replay", "nosuch", "0", *S], ["no study named 'nosuch'"]),
    case("replay-unknown-trial", ["replay", "tiny", "99", *S], ["'tiny'", "no trial 99"]),
    case("export-unknown-study", ["export", "nosuch", "--out", "{tmp}/out", *S], ["no study named 'nosuch'"]),
    case("report-unknown-study", ["report", "nosuch", *S], ["no study named 'nosuch'"]),
    case("confirm-unknown-study", ["confirm", "nosuch", *S], ["no study named 'nosuch'"]),
    case("same-name-different-search", ["run", "{tmp}/changed.toml", *S], ["changed.toml", "'tiny'", "new name", "--allow-spec-change", "epochs: stored 3, the file 4", 'name = "tiny-2"'],
         files={"changed.toml": TINY_CHANGED}),
    case("same-name-different-search-after-a-good-study", ["run", "{tmp}/fresh.toml", "{tmp}/changed.toml", *S],
         ["changed.toml", "'tiny'", "--allow-spec-change"],
         files={"fresh.toml": FRESH, "changed.toml": TINY_CHANGED}),
    case("two-files-same-name-different-search", ["run", "{tmp}/a.toml", "{tmp}/b.toml", *S], ["b.toml", "'dup'", "a.toml"],
         files={"a.toml": TINY.replace('"tiny"', '"dup"'), "b.toml": TINY_CHANGED.replace('"tiny"', '"dup"')}),
    # ---- studies this version cannot read -----------------------------------------------------
    case("best-of-a-multi-objective-optuna-study", ["best", "multi", *S], ["'multi'", "2 objectives", "single-objective"], db="multi"),
    case("export-of-a-multi-objective-optuna-study", ["export", "multi", "--out", "{tmp}/out", *S], ["'multi'", "2 objectives"], db="multi"),
    case("report-of-a-multi-objective-optuna-study", ["report", "multi", *S], ["'multi'", "2 objectives"], db="multi"),
    case("best-of-a-spec-from-a-newer-version", ["best", "tiny", *S], ["'tiny'", "another version", "'data.colour'"], db="newer"),
    case("replay-of-a-spec-from-a-newer-version", ["replay", "tiny", "0", *S], ["'tiny'", "another version", "'data.colour'"], db="newer"),
    case("run-onto-a-spec-from-a-newer-version", ["confirm", "tiny", *S], ["'tiny'", "another version"], db="newer"),
    # ---- storages ------------------------------------------------------------------------------
    case("storage-unknown-scheme", ["list", "--storage", "foo://x"], ["cannot open storage", "foo://x"]),
    case("storage-not-a-url", ["list", "--storage", "results.db"], ["storage URL", "'results.db'", "not a database URL"]),
    case("sqlite-url-without-file", ["list", "--storage", "sqlite://"], ["names no file"]),
    case("sqlite-folder-missing", ["list", "--storage", "sqlite:///{tmp}/nodir/x.db"], ["nodir", "does not exist"]),
    case("run-into-missing-folder", ["run", "{tmp}/fresh.toml", "--storage", "sqlite:///{tmp}/nodir/x.db"], ["nodir", "does not exist"],
         files={"fresh.toml": FRESH}),
    case("sqlite-url-is-a-directory", ["list", "--storage", "sqlite:///{tmp}/dbdir"], ["dbdir", "is a directory"],
         files={"dbdir/": ""}),
    case("results-db-is-garbage", ["list", *S], ["results.db", "not a SQLite database"], db="garbage"),
    case("run-into-garbage-db", ["run", "{tmp}/fresh.toml", *S], ["results.db", "not a SQLite database"],
         files={"fresh.toml": FRESH}, db="garbage"),
    case("results-db-not-optuna", ["run", "{tmp}/fresh.toml", *S], ["results.db", "not an Optuna one"],
         files={"fresh.toml": FRESH}, db="other"),
    case("results-db-unknown-schema", ["best", "tiny", *S], ["results.db", "schema 'v99.0.0'", "optuna storage upgrade"], db="alembic"),
    case("run-into-unknown-schema", ["run", "{tmp}/fresh.toml", *S], ["results.db", "schema 'v99.0.0'"],
         files={"fresh.toml": FRESH}, db="alembic"),
    case("best-in-absent-db", ["best", "tiny", *S], ["results.db", "no results database"], db="absent"),
    case("export-from-absent-db", ["export", "tiny", "--out", "{tmp}/out", *S], ["results.db", "no results database"], db="absent"),
    case("postgresql-refused", ["list", "--storage", "postgresql://user:s3cr3t-pw@127.0.0.1:1/db"],
         ["cannot open storage", "postgresql://user:***@127.0.0.1:1/db"]),
]


def checkpoint(path: Path) -> None:
    """Fold the WAL into the main file, so the main file alone holds the database."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


@pytest.fixture(scope="module")
def results_db(tmp_path_factory) -> Path:
    """A results database holding one finished valid study, 'tiny' (2 trials)."""
    folder = tmp_path_factory.mktemp("fixture")
    (folder / "tiny.toml").write_text(TINY)
    db = folder / "results.db"
    assert main(["run", str(folder / "tiny.toml"), "--quiet", "--storage", f"sqlite:///{db}"]) == 0
    gc.collect()
    checkpoint(db)
    return db


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Reports and exports land under tmp_path; main's SIGTERM handler does not outlive a test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOMENTUM_SWEEP_RESULTS", str(tmp_path / "results"))
    handler = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, handler)


def make_db(kind: str, db: Path, results_db: Path) -> None:
    if kind == "absent":
        return
    if kind == "garbage":
        db.write_bytes(bytes(range(256)) * 8)
        return
    if kind == "other":
        connection = sqlite3.connect(db)
        connection.execute("CREATE TABLE measurements (x REAL)")
        connection.execute("INSERT INTO measurements VALUES (1.5)")
        connection.commit()
        connection.close()
        return
    shutil.copy(results_db, db)
    if kind == "multi":
        study = optuna.create_study(storage=f"sqlite:///{db}", study_name="multi",
                                    directions=["minimize", "maximize"])
        study.optimize(lambda trial: (trial.suggest_float("x", 0, 1), 1.0), n_trials=2)
        del study
        gc.collect()
        checkpoint(db)
    if kind == "newer":
        connection = sqlite3.connect(db)
        (stored,) = connection.execute(
            "SELECT value_json FROM study_user_attributes WHERE key = 'spec'").fetchone()
        spec = json.loads(stored)
        spec["data"]["colour"] = "blue"
        connection.execute("UPDATE study_user_attributes SET value_json = ? WHERE key = 'spec'",
                           (json.dumps(spec),))
        connection.commit()
        connection.close()
        checkpoint(db)
    if kind == "alembic":
        connection = sqlite3.connect(db)
        connection.execute("UPDATE alembic_version SET version_num = 'v99.0.0'")
        connection.commit()
        connection.close()
        checkpoint(db)


def run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:  # argparse
        return exit_.code


def one_error_line(capsys) -> tuple[str, str]:
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = err.rstrip("\n").split("\n")
    assert len(lines) == 1 and lines[0].strip(), f"want one error line, got {err!r}"
    return out, lines[0]


def wal_bytes(db: Path) -> int:
    wal = db.with_name(db.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


@pytest.mark.parametrize("bad", CASES)
def test_bad_input_is_one_line_exit_2_and_no_write(bad: Case, tmp_path, results_db, capsys):
    for name, content in bad.files.items():
        path = tmp_path / name
        if name.endswith("/"):
            path.mkdir()
        elif name.endswith("|"):
            os.mkfifo(tmp_path / name[:-1])
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    db = tmp_path / "results.db"
    make_db(bad.db, db, results_db)
    before = db.read_bytes() if db.exists() else None
    argv = [a.format(tmp=tmp_path, url=f"sqlite:///{db}") for a in bad.argv]

    code = run_cli(argv)

    out, line = one_error_line(capsys)
    assert code == 2, line
    for phrase in bad.expect:
        assert phrase in line, f"{phrase!r} not in {line!r}"
    gc.collect()  # close any connection a failed command left open
    if before is None:
        assert not db.exists(), "a command that failed created the results database"
    else:
        assert wal_bytes(db) == 0, "the failed command wrote to the database's WAL"
        assert db.read_bytes() == before, "the failed command changed the results database"
    assert not (tmp_path / "nodir").exists()
    assert not (tmp_path / "out").exists() and not (tmp_path / "results").exists()
    assert "s3cr3t" not in out + line


# ---- passwords -------------------------------------------------------------------------------

PASSWORD = "s3cr3t-pw"
SECRET_URLS = [
    pytest.param(f"postgresql://user:{PASSWORD}@127.0.0.1:1/db", id="refused"),
    pytest.param(f"postgresql+psycopg://user:{PASSWORD}@127.0.0.1:1/db?connect_timeout=2", id="driver-and-query"),
    pytest.param(f"postgresql://127.0.0.1:1/db?user=u&password={PASSWORD}", id="password-in-query"),
    pytest.param(f"postgresql://user:{PASSWORD}@127.0.0.1:notaport/db", id="unparseable-port"),
    pytest.param(f"postgresql://user:{PASSWORD}@127.0.0.1:1/db?sslmode=bogus", id="driver-rejects-option"),
    pytest.param(f"postgresql+nosuchdriver://user:{PASSWORD}@127.0.0.1:1/db", id="unknown-driver"),
    pytest.param(f"foo://user:{PASSWORD}@x/y", id="unknown-scheme"),
    pytest.param(f"mysql://user:{PASSWORD}@127.0.0.1:1/db", id="driver-not-installed"),
    pytest.param(f"postgresql://user:p@{PASSWORD}@127.0.0.1:1/db", id="raw-at-sign-in-password"),
    pytest.param(f"postgresql:/user:{PASSWORD}@127.0.0.1:1/db", id="single-slash-typo"),
    pytest.param(f"postgresql://user:{PASSWORD}", id="cut-before-the-host"),
]


@pytest.mark.parametrize("url", SECRET_URLS)
@pytest.mark.parametrize("verb", [["list"], ["run", "{tmp}/fresh.toml"], ["best", "tiny"]], ids=["list", "run", "best"])
def test_storage_password_never_printed(verb, url, tmp_path, capsys):
    (tmp_path / "fresh.toml").write_text(FRESH)
    code = run_cli([a.format(tmp=tmp_path) for a in verb] + ["--storage", url])
    out, line = one_error_line(capsys)
    assert code == 2
    assert PASSWORD not in out + line
    assert "***" in line, line


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["list", f"postgresql://user:{PASSWORD}@127.0.0.1:1/db"], id="url-without---storage"),
        pytest.param(["list", f"--storag3=postgresql://user:{PASSWORD}@127.0.0.1:1/db"], id="misspelt-option"),
        pytest.param(["best", "--storage", f"postgresql://user:{PASSWORD}@127.0.0.1:1/db"], id="missing-study"),
        pytest.param(["run", "{tmp}/fresh.toml", "--workers", "2", "--storage",
                      f"postgresql://user:{PASSWORD}@127.0.0.1:1/db"], id="run-with-workers"),
        pytest.param(["list", f"postgresql://user:p@{PASSWORD}@127.0.0.1:1/db"], id="raw-at-sign-echoed"),
        pytest.param(["list", f"postgresql:/user:{PASSWORD}@127.0.0.1:1/db"], id="single-slash-echoed"),
        pytest.param(["list", "--storage", "postgresql://user:s3cr3t", "-pw@127.0.0.1:1/db"], id="space-in-password"),
        pytest.param(["best", "tiny", "--storage", "postgresql://user:pw", "s3cr3t-pw@127.0.0.1:1/db"], id="space-in-password-after-study"),
    ],
)
def test_storage_password_never_printed_by_argument_errors(argv, tmp_path, capsys):
    (tmp_path / "fresh.toml").write_text(FRESH)
    code = run_cli([a.format(tmp=tmp_path) for a in argv])
    out, line = one_error_line(capsys)
    assert code == 2
    assert PASSWORD not in out + line
    assert "s3cr3t" not in out + line and "-pw@" not in out + line
