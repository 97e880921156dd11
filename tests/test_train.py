"""The vectorised trainer against an independent per-item reference, and its contracts."""

import sys
from types import SimpleNamespace

import numpy as np
import pytest

import sweep
from sweep.network import Layout, evaluate
from sweep.train import DIVERGENCE_FACTOR


@pytest.fixture(scope="module")
def iris():
    return sweep.load_dataset("iris")


@pytest.fixture(scope="module")
def tiny():
    return sweep.load_dataset("synthetic", items=40, inputs=3, classes=3, seed=5)


def reference_training(dataset, weights, order, learning_rate, momentum, rule):
    """One network trained item by item with plain scalar-shaped NumPy, written from the maths.

    Shares no code with the trainer: its own forward pass, back-propagation and rule.
    """
    w = {name: value.astype(float).copy() for name, value in weights.items()}
    memory = {name: np.zeros_like(value) for name, value in w.items()}
    val_losses, train_losses = [], []
    for epoch_order in order:
        item_losses = []
        for n in epoch_order:
            x, target = dataset.x_train[n], dataset.y_train[n]
            hidden = np.tanh(x @ w["ih_weights"] + w["h_biases"])
            logits = hidden @ w["ho_weights"] + w["o_biases"]
            probabilities = np.exp(logits - logits.max())
            probabilities /= probabilities.sum()
            item_losses.append(-np.log(probabilities[target]))
            output_error = probabilities.copy()
            output_error[target] -= 1.0
            hidden_error = (w["ho_weights"] @ output_error) * (1 - hidden**2)
            grads = {
                "ih_weights": np.outer(x, hidden_error),
                "h_biases": hidden_error,
                "ho_weights": np.outer(hidden, output_error),
                "o_biases": output_error,
            }
            for name, grad in grads.items():
                if rule == "seed":
                    delta = -learning_rate * grad
                    w[name] += delta
                    w[name] += momentum * memory[name]
                    memory[name] = delta
                elif rule == "heavy-ball":
                    memory[name] = momentum * memory[name] - learning_rate * grad
                    w[name] += memory[name]
                else:
                    memory[name] = momentum * memory[name] - learning_rate * grad
                    w[name] += momentum * memory[name] - learning_rate * grad
        hidden = np.tanh(dataset.x_val @ w["ih_weights"] + w["h_biases"])
        logits = hidden @ w["ho_weights"] + w["o_biases"]
        log_p = logits - logits.max(axis=1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
        val_losses.append(-log_p[np.arange(len(dataset.y_val)), dataset.y_val].mean())
        train_losses.append(np.mean(item_losses))
    return np.array(train_losses), np.array(val_losses), w


@pytest.mark.parametrize("rule", ["seed", "heavy-ball", "nesterov"])
def test_trainer_matches_an_independent_per_item_reference(tiny, rule):
    rng = np.random.default_rng(4)
    weights = {
        "ih_weights": rng.uniform(-0.5, 0.5, (3, 7)),
        "h_biases": rng.uniform(-0.1, 0.1, 7),
        "ho_weights": rng.uniform(-0.5, 0.5, (7, 3)),
        "o_biases": rng.uniform(-0.1, 0.1, 3),
    }
    order = np.stack([rng.permutation(len(tiny.y_train)) for _ in range(4)])
    run = sweep.train(tiny, 0.05, 0.7, initial_weights=weights, order=order, epochs=4, rule=rule)
    expected_train, expected_val, expected_weights = reference_training(
        tiny, weights, order, 0.05, 0.7, rule
    )
    np.testing.assert_allclose(run.train_loss, expected_train, rtol=1e-10)
    np.testing.assert_allclose(run.val_loss, expected_val, rtol=1e-10)
    for name, value in expected_weights.items():
        np.testing.assert_allclose(run.weights[name], value, rtol=1e-10, atol=1e-12)


def assert_bit_identical(run, alone):
    """Bit-identical, not just close: a stored trial must replay exactly, alone."""
    for curve in ("train_loss", "val_loss", "val_accuracy"):
        assert getattr(run, curve).tobytes() == getattr(alone, curve).tobytes(), curve
    for name, value in alone.weights.items():
        assert run.weights[name].tobytes() == value.tobytes(), name


def synthetic(inputs, classes, items=120):
    return sweep.load_dataset("synthetic", items=items, inputs=inputs, classes=classes, seed=2)


# Iris; 8 inputs and 4 classes; a single hidden unit and 10 classes, where NumPy would sum a
# lone network's softmax, hidden layer and losses in another order than a batch's.
@pytest.mark.parametrize(
    "shape", [("iris", 7), ((8, 4), 10), ((8, 4), 3), ((6, 10), 1), ((6, 10), 9)]
)
def test_row_k_of_train_many_equals_train(iris, shape):
    name, hidden = shape
    data = iris if name == "iris" else synthetic(*name)
    learning_rates = [0.003, 0.01, 0.05, 0.2]
    momenta = [0.0, 0.5, 0.9, 0.3]
    seeds = [10, 11, 12, 13]
    for rule in ("seed", "heavy-ball", "nesterov"):
        batch = sweep.train_many(
            data, learning_rates, momenta, seeds, epochs=4, rule=rule, hidden=hidden
        )
        for k in range(4):
            alone = sweep.train(
                data, learning_rates[k], momenta[k], seeds[k], epochs=4, rule=rule, hidden=hidden
            )
            assert_bit_identical(batch.run(k), alone)


def test_evaluate_gives_a_lone_network_the_validation_loss_the_trainer_recorded():
    data, layout = synthetic(6, 10, items=400), Layout(6, 1, 10)
    for seed in range(10):
        run = sweep.train(data, 0.05, 0.5, seed=seed, epochs=2, hidden=1)
        loss, accuracy = evaluate(layout.flatten(run.weights), layout, data.x_val, data.y_val)
        assert loss.tobytes() == run.val_loss[-1:].tobytes()
        assert accuracy.tobytes() == run.val_accuracy[-1:].tobytes()


def test_rows_stay_identical_across_gather_chunks_and_a_batch_shrinking_to_one(monkeypatch):
    # A small gather budget splits each epoch into chunks whose size depends on how many
    # networks are left, and a small order budget draws orders an epoch or two at a time;
    # networks stop until one trains on alone.
    monkeypatch.setattr(sys.modules["sweep.engines"], "GATHER_CHUNK_NUMBERS", 3000)
    monkeypatch.setattr(sys.modules["sweep.engines"], "ORDER_BUFFER_NUMBERS", 3000)
    data = synthetic(6, 10, items=200)
    learning_rates, momenta, seeds = [0.01, 0.03, 0.1, 0.3], [0.2, 0.9, 0.0, 0.5], [1, 2, 3, 4]

    def stop_all_but_the_last(report):
        return report.trials == report.trials.min() if len(report.trials) > 1 else None

    batch = sweep.train_many(
        data, learning_rates, momenta, seeds, epochs=6, hidden=5, on_epoch=stop_all_but_the_last
    )
    assert batch.stopped_epoch.tolist() == [1, 2, 3, 0]
    for k in range(4):
        epochs = batch.run(k).epochs_trained
        alone = sweep.train(data, learning_rates[k], momenta[k], seeds[k], epochs=epochs, hidden=5)
        run = batch.run(k)
        trained = {c: getattr(run, c)[:epochs] for c in ("train_loss", "val_loss", "val_accuracy")}
        assert_bit_identical(SimpleNamespace(**trained, weights=run.weights), alone)


def test_the_same_seed_gives_bit_identical_curves_and_another_seed_does_not(iris):
    first = sweep.train(iris, 0.02, 0.5, seed=3, epochs=5)
    again = sweep.train(iris, 0.02, 0.5, seed=3, epochs=5)
    other = sweep.train(iris, 0.02, 0.5, seed=4, epochs=5)
    assert first.val_loss.tobytes() == again.val_loss.tobytes()
    assert first.train_loss.tobytes() == again.train_loss.tobytes()
    assert first.val_loss.tobytes() != other.val_loss.tobytes()


def test_a_diverging_network_is_recorded_and_the_others_train_on(iris):
    with np.errstate(all="raise"):  # the trainer must not leak floating-point warnings either
        batch = sweep.train_many(iris, [50.0, 0.01], [0.9, 0.5], [1, 2], epochs=20)
    assert batch.diverged_epoch[0] >= 1
    epoch = batch.diverged_epoch[0]
    assert not np.isfinite(batch.train_loss[0, epoch - 1]) or (
        batch.train_loss[0, epoch - 1] > DIVERGENCE_FACTOR * np.log(3)
    )
    assert np.all(np.isnan(batch.val_loss[0, epoch:]))
    assert batch.diverged_epoch[1] == 0 and batch.run(1).diverged_epoch is None
    assert np.all(np.isfinite(batch.val_loss[1]))
    # The healthy network is unaffected by sharing a batch with a diverging one.
    alone = sweep.train(iris, 0.01, 0.5, seed=2, epochs=20)
    np.testing.assert_allclose(batch.val_loss[1], alone.val_loss, rtol=1e-12)


def test_iris_reaches_90_percent_validation_accuracy_within_100_epochs(iris):
    run = sweep.train(iris, learning_rate=0.01, momentum=0.5, seed=0, epochs=100)
    assert run.diverged_epoch is None
    assert np.nanmax(run.val_accuracy) >= 0.9


def test_on_epoch_can_stop_networks_and_the_rest_match_an_unstopped_run(iris):
    seen = []

    def stop_first_after_two(report):
        seen.append(report.trials.tolist())
        return (report.trials == 0) & (report.epoch == 2)

    batch = sweep.train_many(
        iris, 0.02, [0.1, 0.5, 0.9], [5, 6, 7], epochs=5, on_epoch=stop_first_after_two
    )
    assert seen[:3] == [[0, 1, 2], [0, 1, 2], [1, 2]]
    assert batch.stopped_epoch.tolist() == [2, 0, 0]
    assert np.all(np.isnan(batch.val_loss[0, 2:])) and np.all(np.isfinite(batch.val_loss[0, :2]))
    full = sweep.train_many(iris, 0.02, [0.1, 0.5, 0.9], [5, 6, 7], epochs=5)
    np.testing.assert_allclose(batch.val_loss[1:], full.val_loss[1:], rtol=1e-12)
    np.testing.assert_allclose(batch.val_loss[0, :2], full.val_loss[0, :2], rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"learning_rates": -0.1}, "learning rate must be > 0"),
        ({"momenta": 1.0}, r"momentum must be in \[0, 1\)"),
        ({"rule": "adam"}, "unknown momentum rule"),
        ({"epochs": 0}, "at least 1"),
        ({"seeds": []}, "at least one seed"),
        ({"seeds": [[1], [2]]}, "1-D sequence"),
        ({"seeds": [4, -1]}, "non-negative"),
        ({"dtype": np.float16}, "dtype must be float64 or float32, got float16"),
    ],
)
def test_bad_settings_are_refused(tiny, kwargs, message):
    arguments = {"learning_rates": 0.1, "momenta": 0.5, "seeds": [1], "epochs": 2} | kwargs
    with pytest.raises(ValueError, match=message):
        sweep.train_many(tiny, **arguments)


@pytest.mark.parametrize("bad_item", [-1, "n_items", "a float"])
def test_an_item_order_out_of_range_is_refused(tiny, bad_item):
    n_items = len(tiny.y_train)
    order = np.tile(np.arange(n_items), (2, 1))
    if bad_item == "a float":
        order = order + 0.5  # used to be truncated to the item below
    else:
        order[1, 3] = n_items if bad_item == "n_items" else bad_item
    with pytest.raises(ValueError, match=f"integer item indices from 0 to {n_items - 1}"):
        sweep.train(tiny, 0.1, 0.5, seed=1, epochs=2, order=order)


def test_float32_option_stays_close_to_float64(iris):
    wide = sweep.train(iris, 0.01, 0.5, seed=1, epochs=5)
    narrow = sweep.train(iris, 0.01, 0.5, seed=1, epochs=5, dtype=np.float32)
    np.testing.assert_allclose(narrow.val_loss, wide.val_loss, rtol=1e-3)
