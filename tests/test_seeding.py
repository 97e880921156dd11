"""sweep.seeding makes K generators at once; each must be numpy.random.default_rng(seed) exactly."""

import numpy as np
import pytest

from sweep.seeding import generators, pcg64_states

# One-word seeds, the edges of two-word ones, and the largest int64.
SEEDS = [*range(3000), 2**31, 2**32 - 1, 2**32, 2**32 + 1, 2**40 + 7, 123456789012345, 2**63 - 1]


def test_state_words_are_numpy_seed_sequences():
    expected = np.stack(
        [np.random.SeedSequence(seed).generate_state(4, np.uint64) for seed in SEEDS]
    )
    np.testing.assert_array_equal(pcg64_states(SEEDS), expected)


@pytest.mark.parametrize("seed", [0, 1, 2**32 - 1, 2**32, 2**63 - 1])
def test_generators_draw_what_default_rng_draws(seed):
    made, reference = generators([seed, 5])[0], np.random.default_rng(seed)
    assert made.bit_generator.state == reference.bit_generator.state
    np.testing.assert_array_equal(made.random(7), reference.random(7))
    ranks = np.broadcast_to(np.arange(30), (3, 30))
    np.testing.assert_array_equal(made.permuted(ranks, axis=1), reference.permuted(ranks, axis=1))


def test_one_seed_and_numpy_integers():
    (made,) = generators(np.int64(42))
    assert made.bit_generator.state == np.random.default_rng(42).bit_generator.state


def test_negative_and_nested_seeds_are_refused():
    with pytest.raises(ValueError, match="non-negative"):
        generators([3, -1])
    with pytest.raises(ValueError, match="1-D sequence"):
        generators([[1, 2], [3, 4]])
