"""Study files: what one hyper-parameter search should do, read from a small TOML file.

A study file says which data set to train on, which network, which learning-rate and momentum
ranges to search, how (sampler, pruner, objective) and how many trials. :func:`load_study` reads
one with :mod:`tomllib` and returns a frozen :class:`StudySpec`; :func:`parse_study` does the
same for an already-parsed dict.

Defaults live in one place, the dataclass defaults below, so a study file states only what
differs from them. Validation is strict: any problem (an unknown key, a wrong type, a value out
of range, a setting that would be silently ignored) raises :class:`SpecError`, whose message is
one line ``<file>: <dotted.key>: <what is wrong>``.

Layout::

    name = "iris-tpe"                 # required; also the folder name under results/
    description = "..."
    trials = 200                      # also batch_size, seed, baseline, folds, repeats
    [data]                            # source, path, target, items, inputs, classes, noise,
                                      # validation_fraction, seed
    [network]                         # hidden, rule, init, epochs, precision
    [search.learning_rate]            # low, high, log, fixed, values, points
    [search.momentum]                 # (same keys)
    [sampler]                         # name
    [pruner]                          # name, startup_trials, warmup_steps, interval,
                                      # percentile, threshold
    [objective]                       # name, target_loss
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import re
import tomllib
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

from .data import Dataset
from .network import INITIALISATIONS
from .records import objective_names
from .rules import rule_names
from .sources import get_source, source_names, spec_folds

__all__ = [
    "SpecError",
    "DataSpec",
    "ParamSpec",
    "PrunerSpec",
    "ObjectiveSpec",
    "StudySpec",
    "load_study",
    "parse_study",
    "SAMPLERS",
    "PRUNERS",
]

SAMPLERS = ("tpe", "optuna-tpe", "random", "qmc", "grid")
PRUNERS = ("none", "median", "percentile", "threshold")

# Samplers and NumPy's legacy RandomState (which Optuna's samplers use) take 32-bit seeds.
SEED_LIMIT = 2**32
MAX_HIDDEN = 4096
MAX_EPOCHS = 100_000
MAX_NAME_LENGTH = 64
MAX_FOLDS = 20
MAX_REPEATS = 100
# A bound far above any search worth running, so that a typo (2**63) is refused, not attempted.
MAX_TRIALS = 10_000_000
# A study's name is also its folder under results/, beside the files the results root holds
# itself: a study may not take one of their names (compared ignoring case, as on macOS).
_RESULTS_ROOT_FILES = ("readme.md", "index.html", "momentum.html", "momentum")
_DATABASE_SUFFIXES = (".db", ".db-wal", ".db-shm", ".db-journal", ".db.lock")
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,%d}" % (MAX_NAME_LENGTH - 1))
_TUNED_SUFFIX = "-tuned"

# Pruner keys each pruner reads, for the same reason.
_PRUNER_KEYS = {
    "none": (),
    "median": ("startup_trials", "warmup_steps", "interval"),
    "percentile": ("startup_trials", "warmup_steps", "interval", "percentile"),
    "threshold": ("warmup_steps", "interval", "threshold"),
}
_PARAM_KEYS = ("low", "high", "log", "fixed", "values", "points")
_NETWORK_KEYS = ("hidden", "rule", "init", "epochs", "precision")
# The networks' arithmetic: float32 trains faster (its exp, log and tanh in float32 too), each
# rounding about 5 * 10^8 times coarser; exact all the same: bit for bit whatever the batch.
PRECISIONS = ("float64", "float32")
_TABLES = ("data", "network", "search", "sampler", "pruner", "objective")
_TOP_KEYS = (
    "name", "description", "trials", "batch_size", "seed", "baseline", "folds", "repeats",
    "confirms",
) + _TABLES
# Keys added after studies were first stored, with the value every study had before: at that
# value they are left out of the search fingerprint, so a study stored before they existed
# still resumes (and one that now gets another default does not).
_LATER_KEYS = {"folds": 1, "repeats": 1, "confirms": "", "precision": "float64"}


class SpecError(ValueError):
    """One line: '<file>: <dotted.key>: <what is wrong>'.

    e.g. 'studies/x.toml: search.momentum.high: must be < 1, got 1.5'.

    Problems with the file as a whole (missing, not TOML) have no key: '<file>: <what is wrong>'.
    """

    def __init__(self, path: str, key: str, reason: str) -> None:
        self.path = str(path)
        self.key = key
        self.reason = reason
        message = f"{self.path}: {key}: {reason}" if key else f"{self.path}: {reason}"
        # Printed as a single-line diagnostic; a newline in a file name, key or TOML
        # message must not break that.
        super().__init__(" ".join(message.splitlines()))

    def __reduce__(self):
        return (type(self), (self.path, self.key, self.reason))


@dataclass(frozen=True)
class DataSpec:
    """Which data set to train on and how to split it (the arguments of ``load_dataset``)."""

    source: str = "iris"  # one of sweep.sources.source_names(); each reads some keys below
    path: str | None = None  # csv: absolute, resolved against the study file's folder
    target: str | None = None  # csv, required there: the class column
    items: int = 300  # generated sources (synthetic, correlated): >= 2 * classes
    inputs: int = 4  # generated sources: >= 1 (correlated: >= 2)
    classes: int = 3  # generated sources: >= 2
    noise: float = 0.0  # generated sources: >= 0
    validation_fraction: float = 0.2  # in (0, 1)
    seed: int = 0  # split / synthetic seed, >= 0

    def load(self) -> Dataset:
        """The data set this spec describes, split once (its source is
        :func:`sweep.sources.get_source`'s)."""
        return spec_folds(self, 1)[0]

    def load_folds(self, folds: int) -> list[Dataset]:
        """The data set as ``folds`` stratified folds (1: ``[self.load()]``)."""
        return spec_folds(self, folds)

    def describe(self) -> str:
        """One line naming the data set, as pages show it."""
        return get_source(self.source).describe(self)


@dataclass(frozen=True)
class ParamSpec:
    """One searched hyper-parameter: its range, or the one value it is fixed at."""

    low: float
    high: float
    log: bool
    fixed: float | None = None  # when set, the parameter is not searched
    values: tuple[float, ...] | None = None  # explicit grid points, ascending, within [low, high]
    points: int | None = None  # grid: this many points spread over [low, high]

    def grid(self) -> tuple[float, ...]:
        """The grid points: ``values``, or ``points`` spread evenly (log-spaced when ``log``),
        endpoints exactly ``low`` and ``high``; ``(fixed,)`` when fixed."""
        if self.fixed is not None:
            return (self.fixed,)
        if self.values is not None:
            return self.values
        if self.points is None:
            raise ValueError("no grid: the parameter has neither values nor points")
        if self.points == 1:
            return (self.low,)
        steps = self.points - 1
        if self.log:
            a, b = math.log(self.low), math.log(self.high)
            inner = [math.exp(a + (b - a) * i / steps) for i in range(1, steps)]
        else:
            inner = [self.low + (self.high - self.low) * i / steps for i in range(1, steps)]
        # Stated endpoints exactly, not exp(log(x)) round trips.
        return (self.low, *inner, self.high)


@dataclass(frozen=True)
class PrunerSpec:
    """When to stop unpromising trials early."""

    name: str = "none"  # none | median | percentile | threshold
    startup_trials: int = 5  # median/percentile: completed trials before pruning starts
    warmup_steps: int = 10  # epochs before any pruning
    interval: int = 5  # check every `interval` epochs (the trainer reports only then)
    percentile: float = 25.0  # percentile pruner, in (0, 100)
    threshold: float = 2.0  # threshold pruner: prune when validation loss > this (> 0)


@dataclass(frozen=True)
class ObjectiveSpec:
    """What a trial's score is (lower is better)."""

    name: str = "final_val_loss"  # one of sweep.records.objective_names()
    target_loss: float = 0.1  # the loss epochs_to_target (and the report) counts epochs to, > 0


@dataclass(frozen=True)
class StudySpec:
    """One validated study file."""

    name: str  # [A-Za-z0-9][A-Za-z0-9._-]{0,63}, no '..': a folder name under results/
    path: str  # the study file it came from (not a TOML key)
    description: str = ""
    data: DataSpec = DataSpec()
    hidden: int = 7  # [network] hidden units, 1..4096
    rule: str = "seed"  # [network] one of sweep.rules.rule_names()
    init: str = "glorot"  # [network] one of sweep.network.INITIALISATIONS
    epochs: int = 100  # [network] 1..100000
    precision: str = "float64"  # [network] one of PRECISIONS
    learning_rate: ParamSpec = ParamSpec(low=1e-3, high=1.0, log=True)  # low > 0
    momentum: ParamSpec = ParamSpec(low=0.0, high=0.95, log=False)  # 0 <= low <= high < 1
    sampler: str = "tpe"  # [sampler] name: tpe | optuna-tpe | random | qmc | grid
    pruner: PrunerSpec = PrunerSpec()
    objective: ObjectiveSpec = ObjectiveSpec()
    trials: int = 100  # 1..MAX_TRIALS; for grid: defaults to the grid size and may not exceed it
    batch_size: int = 64  # trials trained together, >= 1
    seed: int = 0  # seeds the sampler and the trials, 0 <= seed < 2**32
    # Enqueue one momentum-0 trial first, for comparison. Only meaningful when momentum is
    # searched over a range that includes 0 by a non-grid sampler; otherwise it is off.
    baseline: bool = True
    # Each trial trains folds x repeats networks at its learning rate and momentum and scores
    # their mean: stratified k-fold validation (1: the single split of [data]) and seeds per fold.
    # One network on a small validation split makes the best trial a lucky draw: a user's CSV
    # tuned with folds = 1 picked settings 2.7 to 38 times worse than the best on fresh splits.
    # Five folds validate every item once; two seeds per fold halve the seed's share of the
    # noise that the search's pick is the best of.
    folds: int = 5  # 1..MAX_FOLDS, and at most the smallest class's size
    repeats: int = 2  # 1..MAX_REPEATS
    # A tuned.toml: the study whose answer this file fixes. `sweep run` then measures the fixed
    # setting on that study's fresh networks (and prints the figure its page shows) instead of
    # storing a one-trial study of its own. Both parameters must be fixed.
    confirms: str = ""

    @property
    def networks_per_trial(self) -> int:
        return self.folds * self.repeats

    def datasets(self) -> list:
        """The data each trial's networks train on: one Dataset per fold."""
        return self.data.load_folds(self.folds)

    def network(self) -> dict[str, Any]:
        """The network and its training as ``train_many`` takes them (hidden, epochs, rule,
        init, dtype): every trainer of a study's networks passes these."""
        return {"hidden": self.hidden, "epochs": self.epochs, "rule": self.rule,
                "init": self.init, "dtype": self.precision}

    def searched(self) -> dict[str, ParamSpec]:
        """The parameters that are searched (not fixed), by name."""
        params = {"learning_rate": self.learning_rate, "momentum": self.momentum}
        return {name: p for name, p in params.items() if p.fixed is None}

    def to_dict(self) -> dict:
        """Everything but ``path``, as plain JSON-able values (tuples become lists)."""
        plain = _plain(self)
        del plain["path"]
        return plain

    def search_fingerprint(self) -> str:
        """sha256 of what decides the search itself, to refuse resuming a study whose file changed.

        ``description``, ``trials`` and ``batch_size`` are left out: rewording a study, asking
        for more trials or training them in different batches continues the same search.
        """
        plain = self.to_dict()
        for key in ("description", "trials", "batch_size"):
            del plain[key]
        for key, before in _LATER_KEYS.items():
            if plain[key] == before:
                del plain[key]
        text = json.dumps(plain, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def with_fixed(self, learning_rate: float, momentum: float,
                   notes: tuple[str, ...] = ()) -> str:
        """TOML text of a study that trains this study's network once at the given values.

        Same data, network, objective and seed; both parameters fixed; one trial with the
        random sampler. Like a hand-written file it states only what differs from the
        defaults. Raises SpecError (against this study's path) if a value is out of range.
        """
        # Keep '<name>-tuned' within the name length limit.
        name = self.name[: MAX_NAME_LENGTH - len(_TUNED_SUFFIX)] + _TUNED_SUFFIX
        top: dict[str, Any] = {
            "name": name,
            "description": f"study '{self.name}' with its tuned learning rate and momentum",
            "confirms": self.name,
            "trials": 1,
            "seed": self.seed,
            "folds": self.folds,
            "repeats": self.repeats,
        }
        data = _differing(self.data, DataSpec(), always=("source",))
        network = {k: getattr(self, k) for k in _NETWORK_KEYS}
        network = {k: v for k, v in network.items() if v != _STUDY_DEFAULTS[k]}
        sections = [
            ("data", data),
            ("network", network),
            ("search.learning_rate", {"fixed": float(learning_rate)}),
            ("search.momentum", {"fixed": float(momentum)}),
            ("sampler", {"name": "random"}),
            ("objective", _differing(self.objective, ObjectiveSpec())),
        ]
        lines = [
            f"# Tuned from study '{self.name}' by momentum-sweep: its answer's learning rate and",
            "# momentum, fixed. `sweep run` on this file measures them on the study's fresh",
            "# networks and prints the figure its page shows (it stores no study).",
            *(f"# {note}" for note in notes),
        ]
        lines += [f"{k} = {_toml_value(v)}" for k, v in top.items() if v != _STUDY_DEFAULTS.get(k)]
        for header, table in sections:
            if table:
                lines += ["", f"[{header}]"]
                lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
        text = "\n".join(lines) + "\n"
        # Hand back only what load_study would accept.
        parse_study(tomllib.loads(text), self.path)
        return text


_STUDY_DEFAULTS = {f.name: f.default for f in fields(StudySpec)}


def load_study(path: str | os.PathLike) -> StudySpec:
    """Read and validate a study file; SpecError on any problem."""
    shown = str(path)
    try:
        # A FIFO or a device would block the read, or never end it.
        if Path(path).exists() and not Path(path).is_dir() and not Path(path).is_file():
            raise SpecError(shown, "", "not a regular file (a pipe, socket or device)")
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise SpecError(shown, "", "file not found") from None
    except IsADirectoryError:
        raise SpecError(shown, "", "is a directory, not a study file") from None
    except PermissionError:
        raise SpecError(shown, "", "permission denied") from None
    except OSError as exc:
        raise SpecError(shown, "", f"cannot read file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(shown, "", f"not UTF-8 text (bad byte at position {exc.start})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with '(at line L, column C)'.
        raise SpecError(shown, "", f"invalid TOML: {exc}") from None
    return parse_study(data, shown)


def parse_study(data: dict, path: str | os.PathLike) -> StudySpec:
    """Validate an already-parsed study dict; ``path`` is the file it came from (for messages,
    and the folder a relative ``data.path`` is resolved against)."""
    return _read_study(_Reader(str(path)), data)


# ---------------------------------------------------------------------------------------------
# Reading


# Types named as the study file spells them, not as Python does.
_TOML_TYPES = {
    bool: "boolean",
    int: "integer",
    float: "float",
    str: "string",
    list: "array",
    dict: "table",
}


def _type_name(value: Any) -> str:
    if type(value) in _TOML_TYPES:
        return _TOML_TYPES[type(value)]
    return "date-time" if hasattr(value, "isoformat") else type(value).__name__


def _show(value: Any) -> str:
    text = ("true" if value else "false") if isinstance(value, bool) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _dotted(prefix: str, key: str) -> str:
    # Quote keys a reader could not type bare, so the dotted key stays unambiguous.
    shown = key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)
    return f"{prefix}.{shown}" if prefix else shown


class _Reader:
    """Validates one parsed study, naming its file in every error."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, key: str, reason: str) -> SpecError:
        return SpecError(self.path, key, reason)

    # -- shapes and types ---------------------------------------------------------------------

    def table(self, parent: dict, name: str, prefix: str = "") -> dict:
        value = parent.get(name, {})
        if not isinstance(value, dict):
            key = _dotted(prefix, name)
            got = f"{_type_name(value)} {_show(value)}"
            raise self.fail(key, f"must be a table ([{key}]), got {got}")
        return value

    def known_keys(self, table: dict, prefix: str, allowed: tuple[str, ...]) -> None:
        for key in table:
            if key in allowed:
                continue
            reason = f"unknown key; allowed: {', '.join(sorted(allowed))}"
            # A common slip: a table's key written at the top of the file.
            home = None if prefix else _home_table(key)
            close = difflib.get_close_matches(key, allowed, n=1)
            if home:
                reason += f" ({key!r} belongs in [{home}])"
            elif close:
                reason += f" (did you mean {close[0]!r}?)"
            raise self.fail(_dotted(prefix, key), reason)

    def integer(self, value: Any, key: str, minimum: int | None = None,
                maximum: int | None = None) -> int:
        # bool is an int subclass in Python, but `true` is not a number in a study file.
        if type(value) is not int:
            raise self.fail(key, f"must be an integer, got {_type_name(value)} {_show(value)}")
        if minimum is not None and value < minimum:
            raise self.fail(key, f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise self.fail(key, f"must be <= {maximum}, got {value}")
        return value

    def number(self, value: Any, key: str) -> float:
        if type(value) not in (int, float):
            raise self.fail(key, f"must be a number, got {_type_name(value)} {_show(value)}")
        if not math.isfinite(value):
            raise self.fail(key, f"must be a finite number, got {value}")
        return float(value)

    def boolean(self, value: Any, key: str) -> bool:
        if type(value) is not bool:
            raise self.fail(key, f"must be true or false, got {_type_name(value)} {_show(value)}")
        return value

    def string(self, value: Any, key: str) -> str:
        if type(value) is not str:
            raise self.fail(key, f"must be a string, got {_type_name(value)} {_show(value)}")
        return value

    def choice(self, value: Any, key: str, options: tuple[str, ...]) -> str:
        text = self.string(value, key)
        if text not in options:
            reason = f"must be one of {', '.join(options)}, got {text!r}"
            close = difflib.get_close_matches(text, options, n=1)
            if close:
                reason += f" (did you mean {close[0]!r}?)"
            raise self.fail(key, reason)
        return text


# ---------------------------------------------------------------------------------------------
# Reading, section by section: each function reads one part of the study file with the
# reader's typed getters, which name the file and the key in every error.



def _read_study(reader: _Reader, data: Any) -> StudySpec:
    if not isinstance(data, dict):
        raise reader.fail("", f"a study must be a table, got {_type_name(data)}")
    reader.known_keys(data, "", _TOP_KEYS)
    if "name" not in data:
        raise reader.fail("name", "required (it names the folder under results/)")
    kwargs: dict[str, Any] = {"name": _read_name(reader, data["name"]), "path": reader.path}
    if "description" in data:
        kwargs["description"] = reader.string(data["description"], "description")
    kwargs["data"] = _read_data(reader, reader.table(data, "data"))
    kwargs.update(_read_network(reader, reader.table(data, "network")))
    epochs = kwargs.get("epochs", _STUDY_DEFAULTS["epochs"])

    sampler_table = reader.table(data, "sampler")
    reader.known_keys(sampler_table, "sampler", ("name",))
    sampler = _STUDY_DEFAULTS["sampler"]
    if "name" in sampler_table:
        sampler = reader.choice(sampler_table["name"], "sampler.name", SAMPLERS)
    kwargs["sampler"] = sampler

    search = reader.table(data, "search")
    reader.known_keys(search, "search", ("learning_rate", "momentum"))
    for param in ("learning_rate", "momentum"):
        table = reader.table(search, param, "search")
        kwargs[param] = _read_param(reader, table, param, _STUDY_DEFAULTS[param], sampler)

    kwargs["pruner"] = _read_pruner(reader, reader.table(data, "pruner"), epochs)
    kwargs["objective"] = _read_objective(reader, reader.table(data, "objective"))

    if "seed" in data:
        kwargs["seed"] = reader.integer(data["seed"], "seed", 0, SEED_LIMIT - 1)
    if "batch_size" in data:
        kwargs["batch_size"] = reader.integer(data["batch_size"], "batch_size", 1, MAX_TRIALS)
    if "folds" in data:
        kwargs["folds"] = reader.integer(data["folds"], "folds", 1, MAX_FOLDS)
    if "repeats" in data:
        kwargs["repeats"] = reader.integer(data["repeats"], "repeats", 1, MAX_REPEATS)
    kwargs["trials"] = _read_trials(
        reader, data, sampler, kwargs["learning_rate"], kwargs["momentum"])
    kwargs["baseline"] = _read_baseline(reader, data, sampler, kwargs["momentum"])
    if "confirms" in data:
        kwargs["confirms"] = _read_name(reader, data["confirms"], "confirms")
        if kwargs["learning_rate"].fixed is None or kwargs["momentum"].fixed is None:
            raise reader.fail("confirms", "a confirmation fixes both parameters: give "
                              "search.learning_rate.fixed and search.momentum.fixed")
    return StudySpec(**kwargs)


def _read_name(reader: _Reader, value: Any, key: str = "name") -> str:
    """A study name (at ``key``): also a folder name under results/."""
    name = reader.string(value, key)
    if not name:
        raise reader.fail(key, "must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise reader.fail(
            key, f"must be at most {MAX_NAME_LENGTH} characters, got {len(name)}"
        )
    if ".." in name:
        raise reader.fail(
            key, f"must not contain '..' (it names a folder under results/), got {name!r}"
        )
    folded = name.lower()
    if folded in _RESULTS_ROOT_FILES or folded.endswith(_DATABASE_SUFFIXES):
        raise reader.fail(
            key, f"{name!r} is the name of a file the results folder keeps beside the "
            "study folders (its index, README or a database); choose another name",
        )
    if not _NAME_PATTERN.fullmatch(name):
        if not re.match(r"[A-Za-z0-9]", name):
            raise reader.fail(key, f"must start with a letter or digit, got {name!r}")
        raise reader.fail(
            key,
            f"may contain only letters, digits, '.', '_' and '-' "
            f"(it names a folder under results/), got {name!r}",
        )
    return name


def _read_data(reader: _Reader, table: dict) -> DataSpec:
    allowed = tuple(f.name for f in fields(DataSpec))
    reader.known_keys(table, "data", allowed)
    name = DataSpec.source
    if "source" in table:
        name = reader.choice(table["source"], "data.source", source_names())
    source = get_source(name)
    for key in table:
        # A key another source reads is an error here, because a value that is silently
        # ignored looks like it did something.
        owners = [s for s in source_names() if key in get_source(s).keys]
        if owners and name not in owners:
            which = " or ".join(f"source = {owner!r}" for owner in owners)
            raise reader.fail(f"data.{key}", f"only used with {which} (source is {name!r})")
    kwargs: dict[str, Any] = {"source": name}
    if "validation_fraction" in table:
        frac = reader.number(table["validation_fraction"], "data.validation_fraction")
        if not 0 < frac < 1:
            raise reader.fail("data.validation_fraction", f"must be in (0, 1), got {frac}")
        kwargs["validation_fraction"] = frac
    if "seed" in table:
        kwargs["seed"] = reader.integer(table["seed"], "data.seed", 0, SEED_LIMIT - 1)
    kwargs.update(source.read(reader, table, DataSpec()))
    return DataSpec(**kwargs)


def _read_network(reader: _Reader, table: dict) -> dict[str, Any]:
    reader.known_keys(table, "network", _NETWORK_KEYS)
    kwargs: dict[str, Any] = {}
    if "hidden" in table:
        kwargs["hidden"] = reader.integer(table["hidden"], "network.hidden", 1, MAX_HIDDEN)
    if "rule" in table:
        kwargs["rule"] = reader.choice(table["rule"], "network.rule", rule_names())
    if "init" in table:
        kwargs["init"] = reader.choice(table["init"], "network.init", INITIALISATIONS)
    if "epochs" in table:
        kwargs["epochs"] = reader.integer(table["epochs"], "network.epochs", 1, MAX_EPOCHS)
    if "precision" in table:
        kwargs["precision"] = reader.choice(table["precision"], "network.precision", PRECISIONS)
    return kwargs


def _read_param(
    reader: _Reader, table: dict, name: str, default: ParamSpec, sampler: str
) -> ParamSpec:
    prefix = f"search.{name}"
    reader.known_keys(table, prefix, _PARAM_KEYS)
    log = default.log
    if "log" in table:
        log = reader.boolean(table["log"], f"{prefix}.log")

    fixed = None
    if "fixed" in table:
        fixed = _in_bounds(reader, name, table["fixed"], f"{prefix}.fixed")
        for key in ("values", "points"):
            if key in table:
                raise reader.fail(
                    f"{prefix}.{key}",
                    "not allowed with fixed (a fixed parameter is not searched)",
                )
    # A fixed parameter's range defaults to the value itself, so `fixed = x` can stand alone.
    low = fixed if fixed is not None else default.low
    high = fixed if fixed is not None else default.high
    if fixed is None and isinstance(table.get("values"), list) and table["values"]:
        # Grid values widen the default range to reach them: values beyond it need no low or
        # high beside them (a stated bound still holds them in).
        stated = [_in_bounds(reader, name, v, f"{prefix}.values[{i}]")
                  for i, v in enumerate(table["values"])]
        low, high = min(low, *stated), max(high, *stated)
    if "low" in table:
        low = _in_bounds(reader, name, table["low"], f"{prefix}.low")
    if "high" in table:
        high = _in_bounds(reader, name, table["high"], f"{prefix}.high")
    if fixed is not None:
        # Checked against the bounds the file states; an unstated bound is the value itself.
        if fixed < low:
            raise reader.fail(f"{prefix}.fixed", f"must be >= low ({low}), got {fixed}")
        if fixed > high:
            raise reader.fail(f"{prefix}.fixed", f"must be <= high ({high}), got {fixed}")
    if low > high:
        if "high" in table:
            raise reader.fail(f"{prefix}.high", f"must be >= low ({low}), got {high}")
        raise reader.fail(f"{prefix}.low", f"must be <= high ({high}), got {low}")
    if log and low <= 0:
        key = f"{prefix}.low" if "low" in table else f"{prefix}.log"
        raise reader.fail(key, f"log = true needs low > 0, got low {low}")

    values = points = None
    if "values" in table and "points" in table:
        raise reader.fail(f"{prefix}.points", "give values or points, not both")
    for key in ("values", "points"):
        if key in table and sampler != "grid":
            raise reader.fail(
                f"{prefix}.{key}",
                f"only used by the grid sampler (sampler.name is {sampler!r})",
            )
    if "values" in table:
        values = _grid_values(reader, table["values"], f"{prefix}.values", low, high)
    if "points" in table:
        points = reader.integer(table["points"], f"{prefix}.points", 2)
        if low == high:
            raise reader.fail(
                f"{prefix}.points", f"needs low < high to spread points, both are {low}"
            )
    if sampler == "grid" and fixed is None and values is None and points is None:
        raise reader.fail(prefix, "the grid sampler needs values or points (or fixed)")
    return ParamSpec(low=low, high=high, log=log, fixed=fixed, values=values, points=points)


def _in_bounds(reader: _Reader, name: str, value: Any, key: str) -> float:
    """A learning rate must be > 0; a momentum in [0, 1)."""
    number = reader.number(value, key)
    if name == "learning_rate" and number <= 0:
        raise reader.fail(key, f"must be > 0, got {number}")
    if name == "momentum":
        if number < 0:
            raise reader.fail(key, f"must be >= 0, got {number}")
        if number >= 1:
            # Momentum 1 or more never forgets a step, so the weights diverge.
            raise reader.fail(key, f"must be < 1, got {number}")
    return number


def _grid_values(
    reader: _Reader, value: Any, key: str, low: float, high: float
) -> tuple[float, ...]:
    if not isinstance(value, list):
        got = f"{_type_name(value)} {_show(value)}"
        raise reader.fail(key, f"must be an array of numbers, got {got}")
    if not value:
        raise reader.fail(key, "must not be empty")
    numbers = []
    for i, item in enumerate(value):
        number = reader.number(item, f"{key}[{i}]")
        if not low <= number <= high:
            raise reader.fail(
                f"{key}[{i}]", f"must be within [low, high] = [{low}, {high}], got {number}"
            )
        if number in numbers:
            raise reader.fail(f"{key}[{i}]", f"repeats {number}")
        numbers.append(number)
    return tuple(sorted(numbers))


def _read_pruner(reader: _Reader, table: dict, epochs: int) -> PrunerSpec:
    allowed = tuple(f.name for f in fields(PrunerSpec))
    reader.known_keys(table, "pruner", allowed)
    name = PrunerSpec.name
    if "name" in table:
        name = reader.choice(table["name"], "pruner.name", PRUNERS)
    for key in table:
        if key != "name" and key not in _PRUNER_KEYS[name]:
            users = [p for p, keys in _PRUNER_KEYS.items() if key in keys]
            which = (
                f"{users[0]} pruner" if len(users) == 1
                else f"{', '.join(users[:-1])} or {users[-1]} pruners"
            )
            raise reader.fail(
                f"pruner.{key}", f"only used by the {which} (pruner.name is {name!r})"
            )
    kwargs: dict[str, Any] = {"name": name}
    if "startup_trials" in table:
        kwargs["startup_trials"] = reader.integer(
            table["startup_trials"], "pruner.startup_trials", 0
        )
    if "warmup_steps" in table:
        kwargs["warmup_steps"] = reader.integer(table["warmup_steps"], "pruner.warmup_steps", 0)
    if "interval" in table:
        kwargs["interval"] = reader.integer(table["interval"], "pruner.interval", 1)
    if "percentile" in table:
        percentile = reader.number(table["percentile"], "pruner.percentile")
        if not 0 < percentile < 100:
            raise reader.fail("pruner.percentile", f"must be in (0, 100), got {percentile}")
        kwargs["percentile"] = percentile
    if "threshold" in table:
        threshold = reader.number(table["threshold"], "pruner.threshold")
        if threshold <= 0:
            raise reader.fail("pruner.threshold", f"must be > 0, got {threshold}")
        kwargs["threshold"] = threshold
    spec = PrunerSpec(**kwargs)
    if name != "none":
        # A pruner that can never act is a mistake, not a setting.
        if spec.warmup_steps >= epochs:
            raise reader.fail(
                "pruner.warmup_steps",
                f"must be < network.epochs ({epochs}), got {spec.warmup_steps}; "
                "no trial could be pruned",
            )
        if spec.interval > epochs:
            raise reader.fail(
                "pruner.interval", f"must be <= network.epochs ({epochs}), got {spec.interval}"
            )
    return spec


def _read_objective(reader: _Reader, table: dict) -> ObjectiveSpec:
    reader.known_keys(table, "objective", tuple(f.name for f in fields(ObjectiveSpec)))
    kwargs: dict[str, Any] = {}
    if "name" in table:
        kwargs["name"] = reader.choice(table["name"], "objective.name", objective_names())
    if "target_loss" in table:
        target = reader.number(table["target_loss"], "objective.target_loss")
        if target <= 0:
            raise reader.fail("objective.target_loss", f"must be > 0, got {target}")
        kwargs["target_loss"] = target
    return ObjectiveSpec(**kwargs)


def _read_trials(
    reader: _Reader, data: dict, sampler: str, lr: ParamSpec, momentum: ParamSpec
) -> int:
    if sampler != "grid":
        if "trials" in data:
            return reader.integer(data["trials"], "trials", 1, MAX_TRIALS)
        return _STUDY_DEFAULTS["trials"]
    size = len(lr.grid()) * len(momentum.grid())
    if "trials" not in data:
        return size
    trials = reader.integer(data["trials"], "trials", 1, MAX_TRIALS)
    if trials > size:
        raise reader.fail(
            "trials",
            f"must be <= the grid size {size} ({len(lr.grid())} learning rates x "
            f"{len(momentum.grid())} momenta), got {trials}",
        )
    return trials


def _read_baseline(reader: _Reader, data: dict, sampler: str, momentum: ParamSpec) -> bool:
    if momentum.fixed is not None:
        why = f"momentum is fixed at {momentum.fixed} (search.momentum.fixed)"
    elif momentum.low > 0:
        why = f"momentum's range starts at {momentum.low}, so 0 is outside it"
    elif sampler == "grid":
        why = "the grid sampler already tries every grid point once"
    else:
        why = None
    if "baseline" not in data:
        # Default on, but silently off where a momentum-0 trial does not fit the search.
        return _STUDY_DEFAULTS["baseline"] and why is None
    baseline = reader.boolean(data["baseline"], "baseline")
    if baseline and why is not None:
        raise reader.fail(
            "baseline", f"a momentum-0 baseline trial needs momentum searched over a range "
            f"including 0, but {why}",
        )
    return baseline


def _home_table(key: str) -> str | None:
    tables = {
        "data": tuple(f.name for f in fields(DataSpec)),
        "network": _NETWORK_KEYS,
        "search": ("learning_rate", "momentum"),
        "pruner": tuple(f.name for f in fields(PrunerSpec)),
        "objective": tuple(f.name for f in fields(ObjectiveSpec)),
    }
    return next((t for t, keys in tables.items() if key in keys), None)


# ---------------------------------------------------------------------------------------------
# Writing


def _plain(value: Any) -> Any:
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _differing(spec: Any, default: Any, always: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of a spec that differ from its defaults (plus ``always``), in field order."""
    return {
        f.name: getattr(spec, f.name)
        for f in fields(spec)
        if f.name in always or getattr(spec, f.name) != getattr(default, f.name)
    }


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # repr always has a '.' or an exponent, as TOML floats need; nan/inf are refused on
        # parsing back.
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _toml_string(text: str) -> str:
    escapes = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
               "\r": "\\r"}
    out = []
    for char in text:
        if char in escapes:
            out.append(escapes[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def spec_from_dict(plain: dict, path: str = "<stored study>") -> StudySpec:
    """Rebuild a spec from ``StudySpec.to_dict()`` output, as stored with a study.

    The stored dict was validated when its file was read, so it is trusted as it is, except
    for keys this version does not know (a database written by a newer momentum-sweep): those
    are a SpecError naming the study and the key.
    """
    unknown = _unknown_stored_keys(plain)
    if unknown:
        raise SpecError(
            path, "", f"study {plain.get('name')!r} was stored by another version of "
            f"momentum-sweep (its stored spec has {', '.join(map(repr, unknown))}, unknown to "
            "this version); use that version, or run the study file under a new name",
        )

    def params(d):
        return ParamSpec(
            **{**d, "values": tuple(d["values"]) if d.get("values") is not None else None}
        )

    return StudySpec(
        **{
            **plain,
            "path": path,
            "data": DataSpec(**plain["data"]),
            "learning_rate": params(plain["learning_rate"]),
            "momentum": params(plain["momentum"]),
            "pruner": PrunerSpec(**plain["pruner"]),
            "objective": ObjectiveSpec(**plain["objective"]),
        }
    )


def _unknown_stored_keys(plain: dict) -> list[str]:
    """Dotted keys of a stored spec dict that this version's dataclasses do not have."""
    tables = {
        "data": DataSpec, "learning_rate": ParamSpec, "momentum": ParamSpec,
        "pruner": PrunerSpec, "objective": ObjectiveSpec,
    }
    top = {f.name for f in fields(StudySpec)}
    unknown = [key for key in plain if key not in top]
    for table, kind in tables.items():
        known = {f.name for f in fields(kind)}
        stored = plain.get(table)
        if isinstance(stored, dict):
            unknown += [f"{table}.{key}" for key in stored if key not in known]
    return unknown
