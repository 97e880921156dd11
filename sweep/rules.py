"""Momentum rules: how one gradient step changes a network's weights and biases.

A rule is one class here, and everything else asks it: the NumPy trainer (``step``), the
compiled kernel (``scalar_step``, which it compiles), the diagnostics (``update_parts``), the
study file's valid names (``rule_names``) and the analysis (``effective_rate``,
``linear_stability_limit``).

A rule is given ``sgd_step = -learning_rate * grad``, the plain SGD step, with ``grad`` =
dLoss/dw, and keeps one number of memory per weight (zero before the first step). Every rule
is a function of them alone, so each reduces exactly to plain SGD, ``w += sgd_step``, when
momentum is 0.

Adding a rule (the whole recipe; nothing outside this file changes):

1. Subclass :class:`Rule` below with ``name``, ``effective_formula`` (its effective learning
   rate in words), a docstring giving the formula and its source, and three static methods:
   ``scalar_step(weight, memory, sgd_step, momentum)`` returning (new weight, new memory) in
   plain ``+ - * /`` with no branch on a value (it runs on NumPy
   arrays as it is, and the kernel compiles it with Numba), ``effective_factor(momentum)``
   (how many plain steps one persistent gradient's updates add up to) and
   ``linear_stability_limit(momentum)`` (the largest learning rate x curvature at which the
   rule's iteration on a quadratic stays bounded).
2. Decorate it with ``@register``.
3. Test its formula by hand in ``tests/test_rules.py``; the generic tests there check its step,
   its reduction to SGD and its stability limit against the spectral radius of its own
   iteration. ``tests/test_rules.py`` also trains a rule defined only in the test through both
   arithmetics and a small study, which is what proves this recipe.

``step`` (the NumPy trainer's update of a whole (parameters, trials) block) defaults to
``scalar_step`` applied to the block; the three rules shipped override it with in-place forms
that do the same arithmetic in the same order (a test checks bit for bit) without allocating.
``step`` returns the buffer the trainer should write the next ``sgd_step`` into. ``momentum``
has the block's shape, each trial's value repeated down its column: a same-shape product
measured twice as fast as a broadcast one.
"""

from __future__ import annotations

import numpy as np

from .registry import Registry

RULES = Registry("momentum rule")
register = RULES.register  # class decorator: a rule every part of the project knows by name
rule_names = RULES.names  # the registered rules' names, in the order they were registered
get_rule = RULES.get  # the rule class called name; ValueError naming the valid ones


def make_rule(name: str, shape: tuple[int, int], dtype=np.float64) -> Rule:
    """The rule called ``name`` with zero memory for ``shape`` = (parameters, trials)."""
    return get_rule(name)(shape, dtype)


class Rule:
    """A momentum rule and its memory for a (parameters, trials) block of weights."""

    name: str = ""
    # The effective learning rate in words, as pages print it.
    effective_formula: str = ""

    def __init__(self, shape: tuple[int, int], dtype=np.float64):
        self.memory = np.zeros(shape, dtype)

    # -- what each rule states ------------------------------------------------------------

    @staticmethod
    def scalar_step(weight, memory, sgd_step, momentum):
        """(new weight, new memory) after one step: the rule's formula."""
        raise NotImplementedError

    @staticmethod
    def effective_factor(momentum: float) -> float:
        """The sum of the updates one constant gradient causes, in plain SGD steps: a rule at
        (learning rate, momentum) moves like plain SGD at learning rate x this factor."""
        raise NotImplementedError

    @staticmethod
    def linear_stability_limit(momentum: float) -> float:
        """The largest ``a = learning_rate * curvature`` for which the rule's iteration on the
        quadratic ``curvature * w**2 / 2`` stays bounded (spectral radius below 1)."""
        raise NotImplementedError

    # -- derived ----------------------------------------------------------------------------

    @classmethod
    def effective_rate(cls, learning_rate: float, momentum: float) -> float:
        """The plain-SGD learning rate this rule at (learning_rate, momentum) moves like."""
        return learning_rate * cls.effective_factor(momentum)

    @classmethod
    def update_parts(cls, memory, sgd_step, momentum):
        """(update, momentum term) of the next step from the memory before it: how far the
        step moves a weight, and how much of that is not the plain step."""
        update, _ = cls.scalar_step(0.0, memory, sgd_step, momentum)
        return update, update - sgd_step

    def step(self, weights, sgd_step, momentum):
        """Update ``weights`` in place; the buffer for the next ``sgd_step``."""
        weights[...], self.memory = self.scalar_step(weights, self.memory, sgd_step, momentum)
        return sgd_step

    def keep(self, trials: np.ndarray) -> None:
        """Keep only the trials (columns) ``trials`` of the memory: the batch shrank."""
        self.memory = np.ascontiguousarray(self.memory[:, trials])


@register
class SeedMomentum(Rule):
    """The article's rule, with a one-step look-back.

    ``delta = -learning_rate * grad; w += delta; w += momentum * prev_delta; prev_delta = delta``
    (``delta`` is ``sgd_step``; the memory is ``prev_delta``).

    ``prev_delta`` keeps only the plain gradient step, not the momentum term, so this is not
    Polyak's heavy ball: an old step's influence lasts one update instead of decaying
    geometrically. From "Neural Network Momentum" (the seed article), whose worked example is
    w = 3.56 + 0.01 * 2.70 + 0.50 * 0.044 = 3.609.
    """

    name = "seed"
    effective_formula = "learning rate x (1 + momentum)"

    @staticmethod
    def scalar_step(weight, memory, sgd_step, momentum):
        return (weight + sgd_step) + memory * momentum, sgd_step

    @staticmethod
    def effective_factor(momentum: float) -> float:
        return 1.0 + momentum  # each step counted once plain and once times momentum

    @staticmethod
    def linear_stability_limit(momentum: float) -> float:
        # w' = (1 - a) w - momentum a w_prev: roots inside the unit circle while
        # momentum a < 1 and (1 - momentum) a < 2 (Jury's conditions).
        limits = [2.0 / (1.0 - momentum)]
        if momentum > 0:
            limits.append(1.0 / momentum)
        return min(limits)

    def step(self, weights, sgd_step, momentum):
        # The memory becomes this step's buffer (saving a copy of the block on every item), and
        # the old memory, now free, the buffer for the next step.
        weights += sgd_step
        carried = self.memory
        carried *= momentum
        weights += carried
        self.memory = sgd_step
        return carried


@register
class HeavyBall(Rule):
    """Polyak's heavy ball, as scikit-learn's SGD writes it.

    ``velocity = momentum * velocity - learning_rate * grad; w += velocity`` (the memory is
    the velocity).
    """

    name = "heavy-ball"
    effective_formula = "learning rate / (1 - momentum)"

    @staticmethod
    def scalar_step(weight, memory, sgd_step, momentum):
        velocity = memory * momentum + sgd_step
        return weight + velocity, velocity

    @staticmethod
    def effective_factor(momentum: float) -> float:
        return 1.0 / (1.0 - momentum)  # the geometric sum of a step's echoes

    @staticmethod
    def linear_stability_limit(momentum: float) -> float:
        # w' = (1 + momentum - a) w - momentum w_prev: bounded while a < 2 (1 + momentum).
        return 2.0 * (1.0 + momentum)

    def step(self, weights, sgd_step, momentum):
        velocity = self.memory
        velocity *= momentum
        velocity += sgd_step
        weights += velocity
        return sgd_step


@register
class Nesterov(Rule):
    """Nesterov's accelerated gradient, in scikit-learn's form.

    ``velocity = momentum * velocity - learning_rate * grad;
    w += momentum * velocity - learning_rate * grad`` (the memory is the velocity).
    """

    name = "nesterov"
    effective_formula = "learning rate / (1 - momentum)"

    def __init__(self, shape: tuple[int, int], dtype=np.float64):
        super().__init__(shape, dtype)
        self._update = np.zeros(shape, dtype)  # scratch, not memory

    @staticmethod
    def scalar_step(weight, memory, sgd_step, momentum):
        velocity = memory * momentum + sgd_step
        return weight + (velocity * momentum + sgd_step), velocity

    @staticmethod
    def effective_factor(momentum: float) -> float:
        return 1.0 / (1.0 - momentum)

    @staticmethod
    def linear_stability_limit(momentum: float) -> float:
        # w' = (1 + momentum)(1 - a) w - momentum (1 - a) w_prev: bounded while
        # a < 2 (1 + momentum) / (1 + 2 momentum).
        return 2.0 * (1.0 + momentum) / (1.0 + 2.0 * momentum)

    def step(self, weights, sgd_step, momentum):
        velocity, update = self.memory, self._update
        velocity *= momentum
        velocity += sgd_step
        np.multiply(velocity, momentum, out=update)
        update += sgd_step
        weights += update
        return sgd_step

    def keep(self, trials: np.ndarray) -> None:
        super().keep(trials)
        self._update = np.zeros_like(self.memory)

