"""A sandbox for student code during grading: bubblewrap around the grading kernel.

Each grading kernel runs inside ``bwrap`` (Debian package ``bubblewrap``) with

- no network: every namespace unshared, so only a private loopback exists; the grader talks
  to the kernel over Unix (IPC) sockets in a private folder bound into the sandbox;
- a file system that holds only what a kernel needs: the system (``/usr``, ``/etc`` ...),
  Python's install and site-packages, the ``course_lib`` package and the Keras and course
  data caches, all read-only; the submission's own folder, whose files it reads and in which it
  can write new ones, to a size-limited tmpfs (``WORK_DIR_MB``) that vanishes with it, so a
  submission cannot fill the grader's disk; a private ``/tmp``, also size-limited.
  Nothing else exists inside, so the course's ``source/``, ``gradebook.db``, other students'
  folders and the home directory cannot be read; ``hidden`` paths are masked even inside a
  readable folder;
- a memory limit (``prlimit --data``: a bigger allocation fails with ``MemoryError``) and a
  wall-clock limit on the kernel's whole life (``timeout --signal=KILL``);
- no life beyond the process that started it (``setpriv --pdeathsig KILL``): a grading worker
  that dies (the OOM killer, a crash) takes its kernel with it, which would otherwise run on,
  holding its memory, until the wall-clock limit;
- where control groups can be made (``grading.cgroups``), a limit on the number of processes
  and on the memory of all the kernel's processes together;
- only the environment variables a kernel needs (an allowlist, :func:`kernel_environment`):
  none of the grader's others, such as a gradebook's URL with its password; and its stdout
  thrown away, so what student code writes there reaches neither the grader nor its log.

Each sandbox starts with an empty ``/tmp``, so caches kept there are rebuilt by every kernel;
:func:`matplotlib_font_list` builds matplotlib's font list once, in the sandbox, and kernels
get it read-only (``files``), which saves each kernel the 0.4 s of scanning the fonts again.

nbgrader selects it through a kernel spec: :func:`write_kernel_spec` writes one whose
``metadata.kernel_provisioner`` names :class:`SandboxProvisioner` (registered under the
entry point ``course-sandbox``), then ``nbgrader autograde --Execute.kernel_name=course-sandbox``
with that folder on ``JUPYTER_PATH``. Where bwrap is missing or cannot run, kernels still run
(with the same limits), and :func:`warn_unsandboxed` says so loudly on stderr;
``COURSE_REQUIRE_SANDBOX=1`` makes that an error instead.
"""
from __future__ import annotations

import atexit
import functools
import json
import os
import re
import secrets
import shutil
import site
import subprocess
import sys
import tempfile
from importlib.metadata import EntryPoint
from pathlib import Path

from jupyter_client.provisioning import KernelProvisionerFactory, LocalProvisioner
from traitlets import Dict, Integer, List, Unicode

from . import cgroups

KERNEL_NAME = "course-sandbox"
REQUIRE_VARIABLE = "COURSE_REQUIRE_SANDBOX"
DEFAULT_MEMORY_MB = 4096
DEFAULT_TIME_LIMIT_S = 1200
WORK_DIR_MB = 512   # what a kernel may write in its folder (a tmpfs over it; the files there are read-only)
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
ALWAYS_HIDDEN = ("/etc/shadow", "/etc/gshadow")
FONT_LIST_DIR = "/tmp/matplotlib"     # matplotlib's MPLCONFIGDIR inside
# The environment variables a kernel gets, by name or prefix: what Python, the locale, Keras and
# its backends, the thread limits, Jupyter and the course read. Nothing else reaches student code
# (a gradebook's URL, a cloud key...), and of these, none whose name looks like a credential.
KERNEL_VARIABLES = {"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TERM", "USER", "LOGNAME", "TMPDIR",
                    "PYTHONPATH", "PYTHONHASHSEED", "PYTHONWARNINGS", "PYTHONUNBUFFERED", "PYTHONNOUSERSITE",
                    "PYTHONIOENCODING", "VIRTUAL_ENV", "LD_LIBRARY_PATH", "MPLBACKEND", "MPLCONFIGDIR",
                    "NBGRADER_EXECUTION", "COURSE_PROFILE", "COURSE_CACHE", "CUDA_VISIBLE_DEVICES",
                    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "XLA_FLAGS"}
KERNEL_PREFIXES = ("LC_", "KERAS_", "TF_", "JAX_", "XLA_PYTHON_", "JPY_", "JUPYTER_", "IPYTHON", "PYDEVD_")
SECRET_VARIABLE = re.compile(r"TOKEN|SECRET|PASSW|CREDENTIAL|API_?KEY|ACCESS_KEY|AUTH|_URL$|_URI$|DSN",
                             re.IGNORECASE)


def kernel_environment(environment: dict[str, str]) -> dict[str, str]:
    """The part of ``environment`` a grading kernel gets: the variables in ``KERNEL_VARIABLES`` or
    with a prefix in ``KERNEL_PREFIXES``, none that looks like a credential."""
    return {name: value for name, value in environment.items()
            if (name in KERNEL_VARIABLES or name.startswith(KERNEL_PREFIXES)) and not SECRET_VARIABLE.search(name)}


class SandboxUnavailable(RuntimeError):
    """The sandbox was required (``COURSE_REQUIRE_SANDBOX=1``) but cannot run here."""


def _bwrap_probe() -> str | None:
    """Run ``true`` in the real sandbox once; None when it works, else why not."""
    if not shutil.which("bwrap"):
        return "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    with tempfile.TemporaryDirectory(prefix="course-sandbox-probe-") as work:
        command = sandbox_command(["true"], work_dir=work, memory_mb=None, time_limit_s=30,
                                  use_bwrap=True)
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"bwrap could not start a sandbox here: {error}"
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        return f"bwrap cannot create a sandbox here: {detail[-1] if detail else done.returncode}"
    return None


@functools.cache
def bwrap_available() -> str | None:
    """None when bubblewrap can sandbox a process on this machine, else the reason it cannot.

    The answer comes from a real probe run (namespaces may be refused inside containers),
    made once per process.
    """
    return _bwrap_probe()


_warned = False


def warn_unsandboxed(stream=None) -> str | None:
    """Print a loud warning (once per process) when student code would run unsandboxed.

    Raises :class:`SandboxUnavailable` instead when ``COURSE_REQUIRE_SANDBOX=1``.
    Returns the reason, or None when the sandbox works.
    """
    global _warned
    reason = bwrap_available()
    if reason is None:
        return None
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        raise SandboxUnavailable(f"{REQUIRE_VARIABLE}=1 but the grading sandbox is unavailable: "
                                 f"{reason}")
    if not _warned:
        _warned = True
        print(f"WARNING: UNSANDBOXED GRADING. {reason}. Student code runs with the grader's "
              "permissions: it can use the network and read every file the grader can "
              "(only the memory and time limits apply).", file=stream or sys.stderr, flush=True)
    return reason


def _under(path: str, folders) -> bool:
    """Whether ``path`` is one of ``folders`` or inside one of them."""
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def default_readable() -> list[str]:
    """What a kernel must read: Python's install and site-packages, ``course_lib`` and the caches.

    Keras's cache (``$KERAS_HOME``, default ``~/.keras``) and the course cache
    (``$COURSE_CACHE``, default ``~/.cache/course_lib``) are read-only inside, so fill them
    before grading (run the release notebooks once); nothing can be downloaded inside.
    """
    import course_lib
    from course_lib.data import cache_dir

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))),
             str(Path(course_lib.__file__).resolve().parent), str(cache_dir()),
             os.environ.get("KERAS_HOME") or os.path.expanduser("~/.keras")}
    paths.update(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        paths.add(site.getusersitepackages())
    return sorted(os.path.abspath(p) for p in paths if os.path.exists(p))


def _kernel_environment(home: str) -> dict[str, str]:
    """Variables set inside the sandbox: a private writable home, the caches where they are.

    ``JPY_PARENT_PID=1`` turns off ipykernel's parent poller: in the sandbox's own process
    namespace the kernel's parent is pid 1, which the poller takes for a dead parent
    (``setpriv --pdeathsig`` and ``--die-with-parent`` do its job instead).
    """
    from course_lib.data import CACHE_VARIABLE, cache_dir

    return {"JPY_PARENT_PID": "1", "HOME": home, "TMPDIR": "/tmp",
            "MPLCONFIGDIR": FONT_LIST_DIR, "IPYTHONDIR": "/tmp/ipython", "JUPYTER_RUNTIME_DIR": "/tmp/jupyter",
            "KERAS_HOME": os.environ.get("KERAS_HOME") or os.path.expanduser("~/.keras"),
            CACHE_VARIABLE: str(cache_dir())}


def sandbox_command(argv: list[str], *, work_dir: str, readable=(), writable=(), hidden=(),
                    files: dict[str, str] | None = None, memory_mb: int | None = DEFAULT_MEMORY_MB,
                    time_limit_s: float | None = DEFAULT_TIME_LIMIT_S,
                    use_bwrap: bool | None = None, keep_writes: bool = True) -> list[str]:
    """The command line that runs ``argv`` sandboxed in ``work_dir`` (its cwd, read-write).

    ``readable``: extra paths bound read-only at the same place (besides the system and
    :func:`default_readable`); ``writable``: extra paths bound read-write; ``hidden``: paths
    masked (an empty folder or an empty file) where they would otherwise be visible;
    ``files``: {path inside: file outside}, files bound read-only at another place (under
    ``/tmp`` too: the folders around them stay writable).
    ``memory_mb`` limits the data segment (heap and anonymous memory) of every process;
    ``time_limit_s`` kills the whole sandbox after that many seconds; and it is killed when the
    process that runs the command line dies. ``use_bwrap`` None
    means: where :func:`bwrap_available`; without bwrap only the two limits apply.
    ``keep_writes`` False (a grading kernel): ``work_dir`` becomes a tmpfs of ``WORK_DIR_MB``
    with its files bound read-only inside, so what the process writes there stays within that
    size and is gone when it ends.
    """
    # prlimit and setpriv (util-linux) and timeout (coreutils) are on every Linux
    limits, time_limit = [], []
    if memory_mb and shutil.which("prlimit"):
        limits = ["prlimit", f"--data={memory_mb << 20}", f"--fsize={memory_mb << 20}", "--"]
    if time_limit_s and shutil.which("timeout"):
        time_limit = ["timeout", "--signal=KILL", f"{time_limit_s}s"]
    # Each process dies with its parent: setpriv's parent-death signal for timeout and, without
    # bwrap, for argv under it; bwrap's own --die-with-parent inside.
    with_parent = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []
    command = with_parent + time_limit
    if use_bwrap is None:
        use_bwrap = bwrap_available() is None
    if not use_bwrap:
        return command + limits + (with_parent if time_limit else []) + list(argv)

    work_dir = os.path.abspath(work_dir)
    home = "/tmp/home"
    size = str((memory_mb or DEFAULT_MEMORY_MB) << 20)
    command += ["bwrap", "--unshare-all", "--die-with-parent", "--cap-drop", "ALL",
                "--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm", "--proc", "/proc"]
    for path in SYSTEM_PATHS:  # /bin -> usr/bin and friends stay symlinks
        if os.path.islink(path):
            command += ["--symlink", os.readlink(path), path]
        elif os.path.exists(path):
            command += ["--ro-bind", path, path]
    command += ["--size", size, "--tmpfs", "/tmp", "--dir", home]
    # Parents before children, so a read-write folder inside a read-only one stays writable.
    binds = [(os.path.abspath(p), "--ro-bind") for p in [*default_readable(), *readable]]
    binds += [(os.path.abspath(p), "--bind") for p in writable]
    if keep_writes:
        binds.append((work_dir, "--bind"))
    else:   # a tmpfs over the folder, then its files read-only on it (deeper, so after it)
        binds.append((work_dir, "--tmpfs"))
        binds += [(os.path.join(work_dir, name), "--ro-bind") for name in sorted(os.listdir(work_dir))]
    for path, flag in sorted(dict(binds).items(), key=lambda item: item[0].count("/")):
        if flag == "--tmpfs":
            command += ["--size", str(WORK_DIR_MB << 20), "--tmpfs", path]
        elif os.path.exists(path):
            command += [flag, path, path]
    bound = [*SYSTEM_PATHS, *(path for path, _ in binds)]
    for path in map(os.path.abspath, [*ALWAYS_HIDDEN, *hidden]):
        if os.path.exists(path) and _under(path, bound):
            command += (["--tmpfs", path] if os.path.isdir(path)
                        else ["--ro-bind", "/dev/null", path])
    for inside, outside in (files or {}).items():
        command += ["--ro-bind", os.path.abspath(outside), inside]
    for name, value in _kernel_environment(home).items():
        command += ["--setenv", name, value]
    command += ["--remount-ro", "/", "--chdir", work_dir, "--"]
    return command + limits + list(argv)


_BUILD_FONT_LIST = "import matplotlib.font_manager"   # matplotlib writes the list on first import


def matplotlib_font_list(folder) -> dict[str, str]:
    """Build matplotlib's font list (``fontlist-v*.json``) in ``folder``, inside the sandbox so
    that it lists the fonts kernels see; return the ``files`` that give it to kernels:
    {``/tmp/matplotlib/fontlist-v*.json``: the file in ``folder``}. Empty where matplotlib is
    not installed or bubblewrap cannot run (then kernels are not sandboxed and use the
    grader's own cache)."""
    if bwrap_available() is not None:
        return {}
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    command = sandbox_command(["env", f"MPLCONFIGDIR={folder}", sys.executable, "-c", _BUILD_FONT_LIST],
                              work_dir=str(folder), memory_mb=None, time_limit_s=120)
    try:
        subprocess.run(command, capture_output=True, timeout=180, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {f"{FONT_LIST_DIR}/{path.name}": str(path) for path in folder.glob("fontlist-*.json")}


UNIX_SOCKET_PATH_MAX = 107   # bytes: sun_path holds 108, the last one a NUL


def kernel_folder_parent() -> str:
    """Where kernels' private folders go: the temporary folder (``TMPDIR``), unless the path of
    a kernel's IPC socket there (``<it>/course-kernel-XXXXXXXX/kernel-ipc-N``) could be longer
    than a Unix socket's path may be; then ``/tmp``. (A long ``TMPDIR``, as some job schedulers
    give, made every kernel fail with ``ZMQError: File name too long``.)"""
    parent = tempfile.gettempdir()
    longest_socket = os.path.join(parent, "course-kernel-XXXXXXXX", "kernel-ipc-99999")
    return parent if len(os.fsencode(longest_socket)) <= UNIX_SOCKET_PATH_MAX else "/tmp"


# This process's kernels that are not yet cleaned up. A stop (Ctrl-C, or the SIGINT `course
# grade` sends its workers) that lands while a kernel starts skips the kernel's cleanup; what
# its provisioner made (the private folder with the connection file, the control groups) is then
# removed at exit.
_NOT_CLEANED_UP: set[SandboxProvisioner] = set()


@atexit.register
def _clean_up_at_exit() -> None:
    for provisioner in list(_NOT_CLEANED_UP):
        provisioner.remove_what_it_made()


class SandboxProvisioner(LocalProvisioner):
    """A kernel provisioner that starts the kernel inside :func:`sandbox_command`.

    It switches the kernel to IPC transport with its connection file and sockets in a fresh
    private folder (bound into the sandbox), and runs the kernel in its ``cwd`` (for nbgrader,
    the submission's ``autograded/STUDENT/ASSIGNMENT`` folder). Configured from the kernel
    spec's ``metadata.kernel_provisioner.config`` (see :func:`write_kernel_spec`). The folder
    and the kernel's control groups are removed when the kernel is cleaned up, or at the latest
    when this process exits.
    """

    memory_mb = Integer(DEFAULT_MEMORY_MB, config=True, help="Memory limit per kernel (MiB).")
    max_tasks = Integer(cgroups.DEFAULT_MAX_TASKS, config=True,
                        help="Most processes and threads per kernel (where control groups can be made).")
    time_limit_s = Integer(DEFAULT_TIME_LIMIT_S, config=True,
                           help="Wall-clock limit per kernel (seconds); it is then killed.")
    readable = List(Unicode(), config=True, help="Extra paths readable inside.")
    hidden = List(Unicode(), config=True, help="Paths masked inside.")
    files = Dict(Unicode(), config=True, help="Files bound read-only at another place "
                 "({path inside: file outside}).")
    ipc_dir = Unicode("", help="Private folder of the connection file and IPC sockets.")
    groups = List(help="The kernel's control groups (one folder per controller).")

    async def pre_launch(self, **kwargs):
        """Put the connection file and IPC sockets in a private folder, before ports are chosen."""
        warn_unsandboxed()
        _NOT_CLEANED_UP.add(self)
        while not self.ipc_dir:   # named before it is made, as cgroups.create makes its groups
            self.ipc_dir = os.path.join(kernel_folder_parent(), f"course-kernel-{secrets.token_hex(4)}")
            try:
                os.mkdir(self.ipc_dir, 0o700)
            except FileExistsError:   # another kernel's folder: not this one's to remove
                self.ipc_dir = ""
        km = self.parent
        km.transport = "ipc"
        km.connection_file = os.path.join(self.ipc_dir, "kernel.json")
        km.ip = os.path.join(self.ipc_dir, "kernel-ipc")
        return await super().pre_launch(**kwargs)

    async def launch_kernel(self, cmd, **kwargs):
        """Launch ``cmd`` wrapped in the sandbox, with only the environment variables it needs
        (:func:`kernel_environment`) and its stdout thrown away: what student code writes
        there (``os.system``, ``os.write(1, ...)``) reaches neither the grader nor the log. The
        notebook's outputs travel over the kernel's sockets; stderr goes to the log."""
        work_dir = os.path.abspath(kwargs.get("cwd") or os.getcwd())
        kwargs["env"] = kernel_environment(kwargs.get("env") or os.environ)
        kwargs["stdout"] = subprocess.DEVNULL
        cmd = sandbox_command(cmd, work_dir=work_dir, readable=self.readable,
                              writable=[self.ipc_dir], hidden=self.hidden, files=self.files,
                              memory_mb=self.memory_mb, time_limit_s=self.time_limit_s, keep_writes=False)
        if cgroups.unavailable() is None:
            self.groups = cgroups.create(self.max_tasks, self.memory_mb)
            cmd = cgroups.join_command(self.groups, cmd)
        self.log.debug("Sandboxed kernel command: %s", cmd)
        return await super().launch_kernel(cmd, **kwargs)

    async def cleanup(self, restart: bool = False) -> None:
        """Remove the kernel's control groups, and its private folder once it is gone for good."""
        await super().cleanup(restart=restart)
        self.remove_what_it_made(restart=restart)

    def remove_what_it_made(self, restart: bool = False) -> None:
        """Remove the control groups (killing what is left in them) and, unless the kernel is
        to restart, the private folder."""
        cgroups.remove(self.groups)
        self.groups = []
        if not restart and self.ipc_dir:
            shutil.rmtree(self.ipc_dir, ignore_errors=True)
            self.ipc_dir = ""
            _NOT_CLEANED_UP.discard(self)


# Also register the provisioner in this process, in case a stale copy of the package's
# metadata (an old *.egg-info in the working folder) hides the entry point.
KernelProvisionerFactory.provisioners.setdefault(KERNEL_NAME, EntryPoint(
    KERNEL_NAME, f"{__name__}:SandboxProvisioner", KernelProvisionerFactory.GROUP_NAME))


def write_kernel_spec(jupyter_dir, *, memory_mb: int = DEFAULT_MEMORY_MB,
                      time_limit_s: int = DEFAULT_TIME_LIMIT_S, max_tasks: int = cgroups.DEFAULT_MAX_TASKS,
                      readable=(), hidden=(),
                      files: dict[str, str] | None = None, python: str | None = None) -> Path:
    """Write the ``course-sandbox`` kernel spec under ``jupyter_dir/kernels/``; return its folder.

    Put ``jupyter_dir`` first on ``JUPYTER_PATH`` and select the kernel with
    ``--Execute.kernel_name=course-sandbox`` (nbgrader) or ``kernel_name="course-sandbox"``.
    """
    spec_dir = Path(jupyter_dir) / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    config = {"memory_mb": memory_mb, "time_limit_s": time_limit_s, "max_tasks": max_tasks,
              "readable": [str(p) for p in readable], "hidden": [str(p) for p in hidden],
              "files": {inside: str(outside) for inside, outside in (files or {}).items()}}
    spec = {
        # No history database: the canaries keep their token out of the kernel's history.
        "argv": [python or sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                 "--HistoryManager.enabled=False"],
        "display_name": "Python 3 (grading sandbox)",
        "language": "python",
        "interrupt_mode": "message",  # a SIGINT to the process group would kill bwrap
        "metadata": {"debugger": False, "kernel_provisioner": {
            "provisioner_name": KERNEL_NAME, "config": config}},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n")
    return spec_dir
