"""StopSignals: the first Ctrl-C, SIGTERM or SIGHUP is caught and acted on, a second acts as before."""
import os
import signal
import threading

import pytest

from course_lib.stopping import SIGNALS, StopSignals


@pytest.fixture
def earlier_handler():
    """A SIGTERM handler of the test's own, as the one StopSignals must give back; restored after."""
    received = []
    previous = signal.signal(signal.SIGTERM, lambda number, frame: received.append(number))
    yield received
    signal.signal(signal.SIGTERM, previous)


def test_the_first_signal_runs_the_actions_and_a_second_reaches_the_earlier_handler(earlier_handler):
    actions = []
    with StopSignals() as stop:
        stop.on_stop(lambda: actions.append(stop.signal))
        assert stop.signal is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.signal == signal.SIGTERM and actions == [signal.SIGTERM] and earlier_handler == []
        os.kill(os.getpid(), signal.SIGTERM)
        assert earlier_handler == [signal.SIGTERM] and actions == [signal.SIGTERM], "the second acts as before"


def test_the_handlers_are_given_back_when_no_signal_came(earlier_handler):
    before = {number: signal.getsignal(number) for number in SIGNALS}
    with StopSignals() as stop:
        assert all(signal.getsignal(number) == stop._received for number in SIGNALS)
    assert {number: signal.getsignal(number) for number in SIGNALS} == before
    assert stop.signal is None
    os.kill(os.getpid(), signal.SIGTERM)
    assert earlier_handler == [signal.SIGTERM]


def test_ctrl_c_is_caught_too_instead_of_raising_keyboard_interrupt():
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGINT)
    assert stop.signal == signal.SIGINT


def test_outside_the_main_thread_it_changes_nothing():
    before = {number: signal.getsignal(number) for number in SIGNALS}
    seen = []

    def block():
        with StopSignals() as stop:   # signal.signal would raise ValueError in this thread
            seen.append({number: signal.getsignal(number) for number in SIGNALS} == before and stop.signal is None)

    thread = threading.Thread(target=block)
    thread.start()
    thread.join()
    assert seen == [True]


# A child that counts the SIGINTs it gets (KeyboardInterrupt each) until its stdin closes.
COUNT_INTERRUPTS = """
import signal, sys
count = 0
def interrupted(number, frame):
    global count
    count += 1
signal.signal(signal.SIGINT, interrupted)
print("ready", flush=True)
sys.stdin.read()
print(count, flush=True)
"""


def _interrupts(stop_with: signal.Signals, register_before: bool) -> int:
    """How many SIGINTs a child registered with ``interrupt_on_stop`` gets when ``stop_with`` comes
    (with the child registered before the stop, or after it)."""
    import subprocess
    import sys

    with subprocess.Popen([sys.executable, "-c", COUNT_INTERRUPTS], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout.readline() == "ready\n"
        with StopSignals() as stop:
            if register_before:
                stop.interrupt_on_stop(child)
            os.kill(os.getpid(), stop_with)
            if not register_before:
                stop.interrupt_on_stop(child)
            stop._actions[-1]()   # the action run again (a race with another thread): still sent once
        out, _ = child.communicate("")
    return int(out)


@pytest.mark.parametrize("register_before", [True, False], ids=["registered before", "registered after"])
def test_a_process_is_interrupted_once_on_sigterm_or_sighup(register_before):
    assert _interrupts(signal.SIGTERM, register_before) == 1
    assert _interrupts(signal.SIGHUP, register_before) == 1


def test_after_ctrl_c_nothing_more_is_sent_as_the_terminal_sent_it_to_all():
    assert _interrupts(signal.SIGINT, register_before=True) == 0
