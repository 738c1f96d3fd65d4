"""Stopping early, cleanly, on Ctrl-C, SIGTERM or SIGHUP: what ``course test`` and ``course grade``
share.

Those signals come from a person (Ctrl-C), a CI job's time limit or ``docker stop`` (SIGTERM) and
a closed terminal (SIGHUP). By default SIGTERM and SIGHUP end a Python process at once, leaving
what it started running and what it had done unsaved. Inside ``with StopSignals() as stop`` the
first of them instead records itself in ``stop.signal`` and runs the actions given to
``stop.on_stop`` (``course test``: pass it on to pytest; ``course grade``: start no further
submission and interrupt the running ones; ``course verify``: interrupt its nbgrader runs), and
the code goes on to finish in order. The handlers are then given back, so a second signal acts as
it would have (Ctrl-C: KeyboardInterrupt). Signals reach only the main thread: in another thread
this does nothing.
"""
from __future__ import annotations

import contextlib
import signal
import subprocess
import threading

SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class StopSignals:
    """Catch the first of ``SIGNALS`` while the block runs (see the module docstring)."""

    def __init__(self):
        self.signal: signal.Signals | None = None   # the one that came, if any
        self._actions = []
        self._previous = {}

    def on_stop(self, action) -> None:
        """Call ``action()`` when the first signal comes."""
        self._actions.append(action)

    def interrupt_on_stop(self, process: subprocess.Popen) -> None:
        """Interrupt ``process`` when the stop comes (at once if it has come): SIGINT, as Ctrl-C
        would, so that a Python program winds down in order (nbgrader cancels, nbclient shuts its
        kernel down; SIGTERM would end it at once and leave its kernel running). Sent once, and
        not after a Ctrl-C: the terminal gave that to its whole foreground process group,
        ``process`` included, and a second SIGINT could cut the winding down short."""
        once = threading.Lock()   # never released: taken by the one call that sends

        def interrupt() -> None:
            if self.signal != signal.SIGINT and once.acquire(blocking=False):
                with contextlib.suppress(OSError):   # it may have ended meanwhile
                    process.send_signal(signal.SIGINT)

        self.on_stop(interrupt)
        if self.signal:
            interrupt()

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {number: signal.signal(number, self._received) for number in SIGNALS}
        return self

    def __exit__(self, *exception) -> None:
        self._give_back()

    def _give_back(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def _received(self, number, frame) -> None:
        self.signal = signal.Signals(number)
        self._give_back()
        for action in self._actions:
            action()
