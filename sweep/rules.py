"""Momentum rules: how one gradient step changes a network's weights and biases.

Every rule works in place on flat parameter blocks of shape (parameters, trials), so one call
updates every weight and bias of every trial's network at once. Each rule keeps its own state
(its previous step) apart from the network, as scikit-learn's optimisers do.

A rule is given ``sgd_step = -learning_rate * grad``, the plain SGD step, with ``grad`` =
dLoss/dw. The trainer forms it while back-propagating (scaling two small error vectors instead
of a whole gradient block), and every rule is a function of it alone, so each reduces exactly to
plain SGD, ``w += sgd_step``, when momentum is 0. ``momentum`` has the block's shape, each
trial's value repeated down its column: a same-shape product measured twice as fast as a
broadcast one.

``step`` returns the buffer the trainer should write the next ``sgd_step`` into. Heavy ball and
Nesterov hand back the same buffer; the article's rule keeps this step's buffer as its memory
(saving a copy of the whole block on every item) and hands back its old memory, now free.
"""

from __future__ import annotations

import numpy as np

RULES = ("seed", "heavy-ball", "nesterov")


class SeedMomentum:
    """The article's rule, with a one-step look-back.

    ``delta = -learning_rate * grad; w += delta; w += momentum * prev_delta; prev_delta = delta``
    (``delta`` is ``sgd_step``).

    ``prev_delta`` keeps only the plain gradient step, not the momentum term, so this is not
    Polyak's heavy ball: an old step's influence lasts one update instead of decaying
    geometrically. From "Neural Network Momentum" (the seed article), whose worked example is
    w = 3.56 + 0.01 * 2.70 + 0.50 * 0.044 = 3.609.
    """

    name = "seed"

    state = ("prev_delta",)

    def __init__(self, shape: tuple[int, int], dtype=np.float64):
        self.prev_delta = np.zeros(shape, dtype)

    def step(self, weights, sgd_step, momentum):
        weights += sgd_step
        prev_delta = self.prev_delta
        prev_delta *= momentum
        weights += prev_delta
        self.prev_delta = sgd_step
        return prev_delta


class HeavyBall:
    """Polyak's heavy ball, as scikit-learn's SGD writes it.

    ``velocity = momentum * velocity - learning_rate * grad; w += velocity``
    """

    name = "heavy-ball"

    state = ("velocity",)

    def __init__(self, shape: tuple[int, int], dtype=np.float64):
        self.velocity = np.zeros(shape, dtype)

    def step(self, weights, sgd_step, momentum):
        velocity = self.velocity
        velocity *= momentum
        velocity += sgd_step
        weights += velocity
        return sgd_step


class Nesterov:
    """Nesterov's accelerated gradient, in scikit-learn's form.

    ``velocity = momentum * velocity - learning_rate * grad;
    w += momentum * velocity - learning_rate * grad``
    """

    name = "nesterov"

    state = ("velocity", "_update")

    def __init__(self, shape: tuple[int, int], dtype=np.float64):
        self.velocity = np.zeros(shape, dtype)
        self._update = np.zeros(shape, dtype)

    def step(self, weights, sgd_step, momentum):
        velocity, update = self.velocity, self._update
        velocity *= momentum
        velocity += sgd_step
        np.multiply(velocity, momentum, out=update)
        update += sgd_step
        weights += update
        return sgd_step


def keep_trials(rule, trials: np.ndarray) -> None:
    """Keep only the trials (columns) ``trials`` of the state: when trials stop, the batch
    shrinks."""
    for name in rule.state:
        setattr(rule, name, np.ascontiguousarray(getattr(rule, name)[:, trials]))


_RULE_CLASSES = {cls.name: cls for cls in (SeedMomentum, HeavyBall, Nesterov)}


def make_rule(name: str, shape: tuple[int, int], dtype=np.float64):
    """The rule called ``name`` (one of RULES) with zero state for
    ``shape`` = (parameters, trials)."""
    try:
        return _RULE_CLASSES[name](shape, dtype)
    except KeyError:
        raise ValueError(
            f"unknown momentum rule {name!r}; expected one of {', '.join(RULES)}"
        ) from None
