"""The network: inputs -> one tanh hidden layer -> softmax outputs, cross-entropy loss.

Parameters of K networks (one per trial) live in one flat float array of shape (P, K), so a
momentum rule updates all of them with a handful of NumPy calls. The trial axis is last because
then every operation of the online step runs along contiguous memory over the K networks, which
measured twice as fast as trials-first at K = 256. ``Layout`` names the views into that block
after the article's code: input-to-hidden weights, hidden biases, hidden-to-output weights,
output biases; a view has the parameter's shape followed by K.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

try:
    # np.einsum(..., optimize=False) only forwards to this C function. Calling it directly skips
    # the Python wrapper and NumPy's __array_function__ dispatch: 1.2 us a call, 9 % of a
    # training step at K = 256.
    from numpy._core.multiarray import c_einsum as einsum
except ImportError:  # a NumPy that moved it: the public function does the same, a little slower
    einsum = np.einsum

PARAMETER_NAMES = ("ih_weights", "h_biases", "ho_weights", "o_biases")
INITIALISATIONS = ("glorot", "small-uniform")
# The article's programs draw every weight and bias from this small symmetric range.
SMALL_UNIFORM_LIMIT = 0.01


@dataclass(frozen=True)
class Layout:
    """Sizes of a n_inputs-n_hidden-n_outputs network and where each parameter sits in a flat
    row."""

    n_inputs: int
    n_hidden: int
    n_outputs: int

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {
            "ih_weights": (self.n_inputs, self.n_hidden),
            "h_biases": (self.n_hidden,),
            "ho_weights": (self.n_hidden, self.n_outputs),
            "o_biases": (self.n_outputs,),
        }

    @property
    def size(self) -> int:
        """P, the number of weights and biases in one network."""
        return sum(int(np.prod(shape)) for shape in self.shapes.values())

    @functools.cached_property
    def _places(self) -> tuple[tuple[str, int, int, tuple[int, ...]], ...]:
        """(name, first row, row after, shape) of each parameter in a flat block."""
        places, start = [], 0
        for name, shape in self.shapes.items():
            stop = start + math.prod(shape)
            places.append((name, start, stop, shape))
            start = stop
        return tuple(places)

    def views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Named views (*shape, K) into a flat (P, K) block; writing to a view writes the block."""
        k = flat.shape[1]
        return {
            name: flat[start:stop].reshape(*shape, k) for name, start, stop, shape in self._places
        }

    def augmented_views(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each layer's weights with its biases as one extra input row: (I+1, H, K), (H+1, C, K).

        The flat order (weights, then that layer's biases) makes these plain views, so an input
        with a constant 1 appended computes weights and bias in one product.
        """
        k = flat.shape[1]
        split = (self.n_inputs + 1) * self.n_hidden
        return (
            flat[:split].reshape(self.n_inputs + 1, self.n_hidden, k),
            flat[split:].reshape(self.n_hidden + 1, self.n_outputs, k),
        )

    def flatten(self, parameters: dict[str, np.ndarray]) -> np.ndarray:
        """The (P, 1) block of one network given as named arrays of the shapes in ``shapes``."""
        flat = np.empty((self.size, 1))
        views = self.views(flat)
        for name, shape in self.shapes.items():
            value = np.asarray(parameters[name], dtype=float)
            if value.shape != shape:
                raise ValueError(f"{name} has shape {value.shape}; expected {shape}")
            views[name][..., 0] = value
        return flat

    def unflatten(self, flat: np.ndarray, trial: int) -> dict[str, np.ndarray]:
        """Trial ``trial``'s parameters from a (P, K) block, as named arrays (copies)."""
        return {name: view[..., trial].copy() for name, view in self.views(flat).items()}


def initial_parameters(
    layout: Layout, rng: np.random.Generator, init: str = "glorot"
) -> np.ndarray:
    """One network's flat parameter column (P,) drawn from ``rng``.

    ``glorot``: weights uniform in +-sqrt(6 / (fan_in + fan_out)), biases 0 (Glorot & Bengio 2010).
    ``small-uniform``: every weight and bias uniform in +-0.01, as in the article's programs.
    """
    return initial_block(layout, [rng], init)[:, 0]


def initial_block(layout: Layout, generators, init: str = "glorot") -> np.ndarray:
    """The (P, K) block of K networks' initial parameters, column k drawn from ``generators[k]``.

    Each generator makes one draw, and the scaling is done for all networks at once: a
    ``uniform`` call per weight matrix per network cost 70 us a network, a quarter of training
    256 networks for 20 epochs. The numbers are ``Generator.uniform``'s, bit for bit: it draws
    in the same order and computes ``low + (high - low) * u`` the same way.
    """
    if init == "glorot":
        drawn = ("ih_weights", "ho_weights")
    elif init == "small-uniform":
        drawn = PARAMETER_NAMES
    else:
        raise ValueError(f"unknown initialisation {init!r}; expected one of {INITIALISATIONS}")
    counts = [int(np.prod(layout.shapes[name])) for name in drawn]
    unit = np.stack([rng.random(sum(counts)) for rng in generators], axis=1)
    block = np.zeros((layout.size, len(generators)))
    views = layout.views(block)
    start = 0
    for name, count in zip(drawn, counts):
        if init == "glorot":
            fan_in, fan_out = layout.shapes[name]
            limit = np.sqrt(6.0 / (fan_in + fan_out))
        else:
            limit = SMALL_UNIFORM_LIMIT
        low, high = -limit, limit
        views[name][...] = (low + (high - low) * unit[start : start + count]).reshape(
            views[name].shape
        )
        start += count
    return block


def log_softmax(logits: np.ndarray, axis: int) -> np.ndarray:
    """log of softmax along ``axis``, shifted by the maximum so it cannot overflow."""
    shifted = logits - logits.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def lanes(n_networks: int) -> np.ndarray:
    """The columns to compute ``n_networks`` networks in: lane j is network j, and a lone
    network gets a twin in a second lane.

    NumPy sums a length-1 trial axis differently: it drops the axis and adds along another one,
    pairwise or in SIMD lanes (softmax over 8+ classes, a single hidden unit, the losses over 8+
    items). With two or more columns every sum runs in index order, so a network's numbers are
    the same whatever its batch, alone included, and a stored trial replays exactly. The twin
    costs little: at K = 1 a step is call overhead.
    """
    return np.arange(max(n_networks, 2)) % n_networks


class Evaluation:
    """Evaluates K networks on one data set (x, y), epoch after epoch, in buffers it keeps.

    Fresh buffers each epoch cost page faults: a third of an evaluation at K = 1024.
    x: (N, n_inputs); y: (N,) class indices. A lone network is evaluated beside a twin, as the
    trainer trains it (see ``lanes``), so its figures are the ones the trainer records.
    """

    def __init__(self, layout: Layout, x: np.ndarray, y: np.ndarray, k: int):
        y = np.asarray(y)
        if y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= layout.n_outputs:
            raise ValueError(f"classes must be integers from 0 to {layout.n_outputs - 1}")
        n = len(y)
        self.layout, self.y, self.items = layout, y, np.arange(n)
        self.k, self.lanes = k, lanes(k)
        k = len(self.lanes)
        # Each layer's bias is its first input, a constant 1: einsum then adds bias, then each
        # input's product, in index order, for every K (a Python loop over the inputs adding the
        # same terms in the same order was a third slower).
        self.inputs = np.ones((n, layout.n_inputs + 1))
        self.inputs[:, 1:] = x
        # Hidden units first, (H+1, N, K): the units are then one contiguous block, for the
        # product to write and tanh to work on in place, with the bias's 1 as row 0.
        self.hidden = np.ones((layout.n_hidden + 1, n, k))
        self.w_ih = np.empty((layout.n_inputs + 1, layout.n_hidden, k))
        # Outputs first, (C, H+1, K): einsum's product into the (N, C, K) logits then runs in
        # two thirds of the time it takes over (H+1, C, K) weights, adding the same terms in
        # the same order.
        self.w_ho = np.empty((layout.n_outputs, layout.n_hidden + 1, k))
        self.logits = np.empty((n, layout.n_outputs, k))
        self.top = np.empty((n, k))
        self.shifted = np.empty_like(self.logits)  # then its exponentials, in place
        self.at_top = np.empty(self.logits.shape, dtype=bool)

    def __call__(self, flat: np.ndarray):
        """Mean cross-entropy loss and accuracy of each network of the (P, K) block: two
        (K,) arrays."""
        p = self.layout.views(flat if flat.shape[1] == len(self.lanes) else flat[:, self.lanes])
        self.w_ih[0], self.w_ih[1:] = p["h_biases"], p["ih_weights"]
        self.w_ho[:, 0], self.w_ho[:, 1:] = p["o_biases"], p["ho_weights"].transpose(1, 0, 2)
        units = self.hidden[1:]
        einsum("ni,ihk->hnk", self.inputs, self.w_ih, out=units)
        np.tanh(units, out=units)
        einsum("hnk,ohk->nok", self.hidden, self.w_ho, out=self.logits)
        # log softmax (as ``log_softmax``), taken at the targets only: the loss needs no more.
        top = np.maximum.reduce(self.logits, axis=1, out=self.top)
        shifted = np.subtract(self.logits, top[:, None], out=self.shifted)
        target_logit = self.logits[self.items, self.y, :]
        # The shifted target logit is the same subtraction as its entry of ``shifted``.
        log_p = (target_logit - top) - np.log(np.add.reduce(np.exp(shifted, out=shifted), axis=1))
        # add.reduce adds the items in order over two or more columns (see ``lanes``).
        loss = -np.add.reduce(log_p, axis=0) / len(self.y)
        return loss[: self.k], self._accuracy(target_logit, top)[: self.k]

    def _accuracy(self, target_logit: np.ndarray, top: np.ndarray) -> np.ndarray:
        """The fraction of items whose target has the largest logit: argmax's answer, a third of
        its time. Where one class alone holds the maximum, argmax names the target exactly when
        the target's logit is the maximum; ties and NaN (argmax takes the first) go to argmax.
        """
        at_top = np.equal(self.logits, top[:, None], out=self.at_top)
        if np.count_nonzero(at_top) == top.size and not np.isnan(top).any():
            return np.add.reduce(target_logit == top, axis=0) / len(self.y)
        return (self.logits.argmax(axis=1) == self.y[:, None]).mean(axis=0)


def evaluate(flat: np.ndarray, layout: Layout, x: np.ndarray, y: np.ndarray):
    """Mean cross-entropy loss and accuracy of each of K networks on the whole set (x, y).

    flat: (P, K) parameters; x: (N, n_inputs); y: (N,) class indices. Returns two (K,) arrays.
    Sums run term by term along the trial axis (no BLAS), so network k's figures are the same
    whatever else shares its batch, and the same as the trainer records.
    """
    return Evaluation(layout, x, y, flat.shape[1])(flat)


def loss_and_gradients(flat: np.ndarray, layout: Layout, x: np.ndarray, y: np.ndarray):
    """Cross-entropy loss of each of K networks on one item each, and dLoss/dw for all of them.

    flat: (P, K); x: (n_inputs, K), column k is network k's item; y: (K,) class indices.
    Returns (loss (K,), gradient (P, K)). A plain reference for tests: the trainer inlines the
    same back-propagation with preallocated buffers.
    """
    p = layout.views(flat)
    trials = np.arange(len(y))
    hidden = np.tanh(np.einsum("ik,ihk->hk", x, p["ih_weights"]) + p["h_biases"])
    logits = np.einsum("hk,hok->ok", hidden, p["ho_weights"]) + p["o_biases"]
    log_p = log_softmax(logits, axis=0)
    output_error = np.exp(log_p)
    output_error[y, trials] -= 1.0
    hidden_error = np.einsum("hok,ok->hk", p["ho_weights"], output_error) * (1.0 - hidden**2)
    gradient = np.empty_like(flat)
    g = layout.views(gradient)
    g["ih_weights"][...] = x[:, None, :] * hidden_error[None, :, :]
    g["h_biases"][...] = hidden_error
    g["ho_weights"][...] = hidden[:, None, :] * output_error[None, :, :]
    g["o_biases"][...] = output_error
    return -log_p[y, trials], gradient
