"""An interrupt is never lost: one that Python would drop (raised inside a garbage-collection
callback) is delivered again, silently, to the main flow."""

import subprocess
import sys

SCRIPT = """
import signal, time, weakref
from sweep.errors import catch_interrupts

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
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == "interrupted"
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr
