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
