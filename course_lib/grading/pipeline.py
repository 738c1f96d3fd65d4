"""The instructor pipeline behind ``course release`` and ``course verify``, built on nbgrader.

``release`` regenerates ``release/<ps>`` from ``source/<ps>`` with ``nbgrader
generate_assignment``. ``verify`` proves an assignment in a scratch copy of the course:

* the solution (the source notebooks) scores full marks;
* the blank release scores 0 on every autograded cell;
* every mutant, a plausible wrong answer listed in ``tests/mutants/<ps>.py``, loses points;
* and the committed ``release/<ps>`` equals what nbgrader generates from ``source/<ps>``.

All grading goes through ``nbgrader autograde`` exactly as for students, in a scratch copy of
the course with its own gradebook (``scratch_course``); nothing in the course directory or its
gradebook (submissions, grades) is touched. Given a ``StopSignals`` (``course verify`` does), a
Ctrl-C, SIGTERM or SIGHUP interrupts the nbgrader runs, kernels and all, and ``verify`` returns a
report that proves nothing (``Report.stopped_by``), its scratch copy removed.
"""
from __future__ import annotations

import filecmp
import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..stopping import StopSignals
from . import worker

CONFIG_FILE = "nbgrader_config.py"
SOLUTION, BLANK = "solution", "blank"


class GradingError(RuntimeError):
    """nbgrader could not do what was asked, or an assignment is set up wrongly."""


@dataclass(frozen=True)
class Mutant:
    """A plausible wrong answer: the solution with ``find`` replaced by ``replace`` in one cell.

    cell  the nbgrader ``grade_id`` of the solution cell to change
    find  text that occurs exactly once in that cell
    why   the mistake it stands for, as a student would make it
    """

    name: str
    cell: str
    find: str
    replace: str
    why: str

    @property
    def student(self) -> str:
        return f"mutant-{self.name}"


@dataclass
class Outcome:
    """One graded submission: its scores per test cell and whether it came out as it must."""

    submission: str
    expectation: str
    scores: dict[str, tuple[float, float]] = field(default_factory=dict)  # cell -> (score, max)
    passed: bool = False
    detail: str = ""

    @property
    def score(self) -> float:
        return sum(s for s, _ in self.scores.values())

    @property
    def max_score(self) -> float:
        return sum(m for _, m in self.scores.values())


@dataclass
class Report:
    assignment: str
    outcomes: list[Outcome]
    stopped_by: signal.Signals | None = None   # the signal that stopped the proof: nothing proved

    @property
    def passed(self) -> bool:
        return not self.stopped_by and all(o.passed for o in self.outcomes)

    def table(self) -> str:
        if self.stopped_by:
            return f"{self.assignment}\n  stopped by {self.stopped_by.name} before the proof finished: nothing proved"
        width = max(len(o.submission) for o in self.outcomes)
        lines = [f"{self.assignment}", f"  {'submission':<{width}}  {'score':>11}  {'must':<22}  result"]
        for o in self.outcomes:
            score = f"{o.score:g}/{o.max_score:g}" if o.scores else "-"
            verdict = "ok" if o.passed else "FAIL"
            lines.append(f"  {o.submission:<{width}}  {score:>11}  {o.expectation:<22}  {verdict}"
                         + (f"  ({o.detail})" if o.detail else ""))
        lines.append(f"  {'all proofs hold' if self.passed else 'SOME PROOFS FAILED'}")
        return "\n".join(lines)


# --- the course directory ----------------------------------------------------------------

def find_course_root(start: Path | None = None) -> Path:
    """The folder holding ``nbgrader_config.py``: ``$COURSE_ROOT``, or the first above ``start``."""
    if os.environ.get("COURSE_ROOT"):
        root = Path(os.environ["COURSE_ROOT"]).resolve()
        if not (root / CONFIG_FILE).exists():
            raise GradingError(f"COURSE_ROOT={root} holds no {CONFIG_FILE}")
        return root
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).exists():
            return folder
    raise GradingError(f"no {CONFIG_FILE} in {here} or above it: run this inside the course "
                       f"folder, or set COURSE_ROOT")


def assignment_names(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "source").iterdir() if p.is_dir() and not p.name.startswith("."))


def _check_assignment(root: Path, assignment: str) -> None:
    names = assignment_names(root)
    if assignment not in names:
        raise GradingError(f"no assignment {assignment!r} in {root / 'source'}; "
                           f"the assignments are: {', '.join(names) or 'none'}")


def _notebooks(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.ipynb"))


def run_nbgrader(args: list[str], root: Path, *, check: bool = True, stop: StopSignals | None = None) -> str:
    """Run one nbgrader command on the course at ``root``; return its log.

    With ``check``, a non-zero exit or an ERROR in the log raises ``GradingError``. With
    ``stop``, the command is interrupted when the stop comes (``StopSignals.interrupt_on_stop``),
    and then its exit is no error: the caller, seeing ``stop.signal``, knows it was cut short.
    The command gets a temporary folder of its own (``TMPDIR``), removed when it has ended,
    whatever it left there: a stop that lands while a kernel starts leaves that kernel's
    connection file behind, as Jupyter removes it only when the kernel is shut down.
    """
    worker.put_nbgrader_scripts_on_path()
    command = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={root}"]
    with (tempfile.TemporaryDirectory(prefix="nbgrader-", ignore_cleanup_errors=True) as temporary,
          subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "TMPDIR": temporary}) as process):
        if stop:
            stop.interrupt_on_stop(process)
        stdout, stderr = process.communicate()
    log = stdout + stderr
    if check and not (stop and stop.signal) and (process.returncode != 0 or "| ERROR]" in log):
        tail = "\n".join(log.strip().splitlines()[-25:])
        raise GradingError(f"`nbgrader {' '.join(args)}` failed in {root}:\n{tail}")
    return log


# Appended to the config of a scratch copy of the course: whatever gradebook the course's own
# config names (nbgrader's db_url, perhaps a shared PostgreSQL), the copy keeps its own SQLite
# gradebook next to its config, so nothing graded there reaches the real one.
SCRATCH_GRADEBOOK = """

# (scratch copy made by course_lib: its own gradebook)
import os
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(os.path.dirname(os.path.abspath(__file__)), "gradebook.db")
"""


def scratch_course(root: Path, assignment: str, course: Path) -> Path:
    """A scratch copy of the course at ``course``, for grading there: the config (with its own
    gradebook, ``SCRATCH_GRADEBOOK``) and ``source/<assignment>``. Returns ``course``."""
    (course / "source").mkdir(parents=True)
    (course / CONFIG_FILE).write_text((root / CONFIG_FILE).read_text() + SCRATCH_GRADEBOOK)
    shutil.copytree(root / "source" / assignment, course / "source" / assignment)
    worker.new_sqlite_gradebook(f"sqlite:///{course / 'gradebook.db'}")
    return course


# --- release ------------------------------------------------------------------------------

def release(assignment: str, root: Path | None = None) -> list[Path]:
    """Regenerate ``release/<assignment>`` from ``source/<assignment>`` with nbgrader."""
    root = root or find_course_root()
    _check_assignment(root, assignment)
    run_nbgrader(["generate_assignment", assignment, "--force"], root)
    return _notebooks(root / "release" / assignment)


def _same_notebook(a: Path, b: Path) -> bool:
    return json.loads(a.read_text()) == json.loads(b.read_text())


def stale_release_files(assignment: str, root: Path, generated: Path) -> list[str]:
    """Files of ``release/<assignment>`` that differ from a fresh generation in ``generated``."""
    committed = root / "release" / assignment
    if not committed.is_dir():
        return [f"release/{assignment} (missing)"]
    names = {p.name for p in committed.iterdir()} | {p.name for p in generated.iterdir()}
    stale = []
    for name in sorted(names):
        a, b = committed / name, generated / name
        if not (a.exists() and b.exists()):
            stale.append(f"release/{assignment}/{name}")
        elif name.endswith(".ipynb"):
            if not _same_notebook(a, b):
                stale.append(f"release/{assignment}/{name}")
        elif not filecmp.cmp(a, b, shallow=False):
            stale.append(f"release/{assignment}/{name}")
    return stale


# --- mutants --------------------------------------------------------------------------------

def load_mutants(assignment: str, root: Path) -> list[Mutant]:
    """The mutants of ``tests/mutants/<assignment>.py`` (its list ``MUTANTS``)."""
    path = root / "tests" / "mutants" / f"{assignment}.py"
    if not path.exists():
        raise GradingError(f"{path} is missing: every assignment needs mutants that prove its tests")
    mutants = runpy.run_path(str(path)).get("MUTANTS")
    if not isinstance(mutants, list) or not all(isinstance(m, Mutant) for m in mutants) or not mutants:
        raise GradingError(f"{path} must define MUTANTS, a non-empty list of Mutant")
    names = [m.name for m in mutants]
    if len(set(names)) != len(names):
        raise GradingError(f"{path}: mutant names must be unique; got {names}")
    return mutants


def apply_mutant(notebook: dict, mutant: Mutant) -> dict | None:
    """A copy of ``notebook`` with the mutant applied, or None if it lacks the mutant's cell."""
    cells = [c for c in notebook["cells"]
             if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == mutant.cell]
    if not cells:
        return None
    source = "".join(cells[0]["source"])
    count = source.count(mutant.find)
    if count != 1:
        raise GradingError(f"mutant {mutant.name!r}: {mutant.find!r} occurs {count} times in cell "
                           f"{mutant.cell!r}; it must occur exactly once (has the solution changed?)")
    changed = json.loads(json.dumps(notebook))
    for cell in changed["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == mutant.cell:
            cell["source"] = source.replace(mutant.find, mutant.replace)
    return changed


# --- verify ---------------------------------------------------------------------------------

def _write_submission(course: Path, student: str, assignment: str, notebooks: dict[str, dict]) -> None:
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    for name, notebook in notebooks.items():
        (folder / name).write_text(json.dumps(notebook, indent=1))


def _scores(course: Path, assignment: str, students: list[str]) -> dict[str, dict]:
    from nbgrader.api import Gradebook, MissingEntry

    found = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student in students:
            try:
                submission = gradebook.find_submission(assignment, student)
            except MissingEntry:
                continue
            found[student] = {f"{nb.name}:{g.name}": (float(g.auto_score or 0.0), float(g.max_score))
                              for nb in submission.notebooks for g in nb.grades
                              if g.cell_type == "code" and g.max_score}
    return found


def _autograde(base: Path, assignment: str, batches: list[dict[str, dict]], stop: StopSignals | None):
    """Autograde each batch of submissions {student: {notebook name: notebook}} in its own
    copy of the course, in parallel; return the scores and the ERROR lines nbgrader logged."""
    def grade(index_batch):
        index, batch = index_batch
        if stop and stop.signal:
            return {}, []
        course = base.parent / f"worker{index}"
        shutil.copytree(base, course)
        for student, notebooks in batch.items():
            _write_submission(course, student, assignment, notebooks)
        # One failing submission must not stop the others: judge each by its grades.
        # (each kernel killed when its last cell has run, as course grade does: same grades,
        # without the seconds of CPU a graceful exit after importing TensorFlow costs)
        log = run_nbgrader(["autograde", assignment, "--force", "--Execute.shutdown_kernel=immediate"],
                           course, check=False, stop=stop)
        found = _scores(course, assignment, list(batch))
        errors = [line for line in log.splitlines() if "| ERROR]" in line]
        return found, errors

    scores: dict[str, dict] = {}
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=len(batches)) as pool:
        for found, logged in pool.map(grade, enumerate(batches)):
            scores.update(found)
            errors += logged
    return scores, errors


def verify(assignment: str, root: Path | None = None, *, jobs: int = 2, log=print,
           stop: StopSignals | None = None) -> Report:
    """Prove one assignment (see the module docstring). Returns the report; never raises on a
    failed proof, only when the assignment cannot be graded at all. When ``stop`` comes, the
    nbgrader runs are interrupted and the report says so (``stopped_by``) and proves nothing."""
    root = root or find_course_root()
    _check_assignment(root, assignment)
    mutants = load_mutants(assignment, root)
    with tempfile.TemporaryDirectory(prefix=f"verify-{assignment}-") as scratch:
        base = scratch_course(root, assignment, Path(scratch) / "course")
        log(f"{assignment}: generating the release")
        run_nbgrader(["generate_assignment", assignment, "--force"], base, stop=stop)
        if stop and stop.signal:
            return Report(assignment, [], stopped_by=stop.signal)
        stale = stale_release_files(assignment, root, base / "release" / assignment)

        solution = {p.name: json.loads(p.read_text()) for p in _notebooks(base / "source" / assignment)}
        blank = {p.name: json.loads(p.read_text()) for p in _notebooks(base / "release" / assignment)}
        submissions = {SOLUTION: solution, BLANK: blank}
        for mutant in mutants:
            changed = {}
            for name, notebook in solution.items():
                mutated = apply_mutant(notebook, mutant)
                changed[name] = notebook if mutated is None else mutated
            if all(changed[n] is solution[n] for n in solution):
                raise GradingError(f"mutant {mutant.name!r}: no notebook of {assignment} has a "
                                   f"cell with grade_id {mutant.cell!r}")
            submissions[mutant.student] = changed

        jobs = max(1, min(jobs, len(submissions)))
        students = list(submissions)
        batches = [{s: submissions[s] for s in students[i::jobs]} for i in range(jobs)]
        log(f"{assignment}: autograding {len(submissions)} submissions with nbgrader "
            f"({jobs} at a time)")
        scores, errors = _autograde(base, assignment, batches, stop)
    if stop and stop.signal:
        return Report(assignment, [], stopped_by=stop.signal)

    outcomes = [Outcome("release/ is current", "match source/", passed=not stale,
                        detail=("stale: " + ", ".join(stale) + "; run `course release "
                                f"{assignment}`") if stale else "")]
    outcomes.append(_judge(SOLUTION, "full marks", scores.get(SOLUTION)))
    outcomes.append(_judge(BLANK, "0 on every test cell", scores.get(BLANK)))
    for mutant in mutants:
        outcomes.append(_judge(mutant.student, "lose points", scores.get(mutant.student), mutant.why))
    for outcome in outcomes:
        if not outcome.passed and not outcome.scores and outcome.submission in submissions:
            mine = [e for e in errors if outcome.submission in e] or errors[-3:]
            outcome.detail += ("; nbgrader said: " + " | ".join(mine)) if mine else ""
    return Report(assignment, outcomes)


def _judge(student: str, expectation: str, scores: dict | None, why: str = "") -> Outcome:
    outcome = Outcome(student, expectation, scores or {})
    if not scores:
        outcome.detail = "nbgrader produced no grades for this submission"
        return outcome
    if expectation == "full marks":
        short = [cell for cell, (s, m) in scores.items() if s < m]
        outcome.passed = not short
        outcome.detail = f"lost points in {', '.join(short)}" if short else ""
    elif expectation.startswith("0"):
        scored = [cell for cell, (s, _) in scores.items() if s > 0]
        outcome.passed = not scored
        outcome.detail = f"scored in {', '.join(scored)}" if scored else ""
    else:
        caught = [cell.split(":")[-1] for cell, (s, m) in scores.items() if s < m]
        outcome.passed = bool(caught)
        outcome.detail = (f"{why}; caught by {', '.join(caught)}" if caught
                          else f"{why}; NOT CAUGHT by any test")
    return outcome
