"""Stratified k-fold data (``load_folds``) and training many networks over several data sets."""

import numpy as np
import pandas as pd
import pytest

import sweep
import sweep.network
from sweep.data import IRIS_PATH, DataError, split_folds
from sweep.sources import load_dataset, load_folds


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


# --------------------------------------------------------------------------
# train_many over several data sets


RULES = ["seed", "heavy-ball", "nesterov"]


@pytest.fixture(scope="module")
def folds():
    """Five folds of 103 items: training parts of 82 and 83 items."""
    return load_folds("synthetic", folds=5, items=103, inputs=3, classes=3, seed=4)


def assert_row_is_the_network_alone(batch, k, alone, epochs_trained=None):
    """Row k of the batch equals the lone network's run, bit for bit, curves and weights."""
    run = batch.run(k)
    stop = epochs_trained or len(alone.train_loss)
    for curve in ("train_loss", "val_loss", "val_accuracy"):
        row, expected = getattr(run, curve), getattr(alone, curve)
        assert np.array_equal(row[:stop], expected[:stop], equal_nan=True), curve
        assert np.isnan(row[stop:]).all(), curve
    for name, value in alone.weights.items():
        assert np.array_equal(run.weights[name], value), name


def networks(n, seed=0):
    rng = np.random.default_rng(seed)
    return 10 ** rng.uniform(-2.5, -0.5, n), rng.uniform(0.0, 0.9, n), np.arange(100, 100 + n)


def test_the_folds_of_the_fixture_have_ragged_training_parts(folds):
    assert sorted({len(fold.y_train) for fold in folds}) == [82, 83]


@pytest.mark.parametrize("rule", RULES)
def test_each_row_equals_its_network_trained_alone_on_its_fold(folds, rule):
    dataset_index = [0, 1, 2, 3, 4, 4, 2, 0, 1]
    learning_rates, momenta, seeds = networks(len(dataset_index))
    batch = sweep.train_many(folds, learning_rates, momenta, seeds, dataset_index=dataset_index,
                             epochs=3, hidden=5, rule=rule)
    assert np.array_equal(batch.dataset_index, dataset_index)
    for k, d in enumerate(dataset_index):
        alone = sweep.train(folds[d], learning_rates[k], momenta[k], seeds[k],
                            epochs=3, hidden=5, rule=rule)
        assert_row_is_the_network_alone(batch, k, alone)


@pytest.mark.parametrize("rule", RULES)
def test_rows_stopped_by_on_epoch_equal_their_networks_trained_alone(folds, rule):
    long_folds = [d for d, fold in enumerate(folds) if len(fold.y_train) == 83]
    short_folds = [d for d, fold in enumerate(folds) if len(fold.y_train) == 82]
    # Every network on a long fold stops after epoch 1, so the rest run without a ragged tail;
    # one short-fold network stops after epoch 2.
    dataset_index = [long_folds[0], short_folds[0], long_folds[-1], short_folds[-1], short_folds[0]]
    stop_after = {0: 1, 2: 1, 4: 2}
    learning_rates, momenta, seeds = networks(len(dataset_index), seed=1)

    def stop_some(report):
        return np.array([stop_after.get(int(k)) == report.epoch for k in report.trials])

    batch = sweep.train_many(folds, learning_rates, momenta, seeds, dataset_index=dataset_index,
                             epochs=4, hidden=4, rule=rule, on_epoch=stop_some)
    assert batch.stopped_epoch.tolist() == [1, 0, 1, 0, 2]
    for k, d in enumerate(dataset_index):
        epochs = stop_after.get(k, 4)
        alone = sweep.train(folds[d], learning_rates[k], momenta[k], seeds[k],
                            epochs=epochs, hidden=4, rule=rule)
        assert_row_is_the_network_alone(batch, k, alone, epochs_trained=epochs)


@pytest.mark.parametrize("rule", RULES)
def test_a_diverging_network_leaves_the_others_rows_as_they_are_alone(folds, rule):
    dataset_index = [1, 0, 3, 2]
    learning_rates, momenta, seeds = [0.05, 5.0, 0.01, 0.2], [0.5, 0.9, 0.3, 0.0], [7, 8, 9, 10]
    batch = sweep.train_many(folds, learning_rates, momenta, seeds, dataset_index=dataset_index,
                             epochs=4, hidden=6, rule=rule)
    assert batch.diverged_epoch[1] > 0 and (np.delete(batch.diverged_epoch, 1) == 0).all()
    for k, d in enumerate(dataset_index):
        alone = sweep.train(folds[d], learning_rates[k], momenta[k], seeds[k],
                            epochs=4, hidden=6, rule=rule)
        assert_row_is_the_network_alone(batch, k, alone, epochs_trained=batch.run(k).epochs_trained)


def test_one_network_on_one_fold_of_several_equals_it_alone(folds):
    batch = sweep.train_many(folds, 0.05, 0.6, [3], dataset_index=[2], epochs=3, rule="nesterov")
    alone = sweep.train(folds[2], 0.05, 0.6, 3, epochs=3, rule="nesterov")
    assert_row_is_the_network_alone(batch, 0, alone)


def test_float32_and_given_initial_weights_rows_equal_their_networks_alone(folds):
    dataset_index = [4, 0, 1]
    learning_rates, momenta, seeds = networks(3, seed=2)
    layout = sweep.network.Layout(3, 7, 3)
    initial = np.random.default_rng(9).uniform(-0.3, 0.3, (layout.size, 3))
    batch = sweep.train_many(folds, learning_rates, momenta, seeds, dataset_index=dataset_index,
                             epochs=2, dtype=np.float32, initial_weights=initial)
    for k, d in enumerate(dataset_index):
        alone = sweep.train(folds[d], learning_rates[k], momenta[k], seeds[k], epochs=2,
                            dtype=np.float32, initial_weights=layout.unflatten(initial, k))
        assert_row_is_the_network_alone(batch, k, alone)


@pytest.mark.parametrize("dataset_index", [[0, 5], [-1, 0], [0], [0, 1, 2], [0.0, 1.0], [[0, 1]]])
def test_a_wrong_dataset_index_is_refused(folds, dataset_index):
    with pytest.raises(ValueError, match="dataset_index must hold 2 integers from 0 to 4"):
        sweep.train_many(folds, 0.01, 0.5, [1, 2], dataset_index=dataset_index, epochs=1)


def test_data_sets_of_different_shapes_are_refused(folds):
    other = load_dataset("synthetic", items=60, inputs=4, classes=3, seed=1)
    with pytest.raises(ValueError, match="share a shape"):
        sweep.train_many([folds[0], other], 0.01, 0.5, [1, 2], dataset_index=[0, 1], epochs=1)
    with pytest.raises(ValueError, match="no data set"):
        sweep.train_many([], 0.01, 0.5, [1], epochs=1)


def test_given_orders_over_ragged_training_parts_are_refused(folds):
    orders = np.zeros((2, 1, 82), dtype=np.int64)
    long_fold = next(d for d, fold in enumerate(folds) if len(fold.y_train) == 83)
    short_fold = next(d for d, fold in enumerate(folds) if len(fold.y_train) == 82)
    with pytest.raises(ValueError, match="one number of training items"):
        sweep.train_many(folds, 0.01, 0.5, [1, 2], dataset_index=[short_fold, long_fold],
                         epochs=1, orders=orders)


def test_given_orders_index_each_networks_own_fold(folds):
    short_folds = [d for d, fold in enumerate(folds) if len(fold.y_train) == 82]
    rng = np.random.default_rng(1)
    orders = np.stack([[rng.permutation(82) for epoch in range(2)] for network in range(2)])
    batch = sweep.train_many(folds, [0.02, 0.1], [0.5, 0.8], [1, 2], dataset_index=short_folds[:2],
                             epochs=2, orders=orders)
    for k in range(2):
        alone = sweep.train(folds[short_folds[k]], [0.02, 0.1][k], [0.5, 0.8][k], [1, 2][k],
                            epochs=2, order=orders[k])
        assert_row_is_the_network_alone(batch, k, alone)
