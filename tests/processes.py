"""What tests use to find the processes something left running (Linux's /proc; elsewhere none),
and to wait for what another process does."""
import time
from pathlib import Path


def _running() -> list[tuple[int, list[str], bytes]]:
    """(pid, its /proc/PID/stat fields after the name, its command line) of each running process."""
    found = []
    for folder in Path("/proc").glob("[0-9]*"):
        try:
            fields = (folder / "stat").read_text().rsplit(")", 1)[1].split()
            found.append((int(folder.name), fields, (folder / "cmdline").read_bytes()))
        except (OSError, IndexError):
            continue  # it ended while we looked
    return [process for process in found if process[1][0] != "Z"]


def mentioning(text: str) -> list[int]:
    """The processes whose command line contains ``text``."""
    return [pid for pid, _, cmdline in _running() if text.encode() in cmdline]


def in_session(session: int) -> list[int]:
    """The processes in the session ``session`` (its leader's pid, as ``start_new_session`` made it)."""
    return [pid for pid, fields, _ in _running() if int(fields[3]) == session]


def wait_until(condition, seconds: float):
    """Poll ``condition()`` twice a second until it is true or ``seconds`` have passed; return
    its last value (a bound on waiting, not a measurement: the caller asserts the value)."""
    deadline = time.monotonic() + seconds
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return value
