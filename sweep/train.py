"""Online back-propagation of many networks at once.

``train_many`` trains K networks side by side, one per trial, each with its own learning rate,
momentum and seed (its own initial weights and its own item order). Training is online: every
network changes its weights after every single training item, as in the article. The K networks
take their step for item t together, in one pass of NumPy calls over a (parameters, K) block,
which is where the speed comes from. ``train`` is the same thing with K = 1. This module drives
the epochs (the checked problem, divergence, early stopping, the curves); an epoch itself, with
its item orders, is an engine's (:mod:`sweep.engines`): the NumPy reference or the compiled
kernel.

The K networks may train on different data sets of the same shape, such as the folds of a
cross-validation (``sweep.load_folds``): network k trains and is validated on
``datasets[dataset_index[k]]``, and gets the numbers it gets trained alone on that data set. The
data sets' training items sit in one table, one copy each, and each network's item order indexes
its own data set's rows there. Training parts of different lengths (folds of 142 and 143 items)
step together for the longest one's steps; a network past its own last item takes its extra
steps on its own first item, and gets back its weights and momentum state as they were at its
last item when the epoch ends, with its extra items' losses counted as 0.

The trainer is a pure function of (data, hyper-parameters, seeds): no globals, no printing, no
knowledge of any tuner. A caller that wants to stop networks early (a pruner) passes
``on_epoch``, which sees each epoch's figures and names the networks to stop.

The training loss of an epoch is the mean of the per-item losses met during it, each taken just
before that item's update: the usual online figure, and free, where a second pass over the
training set would cost a third of the epoch again. The validation loss and accuracy are taken
on the whole validation split after each epoch.

Divergence is data. A network diverges at the first epoch whose training loss is not finite or
exceeds ``divergence_loss`` (default ``DIVERGENCE_FACTOR`` times ln(classes), the loss of
guessing uniformly): tanh saturates, so an overshooting network's loss grows large but often
stays finite, and a network that far above chance level is not coming back. It stops there, its
curves hold that epoch's figures and NaN after, and the others train on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .engines import ENGINES
from .network import Layout, initial_block
from .rules import get_rule
from .seeding import generators as seeded_generators

DIVERGENCE_FACTOR = 5.0
# How a batch's numbers are computed: NumPy's reference, or sweep.kernel's compiled epochs.
ARITHMETICS = tuple(ENGINES)


@dataclass(frozen=True)
class EpochReport:
    """What ``on_epoch`` sees after each epoch for the networks still training.

    ``trials`` are their positions in the batch; the other arrays line up with it.
    """

    epoch: int
    trials: np.ndarray
    train_loss: np.ndarray
    val_loss: np.ndarray
    val_accuracy: np.ndarray


@dataclass(frozen=True)
class Run:
    """One network's training: its settings, its per-epoch curves and its final weights.

    Curves have one entry per epoch (index e is after epoch e + 1) and are NaN after the network
    stopped. ``diverged_epoch`` and ``stopped_epoch`` (stopped by ``on_epoch``) are 1-based or None.
    """

    learning_rate: float
    momentum: float
    seed: int
    rule: str
    train_loss: np.ndarray
    val_loss: np.ndarray
    val_accuracy: np.ndarray
    diverged_epoch: int | None
    stopped_epoch: int | None
    weights: dict[str, np.ndarray]

    @property
    def epochs_trained(self) -> int:
        return self.diverged_epoch or self.stopped_epoch or len(self.val_loss)


@dataclass(frozen=True)
class Batch:
    """K networks trained together. Row k of each (K, epochs) curve is network k's.

    ``diverged_epoch`` and ``stopped_epoch`` hold 0 where the network did not diverge or stop.
    ``final_parameters`` is (P, K): each network's weights when it finished, stopped or diverged.
    ``dataset_index`` (K,): which of the data sets given to ``train_many`` network k trained on.
    """

    learning_rates: np.ndarray
    momenta: np.ndarray
    seeds: np.ndarray
    rule: str
    layout: Layout
    train_loss: np.ndarray
    val_loss: np.ndarray
    val_accuracy: np.ndarray
    diverged_epoch: np.ndarray
    stopped_epoch: np.ndarray
    final_parameters: np.ndarray
    dataset_index: np.ndarray

    def __len__(self) -> int:
        return len(self.seeds)

    def run(self, k: int) -> Run:
        return Run(
            learning_rate=float(self.learning_rates[k]),
            momentum=float(self.momenta[k]),
            seed=int(self.seeds[k]),
            rule=self.rule,
            train_loss=self.train_loss[k],
            val_loss=self.val_loss[k],
            val_accuracy=self.val_accuracy[k],
            diverged_epoch=int(self.diverged_epoch[k]) or None,
            stopped_epoch=int(self.stopped_epoch[k]) or None,
            weights=self.layout.unflatten(self.final_parameters, k),
        )

    def runs(self) -> list[Run]:
        return [self.run(k) for k in range(len(self))]


def _per_trial(values, n_trials: int) -> np.ndarray:
    """K float64 values from a scalar or a length-K sequence."""
    return np.broadcast_to(np.asarray(values, dtype=np.float64), (n_trials,)).copy()


def _as_datasets(dataset) -> list:
    """One data set, or a sequence of them of one shape (same inputs and classes), as a list."""
    datasets = [dataset] if hasattr(dataset, "x_train") else list(dataset)
    if not datasets:
        raise ValueError("no data set to train on: give a Dataset or a sequence of them")
    shape = (datasets[0].x_train.shape[1], int(datasets[0].n_classes))
    for position, other in enumerate(datasets[1:], start=1):
        if (other.x_train.shape[1], int(other.n_classes)) != shape:
            raise ValueError(
                f"data set {position} has {other.x_train.shape[1]} inputs and {other.n_classes} "
                f"classes, data set 0 {shape[0]} and {shape[1]}: a batch's networks share a shape"
            )
    return datasets


def _checked_dataset_index(dataset_index, n_trials: int, n_datasets: int) -> np.ndarray:
    """(K,) int64 positions in the data sets; all 0 if None."""
    if dataset_index is None:
        return np.zeros(n_trials, dtype=np.int64)
    index = np.asarray(dataset_index)
    if (index.shape != (n_trials,) or index.dtype.kind not in "iu"
            or index.min() < 0 or index.max() >= n_datasets):
        raise ValueError(
            f"dataset_index must hold {n_trials} integers from 0 to {n_datasets - 1}, "
            f"one per network; got {np.array2string(index, threshold=8, max_line_width=200)}"
        )
    return index.astype(np.int64)


class _Ledger:
    """What ``train_many`` returns, filled in epoch by epoch: every network's curves, the epoch
    it diverged or was stopped, and its final weights. Both arithmetics close their epochs
    through it, so divergence and ``on_epoch`` mean the same in each."""

    def __init__(self, n_networks: int, epochs: int, n_parameters: int, divergence_loss: float,
                 on_epoch):
        self.epochs = epochs
        self.curves = {
            name: np.full((n_networks, epochs), np.nan) for name in ("train", "val", "acc")
        }
        self.diverged_epoch = np.zeros(n_networks, dtype=np.int64)
        self.stopped_epoch = np.zeros(n_networks, dtype=np.int64)
        self.final_parameters = np.empty((n_parameters, n_networks))
        self.divergence_loss = divergence_loss
        self.on_epoch = on_epoch

    def close_epoch(self, epoch, active, figures):
        """Record an epoch of the networks ``active`` (an engine's ``EpochFigures``); the
        positions in ``active`` of those that go on when some leave (none after the last
        epoch), else None."""
        train_loss, val_loss, val_accuracy = (
            figures.train_loss, figures.val_loss, figures.val_accuracy)
        for name, values in (("train", train_loss), ("val", val_loss), ("acc", val_accuracy)):
            self.curves[name][active, epoch - 1] = values
        diverged = ~(train_loss <= self.divergence_loss)  # NaN compares False: diverged too
        stop = diverged.copy()
        if self.on_epoch is not None and epoch < self.epochs:
            report = EpochReport(epoch, active.copy(), train_loss, val_loss, val_accuracy)
            requested = self.on_epoch(report)
            if requested is not None:
                requested = np.asarray(requested, dtype=bool) & ~diverged
                self.stopped_epoch[active[requested]] = epoch
                stop |= requested
        self.diverged_epoch[active[diverged]] = epoch
        if not stop.any() and epoch < self.epochs:
            return None
        leaving = stop if epoch < self.epochs else np.ones_like(stop)
        self.final_parameters[:, active[leaving]] = figures.weights64[:, leaving]
        return np.flatnonzero(~leaving)

    def batch(self, problem) -> Batch:
        return Batch(
            learning_rates=problem.learning_rates,
            momenta=problem.momenta,
            seeds=problem.seeds,
            rule=problem.rule,
            layout=problem.layout,
            train_loss=self.curves["train"],
            val_loss=self.curves["val"],
            val_accuracy=self.curves["acc"],
            diverged_epoch=self.diverged_epoch,
            stopped_epoch=self.stopped_epoch,
            final_parameters=self.final_parameters,
            dataset_index=problem.dataset_index,
        )


@dataclass(frozen=True)
class Problem:
    """What ``train_many`` trains, checked: K networks over one or more data sets of one shape.

    Every array has one entry per network, in the batch's order. ``network_items[k]`` is the
    number of training items of network k's data set, and ``network_first_item[k]`` where that
    data set's items start when the data sets' training items are laid end to end.
    """

    datasets: list
    dataset_index: np.ndarray
    layout: Layout
    learning_rates: np.ndarray
    momenta: np.ndarray
    seeds: np.ndarray
    rule: str
    dtype: type
    epochs: int
    network_items: np.ndarray
    network_first_item: np.ndarray

    @property
    def n_networks(self) -> int:
        return len(self.seeds)


def _problem(dataset, learning_rates, momenta, seeds, dataset_index, hidden, epochs, rule,
             dtype) -> Problem:
    """train_many's arguments checked (ValueError naming what is wrong) and laid out."""
    get_rule(rule)  # ValueError naming the valid rules for an unknown one
    dtype = np.dtype(dtype)
    if dtype not in (np.float64, np.float32):
        raise ValueError(f"dtype must be float64 or float32, got {dtype}")
    if hidden < 1 or epochs < 1:
        raise ValueError("hidden and epochs must be at least 1")
    datasets = _as_datasets(dataset)
    seeds = np.atleast_1d(np.asarray(seeds, dtype=np.int64))
    n_networks = len(seeds)
    if n_networks == 0:
        raise ValueError("no networks to train: give at least one seed")
    learning_rates = _per_trial(learning_rates, n_networks)
    momenta = _per_trial(momenta, n_networks)
    if np.any(~(learning_rates > 0)):
        raise ValueError("every learning rate must be > 0")
    if np.any((momenta < 0) | (momenta >= 1)):
        raise ValueError("every momentum must be in [0, 1)")
    dataset_index = _checked_dataset_index(dataset_index, n_networks, len(datasets))
    train_sizes = np.array([len(d.y_train) for d in datasets], dtype=np.int64)
    return Problem(
        datasets=datasets,
        dataset_index=dataset_index,
        layout=Layout(datasets[0].x_train.shape[1], hidden, int(datasets[0].n_classes)),
        learning_rates=learning_rates,
        momenta=momenta,
        seeds=seeds,
        rule=rule,
        dtype=dtype,
        epochs=epochs,
        network_items=train_sizes[dataset_index],
        network_first_item=(np.cumsum(train_sizes) - train_sizes)[dataset_index],
    )


def _checked_orders(orders, problem: Problem) -> np.ndarray:
    """Given item orders (K, epochs, n_items), checked against the problem."""
    n_items = int(problem.network_items[0])
    if np.any(problem.network_items != n_items):
        raise ValueError(
            "orders need every network's data set to have one number of training items; "
            f"these have {sorted(set(problem.network_items.tolist()))}"
        )
    orders = np.asarray(orders)
    expected = (problem.n_networks, problem.epochs, n_items)
    if orders.shape != expected:
        raise ValueError(f"orders has shape {orders.shape}; expected {expected}")
    if orders.dtype.kind not in "iu" or orders.min() < 0 or orders.max() >= n_items:
        raise ValueError(f"orders must hold integer item indices from 0 to {n_items - 1}")
    return orders.astype(np.int32)


def train_many(
    dataset,
    learning_rates,
    momenta,
    seeds,
    *,
    dataset_index=None,
    hidden: int = 7,
    epochs: int = 100,
    rule: str = "seed",
    init: str = "glorot",
    divergence_loss: float | None = None,
    on_epoch: Callable[[EpochReport], np.ndarray | None] | None = None,
    initial_weights: np.ndarray | None = None,
    orders: np.ndarray | None = None,
    dtype=np.float64,
    arithmetic: str = "numpy",
) -> Batch:
    """Train K networks by online back-propagation, all in one vectorised pass.

    dataset: a ``sweep.data.Dataset`` (standardised train and validation splits), or a sequence
        of them with the same inputs and classes, e.g. the folds of ``sweep.load_folds``.
    learning_rates, momenta, seeds: K values each (scalars broadcast). learning rate > 0;
        momentum in [0, 1); seed: an int in [0, 2**63), drawing the network's initial weights
        and then its item order for every epoch from ``numpy.random.default_rng(seed)``.
    dataset_index: (K,) ints, the position in ``dataset`` of the data set network k trains and is
        validated on; default all 0. Row k of the result is what ``train`` gives for
        ``dataset[dataset_index[k]]`` and network k's settings, bit for bit.
    hidden: hidden units (>= 1). epochs: passes over the training items (>= 1).
    rule: momentum rule, one of ``sweep.rules.rule_names()``: "seed" (the article's),
        "heavy-ball", "nesterov".
    init: "glorot" (default) or "small-uniform" (the article's +-0.01).
    divergence_loss: training loss above which a network counts as diverged; default
        ``DIVERGENCE_FACTOR * ln(classes)``.
    on_epoch: called after every epoch with an ``EpochReport`` of the networks still training;
        may return a boolean mask over ``report.trials`` naming networks to stop now.
    initial_weights: (P, K) block to start from instead of drawing from the seeds.
    orders: (K, epochs, n_train) item orders to use instead of drawing from the seeds, each
        indexing its network's own data set; the data sets used must then have one n_train.
    dtype: float64 (default) or float32 (faster, less exact).
    arithmetic: "numpy" (default), the NumPy reference, or "compiled", the same training in
        ``sweep.kernel``'s compiled epochs: several times faster, its numbers within rounding
        of the reference (its exp, log and tanh differ from NumPy's by an ulp or two) and bit
        for bit the same on every machine, whatever K. In a fresh install the first call for
        each rule compiles its loop (a few seconds, then cached on disk).
    """
    if arithmetic not in ENGINES:
        raise ValueError(
            f"unknown arithmetic {arithmetic!r}; expected one of {', '.join(ENGINES)}"
        )
    problem = _problem(dataset, learning_rates, momenta, seeds, dataset_index, hidden, epochs,
                       rule, dtype)
    # default_rng(seed) for each, made in one pass; it refuses seeds that are negative or not 1-D.
    generators = seeded_generators(problem.seeds)
    if initial_weights is None:
        parameters = initial_block(problem.layout, generators, init)
    else:
        parameters = np.asarray(initial_weights, dtype=np.float64).reshape(
            problem.layout.size, problem.n_networks)
    given_orders = None if orders is None else _checked_orders(orders, problem)
    if divergence_loss is None:
        divergence_loss = DIVERGENCE_FACTOR * np.log(problem.layout.n_outputs)
    ledger = _Ledger(problem.n_networks, epochs, problem.layout.size, divergence_loss, on_epoch)
    # The engine draws each epoch's item orders from the generators, unless they are given.
    engine = ENGINES[arithmetic](problem, parameters, generators)
    active = np.arange(problem.n_networks)
    # Overflow in a diverging network is expected and recorded, not warned about per item.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        for epoch in range(1, epochs + 1):
            epoch_orders = None if given_orders is None else given_orders[active, epoch - 1]
            figures = engine.epoch(epoch_orders)
            remaining = ledger.close_epoch(epoch, active, figures)
            if remaining is not None:
                active = active[remaining]
                if len(active) == 0:
                    break
                engine.keep(remaining)
    return ledger.batch(problem)


def train(
    dataset,
    learning_rate: float = 0.01,
    momentum: float = 0.5,
    seed: int = 0,
    *,
    initial_weights: dict[str, np.ndarray] | None = None,
    order: np.ndarray | None = None,
    **options,
) -> Run:
    """Train one network: ``train_many`` with K = 1 (same options, same numbers).

    initial_weights: named arrays (``ih_weights`` (I, H), ``h_biases`` (H,), ``ho_weights``
        (H, C), ``o_biases`` (C,)) to start from, e.g. a published example's.
    order: (epochs, n_train) item indices to visit, replacing the seeded shuffle.
    Other keyword options are ``train_many``'s.
    """
    flat = None
    if initial_weights is not None:
        hidden = options.get("hidden", 7)
        layout = Layout(dataset.x_train.shape[1], hidden, int(dataset.n_classes))
        flat = layout.flatten(initial_weights)
    orders = None if order is None else np.asarray(order)[None]
    batch = train_many(
        dataset, [learning_rate], [momentum], [seed],
        initial_weights=flat, orders=orders, **options,
    )
    return batch.run(0)
