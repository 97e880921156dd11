"""Data sets for the momentum tuner: check, split, standardise, and read CSV files.

Every data set becomes a :class:`Dataset` holding a stratified train/validation split whose
features are standardised with statistics of the *training* split only, so nothing about the
validation items leaks into training; or a list of them, one per fold of stratified k-fold
cross-validation, each standardised with its own training part's statistics. Where the items
come from (Iris, a generator, a user's CSV) is :mod:`sweep.sources`'s; a source gives its items
as an unsplit :class:`Table` and this module splits it. :func:`load_csv` reads the CSV format
every file source shares.

Bad input raises :class:`DataError` (a ``ValueError``) whose message is one line naming the
file or data set and what is wrong with it. Everything is deterministic for a given seed.
Pure NumPy/pandas.
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DataError",
    "Dataset",
    "Table",
    "load_csv",
    "read_csv_table",
    "split_dataset",
    "fold_datasets",
    "split_stratified",
    "split_folds",
    "IRIS_PATH",
]

#: The bundled Iris file (150 rows, 50 per species).
IRIS_PATH = Path(__file__).with_name("iris.csv")
# Far more features than an online-trained network of this size is for; a header wider than
# this is refused at once instead of parsed for minutes.
MAX_COLUMNS = 10_000
# A CSV file is read this many cells at a time (each a Python string until converted).
CHUNK_CELLS = 1 << 18
# Reading a file this large is said on stderr as it goes.
PROGRESS_BYTES = 64 << 20

# Spellings that mean "missing" to people and to pandas; reported as a missing
# value rather than as a "non-numeric" one, which would be confusing for "NA".
_MISSING_TOKENS = frozenset(
    {"na", "n/a", "nan", "-nan", "+nan", "null", "none", "#n/a", "#na", "?", "-"}
)


class DataError(ValueError):
    """Bad data input; str(err) is one line naming the file (or data set) and what is wrong."""

    def __init__(self, message: str) -> None:
        # Callers print these as single-line diagnostics; a newline smuggled in
        # through a file name or a pandas message must not break that.
        super().__init__(" ".join(str(message).splitlines()))


def fail(source: object, what: str) -> DataError:
    return DataError(f"{source}: {what}")


@dataclass(frozen=True)
class Dataset:
    """A classification data set, already split and standardised.

    Attributes:
        name: short label used in reports (``"iris"``, ``"synthetic"``, a
            CSV file's stem, ...).
        x_train: float64 ``(n_train, n_inputs)``, standardised with the
            training split's own mean/std.
        y_train: int64 ``(n_train,)`` class indices ``0 .. n_classes-1``.
        x_val: float64 ``(n_val, n_inputs)``, standardised with the
            *training* statistics.
        y_val: int64 ``(n_val,)``.
        feature_names: one name per input column.
        class_names: ``class_names[k]`` is the label of class index ``k``.

    The arrays are converted to the dtypes above and made read-only, because a
    ``Dataset`` is shared by every trial of a sweep and an in-place edit by one
    trial would silently change all later ones.  Copy before mutating.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        fields = {
            "x_train": (self.x_train, np.float64, 2),
            "y_train": (self.y_train, np.int64, 1),
            "x_val": (self.x_val, np.float64, 2),
            "y_val": (self.y_val, np.int64, 1),
        }
        for field, (value, dtype, ndim) in fields.items():
            arr = np.array(value, dtype=dtype, copy=True)
            if arr.ndim != ndim:
                raise fail(self.name, f"{field} must be {ndim}-D, got shape {arr.shape}")
            arr.flags.writeable = False
            object.__setattr__(self, field, arr)
        object.__setattr__(self, "feature_names", tuple(str(f) for f in self.feature_names))
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))

        n_in = len(self.feature_names)
        for field in ("x_train", "x_val"):
            if getattr(self, field).shape[1] != n_in:
                raise fail(
                    self.name,
                    f"{field} has {getattr(self, field).shape[1]} columns "
                    f"but there are {n_in} feature names",
                )
        for xf, yf in (("x_train", "y_train"), ("x_val", "y_val")):
            if len(getattr(self, xf)) != len(getattr(self, yf)):
                raise fail(self.name, f"{xf} and {yf} have different lengths")
            y = getattr(self, yf)
            if y.size and (y.min() < 0 or y.max() >= len(self.class_names)):
                raise fail(
                    self.name,
                    f"{yf} has class indices outside 0..{len(self.class_names) - 1}",
                )

    @property
    def n_inputs(self) -> int:
        """Number of input features (columns of ``x_train``)."""
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int:
        """Number of classes (length of ``class_names``)."""
        return len(self.class_names)


# --------------------------------------------------------------------------
# argument checks


def check_fraction(validation_fraction: Any, source: object) -> float:
    if isinstance(validation_fraction, bool) or not isinstance(
        validation_fraction, (int, float, np.integer, np.floating)
    ):
        raise fail(
            source,
            f"validation_fraction must be a number in (0, 1), got {validation_fraction!r}",
        )
    frac = float(validation_fraction)
    if not 0.0 < frac < 1.0:  # also rejects NaN
        raise fail(source, f"validation_fraction must be in (0, 1), got {frac!r}")
    return frac


def check_seed(seed: Any, source: object) -> int:
    # default_rng would accept arrays and Generators too, but a sweep records
    # the seed in its results, so insist on a plain reproducible integer.
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise fail(source, f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def check_int(value: Any, field: str, minimum: int, source: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise fail(source, f"{field} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_class_sizes(y: np.ndarray, source: object, class_names=None) -> None:
    labels, counts = np.unique(y, return_counts=True)
    for label, count in zip(labels, counts):
        if count < 2:
            shown = class_names[int(label)] if class_names is not None else label
            raise fail(
                source,
                f"class {str(shown)!r} has only {count} item; every class needs at "
                f"least 2 (one for training, one for validation)",
            )


# --------------------------------------------------------------------------
# splitting and standardising


def split_stratified(
    y: np.ndarray, validation_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split item indices into training and validation sets, class by class.

    Parameters:
        y: 1-D array of class labels (any hashable, sortable values; usually
            int class indices).  Every class must have at least 2 items.
        validation_fraction: share of each class that goes to validation,
            strictly between 0 and 1.  Per class ``round(fraction * n)``
            items (halves round up) are used, clipped to ``1 .. n-1`` so that
            every class appears in *both* splits.  Iris (50 per class) with
            0.2 gives 10 validation items per class.
        seed: non-negative int for ``numpy.random.default_rng``.

    Returns:
        ``(train_idx, val_idx)``: disjoint int64 index arrays covering all of
        ``y``.  Each is in a seeded random order, so a file sorted by class
        (as Iris is) does not hand a trainer class-sorted minibatches.

    Raises:
        DataError: bad fraction or seed, ``y`` not 1-D, or a class with fewer
            than 2 items.
    """
    frac = check_fraction(validation_fraction, "split_stratified")
    seed = check_seed(seed, "split_stratified")
    y = np.asarray(y)
    if y.ndim != 1:
        raise fail("split_stratified", f"y must be 1-D, got shape {y.shape}")
    _check_class_sizes(y, "split_stratified")

    rng = np.random.default_rng(seed)
    train_parts, val_parts = [], []
    for label in np.unique(y):  # sorted order keeps the rng stream reproducible
        members = rng.permutation(np.flatnonzero(y == label))
        n = len(members)
        # floor(x + .5) rather than round(): Python's round() is banker's
        # rounding, which would make 2.5 -> 2 but 3.5 -> 4.
        n_val = min(max(math.floor(frac * n + 0.5), 1), n - 1)
        val_parts.append(members[:n_val])
        train_parts.append(members[n_val:])
    train_idx = rng.permutation(np.concatenate(train_parts)).astype(np.int64)
    val_idx = rng.permutation(np.concatenate(val_parts)).astype(np.int64)
    return train_idx, val_idx


def split_folds(y: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split item indices for stratified k-fold cross-validation.

    Parameters:
        y: 1-D array of class labels (as for :func:`split_stratified`).
        folds: number of folds, from 2 to the size of the smallest class, so
            that every fold validates on every class.
        seed: non-negative int for ``numpy.random.default_rng``.

    Returns:
        ``folds`` pairs ``(train_idx, val_idx)`` of int64 index arrays.  Every
        item is in exactly one fold's ``val_idx``, and fold f trains on all the
        others.  Each class's items are spread over the folds as evenly as
        possible (its counts in two folds differ by at most one), and so are
        the folds' sizes.  Each array is in a seeded random order, as
        :func:`split_stratified` gives.

    Raises:
        DataError: bad seed, ``y`` not 1-D, ``folds`` not an integer >= 2, or
            a class with fewer than ``folds`` items.
    """
    folds = check_int(folds, "folds", 2, "split_folds")
    seed = check_seed(seed, "split_folds")
    y = np.asarray(y)
    if y.ndim != 1:
        raise fail("split_folds", f"y must be 1-D, got shape {y.shape}")
    labels, counts = np.unique(y, return_counts=True)
    if folds > counts.min():
        raise fail(
            "split_folds",
            f"{folds} folds need at least {folds} items in every class; "
            f"class {labels[counts.argmin()]!r} has {counts.min()}",
        )

    rng = np.random.default_rng(seed)
    # The items are dealt to the folds in turn, class after class, each class
    # shuffled: a class's counts then differ by at most one between folds, and
    # carrying the deal on into the next class keeps the folds' sizes so too.
    dealt = np.concatenate([rng.permutation(np.flatnonzero(y == label)) for label in labels])
    fold_of_item = np.empty(len(y), dtype=np.int64)
    fold_of_item[dealt] = np.arange(len(y)) % folds
    splits = []
    for fold in range(folds):
        train_idx = rng.permutation(np.flatnonzero(fold_of_item != fold)).astype(np.int64)
        val_idx = rng.permutation(np.flatnonzero(fold_of_item == fold)).astype(np.int64)
        splits.append((train_idx, val_idx))
    return splits


def _standardise(x_train: np.ndarray, x_val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    # Test constancy exactly (max == min) instead of std == 0: the std of a
    # constant column can come out as ~1e-17 from rounding in the mean, and
    # dividing by that would blow rounding noise up to values of order 1.
    constant = x_train.max(axis=0) == x_train.min(axis=0)
    scale = np.where(constant, 1.0, std)
    # In place on copies made here: a large data set is then standardised in one copy.
    x_train, x_val = x_train - mean, x_val - mean
    x_train /= scale
    x_val /= scale
    return x_train, x_val


def _check_standardised(table: Table, raw_train: np.ndarray, x_train: np.ndarray,
                        x_val: np.ndarray) -> None:
    """Refuse a feature that float64 cannot standardise: values so large that their mean or
    variance overflows make it NaN (every network diverges at epoch 1, and the data is never
    blamed) or, divided by an infinite spread, all zeros (silently dropped)."""
    with np.errstate(over="ignore", invalid="ignore"):
        varies = np.ptp(raw_train, axis=0) > 0
        good = (np.isfinite(x_train).all(axis=0) & np.isfinite(x_val).all(axis=0)
                & ((np.ptp(x_train, axis=0) > 0) | ~varies))
    if good.all():
        return
    j = int(np.argmin(good))
    largest = float(np.max(np.abs(table.x[:, j])))
    raise fail(
        table.source or table.name,
        f"feature column {table.feature_names[j]!r} cannot be standardised in float64: its "
        f"values reach {largest:.3g} in magnitude, and their spread overflows; rescale the "
        "column (divide it by a power of ten) before using it",
    )


@dataclass(frozen=True)
class Table:
    """A data set as its source gives it, before any split: x (N, n_inputs) float64 features,
    y (N,) int64 class indices, and the names to give a ``Dataset``."""

    name: str
    x: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    source: str | None = None  # what messages name: the file, or the name


def _standardised(table: Table, train_idx: np.ndarray, val_idx: np.ndarray) -> Dataset:
    raw_train = table.x[train_idx]
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused just below
        x_train, x_val = _standardise(raw_train, table.x[val_idx])
    _check_standardised(table, raw_train, x_train, x_val)
    del raw_train
    return Dataset(
        name=table.name,
        x_train=x_train,
        y_train=table.y[train_idx],
        x_val=x_val,
        y_val=table.y[val_idx],
        feature_names=table.feature_names,
        class_names=table.class_names,
    )


def split_dataset(table: Table, validation_fraction: float, seed: int) -> Dataset:
    """The table as one stratified training/validation split (see :func:`split_stratified`),
    standardised with the training part's statistics."""
    train_idx, val_idx = split_stratified(table.y, validation_fraction, seed)
    return _standardised(table, train_idx, val_idx)


def fold_datasets(table: Table, folds: int, seed: int, source: object) -> list[Dataset]:
    """The table as ``folds`` >= 2 stratified folds (see :func:`split_folds`), fold f at index
    f, each standardised with its own training part's statistics. DataError naming ``source``
    when a class has fewer items than folds."""
    counts = np.bincount(table.y, minlength=len(table.class_names))
    if folds > counts.min():
        raise fail(
            source,
            f"{folds} folds need at least {folds} items in every class; "
            f"class {table.class_names[counts.argmin()]!r} has {counts.min()} "
            f"(ask for at most folds = {counts.min()})",
        )
    return [_standardised(table, train, val) for train, val in split_folds(table.y, folds, seed)]


# --------------------------------------------------------------------------
# CSV


def _describe_bad_cell(raw: str) -> str:
    text = raw.strip()
    if text == "":
        return "an empty value"
    if text.lower() in _MISSING_TOKENS:
        return f"a missing value {text!r}"
    try:
        float(text)
    except ValueError:
        return f"a non-numeric value {text!r}"
    return f"a non-finite value {text!r}"


def _is_finite_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _too_many_fields(path: Path) -> str | None:
    """Describe the first row wider than the header, or None if there is none."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f, skipinitialspace=True)
            width = len(next(reader))
            for row in reader:
                if len(row) > width:
                    return (
                        f"line {reader.line_num} has {len(row)} fields "
                        f"but the header has {width}"
                    )
    except (OSError, ValueError, StopIteration, csv.Error):
        pass
    return None


def _check_header(path: Path, source: str) -> int:
    """Refuse a header with too many columns or a repeated name, before pandas reads the file
    (it would spend minutes on a huge header, and renames a repeated 'a' to 'a.1'); returns
    how many columns it has (0 if it cannot be read here)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f, skipinitialspace=True), [])
    except (OSError, ValueError, csv.Error):
        return 0  # pandas reports it below, in its own words
    if len(header) > MAX_COLUMNS:
        raise fail(source, f"the header has {len(header)} columns; at most {MAX_COLUMNS} are read")
    seen = set()
    for name in (column.strip() for column in header):
        if name in seen:
            raise fail(source, f"column {name!r} appears more than once in the header")
        seen.add(name)
    return len(header)


def _chunks(path: str | os.PathLike, source: str) -> Iterator[pd.DataFrame]:
    """The file's rows as text, a few thousand at a time (about CHUNK_CELLS cells): each
    chunk's columns named and stripped, with its all-blank rows dropped and its index the
    rows' 0-based place after the header (so index + 2 is the line number)."""
    # pandas takes a fifth of a second to import: only reading a CSV needs it.
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise fail(source, "file not found")
    if p.is_dir():
        raise fail(source, "is a directory, not a CSV file")
    if not p.is_file():  # a FIFO or a device would block the read, or never end it
        raise fail(source, "not a regular file (a pipe, socket or device)")
    width = _check_header(p, source)
    # Everything is read as text so that we, not pandas, decide what a bad cell is and can
    # report its column and line. Blank lines are kept (as all-empty rows, dropped below) so
    # that row index + 2 is the line number in the file.
    options = dict(dtype=str, keep_default_na=False, skip_blank_lines=False,
                   skipinitialspace=True, index_col=False, encoding="utf-8",
                   chunksize=max(1, CHUNK_CELLS // max(width, 1)))
    reader = _parsed(lambda: pd.read_csv(p, **options), p, source)
    with reader:
        while (chunk := _parsed(lambda: next(reader, None), p, source)) is not None:
            chunk.columns = [str(c).strip() for c in chunk.columns]
            # Missing trailing fields come back as NaN despite dtype=str; treat as "".
            chunk = chunk.fillna("").apply(lambda column: column.str.strip())
            yield chunk.loc[~(chunk == "").all(axis=1)]


def _parsed(parse, p: Path, source: str):
    """``parse()``, with pandas' errors as DataErrors. A data row with more fields than the
    header would otherwise be silently truncated (index_col=False) or, on the first row,
    shifted into the index: that warning is made an error we can report. (Only around each
    call: a filter left set while the caller works with a chunk would outlive it.)"""
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            return parse()
        except Exception as exc:
            raise _read_error(exc, p, source) from None


def _read_error(exc: Exception, p: Path, source: str) -> Exception:
    """The DataError for an exception pandas raised reading ``p`` (other exceptions as they
    are)."""
    import pandas as pd

    if isinstance(exc, pd.errors.ParserWarning):
        return fail(source, _too_many_fields(p) or "a row has more fields than the header")
    if isinstance(exc, pd.errors.EmptyDataError):
        return fail(source, "file is empty (no header line)")
    if isinstance(exc, pd.errors.ParserError):
        # Prefer our own wording for the common "too many fields" case so the message is the
        # same whichever row it happens on.
        return fail(source, _too_many_fields(p) or "not a valid CSV file: " + str(
            exc).strip().replace("Error tokenizing data. C error: ", ""))
    if isinstance(exc, UnicodeDecodeError):
        return fail(source, f"not UTF-8 text (bad byte at position {exc.start})")
    if isinstance(exc, IsADirectoryError):
        return fail(source, "is a directory, not a CSV file")
    if isinstance(exc, PermissionError):
        return fail(source, "permission denied")
    if isinstance(exc, FileNotFoundError):
        return fail(source, "file not found")
    if isinstance(exc, OSError):
        return fail(source, f"cannot read file: {exc.strerror or exc}")
    return exc


def _line_count(p: Path) -> int:
    """How many lines ``p`` has at most (newlines, plus one for a last line without one)."""
    count, last = 0, b"\n"
    with open(p, "rb") as f:
        while block := f.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


class _Progress:
    """Says on stderr how far the reading of a large file (PROGRESS_BYTES or more) has got: a
    percentage redrawn in place on a terminal, a line at the start and at the end elsewhere."""

    def __init__(self, p: Path, lines: int):
        import sys

        size = p.stat().st_size
        self.stream = sys.stderr if size >= PROGRESS_BYTES else None
        self.name, self.lines, self.megabytes = p.name, max(lines, 1), size / 1e6
        self.started = time.monotonic()
        self.shown = -1
        self.terminal = self.stream is not None and self.stream.isatty()
        if self.stream is not None and not self.terminal:
            self._say(f"sweep: reading {self.name} ({self.megabytes:.0f} MB)\n")

    def line(self, done: int) -> None:
        percent = min(100, 100 * done // self.lines)
        if self.terminal and percent != self.shown:
            self.shown = percent
            self._say(f"\rsweep: reading {self.name} ({self.megabytes:.0f} MB): {percent} %")

    def end(self, rows: int) -> None:
        if self.stream is not None:
            start, end = ("\r", "\033[K\n") if self.terminal else ("", "\n")
            seconds = time.monotonic() - self.started
            self._say(f"{start}sweep: read {self.name}: {rows:,} rows in {seconds:.0f} s{end}")

    def _say(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed stderr does not stop the reading
            pass


def load_csv(
    path: str | os.PathLike,
    target: str,
    validation_fraction: float = 0.2,
    seed: int = 0,
    name: str | None = None,
) -> Dataset:
    """Load a comma-separated file of numeric features and one class column.

    The first line is the header.  Every column except ``target`` is a
    feature and must hold finite numbers in every row; fully blank lines are
    ignored.  Text must be UTF-8.

    Parameters:
        path: the CSV file.
        target: name of the class column.  Labels may be strings or integers;
            they are compared as (whitespace-stripped) text, and two labels that
            are the same number written differently ("1" and "1.0") are refused.  ``class_names``
            is the sorted unique labels: numerically if every label is an
            integer (so labels ``0..C-1`` keep their own index), otherwise
            alphabetically.
        validation_fraction: share of each class held out, in (0, 1);
            default 0.2.  See :func:`split_stratified`.
        seed: non-negative int for the split; default 0.
        name: ``Dataset.name``; default the file name without extension.

    Raises:
        DataError: one line, starting with ``path``, for a missing, unreadable
            or empty file, no data rows, a missing target column (the message
            lists the columns), no feature columns, a non-numeric / missing /
            infinite feature value (with column and line), an empty label,
            a header with a repeated column name or more than MAX_COLUMNS columns,
            fewer than 2 classes, or a class with fewer than 2 items (each class
            needs one training and one validation item; this also covers
            "fewer items than classes").
    """
    source = str(path)
    frac = check_fraction(validation_fraction, source)
    seed = check_seed(seed, source)
    table = read_csv_table(path, target, name if name is not None else Path(path).stem)
    return split_dataset(table, frac, seed)


def read_csv_table(path: str | os.PathLike, target: str, name: str) -> Table:
    """The checked contents of a CSV file for :func:`load_csv` (which documents the checks).

    Read a chunk of rows at a time, each converted to numbers before the next is read: the
    rows' text (dozens of bytes a cell as Python strings) is never all in memory, and the
    features take one float64 array, allocated once for the file's number of lines.
    """
    source = str(path)
    chunks = _chunks(path, source)
    first = next(chunks, None)  # the header alone gives one chunk, with no rows
    if first is None:
        raise fail(source, "no data rows after the header")
    columns = list(first.columns)
    if target not in columns:
        raise fail(
            source,
            f"target column {target!r} not found; columns are "
            + ", ".join(repr(c) for c in columns)
            + _delimiter_hint(columns),
        )
    features = [c for c in columns if c != target]
    if not features:
        raise fail(source, f"no feature columns besides target {target!r}")

    lines = _line_count(Path(path))
    progress = _Progress(Path(path), lines)
    x = np.empty((max(lines - 1, 0), len(features)), dtype=np.float64)
    labels, rows = [], 0
    for chunk in itertools.chain([first], chunks):
        line_numbers = chunk.index.to_numpy() + 2  # +1 for the header, +1 for 1-based
        for j, col in enumerate(features):
            raw = chunk[col].to_numpy(dtype=object)
            # NumPy parses str objects with Python's float(): correctly rounded, and the
            # same rules _describe_bad_cell uses to explain a failure.
            try:
                values = np.asarray(raw, dtype=np.float64)
                finite = np.isfinite(values)
            except ValueError:
                finite = np.array([_is_finite_number(v) for v in raw])
            if not finite.all():
                i = int(np.argmin(finite))  # first bad row
                raise fail(
                    source,
                    f"column {col!r} has {_describe_bad_cell(raw[i])} on line {line_numbers[i]}",
                )
            x[rows:rows + len(chunk), j] = values
        labels.append(chunk[target].to_numpy(dtype=object))
        empty = np.flatnonzero(labels[-1] == "")
        if empty.size:
            raise fail(
                source, f"column {target!r} has an empty label on line {line_numbers[empty[0]]}"
            )
        rows += len(chunk)
        if len(chunk):
            progress.line(int(line_numbers[-1]))
    if rows == 0:
        raise fail(source, "no data rows after the header")
    progress.end(rows)
    x = x[:rows]

    labels = np.concatenate(labels)
    unique = sorted(set(labels), key=_label_key(labels))
    _check_numeric_spellings(unique, source, target)
    if len(unique) < 2:
        raise fail(
            source,
            f"target {target!r} has only one class ({unique[0]!r}); need at least 2",
        )
    index = {label: k for k, label in enumerate(unique)}
    y = np.array([index[label] for label in labels], dtype=np.int64)
    _check_class_sizes(y, source, unique)
    return Table(name, x, y, tuple(features), tuple(unique), source)


def _delimiter_hint(columns: list[str]) -> str:
    """A hint when a header read as one column is really separated by something else: files are
    read as comma-separated only, as the message says, rather than guessed at."""
    if len(columns) != 1:
        return ""
    for delimiter, name in ((";", "semicolons"), ("\t", "tabs")):
        if delimiter in columns[0]:
            return f" (the header looks separated by {name}; save the file comma-separated)"
    return ""


def _check_numeric_spellings(labels, source: str, target: str) -> None:
    """Labels are text, so "1" and "1.0" would be two classes: refuse two labels that are one
    number written two ways, which is almost always an export mistake, not two classes."""
    spelt = {}
    for label in labels:
        try:
            number = float(label)
        except ValueError:
            continue
        if number in spelt:
            raise fail(
                source,
                f"column {target!r} has labels {spelt[number]!r} and {label!r}: labels are text, "
                "so these would be two classes; write each class the same way",
            )
        spelt[number] = label


def _label_key(labels):
    def is_int(text: str) -> bool:
        try:
            int(text)
        except ValueError:
            return False
        return True

    if all(is_int(t) for t in set(labels)):
        # (value, text): a stable order (two spellings of one number are refused above).
        return lambda t: (int(t), t)
    return str
