"""One random generator per network, made for all K networks at once.

A network's generator is ``numpy.random.default_rng(seed)``: a PCG64 seeded through NumPy's
``SeedSequence``, which turns the seed into state words by a small integer hash. Made one at a
time, through NumPy's scalar and small-array calls, a generator costs 10-14 us: 2 % of training
256 networks for 20 epochs. ``generators`` runs the same hash over all K seeds at once, in
uint32 NumPy arithmetic, and hands each PCG64 its finished state words: a third of the time or
less, and every generator is bit for bit ``default_rng(seed)``.

The hash is O'Neill's seed_seq alternative as NumPy's ``numpy/random/bit_generator.pyx`` writes
it, with its default pool of four words. ``tests/test_seeding.py`` compares it with the
installed NumPy's own over thousands of seeds, one- and two-word ones. Were a NumPy release to
hash differently, that test would fail, and trials seeded here would keep their numbers.
"""

from __future__ import annotations

import numpy as np
from numpy.random.bit_generator import ISeedSequence

_POOL_WORDS = 4
_STATE_WORDS = 4  # uint64 words PCG64 asks for: its 128-bit state and increment
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_MULT_L, _MIX_MULT_R = np.uint32(0xCA01F9DD), np.uint32(0x4973F715)
_SHIFT = np.uint32(16)
_MASK32 = 0xFFFFFFFF


class _HashMix:
    """SeedSequence's ``hashmix``, with the running multiplier it keeps between calls. The
    multipliers are the same for every seed, so one walk serves all K seeds."""

    def __init__(self, start: int, multiplier: int):
        self.value, self.multiplier = start, multiplier

    def hash(self, words: np.ndarray) -> np.ndarray:
        words = words ^ np.uint32(self.value)
        self.value = (self.value * self.multiplier) & _MASK32
        words = words * np.uint32(self.value)
        return words ^ (words >> _SHIFT)


def _mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    result = _MIX_MULT_L * x - _MIX_MULT_R * y
    return result ^ (result >> _SHIFT)


def _pool(seeds: np.ndarray) -> list[np.ndarray]:
    """``SeedSequence(seed).pool`` of each seed, as four (K,) uint32 words."""
    # A seed is its 32-bit words, lowest first; below 2**32 it is one word, and the pool's
    # other words hash a 0, the same as a high word of 0.
    words = [
        (seeds & np.uint64(_MASK32)).astype(np.uint32),
        (seeds >> np.uint64(32)).astype(np.uint32),
    ]
    words += [np.zeros_like(words[0])] * (_POOL_WORDS - len(words))
    hashes = _HashMix(_INIT_A, _MULT_A)
    pool = [hashes.hash(word) for word in words]
    for source in range(_POOL_WORDS):
        for target in range(_POOL_WORDS):
            if source != target:
                pool[target] = _mix(pool[target], hashes.hash(pool[source]))
    return pool


def pcg64_states(seeds) -> np.ndarray:
    """(K, 4) uint64: ``SeedSequence(seed).generate_state(4, np.uint64)`` of each seed, which
    PCG64 takes as its 128-bit state and increment. seeds: one int or a 1-D sequence of ints
    in [0, 2**63), converted as ``np.asarray(seeds, dtype=np.int64)`` converts them."""
    seeds = np.atleast_1d(np.asarray(seeds, dtype=np.int64))
    if seeds.ndim != 1:
        raise ValueError(
            f"seeds must be one integer or a 1-D sequence of them, not shape {seeds.shape}"
        )
    if np.any(seeds < 0):
        raise ValueError("seeds must be non-negative integers")
    pool = _pool(seeds.astype(np.uint64))
    hashes = _HashMix(_INIT_B, _MULT_B)
    halves = [hashes.hash(pool[i % _POOL_WORDS]) for i in range(2 * _STATE_WORDS)]
    low, high = np.stack(halves[0::2], axis=1), np.stack(halves[1::2], axis=1)
    return low.astype(np.uint64) | (high.astype(np.uint64) << np.uint64(32))


class _GivenState(ISeedSequence):
    """A seed sequence whose state words are already made: PCG64 asks it for them once."""

    def __init__(self, words: np.ndarray):
        self.words = words

    def generate_state(self, n_words, dtype=np.uint32):
        if n_words != len(self.words) or np.dtype(dtype) != self.words.dtype:
            # A NumPy whose PCG64 seeds itself differently: refuse rather than seed it wrongly.
            raise ValueError(
                f"PCG64 asked for {n_words} {np.dtype(dtype)} words; made {self.words.shape}"
            )
        # PCG64 reads the words' memory directly: a strided view would seed it wrongly.
        return np.ascontiguousarray(self.words)


def generators(seeds) -> list[np.random.Generator]:
    """``[numpy.random.default_rng(seed) for seed in seeds]``, bit for bit, for int seeds in
    [0, 2**63). The generators cannot ``spawn()``: they hold their state, not a SeedSequence."""
    return [
        np.random.Generator(np.random.PCG64(_GivenState(words))) for words in pcg64_states(seeds)
    ]
