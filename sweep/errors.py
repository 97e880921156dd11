"""Errors a user can fix, and the exit codes the command line ends with.

The command line and its worker processes both turn these errors into one line on stderr and
exit code 2, and a signal that ends a run into the shell's code for it, 128 + the signal's
number: 130 for Ctrl-C (SIGINT), 143 for SIGTERM, 129 for SIGHUP (the terminal closed). This
module imports nothing heavy, so both can use it without importing each other, and
``sweep --help`` stays quick.
"""

from __future__ import annotations

import signal as _signal

EXIT_USAGE = 2
EXIT_INTERRUPTED = 128 + _signal.SIGINT
# The signals that end a run cleanly (its batch in flight failed, to be retried), and how each
# is said.
INTERRUPTS = {
    _signal.SIGINT: "interrupted",
    _signal.SIGTERM: "terminated (SIGTERM)",
    _signal.SIGHUP: "hung up (SIGHUP: its terminal closed)",
}


class SweepError(Exception):
    """A problem the user can fix; the message is one line."""


class UsageError(Exception):
    """A bad command-line value."""


class StorageError(Exception):
    """A storage that cannot be used; the message is one line with any password masked."""


class StudyDeleted(SweepError):
    """The study a run was writing to was deleted meanwhile (``sweep delete --force``): the run
    stops, and nothing more of it is written."""

    def __init__(self, study: str | None = None):
        self.study = study
        named = f"study {study!r}" if study else "the study"
        super().__init__(
            f"{named} was deleted while this run was writing to it; stopped, and nothing more "
            "of the run was stored"
        )


def user_errors() -> tuple[type[Exception], ...]:
    """Every error that ends a command with one line and exit code 2.

    A function rather than a constant: the data and study-file errors live beside the code
    that raises them, and importing that code (pandas among it) is only worth it once an
    error has happened.
    """
    from .data import DataError
    from .spec import SpecError

    return (SpecError, DataError, StorageError, SweepError, UsageError)


def interrupt_on_terminate(signum, frame):
    """A handler of each of INTERRUPTS: `kill`, a closing terminal and Ctrl-C end a run alike
    (in-flight trials failed, resumable).

    Only the first signal interrupts: later ones are ignored, so that a second Ctrl-C, or the
    SIGTERM a parent sends its workers after the terminal's SIGINT, cannot break off the
    clean-up the first one started and leave trials RUNNING.
    """
    global _first_signal
    _first_signal = signum
    for other in INTERRUPTS:
        _signal.signal(other, _signal.SIG_IGN)
    raise KeyboardInterrupt


_first_signal = None


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt again if a signal was taken and the run still goes on.

    The handler raises KeyboardInterrupt wherever the main thread is and then ignores every
    later signal; a library's bare ``except:`` around the code it lands in (a guarded import,
    a clean-up) would swallow it, and the run would go on deaf. A search calls this at every
    epoch and batch, and the confirmation race at every round, so a taken signal ends them
    all the same. (A run under two busy loops once finished its study after a Ctrl-C that
    landed just after its first batch was written RUNNING.)
    """
    if _first_signal is not None:
        raise KeyboardInterrupt


def interrupted_exit_code() -> int:
    """The exit code of a process an interrupt ended: 128 + the first signal's number (130
    when the KeyboardInterrupt came from no signal of ours)."""
    return 128 + (_first_signal or _signal.SIGINT)


def interrupted_how() -> str:
    """How the first interrupt is said: 'interrupted', 'terminated (SIGTERM)', ..."""
    return INTERRUPTS.get(_first_signal or _signal.SIGINT, "interrupted")


def catch_interrupts(*signals) -> None:
    """Make each of ``signals`` end the process as :func:`interrupt_on_terminate` says, and
    never lose one.

    Python runs a signal handler wherever the main thread is, a weakref or finaliser callback
    of the garbage collector included; an exception raised there is printed as "Exception
    ignored" and dropped, and the run would go on. The hook installed here takes such a dropped
    interrupt, prints nothing, and raises it again a moment later, in the main flow: from a
    repeating SIGALRM timer, whose handler does nothing while it finds itself called inside the
    hook (a raise there would be dropped again) and otherwise stops the timer and raises. (A
    thread that sent the signal again, as this once did, could fire before the hook returned
    on a busy machine, and the hook printed a traceback.)
    """
    import sys
    import threading

    for signum in signals:
        _signal.signal(signum, interrupt_on_terminate)
    default_hook = sys.unraisablehook

    def raise_again(signum, frame):
        while frame is not None:
            if frame.f_code is deliver_again.__code__:
                return  # still in the hook: the timer fires again a moment later
            frame = frame.f_back
        _signal.setitimer(_signal.ITIMER_REAL, 0)
        raise KeyboardInterrupt

    def deliver_again(unraisable):
        if (isinstance(unraisable.exc_value, KeyboardInterrupt) and _first_signal is not None
                and threading.current_thread() is threading.main_thread()):
            _signal.signal(_signal.SIGALRM, raise_again)
            _signal.setitimer(_signal.ITIMER_REAL, REDELIVER_SECONDS, REDELIVER_SECONDS)
            return
        default_hook(unraisable)

    sys.unraisablehook = deliver_again


# How soon a dropped interrupt is raised again (see catch_interrupts).
REDELIVER_SECONDS = 0.01
