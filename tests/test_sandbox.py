"""The grading sandbox (course_lib.grading.sandbox): real kernels started through the
``course-sandbox`` kernel spec, as nbgrader starts them.

Tests that need bubblewrap skip where it is missing or cannot run, and fail instead when
COURSE_REQUIRE_SANDBOX=1 (CI installs it).
"""
import os
import shutil
import socket
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

import processes
from course_lib.grading import cgroups, sandbox

MEMORY_MB = 2048


@pytest.fixture
def bwrap():
    """Skip (or fail, with COURSE_REQUIRE_SANDBOX=1) where bubblewrap cannot sandbox."""
    reason = sandbox.bwrap_available()
    if reason and os.environ.get(sandbox.REQUIRE_VARIABLE) == "1":
        pytest.fail(f"{sandbox.REQUIRE_VARIABLE}=1 but {reason}")
    if reason:
        pytest.skip(reason)


@pytest.fixture
def course(tmp_path):
    """A course folder: source, gradebook, two students' submissions; alice is being graded."""
    root = tmp_path / "course"
    for path, text in {"source/ps1/ps1.ipynb": "hidden tests", "gradebook.db": "grades",
                       "submitted/bob/ps1/ps1.ipynb": "bob's answers",
                       "autograded/bob/ps1/ps1.ipynb": "bob's graded answers",
                       "autograded/alice/ps1/data.txt": "alice's data"}.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def run_cells(tmp_path, monkeypatch, work_dir, cells, *, timeout=120, **spec):
    """Execute ``cells`` in a kernel of a fresh ``course-sandbox`` spec; return the outputs' text."""
    jupyter_dir = sandbox.write_kernel_spec(tmp_path / "jupyter", **spec).parent.parent
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_dir))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = NotebookClient(nb, kernel_name=sandbox.KERNEL_NAME, timeout=timeout,
                            interrupt_on_timeout=True,  # as nbgrader's Execute does
                            allow_errors=True, resources={"metadata": {"path": str(work_dir)}})
    client.execute()
    return ["".join(o.get("text", "") + o.get("ename", "") + o.get("evalue", "")
                    for o in cell.outputs) for cell in nb.cells]


def test_kernel_runs_code_but_sees_only_its_own_folder(bwrap, course, tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    (shared / "masked").mkdir(parents=True)
    (shared / "masked" / "answers.txt").write_text("secret")
    (shared / "secret.txt").write_text("secret")
    (shared / "notes.txt").write_text("readable")
    work = course / "autograded" / "alice" / "ps1"
    monkeypatch.setenv("GITHUB_TOKEN", "not-for-students")
    outputs = run_cells(tmp_path, monkeypatch, work, [
        "import os; print(6 * 7, os.getcwd())",
        "print(open('data.txt').read()); open('out.txt', 'w').write('ok'); print(open('out.txt').read())",
        "import course_lib, numpy; print('imports ok')",
        *(f"open({str(p)!r}).read()" for p in [
            course / "source/ps1/ps1.ipynb", course / "gradebook.db",
            course / "submitted/bob/ps1/ps1.ipynb", course / "autograded/bob/ps1/ps1.ipynb",
            os.path.expanduser("~/.bashrc"), shared / "secret.txt",
            shared / "masked/answers.txt"]),
        f"print(open({str(shared / 'notes.txt')!r}).read())",
        "print(os.environ.get('GITHUB_TOKEN'))",
    ], readable=[shared], hidden=[shared / "secret.txt", shared / "masked"])
    assert outputs[0] == f"42 {work}\n"
    assert outputs[1] == "alice's data\nok\n" and not (work / "out.txt").exists()   # written to a tmpfs
    assert outputs[2] == "imports ok\n"
    for denied in outputs[3:10]:
        assert denied.startswith(("FileNotFoundError", "PermissionError")), outputs
    assert outputs[10] == "readable\n"
    assert outputs[11] == "None\n"


def test_a_kernel_runs_with_a_temporary_folder_too_long_for_its_sockets(tmp_path, monkeypatch):
    """A TMPDIR too long for the paths of the kernel's IPC sockets (a Unix socket's may have
    107 bytes), as some job schedulers give: the kernel's private folder goes to /tmp, and the
    kernel runs. (Every kernel failed with ZMQError: File name too long.)"""
    import tempfile

    long_tmpdir = tmp_path / ("t" * 100)
    long_tmpdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(long_tmpdir))
    assert run_cells(tmp_path, monkeypatch, tmp_path, ["print(6 * 7)"]) == ["42\n"]
    assert sandbox.kernel_folder_parent() == "/tmp"
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))   # short enough: stays
    assert sandbox.kernel_folder_parent() == str(tmp_path)


def test_kernel_gets_only_the_variables_it_needs(bwrap, tmp_path, monkeypatch, capfd):
    """An allowlist: a gradebook's URL or any other variable of the grader's stays out; what
    student code writes to the kernel's own stdout (file descriptor 1) reaches nobody."""
    for name, value in {"DATABASE_URL": "postgresql://grader:pw@db/course", "COURSE_POSTGRES_URL": "postgresql://x",
                        "SOME_SETTING": "x", "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "jax"),
                        "COURSE_PROFILE": "ci"}.items():
        monkeypatch.setenv(name, value)
    outputs = run_cells(tmp_path, monkeypatch, tmp_path, [
        "import os\nprint(sorted(k for k in ('DATABASE_URL', 'COURSE_POSTGRES_URL', 'SOME_SETTING')\n"
        "             if k in os.environ))",
        "print(os.environ['COURSE_PROFILE'], os.environ['KERAS_BACKEND'] == %r)" % os.environ["KERAS_BACKEND"],
        "os.system('echo written-to-fd-1'); os.write(1, b'also-to-fd-1\\n')",
    ])
    assert outputs[:2] == ["[]\n", "ci True\n"], outputs
    assert "fd-1" not in capfd.readouterr().out


def test_kernel_environment_is_an_allowlist():
    kept = sandbox.kernel_environment({
        "PATH": "/usr/bin", "LC_ALL": "C", "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2", "COURSE_PROFILE": "ci",
        "NBGRADER_EXECUTION": "autograde", "DATABASE_URL": "x", "COURSE_POSTGRES_URL": "x", "PGPASSWORD": "x",
        "AWS_SECRET_ACCESS_KEY": "x", "JUPYTER_TOKEN": "x", "HOSTNAME": "grader"})
    assert sorted(kept) == ["COURSE_PROFILE", "KERAS_BACKEND", "LC_ALL", "NBGRADER_EXECUTION", "PATH",
                            "TF_CPP_MIN_LOG_LEVEL"]


def test_kernel_has_no_network(bwrap, tmp_path, monkeypatch):
    try:  # pypi.org's address, resolved outside the sandbox
        address = socket.getaddrinfo("pypi.org", 443, socket.AF_INET)[0][4][0]
    except OSError:
        address = "8.8.8.8"
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        outputs = run_cells(tmp_path, monkeypatch, tmp_path, [
            f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5)",
            "socket.create_connection(('pypi.org', 443), timeout=5)",
            f"socket.create_connection(({address!r}, 443), timeout=5)",
        ])
    finally:
        listener.close()
    assert outputs[0].startswith("ConnectionRefusedError"), outputs
    assert outputs[1].startswith("gaierror"), outputs
    assert outputs[2].startswith("OSError") and "unreachable" in outputs[2], outputs


def test_a_kernel_cannot_fill_the_disk_from_its_folder(bwrap, course, tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "WORK_DIR_MB", 8)
    work = course / "autograded" / "alice" / "ps1"
    outputs = run_cells(tmp_path, monkeypatch, work, [
        "open('big.bin', 'wb').write(bytes(16 * 2**20))",               # twice the folder's size
        "import os; os.remove('big.bin'); open('small.bin', 'wb').write(bytes(2**20)); print('still alive')",
        "open('data.txt', 'w').write('overwritten')",                    # the submission's own files
    ])
    assert outputs[0].startswith("OSError") and "No space left on device" in outputs[0], outputs
    assert outputs[1] == "still alive\n"
    assert outputs[2].startswith(("OSError", "PermissionError")), outputs
    assert sorted(path.name for path in work.iterdir()) == ["data.txt"]
    assert (work / "data.txt").read_text() == "alice's data"


def test_big_allocation_fails_and_the_kernel_goes_on(bwrap, tmp_path, monkeypatch):
    outputs = run_cells(tmp_path, monkeypatch, tmp_path, [
        f"big = bytearray({2 * MEMORY_MB} * 2**20)",
        "import numpy; big = numpy.ones(2**30)",  # 8 GiB
        "small = bytearray(100 * 2**20); print('still alive')",
    ], memory_mb=MEMORY_MB)
    assert outputs[0].startswith("MemoryError"), outputs
    assert "MemoryError" in outputs[1], outputs  # numpy's _ArrayMemoryError
    assert outputs[2] == "still alive\n"


def test_cell_timeout_interrupts_the_cell_not_the_kernel(bwrap, tmp_path, monkeypatch):
    """nbgrader interrupts a cell past Execute.timeout; the later cells must still run."""
    outputs = run_cells(tmp_path, monkeypatch, tmp_path,
                        ["while True: pass", "print('next cell')"], timeout=5)
    assert outputs == ["KeyboardInterrupt", "next cell\n"]


def test_wall_clock_limit_kills_an_infinite_loop(bwrap, tmp_path, monkeypatch):
    start = time.monotonic()
    with pytest.raises(DeadKernelError):
        run_cells(tmp_path, monkeypatch, tmp_path, ["while True: pass"],
                  time_limit_s=15, timeout=300)
    assert time.monotonic() - start < 90
    assert not processes.mentioning(str(tmp_path)), "the sandbox outlived its time limit"


@pytest.mark.parametrize("use_bwrap", [True, False], ids=["sandboxed", "unsandboxed"])
def test_what_it_runs_dies_with_the_process_that_started_it(use_bwrap, tmp_path, request):
    """A grading worker that dies (the OOM killer, a crash) takes its kernel along, instead of
    leaving it running, and holding its memory, until the wall-clock limit (20 minutes)."""
    if use_bwrap:
        request.getfixturevalue("bwrap")   # skips, or fails with COURSE_REQUIRE_SANDBOX=1
    marker = f"{tmp_path}/still-running"   # in the command lines of what it starts
    command = sandbox.sandbox_command(["sh", "-c", f"sleep 300; : {marker}"], work_dir=str(tmp_path),
                                      time_limit_s=600, use_bwrap=use_bwrap)
    with processes.session([sys.executable, "-c", f"import subprocess, time; subprocess.Popen({command!r}); "
                            "time.sleep(600)"], tmp_path / "worker.log", env=dict(os.environ), marker=marker) as worker:
        # besides the worker itself, whose command line holds the command
        started = processes.wait_until(lambda: [pid for pid in processes.mentioning(marker) if pid != worker.pid], 60)
        assert started, "the command never started"
        worker.kill()   # as the OOM killer would
        worker.wait()
        gone = processes.wait_until(lambda: not processes.mentioning(marker), 30)
        assert gone, "it outlived the process that started it"


def test_without_bwrap_grading_runs_unsandboxed_and_says_so(tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(sandbox, "bwrap_available", lambda: "bwrap is not installed")
    monkeypatch.setattr(sandbox, "_warned", False)
    monkeypatch.delenv(sandbox.REQUIRE_VARIABLE, raising=False)
    command = sandbox.sandbox_command(["python"], work_dir=str(tmp_path), memory_mb=100,
                                      time_limit_s=9)
    with_parent = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []
    assert command == [*with_parent, "timeout", "--signal=KILL", "9s", "prlimit", f"--data={100 << 20}",
                       f"--fsize={100 << 20}", "--", *with_parent, "python"]
    outputs = run_cells(tmp_path, monkeypatch, tmp_path, ["print(6 * 7)"])
    assert outputs == ["42\n"]
    assert "WARNING: UNSANDBOXED GRADING. bwrap is not installed" in capfd.readouterr().err

    monkeypatch.setenv(sandbox.REQUIRE_VARIABLE, "1")
    with pytest.raises(sandbox.SandboxUnavailable, match="bwrap is not installed"):
        sandbox.warn_unsandboxed()


def test_probe_reports_a_missing_or_refused_bwrap(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "not installed" in sandbox._bwrap_probe()
    fake = tmp_path / "bwrap"  # as in a container that refuses namespaces
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    assert sandbox._bwrap_probe() == (
        "bwrap cannot create a sandbox here: bwrap: No permissions to create new namespace")


def test_kernels_share_one_read_only_matplotlib_font_list(bwrap, tmp_path, monkeypatch):
    files = sandbox.matplotlib_font_list(tmp_path / "fonts")
    assert list(files) == [f"{sandbox.FONT_LIST_DIR}/{Path(outside).name}" for outside in files.values()]
    (inside, outside), = files.items()
    built = Path(outside).read_bytes()
    probe = ["import logging, os\n"
             "logging.basicConfig(level=logging.INFO, format='%(message)s')\n"
             "import matplotlib.font_manager\n"
             "print('fonts', len(matplotlib.font_manager.fontManager.ttflist) > 0)",
             f"try:\n    open({inside!r}, 'a').write('x')\nexcept OSError:\n    print('list read-only')",
             f"open({sandbox.FONT_LIST_DIR!r} + '/mine', 'w').write('cache')\nprint('folder writable')"]
    with_list = run_cells(tmp_path, monkeypatch, tmp_path, probe, files=files)
    assert with_list == ["fonts True\n", "list read-only\n", "folder writable\n"]
    assert Path(outside).read_bytes() == built
    # Without it each kernel scans the fonts again (matplotlib logs that it built a new list).
    without = run_cells(tmp_path, monkeypatch, tmp_path, probe[:1])
    assert "generated new fontManager" in without[0] and "fonts True" in without[0]


def test_a_kernel_and_all_it_starts_share_one_process_limit(bwrap, tmp_path, monkeypatch):
    if cgroups.unavailable():
        pytest.skip(cgroups.unavailable())
    starts = ("import subprocess\nrunning = []\ntry:\n    while len(running) < 500:\n"
              "        running.append(subprocess.Popen(['sleep', '30']))\nexcept OSError as error:\n"
              "    print(len(running), type(error).__name__)\nfor run in running:\n    run.kill()\n")
    parents = cgroups._parents().values()
    before = {folder for parent in parents for folder in parent.glob("course-kernel-*")}
    outputs = run_cells(tmp_path, monkeypatch, tmp_path, [starts, "print('still here')"], max_tasks=60)
    count, error = outputs[0].split()
    # The kernel's own threads count too: fewer than 60 processes could start, then fork failed.
    assert error == "BlockingIOError" and 1 <= int(count) < 60
    assert outputs[1] == "still here\n"
    assert {folder for parent in parents for folder in parent.glob("course-kernel-*")} == before
