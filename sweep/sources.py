"""Data sources: where a study's items come from, one class each.

A source knows its own ``[data]`` keys (which of :class:`sweep.spec.DataSpec`'s fields it reads,
and how to check them), how to produce its items (an unsplit :class:`sweep.data.Table`), and
how a page describes it. Everything else asks it: the study file's valid sources and keys
(:mod:`sweep.spec`), :func:`load_dataset` and :func:`load_folds` (the Python API), and the pages.
Splitting, standardising and the CSV format are :mod:`sweep.data`'s, shared by every source.

Shipped: ``iris`` (Fisher's Iris, bundled), ``synthetic`` (labels from a random teacher
network), ``csv`` (a user's file) and ``correlated`` (ill-conditioned inputs, where momentum
should matter).

Adding a source: a subclass of :class:`DataSource` with ``@register_source``, its keys among
``DataSpec``'s fields (a new key is a new ``DataSpec`` field with its default), ``table``,
``read`` and ``describe``; nothing outside this file and ``DataSpec`` changes.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

import numpy as np

from .data import (
    IRIS_PATH,
    Dataset,
    Table,
    check_fraction,
    check_int,
    check_seed,
    fail,
    fold_datasets,
    read_csv_table,
    split_dataset,
)
from .registry import Registry

SOURCES = Registry("data source", make=lambda cls: cls())
register_source = SOURCES.register  # class decorator: a source known by its name
source_names = SOURCES.names  # the registered sources' names, in order
get_source = SOURCES.get  # the source called name; ValueError naming the valid ones


class DataSource:
    """Where a data set's items come from."""

    name: str = ""
    # The [data] keys (DataSpec fields) this source reads, beyond source, validation_fraction
    # and seed, which every source reads.
    keys: tuple[str, ...] = ()
    # Whether a path names it: load_dataset reads anything that is not a source's name as a
    # file of this source's (path and target).
    from_file: bool = False

    def table(self, seed: int, **parameters) -> Table:
        """The items, unsplit, from the source's parameters (its keys, and any the Python API
        takes beyond them); DataError on a bad one."""
        raise NotImplementedError

    def parameters(self) -> tuple[str, ...]:
        """The keyword parameters ``table`` takes besides ``seed``."""
        return tuple(p for p in inspect.signature(self.table).parameters if p != "seed")

    def read(self, reader, table: dict, defaults) -> dict[str, Any]:
        """The source's keys from a study file's ``[data]`` table, checked.

        reader: the study file's reader (``sweep.spec``), whose ``integer``, ``number``,
        ``string`` and ``fail`` name the file and the key in every error, and whose ``path``
        is the study file's. defaults: the keys' defaults (a ``DataSpec()``)."""
        return {}

    def describe(self, data) -> str:
        """One line naming the data set ``data`` (a DataSpec) describes, for pages."""
        raise NotImplementedError

    def arguments(self, data) -> dict[str, Any]:
        """``table``'s parameters from a DataSpec."""
        return {key: getattr(data, key) for key in self.keys}


# ---------------------------------------------------------------------------------------------
# Loading by name, as the Python API and the study files do


def _resolve(name_or_path, target, parameters: dict) -> tuple[DataSource, dict]:
    """The source ``name_or_path`` names (a source's name, else the file source with that
    path) and its ``table`` parameters, after checking which arguments that source takes."""
    label = str(name_or_path)
    source = SOURCES.entries.get(label)
    if source is None or source.from_file:
        source = next(s for s in SOURCES.entries.values() if s.from_file)
        arguments = {"path": name_or_path, "target": target}
        if target is None:
            raise fail(label, "a target column is required for a CSV file")
        allowed = ()
    else:
        if target is not None:
            raise fail(label, "target is only used for CSV files")
        arguments = {}
        allowed = source.parameters()
    if parameters and not allowed:
        takers = [repr(s.name) for s in SOURCES.entries.values()
                  if s.parameters() and not s.from_file]
        raise fail(label, f"parameter(s) {', '.join(sorted(parameters))} only apply to "
                   f"{' or '.join(takers)}")
    unknown = sorted(set(parameters) - set(allowed))
    if unknown:
        raise fail(label, f"unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(allowed)}")
    return source, {**arguments, **parameters}


def load_dataset(
    name_or_path: str,
    *,
    target: str | None = None,
    validation_fraction: float = 0.2,
    seed: int = 0,
    **parameters: Any,
) -> Dataset:
    """Load a data set by name, as a command line would.

    Parameters:
        name_or_path: a source's name (``source_names()``: "iris", "synthetic",
            "correlated"), or else a CSV file's path.  The names win over files of the same
            name; write ``./iris`` to mean a file.
        target: class column, required for a CSV and not allowed otherwise.
        validation_fraction: share of each class held out, in (0, 1); default 0.2.
        seed: non-negative int for the split (and a generated source's draw); default 0.
        **parameters: a generated source's parameters (e.g. ``items``, ``inputs``,
            ``classes``, ``hidden``, ``noise`` for "synthetic"); not allowed otherwise.

    Raises:
        DataError: a missing or unexpected argument, or whatever the chosen source raises.
    """
    label = str(name_or_path)
    fraction = check_fraction(validation_fraction, label)
    seed = check_seed(seed, label)
    source, arguments = _resolve(name_or_path, target, parameters)
    return split_table(source.table(seed, **arguments), 1, fraction, seed, label)[0]


def load_folds(
    name_or_path: str,
    *,
    folds: int,
    target: str | None = None,
    seed: int = 0,
    validation_fraction: float = 0.2,
    **parameters: Any,
) -> list[Dataset]:
    """Load a data set by name as stratified k-fold cross-validation.

    Parameters:
        name_or_path, target, seed, **parameters: as for :func:`load_dataset`.  ``seed``
            also deals the items to the folds (see :func:`sweep.data.split_folds`).
        folds: number of folds, from 1 to the size of the smallest class.  1 gives
            ``[load_dataset(...)]``, the single split, with the same numbers.  With 2 or more,
            fold f validates on its own share of every class and trains on all the other
            items, standardised with the statistics of those training items.
        validation_fraction: used with ``folds == 1`` only, where it is the share of each
            class held out, in (0, 1); it is checked in any case.

    Returns:
        ``folds`` Datasets, fold f at index f, each with the data set's name.

    Raises:
        DataError: ``folds`` not an integer >= 1 or more than the smallest class's size, or
            whatever :func:`load_dataset` raises.
    """
    label = str(name_or_path)
    folds = check_int(folds, "folds", 1, label)
    fraction = check_fraction(validation_fraction, label)
    seed = check_seed(seed, label)
    source, arguments = _resolve(name_or_path, target, parameters)
    return split_table(source.table(seed, **arguments), folds, fraction, seed, label)


def spec_table(data) -> Table:
    """The items a study's DataSpec ``data`` describes, unsplit."""
    source = get_source(data.source)
    arguments = source.arguments(data)
    return source.table(check_seed(data.seed, _label(data)), **arguments)


def spec_folds(data, folds: int, *, table: Table | None = None,
               split_seed: int | None = None) -> list[Dataset]:
    """The data set a study's DataSpec ``data`` describes, as ``folds`` folds (1: its single
    split of ``data.validation_fraction``).

    table: its items if already loaded (``spec_table(data)``). split_seed: deal the items to
    the folds (or the split) with this seed instead of ``data.seed``, which also draws a
    generated source's items: a fresh partition of the same items.
    """
    table = spec_table(data) if table is None else table
    seed = data.seed if split_seed is None else split_seed
    return split_table(table, folds, data.validation_fraction, seed, _label(data))


def _label(data) -> str:
    """What errors about a DataSpec's data name: its file, or its source."""
    return get_source(data.source).arguments(data).get("path") or data.source


def split_table(table: Table, folds: int, validation_fraction: float, seed: int,
                label: str) -> list[Dataset]:
    """``table`` as ``folds`` stratified folds, or with 1 one stratified split of
    ``validation_fraction``; DataError naming ``label`` for too many folds."""
    if folds == 1:
        return [split_dataset(table, validation_fraction, seed)]
    return fold_datasets(table, folds, seed, label)


# ---------------------------------------------------------------------------------------------
# The sources


def _read_generated(reader, table: dict, defaults, least_inputs: int) -> dict[str, Any]:
    """items, inputs, classes and noise of a generated source's [data] table, checked."""
    values: dict[str, Any] = {}
    if "classes" in table:
        values["classes"] = reader.integer(table["classes"], "data.classes", 2)
    if "inputs" in table:
        values["inputs"] = reader.integer(table["inputs"], "data.inputs", least_inputs)
    classes = values.get("classes", defaults.classes)
    if "items" in table:
        # Every class needs at least one training and one validation item.
        values["items"] = reader.integer(table["items"], "data.items")
        if values["items"] < 2 * classes:
            raise reader.fail(
                "data.items", f"must be >= 2 * classes ({2 * classes}), got {values['items']}")
    elif "classes" in table and defaults.items < 2 * classes:
        raise reader.fail(
            "data.classes",
            f"needs items >= 2 * classes, but items is {defaults.items}; set data.items")
    if "noise" in table:
        values["noise"] = reader.number(table["noise"], "data.noise")
        if values["noise"] < 0:
            raise reader.fail("data.noise", f"must be >= 0, got {values['noise']}")
    return values


class _Generated(DataSource):
    """A source that draws its items from its seed: items, inputs, classes and noise."""

    keys = ("items", "inputs", "classes", "noise")
    least_inputs = 1
    label = ""  # how a page names it, before its sizes

    def read(self, reader, table: dict, defaults) -> dict[str, Any]:
        return _read_generated(reader, table, defaults, self.least_inputs)

    def describe(self, data) -> str:
        return (f"{self.label} ({data.items} items, {data.inputs} inputs, {data.classes} "
                f"classes, noise {data.noise:g}, seed {data.seed})")

    def _table(self, x: np.ndarray, y: np.ndarray, classes: int) -> Table:
        return Table(self.name, x, y, tuple(f"x{j}" for j in range(x.shape[1])),
                     tuple(f"class{k}" for k in range(classes)))


def _check_number(value, name: str, least: float, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise fail(source, f"{name} must be a number >= {least:g}, got {value!r}")
    if not (math.isfinite(float(value)) and float(value) >= least):
        raise fail(source, f"{name} must be a finite number >= {least:g}, got {value!r}")
    return float(value)


@register_source
class Iris(DataSource):
    """Fisher's Iris data: 150 flowers, 4 measurements (cm), 3 species (50 each), bundled as
    ``sweep/iris.csv`` (copied from scikit-learn's ``sklearn/datasets/data``)."""

    name = "iris"

    def table(self, seed: int) -> Table:
        return read_csv_table(IRIS_PATH, "species", name="iris")

    def describe(self, data) -> str:
        return "Iris"


@register_source
class Synthetic(_Generated):
    """A learnable synthetic task: labels from a random teacher network.

    Inputs are standard normal; labels are the argmax of ``tanh(x @ W1 + b1) @ W2 + b2
    (+ noise)`` with random weights. Because a tanh network with ``hidden`` units produced the
    labels, a student of the same shape can fit them, which makes this a controlled playground
    for tuning momentum. Inputs, weights and the split all come from
    ``numpy.random.default_rng(seed)``.
    """

    name = "synthetic"
    label = "synthetic"

    def table(self, seed: int, items: int = 300, inputs: int = 4, classes: int = 3,
              hidden: int = 8, noise: float = 0.0) -> Table:
        """items: examples, >= 2 * classes; inputs >= 1; classes >= 2; hidden: the teacher's
        hidden units, >= 1; noise: standard deviation of Gaussian noise added to the teacher's
        outputs before the argmax, >= 0 (around 0.1-0.5 some labels near class boundaries
        flip). DataError when no draw among 100 gives every class at least 2 items (only
        plausible when items is close to 2 * classes)."""
        source = "synthetic"
        classes = check_int(classes, "classes", 2, source)
        items = check_int(items, "items", 2 * classes, source)
        inputs = check_int(inputs, "inputs", 1, source)
        hidden = check_int(hidden, "hidden", 1, source)
        seed = check_seed(seed, source)
        noise = _check_number(noise, "noise", 0.0, source)

        rng = np.random.default_rng(seed)
        # Redrawing from the same generator keeps retries deterministic per seed.
        for _ in range(100):
            x = rng.standard_normal((items, inputs))
            w1 = rng.standard_normal((inputs, hidden)) / math.sqrt(inputs)
            b1 = rng.standard_normal(hidden) * 0.5
            w2 = rng.standard_normal((hidden, classes)) / math.sqrt(hidden)
            h = np.tanh(x @ w1 + b1) @ w2
            # Centring each output over the sample stops one class from winning almost
            # everywhere, which random weights otherwise often do.
            logits = h - h.mean(axis=0)
            if noise > 0.0:
                logits = logits + noise * rng.standard_normal(logits.shape)
            y = logits.argmax(axis=1).astype(np.int64)
            if np.bincount(y, minlength=classes).min() >= 2:
                break
        else:
            raise fail(source, f"could not draw labels with at least 2 items in each of "
                       f"{classes} classes from {items} items; use more items")
        return self._table(x, y, classes)


@register_source
class Csv(DataSource):
    """A comma-separated file of numeric features and one class column (see
    :func:`sweep.data.load_csv` for what is checked)."""

    name = "csv"
    keys = ("path", "target")
    from_file = True

    def table(self, seed: int, path: str = "", target: str = "") -> Table:
        return read_csv_table(path, target, name=Path(path).stem)

    def read(self, reader, table: dict, defaults) -> dict[str, Any]:
        if "path" not in table:
            raise reader.fail("data.path", "required for source = 'csv'")
        if "target" not in table:
            raise reader.fail("data.target", "required for source = 'csv' (the class column)")
        given = reader.string(table["path"], "data.path")
        if not given:
            raise reader.fail("data.path", "must not be empty")
        # Relative to the study file, so a study and its CSV can move together.
        resolved = (Path(reader.path).parent / given).resolve()
        if not resolved.exists():
            raise reader.fail("data.path", f"file not found: {resolved}")
        if not resolved.is_file():
            raise reader.fail("data.path", f"not a file: {resolved}")
        target = reader.string(table["target"], "data.target")
        if not target:
            raise reader.fail("data.target", "must not be empty")
        return {"path": str(resolved), "target": target}

    def describe(self, data) -> str:
        return f"CSV {Path(data.path or '').name} (target {data.target})"


@register_source
class Correlated(_Generated):
    """Strongly correlated inputs whose classes differ along their least-varying direction.

    Standardising each feature does not make this problem well conditioned, which is why it is
    here: momentum is meant to help exactly where plain gradient descent must take steps small
    enough for the steep directions while crawling along the shallow ones. Latent
    ``z ~ N(0, I)`` is scaled by singular values spread geometrically from 1 down to
    ``1 / condition`` and rotated by a random orthogonal matrix, ``x = (z * s) @ Q.T``: every
    feature mixes every latent direction, so the features are strongly correlated and keep
    their covariance's spread (condition number ``condition``, squared in the loss's curvature)
    after per-feature standardisation, which only rescales columns. The class is the quantile
    bin of the *smallest* direction's latent coordinate (plus ``noise`` times a standard
    normal), so telling the classes apart needs weights that are large along a direction the
    inputs barely vary in.
    """

    name = "correlated"
    label = "correlated inputs"
    least_inputs = 2

    def table(self, seed: int, items: int = 600, inputs: int = 8, classes: int = 3,
              noise: float = 0.0, condition: float = 30.0) -> Table:
        """items >= 2 * classes; inputs >= 2; classes >= 2 (equal-sized bins); noise >= 0,
        added to the class coordinate before binning (flips labels near the boundaries);
        condition >= 1, the ratio of the largest to the smallest singular value."""
        source = "correlated"
        classes = check_int(classes, "classes", 2, source)
        items = check_int(items, "items", 2 * classes, source)
        inputs = check_int(inputs, "inputs", 2, source)
        seed = check_seed(seed, source)
        noise = _check_number(noise, "noise", 0.0, source)
        condition = _check_number(condition, "condition", 1.0, source)

        rng = np.random.default_rng(seed)
        latent = rng.standard_normal((items, inputs))
        scales = np.geomspace(1.0, 1.0 / condition, inputs)
        rotation, _ = np.linalg.qr(rng.standard_normal((inputs, inputs)))
        x = (latent * scales) @ rotation.T
        coordinate = latent[:, -1] + noise * rng.standard_normal(items)
        edges = np.quantile(coordinate, np.arange(1, classes) / classes)
        y = np.searchsorted(edges, coordinate).astype(np.int64)
        return self._table(x, y, classes)


# ---------------------------------------------------------------------------------------------
# The built-in sources under their own names, for the Python API


def load_iris(validation_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Fisher's Iris data, split: with the default 0.2, 120 training and 30 validation items
    (10 per species). Classes ``setosa``, ``versicolor``, ``virginica`` (indices 0, 1, 2)."""
    return load_dataset("iris", validation_fraction=validation_fraction, seed=seed)


def make_synthetic(items: int = 300, inputs: int = 4, classes: int = 3, seed: int = 0,
                   hidden: int = 8, validation_fraction: float = 0.2,
                   noise: float = 0.0) -> Dataset:
    """The synthetic source's data set (see :class:`Synthetic`), split."""
    return load_dataset("synthetic", validation_fraction=validation_fraction, seed=seed,
                        items=items, inputs=inputs, classes=classes, hidden=hidden, noise=noise)


def make_correlated(items: int = 600, inputs: int = 8, classes: int = 3, seed: int = 0,
                    noise: float = 0.0, condition: float = 30.0,
                    validation_fraction: float = 0.2, folds: int = 1) -> list[Dataset]:
    """The correlated source's data set (see :class:`Correlated`) as ``folds`` folds (1: one
    stratified split)."""
    return load_folds("correlated", folds=folds, seed=seed,
                      validation_fraction=validation_fraction, items=items, inputs=inputs,
                      classes=classes, noise=noise, condition=condition)
