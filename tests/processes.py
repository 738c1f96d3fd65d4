"""What tests use to run a command they will stop, to find the processes (Linux's /proc; elsewhere
none) and control groups something left, and to wait for what another process does."""
import contextlib
import os
import signal
import subprocess
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


def kernel_control_groups() -> list[Path]:
    """The control groups of grading kernels that exist now (``course_lib.grading.cgroups``;
    none where this process cannot make them)."""
    from course_lib.grading import cgroups

    if cgroups.unavailable():
        return []
    return [folder for parent in cgroups._parents().values() for folder in parent.glob("course-kernel-*")]


def wait_until(condition, seconds: float, *, every: float = 0.5):
    """Poll ``condition()`` every ``every`` seconds until it is true or ``seconds`` have passed;
    return its last value (a bound on waiting, not a measurement: the caller asserts the value)."""
    deadline = time.monotonic() + seconds
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(every)
    return value


@contextlib.contextmanager
def session(command: list[str], log: Path, *, env: dict, cwd: Path | None = None, marker: str | None = None):
    """Start ``command`` in a session of its own (``in_session(run.pid)`` finds what it started),
    its stdout and stderr to the file ``log``; yield its ``Popen``. Afterwards, passed or failed,
    whatever is still running is killed: the session, and the processes mentioning ``marker``
    (those that leave the session, as Jupyter's kernels do)."""
    with open(log, "w") as output:
        run = subprocess.Popen(command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT,
                               start_new_session=True)
        try:
            yield run
        finally:
            for pid in in_session(run.pid) + (mentioning(marker) if marker else []):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            run.wait()


def stop(run: subprocess.Popen, ctrl_c: bool) -> signal.Signals:
    """Stop ``run`` (started by ``session``) as Ctrl-C in its terminal does, SIGINT to its whole
    process group, or as a job's time limit or ``docker stop`` does, SIGTERM to it alone. Returns
    the signal sent."""
    if ctrl_c:
        os.killpg(run.pid, signal.SIGINT)
        return signal.SIGINT
    run.terminate()
    return signal.SIGTERM
