"""``make bench``: speed figures measured on this machine.

Trainer: microseconds per item-step of ``train`` (K = 1) and per network-step of ``train_many``
at K = 16 ... 1024 on Iris 4-7-3, with the speed-up per network over K = 1. Each figure is the
best of five repeats, since the minimum is the least noisy estimate of what the code costs. On
a shared machine a busy spell can last a second or more (K = 1 measured 16.8 and 31 us per
item-step minutes apart on the 2-core machine this was built on, and K = 256 0.249 and 0.332
in consecutive runs), so the repeats go round the sizes in turn: each size's five are spread
over the whole run, not bunched into one spell.

Kernel (``sweep.kernel``): microseconds per network-step of ``train_epoch`` plus ``evaluate``
after every epoch, as the trainer evaluates, with the item orders drawn beforehand; beside
the NumPy trainer (``train_many``; at K = 1 that is the per-item loop) on Iris at K = 1 ...
4096 and on a larger shape, 50-32-10 on 2,000 synthetic items at K = 64. The kernel runs on
one thread, and on Numba's threads (all cores) from K = 64.

Floor: what one network-step must cost on one core, whatever the code. Its exp, tanh and log
(H tanh, C exp, one log) at the per-element cost of NumPy's vectorised loops on a large
array (SIMD, the fastest this machine's NumPy has; float32 loops for the float32 floor), plus
its multiply-adds at the rate this machine does them on vectors held in L1: y = y * a + b over
a 2,000-element block, compiled like the kernel (separate multiply and add, no FMA). A
network-step does about 2 I H + 3 H C + 2 P multiply-adds (forward pass I H + H C,
back-propagated error H C, weight steps I H + H C, momentum rule about 2 per parameter). The
floor with all cores is the one-core floor over the core count. It leaves out the softmax's
divisions, the loads of each item and all loop overhead, so no code reaches it.

Around the kernel: ``train_many(arithmetic="compiled")`` against the kernel it wraps at
K = 1024 (the ratio of their times: item orders, the per-epoch bookkeeping and the set-up of
the generators and initial weights, all that the API adds), in float64 and in float32, and
float32 against float64; and the memory a 16,384-network batch adds: in a fresh process, the
peak resident size during the ``train_many`` call over the resident size before it (the
curves add 24 bytes per network per epoch of that).

Search and sampler: ``sweep.bench_search`` (the search end to end) and ``sweep.bench_sampler``
(the batch TPE against Optuna's TPE: quality at equal trial counts, cost per trial).
Answers: ``sweep.bench_answers`` (does the answer hold on four generated CSVs).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import time

import numpy as np

from .network import Layout, initial_block
from .seeding import generators
from .sources import load_dataset
from .train import train_many

KERNEL_SIZES = (1, 16, 64, 256, 1024, 4096)
API_K = 1024
MEMORY_K = 16_384
LARGE_SHAPE = dict(items=2000, inputs=50, classes=10, hidden=32, k=64)


def seconds_taken(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def _hyper_parameters(k: int):
    rng = np.random.default_rng(k)
    return 10 ** rng.uniform(-3, -1, k), rng.uniform(0, 0.9, k)


def trainer_figures(epochs: int = 20, sizes=(1, 16, 64, 256, 1024), repeats: int = 5):
    """Microseconds per network-step of training K Iris 4-7-3 networks for ``epochs`` epochs."""
    iris = load_dataset("iris")
    steps = epochs * len(iris.y_train)
    runs = {}
    for k in sizes:
        rng = np.random.default_rng(k)
        learning_rates = 10 ** rng.uniform(-3, -1, k)
        momenta = rng.uniform(0, 0.9, k)
        runs[k] = lambda k=k, lr=learning_rates, m=momenta: train_many(
            iris, lr, m, np.arange(k), epochs=epochs
        )
    seconds = {k: float("inf") for k in sizes}
    for _ in range(repeats):
        for k, run in runs.items():
            seconds[k] = min(seconds[k], seconds_taken(run))
    return {k: seconds[k] / (steps * k) * 1e6 for k in sizes}


def _kernel_run(dataset, hidden: int, k: int, epochs: int, threads, dtype=np.float64):
    """A function training K networks for ``epochs`` epochs with the kernel, evaluating after
    each; one item order per network, drawn beforehand and used every epoch."""
    from . import kernel

    layout = Layout(dataset.x_train.shape[1], hidden, int(dataset.n_classes))
    learning_rates, momenta = _hyper_parameters(k)
    initial = initial_block(layout, generators(np.arange(k))).astype(dtype)
    n_train, n_val = len(dataset.y_train), len(dataset.y_val)
    # int32 rows, as the loops read them and train_many gives them: no conversion per call.
    orders = np.argsort(np.random.default_rng(k).random((k, n_train)), axis=1).astype(np.int32)
    train_counts, val_counts = np.full(k, n_train), np.full(k, n_val)
    val_rows = np.ascontiguousarray(np.broadcast_to(np.arange(n_val, dtype=np.int32), (k, n_val)))
    x_train = dataset.x_train.astype(dtype)

    def run():
        weights, memory = initial.copy(), np.zeros_like(initial)
        for _ in range(epochs):
            kernel.train_and_evaluate(
                layout, weights, memory, learning_rates, momenta, "seed", x_train,
                dataset.y_train, orders, train_counts, dataset.x_val, dataset.y_val, val_rows,
                val_counts, threads=threads,
            )

    return run


def _interleaved_best(runs: dict, repeats: int) -> dict:
    """Best seconds of each run, the repeats going round the runs in turn (see above)."""
    for run in runs.values():
        run()  # compiles, or loads the compiled code from the cache
    seconds = {key: float("inf") for key in runs}
    for _ in range(repeats):
        for key, run in runs.items():
            seconds[key] = min(seconds[key], seconds_taken(run))
    return seconds


def kernel_figures(epochs: int = 20, sizes=KERNEL_SIZES, repeats: int = 5):
    """Microseconds per network-step on Iris: {(path, K): figure}, path "numpy", "kernel 1
    thread" or "kernel"; the kernel with ``default_threads(K)``."""
    from .kernel import default_threads

    iris = load_dataset("iris")
    runs = {}
    for k in sizes:
        learning_rates, momenta = _hyper_parameters(k)
        numpy_epochs = max(1, min(epochs, 20_000 // k))  # K = 4096: a second a run is enough
        runs["numpy", k] = (
            (
                lambda k=k, lr=learning_rates, m=momenta, e=numpy_epochs: train_many(
                    iris, lr, m, np.arange(k), epochs=e
                )
            ),
            numpy_epochs,
        )
        runs["kernel 1 thread", k] = _kernel_run(iris, 7, k, epochs, threads=1), epochs
        if default_threads(k) > 1:
            runs["kernel", k] = _kernel_run(iris, 7, k, epochs, threads=None), epochs
    seconds = _interleaved_best({key: run for key, (run, _) in runs.items()}, repeats)
    n_train = len(iris.y_train)
    figures = {key: seconds[key] / (runs[key][1] * n_train * key[1]) * 1e6 for key in runs}
    for k in sizes:
        figures.setdefault(("kernel", k), figures["kernel 1 thread", k])
    return figures


def api_figures(epochs: int = 20, k: int = API_K, repeats: int = 5) -> dict:
    """Seconds of ``train_many(arithmetic="compiled")`` and of its kernel alone (orders drawn
    beforehand), K Iris networks, float64 and float32: {(path, dtype name): best seconds}."""
    iris = load_dataset("iris")
    learning_rates, momenta = _hyper_parameters(k)
    runs = {}
    for dtype in (np.float64, np.float32):
        name = np.dtype(dtype).name
        runs["train_many", name] = lambda dtype=dtype: train_many(
            iris, learning_rates, momenta, np.arange(k), epochs=epochs, dtype=dtype,
            arithmetic="compiled")
        runs["kernel", name] = _kernel_run(iris, 7, k, epochs, threads=None, dtype=dtype)
    return _interleaved_best(runs, repeats)


def _status_megabytes(field: str) -> float | None:
    """A size from Linux's /proc/self/status (VmRSS: resident now; VmHWM: its peak), or None."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Start VmHWM afresh from the resident size now (Linux: clear_refs 5); False if not."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def _lifetime_peak_megabytes() -> float:
    """The process's peak resident size since it started (getrusage: bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def batch_memory(k: int = MEMORY_K, epochs: int = 20) -> tuple[float, float]:
    """(MB, seconds): what ``train_many(arithmetic="compiled")`` of K Iris networks adds to the
    resident size at its peak, over the resident size before the call, after a small warm-up
    batch (imports and compiled code are not counted). Where the peak cannot be reset (not
    Linux), an earlier higher peak would hide it: run it in a fresh process (``memory_figures``).
    """
    iris = load_dataset("iris")
    learning_rates, momenta = _hyper_parameters(k)
    train_many(iris, learning_rates[:64], momenta[:64], np.arange(64), epochs=1,
               arithmetic="compiled")
    before = _status_megabytes("VmRSS")
    fresh_peak = before is not None and _reset_peak()
    if not fresh_peak:
        before = _lifetime_peak_megabytes()
    took = seconds_taken(lambda: train_many(iris, learning_rates, momenta, np.arange(k),
                                            epochs=epochs, arithmetic="compiled"))
    peak = _status_megabytes("VmHWM") if fresh_peak else _lifetime_peak_megabytes()
    return peak - before, took


def memory_figures(k: int = MEMORY_K, epochs: int = 20) -> tuple[float, float]:
    """``batch_memory`` in a fresh process, so that no earlier peak hides this one's."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(batch_memory, (k, epochs))


def large_shape_figures(epochs: int = 2, repeats: int = 3):
    """Microseconds per network-step on the larger shape, NumPy and kernel."""
    shape = LARGE_SHAPE
    data = load_dataset(
        "synthetic", items=shape["items"], inputs=shape["inputs"], classes=shape["classes"]
    )
    k, hidden = shape["k"], shape["hidden"]
    learning_rates, momenta = _hyper_parameters(k)
    runs = {
        "numpy": lambda: train_many(
            data, learning_rates, momenta, np.arange(k), hidden=hidden, epochs=epochs
        ),
        "kernel 1 thread": _kernel_run(data, hidden, k, epochs, threads=1),
        "kernel": _kernel_run(data, hidden, k, epochs, threads=None),
    }
    seconds = _interleaved_best(runs, repeats)
    return {key: value / (epochs * len(data.y_train) * k) * 1e6 for key, value in seconds.items()}


def _multiply_add_seconds(block: int = 2000, rounds: int = 20_000) -> float:
    """Seconds per multiply-add of y = y * a + b on L1-resident float64 vectors, one core,
    compiled as the kernel is (no fast-math: a multiply and an add)."""
    from numba import njit

    @njit(fastmath=False, error_model="numpy")
    def multiply_adds(y, a, b, rounds):
        for _ in range(rounds):
            for i in range(y.size):
                y[i] = y[i] * a[i] + b[i]

    y, a, b = np.zeros(block), np.full(block, 0.5), np.full(block, 0.25)
    multiply_adds(y, a, b, 1)
    best = min(seconds_taken(lambda: multiply_adds(y, a, b, rounds)) for _ in range(5))
    return best / (block * rounds)


def _per_element_seconds(function, dtype, size: int = 1 << 16, calls: int = 200) -> float:
    """Seconds per element of a NumPy ufunc over a large array (in L2), best of five."""
    values = np.random.default_rng(0).uniform(0.1, 2.0, size).astype(dtype)
    out = np.empty_like(values)

    def run():
        for _ in range(calls):
            function(values, out=out)

    return min(seconds_taken(run) for _ in range(5)) / (size * calls)


def floor_figures(layout: Layout) -> dict:
    """One-core floor of a network-step of ``layout``, us, float64 and float32 (see above)."""
    multiply_add = _multiply_add_seconds()
    n_i, n_h, n_c = layout.n_inputs, layout.n_hidden, layout.n_outputs
    multiply_adds = 2 * n_i * n_h + 3 * n_h * n_c + 2 * layout.size
    floors = {}
    for dtype in (np.float64, np.float32):
        transcendentals = (
            n_h * _per_element_seconds(np.tanh, dtype)
            + n_c * _per_element_seconds(np.exp, dtype)
            + _per_element_seconds(np.log, dtype)
        )
        # float32 vectors hold twice the lanes: half the multiply-add time.
        scale = 1.0 if dtype == np.float64 else 0.5
        floors[np.dtype(dtype).name] = (
            transcendentals + scale * multiply_adds * multiply_add
        ) * 1e6
    return floors


def _cores() -> int:
    from numba import config

    return config.NUMBA_NUM_THREADS


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sweep.bench", description=__doc__)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--skip-search", action="store_true", help="trainer figures only")
    parser.add_argument("--skip-kernel", action="store_true", help="no compiled-kernel figures")
    parser.add_argument("--skip-sampler", action="store_true",
                        help="no batch TPE against Optuna's TPE (quality and cost)")
    parser.add_argument("--skip-answers", action="store_true",
                        help="no check of the answers on four generated CSVs (about 3 minutes)")
    args = parser.parse_args(argv)

    print(f"Trainer: Iris 4-7-3, {args.epochs} epochs x 120 items, seed rule, float64")
    figures = trainer_figures(args.epochs)
    single = figures[1]
    print(f"  train (K = 1): {single:8.2f} us per item-step")
    for k, micros in figures.items():
        if k > 1:
            print(
                f"  train_many K = {k:4d}: {micros:8.3f} us per network-step  "
                f"({single / micros:5.1f}x K = 1)"
            )
    if not args.skip_search:
        from .bench_search import main as search_main

        search_main([])  # not sys.argv: its options are this parser's
    if not args.skip_kernel:
        print_kernel_figures(args.epochs)
    if not args.skip_sampler:
        from .bench_sampler import main as sampler_main

        sampler_main([])
    if not args.skip_answers:
        from .bench_answers import main as answers_main

        answers_main([])


def _versus(micros: float, numpy_micros: float, floor: float) -> str:
    """A kernel figure with its speed-up over the NumPy path and its ratio to the floor."""
    return f"{micros:8.4f} ({numpy_micros / micros:5.1f}x NumPy, {micros / floor:4.2f}x floor)"


def print_kernel_figures(epochs: int) -> None:
    from .kernel import default_threads

    cores = _cores()
    floors = floor_figures(Layout(4, 7, 3))
    floor = floors["float64"]
    print(
        f"\nKernel: sweep.kernel, Iris 4-7-3, {epochs} epochs, seed rule, float64, evaluation "
        f"after every epoch; {cores} cores ({os.cpu_count()} CPUs)"
    )
    print(
        f"  floor, one core: {floor:.4f} us per network-step (float32 {floors['float32']:.4f}); "
        f"all cores: {floor / cores:.4f}"
    )
    figures = kernel_figures(epochs)
    print("       K   NumPy us   kernel, 1 thread                        kernel, default threads")
    for k in KERNEL_SIZES:
        numpy_micros = figures["numpy", k]
        one = _versus(figures["kernel 1 thread", k], numpy_micros, floor)
        threads = default_threads(k)
        default = _versus(figures["kernel", k], numpy_micros, floor / threads)
        print(f"  {k:6d}  {numpy_micros:9.3f}   {one}   {default} on {threads}")
    shape = LARGE_SHAPE
    layout = Layout(shape["inputs"], shape["hidden"], shape["classes"])
    large_floor = floor_figures(layout)["float64"]
    large = large_shape_figures()
    print(
        f"  larger shape {shape['inputs']}-{shape['hidden']}-{shape['classes']}, "
        f"{shape['items']} synthetic items, K = {shape['k']}: NumPy {large['numpy']:.3f} us, "
        f"floor {large_floor:.3f} one core"
    )
    one_thread = _versus(large["kernel 1 thread"], large["numpy"], large_floor)
    print(f"    kernel, 1 thread:     {one_thread}")
    print(
        f"    kernel, all cores:    "
        f"{_versus(large['kernel'], large['numpy'], large_floor / default_threads(shape['k']))}"
    )
    print_api_figures(epochs)


def print_api_figures(epochs: int) -> None:
    seconds = api_figures(epochs)
    steps = epochs * 120 * API_K
    print(f"\nAround the kernel: train_many(arithmetic=\"compiled\"), Iris, K = {API_K}, "
          f"{epochs} epochs, default threads")
    for name in ("float64", "float32"):
        api, alone = seconds["train_many", name], seconds["kernel", name]
        print(f"  {name}: train_many {api / steps * 1e6:.4f} us per network-step, its kernel "
              f"{alone / steps * 1e6:.4f}: {api / alone:.3f}x the kernel")
    print(f"  float32 against float64: kernel "
          f"{seconds['kernel', 'float64'] / seconds['kernel', 'float32']:.2f}x as fast, "
          f"train_many {seconds['train_many', 'float64'] / seconds['train_many', 'float32']:.2f}x")
    added, took = memory_figures(MEMORY_K, epochs)
    print(f"  a {MEMORY_K:,}-network batch ({epochs} epochs, {took:.1f} s) adds {added:.0f} MB "
          f"at its peak; its curves take 24 B per network per epoch of that")


if __name__ == "__main__":
    main()
