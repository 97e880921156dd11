"""Back-propagated gradients against central finite differences, and the parameter layout."""

import numpy as np
import pytest

from sweep.network import Layout, evaluate, initial_parameters, loss_and_gradients


@pytest.fixture
def layout():
    return Layout(n_inputs=4, n_hidden=5, n_outputs=3)


def test_layout_views_cover_the_flat_block_in_the_articles_order(layout):
    flat = np.arange(layout.size * 2, dtype=float).reshape(layout.size, 2)
    views = layout.views(flat)
    assert list(views) == ["ih_weights", "h_biases", "ho_weights", "o_biases"]
    assert layout.size == 4 * 5 + 5 + 5 * 3 + 3
    views["o_biases"][...] = -1.0
    assert np.all(flat[-3:] == -1.0)
    named = layout.unflatten(flat, 1)
    np.testing.assert_array_equal(layout.flatten(named)[:, 0], flat[:, 1])


def test_backpropagated_gradients_match_central_differences(layout):
    rng = np.random.default_rng(11)
    trials = 3
    flat = rng.normal(scale=0.8, size=(layout.size, trials))
    x = rng.normal(size=(layout.n_inputs, trials))
    y = rng.integers(0, layout.n_outputs, size=trials)
    _, gradient = loss_and_gradients(flat, layout, x, y)
    eps = 1e-6
    numeric = np.empty_like(flat)
    for p in range(layout.size):
        up, down = flat.copy(), flat.copy()
        up[p] += eps
        down[p] -= eps
        numeric[p] = (
            loss_and_gradients(up, layout, x, y)[0] - loss_and_gradients(down, layout, x, y)[0]
        ) / (2 * eps)
    relative = np.abs(gradient - numeric) / np.maximum(np.abs(gradient) + np.abs(numeric), 1e-8)
    assert relative.max() < 1e-6


def test_evaluate_agrees_with_the_per_item_loss(layout):
    rng = np.random.default_rng(2)
    flat = rng.normal(size=(layout.size, 2))
    x = rng.normal(size=(6, layout.n_inputs))
    y = rng.integers(0, 3, size=6)
    loss, accuracy = evaluate(flat, layout, x, y)
    per_item = [
        loss_and_gradients(flat, layout, np.repeat(x[n][:, None], 2, axis=1), np.full(2, y[n]))[0]
        for n in range(6)
    ]
    np.testing.assert_allclose(loss, np.mean(per_item, axis=0), rtol=1e-12)
    assert np.all((accuracy >= 0) & (accuracy <= 1))


def _argmax_accuracy(flat, layout, x, y):
    """Accuracy the plain way: argmax of each network's logits, item by item."""
    p = layout.views(flat)
    accuracy = []
    for k in range(flat.shape[1]):
        hidden = np.tanh(x @ p["ih_weights"][..., k] + p["h_biases"][..., k])
        logits = hidden @ p["ho_weights"][..., k] + p["o_biases"][..., k]
        accuracy.append(np.mean(logits.argmax(axis=1) == y))
    return np.array(accuracy)


@pytest.mark.parametrize("odd_network", ["none", "nan", "tied", "nan and tied"])
def test_evaluate_accuracy_is_argmax_accuracy_with_ties_and_nan(layout, odd_network):
    rng = np.random.default_rng(4)
    flat = rng.normal(size=(layout.size, 5))
    if "nan" in odd_network:  # argmax takes the first NaN class
        flat[:, 2] = np.nan
    if "tied" in odd_network:  # logits (1, 1, 0): argmax takes class 0
        tied = 3 if "nan" in odd_network else 2
        flat[:, tied] = 0.0
        layout.views(flat)["o_biases"][:2, tied] = 1.0
    x = rng.normal(size=(40, layout.n_inputs))
    y = rng.integers(0, 3, size=40)
    _, accuracy = evaluate(flat, layout, x, y)
    np.testing.assert_array_equal(accuracy, _argmax_accuracy(flat, layout, x, y))
    if odd_network != "none":
        assert accuracy[2] == np.mean(y == 0)


@pytest.mark.parametrize("bad_class", [-1, 3, 0.5])
def test_evaluate_refuses_classes_the_network_does_not_have(layout, bad_class):
    rng = np.random.default_rng(5)
    y = np.array([0, 1, 2, bad_class])
    with pytest.raises(ValueError, match="classes must be integers from 0 to 2"):
        evaluate(
            rng.normal(size=(layout.size, 2)), layout, rng.normal(size=(4, layout.n_inputs)), y
        )


def test_glorot_and_small_uniform_initialisation(layout):
    glorot = initial_parameters(layout, np.random.default_rng(0), "glorot")
    views = layout.views(glorot[:, None])
    assert np.all(views["h_biases"] == 0) and np.all(views["o_biases"] == 0)
    assert np.abs(views["ih_weights"]).max() <= np.sqrt(6 / (4 + 5))
    small = initial_parameters(layout, np.random.default_rng(0), "small-uniform")
    assert np.abs(small).max() <= 0.01 and np.abs(small).min() > 0
    with pytest.raises(ValueError, match="unknown initialisation"):
        initial_parameters(layout, np.random.default_rng(0), "zeros")
