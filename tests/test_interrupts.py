"""An interrupt is never lost: one that Python would drop (raised inside a garbage-collection
callback) is delivered again, silently, to the main flow."""

import subprocess
import sys

SCRIPT = """
import signal, sys, time, weakref
from sweep.errors import catch_interrupts

if sys.argv[1] == "slow":  # a busy machine: the hook is held up once it has set up the retry
    import threading

    def slowly(call):
        def held_up(*args):
            done = call(*args)
            deadline = time.monotonic() + 0.05
            while time.monotonic() < deadline:
                pass
            return done
        return held_up

    signal.setitimer = slowly(signal.setitimer)
    threading.Thread.start = slowly(threading.Thread.start)

catch_interrupts(signal.SIGTERM)

class Thing:
    pass

def collected(reference):
    # The signal's handler runs inside this callback, where an exception is only printed.
    signal.raise_signal(signal.SIGTERM)
    sum(range(1000))

thing = Thing()
reference = weakref.ref(thing, collected)
try:
    del thing
    time.sleep(5)  # as a run goes on, between batches or polling its workers
    print("not interrupted")
except KeyboardInterrupt:
    print("interrupted")
"""


def test_an_interrupt_raised_inside_a_collector_callback_still_stops_the_run():
    done = subprocess.run([sys.executable, "-c", SCRIPT, "quick"], capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.strip() == "interrupted"
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr


def test_the_interrupt_raised_again_never_fires_inside_the_hook_that_schedules_it():
    # The hook held up five times longer than the delay before the interrupt is raised again
    # (as a loaded machine once held it): the timer fires while it still runs, and waits.
    done = subprocess.run([sys.executable, "-c", SCRIPT, "slow"], capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.strip() == "interrupted"
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr


def test_a_swallowed_interrupt_still_ends_the_search_within_an_epoch(tmp_path, monkeypatch):
    # A library's bare `except:` can swallow the KeyboardInterrupt the handler raised, after
    # which every later signal is ignored: the search raises it again at its next epoch.
    import signal

    import pytest
    from optuna.trial import TrialState

    import sweep.search as search
    from sweep import errors
    from sweep.spec import parse_study
    from sweep.store.connect import open_storage

    study = {"name": "deaf", "trials": 8, "batch_size": 4, "folds": 1, "repeats": 1,
             "data": {"source": "synthetic", "items": 60, "inputs": 3, "classes": 3},
             "network": {"epochs": 30}}
    storage = open_storage(f"sqlite:///{tmp_path / 'sweep.db'}")
    real_train_many, epochs_seen = search.train_many, []

    def signal_taken_and_swallowed(*args, on_epoch, **kwargs):
        monkeypatch.setattr(errors, "_first_signal", signal.SIGINT)

        def counting(report):
            epochs_seen.append(report.epoch)
            return on_epoch(report)

        return real_train_many(*args, on_epoch=counting, **kwargs)

    monkeypatch.setattr(search, "train_many", signal_taken_and_swallowed)
    with pytest.raises(KeyboardInterrupt):
        search.run_study(parse_study(study, str(tmp_path / "deaf.toml")), storage)
    assert epochs_seen == [1]
    states = [t.state for t in storage.get_all_trials(storage.get_study_id_from_name("deaf"))]
    assert states == [TrialState.FAIL] * 4  # the batch in flight, failed for a retry
