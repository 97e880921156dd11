"""momentum-sweep: find a network's learning rate and momentum by systematic trial and error.

Public API: ``load_dataset`` (Iris, synthetic, or a CSV), ``train`` (one network) and
``train_many`` (K networks at once, vectorised across trials).
"""

from .data import DataError, Dataset, load_dataset
from .train import Batch, EpochReport, Run, train, train_many

__all__ = [
    "Batch",
    "DataError",
    "Dataset",
    "EpochReport",
    "Run",
    "load_dataset",
    "train",
    "train_many",
]
