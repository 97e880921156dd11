"""Confirmation on fresh seeds, for ``sweep robust``.

A search picks the setting whose networks happened to do best, so its own figure flatters it.
This module trains the search's top settings again on seeds the search never used (on every
fold), all in one vectorised ``train_many`` call, and hands the curves to
:func:`sweep.analysis.robust_candidates`, which says how each holds up and how optimistic the
search's figure was. It trains but writes nothing: the report turns the summary into files.
"""

from __future__ import annotations

import numpy as np

from . import analysis
from .records import TrialRecord
from .search import ARITHMETIC
from .train import train_many

# Mixed into the robust re-training's seeds so they differ from every trial's own seed.
ROBUST_SEED_SALT = 0x0B05


def robust_seeds(study_seed: int, trial_number: int, seeds: int) -> list[int]:
    """``seeds`` fresh, reproducible training seeds for re-training one trial."""
    state = np.random.SeedSequence([study_seed, ROBUST_SEED_SALT, trial_number]).generate_state(
        seeds
    )
    return [int(s & 0x7FFFFFFF) for s in state]


def retrain(spec, chosen: list[TrialRecord], seeds: int) -> list[analysis.RobustCandidate]:
    """Train each setting of ``chosen`` (the search's top trials, in its order) on ``seeds``
    fresh seeds per fold, all in one batch, and summarise how each holds up.

    spec: the study's ``StudySpec`` (data, folds, network, objective). seeds >= 2.
    """
    datasets = spec.datasets()
    per_trial = seeds * len(datasets)
    batch = train_many(
        datasets,
        np.repeat([t.learning_rate for t in chosen], per_trial),
        np.repeat([t.momentum for t in chosen], per_trial),
        [s for t in chosen for s in robust_seeds(spec.seed, t.number, per_trial)],
        dataset_index=np.tile(np.repeat(np.arange(len(datasets)), seeds), len(chosen)),
        hidden=spec.hidden,
        epochs=spec.epochs,
        rule=spec.rule,
        init=spec.init,
        arithmetic=ARITHMETIC,
    )
    k = len(chosen)
    return analysis.robust_candidates(
        chosen,
        batch.val_loss.reshape(k, per_trial, -1),
        batch.diverged_epoch.reshape(k, per_trial),
        spec.objective,
    )
