"""Re-training a study's top trials on fresh seeds, for ``sweep robust``.

The best trial of a search is partly a lucky seed. This module trains each of the top trials
again with seeds the search never used, all in one vectorised ``train_many`` call, and hands the
curves to :func:`sweep.analysis.robust_candidates` to rank. It trains but writes nothing: the
report turns the ranking into files.
"""

from __future__ import annotations

import numpy as np

from . import analysis
from .records import TrialRecord
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
    """Train each trial of ``chosen`` with ``seeds`` fresh seeds (one batch) and rank them,
    most robust first (see :attr:`sweep.analysis.RobustCandidate.rank_key`).

    spec: the study's ``StudySpec`` (data, network, objective). seeds >= 2.
    """
    batch = train_many(
        spec.data.load(),
        np.repeat([t.learning_rate for t in chosen], seeds),
        np.repeat([t.momentum for t in chosen], seeds),
        [s for t in chosen for s in robust_seeds(spec.seed, t.number, seeds)],
        hidden=spec.hidden,
        epochs=spec.epochs,
        rule=spec.rule,
        init=spec.init,
    )
    k = len(chosen)
    return analysis.robust_candidates(
        chosen,
        batch.val_loss.reshape(k, seeds, -1),
        batch.diverged_epoch.reshape(k, seeds),
        spec.objective,
    )
