"""The ``sweep`` command line: run studies, list them, show the best trial, replay, export.

Every user error ends the same way: one line on stderr, exit code 2, no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import sys
import threading
import time
from pathlib import Path

from .errors import (
    EXIT_USAGE,
    INTERRUPTS,
    StudyDeleted,
    SweepError,
    UsageError,
    catch_interrupts,
    interrupted_exit_code,
    interrupted_how,
    user_errors,
)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the default prints the whole usage first), and
    an option must be spelt out: `--worker` is not taken for `--workers`."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        # argparse echoes arguments: a storage URL among them, or, when a password with a space
        # was not quoted, the rest of that password as "unrecognized arguments".
        from .store.urls import redact_text

        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            import difflib

            options = [o.strip(" '") for o in choice.group(2).split(",")]
            close = difflib.get_close_matches(choice.group(1), options, n=1, cutoff=0.5)
            if close:
                message += f"; did you mean {close[0]!r}?"
        if message.startswith("unrecognized arguments:") and "@" in message:
            message = (
                "unrecognized arguments (not shown: they hold an '@', as the rest of a storage "
                "URL cut at a space would; quote the URL, and write a space in it as %20)"
            )
        self.exit(
            EXIT_USAGE, f"{self.prog}: error: {redact_text(message)} (see {self.prog} --help)\n"
        )


class _Version(argparse.Action):
    """--version: the installed package's version, looked up only when asked for."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from . import _version

        print(f"sweep (momentum-sweep) {_version()}")
        parser.exit()


def _add_storage(parser):
    parser.add_argument(
        "--storage",
        default=None,
        metavar="URL",
        help=(
            "Optuna storage URL (default: sweep.db in the project's results/ folder, found "
            "from here or a folder above, as git finds its repository; "
            "postgresql://user@host/db for many machines)"
        ),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sweep",
        description="Find a network's learning rate and momentum by systematic trial and error.",
    )
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser, metavar="VERB")

    run = verbs.add_parser("run", help="run studies: top each up to its declared number of trials")
    run.add_argument("studies", nargs="+", metavar="STUDY",
                     help="study files, or the names of the project's studies/NAME.toml")
    run.add_argument(
        "--workers", type=int, default=1, metavar="N", help="worker processes per study (default 1)"
    )
    run.add_argument(
        "--allow-spec-change",
        action="store_true",
        help="add trials even if the study file's search changed since the stored trials",
    )
    run.add_argument("--quiet", action="store_true", help="no progress line")
    run.add_argument(
        "--no-confirm", action="store_true",
        help="do not race the top settings on fresh networks when the study is complete",
    )
    _add_storage(run)

    listing = verbs.add_parser(
        "list", help="studies in the storage with trial counts and best value"
    )
    _add_storage(listing)

    best = verbs.add_parser(
        "best", help="the study's answer: the confirmed setting, its value and interval"
    )
    best.add_argument("study", metavar="STUDY", help="study name or its .toml file")
    best.add_argument("--json", action="store_true", help="print the answer as JSON")
    _add_storage(best)

    replay = verbs.add_parser(
        "replay", help="re-train one stored trial and check its curves are identical"
    )
    replay.add_argument("study", metavar="STUDY", help="study name or its .toml file")
    replay.add_argument("trial", type=int, metavar="TRIAL", help="trial number")
    _add_storage(replay)

    export = verbs.add_parser("export", help="write the study's trials and curves as CSV")
    export.add_argument("study", metavar="STUDY", help="study name or its .toml file")
    export.add_argument(
        "--out", metavar="DIR", help="folder for trials.csv and curves.csv (default results/STUDY)"
    )
    _add_storage(export)

    report = verbs.add_parser("report", help="write plots, best.json and results/index.html")
    report.add_argument("studies", nargs="*", metavar="STUDY", help="study names or .toml files")
    report.add_argument("--all", action="store_true", help="every study in the storage")
    _add_storage(report)

    confirm = verbs.add_parser(
        "confirm",
        help="race the search's top settings on fresh networks and pick the answer",
    )
    confirm.add_argument("studies", nargs="*", metavar="STUDY", help="study names or .toml files")
    confirm.add_argument(
        "--all", action="store_true", help="every study in the storage with a completed trial"
    )
    # The defaults are sweep.confirm's (imported only when a race runs); a test holds the
    # help text to them.
    confirm.add_argument(
        "--candidates", type=int, metavar="N",
        help="race at most N of the search's best settings (default 10)",
    )
    confirm.add_argument(
        "--networks", type=int, metavar="N",
        help="fresh networks per setting, at most (default 40; at least 20)",
    )
    _add_storage(confirm)

    delete = verbs.add_parser(
        "delete", help="remove a study: its stored trials and its results folder"
    )
    delete.add_argument("study", metavar="STUDY", help="study name or its .toml file")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.add_argument(
        "--force", action="store_true",
        help="delete even while live workers are training it (they stop at their next write)",
    )
    _add_storage(delete)

    check = verbs.add_parser(
        "check",
        help="check the stored studies: integrity, orphans, damaged rows, each trial's value "
        "against its curves, dead RUNNING trials",
    )
    check.add_argument(
        "--repair", action="store_true",
        help="delete orphaned rows and fail RUNNING trials whose worker is gone",
    )
    _add_storage(check)
    return parser


def study_name(argument: str) -> str:
    """A study name, or the name inside a study file given instead."""
    if argument.endswith(".toml"):
        from .spec import load_study

        return load_study(argument).name
    return argument


def study_file(argument: str) -> str:
    """A study file, or the project's ``studies/NAME.toml`` for a study's name: `sweep run
    iris-tpe` runs studies/iris-tpe.toml from anywhere inside the project."""
    if argument.endswith(".toml") or Path(argument).exists():
        return argument
    from .folders import results_root

    found = results_root().absolute().parent / "studies" / f"{argument}.toml"
    return str(found) if found.is_file() else f"{argument}.toml"


# Piped or logged, a progress line is written at most this often.
PLAIN_PROGRESS_SECONDS = 10.0


def _progress_printer(name: str, quiet: bool):
    """A progress line with the rate and the time left: redrawn in place on a terminal; piped
    or logged, a plain line at most every PLAIN_PROGRESS_SECONDS."""
    started, state = time.monotonic(), {"first": None, "shown": -math.inf}

    def show(progress):
        if quiet:
            return
        now = time.monotonic()
        if state["first"] is None:
            state["first"] = progress.done  # trials finished before this run count for nothing
        added = progress.done - state["first"]
        elapsed = now - started
        rate = added / elapsed if added and elapsed > 0 else None
        left = max(progress.total - progress.done, 0)
        pace = (f"  {rate:.3g} trials/s, about {_duration(left / rate)} left" if rate and left
                else "")
        counts = (f"{progress.done}/{progress.total}  complete {progress.complete}  pruned "
                  f"{progress.pruned}  diverged {progress.diverged}  failed {progress.failed}")
        if sys.stderr.isatty():
            width = 30
            filled = int(width * min(progress.done, progress.total) / max(progress.total, 1))
            bar = "#" * filled + "-" * (width - filled)
            sys.stderr.write(f"\r{name} [{bar}] {counts}{pace}\033[K")
        elif now - state["shown"] >= PLAIN_PROGRESS_SECONDS or not left:
            state["shown"] = now
            sys.stderr.write(f"{name}: {counts}{pace}\n")
        else:
            return
        sys.stderr.flush()

    return show


def _duration(seconds: float) -> str:
    """'4 s', '3 min', '2.5 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _check_searches(specs, storage) -> None:
    """Refuse, before any study runs, a study file whose search differs from its stored study
    or from another file of this command with the same name (as open_study would, too late)."""
    from .errors import SweepError
    from .store.studies import changed_search_error, stored_fingerprint, stored_spec_dict

    seen = {}
    for spec in specs:
        other = seen.setdefault(spec.name, spec)
        if other.search_fingerprint() != spec.search_fingerprint():
            raise SweepError(
                f"{spec.path}: study {spec.name!r} is also in {other.path} "
                "with a different data set, network or search space; give one of them a new name"
            )
        stored = stored_fingerprint(storage, spec.name)
        if stored is not None and stored != spec.search_fingerprint():
            raise changed_search_error(spec, stored_spec_dict(storage, spec.name))


def cmd_run(args) -> int:
    from .spec import load_study
    from .store.connect import open_storage, redact
    from .workers import MAX_WORKERS

    # Every file is checked before any run.
    specs = [load_study(study_file(path)) for path in args.studies]
    # A tuned.toml confirms a study's answer: measured and said, not stored as a study.
    for spec in (s for s in specs if s.confirms):
        print(_measured(spec))
    specs = [s for s in specs if not s.confirms]
    if not specs:
        return 0
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.workers > MAX_WORKERS:
        raise UsageError(
            f"--workers must be at most {MAX_WORKERS} (more only compete for memory and the "
            f"storage's lock), got {args.workers}"
        )
    datasets = [spec.datasets() for spec in specs]  # so is its data, before anything is written
    storage = open_storage(args.storage)
    if not args.allow_spec_change:
        _check_searches(specs, storage)
    # Said from a few counts each: a run with nothing to add loads no trainer.
    full = [_finished_if_full(storage, spec) for spec in specs]
    # With nothing to search the kernel is not loaded here (a race that compiles says so on
    # stderr by itself).
    # After an install, the evaluation loop and the later studies' rules compile in another
    # process meanwhile.
    ahead = [spec.rule for spec, finished in zip(specs, full)
             if finished is None and args.workers == 1]
    with _compile_notices(args.quiet, load=None in full), _compile_ahead(ahead):
        for spec, folds, finished in zip(specs, datasets, full):
            if finished is not None:
                print(f"{spec.name}: {_count(finished, 'trial')} finished (0 added this run) "
                      f"in {redact(args.storage)}")
                if not args.no_confirm:
                    print(_confirmed(storage, spec.name, spec, {}, empty_ok=True))
                continue
            from .search import run_study

            try:
                if args.workers > 1:
                    from .workers import run_workers

                    progress = run_workers(spec, args.storage, args.workers, datasets=folds,
                                           allow_spec_change=args.allow_spec_change,
                                           on_progress=_progress_printer(spec.name, args.quiet))
                else:
                    progress = run_study(
                        spec,
                        storage,
                        datasets=folds,
                        allow_spec_change=args.allow_spec_change,
                        on_progress=_progress_printer(spec.name, args.quiet),
                    )
            except StudyDeleted:
                raise StudyDeleted(spec.name) from None
            if not args.quiet and sys.stderr.isatty():
                sys.stderr.write("\n")
            print(
                f"{spec.name}: {_count(progress.done, 'trial')} finished "
                f"({progress.added} added this run) "
                f"in {redact(args.storage)}"
            )
            if progress.done and progress.diverged == progress.done:
                print(f"{spec.name}: warning{_why_none(progress.diverged, progress.done)}")
            if progress.done < progress.total and progress.running:
                print(
                    f"{spec.name}: {progress.running} trials are RUNNING in other workers, so "
                    f"this run stopped short of the declared {progress.total}; they count toward "
                    "it when they finish (a dead worker's are retried by the next run once its "
                    "lease ends)"
                )
            elif not args.no_confirm:
                print(_confirmed(storage, spec.name, spec, {}, empty_ok=True))
    return 0


def _measured(spec) -> str:
    """A confirmation file's setting measured on its study's fresh networks, as a line."""
    from .confirm import measure

    found = measure(spec, spec.learning_rate.fixed, spec.momentum.fixed)
    value, n = found.value, found.networks
    epochs = ("not reached" if not found.reached else
              f"{found.epochs_to_target.mean:.3g} epochs (reached by {found.reached} of {n})")
    return (
        f"{spec.name}: learning rate {found.learning_rate:.4g}, momentum {found.momentum:.4g} "
        f"(study {spec.confirms!r}'s answer): {spec.objective.name} {value.mean:.4g} "
        f"(95% interval {value.low:.4g} to {value.high:.4g}) on {n} fresh networks, "
        f"{found.failures} failed; to loss {spec.objective.target_loss:g}: {epochs}"
    )


@contextlib.contextmanager
def _environment(name: str, value: str):
    """``name`` set to ``value`` in this process's environment for the block, as it was after:
    a command run in-process (tests, a script calling main) leaves nothing behind."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _compile_ahead(rules: list[str]):
    if len(set(rules)) < 2:
        # One rule: the kernel loads where the search first needs it, as a run always did.
        return contextlib.nullcontext()
    from .warmup import compile_ahead

    return compile_ahead(rules)


def _compile_notices(quiet: bool, load: bool = True):
    """The first use of the trainer kernel after an install compiles it, a pause of seconds:
    said on stderr as it starts (not with --quiet), in the command line's own way when the
    kernel is to be loaded (``load``)."""
    if quiet:
        # Said to the kernel (and to worker processes) without loading it: Numba takes a second.
        return _environment("MOMENTUM_SWEEP_QUIET", "1")
    if not load:
        return contextlib.nullcontext()
    from .kernel import compile_notices

    def say(line: str) -> None:
        # On a terminal the line replaces a progress bar being redrawn in place.
        start, end = ("\r", "\033[K\n") if sys.stderr.isatty() else ("", "\n")
        sys.stderr.write(f"{start}sweep: {line}{end}")
        sys.stderr.flush()

    return compile_notices(say)


def _finished_if_full(storage, spec) -> int | None:
    """The study's finished trials when it is stored with this search, already has its
    declared number and none running (`sweep run` would add nothing), else None: said from a
    few counts, without loading the search (SciPy, the trainer) or reading any trial."""
    from optuna.trial import TrialState

    from .store.studies import state_counts, stored_fingerprint

    if stored_fingerprint(storage, spec.name) != spec.search_fingerprint():
        return None  # new, changed (--allow-spec-change) or foreign: the search decides
    counts = state_counts(storage, spec.name)
    finished = counts.get(TrialState.COMPLETE, 0) + counts.get(TrialState.PRUNED, 0)
    return finished if not counts.get(TrialState.RUNNING) and finished >= spec.trials else None


def number_text(value: float, digits: int = 6) -> str:
    """``value`` to ``digits`` significant digits, unless the rounding reads as a round number
    the value is not, by a hair (0.9999999999999999 would read 1, a momentum outside [0, 1)):
    then with every digit it needs to read back exactly. A rounding that only drops a trailing
    zero (0.2371975 to 0.2372) is left as it is."""
    text = f"{value:.{digits}g}"
    if not math.isfinite(value) or float(text) == value:
        return text
    significant = text.split("e")[0].lstrip("-").replace(".", "").lstrip("0")
    hair = abs(float(text) - value) <= ROUND_NUMBER_HAIR * abs(value)
    return repr(float(value)) if len(significant) < digits and hair else text


# How close to a round number a value must be for its rounding to be mistaken for it.
ROUND_NUMBER_HAIR = 1e-9


def _why_none(diverged: int, finished: int) -> str:
    """What to say of a study none of whose ``finished`` trials has a value because they all
    diverged ('' when they did not all diverge)."""
    if not finished or diverged < finished:
        return ""
    return (f": all {_count(finished, 'trial')} diverged, at every learning rate tried; lower "
            "the learning-rate range, or look for extreme values in the data")


def _count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 trial', '2 trials' ('1 study', '2 studies' given the plural)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def cmd_list(args) -> int:
    from .store.listing import quick_listing

    # A SQLite file as Optuna writes it is read without loading Optuna (0.7 s).
    studies = quick_listing(args.storage)
    if studies is None:
        studies = _listing(args.storage)
    if not studies:
        print("no studies yet: run `sweep run studies/NAME.toml`")
        return 0
    print(f"{'study':28s} {'trials':>7s} {'search best':>12s}  by state")
    for name, n_trials, best_value, states in studies:
        best = f"{number_text(best_value, 4):>12s}" if best_value is not None else f"{'-':>12s}"
        print(f"{name:28s} {n_trials:7d} {best}  {states}")
    return 0


def _listing(url: str) -> list[tuple[str, int, float | None, str]]:
    """``quick_listing``'s rows read through Optuna's storage (any back end; a damaged or
    locked file said in one line); none for a SQLite file no run has written yet."""
    from .errors import StorageError
    from .store.connect import open_storage, sqlite_path
    from .store.studies import state_breakdown, summaries

    try:
        storage = open_storage(url, create=False)
    except StorageError:
        # A SQLite file that no run has written yet (none, or empty) holds no studies.
        path = sqlite_path(url)
        if (
            path is not None
            and path.parent.is_dir()
            and (not path.exists() or path.stat().st_size == 0)
        ):
            return []
        raise
    states = state_breakdown(storage)
    return [(name, n_trials, best, states.get(name, ""))
            for name, n_trials, best in summaries(storage)]


def cmd_best(args) -> int:
    import json

    from .analysis import answer
    from .errors import SweepError
    from .store.connect import open_storage
    from .store.studies import current_confirmation, made_here, read_records, stored_spec

    storage = open_storage(args.storage, create=False)
    name = study_name(args.study)
    if not made_here(storage, name):
        return _print_foreign_best(storage, name)
    records = read_records(storage, name)
    spec = stored_spec(storage, name, foreign_ok=True)
    found = answer(name, spec, records, current_confirmation(storage, name, spec))
    if args.json:
        print(json.dumps(found, indent=2, allow_nan=False))
        return 0
    if found["trial"] is None:
        raise SweepError(f"study {name!r} has no completed trial yet" + _why_none(
            sum(r.state == "diverged" for r in records),
            sum(r.state in ("complete", "pruned", "diverged") for r in records)))
    print(f"study          {name}")
    print(f"trial          {found['trial']}")
    print(f"learning_rate  {number_text(found['learning_rate'])}")
    print(f"momentum       {number_text(found['momentum'])}")
    search = found["search"]
    if found["confirmed"]:
        n = found["networks"]
        print(f"value          {found['value']:.4g} (95% interval {found['value_low']:.4g} to "
              f"{found['value_high']:.4g}; {found['objective']}, mean of {n} fresh networks)")
        reached = found["reached"]
        epochs = "not reached" if not reached else (
            f"{found['epochs_to_target']:.3g} (reached by {reached} of {n})")
        print(f"epochs to {found['target_loss']:g}  {epochs}")
        print(f"failures       {found['failures']} of {n} (failure rate below "
              f"{found['failure_rate_upper']:.1%} at 95%)")
        print(f"equivalent     {found['equivalent']}")
        print(f"search said    {search['value']:.4g} over {search['networks']} networks, the "
              f"search's own figure ({search['optimism']:+.0%} against the fresh mean)")
    else:
        print(f"value          {search['value']:.4g} (the search's own figure, mean of "
              f"{search['networks']} networks: not confirmed)")
        print(f"note           {found['note']}")
    for warning in found.get("edge_warnings", []):
        print(f"warning: {warning}")
    return 0


def _print_foreign_best(storage, name: str) -> int:
    """`sweep best` of a study made with Optuna directly: Optuna's own best trial, with its
    parameters as they are, since it has none of momentum-sweep's settings or curves."""
    from .errors import SweepError
    from .store.studies import foreign_best

    best = foreign_best(storage, name)
    if best is None:
        raise SweepError(f"study {name!r} (not made by momentum-sweep) has no completed trial yet")
    print(f"study          {name} (not made by momentum-sweep: Optuna's best trial as stored)")
    print(f"trial          {best.number}")
    print(f"value          {number_text(best.value)}")
    for param, value in sorted(best.params.items()):
        print(f"{param:14s} {value}")
    return 0


def cmd_replay(args) -> int:
    from .check import value_mismatch
    from .errors import SweepError
    from .search import replay
    from .store.connect import open_storage
    from .store.studies import read_records, stored_spec

    storage = open_storage(args.storage, create=False)
    name = study_name(args.study)
    spec = stored_spec(storage, name)
    records = {r.number: r for r in read_records(storage, name)}
    if args.trial not in records:
        numbers = sorted(records)
        valid = (f"; its trials are numbered {numbers[0]} to {numbers[-1]}" if numbers
                 else "; it has no trials yet")
        raise SweepError(f"study {name!r} has no trial {args.trial}{valid}")
    record = records[args.trial]
    if record.state in ("running", "failed", "waiting"):
        raise SweepError(
            f"trial {args.trial} of {name!r} is {record.state}: it has no stored curves to compare"
        )
    identical, val_loss = replay(spec, record)
    epochs = len(record.val_loss)
    verdict = "identical" if identical else "DIFFERENT"
    networks = record.network_count
    print(
        f"trial {record.number}: learning_rate {number_text(record.learning_rate)}, "
        f"momentum {number_text(record.momentum)}, seed {record.seed}"
    )
    print(
        f"replayed {epochs} epochs" + (f" of {networks} networks" if networks > 1 else "")
        + f": curves {verdict}; final validation loss {number_text(val_loss[epochs - 1])}"
    )
    # The curves may be right and the value beside them not: a flipped bit in a stored value
    # passes every database check. Both come from the stored curves, as the search scored them.
    mismatch = value_mismatch(spec, record)
    if mismatch:
        print(f"value DIFFERENT: {mismatch}")
    elif record.value is not None:
        print(f"value {number_text(record.value)}: the value its curves give")
    return 0 if identical and not mismatch else 1


def cmd_export(args) -> int:
    from .analysis import records_frames
    from .files import FileWriteError, make_folder, write_with
    from .folders import study_folder
    from .store.connect import open_storage
    from .store.studies import read_records

    storage = open_storage(args.storage, create=False)
    name = study_name(args.study)
    records = read_records(storage, name)

    out = Path(args.out) if args.out else study_folder(name)
    trials, curves = records_frames(records)
    try:
        make_folder(out)
        for file, frame in (("trials.csv", trials), ("curves.csv", curves)):
            write_with(out / file, lambda temporary: frame.to_csv(temporary, index=False))
    except FileWriteError as error:
        raise (UsageError(f"--out {error}") if args.out else error) from None
    print(
        f"wrote {out / 'trials.csv'} ({len(trials)} trials) "
        f"and {out / 'curves.csv'} ({len(curves)} rows)"
    )
    return 0


def cmd_report(args) -> int:
    from .report import write_reports
    from .store.connect import open_storage

    if args.all and args.studies:
        raise UsageError("name studies or pass --all, not both")
    storage = open_storage(args.storage, create=False)
    names = None if args.all or not args.studies else [study_name(s) for s in args.studies]
    lines = write_reports(storage, names, on_study=_report_progress())
    for line in lines:
        print(line)
    return 0


def _report_progress():
    """Show which study the report is on, redrawn in place on a terminal; nothing in a log."""
    if not sys.stderr.isatty():
        return None

    def show(i, count, name):
        sys.stderr.write(f"\rreport: study {i + 1}/{count} {name}\033[K")
        if i + 1 == count:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def cmd_confirm(args) -> int:
    from .store.connect import open_storage
    from .store.studies import made_here, stored_spec, summaries

    if args.candidates is not None and args.candidates < 1:
        raise UsageError("--candidates must be at least 1")
    if args.networks is not None and args.networks < 20:
        raise UsageError("--networks must be at least 20 (a pick needs 20 networks, none failed)")
    if not args.all and not args.studies:
        raise UsageError("name a study, or pass --all")
    storage = open_storage(args.storage, create=False)
    if args.all:
        # Studies with nothing completed yet have nothing to race, and studies that other tools
        # made have no spec to race from: both skipped, not an error. A made-here study has a
        # completed trial exactly when its best value is a finite number; asking the storage
        # for that reads no curves.
        names = [
            n for n, _, best in summaries(storage)
            if best is not None and math.isfinite(best) and made_here(storage, n)
        ]
    else:
        names = [study_name(s) for s in args.studies]
    budget = {key: value for key, value in (("max_candidates", args.candidates),
                                            ("max_networks", args.networks)) if value is not None}
    for name in names:
        print(_confirmed(storage, name, stored_spec(storage, name), budget, force=bool(budget)))
    return 0


def _confirmed(storage, name: str, spec, budget: dict, *, force: bool = False,
               empty_ok: bool = False) -> str:
    """Race the study's top settings unless its stored confirmation is current (or ``force``);
    the line that says its answer. A study with no completed trial is a SweepError, or with
    ``empty_ok`` a line saying so."""
    from .errors import SweepError
    from .store.studies import current_confirmation

    confirmation = None if force else current_confirmation(storage, name, spec)
    fresh = confirmation is None
    if fresh:
        from .confirm import confirm_study

        try:
            confirmation = confirm_study(storage, name, spec, **budget)
        except ValueError as error:
            if empty_ok:
                return f"{name}: nothing to confirm: {error}"
            raise SweepError(f"study {name!r}: {error}") from None
    pick = confirmation.get("pick")
    when = "confirmed" if fresh else "confirmation up to date"
    if pick is None:
        return f"{name}: {when}: every candidate failed on fresh networks; no answer"
    value = pick["value"]
    return (
        f"{name}: {when}: learning rate {pick['learning_rate']:.4g}, momentum "
        f"{pick['momentum']:.4g} (trial {pick['trial']}): {spec.objective.name} "
        f"{value['mean']:.4g} (95% interval {value['low']:.4g} to {value['high']:.4g}) on "
        f"{pick['networks']} fresh networks, none failed; the search said "
        f"{pick['search_value']:.4g}"
    )


def cmd_delete(args) -> int:
    import shutil

    from .folders import FolderNameError, shown_name, study_folder
    from .store.connect import open_storage
    from .store.delete import delete_study, live_workers_of, refusal
    from .store.studies import trial_count, unknown_study_error

    storage = open_storage(args.storage, create=False)
    name = study_name(args.study)
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        raise unknown_study_error(storage, name) from None
    if not args.force and (workers := live_workers_of(storage, name)):
        raise refusal(shown_name(name), workers)  # said before asking, and checked again below
    try:
        folder = study_folder(name)
    except FolderNameError:
        folder = None  # a name another tool stored that cannot be a folder: it has none
    has_folder = folder is not None and folder.is_dir()
    what = f"study {shown_name(name)!r} ({trial_count(storage, study_id)} trials)" + (
        f" and {folder}/" if has_folder else ""
    )
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"delete {what}: not on a terminal to confirm; pass --yes")
        answer = input(f"delete {what}? This cannot be undone [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    trials = delete_study(storage, name, force=args.force)
    deleted = f"deleted study {shown_name(name)!r} ({_count(trials, 'trial')})"
    if has_folder:
        try:
            shutil.rmtree(folder)
        except OSError as error:
            raise SweepError(
                f"{deleted}, but not its folder {folder}/ "
                f"({error.strerror or error}: {error.filename}); remove it by hand"
            ) from None
        deleted += f" and {folder}/"
    print(deleted)
    from .folders import results_root

    if (results_root() / "index.html").exists():  # the gallery no longer links to it
        from .report import write_gallery

        print(write_gallery(storage))
    return 0


def cmd_check(args) -> int:
    from .check import check
    from .store.connect import open_storage, redact

    storage = open_storage(args.storage, create=False)
    findings, studies, trials = check(storage, repair=args.repair)
    for finding in findings:
        print(finding)
    left = [f for f in findings if not f.repaired]
    repaired = len(findings) - len(left)
    where = (f"{redact(args.storage)} ({_count(studies, 'study', 'studies')}, "
             f"{_count(trials, 'trial')} checked against their curves)")
    if not findings:
        print(f"no problems found in {where}")
        return 0
    summary = f"{_count(len(findings), 'problem')} in {where}"
    if repaired:
        summary += f"; {repaired} repaired"
    repairable = sum(f.repairable for f in left)
    if repairable:
        summary += f"; `sweep check --repair` repairs {repairable} of them"
    print(summary)
    return 1 if left else 0


COMMANDS = {
    "run": cmd_run, "list": cmd_list, "best": cmd_best, "replay": cmd_replay,
    "export": cmd_export, "report": cmd_report, "confirm": cmd_confirm, "delete": cmd_delete,
    "check": cmd_check,
}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if hasattr(args, "storage") and args.storage is None:
        from .store.urls import default_storage

        args.storage = default_storage()
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C raises KeyboardInterrupt even if this process inherited SIGINT ignored (as
        # anything started from a background shell does), so that it always stops cleanly.
        catch_interrupts(*INTERRUPTS)
    try:
        return COMMANDS[args.verb](args)
    except user_errors() as error:
        from .store.urls import redact_text

        print(f"sweep: error: {redact_text(str(error))}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:
        # A storage that fails mid-command (a full disk, a lock held too long) is one line too.
        from .store.connect import storage_failure

        failure = storage_failure(error, getattr(args, "storage", ""))
        if failure is None:
            raise
        print(f"sweep: error: {failure}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            print(
                f"\nsweep: {interrupted_how()}; the batch in flight was failed and will be "
                "retried: run the same command again to resume",
                file=sys.stderr, flush=True,
            )
        # CPython 3.11 notes a KeyboardInterrupt leaving an exec() of a string (as scipy's
        # imports run) as "unhandled", though it was handled here, and at exit kills itself
        # with SIGINT instead of returning this code (-2, not 143: seen when a SIGTERM came
        # during such an import). Each exec() of a string clears that note first.
        exec("pass")
        return interrupted_exit_code()


if __name__ == "__main__":
    sys.exit(main())
