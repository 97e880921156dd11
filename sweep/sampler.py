"""Batch TPE: the trial history is fitted once per batch, and the batch's B points come from it.

Optuna's ``TPESampler`` re-reads, re-sorts and re-fits the whole history on every ``ask``, so a
round of B asks over N stored trials costs O(B N) Python-level work and a study's sampler time
grows with the square of its trials. Within a round its model hardly changes: the good/bad
split and both densities are fitted from the finished trials, which do not change while the
round is planned. Here they are fitted once, and B points are drawn from that one fit.

The model is Optuna's multivariate TPE (``optuna/samplers/_tpe/`` in Optuna 5, read for every
rule below), for the at most two float parameters a study searches:

- **Start-up**: below ``n_startup`` finished (COMPLETE or PRUNED) trials, points are uniform in
  the search space (log-uniform on a log scale), as Optuna's ``RandomSampler``.
- **Split**: the ``gamma(n) = min(ceil(0.1 n), 25)`` best finished trials are "good", the rest
  "bad". COMPLETE trials rank by value (lower is better); only if too few are COMPLETE, PRUNED
  ones fill the good set, ranked by the last step they reached (later is better), then by their
  value at that step. Ties go to the lower trial number.
- **Densities** l (good) and g (bad): a product of truncated normals per trial, on the
  parameter's internal scale (log for a log parameter), plus a prior kernel (mean mid-range,
  bandwidth the whole range, weight 1). A kernel's bandwidth in each dimension is the larger gap
  to its neighbours among the trials of its own density (the outermost kernels use their inner
  gap only), clipped to ``[range / min(100, n + 2), range]`` for n trials. Weights are Optuna's
  default: 1 for the 25 most recent trials of the density, a linear ramp from 1/n up for older
  ones (by trial number).
- **Constant liar**: RUNNING trials (other workers', and retries planned for this batch) count
  as bad, as Optuna's ``constant_liar``. Each point drawn for the batch then joins g as a RUNNING
  trial would (its own bandwidth from its neighbours, the ramp weights recomputed with it as the
  newest trial), so the next point is drawn away from it: a batch does not collapse onto one
  point. Unlike Optuna, the bandwidths of the trials around a new point are not refitted.
- **Acquisition**: each point is the best of ``candidates`` (24, Optuna's ``n_ei_candidates``)
  fresh draws from l, scored by log l(x) - log g(x), as one Optuna ask.

Cost: one fit sorts the history once per dimension; scoring evaluates every bad kernel at the
24 B candidates, in float32 blocks that stay in cache (see :meth:`Kernels.weighted_sums`): the
only part that grows with the history, linearly, a few nanoseconds per kernel and candidate.

The history is kept as arrays in trial-number order: :meth:`BatchTPE.add_complete` and
:meth:`BatchTPE.add_pruned` append a batch's finished trials (a merge only when trials arrive
out of number order, as with several workers). The module is pure: no Optuna, no storage; all
randomness comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Optuna's TPESampler defaults (n_startup_trials, n_ei_candidates, prior_weight).
STARTUP_TRIALS = 10
CANDIDATES_PER_POINT = 24
PRIOR_WEIGHT = 1.0
# Trials at the end of the number order that keep full weight (Optuna's default_weights).
FULL_WEIGHT_TRIALS = 25
# A truncated normal whose bounds are this many bandwidths away loses under 1e-17 of its mass
# outside them: its normaliser is 1 in float64.
_NO_TRUNCATION = 8.5
# Elements of one (candidates x kernels) block of the scoring: a MB of float32, cache-sized.
_BLOCK_ELEMENTS = 1 << 18


@dataclass(frozen=True)
class Dimension:
    """One searched parameter: its name and range, on a log scale or not. 0 < low if log."""

    name: str
    low: float
    high: float
    log: bool = False

    def to_unit(self, values) -> np.ndarray:
        """Values on the parameter's internal scale mapped onto [0, 1]."""
        values = np.asarray(values, dtype=float)
        if self.log:
            low, high = math.log(self.low), math.log(self.high)
            return (np.log(values) - low) / (high - low)
        return (values - self.low) / (self.high - self.low)

    def from_unit(self, unit) -> np.ndarray:
        """The inverse of :meth:`to_unit`, kept within [low, high] against rounding."""
        unit = np.asarray(unit, dtype=float)
        if self.log:
            low, high = math.log(self.low), math.log(self.high)
            values = np.exp(low + unit * (high - low))
        else:
            values = self.low + unit * (self.high - self.low)
        return np.clip(values, self.low, self.high)


def default_gamma(n: int) -> int:
    """How many of n finished trials are good: Optuna's ``default_gamma``."""
    return min(math.ceil(0.1 * n), 25)


def ramp_weights(positions, count: int) -> np.ndarray:
    """Weights of the kernels at ``positions`` (0 = lowest trial number) among ``count``
    kernels: Optuna's ``default_weights(count)``, computed per position."""
    positions = np.asarray(positions, dtype=float)
    ramp = count - FULL_WEIGHT_TRIALS  # kernels on the ramp, the oldest ones
    if ramp <= 0:
        return np.ones_like(positions)
    if ramp == 1:
        ramped = np.full_like(positions, 1.0 / count)
    else:
        ramped = 1.0 / count + positions * ((1.0 - 1.0 / count) / (ramp - 1))
    return np.where(positions < ramp, ramped, 1.0)


def ramp_total(count: int) -> float:
    """The sum of ``ramp_weights`` over all ``count`` kernels."""
    ramp = count - FULL_WEIGHT_TRIALS
    if ramp <= 0:
        return float(count)
    if ramp == 1:
        return FULL_WEIGHT_TRIALS + 1.0 / count
    return FULL_WEIGHT_TRIALS + ramp * (1.0 / count + 1.0) / 2


def bandwidths(unit_points: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each kernel's bandwidth per dimension, for kernels at ``unit_points`` (n, D) in the unit
    box: the larger gap to its neighbours (the box's ends count as neighbours, except that the
    outermost kernels of two or more use their inner gap), clipped to [1 / min(100, n + 2), 1].
    Also returns each dimension's sorted coordinates."""
    n, dims = unit_points.shape
    sigmas = np.empty((n, dims))
    sorted_columns = []
    smallest = 1.0 / min(100.0, n + 2.0)
    for d in range(dims):
        order = np.argsort(unit_points[:, d])
        ordered = unit_points[order, d]
        sorted_columns.append(ordered)
        padded = np.concatenate(([0.0], ordered, [1.0]))
        gaps = np.diff(padded)
        sorted_sigmas = np.maximum(gaps[:-1], gaps[1:])
        if n >= 2:
            sorted_sigmas[0] = ordered[1] - ordered[0]
            sorted_sigmas[-1] = ordered[-1] - ordered[-2]
        sigmas[order, d] = np.clip(sorted_sigmas, smallest, 1.0)
    return sigmas, sorted_columns


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    """Phi(z), exactly (``math.erf``) where it is not 0 or 1 in float64."""
    z = np.asarray(z, dtype=float)
    cdf = (z > 0).astype(float)
    inside = np.abs(z) < _NO_TRUNCATION
    if inside.any():
        cdf[inside] = [0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in z[inside]]
    return cdf


def log_normalisers(mus: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """log of each product kernel's density factor: -sum over dimensions of
    log(sigma sqrt(2 pi) Z), Z the normal's mass inside [0, 1]."""
    mass = _normal_cdf((1.0 - mus) / sigmas) - _normal_cdf(-mus / sigmas)
    return -np.sum(np.log(sigmas * math.sqrt(2.0 * math.pi) * mass), axis=1)


@dataclass(frozen=True)
class Kernels:
    """Product kernels of truncated normals on the unit box: centres and bandwidths (K, D) and
    each kernel's log normaliser (K,). A kernel's density at x is
    exp(log_norm - sum((x - mu)^2 / (2 sigma^2)))."""

    mus: np.ndarray
    sigmas: np.ndarray
    log_norm: np.ndarray

    @classmethod
    def at(cls, mus: np.ndarray, sigmas: np.ndarray) -> Kernels:
        return cls(mus, sigmas, log_normalisers(mus, sigmas))

    def part(self, start: int, stop: int) -> Kernels:
        return Kernels(self.mus[start:stop], self.sigmas[start:stop], self.log_norm[start:stop])

    def densities(self, points: np.ndarray) -> np.ndarray:
        """(len(points), K) density of each kernel at each point; for few kernels."""
        z = (points[:, None, :] - self.mus[None]) / self.sigmas[None]
        return np.exp(self.log_norm[None] - 0.5 * np.sum(z * z, axis=2))

    def weighted_sums(self, points: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """(len(points), m): sum over kernels k of density_k(point) * columns[k, :], for many
        kernels (the bulk of g).

        This is where a batch's time goes (every candidate against every kernel), so it runs
        in float32, whose ``exp`` NumPy vectorises (its float64 one is scalar code here), a
        block of kernels at a time. The exponents are built element-wise rather than as a BLAS
        product of expanded squares: on a busy machine BLAS's threads cost far more than they
        save on products this thin. Each term is within about 1e-5 of its float64 value (the
        rounding of (x - mu) / sigma), far below any difference in l/g that decides a pick;
        the sums are kept in float64.
        """
        dims = points.shape[1]
        coordinates = np.asarray(points, dtype=np.float32)
        mus = self.mus.astype(np.float32)
        # exp(log_norm - sum(((x - mu) * scale)^2)), scale = 1 / (sigma sqrt 2)
        scales = (1.0 / (self.sigmas * math.sqrt(2.0))).astype(np.float32)
        log_norm = self.log_norm.astype(np.float32)
        columns = np.asarray(columns, dtype=np.float32)
        total = np.zeros((len(points), columns.shape[1]))
        block = max(1, _BLOCK_ELEMENTS // max(1, len(points)))
        exponents = np.empty((len(points), block), np.float32)
        squares = np.empty_like(exponents)
        for start in range(0, len(mus), block):
            kernels = slice(start, start + block)
            width = len(mus[kernels])
            exponent, square = exponents[:, :width], squares[:, :width]
            exponent[:] = log_norm[kernels]
            for d in range(dims):
                np.subtract.outer(coordinates[:, d], mus[kernels, d], out=square)
                square *= scales[kernels, d]
                np.square(square, out=square)
                exponent -= square
            np.exp(exponent, out=exponent)
            for i in range(columns.shape[1]):
                total[:, i] += exponent @ columns[kernels, i]
        return total


def _prior(dims: int) -> Kernels:
    return Kernels.at(np.full((1, dims), 0.5), np.ones((1, dims)))


class _Columns:
    """Arrays that grow by appending, with spare capacity so an append copies only itself."""

    def __init__(self, **empty: np.ndarray) -> None:
        self._arrays = dict(empty)
        self.size = 0

    def __getitem__(self, name: str) -> np.ndarray:
        return self._arrays[name][: self.size]

    def append(self, **rows: np.ndarray) -> None:
        added = len(next(iter(rows.values())))
        needed = self.size + added
        for name, array in self._arrays.items():
            if needed > len(array):
                grown = np.empty((max(needed, 2 * len(array)),) + array.shape[1:], array.dtype)
                grown[: self.size] = array[: self.size]
                self._arrays[name] = array = grown
            array[self.size: needed] = rows[name]
        self.size = needed

    def reorder(self, order: np.ndarray) -> None:
        for name, array in self._arrays.items():
            array[: self.size] = array[: self.size][order]


class BatchTPE:
    """The finished trials a batch TPE learns from, and its fit.

    ``dimensions``: the searched parameters (at most a handful; the study searches two).
    ``n_startup``: finished trials below which points are random.
    ``candidates``: draws from l per point of a batch.
    """

    def __init__(
        self,
        dimensions: list[Dimension],
        *,
        n_startup: int = STARTUP_TRIALS,
        candidates: int = CANDIDATES_PER_POINT,
    ) -> None:
        self.dimensions = list(dimensions)
        self.n_startup = n_startup
        self.candidates = candidates
        dims = len(self.dimensions)
        # kind: 0 COMPLETE (value = objective), 1 PRUNED (value = the value at `step`, its last
        # reported step; inf if none or not a number).
        self._trials = _Columns(
            number=np.empty(0, np.int64), point=np.empty((0, dims)), kind=np.empty(0, np.int8),
            value=np.empty(0), step=np.empty(0, np.int64),
        )

    def __len__(self) -> int:
        return self._trials.size

    @property
    def numbers(self) -> np.ndarray:
        """The trial numbers held, ascending."""
        return self._trials["number"]

    def state(self) -> dict[str, np.ndarray]:
        """Copies of the arrays held, in trial-number order (for tests and inspection)."""
        names = ("number", "point", "kind", "value", "step")
        return {name: self._trials[name].copy() for name in names}

    def unit_points(self, params) -> tuple[np.ndarray, np.ndarray]:
        """``params`` (n, D) in the parameters' own units mapped into the unit box, and a mask of
        the rows inside the search space (rows outside it, or not finite, are not modelled)."""
        params = np.asarray(params, dtype=float).reshape(-1, len(self.dimensions))
        inside = np.ones(len(params), dtype=bool)
        unit = np.empty_like(params)
        for d, dimension in enumerate(self.dimensions):
            column = params[:, d]
            with np.errstate(invalid="ignore", divide="ignore"):
                inside &= (column >= dimension.low) & (column <= dimension.high)
            unit[:, d] = dimension.to_unit(np.where(inside, column, dimension.high))
        return unit, inside

    def add_complete(self, numbers, params, values) -> None:
        """Append COMPLETE trials: their numbers, parameters (n, D) and objective values."""
        values = np.asarray(values, dtype=float)
        self._add(numbers, params, 0, np.where(np.isnan(values), np.inf, values), 0)

    def add_pruned(self, numbers, params, steps, values) -> None:
        """Append PRUNED trials (diverged ones too): the last step each reported (0 for none)
        and its value there (inf or NaN for none, or a value that is not a number)."""
        values = np.asarray(values, dtype=float)
        values = np.where(np.isnan(values), np.inf, values)
        self._add(numbers, params, 1, values, steps)

    def _add(self, numbers, params, kind, values, steps) -> None:
        numbers = np.asarray(numbers, dtype=np.int64).reshape(-1)
        if len(numbers) == 0:
            return
        unit, inside = self.unit_points(params)
        held = self.numbers
        at = np.minimum(np.searchsorted(held, numbers), max(len(held) - 1, 0))
        if len(np.unique(numbers)) < len(numbers) or (len(held) and (held[at] == numbers).any()):
            raise ValueError("a trial number was added twice")
        count = len(numbers)
        rows = {
            "number": numbers, "point": unit, "kind": np.full(count, kind, np.int8),
            "value": np.broadcast_to(values, (count,)), "step": np.broadcast_to(steps, (count,)),
        }
        rows = {name: np.asarray(row)[inside] for name, row in rows.items()}
        if not inside.any():
            return
        in_order = len(held) == 0 or rows["number"].min() > held[-1]
        self._trials.append(**rows)
        if not in_order or np.any(np.diff(rows["number"]) < 0):
            # Trials finished out of number order (several workers): merge them in.
            self._trials.reorder(np.argsort(self._trials["number"], kind="stable"))

    def fit(self, running_numbers=(), running_params=None) -> TPEModel | RandomModel:
        """The model for the next batch: random below ``n_startup`` finished trials, else TPE.

        ``running_numbers``, ``running_params`` (n, D): RUNNING trials, counted as bad (rows
        outside the search space are left out).
        """
        dims = len(self.dimensions)
        if len(self) < max(self.n_startup, 1) or dims == 0:
            return RandomModel(self.dimensions)
        trials = self._trials
        numbers, points = trials["number"], trials["point"]
        below = _good_trials(trials["kind"], trials["value"], trials["step"],
                             default_gamma(len(self)))
        running_numbers = np.asarray(running_numbers, dtype=np.int64).reshape(-1)
        running_unit, inside = self.unit_points(
            np.empty((0, dims)) if running_params is None else running_params
        )
        running_numbers, running_unit = running_numbers[inside], running_unit[inside]
        bad = np.ones(len(numbers), dtype=bool)
        bad[below] = False
        bad_numbers = np.concatenate([numbers[bad], running_numbers])
        bad_points = np.concatenate([points[bad], running_unit])
        if len(running_numbers):
            order = np.argsort(bad_numbers, kind="stable")
            bad_points = bad_points[order]
        good_points = points[np.sort(below)]
        good_sigmas, _ = bandwidths(good_points)
        bad_sigmas, bad_sorted = bandwidths(bad_points)
        return TPEModel(
            dimensions=self.dimensions,
            good=Kernels.at(good_points, good_sigmas),
            bad=Kernels.at(bad_points, bad_sigmas),
            bad_sorted=bad_sorted,
            candidates=self.candidates,
        )

    def suggest(self, batch_size: int, rng: np.random.Generator, running_numbers=(),
                running_params=None) -> list[dict[str, float]]:
        """``fit`` then ``suggest``: ``batch_size`` points for the next batch."""
        return self.fit(running_numbers, running_params).suggest(batch_size, rng)


def _good_trials(kind: np.ndarray, value: np.ndarray, step: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` best trials (arrays in trial-number order): COMPLETE ones by
    value, then, if too few are COMPLETE, PRUNED ones by last step (later first) and value;
    ties to the lower number. O(n): a partition, then a sort of what it keeps."""
    complete = np.flatnonzero(kind == 0)
    if len(complete) >= count:
        values = value[complete]
        threshold = np.partition(values, count - 1)[count - 1]
        kept = complete[values <= threshold]
        return kept[np.argsort(value[kept], kind="stable")][:count]
    good = complete
    pruned = np.flatnonzero(kind == 1)
    order = np.lexsort((pruned, value[pruned], -step[pruned]))
    return np.concatenate([good, pruned[order][: count - len(good)]])


@dataclass(frozen=True)
class RandomModel:
    """Uniform points in the search space (log-uniform on a log scale)."""

    dimensions: list[Dimension]

    def suggest(self, batch_size: int, rng: np.random.Generator) -> list[dict[str, float]]:
        unit = rng.random((batch_size, len(self.dimensions)))
        return _external(self.dimensions, unit)


def _external(dimensions: list[Dimension], unit: np.ndarray) -> list[dict[str, float]]:
    columns = [dimension.from_unit(unit[:, d]) for d, dimension in enumerate(dimensions)]
    return [
        {dimension.name: float(column[i]) for dimension, column in zip(dimensions, columns)}
        for i in range(len(unit))
    ]


@dataclass(frozen=True)
class TPEModel:
    """One fit of the history: the good density l, the bad density g (RUNNING trials in it) in
    trial-number order, and g's coordinates sorted per dimension (for the bandwidth of each
    point the batch adds to g)."""

    dimensions: list[Dimension]
    good: Kernels
    bad: Kernels
    bad_sorted: list[np.ndarray]
    candidates: int = CANDIDATES_PER_POINT

    def sample_good(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` draws from l (prior kernel included), in the unit box."""
        kernels = _concatenate(self.good, _prior(len(self.dimensions)))
        chosen = rng.integers(0, len(kernels.mus), size=count)
        mus, sigmas = kernels.mus[chosen], kernels.sigmas[chosen]
        draws = mus + sigmas * rng.standard_normal(mus.shape)
        # Each truncated normal keeps over a third of its mass inside (its centre is inside and
        # its bandwidth at most the range): redrawing what falls outside ends in a few rounds.
        outside = (draws < 0) | (draws > 1)
        while outside.any():
            draws[outside] = mus[outside] + sigmas[outside] * rng.standard_normal(outside.sum())
            outside = (draws < 0) | (draws > 1)
        return draws

    def log_good(self, points: np.ndarray) -> np.ndarray:
        """log l at ``points``: the good kernels and the prior, weight 1 each."""
        kernels = _concatenate(self.good, _prior(len(self.dimensions)))
        return np.log(kernels.densities(points).mean(axis=1))

    def suggest(self, batch_size: int, rng: np.random.Generator) -> list[dict[str, float]]:
        """``batch_size`` points: each the best of ``candidates`` draws from l by l/g, with the
        points before it in the batch added to g as RUNNING trials."""
        unit = self.suggest_unit(batch_size, rng)
        return _external(self.dimensions, unit)

    def score(self, params) -> np.ndarray:
        """log l(x) - log g(x) at ``params`` (n, D), in the parameters' own units: what the
        first point of a batch is the best of its candidates by."""
        params = np.asarray(params, dtype=float).reshape(-1, len(self.dimensions))
        unit = np.column_stack([
            dimension.to_unit(params[:, d]) for d, dimension in enumerate(self.dimensions)
        ])
        parts = self._bad_parts(unit)
        return self.log_good(unit) - self._log_bad(parts, slice(None), np.zeros((len(unit), 0)))

    @property
    def _ramped(self) -> int:
        """How many of the oldest bad kernels stay on the weight ramp whatever a batch adds:
        there a kernel's weight is affine in its position, so two sums per candidate stand for
        all of them."""
        return max(0, len(self.bad.mus) - FULL_WEIGHT_TRIALS)

    def _bad_parts(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """g's fitted kernels at ``points``: the ramped head's two sums (of densities, and of
        densities times position), each recent kernel's density, the prior's density."""
        ramped = self._ramped
        head, tail = self.bad.part(0, ramped), self.bad.part(ramped, len(self.bad.mus))
        positions = np.column_stack([np.ones(ramped), np.arange(ramped, dtype=float)])
        return (
            head.weighted_sums(points, positions),
            tail.densities(points),
            _prior(len(self.dimensions)).densities(points)[:, 0],
        )

    def _log_bad(self, parts, rows, liar_densities: np.ndarray) -> np.ndarray:
        """log g at the ``rows`` of ``parts``, with the batch's points so far (their densities
        at those rows, oldest first) among its kernels, every weight as Optuna's TPE would set
        it for that many kernels."""
        head_sums, tail_densities, prior_densities = parts
        fixed, ramped = len(self.bad.mus), self._ramped
        count = fixed + liar_densities.shape[1]
        weighted = (
            tail_densities[rows] @ ramp_weights(np.arange(ramped, fixed), count)
            + liar_densities @ ramp_weights(np.arange(fixed, count), count)
            + PRIOR_WEIGHT * prior_densities[rows]
        )
        if ramped:  # then count > FULL_WEIGHT_TRIALS: the head is on the ramp
            ramp = count - FULL_WEIGHT_TRIALS
            slope = (1.0 - 1.0 / count) / (ramp - 1) if ramp > 1 else 0.0
            weighted = weighted + head_sums[rows] @ np.array([1.0 / count, slope])
        return np.log(weighted / (ramp_total(count) + PRIOR_WEIGHT))

    def suggest_unit(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """As :meth:`suggest`, in the unit box: (batch_size, D)."""
        per_point = self.candidates
        draws = self.sample_good(batch_size * per_point, rng)
        log_good = self.log_good(draws)
        parts = self._bad_parts(draws)
        sorted_columns = [column.copy() for column in self.bad_sorted]
        picked = np.empty((batch_size, len(self.dimensions)))
        liar_densities = np.zeros((len(draws), batch_size))
        for j in range(batch_size):
            group = slice(j * per_point, (j + 1) * per_point)
            log_bad = self._log_bad(parts, group, liar_densities[group, :j])
            best = j * per_point + int(np.argmax(log_good[group] - log_bad))
            picked[j] = draws[best]
            liar = _liar_kernel(draws[best], sorted_columns, len(self.bad.mus) + j + 1)
            rest = slice((j + 1) * per_point, None)
            liar_densities[rest, j] = liar.densities(draws[rest])[:, 0]
        return picked


def _concatenate(first: Kernels, second: Kernels) -> Kernels:
    return Kernels(np.vstack([first.mus, second.mus]), np.vstack([first.sigmas, second.sigmas]),
                   np.concatenate([first.log_norm, second.log_norm]))


def _liar_kernel(point: np.ndarray, sorted_columns: list[np.ndarray], count: int) -> Kernels:
    """The kernel a RUNNING trial at ``point`` adds to g: its bandwidth from its neighbours in
    each dimension, by the rule of :func:`bandwidths` for ``count`` kernels; ``sorted_columns``
    gets the point inserted."""
    sigma = np.empty(len(point))
    for d, column in enumerate(sorted_columns):
        at = int(np.searchsorted(column, point[d]))
        left = column[at - 1] if at > 0 else 0.0
        right = column[at] if at < len(column) else 1.0
        if count >= 2 and at == 0:
            gap = right - point[d]
        elif count >= 2 and at == len(column):
            gap = point[d] - left
        else:
            gap = max(point[d] - left, right - point[d])
        sigma[d] = min(max(gap, 1.0 / min(100.0, count + 2.0)), 1.0)
        sorted_columns[d] = np.insert(column, at, point[d])
    return Kernels.at(point[None], sigma[None])
