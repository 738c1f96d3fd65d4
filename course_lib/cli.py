"""The ``course`` command: doctor, run, release, verify, grade, explain, lab and test.

    course doctor                 what this machine offers the course
    course run [NOTEBOOK ...]     execute lecture notebooks headless, with a time table
    course release [PS ...]       regenerate release/ from source/ with nbgrader
    course verify [PS ...]        prove each assignment's tests (solution, blank, mutants)
    course grade PS --submissions DIR_OR_ZIP [--jobs N]
                                  collect, autograde, give feedback and export a class's grades
    course explain MODEL          per-layer shapes, parameters, memory and operations
    course lab                    start JupyterLab on the course
    course test [PYTEST ARGS]     every test on TensorFlow, then course_lib and notebooks on JAX
"""
from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

from .stopping import StopSignals


def _root() -> Path:
    from .grading.pipeline import find_course_root

    return find_course_root()


# --- doctor ------------------------------------------------------------------------------

def doctor(args) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from . import runtime
    from .data import available_offline, cache_dir, keras_datasets_dir
    from .hardware import frameworks

    info = runtime.setup(profile=args.profile, verbose=False, set_precision=False)
    print(info.report())
    chips = runtime.tpu_chips_on_pci()
    tpu_seen = "yes" if runtime.tpu_present() else "no"
    print(f"  backend chosen by {runtime.backend_source}; TPU seen: {tpu_seen}"
          + (f" ({len(chips)} chip(s) on the PCI bus: {', '.join(sorted(set(chips)))})" if chips else ""))
    print("  frameworks installed: " + ", ".join(f"{name} {version or 'no'}" for name, version in frameworks().items()))
    print("  datasets available offline:")
    for name, present in available_offline().items():
        print(f"    {name:<16}{'yes' if present else 'no (downloads on first use)'}")
    print(f"  course cache: {cache_dir()}")
    print(f"  Keras cache:  {keras_datasets_dir()}")
    return 0


# --- run ------------------------------------------------------------------------------------

def _resolve_notebooks(names: list[str], root: Path) -> list[Path]:
    folder = root / "notebooks"
    if not names:
        return sorted(folder.glob("*.ipynb"))
    found = []
    for name in names:
        path = Path(name)
        candidates = [path, folder / path, folder / f"{path}.ipynb"]
        if not path.is_absolute():  # a prefix such as "09" names notebooks/09_*.ipynb
            candidates += sorted(folder.glob(f"{name}*.ipynb"))
        match = next((c for c in candidates if c.is_file()), None)
        if match is None:
            known = ", ".join(p.stem for p in sorted(folder.glob("*.ipynb")))
            raise SystemExit(f"course run: no notebook {name!r}; the notebooks are: {known}")
        found.append(match.resolve())
    return found


def can_encrypt_kernels() -> bool:
    """Whether jupyter_client can give each kernel CurveZMQ keys (its ``transport_encryption``)
    and pyzmq can use them (built with libsodium). Then a kernel's traffic over localhost TCP is
    encrypted, and ipykernel 7 has no plain-text warning to print at every start."""
    import zmq
    from jupyter_client.manager import KernelManager

    return "transport_encryption" in KernelManager.class_trait_names() and bool(zmq.has("curve"))


def _encrypted_kernels():
    """nbclient configuration for encrypted kernels, where they can be (``can_encrypt_kernels``)."""
    from traitlets.config import Config

    config = Config()
    if can_encrypt_kernels():
        config.KernelManager.transport_encryption = "auto"
    return config


def execute_notebook(path: Path, output: Path, *, timeout: int, env: dict | None = None,
                     allow_errors: bool = False):
    """Execute one notebook with nbclient in its own folder; write the executed copy to ``output``.

    Returns (seconds, error or None); a cell that runs past ``timeout`` seconds or kills its kernel
    is an error too. With ``allow_errors`` every cell runs, whatever raised before it; the errors are
    in the executed copy's outputs.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
                            resources={"metadata": {"path": str(path.parent)}}, config=_encrypted_kernels())
    saved = dict(os.environ)
    os.environ.update(env or {})
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except CellExecutionError as failure:
        error = str(failure).strip().splitlines()[-1]
    except CellTimeoutError:
        error = f"a cell ran longer than {timeout} s"
    except DeadKernelError:
        error = "the kernel died (out of memory, or killed)"
    finally:
        os.environ.clear()
        os.environ.update(saved)
    seconds = time.perf_counter() - start
    output.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, output)
    return seconds, error


def run(args) -> int:
    root = _root()
    notebooks = _resolve_notebooks(args.notebooks, root)
    env = {"TF_CPP_MIN_LOG_LEVEL": "2"}
    if args.profile:
        env["COURSE_PROFILE"] = args.profile
    profile = env.get("COURSE_PROFILE") or os.environ.get("COURSE_PROFILE") or "auto"
    out = Path(args.output).resolve() if args.output else root / "build" / "notebooks"
    rows = []
    for path in notebooks:
        print(f"running {path.name} (profile {profile}) ...", flush=True)
        seconds, error = execute_notebook(path, out / path.name, timeout=args.timeout, env=env)
        rows.append((path.name, seconds, error))
    width = max(len(name) for name, _, _ in rows)
    print(f"\n{'notebook':<{width}}  {'seconds':>8}  result   (profile {profile}, executed copies in {out})")
    for name, seconds, error in rows:
        print(f"{name:<{width}}  {seconds:8.1f}  {'ok' if error is None else 'FAILED: ' + error}")
    print(f"{'total':<{width}}  {sum(s for _, s, _ in rows):8.1f}")
    return 0 if all(error is None for _, _, error in rows) else 1


# --- release and verify ---------------------------------------------------------------------

def _assignments(args, root) -> list[str]:
    from .grading.pipeline import assignment_names

    return args.assignments or assignment_names(root)


def release(args) -> int:
    from .grading.pipeline import GradingError, release as generate

    root = _root()
    try:
        for name in _assignments(args, root):
            for path in generate(name, root):
                print(f"wrote {path.relative_to(root)}")
    except GradingError as error:
        print(f"course release: {error}", file=sys.stderr)
        return 1
    return 0


def verify(args) -> int:
    from .grading.pipeline import GradingError, verify as prove

    root = _root()
    if args.profile:
        os.environ["COURSE_PROFILE"] = args.profile
    ok = True
    try:
        with StopSignals() as stop:   # Ctrl-C, SIGTERM, SIGHUP: nbgrader interrupted, scratch removed
            for name in _assignments(args, root):
                report = prove(name, root, jobs=args.jobs, stop=stop)
                print(report.table(), flush=True)
                if report.stopped_by:
                    print(f"course verify: stopped by {report.stopped_by.name}; no further assignment "
                          "was verified", file=sys.stderr)
                    return 128 + report.stopped_by
                ok &= report.passed
    except GradingError as error:
        print(f"course verify: {error}", file=sys.stderr)
        return 1
    return 0 if ok else 1


def grade(args) -> int:
    from .grading.grade import grade as autograde
    from .grading.pipeline import GradingError
    from .grading.sandbox import SandboxUnavailable

    root = _root()
    if args.profile:
        os.environ["COURSE_PROFILE"] = args.profile
    try:
        report = autograde(args.assignment, Path(args.submissions), root, jobs=args.jobs,
                           csv=args.csv, pattern=args.pattern, memory_mb=args.memory,
                           time_limit_s=args.time_limit)
    except (GradingError, SandboxUnavailable) as error:
        print(f"course grade: {error}", file=sys.stderr)
        return 1
    print(report.summary())
    if report.stopped_by:
        return 128 + report.stopped_by
    return 1 if report.failed else 0


# --- explain -------------------------------------------------------------------------------

def _input_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(size) for size in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected HEIGHT,WIDTH,CHANNELS such as 32,32,3; got {text!r}")
    return shape


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more; got {text!r}")
    return value


def explain(args) -> int:
    """The accounting table of a named architecture, computed with the lecture's formulas
    (``accounting.SHAPES``): no Keras, no weights, so even ResNet-152 answers at once."""
    from .accounting import SHAPES, account
    from .models import build

    options = {name: getattr(args, name) for name in ("input_shape", "classes", "width")
               if getattr(args, name) is not None}
    try:
        table = account(build(args.model, nn=SHAPES, **options))
    except (TypeError, ValueError) as error:
        print(f"course explain: {error}", file=sys.stderr)
        return 2
    print(table.to_json() if args.json else table.to_text(all_layers=args.all))
    return 0


# --- lab and test ----------------------------------------------------------------------------

def lab(args) -> int:
    """Start JupyterLab at the course root. On POSIX the process becomes JupyterLab (``exec``), so
    a signal meant for ``course lab`` (SIGTERM from a service manager or ``docker stop``, SIGHUP
    from a closed terminal) stops JupyterLab itself instead of leaving it running orphaned."""
    root = _root()
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}",
               "--LabApp.default_url=/lab/tree/notebooks"]
    if can_encrypt_kernels():
        command.append("--KernelManager.transport_encryption=auto")
    command += args.extra
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and cloud machines often run as root
    if os.name != "posix":
        return subprocess.call(command, cwd=root)
    os.chdir(root)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)


JAX_ENVIRONMENT = "build/jax-env"  # a virtual environment with JAX and no TensorFlow
OLDEST_ENVIRONMENT = "build/oldest-env"  # the same at the oldest versions pyproject.toml allows
OLDEST_TENSORFLOW_ENVIRONMENT = "build/oldest-tf-env"  # TensorFlow and no JAX, at those versions
ENVIRONMENTS = {("jax", False): JAX_ENVIRONMENT, ("jax", True): OLDEST_ENVIRONMENT,
                ("tensorflow", True): OLDEST_TENSORFLOW_ENVIRONMENT}   # (backend, oldest) -> folder
OLDEST_VERSIONS = "constraints/oldest.txt"  # those versions, pinned
OLDEST_VERSIONS_PYTHONS = ((3, 10), (3, 11))  # the Pythons its pins have wheels for
# TensorFlow's pin is tensorflow-cpu, what the tensorflow extra installs on Linux x86_64 only.
TENSORFLOW_PIN_APPLIES = sys.platform == "linux" and platform.machine() == "x86_64"


def oldest_versions(root: Path) -> dict[str, str]:
    """The pins of ``constraints/oldest.txt``: {package: version}, comments left out."""
    pins = {}
    for line in (root / OLDEST_VERSIONS).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def backend_environment(root: Path, backend: str = "jax", *, oldest: bool = False, log=print) -> Path:
    """The Python of a virtual environment with course_lib on ``backend`` ("jax" or "tensorflow")
    and the other backend *not* installed (JAX without TensorFlow, as on Colab's TPU runtimes);
    made (a few minutes) when missing or out of date. JAX at the newest versions pip finds at
    ``build/jax-env``; with ``oldest``, at the versions pinned in ``constraints/oldest.txt``, JAX
    at ``build/oldest-env`` and TensorFlow at ``build/oldest-tf-env``."""
    folder = root / ENVIRONMENTS[backend, oldest]
    other = "tensorflow" if backend == "jax" else "jax"
    names = {"jax": "JAX", "tensorflow": "TensorFlow"}
    python = folder / "bin" / "python"
    pins = {}
    if oldest:  # the other backend's pins (jax, jaxlib; tensorflow-cpu) are for its own environment
        pins = {name: pin for name, pin in oldest_versions(root).items() if not name.startswith(other)}
    check = (f"import course_lib, {backend}, nbval, sys; from importlib.metadata import version; "
             f"sys.exit(any(version(name) != pin for name, pin in {pins!r}.items()))")
    if python.exists() and subprocess.call([str(python), "-c", check], cwd=root, stderr=subprocess.DEVNULL) == 0:
        return python
    what = f"{names[backend]} without {names[other]}, at {'the oldest versions allowed' if oldest else 'the newest versions'}"
    log(f"making {folder} ({what}) with pip ...")
    constraints = ["--constraint", str(root / OLDEST_VERSIONS)] if oldest else []
    steps = [[sys.executable, "-m", "venv", "--clear", str(folder)],
             [str(python), "-m", "pip", "install", "--quiet", *constraints, "-e", f"{root}[{backend},lab,test]"]]
    for step in steps:
        if subprocess.call(step, cwd=root) != 0:
            skip = "--skip-oldest-environment" if oldest else "--skip-jax-environment"
            raise SystemExit(f"course test: could not make {folder} ({what}): {' '.join(step)} "
                             f"failed. It needs the package index once; or pass {skip}.")
    if subprocess.call([str(python), "-c", f"import {other}"], stderr=subprocess.DEVNULL) == 0:
        raise SystemExit(f"course test: {folder} has {names[other]} installed; delete the folder and run again")
    return python


def _run_pass(command: list[str], root: Path, env: dict) -> tuple[int, signal.Signals | None]:
    """Run one pass's pytest; return its exit status and the signal that stopped ``course
    test`` meanwhile (None if none). SIGTERM or SIGHUP sent to ``course test`` (a CI job's
    time limit, ``docker stop``, a closed terminal) is passed on to pytest, which winds down as on
    Ctrl-C (the course's conftest.py: fixtures torn down, kernels and servers stopped); Ctrl-C
    itself already reaches pytest from the terminal. Either way ``course test`` waits for pytest
    to finish, rather than leaving it running or killing it mid-teardown."""
    process = subprocess.Popen(command, cwd=root, env=env)
    with StopSignals() as stop:
        def pass_on() -> None:
            if stop.signal != signal.SIGINT:
                process.send_signal(stop.signal)

        stop.on_stop(pass_on)
        code = process.wait()
    return code, stop.signal


def test(args) -> int:
    """Every test on TensorFlow; then, in an environment without TensorFlow, the course_lib
    unit tests and every lecture notebook on JAX; then the unit tests again at the oldest versions
    ``pyproject.toml`` allows (what a student's or Colab's older install would have), on JAX and
    on TensorFlow, each in an environment of its own."""
    root = _root()
    # Each pass names its Python lazily: an environment is made only when its pass starts.
    runs = [("TensorFlow", lambda: sys.executable, [], {"KERAS_BACKEND": "tensorflow"})]
    if not args.skip_jax_environment:
        runs.append(("JAX without TensorFlow", lambda: str(backend_environment(root, "jax")),
                     ["-m", "not slow or lecture"], {"KERAS_BACKEND": "jax"}))
        if not args.skip_oldest_environment:
            if tuple(sys.version_info[:2]) not in OLDEST_VERSIONS_PYTHONS:
                print(f"course test: no pass at the oldest versions on Python {sys.version.split()[0]}: "
                      f"{OLDEST_VERSIONS} pins releases built for Python 3.10 and 3.11 only")
            else:
                runs.append(("JAX at the oldest versions", lambda: str(backend_environment(root, "jax", oldest=True)),
                             ["-m", "not slow"], {"KERAS_BACKEND": "jax"}))
                if TENSORFLOW_PIN_APPLIES:
                    runs.append(("TensorFlow at the oldest versions",
                                 lambda: str(backend_environment(root, "tensorflow", oldest=True)),
                                 ["-m", "not slow"], {"KERAS_BACKEND": "tensorflow"}))
                else:
                    print("course test: no pass on TensorFlow at the oldest versions here: its pin in "
                          f"{OLDEST_VERSIONS}, tensorflow-cpu, is what Linux x86_64 installs")
    failed = []
    for name, python, options, env in runs:
        command = [python(), "-m", "pytest", *options, *args.extra]
        print(f"\n=== tests on {name}: {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        code, stopped_by = _run_pass(command, root, {**os.environ, **env})
        print(f"=== {name}: {'passed' if code == 0 else 'FAILED'} in {time.perf_counter() - started:.0f} s", flush=True)
        if stopped_by:
            print(f"\n=== stopped by {stopped_by.name} during the pass on {name}; "
                  "no further passes were run", flush=True)
            return 128 + stopped_by
        if code != 0:
            failed.append(name)
    print(f"\n=== {'failed on ' + ' and '.join(failed) if failed else 'all tests passed: ' + ', '.join(run[0] for run in runs)}")
    return 1 if failed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="course", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("doctor", help="backend, devices, precision, profile and offline datasets")
    p.add_argument("--profile", choices=("ci", "cpu", "full"))
    p.set_defaults(handler=doctor)

    p = commands.add_parser("run", help="execute lecture notebooks headless and time them")
    p.add_argument("notebooks", nargs="*", help="names or paths (default: every notebook)")
    p.add_argument("--profile", choices=("ci", "cpu", "full"))
    p.add_argument("--output", help="folder for executed copies (default: the course's build/notebooks)")
    p.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell")
    p.set_defaults(handler=run)

    p = commands.add_parser("release", help="regenerate release/ from source/ with nbgrader")
    p.add_argument("assignments", nargs="*", help="default: every assignment")
    p.set_defaults(handler=release)

    p = commands.add_parser("verify", help="prove each assignment: solution, blank release, mutants")
    p.add_argument("assignments", nargs="*", help="default: every assignment")
    p.add_argument("--profile", choices=("ci", "cpu", "full"))
    p.add_argument("--jobs", type=int, default=2, help="submissions graded at once")
    p.set_defaults(handler=verify)

    from .grading.grade import LMS_PATTERN

    p = commands.add_parser("grade", help="collect submissions, autograde them in parallel, generate feedback, "
                                          "export a CSV of grades")
    p.add_argument("assignment", help="the assignment, e.g. ps1_regularization")
    p.add_argument("--submissions", required=True,
                   help="a folder of STUDENT/PS/*.ipynb (or STUDENT/*.ipynb), or an LMS zip")
    p.add_argument("--jobs", type=_positive, default=1, help="submissions executed at once (default 1)")
    p.add_argument("--csv", type=Path, help="where to write the grades (default grades/PS.csv)")
    p.add_argument("--pattern", default=LMS_PATTERN,
                   help="regular expression for the file names in an LMS zip, with the groups "
                        "(?P<student_id>...) and (?P<file_id>...) (default: Canvas's naming)")
    p.add_argument("--memory", type=_positive, default=4096, metavar="MB",
                   help="memory limit of each grading kernel (default 4096)")
    p.add_argument("--time-limit", type=_positive, default=1200, metavar="SECONDS",
                   help="wall-clock limit of each notebook's kernel (default 1200)")
    p.add_argument("--profile", choices=("ci", "cpu", "full"))
    p.set_defaults(handler=grade)

    from .models import ARCHITECTURES

    p = commands.add_parser("explain", help="per-layer output shape, parameters, memory and operations of a model")
    p.add_argument("model", help=f"one of: {', '.join(ARCHITECTURES)}")
    p.add_argument("--input-shape", type=_input_shape, help="HEIGHT,WIDTH,CHANNELS (default: the paper's)")
    p.add_argument("--classes", type=int, help="output classes (default: the paper's)")
    p.add_argument("--width", type=float, help="channel multiplier (default 1)")
    p.add_argument("--all", action="store_true", help="also list layers with no memory and no parameters")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=explain)

    p = commands.add_parser("lab", help="start JupyterLab on the course (other options go to JupyterLab)")
    p.set_defaults(handler=lab, passes_through=True)

    p = commands.add_parser("test", help="every test on TensorFlow, then course_lib and the lecture notebooks on "
                                         "JAX without TensorFlow, then course_lib on JAX and on TensorFlow at "
                                         "the oldest versions allowed (other options go to pytest)")
    p.add_argument("--skip-jax-environment", action="store_true",
                   help=f"only the first pass (the others need {JAX_ENVIRONMENT}, {OLDEST_ENVIRONMENT} and "
                        f"{OLDEST_TENSORFLOW_ENVIRONMENT}, made with pip)")
    p.add_argument("--skip-oldest-environment", action="store_true",
                   help=f"no passes at the oldest versions allowed ({OLDEST_VERSIONS}, in {OLDEST_ENVIRONMENT} "
                        f"and {OLDEST_TENSORFLOW_ENVIRONMENT})")
    p.set_defaults(handler=test, passes_through=True)

    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passes_through", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
