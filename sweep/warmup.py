"""Compiling the kernel's loops ahead, in a process of their own.

After an install, or an edit of the kernel or of a rule's formula, each rule's training loop is
compiled on its first use, about 8 s of one core each, and the evaluation loop 4 s more, while
the other core has nothing to do. A run of several studies with different rules (``make
sweep``: three) would compile them one after another. Within :func:`compile_ahead`, once this
process starts compiling a loop (the sign that the disk cache is cold), one more process
compiles the evaluation loop and the later rules' training loops into the same disk cache, in
the order they will be needed, by one tiny use of each through the kernel as the trainer calls
it; this process's first use of such a loop waits for that process and loads it from the
cache. With a warm cache nothing is started.

The numbers do not change: the loops are the same code either way. Should the other process
fail or be cut off, this one compiles what it still needs itself, as it would have.
"""

from __future__ import annotations

import contextlib
import os
import signal

import numpy as np

# How often a wait for the other process checks that it is still alive.
ALIVE_CHECK_SECONDS = 0.5


@contextlib.contextmanager
def compile_ahead(rules):
    """Within the context, the evaluation loop and the training loops of ``rules`` but the
    first (in the order they will train; the first rule's loop is this process's to compile)
    are compiled by another process once this one first compiles a loop."""
    from . import kernel

    loops = [kernel.EVALUATION, *list(dict.fromkeys(rules))[1:]]
    started = []

    def start() -> None:
        from multiprocessing import get_context

        context = get_context("spawn")  # Numba and threads: never fork
        done = {loop: context.Event() for loop in loops}
        process = context.Process(target=_compile_loops, daemon=True,
                                  args=([(loop, done[loop]) for loop in loops],))
        process.start()
        started.append(process)
        for loop in loops:
            kernel.compiled_elsewhere(loop, lambda event=done[loop]: _wait(event, process))
        names = " and ".join(["the evaluation loop", *(f"the {rule} training loop"
                                                       for rule in loops[1:])])
        kernel.say_compiling(f"{names} alongside, in another process")

    kernel.on_cold_cache(start)
    try:
        yield
    finally:
        kernel.on_cold_cache(None)
        for loop in loops:
            kernel.compiled_elsewhere(loop, None)
        for process in started:  # a compile still under way is of no more use
            process.terminate()
            process.join()


def _wait(event, process) -> None:
    """Until ``event`` is set, or its process has ended without setting it."""
    while not event.wait(ALIVE_CHECK_SECONDS):
        if not process.is_alive():
            return


def _compile_loops(jobs) -> None:
    """In the compiling process: each loop, by one tiny use, then its event."""
    from . import kernel
    from .network import Layout

    os.environ[kernel.QUIET_ENV] = "1"  # the main process says what is compiling
    # Ctrl-C in the terminal reaches this process too: the main one ends it, with no traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Two networks (the many-network loops, as a search's batches use them) of one item each,
    # float64, orders drawn in the loop: the argument types the trainer's epochs pass.
    layout = Layout(1, 1, 2)
    weights = np.zeros((layout.size, 2))
    x_table, y_table, counts = np.zeros((1, 1)), np.zeros(1, np.int64), [1, 1]
    for loop, done in jobs:
        try:
            if loop == kernel.EVALUATION:
                kernel.evaluate(layout, weights, x_table, y_table, np.zeros((2, 1), np.int32),
                                counts)
            else:
                shuffles = kernel.Shuffles([np.random.default_rng(0)] * 2, [0, 0], counts)
                kernel.train_epoch(layout, weights, np.zeros_like(weights), np.full(2, 0.01),
                                   np.full(2, 0.5), loop, x_table, y_table, shuffles, counts)
        finally:
            done.set()
