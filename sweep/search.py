"""The sweep: Optuna search over learning rate and momentum, trained in vectorised batches.

The only module that drives Optuna trials. Each round it

1. reads the study's new and unfinished trials from the storage (finished ones are cached),
   fails trials whose worker is gone (their parameters are retried with the same seed), and
   stops when the declared total is reached;
2. builds an in-memory mirror of the study and asks it for a batch of K trials: sampling and
   pruning decisions then cost microseconds instead of a storage round trip each;
3. writes the K trials to the storage as RUNNING, in one transaction (``sweep.bulk``), so other
   workers see them and a killed worker's trials can be recovered;
4. trains the K networks together with ``train_many``; the pruner is consulted in memory, only at
   the epochs it checks, and a pruned or diverged network leaves the batch while the rest go on;
5. writes the batch's results in one transaction: each trial's curves as one JSON attribute,
   its state and its value.

Trial states: COMPLETE with the objective value; PRUNED when the pruner stopped it; PRUNED with
``curves.diverged_epoch`` set when it diverged (so TPE, which learns from pruned trials, steers
away from the unstable region; FAIL would hide it from the sampler); FAIL only for trials whose
worker died or was interrupted, and those are retried.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import optuna
import scipy.stats
import sqlalchemy
from optuna.distributions import FloatDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from . import bulk
from .data import load_dataset
from .storage import sqlite_path
from .train import train, train_many

# A RUNNING trial whose worker has not renewed its lease for this long is taken as dead.
LEASE_SECONDS = 300.0
SPEC_ATTR, FINGERPRINT_ATTR = "spec", "search_fingerprint"
FINGERPRINT_WAIT_SECONDS = 30.0
TRIAL_ATTR, CURVES_ATTR = "sweep", "curves"
# Stands in for a non-finite loss in the in-memory mirror, which must hold finite numbers.
WORST_LOSS = 1e300

optuna.logging.set_verbosity(optuna.logging.WARNING)


class SweepError(Exception):
    """A problem the user can fix; the message is one line."""


def changed_search_error(spec) -> SweepError:
    """The refusal of a study file whose search differs from the study stored under its name."""
    return SweepError(
        f"{spec.path}: study {spec.name!r} was stored with a different data set, network or "
        "search space; give it a new name, or pass --allow-spec-change to add trials anyway"
    )


@dataclass(frozen=True)
class TrialRecord:
    """One stored trial as plain data: what the analysis and the report work from."""

    number: int
    state: str  # "complete" | "pruned" | "diverged" | "failed" | "running"
    learning_rate: float
    momentum: float
    seed: int
    value: float | None
    baseline: bool
    diverged_epoch: int | None
    stopped_epoch: int | None
    train_loss: np.ndarray
    val_loss: np.ndarray
    val_accuracy: np.ndarray


@dataclass
class Progress:
    """Counts for a progress line; ``total`` is the study's declared number of trials."""

    total: int
    complete: int = 0
    pruned: int = 0
    diverged: int = 0
    failed: int = 0
    added: int = 0
    seconds: dict = field(default_factory=lambda: {"storage": 0.0, "sampler": 0.0, "training": 0.0})

    @property
    def done(self) -> int:
        return self.complete + self.pruned + self.diverged


# ---------------------------------------------------------------------------------------------
# Objectives


def objective_value(objective, val_loss: np.ndarray) -> float:
    """The study's objective for a finished curve (lower is better)."""
    if objective.name == "final_val_loss":
        return float(val_loss[-1])
    if objective.name == "auc_val_loss":
        return float(np.mean(val_loss))
    reached = np.flatnonzero(val_loss <= objective.target_loss)
    # Never reaching the target counts as one epoch more than the budget.
    return float(reached[0] + 1 if len(reached) else len(val_loss) + 1)


def running_objective(objective, val_loss_so_far: np.ndarray) -> float:
    """What the pruner is told after an epoch: the objective's value if training stopped now.

    For epochs-to-target the current validation loss stands in (lower is closer).
    """
    if objective.name == "auc_val_loss":
        return float(np.mean(val_loss_so_far))
    return float(val_loss_so_far[-1])


# ---------------------------------------------------------------------------------------------
# Study set-up


def distributions(spec) -> dict[str, FloatDistribution]:
    return {
        name: FloatDistribution(param.low, param.high, log=param.log)
        for name, param in spec.searched().items()
    }


def dataset_for(spec):
    data = spec.data
    if data.source == "csv":
        return load_dataset(data.path, target=data.target, validation_fraction=data.validation_fraction, seed=data.seed)
    if data.source == "synthetic":
        return load_dataset(
            "synthetic", validation_fraction=data.validation_fraction, seed=data.seed,
            items=data.items, inputs=data.inputs, classes=data.classes, noise=data.noise,
        )
    return load_dataset("iris", validation_fraction=data.validation_fraction, seed=data.seed)


def open_study(spec, storage, *, allow_spec_change: bool = False) -> int:
    """The study's id in ``storage``, creating it if new; refuses a study whose search changed."""
    try:
        study_id = storage.get_study_id_from_name(spec.name)
    except KeyError:
        study_id = None
    if study_id is not None:
        stored = storage.get_study_user_attrs(study_id).get(FINGERPRINT_ATTR)
        # Another worker may have created the study an instant ago and not yet stored its
        # fingerprint: give a study with no trials yet a moment before calling it foreign.
        deadline = time.monotonic() + (FINGERPRINT_WAIT_SECONDS if storage.get_n_trials(study_id) == 0 else 0)
        while stored is None and time.monotonic() < deadline:
            time.sleep(0.1)
            stored = storage.get_study_user_attrs(study_id).get(FINGERPRINT_ATTR)
        if stored is None:
            raise SweepError(f"study {spec.name!r} exists in the storage but was not made by momentum-sweep; give the study a new name")
        if stored != spec.search_fingerprint():
            if not allow_spec_change:
                raise changed_search_error(spec)
            storage.set_study_user_attr(study_id, SPEC_ATTR, spec.to_dict())
            storage.set_study_user_attr(study_id, FINGERPRINT_ATTR, spec.search_fingerprint())
        return study_id
    study = optuna.create_study(storage=storage, study_name=spec.name, direction="minimize", load_if_exists=True)
    study.set_user_attr(SPEC_ATTR, spec.to_dict())
    study.set_user_attr(FINGERPRINT_ATTR, spec.search_fingerprint())
    return study._study_id


def stored_spec(storage, study_name: str):
    """The StudySpec stored with a study when it was created, or None for a study that
    momentum-sweep did not make; SweepError for a study that does not exist."""
    from .spec import spec_from_dict

    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        raise SweepError(f"no study named {study_name!r} in the storage") from None
    stored = storage.get_study_user_attrs(study_id).get(SPEC_ATTR)
    return spec_from_dict(stored) if stored else None


def make_sampler(spec, n_existing: int):
    """A sampler seeded from (study seed, trials so far), so a resumed study samples as a fresh one would."""
    seed = int(np.random.SeedSequence([spec.seed, n_existing]).generate_state(1)[0])
    if spec.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=10)
    # grid and qmc: every ask is an enqueued point (see _planned_points); the random sampler only
    # fills what is left.
    return optuna.samplers.RandomSampler(seed=seed)


def qmc_points(spec, first: int, count: int) -> list[dict[str, float]]:
    """Points ``first`` .. ``first + count - 1`` of the study's scrambled Sobol sequence.

    Drawn here rather than by Optuna's QMCSampler, which keeps its place in the study it samples
    for: the mirror is a fresh study each round, so it would start over every time.
    """
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
                point[name] = float(np.exp(np.log(param.low) + u * (np.log(param.high) - np.log(param.low))))
            else:
                point[name] = float(param.low + u * (param.high - param.low))
            point[name] = min(max(point[name], param.low), param.high)  # exp/log rounding
        points.append(point)
    return points


def make_pruner(spec):
    pruner = spec.pruner
    if pruner.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=pruner.startup_trials, n_warmup_steps=pruner.warmup_steps)
    if pruner.name == "percentile":
        return optuna.pruners.PercentilePruner(
            pruner.percentile, n_startup_trials=pruner.startup_trials, n_warmup_steps=pruner.warmup_steps
        )
    if pruner.name == "threshold":
        return optuna.pruners.ThresholdPruner(upper=pruner.threshold, n_warmup_steps=pruner.warmup_steps)
    return optuna.pruners.NopPruner()


def checks_pruning(spec, epoch: int) -> bool:
    """Whether the pruner is consulted after ``epoch``: from the warm-up on, every ``interval``."""
    pruner = spec.pruner
    return pruner.name != "none" and epoch >= pruner.warmup_steps and epoch % pruner.interval == 0


# ---------------------------------------------------------------------------------------------
# Reading stored trials


def _curve(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _json_curve(values: np.ndarray, epochs: int) -> list:
    """A curve as JSON: its epochs trained, non-finite values as null (JSON has no NaN)."""
    return [float(v) if math.isfinite(v) else None for v in values[:epochs]]


def to_record(trial: FrozenTrial) -> TrialRecord:
    info = trial.user_attrs.get(TRIAL_ATTR, {})
    curves = trial.user_attrs.get(CURVES_ATTR, {})
    diverged = curves.get("diverged_epoch")
    state = {
        TrialState.COMPLETE: "complete",
        TrialState.PRUNED: "diverged" if diverged else "pruned",
        TrialState.FAIL: "failed",
        TrialState.RUNNING: "running",
        TrialState.WAITING: "waiting",
    }[trial.state]
    return TrialRecord(
        number=trial.number,
        state=state,
        learning_rate=float(info.get("learning_rate", math.nan)),
        momentum=float(info.get("momentum", math.nan)),
        seed=int(info.get("seed", -1)),
        value=trial.value if trial.state in (TrialState.COMPLETE, TrialState.PRUNED) else None,
        baseline=bool(info.get("baseline", False)),
        diverged_epoch=diverged,
        stopped_epoch=curves.get("stopped_epoch"),
        train_loss=_curve(curves.get("train_loss", [])),
        val_loss=_curve(curves.get("val_loss", [])),
        val_accuracy=_curve(curves.get("val_accuracy", [])),
    )


def read_records(storage, study_name: str) -> list[TrialRecord]:
    """Every trial of the study ``study_name`` as a TrialRecord, in trial-number order."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        raise SweepError(f"no study named {study_name!r} in the storage") from None
    return [to_record(t) for t in storage.get_all_trials(study_id, deepcopy=False)]


# ---------------------------------------------------------------------------------------------
# Recovery


def _alive(host: str, pid: int) -> bool | None:
    """Whether process ``pid`` on ``host`` runs; None when it is on another machine."""
    if host != socket.gethostname():
        return None
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_abandoned(storage, trials: list[FrozenTrial]) -> int:
    """Fail RUNNING trials whose worker is gone (dead process here, or an expired lease)."""
    now = time.time()
    failed = 0
    for trial in trials:
        if trial.state != TrialState.RUNNING:
            continue
        info = trial.user_attrs.get(TRIAL_ATTR, {})
        alive = _alive(info.get("host", ""), int(info.get("pid", -1)))
        # The lease also covers this host: a dead worker whose process id was reused.
        if not info or alive is False or info.get("lease_until", 0) < now:
            try:
                if storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                    failed += 1
            except UpdateFinishedTrialError:
                pass  # another worker finished or failed it first
    return failed


def pending_retries(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """FAIL trials that no later trial has retried yet, oldest first."""
    retried = {t.user_attrs.get(TRIAL_ATTR, {}).get("retry_of") for t in trials}
    return [t for t in trials if t.state == TrialState.FAIL and t.number not in retried and TRIAL_ATTR in t.user_attrs]


# ---------------------------------------------------------------------------------------------
# The in-memory mirror


def mirror_trial(trial: FrozenTrial, spec) -> FrozenTrial:
    """A copy of a stored trial for the in-memory mirror, with its curve as intermediate values."""
    curves = trial.user_attrs.get(CURVES_ATTR, {})
    val_loss = _curve(curves.get("val_loss", []))
    if spec.objective.name == "auc_val_loss":  # running_objective for every epoch at once
        val_loss = np.cumsum(val_loss) / np.arange(1, len(val_loss) + 1)
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


def build_mirror(spec, trials: list[FrozenTrial]) -> optuna.Study:
    kept = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)]
    mirror = optuna.create_study(sampler=make_sampler(spec, len(kept)), pruner=make_pruner(spec), direction="minimize")
    mirror.add_trials([mirror_trial(t, spec) for t in kept])
    return mirror


def grid_points(spec) -> list[dict[str, float]]:
    """Every grid point of the searched parameters, in a seeded shuffled order."""
    searched = spec.searched()
    names = list(searched)
    axes = [searched[name].grid() for name in names]
    points = [dict(zip(names, values)) for values in np.array(np.meshgrid(*axes, indexing="ij")).reshape(len(names), -1).T.tolist()]
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


def _plan_batch(spec, mirror, trials, size) -> list[_Planned]:
    """Ask the mirror for ``size`` trials: retries first, then the baseline, then grid or QMC
    points, then whatever the sampler proposes."""
    enqueued: list[tuple[dict, int | None, int | None, bool]] = []  # params, retry_of, seed, baseline
    space = distributions(spec)
    for failed in pending_retries(trials):
        if len(enqueued) >= size:
            break
        # A retry must fit the current search space (--allow-spec-change may have narrowed it).
        if set(failed.params) != set(space) or not all(space[n]._contains(v) for n, v in failed.params.items()):
            continue
        info = failed.user_attrs[TRIAL_ATTR]
        enqueued.append((dict(failed.params), failed.number, int(info["seed"]), bool(info.get("baseline"))))
    has_baseline = any(t.user_attrs.get(TRIAL_ATTR, {}).get("baseline") for t in trials if t.state != TrialState.FAIL)
    if spec.baseline and not has_baseline and not any(e[3] for e in enqueued) and len(enqueued) < size:
        enqueued.append(({"momentum": 0.0}, None, None, True))
    if spec.sampler == "grid":
        taken = {tuple(sorted(t.params.items())) for t in trials if t.state != TrialState.FAIL}
        taken |= {tuple(sorted(e[0].items())) for e in enqueued}
        for point in grid_points(spec):
            if len(enqueued) >= size:
                break
            if tuple(sorted(point.items())) not in taken:
                enqueued.append((point, None, None, False))
        size = min(size, len(enqueued))
    elif spec.sampler == "qmc":
        # The sequence continues after the points already used (retries re-use theirs).
        used = sum(1 for t in trials if t.state != TrialState.FAIL and not t.user_attrs.get(TRIAL_ATTR, {}).get("baseline"))
        fresh = size - len(enqueued)
        enqueued += [(point, None, None, False) for point in qmc_points(spec, used, fresh)]
    for params, *_ in enqueued:
        mirror.enqueue_trial(params)
    fixed = {name: param.fixed for name, param in (("learning_rate", spec.learning_rate), ("momentum", spec.momentum)) if param.fixed is not None}
    planned = []
    for index in range(size):
        trial = mirror.ask(space)
        values = fixed | trial.params
        retry_of, seed, baseline = (enqueued[index][1:] if index < len(enqueued) else (None, None, False))
        if seed is None:
            seed = int(np.random.SeedSequence([spec.seed, trial.number]).generate_state(1)[0] & 0x7FFFFFFF)
        planned.append(_Planned(trial, float(values["learning_rate"]), float(values["momentum"]), seed, baseline, retry_of))
    return planned


def _trial_info(spec, plan: _Planned) -> dict:
    info = {
        "learning_rate": plan.learning_rate,
        "momentum": plan.momentum,
        "seed": plan.seed,
        "rule": spec.rule,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "lease_until": time.time() + LEASE_SECONDS,
    }
    if plan.baseline:
        info["baseline"] = True
    if plan.retry_of is not None:
        info["retry_of"] = plan.retry_of
    return info


def run_study(
    spec,
    storage,
    *,
    dataset=None,
    allow_spec_change: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    max_batches: int | None = None,
) -> Progress:
    """Top the study up to ``spec.trials`` finished-or-running trials; returns the counts.

    Completed trials are never redone; FAIL trials (a killed or interrupted worker) are retried
    with their parameters and seed. ``dataset``: the spec's data if already loaded.
    ``max_batches`` stops early (tests, benchmarks).
    """
    if dataset is None:
        dataset = dataset_for(spec)
    clock = time.perf_counter
    started = clock()
    study_id = open_study(spec, storage, allow_spec_change=allow_spec_change)
    progress = Progress(total=spec.trials)
    space = distributions(spec)
    # Optuna's read cache: each batch re-reads only new trials and ones not finished at the last
    # read (finished trials never change), instead of every trial with its curves. It is what
    # optuna.create_study wraps an RDB storage in; without it (a future Optuna), read it all.
    cached = getattr(optuna.storages, "_CachedStorage", None)
    reader = cached(storage) if cached else storage
    batches = 0
    while max_batches is None or batches < max_batches:
        # Counting, sampling and writing the batch as RUNNING happen under one lock, so that
        # workers sharing the study see each other's batches: the total is reached exactly and
        # TPE's constant liar knows what the others are training.
        with planning_lock(storage, study_id):
            tick = clock()
            trials = reader.get_all_trials(study_id, deepcopy=False)
            if fail_abandoned(storage, trials):
                trials = reader.get_all_trials(study_id, deepcopy=False)
            _count(progress, trials)
            counted = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING) for t in trials)
            remaining = spec.trials - counted
            progress.seconds["storage"] += clock() - tick
            if on_progress:
                on_progress(progress)
            if remaining <= 0:
                break
            tick = clock()
            mirror = build_mirror(spec, trials)
            planned = _plan_batch(spec, mirror, trials, min(spec.batch_size, remaining))
            progress.seconds["sampler"] += clock() - tick
            if not planned:
                break
            tick = clock()
            # One transaction: a worker interrupted here leaves none of the batch behind.
            trial_ids = bulk.create_running(storage, study_id, [
                bulk.NewTrial(
                    params={name: (plan.learning_rate if name == "learning_rate" else plan.momentum) for name in space},
                    distributions=space,
                    user_attrs={TRIAL_ATTR: _trial_info(spec, plan)},
                )
                for plan in planned
            ])
            for plan, trial_id in zip(planned, trial_ids):
                plan.trial_id = trial_id
            progress.seconds["storage"] += clock() - tick
        try:
            batch = _train_batch(spec, dataset, storage, planned, progress)
            tick = clock()
            _store_results(spec, storage, planned, batch)
            progress.seconds["storage"] += clock() - tick
        except BaseException:
            _fail_in_flight(storage, planned)
            raise
        progress.added += len(planned)
        batches += 1
    progress.seconds["total"] = clock() - started
    return progress


def _fail_in_flight(storage, planned: list[_Planned]) -> None:
    """Interrupted (Ctrl-C) or broken mid-batch: fail the batch's trials so that the next run
    retries them; trials already finished stay as they are."""
    for plan in planned:
        try:
            storage.set_trial_state_values(plan.trial_id, TrialState.FAIL)
        except Exception:  # already finished, or the storage itself is what broke
            pass


@contextlib.contextmanager
def planning_lock(storage, study_id: int):
    """Hold the study's planning lock: a file lock beside a SQLite database (workers on one
    machine), a PostgreSQL advisory lock on PostgreSQL (workers on many). Other back ends get no
    lock; workers there may overshoot the total by up to one batch each.
    """
    path = sqlite_path(str(storage.url))
    if path is not None:
        with open(f"{path}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    elif storage.engine.dialect.name == "postgresql":
        key = 0x5357_0000 + study_id  # "SW" + study: one lock per study
        with storage.engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
    else:
        yield


def _count(progress: Progress, trials) -> None:
    records = [to_record(t) for t in trials]
    progress.complete = sum(r.state == "complete" for r in records)
    progress.pruned = sum(r.state == "pruned" for r in records)
    progress.diverged = sum(r.state == "diverged" for r in records)
    progress.failed = sum(r.state == "failed" for r in records)


def _train_batch(spec, dataset, storage, planned: list[_Planned], progress: Progress):
    clock = time.perf_counter
    learning_rates = [p.learning_rate for p in planned]
    momenta = [p.momentum for p in planned]
    seeds = [p.seed for p in planned]
    val_sums = np.zeros(len(planned))
    renew_at = time.time() + LEASE_SECONDS / 3
    sampler_seconds = 0.0

    def on_epoch(report):
        nonlocal renew_at, sampler_seconds
        val_sums[report.trials] += report.val_loss
        if time.time() > renew_at:
            renew_at = time.time() + LEASE_SECONDS / 3
            for k in report.trials:
                try:
                    storage.set_trial_user_attr(planned[k].trial_id, TRIAL_ATTR, _trial_info(spec, planned[k]))
                except UpdateFinishedTrialError:
                    pass  # already failed by another worker; _store_results skips it too
        if not checks_pruning(spec, report.epoch):
            return None
        tick = clock()
        stop = np.zeros(len(report.trials), dtype=bool)
        for i, k in enumerate(report.trials):
            value = (val_sums[k] / report.epoch) if spec.objective.name == "auc_val_loss" else report.val_loss[i]
            trial = planned[k].mirror_trial
            trial.report(float(value) if math.isfinite(value) else WORST_LOSS, report.epoch)
            stop[i] = trial.should_prune()
        sampler_seconds += clock() - tick
        return stop

    tick = clock()
    batch = train_many(
        dataset, learning_rates, momenta, seeds,
        hidden=spec.hidden, epochs=spec.epochs, rule=spec.rule, init=spec.init, on_epoch=on_epoch,
    )
    progress.seconds["training"] += clock() - tick - sampler_seconds
    progress.seconds["sampler"] += sampler_seconds
    return batch


def _store_results(spec, storage, planned: list[_Planned], batch) -> None:
    """Each trial's curves, state and value, the whole batch in one transaction.

    A trial another worker took for abandoned (our lease ran out: a suspended machine, or clocks
    apart) and failed is left failed; its retry will train it again.
    """
    results = []
    for k, plan in enumerate(planned):
        run = batch.run(k)
        trained = run.epochs_trained
        curves = {
            "train_loss": _json_curve(run.train_loss, trained),
            "val_loss": _json_curve(run.val_loss, trained),
            "val_accuracy": _json_curve(run.val_accuracy, trained),
            "diverged_epoch": run.diverged_epoch,
            "stopped_epoch": run.stopped_epoch,
        }
        if run.diverged_epoch:
            state, value = TrialState.PRUNED, None
        elif run.stopped_epoch:
            # A pruned trial's value is the objective so far; epochs-to-target has none yet
            # (its pruner follows the loss), and a loss would mix units with epoch counts.
            state, value = TrialState.PRUNED, None
            if spec.objective.name != "epochs_to_target":
                value = running_objective(spec.objective, run.val_loss[:trained])
        else:
            state, value = TrialState.COMPLETE, objective_value(spec.objective, run.val_loss)
        results.append(bulk.Finished(plan.trial_id, state, value, {CURVES_ATTR: curves}))
    bulk.finish(storage, results)


# ---------------------------------------------------------------------------------------------
# Replay


def replay(spec, record: TrialRecord):
    """Re-train a stored trial alone and say whether its stored curves come out bit-identical.

    Returns (identical: bool, run). A pruned or diverged trial is compared over the epochs it
    trained.
    """
    if record.seed < 0:
        raise SweepError(f"trial {record.number} has no stored seed to replay")
    run = train(
        dataset_for(spec), record.learning_rate, record.momentum, record.seed,
        hidden=spec.hidden, epochs=spec.epochs, rule=spec.rule, init=spec.init,
    )
    n = len(record.val_loss)
    identical = all(
        np.array_equal(stored, fresh[:n], equal_nan=True)
        for stored, fresh in ((record.train_loss, run.train_loss), (record.val_loss, run.val_loss), (record.val_accuracy, run.val_accuracy))
    )
    # Non-finite values are stored as null: a diverged epoch's inf compares equal to NaN.
    if not identical and record.diverged_epoch:
        identical = all(
            np.array_equal(np.where(np.isfinite(fresh[:n]), fresh[:n], np.nan), stored, equal_nan=True)
            for stored, fresh in ((record.train_loss, run.train_loss), (record.val_loss, run.val_loss))
        )
    return identical, run
