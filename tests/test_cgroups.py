"""Control groups for grading kernels (course_lib.grading.cgroups): one limit on the memory and
on the number of processes of everything a kernel starts (a kernel that hits the process limit:
tests/test_sandbox.py).

Where this machine cannot make groups (not root on cgroup v1, no delegated cgroup v2), the
tests that need them skip; the rest run everywhere.
"""
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib.grading import cgroups


@pytest.fixture
def groups_here():
    reason = cgroups.unavailable()
    if reason:
        pytest.skip(reason)


def _leftovers() -> list[Path]:
    return [folder for parent in cgroups._parents().values() for folder in parent.glob("course-kernel-*")]


# Two processes of 250 MiB each, started together, each holding its memory for two seconds.
TWO_PROCESSES = """
import subprocess, sys
hold = "a = bytearray(250 << 20); a[::4096] = b'x' * len(a[::4096]); import time; time.sleep(2)"
runs = [subprocess.Popen([sys.executable, "-c", hold]) for _ in range(2)]
print(sorted(run.wait() for run in runs))
"""


def test_the_memory_limit_counts_all_processes_together(groups_here):
    before = _leftovers()
    folders = cgroups.create(max_tasks=256, memory_mb=400)
    try:
        together = subprocess.run(cgroups.join_command(folders, [sys.executable, "-c", TWO_PROCESSES]),
                                  capture_output=True, text=True, timeout=120)
    finally:
        cgroups.remove(folders)
    # 500 MiB in all is over the group's 400: the OOM killer ends one of the two (SIGKILL).
    assert together.returncode == 0, together.stderr
    assert together.stdout.strip() in ("[-9, 0]", "[-9, -9]")
    # Each alone would have been within a per-process limit of 400 MiB (what prlimit gives).
    alone = subprocess.run([sys.executable, "-c", TWO_PROCESSES], capture_output=True, text=True, timeout=120)
    assert alone.stdout.strip() == "[0, 0]"
    assert _leftovers() == before and not any(folder.exists() for folder in folders)


def test_groups_left_with_processes_are_emptied_and_removed(groups_here):
    folders = cgroups.create(max_tasks=64, memory_mb=256)
    sleeper = subprocess.Popen(cgroups.join_command(folders, ["sleep", "60"]))
    try:
        for folder in folders:   # it has joined both groups before it sleeps
            for _ in range(100):
                if (folder / "cgroup.procs").read_text().split():
                    break
                subprocess.run(["sleep", "0.05"])
        cgroups.remove(folders)
        assert sleeper.wait(timeout=10) == -9
        assert not any(folder.exists() for folder in folders)
    finally:
        sleeper.kill()


def test_without_writable_groups_it_says_why(monkeypatch):
    monkeypatch.setattr(cgroups, "_parents", lambda: {})
    cgroups.unavailable.cache_clear()
    try:
        assert cgroups.unavailable() == ("control groups cannot be made here (no writable cgroup hierarchy "
                                         "with the pids and memory controller for this process)")
    finally:
        cgroups.unavailable.cache_clear()
