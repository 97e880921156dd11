"""Online back-propagation of many networks at once.

``train_many`` trains K networks side by side, one per trial, each with its own learning rate,
momentum and seed (its own initial weights and its own item order). Training is online: every
network changes its weights after every single training item, as in the article. The K networks
take their step for item t together, in one pass of NumPy calls over a (parameters, K) block,
which is where the speed comes from. ``train`` is the same thing with K = 1.

The K networks may train on different data sets of the same shape, such as the folds of a
cross-validation (``sweep.data.load_folds``): network k trains and is validated on
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

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .network import Evaluation, Layout, einsum, initial_block
from .network import lanes as _lanes
from .rules import RULES, keep_trials, make_rule
from .seeding import generators as seeded_generators

DIVERGENCE_FACTOR = 5.0
# How a batch's numbers are computed: NumPy's reference, or sweep.kernel's compiled epochs.
ARITHMETICS = ("numpy", "compiled")


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


class _Networks:
    """The training state of the networks still in the batch, with preallocated buffers.

    Every array has the trials on its last axis. Inputs and hidden activations carry a constant
    1 as an extra last row, so each layer's weights and biases act in one product (see
    ``Layout.augmented_views``): fewer NumPy calls per item is what makes small batches fast.
    """

    def __init__(self, layout, parameters, learning_rates, momenta, rule_name, dtype):
        self.layout = layout
        self.weights = np.ascontiguousarray(parameters, dtype=dtype)
        self.negative_learning_rate = -np.asarray(learning_rates, dtype=dtype)
        self.momentum = np.repeat(np.asarray(momenta, dtype=dtype)[None, :], layout.size, axis=0)
        self.rule = make_rule(rule_name, self.weights.shape, dtype)
        self._allocate()

    def _allocate(self):
        layout, k = self.layout, self.weights.shape[1]
        dtype = self.weights.dtype
        self.sgd_step = np.zeros_like(self.weights)
        self._step_views = {}
        self.w_ih, self.w_ho = layout.augmented_views(self.weights)
        self.w_ho_weights = self.w_ho[: layout.n_hidden]
        # The learning rate repeated down each output column: a same-shape product skips
        # NumPy's broadcasting set-up, about 2 us a call at K = 256.
        self.output_scale = np.repeat(
            self.negative_learning_rate[None, :], layout.n_outputs, axis=0
        )
        self.hidden_with_one = np.ones((layout.n_hidden + 1, k), dtype)
        self.hidden = self.hidden_with_one[: layout.n_hidden]
        self.tanh_slope = np.empty((layout.n_hidden, k), dtype)
        # An operand for 1 - tanh^2 and an output for the softmax's reductions, made once: a
        # Python float converted on every call, and a fresh (K,) array on every reduction,
        # cost 1-1.5 us a step together (2-4 % at K = 64 to 256).
        self.ones = np.ones((layout.n_hidden, k), dtype)
        self.per_network = np.empty(k, dtype)

    def keep(self, trials: np.ndarray) -> None:
        """Keep only the networks at positions ``trials`` of the current block."""
        self.weights = np.ascontiguousarray(self.weights[:, trials])
        self.negative_learning_rate = self.negative_learning_rate[trials]
        self.momentum = np.ascontiguousarray(self.momentum[:, trials])
        keep_trials(self.rule, trials)
        self._allocate()

    def snapshot(self, lanes: np.ndarray):
        """Copies of the weights and momentum state of columns ``lanes``, for ``restore``."""
        state = {name: getattr(self.rule, name)[:, lanes].copy() for name in self.rule.state}
        return lanes, self.weights[:, lanes].copy(), state

    def restore(self, snapshot) -> None:
        """Put back the columns a ``snapshot`` copied, in the arrays the networks use now (a rule
        may have swapped its buffers since)."""
        lanes, weights, state = snapshot
        self.weights[:, lanes] = weights
        for name, values in state.items():
            getattr(self.rule, name)[:, lanes] = values

    def _views_of(self, buffer: np.ndarray):
        """A step buffer and its parts: the input and hidden weights' steps, and the hidden and
        output biases' steps, which are the back-propagated errors themselves (a bias's input is
        1), so the errors are written there and no product makes them again."""
        views = self._step_views.get(id(buffer))
        if views is None:
            step_ih, step_ho = self.layout.augmented_views(buffer)
            n_inputs, n_hidden = self.layout.n_inputs, self.layout.n_hidden
            views = (
                buffer, step_ih[:n_inputs], step_ho[:n_hidden], step_ih[n_inputs], step_ho[n_hidden]
            )
            self._step_views[id(buffer)] = views
        return views

    def train_on(self, steps) -> None:
        """One online update of every network for each of ``steps`` in turn.

        steps: (x, x_inputs, one_hot, probability) per step. x: (I+1, K) items with a 1
        appended, x_inputs its first I rows; one_hot: (C, K) their classes; each network's
        softmax output for its item, before the update, is written into probability (C, K).
        Back-propagation of softmax + cross-entropy through a tanh layer writes
        -learning_rate * dLoss/dw straight into the step buffer (the learning rate scales the
        small output error, not the gradient block); then the momentum rule. The loop runs
        here, over names bound once: 1 us a step less than a method call that looks them up
        every step.
        """
        hidden, hidden_with_one = self.hidden, self.hidden_with_one
        slope = self.tanh_slope
        per_network, ones, output_scale = self.per_network, self.ones, self.output_scale
        w_ih, w_ho, w_ho_weights = self.w_ih, self.w_ho, self.w_ho_weights
        weights, momentum, rule_step = self.weights, self.momentum, self.rule.step
        tanh, exp, multiply, subtract = np.tanh, np.exp, np.multiply, np.subtract
        maximum, add = np.maximum.reduce, np.add.reduce
        views_of = self._views_of
        sgd_step = self.sgd_step
        for x, x_inputs, one_hot, probability in steps:
            buffer, step_ih, step_ho, hidden_error, error = views_of(sgd_step)
            # einsum sums the products without writing them out first: 2-2.5x faster than
            # multiply-then-reduce at K >= 256. With two or more lanes (see network.lanes) its
            # sums run in index order, so a network's numbers do not depend on its batch
            # (tests/test_train.py checks a batch's row against the network trained alone).
            einsum("ik,ihk->hk", x, w_ih, out=hidden)
            tanh(hidden, out=hidden)
            einsum("hk,hok->ok", hidden_with_one, w_ho, out=probability)
            probability -= maximum(probability, axis=0, out=per_network)
            exp(probability, out=probability)
            probability /= add(probability, axis=0, out=per_network)
            subtract(probability, one_hot, out=error)  # dLoss/d(logits) = softmax - target
            error *= output_scale
            einsum("hk,ok->hok", hidden, error, out=step_ho)
            einsum("hok,ok->hk", w_ho_weights, error, out=hidden_error)
            multiply(hidden, hidden, out=slope)
            subtract(ones, slope, out=slope)  # tanh' = 1 - tanh^2
            hidden_error *= slope
            einsum("ik,hk->ihk", x_inputs, hidden_error, out=step_ih)
            sgd_step = rule_step(weights, buffer, momentum)
        self.sgd_step = sgd_step


# Items gathered ahead of the step loop are capped at about this many numbers per chunk.
GATHER_CHUNK_NUMBERS = 1 << 21
# Epochs of item order each network's generator shuffles in one call.
ORDER_EPOCHS_PER_DRAW = 10


def _gather(columns: np.ndarray, items: np.ndarray, out: np.ndarray) -> None:
    """Fill ``out`` (rows, steps, K): [r, t, k] is ``columns[r, items[t, k]]``,
    ``columns`` (rows, n_items).

    A ``take`` per row into its contiguous (steps, K) block: twice as fast as one fancy index
    over both axes. ``mode="clip"`` (the items are in range: ``train_many`` checks given orders)
    lets ``take`` write straight into ``out``: in its default mode it writes to a temporary
    and copies back, which cost 40 % more.
    """
    for row in range(columns.shape[0]):
        np.take(columns[row], items, out=out[row], mode="clip")


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


class _Steps:
    """An epoch's steps for the networks in the lanes, whose training parts may differ in
    length: one segment of steps up to each distinct length, shortest first.

    ``segments`` holds (start, end, finished, ending) per segment, whose steps are start to
    end - 1. ``finished``: the lanes already past their last item, whose losses count 0 (None if
    none). ``ending``: the lanes whose last item is step end - 1 while others go on, whose state
    is kept then and put back when the epoch ends (None if none).
    """

    def __init__(self, lane_items: np.ndarray):
        self.longest = int(lane_items.max())
        self.segments = []
        start = 0
        for end in np.unique(lane_items).tolist():
            finished = np.flatnonzero(lane_items <= start)
            ending = np.flatnonzero(lane_items == end)
            self.segments.append((
                start,
                end,
                finished if len(finished) else None,
                ending if end < self.longest else None,
            ))
            start = end


class _Validation:
    """Each network's validation loss and accuracy on its own data set's validation part: one
    ``Evaluation`` per data set in use, over the networks that use it, so every network gets
    the figures it gets alone (an Evaluation's figures do not depend on its batch)."""

    def __init__(self, layout: Layout, datasets: list, dataset_index: np.ndarray):
        self.positions, self.evaluations = [], []
        for d in np.unique(dataset_index).tolist():
            positions = np.flatnonzero(dataset_index == d)
            self.positions.append(positions)
            dataset = datasets[d]
            evaluation = Evaluation(layout, dataset.x_val, dataset.y_val, len(positions))
            self.evaluations.append(evaluation)

    def __call__(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Validation loss and accuracy, (K,) each, of the networks of the (P, K) block."""
        if len(self.evaluations) == 1:
            return self.evaluations[0](weights)
        loss, accuracy = np.empty(weights.shape[1]), np.empty(weights.shape[1])
        for positions, evaluation in zip(self.positions, self.evaluations):
            loss[positions], accuracy[positions] = evaluation(weights[:, positions])
        return loss, accuracy


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

    def close_epoch(self, epoch, active, train_loss, val_loss, val_accuracy, weights64):
        """Record an epoch of the networks ``active`` (weights64: their (P, len(active))
        float64 weights); the positions in ``active`` of those that go on when some leave
        (none after the last epoch), else None."""
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
        self.final_parameters[:, active[leaving]] = weights64[:, leaving]
        return np.flatnonzero(~leaving)

    def batch(self, learning_rates, momenta, seeds, rule, layout, dataset_index) -> Batch:
        return Batch(
            learning_rates=learning_rates,
            momenta=momenta,
            seeds=seeds,
            rule=rule,
            layout=layout,
            train_loss=self.curves["train"],
            val_loss=self.curves["val"],
            val_accuracy=self.curves["acc"],
            diverged_epoch=self.diverged_epoch,
            stopped_epoch=self.stopped_epoch,
            final_parameters=self.final_parameters,
            dataset_index=dataset_index,
        )


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
        of them with the same inputs and classes, e.g. the folds of ``sweep.data.load_folds``.
    learning_rates, momenta, seeds: K values each (scalars broadcast). learning rate > 0;
        momentum in [0, 1); seed: an int in [0, 2**63), drawing the network's initial weights
        and then its item order for every epoch from ``numpy.random.default_rng(seed)``.
    dataset_index: (K,) ints, the position in ``dataset`` of the data set network k trains and is
        validated on; default all 0. Row k of the result is what ``train`` gives for
        ``dataset[dataset_index[k]]`` and network k's settings, bit for bit.
    hidden: hidden units (>= 1). epochs: passes over the training items (>= 1).
    rule: momentum rule, one of ``sweep.rules.RULES``: "seed" (the article's), "heavy-ball",
        "nesterov". init: "glorot" (default) or "small-uniform" (the article's +-0.01).
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
    if arithmetic not in ARITHMETICS:
        raise ValueError(
            f"unknown arithmetic {arithmetic!r}; expected one of {', '.join(ARITHMETICS)}"
        )
    if rule not in RULES:
        raise ValueError(f"unknown momentum rule {rule!r}; expected one of {', '.join(RULES)}")
    if hidden < 1 or epochs < 1:
        raise ValueError("hidden and epochs must be at least 1")
    datasets = _as_datasets(dataset)
    seeds = np.atleast_1d(np.asarray(seeds, dtype=np.int64))
    # default_rng(seed) for each, made in one pass; it refuses seeds that are negative or not 1-D.
    generators = seeded_generators(seeds)
    n_trials = len(seeds)
    if n_trials == 0:
        raise ValueError("no networks to train: give at least one seed")
    learning_rates = _per_trial(learning_rates, n_trials)
    momenta = _per_trial(momenta, n_trials)
    if np.any(~(learning_rates > 0)):
        raise ValueError("every learning rate must be > 0")
    if np.any((momenta < 0) | (momenta >= 1)):
        raise ValueError("every momentum must be in [0, 1)")
    dataset_index = _checked_dataset_index(dataset_index, n_trials, len(datasets))

    layout = Layout(datasets[0].x_train.shape[1], hidden, int(datasets[0].n_classes))
    train_sizes = np.array([len(d.y_train) for d in datasets], dtype=np.int64)
    # Each network's number of training items, and where its data set's items start in the table.
    network_items = train_sizes[dataset_index]
    network_first_item = (np.cumsum(train_sizes) - train_sizes)[dataset_index]
    several_datasets = len(datasets) > 1
    if initial_weights is None:
        parameters = initial_block(layout, generators, init)
    else:
        parameters = np.asarray(initial_weights, dtype=np.float64).reshape(layout.size, n_trials)
    if orders is not None:
        n_items = int(network_items[0])
        if np.any(network_items != n_items):
            raise ValueError(
                "orders need every network's data set to have one number of training items; "
                f"these have {sorted(set(network_items.tolist()))}"
            )
        orders = np.asarray(orders)
        if orders.shape != (n_trials, epochs, n_items):
            raise ValueError(
                f"orders has shape {orders.shape}; expected {(n_trials, epochs, n_items)}"
            )
        if orders.dtype.kind not in "iu" or orders.min() < 0 or orders.max() >= n_items:
            raise ValueError(f"orders must hold integer item indices from 0 to {n_items - 1}")
        orders = orders.astype(np.intp, copy=False)
    if divergence_loss is None:
        divergence_loss = DIVERGENCE_FACTOR * np.log(layout.n_outputs)

    # Items are columns. A chunk of steps is gathered at once into (rows, steps, K), one
    # contiguous block per row; step t reads the (rows, K) view [:, t], whose K networks are
    # contiguous, as einsum needs them. The items get a constant 1 appended for the biases,
    # written once into each chunk buffer. Several data sets' items follow one another.
    x_columns = np.ascontiguousarray(np.concatenate([d.x_train for d in datasets]).T, dtype=dtype)
    y_train = np.concatenate([d.y_train for d in datasets])
    one_hot_columns = np.eye(layout.n_outputs, dtype=dtype)[:, y_train]
    ledger = _Ledger(n_trials, epochs, layout.size, divergence_loss, on_epoch)
    batch_of = functools.partial(
        ledger.batch, learning_rates, momenta, seeds, rule, layout, dataset_index
    )
    if arithmetic == "compiled":
        _train_compiled(ledger, layout, datasets, dataset_index, parameters, learning_rates,
                        momenta, generators, rule, orders, dtype)
        return batch_of()
    active = np.arange(n_trials)
    lanes = _lanes(len(active))  # positions in ``active`` of the networks each column trains
    networks = _Networks(
        layout, parameters[:, lanes], learning_rates[lanes], momenta[lanes], rule, dtype
    )
    steps = _Steps(network_items[active[lanes]])
    lane_first_item = network_first_item[active[lanes]]

    n_longest = steps.longest
    drawn_orders = np.empty((0, n_trials, n_longest), dtype=np.intp)  # (epochs, K, items) to come
    # Buffers are made once and reused: fresh ones cost page faults, 5 ms an epoch at K = 1024
    # for the chunk buffers, and 1-2 ms a call at K = 256 for the item orders. The orders' one
    # holds the most epochs of orders a draw below can make.
    order_buffer = np.empty(
        min(min(ORDER_EPOCHS_PER_DRAW, epochs) * n_trials * n_longest,
            max(GATHER_CHUNK_NUMBERS, n_trials * n_longest)),
        dtype=np.intp,
    )
    chunk_buffers: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}
    validation = None  # its buffers too, made again when the batch shrinks
    # Overflow in a diverging network is expected and recorded, not warned about per item.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        for epoch in range(1, epochs + 1):
            if orders is None:
                if len(drawn_orders) == 0:
                    # Each generator shuffles several epochs in one call: per-epoch calls cost
                    # K Python round trips, 7 % of training at K = 256.
                    span = max(1, min(ORDER_EPOCHS_PER_DRAW, epochs - epoch + 1,
                                      GATHER_CHUNK_NUMBERS // (n_longest * len(active))))
                    # Epoch-major, so that each epoch's (K, items) slab is contiguous: transposing
                    # it then cost a tenth of transposing a strided one at K = 1024. A network's
                    # steps past its own items visit its first item (see _Steps).
                    own_lengths = network_items[active].tolist()
                    drawn_orders = draw_orders(
                        generators, own_lengths, span,
                        out=order_buffer[: span * len(active) * n_longest].reshape(
                            span, len(active), n_longest),
                    )
                epoch_order, drawn_orders = drawn_orders[0], drawn_orders[1:]
                if len(lanes) > len(active):
                    epoch_order = epoch_order[lanes]  # a lone network and its twin
            else:
                epoch_order = orders[active[lanes], epoch - 1]
            # (items, lanes): step t's items in a row
            epoch_order = np.ascontiguousarray(epoch_order.T)
            if several_datasets:
                epoch_order += lane_first_item
            n_lanes = len(lanes)
            chunk = max(
                1, GATHER_CHUNK_NUMBERS // ((layout.n_inputs + 1 + layout.n_outputs) * n_lanes)
            )
            log_likelihood = np.zeros(n_lanes)  # each lane's sum of log p(target), item by item
            snapshots = []
            for start, end, finished_lanes, ending_lanes in steps.segments:
                for first in range(start, end, chunk):
                    items = epoch_order[first : min(first + chunk, end)]
                    shape = (len(items), n_lanes)
                    if shape not in chunk_buffers:
                        buffers = (
                            np.ones((layout.n_inputs + 1, len(items), n_lanes), dtype=dtype),
                            np.empty((layout.n_outputs, len(items), n_lanes), dtype=dtype),
                            np.empty((len(items), layout.n_outputs, n_lanes), dtype=dtype),
                            # the running sum, then each log p(target)
                            np.empty((len(items) + 1, n_lanes)),
                            np.empty((len(items), n_lanes), dtype=dtype),  # each p(target)
                        )
                        # Each step's (x, x's inputs, one_hot, probability) views, made once:
                        # slicing the arrays every step cost 2 % of it at K = 64 to 256.
                        x_steps, one_hot_steps = (b.transpose(1, 0, 2) for b in buffers[:2])
                        x_inputs = x_steps[:, : layout.n_inputs]
                        step_views = list(zip(x_steps, x_inputs, one_hot_steps, buffers[2]))
                        chunk_buffers[shape] = (*buffers, step_views)
                    x_chunk, one_hot_chunk, probabilities, log_terms, targets, step_views = (
                        chunk_buffers[shape])
                    _gather(x_columns, items, out=x_chunk)
                    _gather(one_hot_columns, items, out=one_hot_chunk)
                    networks.train_on(step_views)
                    # Each item's loss is read off afterwards, for the whole chunk in one call: the
                    # one-hot product picks the target's probability exactly (the other terms are 0,
                    # and a NaN softmax is NaN in every class). The running sum goes first, so the
                    # items are added one after another across chunks too: the chunk size depends
                    # on K, the sum must not.
                    log_terms[0] = log_likelihood
                    # The log is taken in the networks' dtype (float32 runs too), then summed in
                    # float64.
                    einsum("tck,ctk->tk", probabilities, one_hot_chunk, out=targets)
                    np.log(targets, out=log_terms[1:])
                    if finished_lanes is not None:
                        log_terms[1:, finished_lanes] = 0.0  # adding 0 leaves a sum as it was
                    log_likelihood = np.add.reduce(log_terms, axis=0)  # in order: 2+ lanes
                if ending_lanes is not None:
                    snapshots.append(networks.snapshot(ending_lanes))
            for snapshot in snapshots:
                networks.restore(snapshot)

            weights64 = networks.weights[:, : len(active)].astype(np.float64, copy=False)  # no twin
            train_loss = -log_likelihood[: len(active)] / network_items[active]
            if validation is None:
                validation = _Validation(layout, datasets, dataset_index[active])
            val_loss, val_accuracy = validation(weights64)
            remaining = ledger.close_epoch(
                epoch, active, train_loss, val_loss, val_accuracy, weights64
            )
            if remaining is not None:
                active = active[remaining]
                if len(active) == 0:
                    break
                # Lane j < len(active) trains network active[j]; keep the lanes of those left.
                lanes = _lanes(len(active))
                networks.keep(remaining[lanes])
                generators = [generators[k] for k in remaining]
                steps = _Steps(network_items[active[lanes]])
                lane_first_item = network_first_item[active[lanes]]
                n_longest = steps.longest
                drawn_orders = drawn_orders[:, remaining, :n_longest]
                chunk_buffers.clear()
                validation = None

    return batch_of()

def draw_orders(generators, lengths: list[int], epochs: int, out=None) -> np.ndarray:
    """(epochs, K, longest) item orders, network k's drawn from ``generators[k]`` over its own
    ``lengths[k]`` items as every path draws them (rows of ``Generator.permuted``, several
    epochs a call); slots past a network's items hold 0. ``out``: an int array of that shape
    to fill instead of a new one."""
    longest = max(lengths)
    drawn = np.empty((epochs, len(generators), longest), dtype=np.int64) if out is None else out
    ranks = np.broadcast_to(np.arange(longest), (epochs, longest))
    for k, (generator, n_items) in enumerate(zip(generators, lengths)):
        generator.permuted(ranks[:, :n_items], axis=1, out=drawn[:, k, :n_items])
        drawn[:, k, n_items:] = 0
    return drawn


def _train_compiled(ledger, layout, datasets, dataset_index, parameters, learning_rates,
                    momenta, generators, rule, orders, dtype) -> None:
    """``train_many``'s epochs in ``sweep.kernel``'s compiled code, closed through ``ledger``.

    The data sets' training items are one table and their validation items another; each
    network reads its own rows of them, so folds cost no copy per network."""
    from . import kernel  # Numba loads in a second or two: only runs that use it pay

    train_sizes = np.array([len(d.y_train) for d in datasets], dtype=np.int64)
    val_sizes = np.array([len(d.y_val) for d in datasets], dtype=np.int64)
    x_table = np.ascontiguousarray(np.concatenate([d.x_train for d in datasets]), dtype=dtype)
    y_table = np.concatenate([d.y_train for d in datasets]).astype(np.int64)
    x_val = np.ascontiguousarray(np.concatenate([d.x_val for d in datasets]))
    y_val = np.concatenate([d.y_val for d in datasets]).astype(np.int64)
    train_first = (np.cumsum(train_sizes) - train_sizes)[dataset_index]
    network_items = train_sizes[dataset_index]
    val_counts = val_sizes[dataset_index]
    val_rows = (np.cumsum(val_sizes) - val_sizes)[dataset_index][:, None] + np.arange(
        val_counts.max()
    )
    val_rows = np.minimum(val_rows, len(y_val) - 1)  # slots past a network's count are not read

    active = np.arange(len(dataset_index))
    weights = np.ascontiguousarray(parameters, dtype=dtype)
    memory = np.zeros_like(weights)
    rates, moments = learning_rates, momenta
    drawn = np.empty((0, len(active), 0), dtype=np.int64)  # epochs of item orders to come
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        for epoch in range(1, ledger.epochs + 1):
            if orders is None:
                if len(drawn) == 0:
                    span = min(ORDER_EPOCHS_PER_DRAW, ledger.epochs - epoch + 1)
                    drawn = draw_orders(generators, network_items[active].tolist(), span)
                epoch_order, drawn = drawn[0].copy(), drawn[1:]
            else:
                epoch_order = orders[active, epoch - 1].astype(np.int64)
            epoch_order += train_first[active][:, None]
            sums, val_loss, val_accuracy = kernel.train_and_evaluate(
                layout, weights, memory, rates, moments, rule, x_table, y_table, epoch_order,
                network_items[active], x_val, y_val, val_rows[active], val_counts[active],
            )
            train_loss = -sums / network_items[active]
            weights64 = weights.astype(np.float64, copy=False)
            remaining = ledger.close_epoch(
                epoch, active, train_loss, val_loss, val_accuracy, weights64
            )
            if remaining is not None:
                active = active[remaining]
                if len(active) == 0:
                    return
                weights = np.ascontiguousarray(weights[:, remaining])
                memory = np.ascontiguousarray(memory[:, remaining])
                rates, moments = rates[remaining], moments[remaining]
                generators = [generators[k] for k in remaining]
                drawn = drawn[:, remaining]


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
