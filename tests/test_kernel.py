"""The compiled kernel against the NumPy trainer, and the exactness it promises."""

import re

import llvmlite.binding as llvm
import numba
import numpy as np
import pytest
from numba.extending import overload

import sweep
from sweep import kernel
from sweep.engines import draw_orders
from sweep.network import Layout, evaluate, initial_block
from sweep.rules import rule_names
from sweep.seeding import generators
from sweep.train import train_many


@pytest.fixture(scope="module")
def iris():
    return sweep.load_dataset("iris")


# ---------------------------------------------------------------- the rule step


def _compiled_step(rule):
    """The kernel's step of ``rule`` for weight 0 of lane 0, as its loops compile it: the rule's
    key a constant of the compiled function."""
    key = kernel.rule_key(rule)

    @numba.njit
    def step(weights, memory, sgd_step, momentum):
        kernel._rule_step(key, weights, memory, 0, 0, sgd_step, momentum)

    return step


def test_the_articles_worked_example_gives_3_609():
    # The article: w = 3.56, learning rate 0.01, gradient 2.70 (downhill), momentum 0.50 and a
    # previous delta of 0.044 give 3.56 + 0.027 + 0.022 = 3.609.
    weights, prev_delta = np.array([[3.56]]), np.array([[0.044]])
    downhill_gradient = 2.70
    _compiled_step("seed")(weights, prev_delta, 0.01 * downhill_gradient, 0.50)
    assert weights[0, 0] == pytest.approx(3.609, abs=1e-12)
    assert prev_delta[0, 0] == pytest.approx(0.027, abs=1e-15)


# ---------------------------------------------------------------- exp, log, tanh


@numba.njit
def _apply(function, values):
    out = np.empty_like(values)
    for i in range(values.size):
        out[i] = function(values[i])
    return out


def _ulps_apart(got, want):
    """Distance in units in the last place: 0 where both are NaN, inf where the signs differ
    (a zero of the wrong sign included)."""
    bits = np.int64 if got.dtype == np.float64 else np.int32
    distance = np.abs(got.view(bits).astype(np.int64) - want.view(bits).astype(np.int64)).astype(
        float
    )
    distance[np.signbit(got) != np.signbit(want)] = np.inf
    distance[np.isnan(got) & np.isnan(want)] = 0
    return distance


SPECIAL = np.array(
    [
        0.0,
        -0.0,
        np.inf,
        -np.inf,
        np.nan,
        5e-324,
        -5e-324,
        1e-310,
        -1e-310,
        2.2250738585072014e-308,
        1e-300,
        -1e-300,
        1.7976931348623157e308,
        -1.7976931348623157e308,
        1.0,
        -1.0,
    ]
)


def _wide_inputs(name, rng):
    if name == "exp":  # everything from underflow through subnormal results to overflow
        return np.concatenate(
            [
                rng.uniform(-760, 720, 1_000_000),
                rng.normal(0, 1, 500_000),
                rng.uniform(-746, -707, 200_000),
                10.0 ** rng.uniform(-300, 0, 200_000),
            ]
        )
    if name == "log":  # subnormals to the largest float64
        return np.concatenate(
            [
                10.0 ** rng.uniform(-323, 308, 1_000_000),
                rng.uniform(0.5, 2, 500_000),
                1 + rng.normal(0, 1e-6, 200_000),
            ]
        )
    return np.concatenate(
        [
            rng.normal(0, 1, 1_000_000),
            rng.uniform(-30, 30, 500_000),  # tanh
            np.sign(rng.normal(size=300_000)) * 10.0 ** rng.uniform(-320, 3, 300_000),
        ]
    )


@pytest.mark.parametrize("name", ["exp", "log", "tanh"])
def test_function_is_within_2_ulp_of_numpys_on_wide_random_inputs(name):
    values = _wide_inputs(name, np.random.default_rng(13))
    with np.errstate(all="ignore"):
        got, want = _apply(getattr(kernel, name), values), getattr(np, name)(values)
    assert _ulps_apart(got, want).max() <= 2


@pytest.mark.parametrize("name", ["exp", "log", "tanh"])
def test_function_gives_numpys_special_values_bit_for_bit(name):
    with np.errstate(all="ignore"):
        got, want = _apply(getattr(kernel, name), SPECIAL), getattr(np, name)(SPECIAL)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    finite_or_inf = ~np.isnan(want)
    assert np.array_equal(np.signbit(got[finite_or_inf]), np.signbit(want[finite_or_inf]))
    assert _ulps_apart(got, want).max() <= 1


SPECIAL_FLOAT32 = np.array(
    [
        0.0,
        -0.0,
        np.inf,
        -np.inf,
        np.nan,
        1e-45,  # the smallest subnormal
        -1e-45,
        1e-40,
        -1e-40,
        1.1754944e-38,  # the smallest normal
        1e-30,
        -1e-30,
        3.4028235e38,  # the largest float32
        -3.4028235e38,
        1.0,
        -1.0,
        0.625,  # where tanh32 changes formula
        -0.625,
        88.72,  # exp32 overflows just above
        -103.9,  # exp32's smallest subnormal result
    ],
    dtype=np.float32,
)


def _wide_float32_inputs(name, rng):
    if name == "exp":  # underflow through subnormal results to overflow
        values = [rng.uniform(-110, 95, 1_000_000), rng.normal(0, 1, 500_000),
                  rng.uniform(-104, -85, 300_000)]
    elif name == "log":  # subnormals to the largest float32, and around 1
        values = [10.0 ** rng.uniform(-45, 38.5, 1_000_000), rng.uniform(0.5, 2, 500_000),
                  1 + rng.normal(0, 1e-3, 300_000)]
    else:
        values = [rng.normal(0, 1, 1_000_000), rng.uniform(-12, 12, 500_000),
                  np.sign(rng.normal(size=300_000)) * 10.0 ** rng.uniform(-45, 2, 300_000)]
    return np.concatenate(values).astype(np.float32)


@pytest.mark.parametrize("name", ["exp", "log", "tanh"])
def test_float32_function_is_within_1_ulp_of_the_rounded_float64_and_4_of_numpys_float32(name):
    # The float32 functions compute in float32 throughout, yet stay within 1 ulp of NumPy's
    # float64 result rounded to float32. NumPy's own float32 loops are less exact (its float32
    # log is off by up to 4 ulp from the rounded value here), hence the wider bound against them.
    with np.errstate(all="ignore"):
        values = _wide_float32_inputs(name, np.random.default_rng(14))
        got = _apply(getattr(kernel, f"{name}32"), values)
        rounded = getattr(np, name)(values.astype(np.float64)).astype(np.float32)
        numpys_float32 = getattr(np, name)(values)
    assert got.dtype == np.float32
    assert _ulps_apart(got, rounded).max() <= 1
    assert _ulps_apart(got, numpys_float32).max() <= 4


@pytest.mark.parametrize("name", ["exp", "log", "tanh"])
def test_float32_function_gives_numpys_special_values(name):
    with np.errstate(all="ignore"):
        got = _apply(getattr(kernel, f"{name}32"), SPECIAL_FLOAT32)
        want = getattr(np, name)(SPECIAL_FLOAT32.astype(np.float64)).astype(np.float32)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    finite_or_inf = ~np.isnan(want)
    assert np.array_equal(np.signbit(got[finite_or_inf]), np.signbit(want[finite_or_inf]))
    assert _ulps_apart(got, want).max() <= 1


# ---------------------------------------------------------------- no fused multiply-add


def _in_dtype(function64, function32):
    """A function for compiled code that is ``function64`` of a float64 and ``function32`` of
    a float32, as the training loop picks the kernel's exp, log or tanh by its dtype."""

    def function(x):
        raise NotImplementedError("compiled code only")

    @overload(function, inline="always")
    def typed(x):
        return (lambda x: function32(x)) if x == numba.types.float32 else (lambda x: function64(x))

    return function


EXP_IN_DTYPE = _in_dtype(kernel.exp, kernel.exp32)
LOG_IN_DTYPE = _in_dtype(kernel.log, kernel.log32)
TANH_IN_DTYPE = _in_dtype(kernel.tanh, kernel.tanh32)


def _compiled_assembly(dtype, **options):
    @numba.njit(error_model="numpy", **options)
    def multiply_adds(a, b, c, out):
        for i in range(a.size):
            out[i] = TANH_IN_DTYPE(a[i] * b[i] + c[i]) + EXP_IN_DTYPE(a[i]) * LOG_IN_DTYPE(b[i])

    arrays = [np.ones(64, dtype) for _ in range(4)]
    multiply_adds(*arrays)
    return multiply_adds.inspect_asm(multiply_adds.signatures[0])


@pytest.mark.skipif(
    "fma" not in llvm.get_host_cpu_features().flatten(),
    reason="the check needs a CPU with fused multiply-add",
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_llvm_fuses_no_multiply_and_add_without_fastmath(dtype):
    fused = re.compile(r"\bv?fn?m(add|sub)\w*")
    # The check can see a fused multiply-add: with the contract flag LLVM makes them here.
    assert fused.search(_compiled_assembly(dtype, fastmath={"contract"}))
    assert not fused.search(_compiled_assembly(dtype, fastmath=False))


# ---------------------------------------------------------------- item orders


def _generators_in_many_states(seeds):
    """default_rng(seed) for each seed, each having drawn a few doubles first, and every other
    one an odd number of 32-bit draws, so that it keeps the high half of its last output."""
    drawn = generators(seeds)
    for generator, seed in zip(drawn, seeds):
        generator.random(int(seed % 5))
        if seed % 2:
            generator.random(1, dtype=np.float32)
    return drawn


def _assert_shuffles_draw_what_numpy_draws(seeds, lengths, epochs, threads):
    first_rows = np.random.default_rng(len(seeds)).integers(0, 1000, len(seeds))
    shuffles = kernel.Shuffles(_generators_in_many_states(seeds), first_rows, lengths)
    numpys = draw_orders(_generators_in_many_states(seeds), lengths.tolist(), epochs)
    for epoch in range(epochs):
        drawn = shuffles.draw(threads=threads)
        for k, n_items in enumerate(lengths):
            assert np.array_equal(drawn[k, :n_items] - first_rows[k], numpys[epoch, k, :n_items]), (
                f"seed {seeds[k]}, {n_items} items, epoch {epoch + 1}")


@pytest.mark.parametrize("threads", [1, 2])
def test_shuffles_draw_numpys_permuted_orders_bit_for_bit_over_many_seeds_and_lengths(threads):
    rng = np.random.default_rng(21 + threads)
    seeds = np.concatenate([[0, 1, 2**63 - 1], rng.integers(0, 2**63, 3000)])
    # Every length to 300, and around the powers of two, where random_interval's mask halves.
    lengths = np.concatenate([np.arange(1, 301), rng.integers(1, 300, len(seeds) - 300)])
    lengths[:12] = [1, 2, 3, 4, 5, 8, 9, 16, 17, 256, 257, 1024]
    _assert_shuffles_draw_what_numpy_draws(seeds, lengths, epochs=4, threads=threads)


def test_shuffles_draw_numpys_orders_of_long_rows_too():
    lengths = np.array([2**16, 2**16 + 1, 100_003, 3])
    _assert_shuffles_draw_what_numpy_draws(np.array([5, 6, 7, 8]), lengths, epochs=2, threads=1)


def test_shuffles_leave_the_generators_alone_and_keep_only_the_networks_kept():
    drawn = generators([3, 4, 5])
    shuffles = kernel.Shuffles(drawn, [0, 10, 20], [10, 10, 5])
    before = [generator.bit_generator.state for generator in drawn]
    shuffles.draw()
    assert [generator.bit_generator.state for generator in drawn] == before
    shuffles.keep(np.array([0, 2]))
    numpys = draw_orders(drawn, [10, 10, 5], 2)[1]  # each generator's second epoch
    kept = shuffles.draw()
    np.testing.assert_array_equal(kept[0], numpys[0])
    np.testing.assert_array_equal(kept[1, :5] - 20, numpys[2, :5])


def test_shuffles_refuse_a_generator_that_is_not_pcg64_and_rows_outside_the_table(iris):
    with pytest.raises(ValueError, match="MT19937"):
        kernel.Shuffles([np.random.Generator(np.random.MT19937(1))], [0], [5])
    layout = Layout(4, 7, 3)
    weights = np.zeros((layout.size, 2))
    shuffles = kernel.Shuffles(generators([1, 2]), [0, len(iris.y_train) - 3], [5, 5])
    with pytest.raises(ValueError, match="network 1"):
        kernel.train_epoch(layout, weights, np.zeros_like(weights), [0.1, 0.1], [0.0, 0.0],
                           "seed", iris.x_train, iris.y_train, shuffles, [5, 5])


# ---------------------------------------------------------------- against train_many


def _kernel_ufunc(function):
    """A NumPy ufunc computing the kernel's ``function`` (its exp, log or tanh in each dtype)
    as the kernel does: with it in place of NumPy's own, train_many and the kernel share every
    operation, in float32 too."""
    # float32 first: NumPy takes the first loop its inputs cast to safely.
    return numba.vectorize(["float32(float32)", "float64(float64)"])(
        lambda value: function(value)
    )


@pytest.fixture(scope="module")
def kernel_functions():
    return {
        "exp": _kernel_ufunc(EXP_IN_DTYPE),
        "log": _kernel_ufunc(LOG_IN_DTYPE),
        "tanh": _kernel_ufunc(TANH_IN_DTYPE),
    }


def _setting(dataset, hidden, n_networks, epochs, seed, largest_learning_rate=30.0):
    rng = np.random.default_rng(seed)
    layout = Layout(dataset.x_train.shape[1], hidden, int(dataset.n_classes))
    learning_rates = 10 ** rng.uniform(-3, np.log10(largest_learning_rate), n_networks)
    momenta = rng.uniform(0, 0.95, n_networks)
    weights = initial_block(layout, generators(np.arange(n_networks) + seed))
    orders = np.argsort(rng.random((n_networks, epochs, len(dataset.y_train))), axis=2)
    return layout, learning_rates, momenta, weights, orders


def _kernel_run(
    dataset, layout, learning_rates, momenta, weights, orders, rule, dtype=np.float64, **options
):
    """The kernel driven epoch by epoch as train_many drives its trainer: curves (K, epochs)
    and the weights after each epoch (epochs, P, K)."""
    n_networks, epochs, n_train = orders.shape
    weights = weights.astype(dtype)
    memory = np.zeros_like(weights)
    x_train = dataset.x_train.astype(dtype)
    val_rows = np.broadcast_to(np.arange(len(dataset.y_val)), (n_networks, len(dataset.y_val)))
    train_counts, val_counts = np.full(n_networks, n_train), np.full(n_networks, len(dataset.y_val))
    curves = np.empty((3, n_networks, epochs))
    history = np.empty((epochs, *weights.shape))
    for epoch in range(epochs):
        log_likelihood = kernel.train_epoch(
            layout,
            weights,
            memory,
            learning_rates,
            momenta,
            rule,
            x_train,
            dataset.y_train,
            orders[:, epoch],
            train_counts,
            **options,
        )
        curves[0, :, epoch] = -log_likelihood / n_train
        curves[1:, :, epoch] = kernel.evaluate(
            layout, weights, dataset.x_val, dataset.y_val, val_rows, val_counts, **options
        )
        history[epoch] = weights
    return curves, history


def _compare_until_stopped(batch, curves, history, rtol):
    """Each network's curves up to the epoch train_many stopped it, and its weights then."""
    epochs = curves.shape[2]
    for k in range(len(batch)):
        last = batch.diverged_epoch[k] or epochs
        for got, want in zip(curves, (batch.train_loss, batch.val_loss, batch.val_accuracy)):
            np.testing.assert_allclose(got[k, :last], want[k, :last], rtol=rtol, atol=0)
        np.testing.assert_allclose(
            history[last - 1][:, k], batch.final_parameters[:, k], rtol=rtol, atol=0
        )


SHAPES = [  # (items, inputs, classes, hidden)
    ("iris", None, None, 7),
    (60, 3, 3, 1),
    (80, 5, 4, 9),
    (120, 6, 10, 7),
]


def _dataset(shape):
    items, inputs, classes, hidden = shape
    if items == "iris":
        return sweep.load_dataset("iris"), hidden
    return sweep.load_dataset(
        "synthetic", items=items, inputs=inputs, classes=classes, seed=3
    ), hidden


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("rule", rule_names())
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}-{s[1]}-{s[2]}-h{s[3]}")
def test_kernel_equals_train_many_bit_for_bit_given_the_same_exp_log_tanh(
    shape, rule, dtype, kernel_functions, monkeypatch
):
    # Learning rates up to 30 make some networks diverge; they are compared up to the epoch
    # train_many stops them, divergence epoch included.
    dataset, hidden = _dataset(shape)
    layout, learning_rates, momenta, weights, orders = _setting(dataset, hidden, 12, 4, seed=1)
    for name, ufunc in kernel_functions.items():
        monkeypatch.setattr(np, name, ufunc)
    batch = train_many(
        dataset,
        learning_rates,
        momenta,
        np.arange(12),
        hidden=hidden,
        epochs=4,
        rule=rule,
        initial_weights=weights,
        orders=orders,
        dtype=dtype,
    )
    monkeypatch.undo()
    assert batch.diverged_epoch.any() and not batch.diverged_epoch.all()
    curves, history = _kernel_run(
        dataset,
        layout,
        learning_rates.astype(dtype),
        momenta.astype(dtype),
        weights,
        orders,
        rule,
        dtype,
    )
    _compare_until_stopped(batch, curves, history, rtol=0)


@pytest.mark.parametrize("rule", rule_names())
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}-{s[1]}-{s[2]}-h{s[3]}")
def test_kernel_agrees_with_train_many_using_numpys_own_functions(shape, rule):
    # NumPy's exp, log and tanh differ from the kernel's by an ulp here and there; learning
    # rates below divergence keep that from growing past 1e-12 in a few epochs.
    dataset, hidden = _dataset(shape)
    layout, learning_rates, momenta, weights, orders = _setting(
        dataset, hidden, 8, 3, seed=2, largest_learning_rate=0.03
    )
    batch = train_many(
        dataset,
        learning_rates,
        momenta,
        np.arange(8),
        hidden=hidden,
        epochs=3,
        rule=rule,
        initial_weights=weights,
        orders=orders,
    )
    curves, history = _kernel_run(dataset, layout, learning_rates, momenta, weights, orders, rule)
    _compare_until_stopped(batch, curves, history, rtol=1e-12)


@pytest.mark.parametrize("rule", rule_names())
def test_float32_kernel_agrees_with_float32_train_many_within_float32_rounding(iris, rule):
    layout, learning_rates, momenta, weights, orders = _setting(
        iris, 7, 8, 3, seed=4, largest_learning_rate=0.03
    )
    batch = train_many(
        iris,
        learning_rates,
        momenta,
        np.arange(8),
        epochs=3,
        rule=rule,
        initial_weights=weights,
        orders=orders,
        dtype=np.float32,
    )
    curves, history = _kernel_run(
        iris,
        layout,
        learning_rates.astype(np.float32),
        momenta.astype(np.float32),
        weights,
        orders,
        rule,
        np.float32,
    )
    np.testing.assert_allclose(curves[:2], np.stack([batch.train_loss, batch.val_loss]), rtol=1e-4)
    np.testing.assert_allclose(history[-1], batch.final_parameters, rtol=1e-3, atol=1e-5)


# ---------------------------------------------------------------- exact whatever the batch


def _train_and_evaluate(dataset, layout, learning_rates, momenta, weights, orders,
                        dtype=np.float64, **options):
    """(log-likelihoods, weights, memory, val loss, val accuracy) after len(orders[0]) epochs,
    trained in ``dtype``."""
    weights = weights.astype(dtype)
    memory = np.zeros_like(weights)
    n_networks, epochs, n_train = orders.shape
    for epoch in range(epochs):
        log_likelihood = kernel.train_epoch(
            layout,
            weights,
            memory,
            learning_rates,
            momenta,
            "nesterov",
            dataset.x_train.astype(dtype),
            dataset.y_train,
            orders[:, epoch],
            np.full(n_networks, n_train),
            **options,
        )
    val_rows = np.broadcast_to(np.arange(len(dataset.y_val)), (n_networks, len(dataset.y_val)))
    loss, accuracy = kernel.evaluate(
        layout,
        weights,
        dataset.x_val,
        dataset.y_val,
        val_rows,
        np.full(n_networks, len(dataset.y_val)),
        **options,
    )
    return log_likelihood, weights, memory, loss, accuracy


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_networks_numbers_are_the_same_alone_in_any_batch_chunk_and_thread_count(iris, dtype):
    layout, learning_rates, momenta, weights, orders = _setting(iris, 7, 300, 2, seed=5)
    learning_rates, momenta = learning_rates.astype(dtype), momenta.astype(dtype)
    batch = {"K = 300": slice(0, 300), "K = 7": slice(290, 297)}
    watched = [0, 5, 150, 290, 293, 296]
    runs = {}
    for size, networks in batch.items():
        for chunk in (1, 4, 8, 32, 64):
            for threads in (1, 2):
                outputs = _train_and_evaluate(
                    iris,
                    layout,
                    learning_rates[networks],
                    momenta[networks],
                    weights[:, networks],
                    orders[networks],
                    dtype,
                    chunk=chunk,
                    threads=threads,
                )
                first = networks.start
                runs[size, chunk, threads] = {
                    k: [out[..., k - first] for out in outputs]
                    for k in watched
                    if networks.start <= k < networks.stop
                }
    for k in watched:
        alone = _train_and_evaluate(
            iris, layout, learning_rates[[k]], momenta[[k]], weights[:, [k]], orders[[k]], dtype
        )
        for key, run in runs.items():
            if k in run:
                for got, want in zip(run[k], alone):
                    np.testing.assert_array_equal(got, want[..., 0], err_msg=f"network {k}, {key}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_training_and_evaluating_in_one_pass_equals_the_two_calls(iris, dtype):
    """train_and_evaluate hands each thread its chunks through both loops: the numbers must be
    train_epoch's and then evaluate's of the trained weights (float32 ones read as float64)."""
    layout, learning_rates, momenta, weights, orders = _setting(iris, 7, 70, 2, seed=8)
    learning_rates, momenta = learning_rates.astype(dtype), momenta.astype(dtype)
    x_train, n_val = iris.x_train.astype(dtype), len(iris.y_val)
    val_rows = np.argsort(np.random.default_rng(9).random((70, n_val)), axis=1)
    counts, val_counts = np.full(70, len(iris.y_train)), np.arange(70) % n_val + 1
    apart = (weights.astype(dtype), np.zeros(weights.shape, dtype))
    together = (weights.astype(dtype), np.zeros(weights.shape, dtype))
    for epoch in range(2):
        arguments = (learning_rates, momenta, "heavy-ball", x_train, iris.y_train,
                     orders[:, epoch], counts)
        log_likelihood = kernel.train_epoch(layout, *apart, *arguments, chunk=8, threads=1)
        loss, accuracy = kernel.evaluate(
            layout, apart[0].astype(np.float64), iris.x_val, iris.y_val, val_rows, val_counts
        )
        one_pass = kernel.train_and_evaluate(
            layout, *together, *arguments, iris.x_val, iris.y_val, val_rows, val_counts,
            chunk=8, threads=2,
        )
        for got, want in zip((*one_pass, *together), (log_likelihood, loss, accuracy, *apart)):
            np.testing.assert_array_equal(got, want, err_msg=f"epoch {epoch + 1}")


@pytest.mark.parametrize("rule", rule_names())
def test_a_network_with_fewer_items_equals_it_trained_alone_on_just_those(iris, rule):
    # The lanes that finish first train on past their items and get their state back at the
    # end: their weights and memory must be what they were after their own last item.
    layout, learning_rates, momenta, weights, orders = _setting(iris, 7, 5, 1, seed=6)
    orders = orders[:, 0]
    counts = np.array([120, 7, 60, 1, 119])
    val_rows = np.argsort(np.random.default_rng(7).random((5, 30)), axis=1)
    val_counts = np.array([30, 3, 10, 1, 29])
    ragged_weights, ragged_memory = weights.copy(), np.zeros_like(weights)
    log_likelihood = kernel.train_epoch(
        layout,
        ragged_weights,
        ragged_memory,
        learning_rates,
        momenta,
        rule,
        iris.x_train,
        iris.y_train,
        orders,
        counts,
        chunk=4,
    )
    loss, accuracy = kernel.evaluate(
        layout, ragged_weights, iris.x_val, iris.y_val, val_rows, val_counts, chunk=4
    )
    for k, count in enumerate(counts):
        alone_weights, alone_memory = weights[:, [k]].copy(), np.zeros((layout.size, 1))
        alone_sum = kernel.train_epoch(
            layout,
            alone_weights,
            alone_memory,
            learning_rates[[k]],
            momenta[[k]],
            rule,
            iris.x_train,
            iris.y_train,
            orders[[k], :count],
            [count],
        )
        alone_loss, alone_accuracy = kernel.evaluate(
            layout,
            alone_weights,
            iris.x_val,
            iris.y_val,
            val_rows[[k], : val_counts[k]],
            val_counts[[k]],
        )
        assert log_likelihood[k] == alone_sum[0]
        np.testing.assert_array_equal(ragged_weights[:, k], alone_weights[:, 0])
        np.testing.assert_array_equal(ragged_memory[:, k], alone_memory[:, 0])
        assert (loss[k], accuracy[k]) == (alone_loss[0], alone_accuracy[0])


def test_a_network_whose_logits_are_nan_has_nan_loss_and_numpys_argmax_accuracy(iris):
    layout = Layout(4, 7, 3)
    weights = initial_block(layout, generators([0, 1]))
    weights[-1, 1] = np.nan  # one output bias of network 1
    rows = np.broadcast_to(np.arange(len(iris.y_val)), (2, len(iris.y_val)))
    loss, accuracy = kernel.evaluate(
        layout, weights, iris.x_val, iris.y_val, rows, np.full(2, len(iris.y_val))
    )
    assert np.isfinite(loss[0]) and np.isnan(loss[1])
    # numpy.argmax names the first NaN, output 2 here, whatever the other logits.
    assert accuracy[1] == np.mean(iris.y_val == 2)
    numpy_loss, numpy_accuracy = evaluate(weights, layout, iris.x_val, iris.y_val)
    np.testing.assert_allclose(loss, numpy_loss, rtol=1e-14)  # NaN where NumPy's is NaN
    np.testing.assert_array_equal(accuracy, numpy_accuracy)


def test_bad_arguments_are_refused_before_the_compiled_code_sees_them(iris):
    layout = Layout(4, 7, 3)
    weights = np.zeros((layout.size, 2))

    def train(orders, counts, rule="seed", y_table=iris.y_train):
        kernel.train_epoch(
            layout,
            weights,
            np.zeros_like(weights),
            [0.1, 0.1],
            [0.0, 0.0],
            rule,
            iris.x_train,
            y_table,
            orders,
            counts,
        )

    with pytest.raises(ValueError, match="network 1"):
        train(np.array([[0, 1, 2], [0, 500, 2]]), [3, 3])  # a row past the table
    with pytest.raises(ValueError, match="network 0"):
        train(np.zeros((2, 3), int), [3, 3], y_table=np.full(len(iris.y_train), 3))  # class 3 of 3
    with pytest.raises(ValueError, match="momentum rule"):
        train(np.zeros((2, 3), int), [3, 3], rule="adam")
    with pytest.raises(ValueError, match="network 0"):
        kernel.evaluate(layout, weights, iris.x_val, iris.y_val, np.zeros((2, 3), int), [0, 3])
    # Slots past a network's count are never read: any value will do.
    train(np.array([[0, 1, -7], [0, 1, 10**9]]), [2, 2])


def test_no_networks_give_empty_results(iris):
    layout = Layout(4, 7, 3)
    weights = np.zeros((layout.size, 0))
    no_rows = np.zeros((0, 3), int)
    log_likelihood = kernel.train_epoch(
        layout,
        weights,
        np.zeros_like(weights),
        [],
        [],
        "seed",
        iris.x_train,
        iris.y_train,
        no_rows,
        np.zeros(0, int),
    )
    loss, accuracy = kernel.evaluate(
        layout, weights, iris.x_val, iris.y_val, no_rows, np.zeros(0, int)
    )
    assert log_likelihood.shape == loss.shape == accuracy.shape == (0,)


# --- train_many(arithmetic="compiled") -------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_compiled_training_gives_each_network_what_it_gets_alone_with_folds_pruning_divergence(
    dtype,
):
    from sweep.sources import load_folds
    from sweep.train import train, train_many

    folds = load_folds("synthetic", folds=3, items=61, inputs=3, classes=3, seed=2)
    k = 12
    learning_rates = np.geomspace(0.01, 4.0, k)  # the largest diverge
    momenta = np.linspace(0.0, 0.9, k)
    index = np.arange(k) % 3

    def stop_odd_networks_at_epoch_3(report):
        return (report.trials % 2 == 1) if report.epoch == 3 else None

    batch = train_many(folds, learning_rates, momenta, np.arange(k), dataset_index=index,
                       epochs=6, rule="heavy-ball", on_epoch=stop_odd_networks_at_epoch_3,
                       arithmetic="compiled", dtype=dtype)
    assert batch.diverged_epoch.any() and batch.stopped_epoch.any()
    for row in range(k):
        alone = train(folds[index[row]], learning_rates[row], momenta[row], row, epochs=6,
                      rule="heavy-ball", arithmetic="compiled", dtype=dtype)
        trained = batch.run(row).epochs_trained
        for name in ("train_loss", "val_loss", "val_accuracy"):
            assert np.array_equal(getattr(batch, name)[row, :trained],
                                  getattr(alone, name)[:trained], equal_nan=True), (row, name)


@pytest.mark.parametrize("rule", ["seed", "heavy-ball", "nesterov"])
def test_compiled_training_follows_the_numpy_reference_within_rounding(rule):
    from sweep.sources import load_folds
    from sweep.train import train_many

    folds = load_folds("iris", folds=5)
    k = 20
    learning_rates = np.geomspace(0.001, 0.05, k)
    momenta = np.linspace(0.0, 0.9, k)
    index = np.arange(k) % 5
    reference = train_many(folds, learning_rates, momenta, np.arange(k), dataset_index=index,
                           epochs=8, rule=rule)
    compiled = train_many(folds, learning_rates, momenta, np.arange(k), dataset_index=index,
                          epochs=8, rule=rule, arithmetic="compiled")
    # Their exp, log and tanh differ by an ulp or two, which training amplifies (most at high
    # momentum); with the kernel's functions in both, they agree bit for bit (tested above).
    for name in ("train_loss", "val_loss"):
        assert np.allclose(getattr(compiled, name), getattr(reference, name), rtol=1e-7, atol=0)
    assert np.array_equal(compiled.val_accuracy, reference.val_accuracy)


def test_an_unknown_arithmetic_is_refused():
    from sweep import load_dataset
    from sweep.train import train_many

    with pytest.raises(ValueError, match="unknown arithmetic 'fast'"):
        train_many(load_dataset("iris"), 0.1, 0.5, [1], epochs=1, arithmetic="fast")


def test_the_loops_arguments_are_named_in_their_parameters_order():
    import inspect

    loop = kernel._training_loop(kernel.rule_key("seed"), False, False)
    assert list(inspect.signature(loop.py_func).parameters)[3:] == list(
        kernel.TrainingArguments._fields)
    evaluation = kernel._evaluation_loop(False)
    assert list(inspect.signature(evaluation.py_func).parameters)[3:] == list(
        kernel.EvaluationArguments._fields)
