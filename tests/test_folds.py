"""Stratified k-fold data (``load_folds``) and training many networks over several data sets."""

import numpy as np
import pandas as pd
import pytest

from sweep.data import IRIS_PATH, DataError, load_dataset, load_folds, split_folds


@pytest.fixture(scope="module")
def raw_iris():
    """Iris as in the file: (150, 4) measurements and species indices in name order."""
    table = pd.read_csv(IRIS_PATH)
    species = sorted(table["species"].unique())
    y = table["species"].map({name: k for k, name in enumerate(species)}).to_numpy()
    return table.iloc[:, :4].to_numpy(dtype=float), y


def test_folds_partition_the_items_so_each_is_validated_exactly_once():
    y = np.repeat([0, 1, 2], [20, 17, 9])
    splits = split_folds(y, 4, seed=3)
    validated = np.concatenate([val_idx for _, val_idx in splits])
    assert np.array_equal(np.sort(validated), np.arange(len(y)))
    for train_idx, val_idx in splits:
        assert np.array_equal(np.sort(np.concatenate([train_idx, val_idx])), np.arange(len(y)))


def test_load_folds_validates_every_item_of_a_file_exactly_once(tmp_path):
    # An id column tells the items apart: standardising keeps its order, so an item's rank
    # among a fold's training and validation items together is its id.
    n = 37
    labels = ["a", "b", "c"]
    path = tmp_path / "ids.csv"
    rows = "".join(f"{i},{(i * 7) % 5},{labels[i % 3]}\n" for i in range(n))
    path.write_text("id,noise,label\n" + rows)
    validated = []
    for fold in load_folds(path, folds=4, target="label", seed=5):
        ids = np.argsort(np.argsort(np.concatenate([fold.x_train[:, 0], fold.x_val[:, 0]])))
        train_ids, val_ids = ids[: len(fold.y_train)], ids[len(fold.y_train) :]
        assert np.array_equal(fold.y_val, val_ids % 3)
        assert np.array_equal(fold.y_train, train_ids % 3)
        validated.extend(val_ids.tolist())
    assert sorted(validated) == list(range(n))


def test_folds_are_stratified_with_per_class_counts_within_one():
    y = np.repeat([0, 1, 2], [20, 17, 9])
    splits = split_folds(y, 4, seed=3)
    per_class = np.array([np.bincount(y[val_idx], minlength=3) for _, val_idx in splits])
    assert (per_class.max(axis=0) - per_class.min(axis=0) <= 1).all()
    sizes = [len(val_idx) for _, val_idx in splits]
    assert max(sizes) - min(sizes) <= 1


def test_synthetic_folds_of_uneven_size_are_stratified():
    folds = load_folds("synthetic", folds=5, items=103, inputs=3, classes=3, seed=4)
    per_class = np.array([np.bincount(fold.y_val, minlength=3) for fold in folds])
    assert (per_class.max(axis=0) - per_class.min(axis=0) <= 1).all()
    assert per_class.sum() == 103
    assert len({len(fold.y_train) for fold in folds}) == 2  # ragged: 82 and 83 items


def test_each_fold_is_standardised_with_its_own_training_part_only(raw_iris):
    x, y = raw_iris
    folds = load_folds("iris", folds=5, seed=1)
    for fold, (train_idx, val_idx) in zip(folds, split_folds(y, 5, seed=1)):
        mean, std = x[train_idx].mean(axis=0), x[train_idx].std(axis=0)
        np.testing.assert_allclose(fold.x_train, (x[train_idx] - mean) / std, atol=1e-12)
        np.testing.assert_allclose(fold.x_val, (x[val_idx] - mean) / std, atol=1e-12)
        assert np.array_equal(fold.y_train, y[train_idx]) and np.array_equal(fold.y_val, y[val_idx])
        np.testing.assert_allclose(fold.x_train.mean(axis=0), 0.0, atol=1e-12)
        np.testing.assert_allclose(fold.x_train.std(axis=0), 1.0, rtol=1e-12)
        # The statistics of all 150 items would give other validation numbers.
        everything = (x[val_idx] - x.mean(axis=0)) / x.std(axis=0)
        assert not np.allclose(fold.x_val, everything, atol=1e-6)


def test_folds_shuffle_items_within_each_part():
    y = np.repeat([0, 1, 2], 50)
    for train_idx, val_idx in split_folds(y, 5, seed=0):
        assert not np.all(np.diff(y[train_idx]) >= 0)
        assert not np.all(np.diff(y[val_idx]) >= 0)


def test_folds_are_reproducible_for_a_seed_and_differ_between_seeds():
    first = load_folds("iris", folds=3, seed=7)
    again = load_folds("iris", folds=3, seed=7)
    other = load_folds("iris", folds=3, seed=8)
    for a, b in zip(first, again):
        for field in ("x_train", "y_train", "x_val", "y_val"):
            assert getattr(a, field).tobytes() == getattr(b, field).tobytes()
    assert not all(np.array_equal(a.y_val, b.y_val) for a, b in zip(first, other))


@pytest.mark.parametrize(
    "source, options",
    [("iris", {"seed": 3}), ("synthetic", {"items": 90, "classes": 4, "seed": 2}),
     (str(IRIS_PATH), {"target": "species", "validation_fraction": 0.3})],
)
def test_one_fold_is_load_dataset_bit_for_bit(source, options):
    (single,) = load_folds(source, folds=1, **options)
    expected = load_dataset(source, **options)
    for field in ("x_train", "y_train", "x_val", "y_val"):
        assert getattr(single, field).tobytes() == getattr(expected, field).tobytes()
    assert (single.name, single.class_names) == (expected.name, expected.class_names)


@pytest.mark.parametrize(
    "folds, phrase",
    [(0, "folds must be an integer >= 1"), (-2, "folds must be"), (2.0, "folds must be"),
     (True, "folds must be"), (51, "51 folds need at least 51 items in every class")],
)
def test_bad_numbers_of_folds_are_refused_on_one_line(folds, phrase):
    with pytest.raises(DataError, match=phrase) as info:
        load_folds("iris", folds=folds)
    assert str(info.value).startswith("iris: ") and "\n" not in str(info.value)


def test_more_folds_than_the_smallest_class_is_refused(tmp_path):
    path = tmp_path / "small.csv"
    path.write_text("a,label\n" + "".join(f"{i},{'x' if i < 6 else 'y'}\n" for i in range(9)))
    assert len(load_folds(path, folds=3, target="label")) == 3
    with pytest.raises(DataError, match="class 'y' has 3"):
        load_folds(path, folds=4, target="label")


def test_load_folds_checks_its_arguments_as_load_dataset_does():
    with pytest.raises(DataError, match="a target column is required"):
        load_folds("data.csv", folds=2)
    with pytest.raises(DataError, match="unknown parameter"):
        load_folds("synthetic", folds=2, colour="red")
    with pytest.raises(DataError, match="validation_fraction"):
        load_folds("iris", folds=2, validation_fraction=1.5)
