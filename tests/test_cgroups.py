"""Control groups for grading kernels (course_lib.grading.cgroups): one limit on the memory and
on the number of processes of everything a kernel starts (a kernel that hits the process limit:
tests/test_sandbox.py).

Where this machine cannot make groups (not root on cgroup v1, no delegated cgroup v2), the
tests that need them skip; the rest run everywhere.
"""
import subprocess
import sys

import pytest

import processes
from course_lib.grading import cgroups


@pytest.fixture
def groups_here():
    reason = cgroups.unavailable()
    if reason:
        pytest.skip(reason)


# Two processes of 250 MiB each, started together, each holding its memory for two seconds.
TWO_PROCESSES = """
import subprocess, sys
hold = "a = bytearray(250 << 20); a[::4096] = b'x' * len(a[::4096]); import time; time.sleep(2)"
runs = [subprocess.Popen([sys.executable, "-c", hold]) for _ in range(2)]
print(sorted(run.wait() for run in runs))
"""


def test_the_memory_limit_counts_all_processes_together(groups_here):
    before = processes.kernel_control_groups()
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
    assert processes.kernel_control_groups() == before and not any(folder.exists() for folder in folders)


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


@pytest.mark.parametrize("made", [1, 2], ids=["first group", "second group"])
def test_a_stop_as_a_group_is_made_leaves_no_group(groups_here, monkeypatch, made):
    """Ctrl-C (KeyboardInterrupt) that lands while `mkdir` makes a group is raised just after
    it: the groups made so far are removed, and the interrupt goes on. (With the group's name
    coming back from tempfile.mkdtemp, one made as the stop came was left behind.)"""
    import os

    before = processes.kernel_control_groups()
    real_mkdir, calls = os.mkdir, []

    def mkdir_then_stopped(path, *args, **kwargs):
        real_mkdir(path, *args, **kwargs)
        calls.append(path)
        if len(calls) == made:
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "mkdir", mkdir_then_stopped)
    with pytest.raises(KeyboardInterrupt):
        cgroups.create(max_tasks=64, memory_mb=64)
    monkeypatch.undo()
    assert len(calls) == made
    assert processes.kernel_control_groups() == before


def test_a_name_another_kernel_has_is_left_to_it(groups_here, monkeypatch):
    """Group names are drawn at random: one already taken is another kernel's group. Another
    name is drawn, and when making the groups then fails, theirs is not removed with them."""
    theirs = cgroups.create(max_tasks=64, memory_mb=64)
    names = iter([theirs[0].name.removeprefix("course-kernel-"), "0badcafe"])   # pids: taken, then free

    def refused(*_):
        raise OSError("refused")

    monkeypatch.setattr(cgroups.secrets, "token_hex", lambda _: next(names))
    monkeypatch.setattr(cgroups, "_write_limits", refused)
    try:
        with pytest.raises(OSError, match="refused"):
            cgroups.create(max_tasks=64, memory_mb=64)
        assert all(folder.exists() for folder in theirs)
        assert not (theirs[0].parent / "course-kernel-0badcafe").exists()
    finally:
        cgroups.remove(theirs)


def test_without_writable_groups_it_says_why(monkeypatch):
    monkeypatch.setattr(cgroups, "_parents", lambda: {})
    cgroups.unavailable.cache_clear()
    try:
        assert cgroups.unavailable() == ("control groups cannot be made here (no writable cgroup hierarchy "
                                         "with the pids and memory controller for this process)")
    finally:
        cgroups.unavailable.cache_clear()
