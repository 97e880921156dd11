"""Limits said before they bite: the memory a batch of trials needs, checked against what the
machine has before any trial of it is written.

A batch trains all its trials' networks at once, so its memory grows with the batch: 400,000
networks once wrote 400,000 RUNNING rows and then died allocating their item orders, and the
next run retried the same batch. :func:`check_batch` refuses such a batch first, with the
figures and the largest batch that fits.

The estimate is an upper bound measured, not derived: peak memory (``tracemalloc``) of whole
``run_study`` batches, over batch sizes, folds, epochs, item counts and network sizes, came
within the per-trial and per-network figures below (``tests/test_limits.py`` checks that the
estimate stays above the measured peak, and within a small multiple of it, as the trainer
changes).
"""

from __future__ import annotations

import math
from pathlib import Path

from .errors import SweepError

# What one trial costs whatever its networks (the search's in-memory mirror of it, its planned
# settings, its stored rows on their way out) and for each epoch (its mean curves and learning
# curve, as arrays and as JSON).
TRIAL_BYTES = 12_000
TRIAL_EPOCH_BYTES = 150
# What one network costs: its generator and run, its curves for each epoch, copies of its
# parameters, and its item orders: the search trains in the compiled kernel, which draws one
# epoch's int32 orders at a time.
NETWORK_BYTES = 5_000
NETWORK_EPOCH_BYTES = 170
PARAMETER_BYTES = 48
TRAIN_ITEM_BYTES = 4
VALIDATION_ITEM_BYTES = 16
# A batch may take this share of the memory available; the rest is for everything else.
USABLE_SHARE = 0.8


def batch_bytes(spec, datasets, trials: int) -> int:
    """An upper bound of the memory (bytes) that training ``trials`` trials of ``spec`` at
    once takes, on the data sets ``datasets`` (``spec.datasets()``, one per fold)."""
    from .network import Layout

    train_items = max(len(d.y_train) for d in datasets)
    validation_items = max(len(d.y_val) for d in datasets)
    parameters = Layout(datasets[0].n_inputs, spec.hidden, int(datasets[0].n_classes)).size
    per_trial = TRIAL_BYTES + TRIAL_EPOCH_BYTES * spec.epochs
    per_network = (
        NETWORK_BYTES
        + NETWORK_EPOCH_BYTES * spec.epochs
        + PARAMETER_BYTES * parameters
        + TRAIN_ITEM_BYTES * train_items * 2
        + VALIDATION_ITEM_BYTES * validation_items
    )
    return trials * (per_trial + spec.networks_per_trial * per_network)


def available_memory() -> int | None:
    """Bytes of memory this process may still take: the system's available memory, or less
    under a control group's limit; None where neither can be read (not Linux)."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    found.append(_cgroup_room())
    found = [room for room in found if room is not None]
    return min(found) if found else None


def _cgroup_room() -> int | None:
    """What this process's control group (v2) may still allocate, or None without a limit."""
    try:
        group = Path("/proc/self/cgroup").read_text().strip().split("::", 1)[1]
        folder = Path("/sys/fs/cgroup") / group.lstrip("/")
        limit = (folder / "memory.max").read_text().strip()
        used = int((folder / "memory.current").read_text())
    except (OSError, ValueError, IndexError):
        return None
    return None if limit == "max" else max(int(limit) - used, 0)


def _gigabytes(n: float) -> str:
    return f"{n / 1e9:.3g} GB" if n >= 1e8 else f"{n / 1e6:.3g} MB"


def check_batch(spec, datasets, trials: int, processes: int = 1) -> None:
    """Refuse (SweepError) a batch of ``trials`` trials whose memory, times ``processes``
    workers each training one, would not fit in what is available; nothing is written before.
    Silent where the available memory cannot be read."""
    available = available_memory()
    if available is None or trials < 1:
        return
    need = batch_bytes(spec, datasets, trials) * processes
    usable = USABLE_SHARE * available
    if need <= usable:
        return
    fits = math.floor(usable / processes / batch_bytes(spec, datasets, 1))
    each = f" in each of {processes} workers" if processes > 1 else ""
    advice = (f"lower batch_size to at most {fits:,}" if fits >= 1
              else "use fewer workers, folds or repeats, or a machine with more memory")
    raise SweepError(
        f"{spec.path}: a batch of {trials:,} trials ({trials * spec.networks_per_trial:,} "
        f"networks){each} needs about {_gigabytes(need)} of memory, more than the "
        f"{_gigabytes(usable)} this machine can give it ({USABLE_SHARE:.0%} of the "
        f"{_gigabytes(available)} available); {advice}"
    )

