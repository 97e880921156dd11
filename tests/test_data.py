"""Tests for sweep.data: loading, splitting, standardising, and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sweep import data
from sweep.data import (
    DataError,
    Dataset,
    load_csv,
    split_stratified,
)
from sweep.sources import load_dataset, load_iris, make_synthetic


def _arrays(ds: Dataset):
    return (ds.x_train, ds.y_train, ds.x_val, ds.y_val)


def _assert_same(a: Dataset, b: Dataset) -> None:
    for u, v in zip(_arrays(a), _arrays(b)):
        np.testing.assert_array_equal(u, v)


# --------------------------------------------------------------------------
# bundled Iris file


def test_iris_file_is_the_classic_data_set():
    df = pd.read_csv(data.IRIS_PATH)
    assert list(df.columns) == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
        "species",
    ]
    assert len(df) == 150
    assert df["species"].value_counts().to_dict() == {
        "setosa": 50,
        "versicolor": 50,
        "virginica": 50,
    }
    np.testing.assert_allclose(
        df.iloc[:, :4].mean().to_numpy(), [5.843333, 3.057333, 3.758, 1.199333], atol=1e-6
    )
    # First and last rows as printed in Fisher (1936) / R's `iris`.
    assert df.iloc[0].tolist() == [5.1, 3.5, 1.4, 0.2, "setosa"]
    assert df.iloc[-1].tolist() == [5.9, 3.0, 5.1, 1.8, "virginica"]


def test_load_iris_shapes_and_split():
    ds = load_iris()
    assert ds.name == "iris"
    assert ds.x_train.shape == (120, 4) and ds.x_val.shape == (30, 4)
    assert ds.x_train.dtype == np.float64 and ds.y_train.dtype == np.int64
    assert ds.n_inputs == 4 and ds.n_classes == 3
    assert ds.class_names == ("setosa", "versicolor", "virginica")
    assert ds.feature_names[0] == "sepal_length"
    assert np.bincount(ds.y_val).tolist() == [10, 10, 10]
    assert np.bincount(ds.y_train).tolist() == [40, 40, 40]


def test_standardisation_uses_train_statistics_only():
    ds = load_iris()
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1.0, atol=1e-12)
    # Validation data was scaled with the train statistics, so its own
    # mean/std are close to, but not exactly, 0/1.
    assert np.abs(ds.x_val.mean(axis=0)).max() > 1e-3
    assert np.abs(ds.x_val.std(axis=0) - 1.0).max() > 1e-3

    # Reconstruct by hand from the raw file.
    raw = pd.read_csv(data.IRIS_PATH).iloc[:, :4].to_numpy()
    y = pd.read_csv(data.IRIS_PATH)["species"].map(
        {"setosa": 0, "versicolor": 1, "virginica": 2}
    ).to_numpy()
    tr, va = split_stratified(y, 0.2, 0)
    mean, std = raw[tr].mean(axis=0), raw[tr].std(axis=0)
    np.testing.assert_allclose(ds.x_val, (raw[va] - mean) / std, rtol=1e-12)
    np.testing.assert_array_equal(ds.y_val, y[va])


def test_constant_feature_is_divided_by_one(tmp_path):
    rows = ["a,c,y"] + [f"{i},0.1,{'p' if i % 2 else 'q'}" for i in range(10)]
    path = tmp_path / "const.csv"
    path.write_text("\n".join(rows) + "\n")
    ds = load_csv(path, "y")
    assert np.all(np.isfinite(ds.x_train)) and np.all(np.isfinite(ds.x_val))
    np.testing.assert_allclose(ds.x_train[:, 1], 0.0, atol=1e-15)
    np.testing.assert_allclose(ds.x_val[:, 1], 0.0, atol=1e-15)


def test_same_seed_same_arrays_different_seed_different_split():
    _assert_same(load_iris(seed=3), load_iris(seed=3))
    a, b = load_iris(seed=0), load_iris(seed=1)
    assert not np.array_equal(a.x_val, b.x_val)


def test_dataset_arrays_are_read_only():
    ds = load_iris()
    with pytest.raises(ValueError):
        ds.x_train[0, 0] = 1.0


# --------------------------------------------------------------------------
# split_stratified


def test_split_is_a_stratified_partition():
    y = np.repeat([0, 1, 2], [7, 20, 3])
    tr, va = split_stratified(y, 0.25, seed=5)
    assert tr.dtype == np.int64 and va.dtype == np.int64
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(len(y)))
    # round(0.25 * n) per class: 7 -> 2, 20 -> 5, 3 -> 1 (0.75 rounds up)
    assert np.bincount(y[va], minlength=3).tolist() == [2, 5, 1]


def test_split_keeps_every_class_in_both_sets():
    y = np.repeat([0, 1], [2, 50])
    tr, va = split_stratified(y, 0.99, seed=0)
    assert set(y[tr]) == {0, 1} and set(y[va]) == {0, 1}
    tr, va = split_stratified(y, 0.001, seed=0)
    assert np.bincount(y[va]).tolist() == [1, 1]


def test_split_order_is_shuffled_not_class_sorted():
    y = np.repeat([0, 1, 2], 50)
    tr, _ = split_stratified(y, 0.2, seed=0)
    assert not np.all(np.diff(y[tr]) >= 0)


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, float("nan"), "0.2", True])
def test_split_rejects_bad_fraction(fraction):
    with pytest.raises(DataError, match="validation_fraction"):
        split_stratified(np.repeat([0, 1], 5), fraction, 0)


def test_split_rejects_singleton_class():
    with pytest.raises(DataError, match="only 1 item"):
        split_stratified(np.array([0, 0, 1]), 0.5, 0)


# --------------------------------------------------------------------------
# synthetic


def test_synthetic_shape_classes_and_determinism():
    ds = make_synthetic(items=200, inputs=5, classes=4, seed=7)
    assert ds.name == "synthetic"
    assert ds.n_inputs == 5 and ds.n_classes == 4
    assert len(ds.y_train) + len(ds.y_val) == 200
    assert set(ds.y_train.tolist()) == {0, 1, 2, 3}
    assert set(ds.y_val.tolist()) == {0, 1, 2, 3}
    _assert_same(ds, make_synthetic(items=200, inputs=5, classes=4, seed=7))
    other = make_synthetic(items=200, inputs=5, classes=4, seed=8)
    assert not np.array_equal(ds.x_train, other.x_train)


def test_synthetic_noise_flips_some_labels():
    _assert_same(make_synthetic(seed=2), make_synthetic(seed=2, noise=0.0))
    clean = make_synthetic(seed=2)
    noisy = make_synthetic(seed=2, noise=0.5)
    # Inputs are drawn before the noise, so the pooled inputs are the same
    # points; only labels (and hence the stratified split) can change.
    assert not all(np.array_equal(u, v) for u, v in zip(_arrays(clean), _arrays(noisy)))
    pooled = lambda ds: np.concatenate([ds.y_train, ds.y_val])  # noqa: E731
    assert not np.array_equal(np.bincount(pooled(clean)), np.bincount(pooled(noisy)))


@pytest.mark.parametrize(
    "params, phrase",
    [
        ({"classes": 1}, "classes"),
        ({"items": 5, "classes": 3}, "items"),
        ({"inputs": 0}, "inputs"),
        ({"hidden": 0}, "hidden"),
        ({"noise": -1.0}, "noise"),
        ({"seed": -1}, "seed"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
    ],
)
def test_synthetic_rejects_bad_parameters(params, phrase):
    with pytest.raises(DataError, match=phrase) as info:
        make_synthetic(**params)
    assert str(info.value).startswith("synthetic: ")


# --------------------------------------------------------------------------
# CSV: good files


def test_csv_with_string_labels(tmp_path):
    path = tmp_path / "flowers.csv"
    path.write_text(
        "w, h ,kind\n"
        + "".join(f"{i}.5,{i * 2},{k}\n" for i, k in enumerate("bbbaaacccb"))
        + "\n"  # a trailing blank line is fine
    )
    ds = load_csv(path, "kind")
    assert ds.name == "flowers"
    assert ds.feature_names == ("w", "h")
    assert ds.class_names == ("a", "b", "c")
    assert len(ds.y_train) + len(ds.y_val) == 10
    assert set(ds.y_val.tolist()) == {0, 1, 2}


def test_csv_with_int_labels_sorted_numerically(tmp_path):
    path = tmp_path / "ints.csv"
    labels = [10, 2, 2, 10, 1, 1, 2, 10]
    path.write_text("label,x\n" + "".join(f"{lab},{i}\n" for i, lab in enumerate(labels)))
    ds = load_csv(path, "label", name="mine")
    assert ds.name == "mine"
    assert ds.feature_names == ("x",)
    assert ds.class_names == ("1", "2", "10")


def test_load_dataset_dispatch(tmp_path):
    _assert_same(load_dataset("iris", seed=4), load_iris(seed=4))
    _assert_same(
        load_dataset("synthetic", seed=1, items=60, classes=2),
        make_synthetic(items=60, classes=2, seed=1),
    )
    path = tmp_path / "d.csv"
    path.write_text("a,y\n1,p\n2,p\n3,q\n4,q\n")
    assert load_dataset(str(path), target="y").class_names == ("p", "q")


@pytest.mark.parametrize(
    "args, kwargs, phrase",
    [
        (("some.csv",), {}, "target column is required"),
        (("synthetic",), {"colours": 3}, "unknown parameter"),
        (("iris",), {"items": 3}, "only apply to 'synthetic'"),
        (("iris",), {"target": "species"}, "only used for CSV"),
    ],
)
def test_load_dataset_rejects_bad_arguments(args, kwargs, phrase):
    with pytest.raises(DataError, match=phrase) as info:
        load_dataset(*args, **kwargs)
    assert str(info.value).startswith(args[0] + ": ")


# --------------------------------------------------------------------------
# CSV: bad files, target "y".  Each case is (id, file content or None for no
# file, phrase the one-line message must contain after the file name).

GOOD_ROWS = "1,2,p\n3,4,p\n5,6,q\n7,8,q\n"

HEAD = "a,b,y\n"
BAD_CSV_CASES = [
    ("missing file", None, "file not found"),
    ("empty file", "", "file is empty"),
    ("only blank lines", "\n\n\n", "file is empty"),
    ("header only", HEAD, "no data rows"),
    ("header and blank lines", HEAD + "\n\n", "no data rows"),
    (
        "missing target",
        "a,b,label\n" + GOOD_ROWS,
        "target column 'y' not found; columns are 'a', 'b', 'label'",
    ),
    ("no feature columns", "y\np\np\nq\nq\n", "no feature columns"),
    (
        "non-numeric",
        HEAD + "1,2,p\n3,4,p\n5,abc,q\n7,8,q\n",
        "column 'b' has a non-numeric value 'abc' on line 4",
    ),
    (
        "empty cell",
        HEAD + "1,2,p\n,4,p\n5,6,q\n7,8,q\n",
        "column 'a' has an empty value on line 3",
    ),
    (
        "NA token",
        HEAD + "1,2,p\n3,NA,p\n5,6,q\n7,8,q\n",
        "column 'b' has a missing value 'NA' on line 3",
    ),
    (
        "nan",
        HEAD + "1,nan,p\n3,4,p\n5,6,q\n7,8,q\n",
        "column 'b' has a missing value 'nan' on line 2",
    ),
    (
        "infinite",
        HEAD + "1,2,p\n3,4,p\n5,6,q\n-inf,8,q\n",
        "column 'a' has a non-finite value '-inf' on line 5",
    ),
    (
        "short row",
        HEAD + "1,2,p\n3\n5,6,q\n7,8,q\n",
        "column 'b' has an empty value on line 3",
    ),
    (
        "line count after blank line",
        HEAD + "1,2,p\n\n3,4,p\n5,x,q\n7,8,q\n",
        "non-numeric value 'x' on line 5",
    ),
    (
        "long row",
        HEAD + "1,2,p\n3,4,p,9\n5,6,q\n7,8,q\n",
        "line 3 has 4 fields but the header has 3",
    ),
    ("long first row", "a,y\n1,p,extra\n2,p\n3,q\n4,q\n", "line 2 has 3 fields"),
    ("unterminated quote", 'a,y\n"1,p\n2,p\n', "not a valid CSV file"),
    (
        "empty label",
        HEAD + "1,2,p\n3,4,\n5,6,q\n7,8,q\n",
        "column 'y' has an empty label on line 3",
    ),
    ("one class", HEAD + "1,2,p\n3,4,p\n5,6,p\n", "only one class ('p')"),
    ("fewer items than classes", "a,y\n1,p\n2,q\n", "has only 1 item"),
    ("singleton class", HEAD + "1,2,p\n3,4,p\n5,6,q\n", "class 'q' has only 1 item"),
    ("not utf-8", b"a,y\n1,\xe9t\xe9\n2,p\n", "not UTF-8"),
]


@pytest.mark.parametrize(
    "content, phrase",
    [pytest.param(content, phrase, id=case) for case, content, phrase in BAD_CSV_CASES],
)
def test_bad_csv_raises_one_line_data_error(tmp_path, content, phrase):
    path = tmp_path / "data.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(DataError) as info:
        load_csv(path, "y")
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert phrase in message


def test_csv_path_is_a_directory(tmp_path):
    with pytest.raises(DataError, match="is a directory") as info:
        load_csv(tmp_path, "y")
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize(
    "error, phrase",
    [
        (PermissionError(13, "Permission denied"), "permission denied"),
        (IsADirectoryError(21, "Is a directory"), "is a directory"),
        (pd.errors.ParserError("Error tokenizing data.\nC error: boom"), "not a valid CSV file"),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "not UTF-8"),
    ],
)
def test_pandas_read_errors_become_data_errors(tmp_path, monkeypatch, error, phrase):
    # Running as root makes chmod useless for a real permission test, so make
    # pandas itself raise each error.
    path = tmp_path / "data.csv"
    path.write_text("a,y\n1,p\n")

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(pd, "read_csv", fail)  # sweep.data imports pandas when it reads
    with pytest.raises(DataError, match=phrase) as info:
        load_csv(path, "y")
    assert str(info.value).startswith(f"{path}: ")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_csv_rejects_bad_validation_fraction(tmp_path, fraction):
    path = tmp_path / "data.csv"
    path.write_text("a,b,y\n" + GOOD_ROWS)
    with pytest.raises(DataError, match="validation_fraction") as info:
        load_csv(path, "y", validation_fraction=fraction)
    assert str(info.value).startswith(f"{path}: ")


# --------------------------------------------------------------------------
# load_dataset's own argument checks


@pytest.mark.parametrize("source", ["iris", "synthetic"])
@pytest.mark.parametrize("options, phrase", [({"validation_fraction": 1.5}, "validation_fraction"),
                                             ({"seed": -1}, "seed")])
def test_load_dataset_refusals_name_the_data_set_asked_for(source, options, phrase):
    with pytest.raises(DataError, match=phrase) as info:
        load_dataset(source, **options)
    assert str(info.value).startswith(f"{source}: ")


def test_correlated_inputs_stay_ill_conditioned_after_standardisation():
    from sweep.sources import make_correlated

    (data,) = make_correlated(items=600, inputs=8, classes=3, seed=0, condition=30.0)
    eigenvalues = np.linalg.eigvalsh(np.cov(data.x_train.T))
    # Each column has variance 1, yet the covariance spreads over two orders of magnitude.
    np.testing.assert_allclose(data.x_train.std(axis=0), 1.0)
    assert eigenvalues.max() / eigenvalues.min() > 100
    assert np.bincount(data.y_train).min() >= 150  # equal bins: 200 per class, 80 % train


def test_correlated_classes_follow_the_least_varying_direction():
    from sweep.sources import make_correlated

    (data,) = make_correlated(items=900, inputs=6, seed=1)
    eigenvalues, vectors = np.linalg.eigh(np.cov(data.x_train.T))
    along = data.x_train @ vectors  # columns from the least- to the most-varying direction
    spread = [
        np.ptp([along[data.y_train == k, j].mean() for k in range(3)]) / along[:, j].std()
        for j in (0, -1)
    ]
    assert spread[0] > 2.0 and spread[1] < 0.5


def test_correlated_folds_and_bad_arguments():
    from sweep.data import DataError
    from sweep.sources import make_correlated

    folds = make_correlated(items=300, folds=3, seed=2)
    assert len(folds) == 3
    assert sum(len(f.y_val) for f in folds) == 300
    with pytest.raises(DataError, match="condition"):
        make_correlated(condition=0.5)
