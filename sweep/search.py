"""The sweep: Optuna search over learning rate and momentum, trained in vectorised batches.

The search plans, trains and classifies; everything it keeps goes through the storage seam
(:mod:`sweep.store`). Each round it

1. reads the study's new and unfinished trials (finished ones are cached), fails trials whose
   worker is gone (their parameters are retried with the same seed), and stops when the
   declared total is reached;
2. plans a batch of K trials (the batch TPE of :mod:`sweep.sampler` fits the finished trials
   once for the whole batch) and asks them of an in-memory mirror of the study, which holds what
   the pruner compares with: pruning decisions then cost microseconds instead of a storage round
   trip each;
3. writes the K trials to the storage as RUNNING, in one transaction, so other workers see them
   and a killed worker's trials can be recovered;
4. trains the K networks together with ``train_many``; the pruner is consulted in memory, only at
   the epochs it checks, and a pruned or diverged network leaves the batch while the rest go on;
5. writes the batch's results in one transaction: each trial's curves, its state and its value.

Trial states: COMPLETE with the objective value; PRUNED when the pruner stopped it; PRUNED with
``curves.diverged_epoch`` set when it diverged (so TPE, which learns from pruned trials, steers
away from the unstable region; FAIL would hide it from the sampler); FAIL only for trials whose
worker died or was interrupted, and those are retried.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from .errors import SweepError, raise_if_interrupted
from .limits import check_batch
from .records import TrialRecord, get_objective, mean_curve, objective_value
from .sampler import BatchTPE, Dimension
from .store import running as leases
from .store.studies import open_study, read_frozen, to_record, trial_reader
from .train import DIVERGENCE_FACTOR, train_many

# Stands in for a non-finite loss in the in-memory mirror, which must hold finite numbers.
WORST_LOSS = 1e300
# How new trials are trained: sweep.kernel's compiled epochs. Each trial stores the name, and
# replay re-trains it the same way (trials stored without one were trained by NumPy).
ARITHMETIC = "compiled"
# Mixed into a trial's seed to draw its networks' seeds, apart from every other use of it.
NETWORK_SEED_SALT = 0x4E45


@dataclass
class Progress:
    """Counts for a progress line; ``total`` is the study's declared number of trials."""

    total: int
    complete: int = 0
    pruned: int = 0
    diverged: int = 0
    failed: int = 0
    running: int = 0
    added: int = 0
    seconds: dict = field(default_factory=lambda: {"storage": 0.0, "sampler": 0.0, "training": 0.0})

    @property
    def done(self) -> int:
        return self.complete + self.pruned + self.diverged

    def count(self, records: list[TrialRecord]) -> None:
        """Set the state counts from the study's trials."""
        states = [r.state for r in records]
        self.complete = states.count("complete")
        self.pruned = states.count("pruned")
        self.diverged = states.count("diverged")
        self.failed = states.count("failed")
        self.running = states.count("running")


# ---------------------------------------------------------------------------------------------
# Study set-up


def distributions(spec) -> dict[str, FloatDistribution]:
    return {
        name: FloatDistribution(param.low, param.high, log=param.log)
        for name, param in spec.searched().items()
    }


def sampler_seed(spec, n_existing: int) -> int:
    """The seed of a round's sampler: from (study seed, trials so far), so a resumed study
    samples as a fresh one would."""
    return int(np.random.SeedSequence([spec.seed, n_existing]).generate_state(1)[0])


def make_sampler(spec, n_existing: int):
    """The mirror's sampler: Optuna's TPE for ``optuna-tpe``; else a random sampler, which
    fills what nothing else plans (random studies; the baseline's learning rate)."""
    seed = sampler_seed(spec, n_existing)
    if spec.sampler == "optuna-tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=10)
    # tpe: the batch TPE plans its points (see _plan_batch); grid and qmc: every ask is an
    # enqueued point.
    return optuna.samplers.RandomSampler(seed=seed)


def qmc_points(spec, first: int, count: int) -> list[dict[str, float]]:
    """Points ``first`` .. ``first + count - 1`` of the study's scrambled Sobol sequence.

    Drawn here rather than by Optuna's QMCSampler, which keeps its place in the study it samples
    for: the mirror is a fresh study each round, so it would start over every time.
    """
    import scipy.stats  # half a second to import: only QMC studies pay it

    searched = spec.searched()
    if not searched or count <= 0:
        return []
    sobol = scipy.stats.qmc.Sobol(len(searched), scramble=True, seed=spec.seed)
    with warnings.catch_warnings():  # Sobol prefers powers of two; any count is still balanced
        warnings.simplefilter("ignore", UserWarning)
        unit = sobol.random(first + count)[first:]
    points = []
    for row in unit:
        point = {}
        for (name, param), u in zip(searched.items(), row):
            if param.log:
                low, high = np.log(param.low), np.log(param.high)
                point[name] = float(np.exp(low + u * (high - low)))
            else:
                point[name] = float(param.low + u * (param.high - param.low))
            point[name] = min(max(point[name], param.low), param.high)  # exp/log rounding
        points.append(point)
    return points


def make_pruner(spec):
    pruner = spec.pruner
    if pruner.name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=pruner.startup_trials, n_warmup_steps=pruner.warmup_steps
        )
    if pruner.name == "percentile":
        return optuna.pruners.PercentilePruner(
            pruner.percentile, n_startup_trials=pruner.startup_trials,
            n_warmup_steps=pruner.warmup_steps,
        )
    if pruner.name == "threshold":
        return optuna.pruners.ThresholdPruner(
            upper=pruner.threshold, n_warmup_steps=pruner.warmup_steps
        )
    return optuna.pruners.NopPruner()


def checks_pruning(spec, epoch: int) -> bool:
    """Whether the pruner is consulted after ``epoch``: from the warm-up on, every ``interval``."""
    pruner = spec.pruner
    return pruner.name != "none" and epoch >= pruner.warmup_steps and epoch % pruner.interval == 0


# ---------------------------------------------------------------------------------------------
# The in-memory mirror


def pending_retries(
    trials: list[FrozenTrial], records: list[TrialRecord]
) -> list[tuple[FrozenTrial, TrialRecord]]:
    """FAIL trials of momentum-sweep's that no later trial has retried yet, oldest first, each
    with its record (``records[i]`` is ``trials[i]``'s)."""
    retried = {r.retry_of for r in records}
    return [
        (t, r) for t, r in zip(trials, records)
        if r.state == "failed" and t.number not in retried and r.seed >= 0
    ]


def pruner_curve(spec, val_loss: np.ndarray) -> np.ndarray:
    """What the pruner is told at every epoch of a curve: the objective's running curve."""
    return get_objective(spec.objective.name).running_curve(val_loss)


def mirror_trial(trial: FrozenTrial, record: TrialRecord, spec) -> FrozenTrial:
    """A copy of a stored trial for the in-memory mirror, with its curve as intermediate values."""
    val_loss = pruner_curve(spec, record.val_loss)
    # Only what the pruner compares (its check epochs) and what TPE reads of a pruned trial (its
    # last epoch): every epoch would make each ask slower for nothing.
    last = len(val_loss)
    intermediate = {
        epoch: float(value) if math.isfinite(value) else WORST_LOSS
        for epoch, value in enumerate(val_loss, start=1)
        if epoch == last or checks_pruning(spec, epoch)
    }
    return optuna.trial.create_trial(
        state=trial.state,
        value=trial.value if trial.state == TrialState.COMPLETE else None,
        params=trial.params,
        distributions=trial.distributions,
        intermediate_values=intermediate,
    )


def build_mirror(spec, trials: list[FrozenTrial], records: list[TrialRecord]) -> optuna.Study:
    """The in-memory study a round asks its trials of, holding only what reads it: every
    counted trial for Optuna's TPE, else the COMPLETE trials a median or percentile pruner
    compares with (other pruners compare with none)."""
    counted = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    if spec.sampler == "optuna-tpe":
        held = counted
    elif spec.pruner.name in ("median", "percentile"):
        held = (TrialState.COMPLETE,)
    else:
        held = ()
    mirror = optuna.create_study(
        sampler=make_sampler(spec, sum(t.state in counted for t in trials)),
        pruner=make_pruner(spec), direction="minimize",
    )
    mirror.add_trials(
        [mirror_trial(t, r, spec) for t, r in zip(trials, records) if t.state in held]
    )
    return mirror


class BatchTPEFeed:
    """The batch TPE (:mod:`sweep.sampler`) of one ``run_study`` call: built from the stored
    trials at its first round, then given only the trials finished since, each round."""

    def __init__(self, spec) -> None:
        searched = spec.searched()
        self.names = list(searched)
        self.sampler = BatchTPE([
            Dimension(name, param.low, param.high, param.log) for name, param in searched.items()
        ])
        self._fed: set[int] = set()

    def _params(self, trials: list[FrozenTrial]) -> np.ndarray:
        # A trial stored before a parameter was searched lacks it: NaN, outside the space.
        return np.array(
            [[t.params.get(name, math.nan) for name in self.names] for t in trials], dtype=float
        ).reshape(len(trials), len(self.names))

    def feed(self, spec, trials: list[FrozenTrial], records: list[TrialRecord]) -> None:
        """Add the COMPLETE and PRUNED trials not added yet. A PRUNED trial (diverged ones
        too) ranks by the last epoch of its curve and the pruner's figure there, as Optuna's
        TPE ranks the mirror's copy of it."""
        complete, pruned, steps, last_values = [], [], [], []
        for trial, record in zip(trials, records):
            if trial.number in self._fed or trial.state not in (
                TrialState.COMPLETE, TrialState.PRUNED
            ):
                continue
            self._fed.add(trial.number)
            if trial.state == TrialState.COMPLETE:
                complete.append(trial)
                continue
            pruned.append(trial)
            curve = pruner_curve(spec, record.val_loss)
            steps.append(len(curve))
            last_values.append(float(curve[-1]) if len(curve) else math.inf)
        self.sampler.add_complete(
            [t.number for t in complete], self._params(complete), [t.value for t in complete]
        )
        self.sampler.add_pruned([t.number for t in pruned], self._params(pruned), steps,
                                last_values)

    def plan(self, trials: list[FrozenTrial], planned: list[dict], count: int,
             rng: np.random.Generator) -> list[dict[str, float]]:
        """``count`` points, with the stored RUNNING trials and ``planned`` (the batch's points
        planned so far, all parameters given) counted as running."""
        running = [t for t in trials if t.state == TrialState.RUNNING]
        after = max((t.number for t in trials), default=-1) + 1
        numbers = [t.number for t in running] + list(range(after, after + len(planned)))
        params = np.vstack([
            self._params(running),
            np.array([[p[name] for name in self.names] for p in planned]).reshape(
                len(planned), len(self.names)
            ),
        ])
        return self.sampler.suggest(count, rng, numbers, params)


def grid_points(spec) -> list[dict[str, float]]:
    """Every grid point of the searched parameters, in a seeded shuffled order."""
    searched = spec.searched()
    names = list(searched)
    axes = [searched[name].grid() for name in names]
    # Row i of the stacked mesh is parameter i's value at every point, first parameter slowest.
    mesh = np.array(np.meshgrid(*axes, indexing="ij")).reshape(len(names), -1)
    points = [dict(zip(names, column)) for column in mesh.T.tolist()]
    order = np.random.default_rng(spec.seed).permutation(len(points))
    return [points[i] for i in order]


# ---------------------------------------------------------------------------------------------
# The loop


@dataclass
class _Planned:
    mirror_trial: optuna.Trial
    learning_rate: float
    momentum: float
    seed: int
    baseline: bool
    retry_of: int | None
    trial_id: int | None = None


@dataclass(frozen=True)
class _Enqueued:
    """A point the mirror is told to ask next: a retry (its failed trial and seed), the
    momentum-0 baseline, or a grid or QMC point."""

    params: dict
    retry_of: int | None = None
    seed: int | None = None
    baseline: bool = False


def _within(space: dict[str, FloatDistribution], params: dict) -> bool:
    return set(params) == set(space) and all(
        space[name].low <= value <= space[name].high for name, value in params.items()
    )


def _plan_batch(spec, mirror, trials, records, size, tpe: BatchTPEFeed | None = None
                ) -> list[_Planned]:
    """Ask the mirror for ``size`` trials: retries first, then the baseline, then grid or QMC
    points, then the batch TPE's points (``tpe``, fed this round's trials) or whatever the
    mirror's sampler proposes."""
    enqueued: list[_Enqueued] = []
    space = distributions(spec)
    for failed, record in pending_retries(trials, records):
        if len(enqueued) >= size:
            break
        # A retry must fit the current search space (--allow-spec-change may have narrowed it).
        if not _within(space, failed.params):
            continue
        enqueued.append(_Enqueued(dict(failed.params), failed.number, record.seed, record.baseline))
    has_baseline = any(r.baseline for r in records if r.state != "failed")
    if (
        spec.baseline
        and not has_baseline
        and not any(e.baseline for e in enqueued)
        and len(enqueued) < size
    ):
        enqueued.append(_Enqueued({"momentum": 0.0}, baseline=True))
    if spec.sampler == "grid":
        taken = {tuple(sorted(t.params.items())) for t in trials if t.state != TrialState.FAIL}
        taken |= {tuple(sorted(e.params.items())) for e in enqueued}
        for point in grid_points(spec):
            if len(enqueued) >= size:
                break
            if tuple(sorted(point.items())) not in taken:
                enqueued.append(_Enqueued(point))
        size = min(size, len(enqueued))
    elif spec.sampler == "qmc":
        # The sequence continues after the points already used (retries re-use theirs).
        used = sum(1 for r in records if r.state != "failed" and not r.baseline)
        fresh = size - len(enqueued)
        enqueued += [_Enqueued(point) for point in qmc_points(spec, used, fresh)]
    for entry in enqueued:
        mirror.enqueue_trial(entry.params)
    asked = [mirror.ask(space) for _ in range(min(size, len(enqueued)))]
    # Numbered as the trials the storage counts, then this batch's: a trial's seed is drawn
    # from its number.
    first = sum(
        t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING) for t in trials
    )
    if tpe is not None and size > len(asked):
        rng = np.random.default_rng(sampler_seed(spec, first))
        for point in tpe.plan(trials, [t.params for t in asked], size - len(asked), rng):
            mirror.enqueue_trial(point)
    asked += [mirror.ask(space) for _ in range(size - len(asked))]
    fixed = {
        name: param.fixed
        for name, param in (("learning_rate", spec.learning_rate), ("momentum", spec.momentum))
        if param.fixed is not None
    }
    planned = []
    for index, trial in enumerate(asked):
        values = fixed | trial.params
        entry = enqueued[index] if index < len(enqueued) else _Enqueued({})
        seed = entry.seed
        if seed is None:
            seed = int(
                np.random.SeedSequence([spec.seed, first + index]).generate_state(1)[0]
                & 0x7FFFFFFF
            )
        planned.append(_Planned(
            trial, float(values["learning_rate"]), float(values["momentum"]), seed,
            entry.baseline, entry.retry_of,
        ))
    return planned


def _settings(spec, plan: _Planned) -> dict:
    """What a trial stores of its own: enough to find it again, replay it and retry it."""
    settings = {
        "learning_rate": plan.learning_rate,
        "momentum": plan.momentum,
        "seed": plan.seed,
        "rule": spec.rule,
        "arithmetic": ARITHMETIC,
    }
    if plan.baseline:
        settings["baseline"] = True
    if plan.retry_of is not None:
        settings["retry_of"] = plan.retry_of
    return settings


def run_study(
    spec,
    storage,
    *,
    datasets=None,
    allow_spec_change: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    max_batches: int | None = None,
) -> Progress:
    """Top the study up to ``spec.trials`` finished-or-running trials; returns the counts.

    Completed trials are never redone; FAIL trials (a killed or interrupted worker) are retried
    with their parameters and seed.
    ``datasets``: ``spec.datasets()`` if already loaded.
    ``max_batches`` stops early (tests, benchmarks).
    """
    if datasets is None:
        datasets = spec.datasets()
    # A batch that would not fit in memory is refused before anything is written.
    check_batch(spec, datasets, min(spec.batch_size, spec.trials))
    clock = time.perf_counter
    started = clock()
    study_id = open_study(spec, storage, allow_spec_change=allow_spec_change)
    progress = Progress(total=spec.trials)
    space = distributions(spec)
    reader = trial_reader(storage)
    tpe = BatchTPEFeed(spec) if spec.sampler == "tpe" else None
    finished_records: dict[int, TrialRecord] = {}
    batches = 0
    while max_batches is None or batches < max_batches:
        raise_if_interrupted()
        # Counting, sampling and writing the batch as RUNNING happen under one lock, so that
        # workers sharing the study see each other's batches: the total is reached exactly and
        # TPE's constant liar knows what the others are training.
        with leases.planning_lock(storage, study_id):
            tick = clock()
            trials = read_frozen(reader, study_id)
            if leases.fail_abandoned(storage, trials):
                trials = read_frozen(reader, study_id)
            records = _records(trials, finished_records)
            progress.count(records)
            counted = sum(
                t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
                for t in trials
            )
            remaining = spec.trials - counted
            progress.seconds["storage"] += clock() - tick
            if on_progress:
                on_progress(progress)
            if remaining <= 0:
                break
            tick = clock()
            if tpe is not None:
                tpe.feed(spec, trials, records)
            mirror = build_mirror(spec, trials, records)
            planned = _plan_batch(
                spec, mirror, trials, records, min(spec.batch_size, remaining), tpe
            )
            progress.seconds["sampler"] += clock() - tick
            if not planned:
                break
            tick = clock()
            trial_ids = leases.create_running(
                storage, study_id,
                [{name: getattr(plan, name) for name in space} for plan in planned],
                space,
                [_settings(spec, plan) for plan in planned],
            )
            for plan, trial_id in zip(planned, trial_ids):
                plan.trial_id = trial_id
            progress.seconds["storage"] += clock() - tick
        try:
            batch = _train_batch(spec, datasets, storage, planned, progress)
            tick = clock()
            leases.finish(storage, _outcomes(spec, planned, batch))
            progress.seconds["storage"] += clock() - tick
        except BaseException:
            leases.fail(storage, [plan.trial_id for plan in planned])
            raise
        progress.added += len(planned)
        batches += 1
    progress.seconds["total"] = clock() - started
    return progress


def _records(trials: list[FrozenTrial], finished: dict[int, TrialRecord]) -> list[TrialRecord]:
    """Each trial's record. A finished trial never changes, so its record is made once and kept
    in ``finished`` (by trial number): making every trial's each round grew with the study."""
    records = []
    for trial in trials:
        record = finished.get(trial.number)
        if record is None:
            record = to_record(trial)
            if trial.state.is_finished():
                finished[trial.number] = record
        records.append(record)
    return records


def network_seeds(trial_seed: int, count: int) -> list[int]:
    """The seeds of a trial's ``count`` networks: the trial's own seed when it has one network
    (so trials stored before trials had several replay as they were), else ``count`` distinct
    seeds drawn from it."""
    if count == 1:
        return [trial_seed]
    state = np.random.SeedSequence([trial_seed, NETWORK_SEED_SALT]).generate_state(count)
    return [int(word & 0x7FFFFFFF) for word in state]


def network_folds(spec) -> list[int]:
    """The fold of each of a trial's networks, in the order they train: fold-major."""
    return [fold for fold in range(spec.folds) for _ in range(spec.repeats)]


def _train_batch(spec, datasets, storage, planned: list[_Planned], progress: Progress):
    """Train every planned trial's networks in one ``train_many`` call: trial k's networks are
    rows k * n .. k * n + n - 1 (n = folds x repeats). The pruner sees each trial's mean
    validation loss; a trial whose pruner says stop, or one of whose networks diverged, leaves
    the batch whole."""
    clock = time.perf_counter
    n = spec.networks_per_trial
    folds = network_folds(spec)
    learning_rates = np.repeat([p.learning_rate for p in planned], n)
    momenta = np.repeat([p.momentum for p in planned], n)
    seeds = [seed for plan in planned for seed in network_seeds(plan.seed, n)]
    dataset_index = np.tile(folds, len(planned))
    divergence_loss = DIVERGENCE_FACTOR * np.log(datasets[0].n_classes)
    objective = get_objective(spec.objective.name)
    mean_val_loss = np.full((len(planned), spec.epochs), np.nan)  # each trial's, per epoch
    renew_at = time.time() + leases.LEASE_SECONDS / 3
    sampler_seconds = 0.0

    def on_epoch(report):
        nonlocal renew_at, sampler_seconds
        raise_if_interrupted()
        # Networks leave only with their whole trial, so each trial here has all n of them,
        # consecutive: the trial's mean is a reshape away.
        trials = report.trials[::n] // n
        mean_val_loss[trials, report.epoch - 1] = report.val_loss.reshape(-1, n).mean(axis=1)
        if time.time() > renew_at:
            renew_at = time.time() + leases.LEASE_SECONDS / 3
            training = [planned[k] for k in trials]
            leases.renew_leases(
                storage, [plan.trial_id for plan in training],
                [_settings(spec, plan) for plan in training],
            )
        # A trial one of whose networks diverged is settled: its other networks stop with it.
        stop = (~(report.train_loss <= divergence_loss)).reshape(-1, n).any(axis=1)
        if checks_pruning(spec, report.epoch):
            tick = clock()
            for i, k in enumerate(trials):
                value = objective.running(mean_val_loss[k, : report.epoch])
                trial = planned[k].mirror_trial
                trial.report(float(value) if math.isfinite(value) else WORST_LOSS, report.epoch)
                stop[i] |= trial.should_prune()
            sampler_seconds += clock() - tick
        return np.repeat(stop, n) if stop.any() else None

    tick = clock()
    batch = train_many(
        datasets, learning_rates, momenta, seeds, dataset_index=dataset_index, **spec.network(),
        on_epoch=on_epoch, arithmetic=ARITHMETIC,
    )
    progress.seconds["training"] += clock() - tick - sampler_seconds
    progress.seconds["sampler"] += sampler_seconds
    return batch


def trial_outcome(spec, runs: list) -> tuple[TrialState, float | None, list[float | None]]:
    """A trial's state, value and each network's value, from its networks' runs.

    PRUNED without a value if any network diverged (a setting that diverges on some seed or
    fold is never recommended); PRUNED with the mean of the objectives so far if the pruner
    stopped it; else COMPLETE with the mean of the networks' objectives.
    """
    if any(run.diverged_epoch for run in runs):
        return TrialState.PRUNED, None, [None] * len(runs)
    objective = get_objective(spec.objective.name)
    if any(run.stopped_epoch for run in runs):
        if not objective.valued_when_pruned:
            return TrialState.PRUNED, None, [None] * len(runs)
        values = [objective.running(r.val_loss[: r.epochs_trained]) for r in runs]
        return TrialState.PRUNED, float(np.mean(values)), values
    values = [objective_value(spec.objective, run.val_loss) for run in runs]
    return TrialState.COMPLETE, float(np.mean(values)), values


def _outcomes(spec, planned: list[_Planned], batch) -> list[leases.Outcome]:
    n = spec.networks_per_trial
    folds = network_folds(spec)
    outcomes = []
    for k, plan in enumerate(planned):
        runs = [batch.run(k * n + j) for j in range(n)]
        state, value, values = trial_outcome(spec, runs)
        outcomes.append(leases.Outcome(plan.trial_id, state, value, runs, folds, values))
    return outcomes


# ---------------------------------------------------------------------------------------------
# Replay


def _same(stored: np.ndarray, fresh: np.ndarray) -> bool:
    """Whether a stored curve is the fresh one over the epochs stored. Non-finite values are
    stored as null (JSON has no inf): a diverged epoch's inf reads back as NaN."""
    n = stored.shape[-1]
    fresh = fresh[..., :n]
    return np.array_equal(stored, np.where(np.isfinite(fresh), fresh, np.nan), equal_nan=True)


def replay(spec, record: TrialRecord):
    """Re-train a stored trial's networks, in the arithmetic that trained them, and say whether
    its stored curves come out bit-identical: each network's, and the trial's mean.

    Returns (identical: bool, val_loss): the fresh mean validation curve. A pruned or diverged
    trial is compared over the epochs it trained.
    """
    if record.seed < 0:
        raise SweepError(f"trial {record.number} has no stored seed to replay")
    networks = record.networks
    seeds = list(networks.seeds) if networks else [record.seed]
    folds = list(networks.folds) if networks else [0]
    batch = train_many(
        spec.data.load_folds(max(folds) + 1 if networks else 1),
        record.learning_rate, record.momentum, seeds, dataset_index=folds, **spec.network(),
        arithmetic=record.arithmetic,
    )
    names = ("train_loss", "val_loss", "val_accuracy")
    fresh = {name: getattr(batch, name) for name in names}
    identical = all(_same(getattr(record, name), mean_curve(fresh[name])) for name in names)
    if networks is not None:
        identical &= all(_same(getattr(networks, name), fresh[name]) for name in names)
    return identical, mean_curve(fresh["val_loss"])
