"""What a momentum rule does to each weight's updates, recorded while one network trains.

An opt-in trainer for a few networks, written on the reference path: one network, one item at a
time, the gradient from :func:`sweep.network.loss_and_gradients` and the update from
:mod:`sweep.rules`' own rule objects. It draws the initial weights and the item orders from
``numpy.random.default_rng(seed)`` as :func:`sweep.train.train` does, so its curves are
``train``'s for the same settings and seed (within rounding; a test checks it). The fast path is
untouched: recording every update of every weight is what the vectorised trainer exists to avoid.

Each epoch, for every weight and bias w it adds up, over the epoch's items,

- ``|sgd_step|``: plain SGD's step, ``learning_rate * |dLoss/dw|``;
- ``|update|``: how far the rule actually moved w;
- ``|update - sgd_step|``: the momentum term (``momentum * prev_delta`` for the article's rule,
  ``momentum * velocity`` for heavy ball, ``momentum * new velocity`` for Nesterov),

and reports, across weights, the quantiles of

- the *momentum share* ``sum |momentum term| / sum |update|``;
- the *update size* ``mean |update|``;
- the *effective step* ``sum |update| / sum |sgd_step|``: how much longer a path the weight
  travelled than plain SGD's steps from the same gradients. Sums over the epoch, not single
  updates, because one item's gradient can be near zero while the momentum term is not, which
  makes a per-update ratio unbounded. Over a window the article's rule cannot exceed about
  1 + momentum (each update is one plain step plus a fraction of one other), and heavy ball and
  Nesterov about 1 / (1 - momentum) (a geometric sum of past steps); both are reached when
  the gradient keeps its sign.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .network import Layout, evaluate, initial_block, loss_and_gradients
from .rules import make_rule
from .train import DIVERGENCE_FACTOR

# The quantiles across weights each epoch records: median, quartiles and a wide band.
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
MEDIAN = QUANTILES.index(0.5)


def step_bound(rule: str, momentum: float) -> float:
    """The most a rule's window of updates can outrun plain SGD's: 1 + momentum for the
    article's one-step look-back, 1 / (1 - momentum) for heavy ball and Nesterov."""
    return 1.0 + momentum if rule == "seed" else 1.0 / (1.0 - momentum)


def apply_rule(rule, weights: np.ndarray, sgd_step: np.ndarray, momentum) -> tuple:
    """One update of ``weights`` in place by the rule object ``rule`` (from
    :func:`sweep.rules.make_rule`); returns (update, momentum term), each the shape of
    ``weights``.

    sgd_step must be a fresh array: the article's rule keeps it as its memory. The update is
    read from the rule's own buffers rather than as a difference of weights, which would lose
    the digits of a small step on a large weight.
    """
    returned = rule.step(weights, sgd_step, momentum)
    if rule.name == "seed":
        carried = returned.copy()  # the rule hands back momentum * prev_delta
        return sgd_step + carried, carried
    update = (rule.velocity if rule.name == "heavy-ball" else rule._update).copy()
    return update, update - sgd_step


class UpdateTally:
    """Per-weight sums of plain steps, updates and momentum terms over a window of updates."""

    def __init__(self, shape):
        self.plain = np.zeros(shape)
        self.moved = np.zeros(shape)
        self.carried = np.zeros(shape)
        self.count = 0

    def add(self, sgd_step: np.ndarray, update: np.ndarray, carried: np.ndarray) -> None:
        self.plain += np.abs(sgd_step)
        self.moved += np.abs(update)
        self.carried += np.abs(carried)
        self.count += 1

    def close(self) -> dict[str, np.ndarray]:
        """Each weight's momentum share, update size and effective step over the window (NaN
        for a weight that neither SGD nor the rule moved), and a fresh window."""
        with np.errstate(invalid="ignore", divide="ignore"):
            window = {
                "momentum_share": np.where(self.moved > 0, self.carried / self.moved, np.nan),
                "update_size": self.moved / max(self.count, 1),
                "effective_step": np.where(self.plain > 0, self.moved / self.plain, np.nan),
            }
        self.__init__(self.plain.shape)
        return window


def _quantiles(values: np.ndarray) -> np.ndarray:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.full(len(QUANTILES), np.nan)
    return np.quantile(finite, QUANTILES)


@dataclass(frozen=True)
class Diagnostics:
    """One network's training with its updates' distribution across weights, per epoch.

    Curves are (epochs,) as ``sweep.train.Run``'s, NaN after a divergence. ``momentum_share``,
    ``update_size`` and ``effective_step`` are (epochs, len(QUANTILES)): row e holds the
    QUANTILES across the network's weights and biases over epoch e + 1.
    """

    learning_rate: float
    momentum: float
    seed: int
    rule: str
    train_loss: np.ndarray
    val_loss: np.ndarray
    val_accuracy: np.ndarray
    diverged_epoch: int | None
    momentum_share: np.ndarray
    update_size: np.ndarray
    effective_step: np.ndarray

    @property
    def bound(self) -> float:
        return step_bound(self.rule, self.momentum)


def diagnose(
    dataset,
    learning_rate: float,
    momentum: float,
    seed: int,
    *,
    rule: str = "seed",
    hidden: int = 7,
    epochs: int = 100,
    init: str = "glorot",
) -> Diagnostics:
    """Train one network as ``sweep.train.train`` does (same arguments and meaning) and record
    its updates' distribution across weights every epoch.

    dataset: a ``sweep.data.Dataset``. learning_rate > 0; momentum in [0, 1); seed >= 0;
    rule: one of ``sweep.rules.RULES``. Costs tens of microseconds per item: meant for a few
    networks (the settings a study picked), not for a search.
    """
    if not learning_rate > 0 or not 0 <= momentum < 1:
        raise ValueError("learning rate must be > 0 and momentum in [0, 1)")
    layout = Layout(dataset.n_inputs, hidden, dataset.n_classes)
    rng = np.random.default_rng(seed)
    weights = initial_block(layout, [rng], init)
    n_items = len(dataset.y_train)
    # The same draws as the trainer's: the initial weights, then one shuffle per epoch.
    orders = rng.permuted(np.broadcast_to(np.arange(n_items), (epochs, n_items)), axis=1)
    state = make_rule(rule, weights.shape)
    momentum_block = np.full(weights.shape, float(momentum))
    x_columns = np.asarray(dataset.x_train).T
    divergence_loss = DIVERGENCE_FACTOR * np.log(layout.n_outputs)

    curves = {name: np.full(epochs, np.nan) for name in ("train", "val", "acc")}
    recorded = {name: np.full((epochs, len(QUANTILES)), np.nan)
                for name in ("momentum_share", "update_size", "effective_step")}
    tally = UpdateTally(weights.shape)
    diverged = None
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        for epoch in range(epochs):
            total = 0.0
            for item in orders[epoch]:
                label = dataset.y_train[item : item + 1]
                loss, gradient = loss_and_gradients(
                    weights, layout, x_columns[:, item : item + 1], label
                )
                total += float(loss[0])
                sgd_step = -learning_rate * gradient
                update, carried = apply_rule(state, weights, sgd_step, momentum_block)
                tally.add(sgd_step, update, carried)
            train_loss = total / n_items
            val_loss, val_accuracy = evaluate(weights, layout, dataset.x_val, dataset.y_val)
            curves["train"][epoch] = train_loss
            curves["val"][epoch], curves["acc"][epoch] = val_loss[0], val_accuracy[0]
            for name, values in tally.close().items():
                recorded[name][epoch] = _quantiles(values)
            if not train_loss <= divergence_loss:
                diverged = epoch + 1
                break
    return Diagnostics(
        float(learning_rate), float(momentum), int(seed), rule,
        curves["train"], curves["val"], curves["acc"], diverged, **recorded,
    )
