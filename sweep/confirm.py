"""Confirmation: the search's top settings race on networks the search never saw, and the race
picks the answer.

A search's best figure is the lowest of many noisy means, measured on one partition of the
data, so it flatters the setting it names and may be a lucky split. This module takes the
search's top candidates (all within its noise of the best, at least ``MIN_CANDIDATES``, at most
a budget), builds a sequence of fresh networks (fresh seeds and fresh fold partitions), and
runs :func:`sweep.race.run_race` over them: the race drops the clearly worse in rounds and picks
among the settings it cannot separate by a stated safety rule (the lowest effective learning
rate within one standard error of the best). Every figure shown for the answer comes from the
race's networks.

Race network j is the same for every candidate and every study of the same setup (data set and
network: its data, hidden units, initialisation, epochs and folds), so the picks of two studies
of one setup can be compared network by network. With ``folds = k``, networks come in blocks of
k, one per fold of a fresh partition of the items (each block its own partition, dealt with a
seed the search never used); with ``folds = 1`` each network gets a fresh split of its own.
Telling a lucky partition from a good setting needs many partitions, not many seeds on one:
on Iris the spread between folds is several times the spread between seeds.

A race network fails when it blows up (the trainer's divergence) or ends worse than guessing
(validation loss above ln(classes), the chance level); a setting with one failure is never
picked, and the pick reports an upper bound on its failure rate.

``measure`` (``sweep.measure``) measures one setting the same way, so a user's check agrees with
the page.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

import numpy as np

from . import race
from .analysis import completed
from .errors import raise_if_interrupted
from .records import epochs_to_target, get_objective
from .rules import get_rule
from .sources import spec_folds, spec_table
from .stats import INTERVAL_METHOD, mean_interval, standard_error
from .train import train_many

# Mixed into the race's seeds, apart from every other use of a setup's numbers.
RACE_SALT = 0x52414345
MIN_CANDIDATES = 5
MAX_CANDIDATES = 10
MAX_NETWORKS = 40
MIN_FAILURE_FREE = 20
# How many standard errors of the best trial's figure count as "within the search's noise".
NOISE_STANDARD_ERRORS = 2.0
# After the race, the pick alone trains on further race networks until its figure's 95 %
# interval is planned to lie within PICK_PRECISION of its mean, or it has MAX_PICK_NETWORKS.
# On small data the spread between fold partitions dominates: on a 178-row CSV, 20-network
# means of one setting ranged over 0.094-0.124 and the 40 race networks read 11 % below the
# setting's mean on 200, so a user re-measuring the answer on fresh networks would have found
# it 20 % worse than reported. Networks that small cost milliseconds.
PICK_PRECISION = 0.05
MAX_PICK_NETWORKS = 200
ARITHMETIC = "compiled"


# ---------------------------------------------------------------------------------------------
# The race's networks


def setup_digest(spec) -> str:
    """What a study's race networks depend on: its data set and network, not its search."""
    setup = {"data": spec.to_dict()["data"], "hidden": spec.hidden, "init": spec.init,
             "epochs": spec.epochs, "folds": spec.folds}
    return hashlib.sha256(json.dumps(setup, sort_keys=True).encode()).hexdigest()


def _words(spec, *path) -> int:
    """A 31-bit seed from the setup and ``path``, apart from the search's seeds."""
    entropy = [int(setup_digest(spec)[:16], 16), RACE_SALT, *path]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] & 0x7FFFFFFF)


def block_size(spec) -> int:
    """Networks per fresh partition: one per fold, or one with a single split."""
    return spec.folds


def race_network(spec, j: int) -> tuple[int, int, int]:
    """Race network j: (partition seed, fold, training seed)."""
    block, fold = divmod(j, block_size(spec))
    return _words(spec, 0, block), fold, _words(spec, 1, j)


class RaceNetworks:
    """The race's networks for one study: the data's items loaded once, each partition split
    once, and any run of networks trained for several settings in one vectorised batch."""

    def __init__(self, spec):
        self.spec = spec
        self.table = spec_table(spec.data)
        self.partitions: dict[int, list] = {}  # partition seed -> its folds

    def datasets(self, first: int, count: int) -> tuple[list, list[int], list[int]]:
        """(data sets, the position of each network's among them, each network's seed)."""
        datasets, index, seeds, place = [], [], [], {}
        for j in range(first, first + count):
            partition, fold, seed = race_network(self.spec, j)
            if partition not in self.partitions:
                self.partitions[partition] = spec_folds(
                    self.spec.data, self.spec.folds, table=self.table, split_seed=partition)
            if (partition, fold) not in place:
                place[(partition, fold)] = len(datasets)
                datasets.append(self.partitions[partition][fold])
            index.append(place[(partition, fold)])
            seeds.append(seed)
        return datasets, index, seeds

    def train(self, settings: list[tuple[float, float]], first: int, count: int) -> dict:
        """Networks ``first`` .. ``first + count - 1`` for each (learning rate, momentum) of
        ``settings``, in one batch. Returns arrays of shape (len(settings), count): "value"
        (the study's objective), "failed", "epochs" (epochs to target, NaN if never),
        "final_loss", "lowest_loss", "final_accuracy" (NaN for a network that blew up)."""
        raise_if_interrupted()  # a taken signal ends the race at its next round
        spec = self.spec
        datasets, index, seeds = self.datasets(first, count)
        k = len(settings)
        batch = train_many(
            datasets,
            np.repeat([lr for lr, _ in settings], count),
            np.repeat([mu for _, mu in settings], count),
            np.tile(seeds, k),
            dataset_index=np.tile(index, k), **spec.network(), arithmetic=ARITHMETIC,
        )
        objective = get_objective(spec.objective.name)
        chance = math.log(datasets[0].n_classes)
        target = spec.objective.target_loss
        shape = (k, count)
        figures = {name: np.full(shape, np.nan) for name in
                   ("value", "epochs", "final_loss", "lowest_loss", "final_accuracy")}
        figures["failed"] = np.zeros(shape, dtype=bool)
        for n in range(k * count):
            row, column = divmod(n, count)
            val_loss = batch.val_loss[n]
            final = float(val_loss[-1])
            blew_up = bool(batch.diverged_epoch[n])
            figures["failed"][row, column] = blew_up or not (final <= chance)
            if blew_up:
                continue
            figures["value"][row, column] = objective.final(val_loss, target)
            reached = epochs_to_target(val_loss, target)
            figures["epochs"][row, column] = np.nan if reached is None else reached
            figures["final_loss"][row, column] = final
            figures["lowest_loss"][row, column] = float(np.min(val_loss))
            figures["final_accuracy"][row, column] = float(batch.val_accuracy[n][-1])
        return figures


# ---------------------------------------------------------------------------------------------
# Measuring one setting, as a study does


@dataclass(frozen=True)
class Measurement:
    """One setting measured on a study's race networks 0 .. n - 1.

    value: the study's objective, mean with its interval (``sweep.stats.mean_interval``) over
    the networks that did not fail. failures: networks that blew up or ended worse than
    chance. epochs_to_target: mean over the networks that reached the target, and ``reached``
    how many did. values: each network's objective (NaN for a failed one).
    """

    learning_rate: float
    momentum: float
    networks: int
    value: object
    failures: int
    failure_rate_upper: float
    epochs_to_target: object
    reached: int
    final_val_loss: float
    final_val_accuracy: float
    values: tuple[float, ...]

    def to_dict(self) -> dict:
        return {
            "learning_rate": self.learning_rate,
            "momentum": self.momentum,
            "networks": self.networks,
            "value": self.value.to_dict(),
            "failures": self.failures,
            "failure_rate_upper": self.failure_rate_upper,
            "epochs_to_target": self.epochs_to_target.to_dict(),
            "reached": self.reached,
            "final_val_loss": _json_float(self.final_val_loss),
            "final_val_accuracy": _json_float(self.final_val_accuracy),
        }


def _json_float(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _measurement(learning_rate, momentum, figures: dict, row: int, networks: int) -> Measurement:
    from .stats import failure_upper_bound

    failed = figures["failed"][row, :networks]
    values = figures["value"][row, :networks]
    ok = ~failed
    epochs = figures["epochs"][row, :networks]
    reached = ok & np.isfinite(epochs)
    return Measurement(
        learning_rate=float(learning_rate),
        momentum=float(momentum),
        networks=networks,
        value=mean_interval(values[ok]),
        failures=int(failed.sum()),
        failure_rate_upper=failure_upper_bound(int(failed.sum()), networks),
        epochs_to_target=mean_interval(epochs[reached]),
        reached=int(reached.sum()),
        final_val_loss=float(np.mean(figures["final_loss"][row, :networks][ok]))
        if ok.any() else math.nan,
        final_val_accuracy=float(np.mean(figures["final_accuracy"][row, :networks][ok]))
        if ok.any() else math.nan,
        values=tuple(float(v) for v in values),
    )


def measure(study, learning_rate: float, momentum: float, *,
            networks: int | None = None) -> Measurement:
    """Measure (learning_rate, momentum) the way a study confirms its answer: the study's
    objective, data, folds, network and epochs, on its race networks 0 .. ``networks`` - 1
    (fresh seeds and fresh partitions, none its search used). The answer's setting measured
    with the answer's network count gives exactly the figure its page and ``sweep best`` show.

    study: a study file's path, or a ``StudySpec``. networks >= 1; by default the race's own
    budget (``MAX_NETWORKS`` in whole partitions).
    """
    if not hasattr(study, "search_fingerprint"):
        from .spec import load_study

        study = load_study(study)
    spec = study
    if networks is None:
        networks = _whole_blocks(MAX_NETWORKS, block_size(spec))
    if networks < 1:
        raise ValueError("networks must be at least 1")
    figures = RaceNetworks(spec).train([(learning_rate, momentum)], 0, networks)
    return _measurement(learning_rate, momentum, figures, 0, networks)


# ---------------------------------------------------------------------------------------------
# The race over the search's top candidates


def candidates(spec, records, limit: int = MAX_CANDIDATES) -> list:
    """The search's top settings worth racing, best first: every completed trial within
    ``NOISE_STANDARD_ERRORS`` standard errors of the best trial's figure (over its networks),
    at least ``MIN_CANDIDATES`` and at most ``limit``, one trial per setting."""
    done = sorted(completed(records), key=lambda r: (r.value, r.number))
    if not done:
        return []
    best = done[0]
    noise = (NOISE_STANDARD_ERRORS * standard_error(best.network_values)
             if best.network_count > 1 else math.inf)
    chosen, seen = [], set()
    for record in done:
        setting = (record.learning_rate, record.momentum)
        if setting in seen:
            continue
        if len(chosen) >= max(MIN_CANDIDATES, 1) and record.value > best.value + noise:
            break
        seen.add(setting)
        chosen.append(record)
        if len(chosen) >= limit:
            break
    return chosen


def confirm(spec, records, *, max_candidates: int = MAX_CANDIDATES,
            max_networks: int = MAX_NETWORKS) -> dict:
    """Race the search's top candidates and return the confirmation as plain JSON-able data.

    Keys: "pick" (trial, learning_rate, momentum, effective_rate, value {mean, low, high, n},
    networks, failures, failure_rate_upper, epochs_to_target, reached, final_val_loss,
    final_val_accuracy, search_value, optimism), "candidates" (each: trial, learning_rate,
    momentum, effective_rate, search_value, race mean, networks, failures, dropped_round,
    dropped_by, values), "equivalent" (the sentence) and "survivors" (trials), "stop",
    "networks_trained", "settings", "interval" (the method) and "networks" (how they were
    drawn). "pick" is None when every candidate failed.
    """
    chosen = candidates(spec, records, max_candidates)
    if not chosen:
        raise ValueError("no completed trial to confirm")
    rule = get_rule(spec.rule)
    entrants = [race.Candidate(r.number, r.learning_rate, r.momentum,
                               rule.effective_rate(r.learning_rate, r.momentum)) for r in chosen]
    networks = RaceNetworks(spec)
    block = block_size(spec)
    first_round = _whole_blocks(10, block)
    # Whole partitions, and never fewer than a pick needs.
    budget = max(_whole_blocks(max_networks, block), first_round, MIN_FAILURE_FREE)
    figures = {name: np.full((len(chosen), budget), np.nan)
               for name in ("value", "epochs", "final_loss", "lowest_loss", "final_accuracy")}
    figures["failed"] = np.zeros((len(chosen), budget), dtype=bool)

    def measure(positions, first, count):
        settings = [(chosen[i].learning_rate, chosen[i].momentum) for i in positions]
        trained = networks.train(settings, first, count)
        for name, values in trained.items():
            figures[name][list(positions), first:first + count] = values
        return trained["value"], trained["failed"]

    # Every survivor races to the full budget: the pick's figure and the equivalent set are then
    # measured on as many networks as the budget allows, at a cost of seconds.
    result = race.run_race(entrants, measure, first_round=first_round, round_size=first_round,
                           max_networks=budget, min_failure_free=budget)
    by_key = {r.number: (i, r) for i, r in enumerate(chosen)}
    pick = None
    if result.pick is not None:
        row, record = by_key[result.pick.candidate.key]
        pick_figures = _measured_to_precision(
            networks, (record.learning_rate, record.momentum),
            {name: values[row:row + 1, :result.pick.networks] for name, values in figures.items()},
            block)
        measured = _measurement(record.learning_rate, record.momentum, pick_figures, 0,
                                pick_figures["value"].shape[1])
        pick = {
            "trial": record.number,
            **measured.to_dict(),
            "effective_rate": result.pick.candidate.effective_rate,
            "search_value": record.value,
            "search_networks": record.network_count,
            # How far the search's own figure undercut the race's: the price of picking the
            # best of many noisy figures.
            "optimism": (measured.value.mean - record.value) / measured.value.mean,
        }
    outcomes = []
    for entrant, record in zip(entrants, chosen):
        outcome = result.outcome(entrant.key)
        outcomes.append({
            "trial": record.number,
            "learning_rate": record.learning_rate,
            "momentum": record.momentum,
            "effective_rate": entrant.effective_rate,
            "search_value": record.value,
            "race_mean": _json_float(outcome.mean),
            "networks": outcome.networks,
            "failures": outcome.failures,
            "dropped_round": outcome.dropped_round,
            "dropped_by": outcome.dropped_by,
            "values": [_json_float(v) for v in outcome.values[: outcome.networks]],
        })
    return {
        "pick": pick,
        "candidates": outcomes,
        "survivors": list(result.survivors),
        "equivalent": result.equivalent_sentence(),
        "stop": result.stop,
        "networks_trained": result.networks_trained,
        "rounds": len(result.rounds),
        "settings": {**result.settings, "max_candidates": max_candidates,
                     "max_networks": max_networks, "pick_precision": PICK_PRECISION,
                     "max_pick_networks": MAX_PICK_NETWORKS},
        "interval": INTERVAL_METHOD,
        "networks": _networks_description(spec),
    }


def networks_for_precision(values: np.ndarray, block: int) -> int:
    """How many networks put the 95 % interval of the mean of ``values`` (one figure per
    network) within ``PICK_PRECISION`` of it, planned from their spread by the normal
    approximation: at least ``len(values)``, at most ``MAX_PICK_NETWORKS``, in whole blocks."""
    finite = values[np.isfinite(values)]
    have = len(values)
    if len(finite) < 2 or not np.mean(finite) > 0:
        return have
    wanted = (1.96 * np.std(finite, ddof=1) / (PICK_PRECISION * np.mean(finite))) ** 2
    return max(have, min(MAX_PICK_NETWORKS, _whole_blocks(math.ceil(wanted), block)))


def _measured_to_precision(networks: RaceNetworks, setting: tuple[float, float], figures: dict,
                           block: int) -> dict:
    """The pick's figures (each (1, n)) extended by the race networks that follow until
    ``networks_for_precision`` is met: planned once from the race's networks, so the stopping
    point does not depend on the new networks' values."""
    have = figures["value"].shape[1]
    wanted = networks_for_precision(figures["value"][0][~figures["failed"][0]], block)
    if wanted <= have:
        return figures
    more = networks.train([setting], have, wanted - have)
    return {name: np.concatenate([figures[name], more[name]], axis=1) for name in figures}


def confirm_study(storage, name: str, spec, *, max_candidates: int = MAX_CANDIDATES,
                  max_networks: int = MAX_NETWORKS) -> dict:
    """Race the stored study's candidates (``confirm``) and keep the result in the storage with
    the key of what it was raced from; returns it."""
    from .store.studies import confirmation_key, read_records, save_confirmation

    budget = {"max_candidates": max_candidates, "max_networks": max_networks}
    confirmation = confirm(spec, read_records(storage, name), **budget)
    # Keyed on the settings it stores, as current_confirmation reads them back.
    confirmation["key"] = confirmation_key(storage, name, spec, confirmation["settings"])
    save_confirmation(storage, name, confirmation)
    return confirmation


def _whole_blocks(networks: int, block: int) -> int:
    """``networks`` rounded up to whole partitions."""
    return -(-networks // block) * block


def _networks_description(spec) -> str:
    if spec.folds > 1:
        return (f"fresh seeds on fresh {spec.folds}-fold partitions of the data (one network per "
                "fold of each partition), none the search used")
    return "fresh seeds, each on a fresh stratified split of the data, none the search used"
