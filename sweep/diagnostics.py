"""What a momentum rule does to each weight's updates, recorded while a few networks train.

An opt-in trainer for a few networks, written on the reference path: one item at a time, the
gradient from :func:`sweep.network.loss_and_gradients` and the update from :mod:`sweep.rules`'
own rule objects. Each network draws its initial weights and item orders from its own
``numpy.random.default_rng(seed)`` as :func:`sweep.train.train` does, so its curves are
``train``'s for the same settings and seed (within rounding; a test checks it). The fast path is
untouched: recording every update of every weight is what the vectorised trainer exists to avoid.

:func:`diagnose_many` trains several networks (a study's folds and seeds) side by side as the
columns of one block, which costs about what one costs: at these sizes a step's time is NumPy's
per-call overhead. Every network gets the numbers it gets alone (:func:`diagnose`), bit for
bit: the arithmetic runs column by column, and a lone network trains beside a twin so that its
sums run in the same order as in a batch.

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

from .engines import draw_orders
from .network import Layout, evaluate, initial_block, lanes, loss_and_gradients
from .rules import get_rule, make_rule
from .train import DIVERGENCE_FACTOR

# The quantiles across weights each epoch records: median, quartiles and a wide band.
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
MEDIAN = QUANTILES.index(0.5)


def apply_rule(rule, weights: np.ndarray, sgd_step: np.ndarray, momentum) -> tuple:
    """One update of ``weights`` in place by the rule object ``rule`` (from
    :func:`sweep.rules.make_rule`); returns (update, momentum term), each the shape of
    ``weights``, as the rule's ``update_parts`` gives them from its memory before the step.

    sgd_step must be a fresh array: the article's rule keeps it as its memory. The update is
    computed from the rule's formula rather than as a difference of weights, which would lose
    the digits of a small step on a large weight.
    """
    update, carried = rule.update_parts(rule.memory, sgd_step, momentum)
    rule.step(weights, sgd_step, momentum)
    return update, carried


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
        return get_rule(self.rule).effective_factor(self.momentum)


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
    rule: one of ``sweep.rules.rule_names()``. Costs tens of microseconds per item: meant for a few
    networks (the settings a study picked), not for a search. :func:`diagnose_many` trains
    several at once for about the price of one.
    """
    return diagnose_many(
        [(dataset, seed)], learning_rate, momentum,
        rule=rule, hidden=hidden, epochs=epochs, init=init,
    )[0]


def diagnose_many(
    pairs,
    learning_rate: float,
    momentum: float,
    *,
    rule: str = "seed",
    hidden: int = 7,
    epochs: int = 100,
    init: str = "glorot",
) -> list[Diagnostics]:
    """:func:`diagnose` for several networks at one learning rate and momentum, trained side
    by side: one network per (dataset, seed) pair, the Diagnostics in the pairs' order, each
    the one ``diagnose(dataset, learning_rate, momentum, seed, ...)`` returns for its pair.

    The datasets may differ (the folds of one data set) but must share their inputs and
    classes. The networks take each item's step together, as the K columns of one block, so a
    step's cost, which is NumPy's per-call overhead at these sizes, is paid once for all.
    """
    if not learning_rate > 0 or not 0 <= momentum < 1:
        raise ValueError("learning rate must be > 0 and momentum in [0, 1)")
    pairs = list(pairs)
    if not pairs:
        return []
    shapes = {(dataset.n_inputs, dataset.n_classes) for dataset, _ in pairs}
    if len(shapes) > 1:
        raise ValueError(f"the data sets must share inputs and classes; got {sorted(shapes)}")
    # Networks with different numbers of training items train in separate groups, one per
    # number. A network past its last item would otherwise have to stand still while the others
    # step (its weights, its rule's memory and its tally held back column by column), which is
    # machinery for a case the shipped studies never meet: their folds are all the same size.
    groups: dict[int, list[int]] = {}
    for index, (dataset, _) in enumerate(pairs):
        groups.setdefault(len(dataset.y_train), []).append(index)
    found: list = [None] * len(pairs)
    for indices in groups.values():
        diagnosed = _diagnose_same_length(
            [pairs[i] for i in indices], float(learning_rate), float(momentum),
            rule=rule, hidden=hidden, epochs=epochs, init=init,
        )
        for index, diagnostics in zip(indices, diagnosed):
            found[index] = diagnostics
    return found


def _diagnose_same_length(pairs, learning_rate, momentum, *, rule, hidden, epochs, init):
    """``diagnose_many`` for pairs whose data sets have the same number of training items."""
    k = len(pairs)
    # A lone network trains beside a twin, as the trainer trains it (``sweep.network.lanes``):
    # NumPy sums over a single column in another order, so its numbers would differ in the last
    # digits from the same network's in a batch, and online training magnifies those digits
    # into visibly different curves within a few epochs on ill-conditioned data.
    columns = [pairs[j] for j in lanes(k)]
    datasets = [dataset for dataset, _ in columns]
    layout = Layout(datasets[0].n_inputs, hidden, datasets[0].n_classes)
    generators = [np.random.default_rng(seed) for _, seed in columns]
    # The same draws as the trainer's, from each network's own generator: the initial weights,
    # then one shuffle per epoch. initial_block's column j comes from generators[j] alone.
    weights = initial_block(layout, generators, init)
    n_items = len(datasets[0].y_train)
    # (epochs, n_items, columns): orders[e, t, j] is column j's t-th item in epoch e
    orders = draw_orders(generators, [n_items] * len(generators), epochs).transpose(0, 2, 1)
    x_train = np.stack([dataset.x_train for dataset in datasets], axis=2)  # (items, inputs, cols)
    y_train = np.stack([dataset.y_train for dataset in datasets], axis=1)  # (items, columns)
    column_index = np.arange(len(columns))
    state = make_rule(rule, weights.shape)
    momentum_block = np.full(weights.shape, momentum)
    divergence_loss = DIVERGENCE_FACTOR * np.log(layout.n_outputs)

    curves = {name: np.full((epochs, k), np.nan) for name in ("train", "val", "acc")}
    recorded = {name: np.full((k, epochs, len(QUANTILES)), np.nan)
                for name in ("momentum_share", "update_size", "effective_step")}
    tally = UpdateTally(weights.shape)
    diverged: list[int | None] = [None] * k
    training = np.ones(k, dtype=bool)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        for epoch in range(epochs):
            # Each step's inputs as one contiguous (inputs, columns) block: column j holds
            # column j's item, and y_epoch[t] the items' classes.
            x_epoch = np.ascontiguousarray(
                x_train[orders[epoch], :, column_index].transpose(0, 2, 1))
            y_epoch = y_train[orders[epoch], column_index]
            totals = np.zeros(len(columns))
            for x_step, y_step in zip(x_epoch, y_epoch):
                loss, gradient = loss_and_gradients(weights, layout, x_step, y_step)
                totals += loss
                sgd_step = -learning_rate * gradient
                update, carried = apply_rule(state, weights, sgd_step, momentum_block)
                tally.add(sgd_step, update, carried)
            train_loss = totals / n_items
            window = tally.close()
            # A diverged network stays in the block and steps on, its figures unread: every
            # operation works column by column, so its values never reach another network's,
            # and at a few columns an extra one costs nothing.
            for j in np.flatnonzero(training):
                dataset = datasets[j]
                val_loss, val_accuracy = evaluate(
                    weights[:, [j]], layout, dataset.x_val, dataset.y_val)
                curves["train"][epoch, j] = train_loss[j]
                curves["val"][epoch, j], curves["acc"][epoch, j] = val_loss[0], val_accuracy[0]
                for name, values in window.items():
                    recorded[name][j, epoch] = _quantiles(values[:, j])
                if not train_loss[j] <= divergence_loss:
                    diverged[j] = epoch + 1
                    training[j] = False
            if not training.any():
                break
    return [
        Diagnostics(
            learning_rate, momentum, int(seed), rule,
            curves["train"][:, j].copy(), curves["val"][:, j].copy(), curves["acc"][:, j].copy(),
            diverged[j], **{name: values[j] for name, values in recorded.items()},
        )
        for j, (_, seed) in enumerate(pairs)
    ]
