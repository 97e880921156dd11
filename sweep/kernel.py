"""Compiled epochs of online back-propagation for K networks: a Numba kernel.

``sweep.train`` steps K networks together with a dozen NumPy calls per training item; at
Iris's size each call does little work, so the calls' overhead is most of the time. This
module runs a whole epoch in one compiled call instead. It walks the networks in chunks of
``chunk`` (a few vector registers wide), and for each chunk the items, and for each item the
networks of the chunk, innermost, so one vector instruction does the same operation for
several networks. A chunk's weights and rule state are copied into small contiguous buffers
for the epoch, where they stay in cache.

Exact by construction: network k's numbers are bit for bit the same whatever K, the chunk
size, the thread count or the machine.

* No operation mixes two networks: a vector lane is a network, and nothing is summed across
  lanes.
* Every sum runs in the order the NumPy trainer adds its terms (index order, from 0), so the
  kernel follows ``sweep.train`` and ``sweep.network.Evaluation`` operation for operation.
* No fast-math: LLVM may neither reorder nor fuse floating-point operations. Without the
  ``contract`` flag, which Numba sets only under ``fastmath``, LLVM does not fuse a multiply
  and an add into an FMA, whose single rounding would differ from NumPy's two and from a
  machine without FMA. ``tests/test_kernel.py`` compiles the helpers below into a loop and
  finds no FMA instruction, where the same loop with the ``contract`` flag has them.
* No libm or vector-library call, whose results differ between libraries and machines:
  ``exp``, ``log`` and ``tanh`` are written here in + - * / and bit operations (exp: fdlibm's
  range reduction and a Taylor polynomial; log: fdlibm's; tanh: Cephes's), within 2 ulp of
  NumPy's, with the special values (0, -0, inf, nan, subnormals) as NumPy gives them. In
  float32 they are float32 arithmetic throughout (``exp32``, ``log32``, ``tanh32``: the same
  algorithms, or fdlibm's and Cephes's float versions, within 1 ulp of the correctly rounded
  value), so a float32 network's loop runs twice the lanes per vector.

The kernel keeps only the state it is given: the caller decides on divergence and keeps the
curves, as ``train_many`` does. ``train_epoch`` runs one epoch and returns each network's sum
of log p(target); ``evaluate`` gives each network's mean validation loss and accuracy. Both
read items from one table by row index, so networks may train on different data (folds of one
data set) without copying it per network, and on different numbers of items (``counts``).
The item orders are given, or drawn before each epoch by the loops themselves from each
network's generator state (``Shuffles``): the permutations NumPy's ``Generator.permuted``
draws, bit for bit, as compact int32 rows, without a Python call per network.

Chunks go to threads from ``PARALLEL_MIN_NETWORKS`` networks on, in runs of whole chunks; a
chunk is one thread's from start to end, so the thread count changes no number either.

Each rule's loop, and the scalar form for a lone network, is compiled on its first use, a few
seconds each; the code is cached on disk beside this file (or in ``NUMBA_CACHE_DIR``, or Numba's
user cache directory if this one is not writable), and later processes load it in a fraction
of a second.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import marshal
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numba
import numba.core.event
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from .network import Layout
from .rules import get_rule

# Networks per chunk: eight 4-wide vectors of float64 per operation, enough independent work
# to hide the latencies, while an Iris chunk's weights and state (30 KB) stay in L1. float32
# networks take twice as many, the same eight vectors and bytes.
DEFAULT_CHUNK = 32
# Below this many networks a second thread costs more than it saves (see ``make bench``).
PARALLEL_MIN_NETWORKS = 64

_JIT = dict(cache=True, nogil=True, error_model="numpy", fastmath=False, boundscheck=False)
# The helpers are inlined by Numba itself: LLVM left them as calls, which stop a loop over the
# networks from vectorising.
_INLINED = dict(_JIT, inline="always")


# ---------------------------------------------------------------- bits of a float

# Each float type with the integer of its width.
_BIT_TYPES = {types.float64: types.int64, types.float32: types.int32}


@intrinsic
def _bits_of(typingctx, value):
    """The IEEE bit pattern of a float64 as an int64, or of a float32 as an int32 (a bit
    cast, no arithmetic)."""
    if value not in _BIT_TYPES:
        return None
    bits = _BIT_TYPES[value]

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(bits.bitwidth))

    return bits(value), codegen


@intrinsic
def _float_of(typingctx, bits):
    """The float64 whose IEEE bit pattern is the int64 ``bits``, or the float32 of an int32."""
    floats = {integer: real for real, integer in _BIT_TYPES.items()}
    if bits not in floats:
        return None
    real = floats[bits]

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(real))

    return real(bits), codegen


# ---------------------------------------------------------------- exp, log, tanh in float64
# Branch-free (both sides computed, one selected) so that a loop over networks vectorises.

_LN2_HI = 6.93147180369123816490e-01  # ln 2's leading bits: k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
# Adding and subtracting 1.5 * 2**52 rounds a float64 below 2**51 to the nearest integer.
_ROUNDER = 6755399441055744.0
# 1/n! for n = 2 .. 13: Taylor's series of e**r - 1 - r, over r**2. On |r| <= ln2 / 2 the
# first term left out is below 4e-18 relative: a polynomial without a division, which costs
# as much as a dozen multiply-adds in a vector.
_E2, _E3, _E4, _E5, _E6, _E7, _E8, _E9, _E10, _E11, _E12, _E13 = (
    1.0 / 2,
    1.0 / 6,
    1.0 / 24,
    1.0 / 120,
    1.0 / 720,
    1.0 / 5040,
    1.0 / 40320,
    1.0 / 362880,
    1.0 / 3628800,
    1.0 / 39916800,
    1.0 / 479001600,
    1.0 / 6227020800,
)


@njit(**_INLINED)
def exp(x):
    """e**x for a float64 x, without branches or divisions.

    x = k ln2 + r with |r| <= ln2 / 2, ln2 in two parts as fdlibm's e_exp.c splits it, so
    that r keeps its low bits; e**r = 1 + r + r**2 (1/2 + r/6 + ... + r**11/13!); then times
    2**k in two factors, so that a subnormal result is rounded once.
    """
    # Clamped first: beyond these e**x is inf or 0 anyway, and k stays a small integer.
    # A NaN fails both comparisons and is put back at the end.
    clamped = x if x < 710.0 else 710.0
    clamped = clamped if clamped > -746.0 else -746.0
    k = (clamped * _INV_LN2 + _ROUNDER) - _ROUNDER
    hi = clamped - k * _LN2_HI
    lo = k * _LN2_LO
    r = hi - lo
    q = _E12 + r * _E13
    q = _E11 + r * q
    q = _E10 + r * q
    q = _E9 + r * q
    q = _E8 + r * q
    q = _E7 + r * q
    q = _E6 + r * q
    q = _E5 + r * q
    q = _E4 + r * q
    q = _E3 + r * q
    q = _E2 + r * q
    y = 1.0 + (hi - (lo - (r * r) * q))
    n = np.int64(k)
    half = n >> 1
    scale_a = _float_of((half + 1023) << 52)
    scale_b = _float_of((n - half + 1023) << 52)
    result = (y * scale_a) * scale_b
    return result if x == x else x


_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_TWO54 = 1.80143985094819840000e16
_SMALLEST_NORMAL = 2.2250738585072014e-308


@njit(**_INLINED)
def log(x):
    """Natural log of a float64 x: fdlibm's e_log.c (error below 1 ulp), without branches.

    x = 2**k (1 + f) with 1 + f in [sqrt(2)/2, sqrt(2)); log(1 + f) from s = f / (2 + f) and a
    polynomial in s**2; two forms of the last sum, chosen by f as fdlibm chooses them.
    """
    subnormal = x < _SMALLEST_NORMAL  # also 0 and negatives, whose result is replaced below
    scaled = x * _TWO54 if subnormal else x
    bits = _bits_of(scaled)
    high = (bits >> 32) & 0x7FFFFFFF
    k = (high >> 20) - 1023 - (54 if subnormal else 0)
    high &= 0x000FFFFF
    i = (high + 0x95F64) & 0x100000
    # The mantissa with exponent 0 or -1, whichever puts it in [sqrt(2)/2, sqrt(2)).
    mantissa = _float_of(((high | (i ^ 0x3FF00000)) << 32) | (bits & 0xFFFFFFFF))
    k += i >> 20
    f = mantissa - 1.0
    s = f / (2.0 + f)
    dk = np.float64(k)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    r = t2 + t1
    half_f_squared = 0.5 * f * f
    far_from_one = ((high - 0x6147A) | (0x6B851 - high)) > 0
    if far_from_one:
        result = dk * _LN2_HI - ((half_f_squared - (s * (half_f_squared + r) + dk * _LN2_LO)) - f)
    else:
        result = dk * _LN2_HI - ((s * (f - r) - dk * _LN2_LO) - f)
    result = result if x < np.inf else x + x  # inf, and NaN
    result = result if x != 0.0 else -np.inf
    return result if x >= 0.0 else np.nan


_TANH_P0 = -9.64399179425052238628e-01
_TANH_P1 = -9.92877231001918586564e01
_TANH_P2 = -1.61468768441708447952e03
_TANH_Q0 = 1.12811678491632931402e02
_TANH_Q1 = 2.23548839060100448583e03
_TANH_Q2 = 4.84406305325125486048e03


@njit(**_INLINED)
def tanh(x):
    """Hyperbolic tangent of a float64 x: Cephes's tanh.c, without branches, in one division.

    |x| < 0.625: x + x**3 P(x**2) / Q(x**2); beyond, 1 - 2 / (e**(2|x|) + 1) with x's sign.
    Both are a + b / c: the two (a, b, c) are made and one chosen before the one division.
    """
    magnitude = abs(x)
    near_zero = magnitude < 0.625
    z = x * x
    sign = 1.0 if x >= 0.0 else -1.0
    a = x if near_zero else sign
    b = x * (z * (_TANH_P2 + z * (_TANH_P1 + z * _TANH_P0))) if near_zero else -2.0 * sign
    c = (
        (_TANH_Q2 + z * (_TANH_Q1 + z * (_TANH_Q0 + z)))
        if near_zero
        else exp(magnitude + magnitude) + 1.0
    )
    result = a + b / c
    return result if x != 0.0 else x  # keeps -0's sign, and a NaN stays NaN (x != 0)


# ---------------------------------------------------------------- exp, log, tanh in float32
# The same algorithms in float32 arithmetic throughout, so that a float32 network's loop runs
# twice the lanes per vector and converts nothing. Every constant is a float32 (a Python float
# would make its operation float64), and every integer is cast back to int32 before a bit cast.

_F32 = np.float32
_ZERO_32, _ONE_32, _HALF_32, _TWO_32 = _F32(0.0), _F32(1.0), _F32(0.5), _F32(2.0)
_INF_32, _NAN_32 = _F32(np.inf), _F32(np.nan)


def _f32_from_bits(bits: int) -> np.float32:
    return np.array([bits], dtype=np.uint32).view(np.float32)[0]


# exp: e_expf.c's split of ln 2 (k * _LN2_HI_32 is exact for |k| < 512), and Taylor's series to
# r**7/7!: on |r| <= ln2 / 2 the first term left out is below 6e-9, a tenth of an ulp.
_LN2_HI_32 = _f32_from_bits(0x3F317200)
_LN2_LO_32 = _f32_from_bits(0x35BFBE8E)
_INV_LN2_32 = _F32(1.4426950408889634)
_ROUNDER_32 = _F32(12582912.0)  # 1.5 * 2**23: rounds a float32 below 2**22 to an integer
_EXP_MAX_32, _EXP_MIN_32 = _F32(89.0), _F32(-104.0)  # beyond: inf, and 0 (below 2**-150)
_F2, _F3, _F4, _F5, _F6, _F7 = (_F32(1.0 / math.factorial(n)) for n in range(2, 8))


@njit(**_INLINED)
def exp32(x):
    """e**x for a float32 x in float32 arithmetic: ``exp``'s algorithm (range reduction by
    k ln2, a Taylor polynomial, 2**k in two factors), without branches or divisions."""
    clamped = x if x < _EXP_MAX_32 else _EXP_MAX_32
    clamped = clamped if clamped > _EXP_MIN_32 else _EXP_MIN_32  # a NaN is put back at the end
    k = (clamped * _INV_LN2_32 + _ROUNDER_32) - _ROUNDER_32
    hi = clamped - k * _LN2_HI_32
    lo = k * _LN2_LO_32
    r = hi - lo
    q = _F6 + r * _F7
    q = _F5 + r * q
    q = _F4 + r * q
    q = _F3 + r * q
    q = _F2 + r * q
    y = _ONE_32 + (hi - (lo - (r * r) * q))
    n = np.int32(k)
    half = n >> 1
    scale_a = _float_of(np.int32((half + 127) << 23))
    scale_b = _float_of(np.int32((n - half + 127) << 23))
    result = (y * scale_a) * scale_b
    return result if x == x else x


# log: FreeBSD's e_logf.c (fdlibm's, for float), as ``log`` writes e_log.c.
_LOG_LN2_HI_32 = _f32_from_bits(0x3F317180)
_LOG_LN2_LO_32 = _f32_from_bits(0x3717F7D1)
_LG1_32 = _F32(0xAAAAAA * 2.0**-24)
_LG2_32 = _F32(0xCCCE13 * 2.0**-25)
_LG3_32 = _F32(0x91E9EE * 2.0**-25)
_LG4_32 = _F32(0xF89E26 * 2.0**-26)
_TWO25_32 = _F32(2.0**25)
_SMALLEST_NORMAL_32 = _F32(2.0**-126)


@njit(**_INLINED)
def log32(x):
    """Natural log of a float32 x in float32 arithmetic: e_logf.c (error below 1 ulp),
    without branches, as ``log`` is e_log.c."""
    subnormal = x < _SMALLEST_NORMAL_32  # also 0 and negatives, whose result is replaced below
    scaled = x * _TWO25_32 if subnormal else x
    bits = _bits_of(scaled) & 0x7FFFFFFF
    k = (bits >> 23) - 127 - (25 if subnormal else 0)
    bits &= 0x007FFFFF
    i = (bits + (0x95F64 << 3)) & 0x800000
    # The mantissa with exponent 0 or -1, whichever puts it in [sqrt(2)/2, sqrt(2)).
    mantissa = _float_of(np.int32(bits | (i ^ 0x3F800000)))
    k += i >> 23
    f = mantissa - _ONE_32
    s = f / (_TWO_32 + f)
    dk = _F32(k)
    z = s * s
    w = z * z
    t1 = w * (_LG2_32 + w * _LG4_32)
    t2 = z * (_LG1_32 + w * _LG3_32)
    r = t2 + t1
    half_f_squared = _HALF_32 * f * f
    far_from_one = ((bits - (0x6147A << 3)) | ((0x6B851 << 3) - bits)) > 0
    if far_from_one:
        result = dk * _LOG_LN2_HI_32 - (
            (half_f_squared - (s * (half_f_squared + r) + dk * _LOG_LN2_LO_32)) - f)
    else:
        result = dk * _LOG_LN2_HI_32 - ((s * (f - r) - dk * _LOG_LN2_LO_32) - f)
    result = result if x < _INF_32 else x + x  # inf, and NaN
    result = result if x != _ZERO_32 else -_INF_32
    return result if x >= _ZERO_32 else _NAN_32


# tanh: Cephes's tanhf.c.
_TANH_P0_32 = _F32(-5.70498872745e-3)
_TANH_P1_32 = _F32(2.06390887954e-2)
_TANH_P2_32 = _F32(-5.37397155531e-2)
_TANH_P3_32 = _F32(1.33314422036e-1)
_TANH_P4_32 = _F32(-3.33332819422e-1)
_TANH_SWITCH_32 = _F32(0.625)


@njit(**_INLINED)
def tanh32(x):
    """Hyperbolic tangent of a float32 x in float32 arithmetic: Cephes's tanhf.c, without
    branches. |x| < 0.625: x + x z P(z), z = x**2; beyond, 1 - 2 / (e**(2|x|) + 1) with x's
    sign. As in ``tanh`` both are a + b / c, the first with c = 1 (an exact division)."""
    magnitude = abs(x)
    near_zero = magnitude < _TANH_SWITCH_32
    z = x * x
    sign = _ONE_32 if x >= _ZERO_32 else -_ONE_32
    polynomial = (
        (((_TANH_P0_32 * z + _TANH_P1_32) * z + _TANH_P2_32) * z + _TANH_P3_32) * z
        + _TANH_P4_32
    )
    a = x if near_zero else sign
    b = (polynomial * z) * x if near_zero else -_TWO_32 * sign
    c = _ONE_32 if near_zero else exp32(magnitude + magnitude) + _ONE_32
    result = a + b / c
    return result if x != _ZERO_32 else x  # keeps -0's sign, and a NaN stays NaN (x != 0)




# ---------------------------------------------------------------- one chunk's epoch


def rule_key(name: str) -> int:
    """The compile-time constant that names rule ``name``'s step in the compiled loops: a
    number made from a digest of its formula's code. Numba keys a loop's disk cache on its
    closure's constants and on this file alone, so an edit to the rule's formula in
    ``sweep.rules`` changes the key and compiles the loop afresh instead of loading a stale
    one. ValueError naming the valid rules for an unknown name."""
    key = _formula_key(get_rule(name).scalar_step)
    _RULE_NAMES[key] = name
    return key


@functools.cache
def _formula_key(scalar_step) -> int:
    # Cached: a digest per epoch would cost as much as a lone network's epoch in the loop.
    return int(hashlib.sha256(marshal.dumps(scalar_step.__code__)).hexdigest()[:15], 16)


_RULE_NAMES: dict[int, str] = {}  # rule_key -> rule name


def _rule_formula(key, weight, memory, sgd_step, momentum):
    """(new weight, new memory): the formula of the rule ``key`` (a ``rule_key``) names."""
    raise NotImplementedError("compiled code only")


@overload(_rule_formula, inline="always")
def _compiled_rule_formula(key, weight, memory, sgd_step, momentum):
    # Resolved while a loop compiles: the rule's own scalar_step, compiled in; the loop has no
    # per-rule branch.
    if not isinstance(key, types.IntegerLiteral):
        return None
    return _compiled_step(_RULE_NAMES[key.literal_value])


@functools.cache
def _compiled_step(name: str):
    scalar_step = njit(**_INLINED)(get_rule(name).scalar_step)

    def formula(key, weight, memory, sgd_step, momentum):
        return scalar_step(weight, memory, sgd_step, momentum)

    return formula


@njit(**_INLINED)
def _rule_step(rule, weights, memory, p, j, sgd_step, momentum):
    """Parameter p of lane j: one step of the rule ``rule`` (a ``rule_key``, a compile-time
    constant) given ``sgd_step`` = -learning_rate * dLoss/dw; ``memory`` is the rule's memory."""
    weights[p, j], memory[p, j] = _rule_formula(rule, weights[p, j], memory[p, j], sgd_step,
                                                momentum)


@njit(**_JIT)
def _train_chunk(
    first,
    n_lanes,
    width,
    single_lane,
    float32,
    n_hidden,
    n_outputs,
    rule,
    weights,
    memory,
    learning_rates,
    momenta,
    x_table,
    y_table,
    orders,
    counts,
    log_likelihood,
):
    """Networks first .. first + n_lanes - 1 through one epoch, in ``width`` lanes.

    Every loop over the lanes is a loop LLVM vectorises; lanes past n_lanes (the last
    chunk's) idle on zero weights. ``rule``, ``single_lane`` (width 1) and ``float32`` (the
    networks' dtype: exp, log and tanh in it) are compiled in as constants (``_training_loop``
    passes them so), and the code of the other choices is left out: one lane runs as plain
    scalar code, without a vector loop's set-up around every operation.

    Long on purpose: one item's forward pass, softmax, loss, back-propagation and the rule's
    update of every parameter, in that order, over a dozen per-chunk buffers (inputs, hidden
    activations, errors, targets, the active lanes). As separate functions each phase would
    take most of those buffers as parameters; the phases' comments mark where each begins.
    """
    numba.literally(rule)
    numba.literally(single_lane)
    numba.literally(float32)
    if single_lane:
        width = 1
    n_inputs = x_table.shape[1]
    n_parameters = weights.shape[0]
    dtype = weights.dtype
    hidden_bias = n_inputs * n_hidden  # offsets of the blocks in sweep.network.Layout's order
    ho_start = hidden_bias + n_hidden
    output_bias = ho_start + n_hidden * n_outputs

    chunk_weights = np.zeros((n_parameters, width), dtype)
    chunk_memory = np.zeros((n_parameters, width), dtype)
    for p in range(n_parameters):
        for j in range(n_lanes):
            chunk_weights[p, j] = weights[p, first + j]
            chunk_memory[p, j] = memory[p, first + j]
    scale = np.zeros(width, dtype)  # -learning_rate: it scales the output error
    chunk_momenta = np.zeros(width, dtype)
    chunk_counts = np.zeros(width, np.int64)
    for j in range(n_lanes):
        scale[j] = -learning_rates[first + j]
        chunk_momenta[j] = momenta[first + j]
        chunk_counts[j] = counts[first + j]
    n_steps = chunk_counts.max()
    zero = np.zeros(1, dtype)[0]
    one = np.ones(1, dtype)[0]

    x = np.empty((n_inputs, width), dtype)
    targets = np.empty(width, np.int64)
    active = np.empty(width, np.bool_)
    hidden = np.empty((n_hidden, width), dtype)
    hidden_error = np.empty((n_hidden, width), dtype)
    outputs = np.empty((n_outputs, width), dtype)  # logits, then probabilities, then errors
    top = np.empty(width, dtype)
    total = np.empty(width, dtype)
    log_p = np.empty(width, dtype)  # the log in the networks' dtype, as the trainer takes it
    sums = np.zeros(width, np.float64)
    # A lane whose items end before the chunk's last step trains on with the others (on row 0,
    # its losses not counted) and gets back, when the epoch ends, the weights and memory it had
    # after its last item: a copy per such lane, where a select on every update of every lane
    # cost a quarter of the epoch.
    last_weights = np.empty((n_parameters, width), dtype)
    last_memory = np.empty((n_parameters, width), dtype)

    for t in range(n_steps):
        for j in range(width):
            if t > 0 and chunk_counts[j] == t:  # lane j's last item was step t - 1
                for p in range(n_parameters):
                    last_weights[p, j] = chunk_weights[p, j]
                    last_memory[p, j] = chunk_memory[p, j]
        for j in range(width):
            active[j] = t < chunk_counts[j]
            row = orders[first + j, t] if active[j] else 0  # a finished lane trains on row 0
            targets[j] = y_table[row] if active[j] else 0
            for i in range(n_inputs):
                x[i, j] = x_table[row, i]

        # Forward: the sums start at 0 and add the inputs' products, then the bias (times
        # the constant 1 input), as the trainer's einsum does.
        # The term's index is the outer loop: consecutive updates of one sum are then a whole
        # layer apart, not waiting on each other through memory.
        for h in range(n_hidden):
            for j in range(width):
                hidden[h, j] = zero
        for i in range(n_inputs):
            for h in range(n_hidden):
                for j in range(width):
                    hidden[h, j] += x[i, j] * chunk_weights[i * n_hidden + h, j]
        for h in range(n_hidden):
            for j in range(width):
                value = hidden[h, j] + chunk_weights[hidden_bias + h, j]
                hidden[h, j] = tanh32(value) if float32 else tanh(value)
        for c in range(n_outputs):
            for j in range(width):
                outputs[c, j] = zero
        for h in range(n_hidden):
            for c in range(n_outputs):
                for j in range(width):
                    outputs[c, j] += hidden[h, j] * chunk_weights[ho_start + h * n_outputs + c, j]
        for c in range(n_outputs):
            for j in range(width):
                outputs[c, j] += chunk_weights[output_bias + c, j]

        # Softmax, shifted by the maximum; NumPy's maximum lets a NaN through.
        for j in range(width):
            top[j] = outputs[0, j]
        for c in range(1, n_outputs):
            for j in range(width):
                value = outputs[c, j]
                top[j] = value if (value > top[j] or value != value) else top[j]
        for c in range(n_outputs):
            for j in range(width):
                value = outputs[c, j] - top[j]
                outputs[c, j] = exp32(value) if float32 else exp(value)
        for j in range(width):
            total[j] = outputs[0, j]
        for c in range(1, n_outputs):
            for j in range(width):
                total[j] += outputs[c, j]
        for c in range(n_outputs):
            for j in range(width):
                outputs[c, j] /= total[j]

        # The item's log p(target), before the update, added to the running sum in float64.
        for j in range(width):
            log_p[j] = outputs[targets[j], j]
        for j in range(width):  # apart from the gather above, so that this loop vectorises
            log_p[j] = log32(log_p[j]) if float32 else log(log_p[j])
            sums[j] = sums[j] + np.float64(log_p[j]) if active[j] else sums[j]

        # Back-propagation: the output error (softmax - one-hot) scaled by -learning_rate is
        # the output biases' SGD step; the hidden error is made from the weights before update.
        for c in range(n_outputs):
            for j in range(width):
                target_share = one if targets[j] == c else zero
                outputs[c, j] = (outputs[c, j] - target_share) * scale[j]
        for h in range(n_hidden):
            for j in range(width):
                hidden_error[h, j] = zero
        for c in range(n_outputs):
            for h in range(n_hidden):
                for j in range(width):
                    hidden_error[h, j] += (
                        chunk_weights[ho_start + h * n_outputs + c, j] * outputs[c, j]
                    )
        for h in range(n_hidden):
            for j in range(width):
                hidden_error[h, j] *= one - hidden[h, j] * hidden[h, j]  # tanh' = 1 - tanh**2

        for h in range(n_hidden):
            for c in range(n_outputs):
                p = ho_start + h * n_outputs + c
                for j in range(width):
                    _rule_step(
                        rule,
                        chunk_weights,
                        chunk_memory,
                        p,
                        j,
                        hidden[h, j] * outputs[c, j],
                        chunk_momenta[j],
                    )
        for c in range(n_outputs):
            for j in range(width):
                _rule_step(
                    rule,
                    chunk_weights,
                    chunk_memory,
                    output_bias + c,
                    j,
                    outputs[c, j],
                    chunk_momenta[j],
                )
        for i in range(n_inputs):
            for h in range(n_hidden):
                p = i * n_hidden + h
                for j in range(width):
                    _rule_step(
                        rule,
                        chunk_weights,
                        chunk_memory,
                        p,
                        j,
                        x[i, j] * hidden_error[h, j],
                        chunk_momenta[j],
                    )
        for h in range(n_hidden):
            for j in range(width):
                _rule_step(
                    rule,
                    chunk_weights,
                    chunk_memory,
                    hidden_bias + h,
                    j,
                    hidden_error[h, j],
                    chunk_momenta[j],
                )

    for j in range(n_lanes):
        if chunk_counts[j] < n_steps:
            for p in range(n_parameters):
                chunk_weights[p, j] = last_weights[p, j]
                chunk_memory[p, j] = last_memory[p, j]
    for p in range(n_parameters):
        for j in range(n_lanes):
            weights[p, first + j] = chunk_weights[p, j]
            memory[p, first + j] = chunk_memory[p, j]
    for j in range(n_lanes):
        log_likelihood[first + j] = sums[j]


@njit(**_JIT)
def _first_bad_network(rows, counts, y_table, n_outputs):
    """The first network whose count is not in [1, rows.shape[1]], or one of whose rows (those
    it reads) is not a row of the table or has a class outside [0, n_outputs); -1 if none.
    The compiled loops trust these (no bounds checks), so they are checked before."""
    for k in range(rows.shape[0]):
        if counts[k] < 1 or counts[k] > rows.shape[1]:
            return k
        for t in range(counts[k]):
            row = rows[k, t]
            if row < 0 or row >= y_table.shape[0] or y_table[row] < 0 or y_table[row] >= n_outputs:
                return k
    return -1


# ---------------------------------------------------------------- one chunk's evaluation


@njit(**_JIT)
def _evaluate_chunk(
    first,
    n_lanes,
    width,
    single_lane,
    n_hidden,
    n_outputs,
    weights,
    x_table,
    y_table,
    rows,
    counts,
    loss,
    accuracy,
):
    """Mean cross-entropy and accuracy of networks first .. first + n_lanes - 1, in float64
    whatever the weights' dtype, as ``sweep.network.Evaluation`` computes them. ``width`` and
    ``single_lane`` as in ``_train_chunk``."""
    numba.literally(single_lane)
    if single_lane:
        width = 1
    n_inputs = x_table.shape[1]
    n_parameters = weights.shape[0]
    hidden_bias = n_inputs * n_hidden
    ho_start = hidden_bias + n_hidden
    output_bias = ho_start + n_hidden * n_outputs

    chunk_weights = np.zeros((n_parameters, width))
    chunk_counts = np.zeros(width, np.int64)
    for p in range(n_parameters):
        for j in range(n_lanes):
            chunk_weights[p, j] = weights[p, first + j]
    for j in range(n_lanes):
        chunk_counts[j] = counts[first + j]
    n_items = chunk_counts.max()
    x = np.empty((n_inputs, width))
    targets = np.empty(width, np.int64)
    active = np.empty(width, np.bool_)
    hidden = np.empty((n_hidden, width))
    logits = np.empty((n_outputs, width))
    top = np.empty(width)
    total = np.empty(width)
    best = np.empty(width, np.int64)
    best_logit = np.empty(width)
    target_logit = np.empty(width)
    sums = np.zeros(width)
    correct = np.zeros(width, np.int64)

    for t in range(n_items):
        for j in range(width):
            active[j] = t < chunk_counts[j]
            row = rows[first + j, t] if active[j] else 0
            targets[j] = y_table[row] if active[j] else 0
            for i in range(n_inputs):
                x[i, j] = x_table[row, i]
        # Evaluation's einsum adds the bias (its constant-1 input comes first), then the inputs.
        for h in range(n_hidden):
            for j in range(width):
                hidden[h, j] = 0.0 + chunk_weights[hidden_bias + h, j]
            for i in range(n_inputs):
                for j in range(width):
                    hidden[h, j] += x[i, j] * chunk_weights[i * n_hidden + h, j]
            for j in range(width):
                hidden[h, j] = tanh(hidden[h, j])
        for c in range(n_outputs):
            for j in range(width):
                logits[c, j] = 0.0 + chunk_weights[output_bias + c, j]
            for h in range(n_hidden):
                for j in range(width):
                    logits[c, j] += hidden[h, j] * chunk_weights[ho_start + h * n_outputs + c, j]

        for j in range(width):
            top[j] = logits[0, j]
            best[j] = 0
            best_logit[j] = logits[0, j]
        for c in range(1, n_outputs):
            for j in range(width):
                value = logits[c, j]
                top[j] = value if (value > top[j] or value != value) else top[j]
                # numpy.argmax: the first maximum, or the first NaN, which then stays.
                better = best_logit[j] == best_logit[j] and not (value <= best_logit[j])
                best[j] = c if better else best[j]
                best_logit[j] = value if better else best_logit[j]
        for j in range(width):
            total[j] = exp(logits[0, j] - top[j])
        for c in range(1, n_outputs):
            for j in range(width):
                total[j] += exp(logits[c, j] - top[j])
        for j in range(width):
            target_logit[j] = logits[targets[j], j]
            hit = active[j] and best[j] == targets[j]
            correct[j] += 1 if hit else 0
        for j in range(width):  # apart from the gather above, so that this loop vectorises
            log_p = (target_logit[j] - top[j]) - log(total[j])
            sums[j] = sums[j] + log_p if active[j] else sums[j]

    for j in range(n_lanes):
        loss[first + j] = -sums[j] / counts[first + j]
        accuracy[first + j] = correct[j] / counts[first + j]


# ---------------------------------------------------------------- item orders: NumPy's shuffle
# ``numpy.random.Generator.permuted(ranks, axis=1)`` with the generator ``default_rng(seed)``,
# compiled. NumPy shuffles each row by Fisher-Yates from the last slot down (``_shuffle_raw``
# in numpy/random/_generator.pyx): for i = n - 1 ... 1 it swaps slot i with slot
# j = ``random_interval(i)`` (numpy/random/src/distributions/distributions.c): the smallest
# all-ones mask >= i, then 32-bit draws masked by it until one is <= i. A 32-bit draw is the
# low half of PCG64's next 64-bit output, and the draw after it that output's high half, kept
# in the generator between calls (``has_uint32``, ``uinteger`` in its state). PCG64 (pcg64.h)
# steps its 128-bit state by state * multiplier + increment and outputs the two halves' XOR
# rotated right by the state's top six bits (XSL-RR). ``tests/test_kernel.py`` compares the
# drawn orders with NumPy's own over thousands of seeds, lengths and epochs.

_PCG64_MULTIPLIER = (2549297995355413924 << 64) + 4865540595714422341
# A network's PCG64 state, as the columns of a (K, 6) uint64 array: the 128-bit state and
# increment as high and low words, whether a 32-bit half is kept, and the kept half.
_STATE_HIGH, _STATE_LOW, _INCREMENT_HIGH, _INCREMENT_LOW, _HAS_HALF, _HALF = range(6)
_LOW_32 = np.uint64(0xFFFFFFFF)
_INT32_MAX = 2**31 - 1  # rows are int32


@intrinsic
def _pcg64_step(typingctx, high, low, increment_high, increment_low):
    """PCG64's 128-bit state (high, low words) advanced one step: state * multiplier +
    increment, modulo 2**128, in LLVM's 128-bit integers."""
    if any(word != types.uint64 for word in (high, low, increment_high, increment_low)):
        return None

    def codegen(context, builder, signature, args):
        wide = ir.IntType(128)

        def joined(high_word, low_word):
            shifted = builder.shl(builder.zext(high_word, wide), ir.Constant(wide, 64))
            return builder.or_(shifted, builder.zext(low_word, wide))

        state = builder.add(
            builder.mul(joined(args[0], args[1]), ir.Constant(wide, _PCG64_MULTIPLIER)),
            joined(args[2], args[3]),
        )
        words = (
            builder.trunc(builder.lshr(state, ir.Constant(wide, 64)), ir.IntType(64)),
            builder.trunc(state, ir.IntType(64)),
        )
        return context.make_tuple(builder, signature.return_type, words)

    word = types.uint64
    return types.UniTuple(word, 2)(word, word, word, word), codegen


@njit(**_INLINED)
def _pcg64_output(high, low):
    """PCG64's 64-bit output of a state (XSL-RR): high ^ low rotated right by high >> 58."""
    value = high ^ low
    rotation = high >> np.uint64(58)
    return (value >> rotation) | (value << ((np.uint64(64) - rotation) & np.uint64(63)))


@njit(**_INLINED)
def _try_swap(row, i, mask, drawn):
    """One of ``random_interval(i)``'s tries for slot i: j = drawn & mask; if j <= i, slots i
    and j swap and slot i - 1 comes next, with the halved mask once i - 1 fits it. Returns
    (next slot, its mask). Without branches: a rejected try swaps slot i with itself, which
    costs less than the mispredicted branches of a 25 % rejection rate."""
    j = np.int64(drawn) & mask
    accepted = j <= i
    target = j if accepted else i
    kept = row[target]
    row[target] = row[i]
    row[i] = kept
    i -= np.int64(accepted)
    return i, (mask >> 1 if i <= mask >> 1 else mask)


@njit(**_JIT)
def _shuffle(state, row, first_row, n_items):
    """row[:n_items] = first_row + the permutation of 0 .. n_items - 1 that
    ``Generator.permuted`` draws for one row from the PCG64 state ``state`` (one row of a
    (K, 6) state array), which is advanced in place as the generator's would be."""
    high, low = state[_STATE_HIGH], state[_STATE_LOW]
    increment_high, increment_low = state[_INCREMENT_HIGH], state[_INCREMENT_LOW]
    has_half, half = state[_HAS_HALF] != 0, state[_HALF]
    for t in range(n_items):
        row[t] = first_row + t
    i = n_items - 1  # NumPy's last slot, i = 0, draws nothing
    mask = i | (i >> 1)
    mask |= mask >> 2
    mask |= mask >> 4
    mask |= mask >> 8
    mask |= mask >> 16  # n_items < 2**31: i has at most 31 bits
    if i > 0 and has_half:
        i, mask = _try_swap(row, i, mask, half)
        has_half = False
    while i > 0:  # each output's low half, then its high half
        high, low = _pcg64_step(high, low, increment_high, increment_low)
        output = _pcg64_output(high, low)
        i, mask = _try_swap(row, i, mask, output & _LOW_32)
        if i == 0:  # the high half is kept for the generator's next 32-bit draw
            has_half, half = True, output >> np.uint64(32)
            break
        i, mask = _try_swap(row, i, mask, output >> np.uint64(32))
    state[_STATE_HIGH], state[_STATE_LOW] = high, low
    state[_HAS_HALF], state[_HALF] = np.uint64(has_half), half


@njit(**_JIT)
def _draw_chunks(first_chunk, end_chunk, width, states, first_rows, counts, orders):
    """The next item order of networks first_chunk * width .. end_chunk * width - 1."""
    end = min(end_chunk * width, states.shape[0])
    for k in range(first_chunk * width, end):
        _shuffle(states[k], orders[k], first_rows[k], counts[k])


def _pcg64_words(generator) -> tuple:
    state = generator.bit_generator.state
    if state["bit_generator"] != "PCG64":
        raise ValueError(
            f"item orders are drawn as PCG64 draws them; this generator is a "
            f"{state['bit_generator']}"
        )
    words = state["state"]
    return (words["state"] >> 64, words["state"] & 0xFFFFFFFFFFFFFFFF,
            words["inc"] >> 64, words["inc"] & 0xFFFFFFFFFFFFFFFF,
            state["has_uint32"], state["uinteger"])


class Shuffles:
    """Every network's item order, epoch after epoch, drawn in the compiled loops: network k's
    rows ``first_rows[k] + Generator.permuted(arange(counts[k]))``, bit for bit the orders
    ``generators[k]`` would draw from where it stands, one call per epoch.

    Given as a training loop's ``orders``, the loop draws the epoch's orders into ``orders``
    first, on the threads that train the networks. The generators themselves are not
    advanced: their states are copied once, and the copies advance.

    generators: K PCG64 ``numpy.random.Generator``s (``default_rng``'s kind).
    first_rows: (K,) ints >= 0, the table row of network k's item 0.
    counts: (K,) ints in [1, 2**31): network k's number of items; first_rows + counts must
        fit in int32.
    """

    def __init__(self, generators, first_rows, counts):
        self.first_rows = np.ascontiguousarray(first_rows, dtype=np.int64)
        self.counts = np.ascontiguousarray(counts, dtype=np.int64)
        n_networks = len(generators)
        if self.first_rows.shape != (n_networks,) or self.counts.shape != (n_networks,):
            raise ValueError(f"first_rows and counts must be ({n_networks},), one per generator")
        if n_networks and (self.counts.min() < 1 or self.first_rows.min() < 0
                           or (self.first_rows + self.counts).max() > _INT32_MAX):
            raise ValueError("counts must be >= 1, first_rows >= 0, and their sums int32s")
        self.states = np.array([_pcg64_words(g) for g in generators], dtype=np.uint64)
        self.states = self.states.reshape(n_networks, 6)
        longest = int(self.counts.max()) if n_networks else 1
        # Reused: each epoch's orders overwrite the last's, and networks leaving shrink it.
        self.orders = np.zeros((n_networks, longest), dtype=np.int32)

    def __len__(self) -> int:
        return len(self.counts)

    def keep(self, positions) -> None:
        """Only the networks at ``positions`` (increasing) of the current ones go on."""
        self.states = self.states[positions]
        self.first_rows, self.counts = self.first_rows[positions], self.counts[positions]
        self.orders = self.orders[: len(positions)]

    def draw(self, *, threads: int | None = None) -> np.ndarray:
        """Draw every network's next order, as a training loop does before an epoch:
        ``orders`` (K, longest) int32, row k's first counts[k] slots network k's rows."""
        _run([self.part()], 1, len(self), threads)
        return self.orders

    def part(self):
        """(loop, its arguments after the chunk range and width) that draws the next orders."""
        return _draw_chunks, (self.states, self.first_rows, self.counts, self.orders)


# ---------------------------------------------------------------- loops over chunks


# ``_train_chunk`` is compiled once per rule, lane mode and dtype, a few seconds each. A loop
# that chose among them at run time would compile all twelve the first time it ran; a loop per
# variant, made on first use, compiles only the variants a process needs (a search, whose
# batches are never a lone network and always float64, builds no scalar or float32 one). The
# rule, mode and dtype are the closure's constants: Numba folds them in as literals, and keys
# its disk cache on them, so each loop is cached apart.
@functools.cache
def _training_loop(rule: int, single_lane: bool, float32: bool):
    """The loop over chunks for the rule ``rule`` (a ``rule_key``), lane mode and dtype."""
    @njit(**_JIT)
    def train_chunks(
        first_chunk,
        end_chunk,
        width,
        n_hidden,
        n_outputs,
        weights,
        memory,
        learning_rates,
        momenta,
        x_table,
        y_table,
        orders,
        counts,
        log_likelihood,
    ):
        n_networks = weights.shape[1]
        for chunk in range(first_chunk, end_chunk):
            first = chunk * width
            _train_chunk(
                first,
                min(width, n_networks - first),
                width,
                single_lane,
                float32,
                n_hidden,
                n_outputs,
                rule,
                weights,
                memory,
                learning_rates,
                momenta,
                x_table,
                y_table,
                orders,
                counts,
                log_likelihood,
            )

    name = _RULE_NAMES[rule]
    _LOOP_NAMES[train_chunks] = f"{name} training loop{' for one network' * single_lane}"
    if not (single_lane or float32):
        _LOOP_KEYS[train_chunks] = rule
    return train_chunks


@functools.cache
def _evaluation_loop(single_lane: bool):
    @njit(**_JIT)
    def evaluate_chunks(
        first_chunk, end_chunk, width, n_hidden, n_outputs, weights, x_table, y_table, rows,
        counts, loss, accuracy,
    ):
        n_networks = weights.shape[1]
        for chunk in range(first_chunk, end_chunk):
            first = chunk * width
            _evaluate_chunk(
                first,
                min(width, n_networks - first),
                width,
                single_lane,
                n_hidden,
                n_outputs,
                weights,
                x_table,
                y_table,
                rows,
                counts,
                loss,
                accuracy,
            )

    _LOOP_NAMES[evaluate_chunks] = f"evaluation loop{' for one network' * single_lane}"
    if not single_lane:
        _LOOP_KEYS[evaluate_chunks] = EVALUATION
    return evaluate_chunks


# What each loop is, for compile_notices.
_LOOP_NAMES: dict = {}


def _say_on_stderr(line: str) -> None:
    if not os.environ.get(QUIET_ENV):
        sys.stderr.write(f"sweep: {line}\n")
        sys.stderr.flush()


# Who hears that a loop starts compiling: stderr, unless a caller (the command line) says how,
# or QUIET_ENV is set (`sweep run --quiet`, and its worker processes).
QUIET_ENV = "MOMENTUM_SWEEP_QUIET"
_SAY = [_say_on_stderr]


class _CompileNotice(numba.core.event.Listener):
    def on_start(self, event):
        name = _LOOP_NAMES.get(event.data["dispatcher"])
        if name is not None:  # a loop, not the functions it compiles with it
            say_compiling(f"the trainer kernel's {name}")
            on_cold, _ON_COLD_CACHE[0] = _ON_COLD_CACHE[0], None
            if on_cold is not None:
                on_cold()

    def on_end(self, event):
        pass


# Registered for the process: a pause of seconds on the first use is said, from the Python
# API too, not only from the command line.
numba.core.event.register("numba:compile", _CompileNotice())


# Compiling ahead (``sweep.warmup``): called once when this process first compiles a loop (its
# disk cache is cold, so the other loops it will need are too), and the loops another process
# is compiling meanwhile: rule key (its training loop) or EVALUATION -> a function that waits
# until that process is done with it.
_ON_COLD_CACHE: list = [None]
_COMPILED_ELSEWHERE: dict = {}
EVALUATION = "evaluation"
_LOOP_KEYS: dict = {}  # loop -> its key in _COMPILED_ELSEWHERE


def _wait_if_compiled_elsewhere(loop) -> None:
    key = _LOOP_KEYS.get(loop)
    wait = _COMPILED_ELSEWHERE.get(key)
    if wait is not None:
        wait()  # every thread about to call the loop waits: none compiles it here
        _COMPILED_ELSEWHERE.pop(key, None)


def say_compiling(what: str) -> None:
    """Say, as the loops' own notices are said, that ``what`` is compiling."""
    _SAY[0](f"compiling {what} (once: cached on disk after)")


def on_cold_cache(call) -> None:
    """Call ``call()`` (None: nothing) when this process first starts compiling a loop."""
    _ON_COLD_CACHE[0] = call


def compiled_elsewhere(loop: str, wait) -> None:
    """The many-network float64 loop ``loop`` (a rule's name: its training loop; EVALUATION:
    the evaluation loop) is being compiled into the disk cache by another process: until it is
    done, every call of that loop here calls ``wait()`` first, and then loads it from the cache
    instead of compiling it again. ``wait=None`` forgets it."""
    key = loop if loop == EVALUATION else rule_key(loop)
    if wait is None:
        _COMPILED_ELSEWHERE.pop(key, None)
    else:
        _COMPILED_ELSEWHERE[key] = wait


@contextlib.contextmanager
def compile_notices(say):
    """A context within which ``say`` (not stderr) is called with a line each time one of the
    kernel's loops starts compiling (its first use after an install or a change to this file: a
    few seconds, which a loop loaded from the cache does not cost)."""
    before = _SAY[0]
    _SAY[0] = say
    try:
        yield
    finally:
        _SAY[0] = before


# ---------------------------------------------------------------- the Python interface


class TrainingArguments(NamedTuple):
    """What a training loop takes after its chunk range and width, in its parameters' order
    (Numba's compiled functions take arrays and numbers, not records): checked and cast by
    ``_training_parts``."""

    n_hidden: int
    n_outputs: int
    weights: np.ndarray  # (P, K), float64 or float32, C-contiguous; trained in place
    memory: np.ndarray  # (P, K), the weights' dtype: the rule's memory, updated in place
    learning_rates: np.ndarray  # (K,), the weights' dtype
    momenta: np.ndarray  # (K,), the weights' dtype
    x_table: np.ndarray  # (n_rows, n_inputs), the weights' dtype: every network's items
    y_table: np.ndarray  # (n_rows,) int64 classes
    orders: np.ndarray  # (K, n_max) int32 rows of the table, in the order each visits them
    counts: np.ndarray  # (K,) int64: network k takes counts[k] steps
    log_likelihood: np.ndarray  # (K,) float64, filled: each network's sum of log p(target)


class EvaluationArguments(NamedTuple):
    """What an evaluation loop takes after its chunk range and width, in its parameters'
    order: checked and cast by ``_evaluation_part``."""

    n_hidden: int
    n_outputs: int
    weights: np.ndarray  # (P, K), float64 or float32
    x_table: np.ndarray  # (n_rows, n_inputs), read as float64
    y_table: np.ndarray  # (n_rows,) int64 classes
    rows: np.ndarray  # (K, v_max) int32 rows of each network's validation items
    counts: np.ndarray  # (K,) int64: network k's number of validation items
    loss: np.ndarray  # (K,) float64, filled: mean cross-entropy
    accuracy: np.ndarray  # (K,) float64, filled


def default_threads(n_networks: int) -> int:
    """Threads worth using for ``n_networks``: all of Numba's from PARALLEL_MIN_NETWORKS up."""
    return numba.config.NUMBA_NUM_THREADS if n_networks >= PARALLEL_MIN_NETWORKS else 1


def _width(chunk: int | None, weights: np.ndarray) -> int:
    """Lanes per chunk: ``chunk`` (None: DEFAULT_CHUNK float64 networks, twice as many float32
    ones), or K if fewer, so that a lone network runs as scalar code."""
    if chunk is None:
        chunk = DEFAULT_CHUNK * (8 // weights.dtype.itemsize)
    if not 1 <= chunk <= 1024:
        raise ValueError("chunk must be from 1 to 1024 networks")
    return max(1, min(int(chunk), weights.shape[1]))


@functools.cache
def _threads() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(thread_name_prefix="sweep-kernel")


def _check_rows(name, rows, counts, y_table, n_outputs):
    """The compiled loops trust the rows they read (no bounds checks): checked here first."""
    bad = _first_bad_network(rows, counts, y_table, n_outputs)
    if bad >= 0:
        raise ValueError(
            f"network {bad}: its count must be from 1 to {name}.shape[1], and the rows it "
            "reads must be rows of the table whose classes are from 0 to n_outputs - 1"
        )


def _run(parts, width: int, n_networks: int, threads) -> None:
    """Each ``(loop, arguments)`` of ``parts`` in turn over the chunks of ``n_networks``
    networks, the chunks split into ``threads`` runs of whole chunks, one per thread.

    The compiled loops release the GIL (``nogil``), so Python's threads run them side by side
    (Numba's own parallel loops would cost their compilation, about 15 s, on a clean install).
    A thread takes its chunks through every part: an epoch's training and evaluation cost one
    hand-off to the other thread, about 75 us here, not two."""
    threads = default_threads(n_networks) if threads is None else int(threads)
    if threads < 1:
        raise ValueError("threads must be at least 1")
    n_chunks = (n_networks + width - 1) // width
    threads = max(1, min(threads, n_chunks))
    bounds = [n_chunks * part // threads for part in range(threads + 1)]

    def run(first_chunk: int, end_chunk: int) -> None:
        for loop, arguments in parts:
            if _COMPILED_ELSEWHERE:  # only after an install, while another process compiles
                _wait_if_compiled_elsewhere(loop)
            loop(first_chunk, end_chunk, width, *arguments)

    others = [_threads().submit(run, bounds[part], bounds[part + 1]) for part in range(1, threads)]
    run(bounds[0], bounds[1])
    for other in others:
        other.result()


def _parameter_count(layout: Layout) -> int:
    """``layout.size``, without its dict of shapes and NumPy products: 10 us a call, as much
    as a whole epoch of one network costs here."""
    return (layout.n_inputs + 1) * layout.n_hidden + (layout.n_hidden + 1) * layout.n_outputs


def _check_shapes(name, rows, counts, n_networks):
    if rows.ndim != 2 or rows.shape[0] != n_networks or counts.shape != (n_networks,):
        raise ValueError(f"{name} must be ({n_networks}, n_max) with counts ({n_networks},)")


def train_epoch(
    layout: Layout,
    weights,
    memory,
    learning_rates,
    momenta,
    rule: str,
    x_table,
    y_table,
    orders,
    counts,
    *,
    chunk: int | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """One epoch of online back-propagation for K networks, in place; each network's sum of
    log p(target) over its items (float64 (K,)): its training loss is ``-sum / counts``.

    layout: the networks' sizes (n_inputs = x_table's columns, n_outputs = classes).
    weights: (P, K) C-contiguous, float64 or float32, in ``Layout``'s order; updated in place.
    memory: the rule's memory (``sweep.rules.Rule.memory``), same shape and dtype, zero before
        the first epoch; updated in place.
    learning_rates, momenta: (K,), cast to the weights' dtype as the trainer casts them.
    rule: a rule's name (``sweep.rules.rule_names()``).
    x_table: (n_rows, n_inputs) items, the weights' dtype; y_table: (n_rows,) int class
        indices in [0, n_outputs) (checked for the rows read, as the orders are: ValueError).
    orders: (K, n_max) int rows of the table, network k's items in the order it visits them;
        counts: (K,) int64 in [1, n_max]: network k takes exactly counts[k] steps, on
        orders[k, :counts[k]]; the slots after are not read. Or a ``Shuffles`` (with its own
        counts as ``counts``): each network's order for this epoch is drawn from it first, in
        the compiled loops, as ``numpy.random.Generator.permuted`` would draw it.
    chunk: networks per vector-loop (>= 1); None: DEFAULT_CHUNK float64 networks, twice as
        many float32 ones. Any value gives the same numbers.
    threads: threads over chunks; None picks ``default_threads(K)``. Any count gives the same
        numbers.

    Each item's log p(target) is taken before that item's update, in the weights' dtype, and
    summed in float64 in item order, as ``sweep.train`` takes it.
    """
    parts, log_likelihood = _training_parts(
        layout, weights, memory, learning_rates, momenta, rule, x_table, y_table, orders, counts,
        chunk,
    )
    _run(parts, _width(chunk, weights), weights.shape[1], threads)
    return log_likelihood


def evaluate(
    layout: Layout,
    weights,
    x_table,
    y_table,
    rows,
    counts,
    *,
    chunk: int | None = None,
    threads: int | None = None,
):
    """Each network's mean cross-entropy loss and accuracy on its rows: two float64 (K,) arrays.

    weights: (P, K), float64 or float32 (evaluated in float64, as the trainer evaluates).
    x_table: (n_rows, n_inputs), any float dtype (read as float64); y_table: (n_rows,) ints.
    rows: (K, v_max) int rows of network k's validation items; counts: (K,) in [1, v_max].
    The figures are ``sweep.network.Evaluation``'s bit for bit: the same sums in the same
    order; a network with NaN or infinite logits has NaN loss, and its accuracy counts the
    items whose target is ``numpy.argmax``'s answer (the first NaN, or the first maximum).
    """
    loop, arguments, loss, accuracy = _evaluation_part(
        layout, weights, x_table, y_table, rows, counts, chunk
    )
    _run([(loop, arguments)], _width(chunk, weights), weights.shape[1], threads)
    return loss, accuracy


def train_and_evaluate(
    layout: Layout,
    weights,
    memory,
    learning_rates,
    momenta,
    rule: str,
    x_table,
    y_table,
    orders,
    counts,
    x_val,
    y_val,
    val_rows,
    val_counts,
    *,
    chunk: int | None = None,
    threads: int | None = None,
):
    """``train_epoch`` then ``evaluate`` of the trained weights on (x_val, y_val, val_rows,
    val_counts), with the same arguments and numbers as the two calls, in one pass over the
    chunks: each thread evaluates the chunks it has just trained. Returns (sum of log
    p(target), validation loss, validation accuracy), each float64 (K,)."""
    training_parts, log_likelihood = _training_parts(
        layout, weights, memory, learning_rates, momenta, rule, x_table, y_table, orders, counts,
        chunk,
    )
    # The evaluation reads the weights being trained, in place: float32 ones are read as
    # float64 exactly, as ``evaluate`` of their float64 copy would.
    evaluation_loop, evaluation_arguments, loss, accuracy = _evaluation_part(
        layout, weights, x_val, y_val, val_rows, val_counts, chunk
    )
    parts = [*training_parts, (evaluation_loop, evaluation_arguments)]
    _run(parts, _width(chunk, weights), weights.shape[1], threads)
    return log_likelihood, loss, accuracy


def _training_parts(
    layout, weights, memory, learning_rates, momenta, rule, x_table, y_table, orders, counts,
    chunk,
):
    """The checked arguments of an epoch's training: ([(loop, its arguments after the chunk
    range and width)], the log-likelihood array the training loop fills). Orders given as
    ``Shuffles`` are drawn first, by a loop of their own on the same chunks."""
    n_networks = weights.shape[1]
    dtype = weights.dtype
    if dtype not in (np.float64, np.float32) or memory.dtype != dtype or x_table.dtype != dtype:
        raise ValueError("weights, memory and x_table must share one dtype, float64 or float32")
    if weights.shape != (_parameter_count(layout), n_networks) or memory.shape != weights.shape:
        raise ValueError(f"weights and memory must be ({_parameter_count(layout)}, K)")
    if not (weights.flags.c_contiguous and memory.flags.c_contiguous):
        raise ValueError("weights and memory must be C-contiguous: they are updated in place")
    if x_table.shape[1] != layout.n_inputs or len(y_table) != len(x_table):
        raise ValueError(f"x_table must be (n_rows, {layout.n_inputs}) with y_table (n_rows,)")
    key = rule_key(rule)  # ValueError naming the valid rules for an unknown one
    counts = np.ascontiguousarray(counts, dtype=np.int64)
    y_table = np.ascontiguousarray(y_table, dtype=np.int64)
    parts = []
    if isinstance(orders, Shuffles):
        _check_shuffles(orders, counts, y_table, layout.n_outputs)
        parts.append(orders.part())
        orders = orders.orders
    else:
        orders = _checked_rows("orders", orders, counts, n_networks, y_table, layout.n_outputs)
    log_likelihood = np.empty(n_networks)
    arguments = TrainingArguments(
        n_hidden=layout.n_hidden,
        n_outputs=layout.n_outputs,
        weights=weights,
        memory=memory,
        learning_rates=np.ascontiguousarray(learning_rates, dtype=dtype),
        momenta=np.ascontiguousarray(momenta, dtype=dtype),
        x_table=np.ascontiguousarray(x_table),
        y_table=y_table,
        orders=orders,
        counts=counts,
        log_likelihood=log_likelihood,
    )
    loop = _training_loop(key, _width(chunk, weights) == 1, dtype == np.float32)
    parts.append((loop, arguments))
    return parts, log_likelihood


def _checked_rows(name, rows, counts, n_networks, y_table, n_outputs) -> np.ndarray:
    """``rows`` (K, n_max) as the loops read them, int32, once the rows each network reads
    are checked (ValueError naming the first network whose are not)."""
    rows = np.asarray(rows)
    if rows.dtype != np.int32:
        rows = rows.astype(np.int64, copy=False)  # checked before any narrowing
    _check_shapes(name, rows, counts, n_networks)
    if len(y_table) > _INT32_MAX:
        raise ValueError("the table may hold at most 2**31 - 1 rows")
    _check_rows(name, rows, counts, y_table, n_outputs)
    return np.ascontiguousarray(rows, dtype=np.int32)


def _check_shuffles(shuffles, counts, y_table, n_outputs) -> None:
    """Shuffles draw their rows in range by construction: the ranges they draw from, and the
    classes of those rows, are what is checked (ValueError naming the first bad network)."""
    if len(shuffles) != len(counts) or not np.array_equal(shuffles.counts, counts):
        raise ValueError("counts must be the Shuffles' own: each network's number of items")
    bad = _first_bad_range(shuffles.first_rows, shuffles.counts, y_table, n_outputs)
    if bad >= 0:
        raise ValueError(
            f"network {bad}: the rows it draws must be rows of the table whose classes are "
            "from 0 to n_outputs - 1"
        )


@njit(**_JIT)
def _first_bad_range(first_rows, counts, y_table, n_outputs):
    """The first network whose rows first_rows[k] .. first_rows[k] + counts[k] - 1 are not all
    rows of the table with a class in [0, n_outputs); -1 if none. In one pass over the table
    and one over the networks: a running count of bad rows before each row."""
    n_rows = y_table.shape[0]
    bad_before = np.zeros(n_rows + 1, np.int64)
    for row in range(n_rows):
        bad = y_table[row] < 0 or y_table[row] >= n_outputs
        bad_before[row + 1] = bad_before[row] + (1 if bad else 0)
    for k in range(first_rows.shape[0]):
        start, end = first_rows[k], first_rows[k] + counts[k]
        if start < 0 or end > n_rows or bad_before[end] > bad_before[start]:
            return k
    return -1


def _evaluation_part(layout, weights, x_table, y_table, rows, counts, chunk):
    """The checked arguments of an evaluation loop: (loop, its arguments after the chunk
    range and width, the loss and accuracy arrays it fills)."""
    n_networks = weights.shape[1]
    if weights.shape[0] != _parameter_count(layout) or x_table.shape[1] != layout.n_inputs:
        raise ValueError(
            f"weights must be ({_parameter_count(layout)}, K), x_table (n_rows, {layout.n_inputs})"
        )
    counts = np.ascontiguousarray(counts, dtype=np.int64)
    y_table = np.ascontiguousarray(y_table, dtype=np.int64)
    rows = _checked_rows("rows", rows, counts, n_networks, y_table, layout.n_outputs)
    loss, accuracy = np.empty(n_networks), np.empty(n_networks)
    arguments = EvaluationArguments(
        n_hidden=layout.n_hidden,
        n_outputs=layout.n_outputs,
        weights=np.ascontiguousarray(weights),
        x_table=np.ascontiguousarray(x_table),
        y_table=y_table,
        rows=rows,
        counts=counts,
        loss=loss,
        accuracy=accuracy,
    )
    return _evaluation_loop(_width(chunk, weights) == 1), arguments, loss, accuracy
