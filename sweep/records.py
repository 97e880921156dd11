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


def objective_value(objective, val_loss: np.ndarray) -> float:
    """The study's objective for a finished curve (lower is better).

    objective: the study's ``ObjectiveSpec`` (name, target_loss).
    """
    if objective.name == "final_val_loss":
        return float(val_loss[-1])
    if objective.name == "min_val_loss":
        return float(np.min(val_loss))
    if objective.name == "auc_val_loss":
        return float(np.mean(val_loss))
    reached = epochs_to_target(val_loss, objective.target_loss)
    # Never reaching the target counts as one epoch more than the budget.
    return float(len(val_loss) + 1 if reached is None else reached)


def running_objective(objective, val_loss_so_far: np.ndarray) -> float:
    """What the pruner is told after an epoch: the objective's value if training stopped now.

    For epochs-to-target the current validation loss stands in (lower is closer).
    """
    if objective.name == "auc_val_loss":
        return float(np.mean(val_loss_so_far))
    if objective.name == "min_val_loss":
        return float(np.min(val_loss_so_far))
    return float(val_loss_so_far[-1])


def lowest_epoch(val_loss: np.ndarray) -> int | None:
    """The epoch (1-based) of the lowest validation loss: where early stopping would stop."""
    finite = np.asarray(val_loss, dtype=float)
    if not np.isfinite(finite).any():
        return None
    return int(np.nanargmin(np.where(np.isfinite(finite), finite, np.nan))) + 1
