"""momentum-sweep: find a network's learning rate and momentum by systematic trial and error.

Public API: ``load_dataset`` (Iris, synthetic, correlated, or a CSV), ``train`` (one network),
``train_many`` (K networks at once, vectorised across trials) and ``measure`` (a setting
measured the way a study confirms its answer).

The names load on first use (PEP 562), so ``import sweep.cli`` and ``sweep --help`` do not pay
for pandas and the trainer.
"""

import sys
import types
from importlib import import_module

# Public name -> the module that defines it.
_PUBLIC = {
    "DataError": ".data",
    "Dataset": ".data",
    "load_dataset": ".sources",
    "load_folds": ".sources",
    "measure": ".confirm",
    "Measurement": ".confirm",
    "Batch": ".train",
    "EpochReport": ".train",
    "Run": ".train",
    "train": ".train",
    "train_many": ".train",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name == "__version__":
        return _version()
    if name not in _PUBLIC:
        raise AttributeError(f"module 'sweep' has no attribute {name!r}")
    value = getattr(import_module(_PUBLIC[name], __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted({*globals(), *_PUBLIC})


class _Package(types.ModuleType):
    # Importing the submodule sweep.train binds the package's attribute ``train`` to that module;
    # the public name is the function, as it was when this file imported it eagerly.
    def __setattr__(self, name, value):
        if name in _PUBLIC and isinstance(value, types.ModuleType) and hasattr(value, name):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def _version() -> str:
    """The installed package's version (pyproject.toml's), or "unknown" outside an install."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("momentum-sweep")
    except PackageNotFoundError:
        return "unknown"
