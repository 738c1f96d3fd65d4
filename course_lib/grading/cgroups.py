"""Control groups for grading kernels: one limit on all of a kernel's processes together.

``prlimit`` (see ``sandbox``) limits each process on its own: a submission that starts many
processes can use many times the memory limit, and a fork bomb is not stopped at all. Linux's
control groups count a whole group of processes: a kernel and everything it starts go into a
fresh group with

- ``pids``: at most ``max_tasks`` processes and threads (a ``fork`` beyond it fails with
  ``BlockingIOError``); the libraries start threads of their own, so keep it generous;
- ``memory``: at most ``memory_mb`` MiB for all of them together, swap included (beyond it
  the kernel's OOM killer ends the biggest process of the group).

Groups can be made where the cgroup file system is writable for this user: as root on
cgroup v1 (``/sys/fs/cgroup/pids``, ``/sys/fs/cgroup/memory``), or on cgroup v2 where this
process's group enables both controllers for its children. :func:`unavailable` says why not
elsewhere, and grading goes on with the per-process limits only.
"""
from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

CONTROLLERS = ("pids", "memory")
DEFAULT_MAX_TASKS = 2048
# The shell joins the groups (its own pid, which exec keeps), then runs the command.
_JOIN = 'while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs" || exit 125; shift; done; shift; exec "$@"'


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(mount point, root inside the hierarchy, fs type, super options) of every cgroup mount."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, after = line.partition(" - ")
        parts, (fstype, _source, options) = fields.split(), after.split(" ", 2)
        if fstype in ("cgroup", "cgroup2"):
            found.append((parts[4], parts[3], fstype, set(options.split(","))))
    return found


def _own_groups() -> dict[str, str]:
    """{controller or "" for v2: this process's group path}, from ``/proc/self/cgroup``."""
    groups = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        for name in names.split(",") if names else [""]:
            groups[name] = path
    return groups


def _parents() -> dict[str, Path]:
    """{controller: the folder under which this process would make a kernel's group}."""
    own, parents = _own_groups(), {}
    for point, root, fstype, options in _mounts():
        for controller in CONTROLLERS:
            if fstype == "cgroup" and controller in options and controller in own:
                path = own[controller]
            elif fstype == "cgroup2" and "" in own and controller not in parents:
                enabled = Path(point, own[""].lstrip("/"), "cgroup.subtree_control")
                if not enabled.exists() or controller not in enabled.read_text().split():
                    continue
                path = own[""]
            else:
                continue
            relative = os.path.relpath(path, root) if path.startswith(root) else path.lstrip("/")
            parents[controller] = Path(point, relative).resolve()
    return parents


def _write_limits(folder: Path, controller: str, max_tasks: int, memory_mb: int) -> None:
    if controller == "pids":
        (folder / "pids.max").write_text(str(max_tasks))
        return
    size = str(memory_mb << 20)
    if (folder / "memory.max").exists():                    # v2
        (folder / "memory.max").write_text(size)
        with contextlib.suppress(OSError):                 # no swap accounting: memory only
            (folder / "memory.swap.max").write_text("0")
    else:                                                   # v1: memory, then memory + swap
        (folder / "memory.limit_in_bytes").write_text(size)
        with contextlib.suppress(OSError):
            (folder / "memory.memsw.limit_in_bytes").write_text(size)


def create(max_tasks: int = DEFAULT_MAX_TASKS, memory_mb: int = 4096) -> list[Path]:
    """Make one fresh group per controller with these limits; return their folders.
    Raises ``OSError`` where groups cannot be made (see :func:`unavailable`)."""
    parents = _parents()
    missing = [c for c in CONTROLLERS if c not in parents]
    if missing:
        raise OSError(f"no writable cgroup hierarchy with the {' and '.join(missing)} "
                      "controller for this process")
    folders: list[Path] = []
    try:
        for controller in CONTROLLERS:
            while True:
                # Listed before it is made: a signal that lands during mkdir is raised just after
                # it (inside tempfile.mkdtemp, before its name came back): the group is not missed.
                folders.append(parents[controller] / f"course-kernel-{secrets.token_hex(4)}")
                try:
                    folders[-1].mkdir(mode=0o700)
                    break
                except FileExistsError:   # another kernel's group: not this one's to remove
                    folders.pop()
            _write_limits(folders[-1], controller, max_tasks, memory_mb)
    except BaseException:   # an error, or a stop (KeyboardInterrupt) halfway: none is left
        remove(folders)
        raise
    return folders


def join_command(folders: list[Path], argv: list[str]) -> list[str]:
    """``argv`` run in the groups ``folders``, with every process it starts."""
    return ["sh", "-c", _JOIN, "course-cgroups", *map(str, folders), "--", *argv]


def remove(folders: list[Path], wait_s: float = 5.0) -> None:
    """Kill what is left in the groups, then remove them (a group goes once it is empty)."""
    deadline = time.monotonic() + wait_s
    for folder in folders:
        while folder.exists():
            with contextlib.suppress(OSError):
                for pid in (folder / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        os.kill(int(pid), signal.SIGKILL)
            try:
                folder.rmdir()
            except OSError:
                if time.monotonic() > deadline:
                    break                      # left for the system; nothing runs in it
                time.sleep(0.05)


@functools.cache
def unavailable() -> str | None:
    """None when this process can put kernels in groups of their own, else why not (checked
    once: a group made, a ``true`` run in it, the group removed)."""
    if not shutil.which("sh"):
        return "no sh to join the control groups"
    try:
        folders = create(max_tasks=64, memory_mb=64)
    except OSError as error:
        return f"control groups cannot be made here ({error})"
    try:
        done = subprocess.run(join_command(folders, ["true"]), capture_output=True, text=True,
                              timeout=30, check=False)
        if done.returncode != 0:
            return f"a process cannot join its control group here ({done.stderr.strip()})"
    finally:
        remove(folders)
    return None
