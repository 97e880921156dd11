"""Stored trials as plain data, and the objectives that score their curves.

A :class:`TrialRecord` is what the analysis, the plots and the report work from: one trial's
settings, state and per-epoch curves, with no Optuna object in sight. The storage seam
(:mod:`sweep.store`) makes them; this module imports nothing but NumPy, so the pure modules that
read them load in a blink and test without a database.

Conventions: epochs are 1-based (epoch e is a curve's entry e - 1); "reached the target" means a
validation loss <= the target loss; an objective value is lower-is-better.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .registry import Registry

# A stored trial's state as the analysis names it. "diverged" is Optuna's PRUNED with a
# divergence epoch recorded; "waiting" only appears in studies other tools wrote.
STATES = ("complete", "pruned", "diverged", "failed", "running", "waiting")


@dataclass(frozen=True)
class TrialRecord:
    """One stored trial as plain data: what the analysis and the report work from."""

    number: int
    state: str  # one of STATES
    learning_rate: float
    momentum: float
    seed: int
    value: float | None
    baseline: bool
    diverged_epoch: int | None
    stopped_epoch: int | None
    train_loss: np.ndarray
    val_loss: np.ndarray
    val_accuracy: np.ndarray
    retry_of: int | None = None  # the failed trial whose parameters and seed this one retries
    # A trial trains folds x repeats networks; its curves above are their mean per epoch and its
    # value the mean of theirs. Per network (None for a one-network trial, as every trial stored
    # before networks were repeated): (n, epochs) curves, n values, seeds and folds.
    networks: NetworkCurves | None = None
    # Which of sweep.train.ARITHMETICS trained it: trials stored before the compiled kernel
    # have no name stored and were trained by NumPy.
    arithmetic: str = "numpy"

    @property
    def network_count(self) -> int:
        return 1 if self.networks is None else len(self.networks.seeds)

    @property
    def network_values(self) -> np.ndarray:
        """Each network's objective value: the trial's own value when it has one network."""
        if self.networks is not None:
            return self.networks.values
        return np.array([np.nan if self.value is None else self.value])


@dataclass(frozen=True)
class NetworkCurves:
    """The networks of one trial: row i is network i's (seed ``seeds[i]``, fold ``folds[i]``).

    Curves are NaN after a network stopped; ``values`` are each network's objective (NaN for
    a network with none: pruned by epochs-to-target, or diverged).
    """

    seeds: tuple[int, ...]
    folds: tuple[int, ...]
    values: np.ndarray
    train_loss: np.ndarray
    val_loss: np.ndarray
    val_accuracy: np.ndarray


def mean_curve(curves) -> np.ndarray:
    """A trial's curve from its networks' (epochs,) curves: their mean per epoch. One network's
    curve comes back exactly as it is."""
    return np.mean(np.vstack(curves), axis=0)


def epochs_to_target(val_loss: np.ndarray, target_loss: float) -> int | None:
    """The first epoch (1-based) whose validation loss is <= ``target_loss``; None if never."""
    reached = np.flatnonzero(np.asarray(val_loss, dtype=float) <= target_loss)
    return int(reached[0]) + 1 if len(reached) else None


# ---------------------------------------------------------------------------------------------
# Objectives: each one class here, and everything else asks it (the study file's valid names,
# the search's pruner, the trials' values, the plots' labels). Adding one: a subclass of
# Objective with ``@register_objective``; nothing outside this file changes.

OBJECTIVES = Registry("objective")
register_objective = OBJECTIVES.register  # class decorator: an objective known by its name
objective_names = OBJECTIVES.names  # the registered objectives' names, in order
get_objective = OBJECTIVES.get  # the objective called name; ValueError naming the valid ones


class Objective:
    """One way to score a trial's validation-loss curve; lower is better."""

    name: str = ""
    label: str = ""  # how plots and pages name it
    unit: str = "loss"  # "loss" or "epochs"
    needs_target: bool = False  # whether it reads the study's target loss
    # Whether a trial the pruner stopped has a value of this objective (its running value).
    valued_when_pruned: bool = True

    @staticmethod
    def final(val_loss: np.ndarray, target_loss: float) -> float:
        """The value of a curve trained to the end."""
        raise NotImplementedError

    @staticmethod
    def running_curve(val_loss: np.ndarray) -> np.ndarray:
        """What the pruner is told after each epoch: the objective's value if training stopped
        then, for every epoch at once (a loss that stands in for it where it has none yet)."""
        return np.asarray(val_loss, dtype=float)

    @classmethod
    def running(cls, val_loss_so_far: np.ndarray) -> float:
        """What the pruner is told after the last epoch of ``val_loss_so_far``."""
        return float(cls.running_curve(val_loss_so_far)[-1])


@register_objective
class FinalValLoss(Objective):
    """The validation loss after the last epoch."""

    name = "final_val_loss"
    label = "final validation loss"

    @staticmethod
    def final(val_loss, target_loss):
        return float(val_loss[-1])


@register_objective
class MinValLoss(Objective):
    """The lowest validation loss over the epochs: what early stopping keeps."""

    name = "min_val_loss"
    label = "lowest validation loss"

    @staticmethod
    def final(val_loss, target_loss):
        return float(np.min(val_loss))

    @staticmethod
    def running_curve(val_loss):
        return np.fmin.accumulate(np.asarray(val_loss, dtype=float))


@register_objective
class AucValLoss(Objective):
    """The mean validation loss over the epochs (the area under the curve, per epoch)."""

    name = "auc_val_loss"
    label = "mean validation loss over the epochs"

    @staticmethod
    def final(val_loss, target_loss):
        return float(np.mean(val_loss))

    @staticmethod
    def running_curve(val_loss):
        val_loss = np.asarray(val_loss, dtype=float)
        return np.cumsum(val_loss) / np.arange(1, len(val_loss) + 1)


@register_objective
class EpochsToTarget(Objective):
    """The first epoch whose validation loss reaches the target; one epoch more than the budget
    when it never does. The pruner follows the loss, and a pruned trial has no value: a loss
    would mix units with epoch counts."""

    name = "epochs_to_target"
    label = "epochs to the target loss"
    unit = "epochs"
    needs_target = True
    valued_when_pruned = False

    @staticmethod
    def final(val_loss, target_loss):
        reached = epochs_to_target(val_loss, target_loss)
        return float(len(val_loss) + 1 if reached is None else reached)


def objective_value(objective, val_loss: np.ndarray) -> float:
    """The study's objective for a finished curve (lower is better).

    objective: the study's ``ObjectiveSpec`` (name, target_loss).
    """
    return get_objective(objective.name).final(val_loss, objective.target_loss)


def lowest_epoch(val_loss: np.ndarray) -> int | None:
    """The epoch (1-based) of the lowest validation loss: where early stopping would stop."""
    finite = np.asarray(val_loss, dtype=float)
    if not np.isfinite(finite).any():
        return None
    return int(np.nanargmin(np.where(np.isfinite(finite), finite, np.nan))) + 1
