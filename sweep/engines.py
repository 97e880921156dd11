"""The two engines that run an epoch of online back-propagation for K networks.

``sweep.train.train_many`` drives the epochs (item orders, divergence, early stopping, the
curves) and hands each epoch to one engine behind one small interface:

* ``engine = Engine(problem, parameters, generators)``: the networks of a
  :class:`sweep.train.Problem`, starting from the (P, K) float64 ``parameters``, network k
  drawing its item orders from ``generators[k]``;
* ``engine.epoch(orders=None)``: one epoch of every network still training, network i taking
  its own items in the order ``orders[i, :n_items]`` (indices into its own data set), or, when
  ``orders`` is None, in the order its generator draws for the epoch; returns
  :class:`EpochFigures`;
* ``engine.keep(positions)``: only the networks at ``positions`` of the current ones go on.

Every path draws a network's order for an epoch the same way: ``Generator.permuted`` of its
items' indices, one call per epoch (:func:`draw_orders`). The NumPy engine calls NumPy for it;
the compiled engine draws the same permutations, bit for bit, in :mod:`sweep.kernel`.

:class:`NumpyEngine` is the readable reference: a dozen vectorised NumPy calls per item, the K
networks in one (parameters, K) block. :class:`CompiledEngine` runs whole epochs in
:mod:`sweep.kernel`'s compiled loops, the same arithmetic operation for operation (its exp,
log and tanh within an ulp or two of NumPy's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .network import Evaluation, Layout, einsum
from .network import lanes as _lanes
from .rules import make_rule

# Items gathered ahead of the step loop are capped at about this many numbers per chunk.
GATHER_CHUNK_NUMBERS = 1 << 21
# Epochs of item order each network's generator shuffles in one NumPy call: per-epoch calls
# cost K Python round trips, 7 % of training at K = 256.
ORDER_EPOCHS_PER_DRAW = 10
# Orders drawn ahead are capped at about this many numbers.
ORDER_BUFFER_NUMBERS = 1 << 21


def draw_orders(generators, lengths: list[int], epochs: int, out=None) -> np.ndarray:
    """(epochs, K, longest) int32 item orders, network k's drawn from ``generators[k]`` over
    its own ``lengths[k]`` items as every path draws them (rows of ``Generator.permuted``,
    several epochs a call); slots past a network's items hold 0. ``out``: an int array of that
    shape to fill instead of a new one."""
    longest = max(lengths)
    drawn = np.empty((epochs, len(generators), longest), dtype=np.int32) if out is None else out
    ranks = np.broadcast_to(np.arange(longest, dtype=drawn.dtype), (epochs, longest))
    for k, (generator, n_items) in enumerate(zip(generators, lengths)):
        generator.permuted(ranks[:, :n_items], axis=1, out=drawn[:, k, :n_items])
        drawn[:, k, n_items:] = 0
    return drawn


class _DrawnOrders:
    """Each epoch's item orders for the networks still training, drawn by NumPy from their
    generators several epochs at a time into one reused buffer.

    ``next(active)`` is (len(active), longest) int32: row i is network active[i]'s items, in
    its own data set, in the order it visits them; slots past its own items hold 0."""

    def __init__(self, problem, generators):
        self.problem, self.generators = problem, generators
        self.epoch = 0
        self.drawn = np.empty((0, problem.n_networks, 0), dtype=np.int32)  # epochs to come
        self.buffer = None  # made on the first draw: given orders need none

    def next(self, active: np.ndarray) -> np.ndarray:
        self.epoch += 1
        if self.buffer is None:
            problem = self.problem
            longest = int(problem.network_items.max())
            span = min(ORDER_EPOCHS_PER_DRAW, problem.epochs)
            # A fresh buffer per draw cost 1-2 ms a call at K = 256 in page faults.
            self.buffer = np.empty(
                min(span * problem.n_networks * longest,
                    max(ORDER_BUFFER_NUMBERS, problem.n_networks * longest)), dtype=np.int32)
        if len(self.drawn) == 0:
            lengths = self.problem.network_items[active]
            longest = int(lengths.max())
            span = max(1, min(ORDER_EPOCHS_PER_DRAW, self.problem.epochs - self.epoch + 1,
                              ORDER_BUFFER_NUMBERS // (longest * len(active))))
            # Epoch-major, so that each epoch's (K, items) slab is contiguous.
            out = self.buffer[: span * len(active) * longest].reshape(span, len(active), longest)
            self.drawn = draw_orders(self.generators, lengths.tolist(), span, out=out)
        epoch_orders, self.drawn = self.drawn[0], self.drawn[1:]
        return epoch_orders

    def keep(self, positions: np.ndarray) -> None:
        """Only the networks at ``positions`` of the current ones go on."""
        self.generators = [self.generators[k] for k in positions]
        self.drawn = self.drawn[:, positions]


@dataclass(frozen=True)
class EpochFigures:
    """One epoch of the networks still training, (K_active,) each, and their weights after it
    as a (P, K_active) float64 block."""

    train_loss: np.ndarray
    val_loss: np.ndarray
    val_accuracy: np.ndarray
    weights64: np.ndarray


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
        self.rule.keep(trials)
        self._allocate()

    def snapshot(self, lanes: np.ndarray):
        """Copies of the weights and momentum state of columns ``lanes``, for ``restore``."""
        return lanes, self.weights[:, lanes].copy(), self.rule.memory[:, lanes].copy()

    def restore(self, snapshot) -> None:
        """Put back the columns a ``snapshot`` copied, in the arrays the networks use now (a rule
        may have swapped its buffers since)."""
        lanes, weights, memory = snapshot
        self.weights[:, lanes] = weights
        self.rule.memory[:, lanes] = memory

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


class NumpyEngine:
    """The NumPy reference: each item's step for every network in one pass of NumPy calls.

    Items are columns. A chunk of steps is gathered at once into (rows, steps, K), one
    contiguous block per row; step t reads the (rows, K) view [:, t], whose K networks are
    contiguous, as einsum needs them. The items get a constant 1 appended for the biases,
    written once into each chunk buffer. Several data sets' items follow one another.
    """

    def __init__(self, problem, parameters: np.ndarray, generators):
        self.problem = problem
        self.drawn_orders = _DrawnOrders(problem, generators)
        layout, dtype = problem.layout, problem.dtype
        datasets = problem.datasets
        self.x_columns = np.ascontiguousarray(
            np.concatenate([d.x_train for d in datasets]).T, dtype=dtype)
        y_train = np.concatenate([d.y_train for d in datasets])
        self.one_hot_columns = np.eye(layout.n_outputs, dtype=dtype)[:, y_train]
        # Buffers are made once and reused: fresh ones cost page faults, 5 ms an epoch at
        # K = 1024 for the chunk buffers.
        self.chunk_buffers: dict[tuple[int, int], tuple] = {}
        self.active = np.arange(problem.n_networks)
        self._lanes_for(self.active)
        self.networks = _Networks(layout, parameters[:, self.lanes],
                                  problem.learning_rates[self.lanes],
                                  problem.momenta[self.lanes], problem.rule, dtype)

    def _lanes_for(self, active: np.ndarray) -> None:
        """The lanes (columns) of the networks ``active``: position j < len(active) trains
        network active[j]; a lone network gets a twin (see ``sweep.network.lanes``)."""
        self.lanes = _lanes(len(active))
        self.steps = _Steps(self.problem.network_items[active[self.lanes]])
        self.lane_first_item = self.problem.network_first_item[active[self.lanes]]
        self.validation = None  # made again on first use: its buffers are per batch
        self.chunk_buffers.clear()

    def keep(self, positions: np.ndarray) -> None:
        self.active = self.active[positions]
        self.networks.keep(positions[_lanes(len(self.active))])
        self.drawn_orders.keep(positions)
        self._lanes_for(self.active)

    def epoch(self, orders: np.ndarray | None = None) -> EpochFigures:
        problem, layout, networks = self.problem, self.problem.layout, self.networks
        if orders is None:
            orders = self.drawn_orders.next(self.active)
        epoch_order = orders[self.lanes] if len(self.lanes) > len(self.active) else orders
        # (items, lanes): step t's items in a row
        epoch_order = np.ascontiguousarray(epoch_order[:, : self.steps.longest].T)
        if len(problem.datasets) > 1:
            epoch_order += self.lane_first_item
        n_lanes = len(self.lanes)
        chunk = max(
            1, GATHER_CHUNK_NUMBERS // ((layout.n_inputs + 1 + layout.n_outputs) * n_lanes))
        log_likelihood = np.zeros(n_lanes)  # each lane's sum of log p(target), item by item
        snapshots = []
        for start, end, finished_lanes, ending_lanes in self.steps.segments:
            for first in range(start, end, chunk):
                items = epoch_order[first : min(first + chunk, end)]
                log_likelihood = self._train_chunk(items, log_likelihood, finished_lanes)
            if ending_lanes is not None:
                snapshots.append(networks.snapshot(ending_lanes))
        for snapshot in snapshots:
            networks.restore(snapshot)

        n_active = len(self.active)
        weights64 = networks.weights[:, :n_active].astype(np.float64, copy=False)  # no twin
        train_loss = -log_likelihood[:n_active] / problem.network_items[self.active]
        if self.validation is None:
            self.validation = _Validation(layout, problem.datasets,
                                          problem.dataset_index[self.active])
        val_loss, val_accuracy = self.validation(weights64)
        return EpochFigures(train_loss, val_loss, val_accuracy, weights64)

    def _train_chunk(self, items, log_likelihood, finished_lanes):
        """Train on a chunk of steps (items: (steps, lanes) rows of the item table); the
        running sums of log p(target) after it."""
        layout, dtype = self.problem.layout, self.problem.dtype
        shape = (len(items), len(self.lanes))
        if shape not in self.chunk_buffers:
            buffers = (
                np.ones((layout.n_inputs + 1, *shape), dtype=dtype),
                np.empty((layout.n_outputs, *shape), dtype=dtype),
                np.empty((len(items), layout.n_outputs, shape[1]), dtype=dtype),
                np.empty((len(items) + 1, shape[1])),  # the running sum, then each log p(target)
                np.empty(shape, dtype=dtype),  # each p(target)
            )
            # Each step's (x, x's inputs, one_hot, probability) views, made once: slicing the
            # arrays every step cost 2 % of it at K = 64 to 256.
            x_steps, one_hot_steps = (b.transpose(1, 0, 2) for b in buffers[:2])
            x_inputs = x_steps[:, : layout.n_inputs]
            step_views = list(zip(x_steps, x_inputs, one_hot_steps, buffers[2]))
            self.chunk_buffers[shape] = (*buffers, step_views)
        x_chunk, one_hot_chunk, probabilities, log_terms, targets, step_views = (
            self.chunk_buffers[shape])
        _gather(self.x_columns, items, out=x_chunk)
        _gather(self.one_hot_columns, items, out=one_hot_chunk)
        self.networks.train_on(step_views)
        # Each item's loss is read off afterwards, for the whole chunk in one call: the one-hot
        # product picks the target's probability exactly (the other terms are 0, and a NaN
        # softmax is NaN in every class). The running sum goes first, so the items are added one
        # after another across chunks too: the chunk size depends on K, the sum must not.
        log_terms[0] = log_likelihood
        # The log is taken in the networks' dtype (float32 runs too), then summed in float64.
        einsum("tck,ctk->tk", probabilities, one_hot_chunk, out=targets)
        np.log(targets, out=log_terms[1:])
        if finished_lanes is not None:
            log_terms[1:, finished_lanes] = 0.0  # adding 0 leaves a sum as it was
        return np.add.reduce(log_terms, axis=0)  # in order: 2+ lanes


class CompiledEngine:
    """Whole epochs in :mod:`sweep.kernel`'s compiled loops, training and validation in one
    hand-off to its threads, each network's item order drawn there too (``kernel.Shuffles``).

    The data sets' training items are one table and their validation items another; each
    network reads its own rows of them, so folds cost no copy per network."""

    def __init__(self, problem, parameters: np.ndarray, generators):
        from . import kernel  # Numba loads in a second or two: only runs that use it pay

        self.kernel = kernel
        self.problem = problem
        datasets, dtype = problem.datasets, problem.dtype
        val_sizes = np.array([len(d.y_val) for d in datasets], dtype=np.int64)
        self.x_table = np.ascontiguousarray(np.concatenate([d.x_train for d in datasets]),
                                            dtype=dtype)
        self.y_table = np.concatenate([d.y_train for d in datasets]).astype(np.int64)
        self.x_val = np.ascontiguousarray(np.concatenate([d.x_val for d in datasets]))
        self.y_val = np.concatenate([d.y_val for d in datasets]).astype(np.int64)
        self.val_counts = val_sizes[problem.dataset_index]
        first_val = (np.cumsum(val_sizes) - val_sizes)[problem.dataset_index]
        val_rows = first_val[:, None] + np.arange(self.val_counts.max(), dtype=np.int32)
        # Slots past a network's count are not read.
        self.val_rows = np.minimum(val_rows, len(self.y_val) - 1).astype(np.int32)
        self.items, self.first_items = problem.network_items, problem.network_first_item
        self.shuffles = kernel.Shuffles(generators, self.first_items, self.items)
        self.weights = np.ascontiguousarray(parameters, dtype=dtype)
        self.memory = np.zeros_like(self.weights)
        self.learning_rates, self.momenta = problem.learning_rates, problem.momenta

    def keep(self, positions: np.ndarray) -> None:
        self.weights = np.ascontiguousarray(self.weights[:, positions])
        self.memory = np.ascontiguousarray(self.memory[:, positions])
        self.learning_rates = self.learning_rates[positions]
        self.momenta = self.momenta[positions]
        self.items, self.first_items = self.items[positions], self.first_items[positions]
        self.val_rows, self.val_counts = self.val_rows[positions], self.val_counts[positions]
        self.shuffles.keep(positions)

    def epoch(self, orders: np.ndarray | None = None) -> EpochFigures:
        if orders is None:
            rows = self.shuffles  # drawn by the kernel, on its threads
        else:
            rows = orders + self.first_items[:, None]  # rows of the item table
        sums, val_loss, val_accuracy = self.kernel.train_and_evaluate(
            self.problem.layout, self.weights, self.memory, self.learning_rates, self.momenta,
            self.problem.rule, self.x_table, self.y_table, rows, self.items, self.x_val,
            self.y_val, self.val_rows, self.val_counts,
        )
        weights64 = self.weights.astype(np.float64, copy=False)
        return EpochFigures(-sums / self.items, val_loss, val_accuracy, weights64)


ENGINES = {"numpy": NumpyEngine, "compiled": CompiledEngine}
