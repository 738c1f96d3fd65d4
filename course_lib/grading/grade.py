"""``course grade``: collect a class's submissions, autograde them in parallel, give feedback.

The course keeps nbgrader's own layout and gradebook (``submitted/``, ``autograded/``,
``feedback/``, and the gradebook its config names: ``gradebook.db``, or a PostgreSQL server set
as ``c.CourseDirectory.db_url`` for several graders), so the formgrader works on the result as
usual.

1. **Collect.** Submissions come from a folder laid out ``STUDENT/PS/*.ipynb`` (or
   ``STUDENT/*.ipynb``), or from an LMS zip, which nbgrader's own ``zip_collect`` unpacks
   with its ``FileNameCollectorPlugin`` and the file-name pattern ``pattern`` (default
   ``LMS_PATTERN``, Canvas's ``name_STUDENTID_SUBMISSIONID_NOTEBOOK.ipynb``). They are
   copied to ``submitted/STUDENT/PS``; a different submission already there is moved to
   ``backup/submitted-<time>/STUDENT/PS`` first, never overwritten. When the submission was
   handed in goes with it, as nbgrader keeps it: ``timestamp.txt`` beside the notebooks (as
   ``nbgrader collect`` leaves it, or as ``zip_collect`` writes it from a pattern's
   ``(?P<timestamp>...)`` group), checked to be a time nbgrader can read. nbgrader's
   ``Autograde`` then compares it with the assignment's due date in the gradebook and applies
   the course's late-submission rule (``LateSubmissionPlugin``). Canvas's zip names no time,
   only a ``LATE_`` marker: such a submission is flagged, since nbgrader cannot count it late.
2. **Execute in parallel.** Running the students' code is what costs time. It runs in
   ``jobs`` scratch copies of the course (``pipeline.scratch_course``: its
   ``nbgrader_config.py``, ``source/PS`` and a SQLite gradebook of its own with the assignment
   recorded), each served by one worker process (``worker.py``) that imports nbgrader once and
   autogrades, with nbgrader's own ``Autograde`` converter, the next student from a common
   queue; with several jobs each kernel gets one thread, so the kernels do not fight over the
   cores. A kernel is killed as soon as its last cell has run (nbclient's ``shutdown_kernel =
   "immediate"``): a graceful exit of a kernel that imported TensorFlow spends about 3 s of CPU
   finalizing it, and grading needs none of it. A submission that fails (dead kernel, a
   notebook nbgrader cannot convert, an error while staging it) fails alone, with its reason,
   and leaves the others alone. A worker answers on a pipe of its own (``pass_fds``), which no
   kernel inherits: what student code writes to the kernel's stdout cannot disturb the answers.
3. **Store the grades with nbgrader's own code** (``Store``), each submission as soon as its
   execution ends, in a thread of the main process, while the others execute. The executed
   notebooks are replayed through nbgrader's ``Autograde`` in the real course and its real
   gradebook with execution and output clearing disabled (``Execute.enabled = False``,
   ``ClearOutput.enabled = False``, which nbgrader honours: its preprocessors are nbconvert
   ``Preprocessor``s, skipped when not ``enabled``), reading from a temporary submitted
   directory. So nbgrader's ``SaveAutoGrades`` writes the
   scores (keeping any manual score, as nbgrader always does), ``autograded/`` holds the
   notebooks the formgrader shows, and the students' files in ``submitted/`` stay untouched.
   Writing grades through the ``Gradebook`` API by hand was the alternative; the replay
   keeps nbgrader's rules (late penalties, missing notebooks scored 0, "needs manual grade")
   without copying them. nbgrader's ``GenerateFeedback`` for that student follows, without
   the hidden tests or the tracebacks of the cells that hold them (``grading.feedback``). nbgrader
   runs in-process here (``worker.run``, as its formgrader does), which saves the seconds a
   new Python needs to import it for each step.
Around nbgrader, each submission is also (``Checks``):

* **repaired** when its cell metadata was lost or a locked cell deleted, by aligning it with
  ``release/PS`` (``grading.repair``), converted when it is in nbformat 3, and renamed when the
  assignment has one notebook and the student handed in one under another name; the report says
  so, and names the notebooks the release does not have, which nbgrader does not grade;
* **scanned** for code that touches grading (``grading.integrity.scan``): flagged for review;
* **guarded** by canary cells (``grading.integrity.guard``): a submission whose canaries show
  tampering has its test cells scored 0 by nbgrader itself (each gets an ``IntegrityBreach``
  error) and is flagged;
* **sandboxed**: kernels run through the ``course-sandbox`` kernel spec (``grading.sandbox``):
  bubblewrap with no network and none of the course's files, a memory and a wall-clock limit
  (and, where control groups can be made, one memory and process limit for all a kernel starts).
  Without bubblewrap the limits still apply and the report says loudly that it is unsandboxed.

4. **Report.** A student who handed in again and got no new grade (it failed) has the earlier
   grade taken out of the gradebook, so it is not shown as current; it is kept, with the earlier
   ``autograded/`` and ``feedback/`` folders, under ``backup/gradebook-<time>/STUDENT``. Then
   nbgrader's CSV export (``grades/PS.csv`` by default; an existing file is kept under a dated
   name; a folder is refused before grading), then a summary: graded with scores (after any
   late penalty, with how late and the penalty), failed with the reason, flagged for manual
   review. Submission times with no due date in the gradebook get a note saying how to set one.

**Stopping.** Ctrl-C, SIGTERM or SIGHUP while the submissions execute (``stopping``) starts no further
submission and ends the running ones (nbclient shuts their kernels down); what had finished is
stored, exported and reported as usual, and the students not reached are listed as not graded,
their earlier grades left as they were. A second signal acts as it would have.

Only step 3 writes to the real gradebook, from one thread. One ``course grade`` runs at a time in a
course folder (``.course-grade.lock``); with a PostgreSQL gradebook, several graders (each in their
own copy of the course folder) can grade different students into the same gradebook at once.
"""
from __future__ import annotations

import contextlib
import datetime
import filecmp
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Queue

from ..stopping import StopSignals
from . import cgroups, integrity, worker
from .pipeline import GradingError, _check_assignment, find_course_root, run_nbgrader, scratch_course
from .repair import repair

# Canvas names each file of its "Download submissions" zip
#   lastfirst[_LATE]_STUDENTID_SUBMISSIONID_ORIGINALNAME[-N].ipynb
# (-N when a student uploaded the file again). nbgrader matches against the whole path and
# reads student_id, file_id and, where a pattern has one, timestamp; the group `late` is the
# course's: a match with it is reported as marked late by the LMS.
LMS_PATTERN = (r".*/[^/_]+_(?P<late>LATE_)?(?P<student_id>[^/_]+)_\d+_"
               r"(?P<file_id>[^/]+?)(?:-\d+)?\.ipynb$")

# nbgrader's record of when a submission was handed in, beside its notebooks.
TIMESTAMP = "timestamp.txt"

LOCK_FILE = ".course-grade.lock"

# One thread per kernel when several kernels share the cores (TensorFlow, JAX/XLA, BLAS).
ONE_THREAD = {
    "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}


@dataclass
class Result:
    """One student's outcome in this run."""

    student: str
    score: float | None = None
    max_score: float | None = None
    failed: str = ""                                  # why nbgrader produced no grade
    review: list[str] = field(default_factory=list)   # why a person should look at it
    seconds: float | None = None                      # execution time in its worker
    repairs: list[str] = field(default_factory=list)  # what was fixed before grading
    seconds_late: float = 0.0                         # after the due date (nbgrader's count)
    late_penalty: float = 0.0                         # taken off the score by nbgrader
    stopped: bool = False                             # not graded: the run was stopped first


@dataclass
class GradeReport:
    assignment: str
    results: list[Result]
    notes: list[str]                 # backups made, files kept, ...
    csv: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)   # phase -> seconds
    stopped_by: signal.Signals | None = None   # the signal that stopped the run early

    @property
    def graded(self) -> list[Result]:
        return [r for r in self.results if r.score is not None and not r.failed]

    @property
    def not_graded(self) -> list[Result]:
        return [r for r in self.results if r.stopped]

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.failed]

    @property
    def flagged(self) -> list[Result]:
        return [r for r in self.results if r.review]

    def summary(self) -> str:
        stopped = f", {len(self.not_graded)} not graded (stopped by {self.stopped_by.name})" if self.stopped_by else ""
        lines = [f"{self.assignment}: {len(self.results)} submissions, {len(self.graded)} graded, "
                 f"{len(self.failed)} failed, {len(self.flagged)} flagged for manual review{stopped}"]
        lines += [f"  note: {note}" for note in self.notes]
        lines.append("graded:")
        lines += [f"  {r.student:<24} {r.score:g}/{r.max_score:g}{_lateness(r)}" for r in self.graded] or ["  none"]
        if self.failed:
            lines.append("failed:")
            lines += [f"  {r.student:<24} {r.failed}" for r in self.failed]
        if self.not_graded:
            lines.append(f"not graded, as {self.stopped_by.name} stopped the run first (earlier grades are unchanged; "
                         "grade again to grade them):")
            lines += [f"  {r.student}" for r in self.not_graded]
        repaired = [r for r in self.results if r.repairs]
        if repaired:
            lines.append("repaired before grading:")
            lines += [f"  {r.student:<24} {'; '.join(r.repairs)}" for r in repaired]
        if self.flagged:
            lines.append("flagged for manual review:")
            lines += [f"  {r.student:<24} {'; '.join(r.review)}" for r in self.flagged]
        if self.csv:
            lines.append(f"grades: {self.csv}")
        return "\n".join(lines)


def _duration(seconds: float) -> str:
    """``seconds`` as people read a delay: 2 d 3 h, 1 h 5 min, 4 min, 12 s."""
    minutes, hours, days = int(seconds // 60), int(seconds // 3600), int(seconds // 86400)
    if days:
        return f"{days} d {hours % 24} h"
    if hours:
        return f"{hours} h {minutes % 60} min"
    return f"{minutes} min" if minutes else f"{int(seconds)} s"


def _lateness(result: Result) -> str:
    """The summary's words on a late submission: how late, and what the penalty took off."""
    if not result.seconds_late:
        return ""
    penalty = (f"penalty {result.late_penalty:g} (raw score {result.score + result.late_penalty:g})"
               if result.late_penalty else "no penalty under the course's late-submission rule")
    return f"  late by {_duration(result.seconds_late)}, {penalty}"


# --- collecting submissions ------------------------------------------------------------------

def _stamp() -> str:
    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S")


def _unused(path: Path) -> Path:
    """``path``, or ``path`` numbered -2, -3, ... when it exists: a kept file never replaces one."""
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return candidate


@contextlib.contextmanager
def _one_at_a_time(root: Path):
    """Hold the course's grading lock (``.course-grade.lock``, an advisory ``flock``): a second
    ``course grade`` in the same course folder stops with an error instead of racing the first
    over ``submitted/``, the gradebook and the CSV. The lock goes with the process."""
    import fcntl

    with open(root / LOCK_FILE, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise GradingError(f"another `course grade` is running in {root} ({holder}); wait for it to "
                               "finish (several graders at once: each in their own copy of the course, "
                               "with a PostgreSQL gradebook)") from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}, since {datetime.datetime.now():%Y-%m-%d %H:%M:%S}\n")
        lock.flush()
        yield


def _handed_in(student: Path, assignment: str) -> list[Path]:
    """A student's files to grade: the notebooks in ``student/PS`` (else in ``student``), and
    nbgrader's ``timestamp.txt`` beside them, checked to be a time nbgrader can read."""
    from nbgrader.utils import parse_utc

    folder = student / assignment if any((student / assignment).glob("*.ipynb")) else student
    files = sorted(folder.glob("*.ipynb"))
    timestamp = folder / TIMESTAMP
    if files and timestamp.is_file():
        try:
            parse_utc(timestamp.read_text().strip())
        except (ValueError, OverflowError):
            raise GradingError(f"{timestamp} holds {timestamp.read_text()[:60]!r}, not a time nbgrader can "
                               "read; expected the time it was handed in, e.g. 2026-12-01 17:05:00 UTC") from None
        files.append(timestamp)
    return files


def _from_folder(folder: Path, assignment: str) -> dict[str, list[Path]]:
    """{student: files} from ``folder/STUDENT/PS/*.ipynb`` or ``folder/STUDENT/*.ipynb`` (and
    ``timestamp.txt``, see ``_handed_in``). A student folder without a notebook stays in (with
    none): that student fails, not the class."""
    found = {student.name: _handed_in(student, assignment)
             for student in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))}
    if not any(found.values()):
        what = "no student folder holds a notebook" if found else "holds no student folders"
        raise GradingError(f"{folder} {what}; expected {folder}/STUDENT/{assignment}/*.ipynb "
                           f"or {folder}/STUDENT/*.ipynb")
    return found


def _marked_late(extracted: Path, pattern: str) -> set[str]:
    """The students whose files, unpacked by ``zip_collect`` under ``extracted``, the LMS marked
    late: matches of ``pattern`` whose group ``late`` matched, on the path nbgrader matches."""
    late = set()
    for path in extracted.rglob("*"):
        match = re.match(pattern, str(path))
        if match and match.groupdict().get("late") and match.groupdict().get("student_id"):
            late.add(match["student_id"])
    return late


def _from_zip(archive: Path, assignment: str, root: Path, scratch: Path,
              pattern: str) -> tuple[dict[str, list[Path]], set[str]]:
    """{student: files} unpacked and named by nbgrader's ``zip_collect`` into ``scratch``, and
    the students the LMS marked late."""
    try:
        names = zipfile.ZipFile(archive).namelist()
    except zipfile.BadZipFile as error:
        raise GradingError(f"{archive} is not a zip file ({error})") from None
    if not any(name.endswith(".ipynb") for name in names):
        raise GradingError(f"{archive} holds no notebook (.ipynb); expected the LMS's download of "
                           f"the {assignment} submissions")
    downloaded, staged = scratch / "downloaded", scratch / "collected"
    (downloaded / assignment / "archive").mkdir(parents=True)
    shutil.copy(archive, downloaded / assignment / "archive" / archive.name)
    # (nbgrader joins this structure to the course root: an absolute one keeps it in scratch)
    structure = os.path.join(downloaded, "{assignment_id}", "{collect_step}")
    run_nbgrader(["zip_collect", assignment, f"--ZipCollectApp.collect_directory_structure={structure}",
                  f"--CourseDirectory.submitted_directory={staged}",
                  f"--FileNameCollectorPlugin.named_regexp={pattern}"], root)
    if not staged.is_dir() or not any(staged.iterdir()):
        example = next(n for n in names if n.endswith(".ipynb"))
        raise GradingError(f"no notebook name in {archive} matches the pattern {pattern!r} "
                           f"(for example {example!r}); give one with --pattern that has the groups "
                           f"(?P<student_id>...) and (?P<file_id>...)")
    return _from_folder(staged, assignment), _marked_late(downloaded / assignment / "extracted", pattern)


def _same_files(folder: Path, files: list[Path]) -> bool:
    present = sorted(p.name for p in [*folder.glob("*.ipynb"), folder / TIMESTAMP] if p.is_file())
    return present == sorted(p.name for p in files) and all(
        filecmp.cmp(folder / p.name, p, shallow=False) for p in files)


def _store(root: Path, assignment: str, submissions: dict[str, list[Path]]) -> list[str]:
    """Copy each student's files to ``submitted/STUDENT/PS``; a different submission already
    there (other notebooks or another time) is moved to ``backup/`` first. Returns notes on
    what was moved."""
    notes, backup = [], _unused(root / "backup" / f"submitted-{_stamp()}")
    for student, files in submissions.items():
        target = root / "submitted" / student / assignment
        if target.exists():
            if _same_files(target, files):
                continue
            kept = backup / student / assignment
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(target), str(kept))
            notes.append(f"{student}: a different earlier submission was moved to {kept.relative_to(root)}")
        target.mkdir(parents=True)
        for file in files:
            shutil.copy(file, target / file.name)
    return notes


@dataclass
class Collected:
    """What ``collect`` put into ``submitted/``."""

    students: list[str]
    notes: list[str]                                  # backups made
    marked_late: set[str] = field(default_factory=set)  # by the LMS, with no time nbgrader can use


def collect(submissions: Path, assignment: str, root: Path, scratch: Path,
            pattern: str = LMS_PATTERN) -> Collected:
    """Put the submissions into ``submitted/``."""
    submissions, late = Path(submissions), set()
    if submissions.is_dir():
        found = _from_folder(submissions, assignment)
    elif submissions.is_file() and submissions.suffix.lower() == ".zip":
        found, late = _from_zip(submissions.resolve(), assignment, root, scratch, pattern)
    else:
        raise GradingError(f"{submissions} is neither a folder nor a .zip file; expected a folder of "
                           f"STUDENT/{assignment}/*.ipynb or an LMS zip of the submissions")
    notes = _store(root, assignment, found)
    timed = {s for s in found if (root / "submitted" / s / assignment / TIMESTAMP).is_file()}
    return Collected(list(found), notes, late - timed)


# --- grading ----------------------------------------------------------------------------------

def _unreadable(folder: Path) -> dict[str, str]:
    """{notebook name: why} for the notebooks in ``folder`` that nbformat cannot read."""
    import nbformat

    bad = {}
    for path in sorted(folder.glob("*.ipynb")):
        try:
            nbformat.validate(nbformat.read(path, as_version=4))
        except Exception as error:  # invalid JSON, not a notebook, an unknown format
            first_line = (str(error).splitlines() or [""])[0][:120]
            bad[path.name] = f"{path.name} could not be read ({type(error).__name__}: {first_line})"
    return bad


def _record_assignment(course: Path, assignment: str, release: Path) -> None:
    """nbgrader grades only assignments whose cells are in the gradebook: record them with
    nbgrader's ``GenerateAssignment``, writing the student version to ``release`` (a scratch
    folder, so the course's release/ is untouched)."""
    result = worker.run("GenerateAssignment", course, assignment,
                        overrides={"CourseDirectory": {"release_directory": str(release)}})
    if not result["success"]:
        tail = "\n".join(result["log"].strip().splitlines()[-25:])
        raise GradingError(f"nbgrader could not record {assignment} in the gradebook of {course}:\n{tail}")


def _ensure_in_gradebook(root: Path, assignment: str, scratch: Path) -> None:
    """Record the assignment in the course's gradebook unless it is there already."""
    from nbgrader.api import Gradebook, MissingEntry

    url = worker.gradebook_url(root)
    worker.new_sqlite_gradebook(url)
    with Gradebook(url) as gradebook:
        try:
            if gradebook.find_assignment(assignment).notebooks:
                return
        except MissingEntry:
            pass
    _record_assignment(root, assignment, scratch / "release")


GENERIC = ("There was an error processing", "Traceback", "Please see the")


def _reason(lines: list[str]) -> str | None:
    """Why nbgrader failed, from its log lines about one student: the last exception it names
    (``DeadKernelError: Kernel died``), else its first specific ERROR line."""
    exception = re.compile(r"^(?:\w+\.)*\w*(?:Error|Exception|Exit|Interrupt)\b: ?.*")
    errors, exceptions = [], []
    for line in lines:
        text = line.strip()
        if any(g in text for g in GENERIC):
            continue
        if exception.match(text):
            exceptions.append(text[:200])
        elif "ERROR]" in text:
            errors.append(text.split("ERROR]", 1)[1].strip()[:200])
    return (exceptions or [None])[-1] or (errors or [None])[0]


def _reasons(log: str, assignment: str) -> dict[str, str]:
    """{student: why nbgrader failed on that student} from a log about several students."""
    where = re.compile(rf"/(?:submitted|autograded)/([^/\s]+)/{re.escape(assignment)}\b")
    student, lines = None, {}
    for line in log.splitlines():
        match = where.search(line)
        student = match.group(1) if match else student
        if student:
            lines.setdefault(student, []).append(line)
    found = {s: _reason(ls) for s, ls in lines.items()}
    return {s: reason for s, reason in found.items() if reason}


def _read_as_v4(path: Path) -> tuple[dict, int | None]:
    """The notebook at ``path`` in nbformat 4 (what repair, the canaries and nbgrader read), and
    the version it was converted from, or None where it was 4 already."""
    import nbformat

    version = json.loads(path.read_text()).get("nbformat")
    notebook = json.loads(nbformat.writes(nbformat.read(path, as_version=4)))
    return notebook, (version if version != 4 else None)


def _not_graded(folder: Path, expected: list[str]) -> list[str]:
    """The notebooks in ``folder`` nbgrader will not grade: those the release does not have (a
    lone notebook under another name is graded as the assignment's only one)."""
    present = sorted(p.name for p in folder.glob("*.ipynb"))
    if len(expected) == 1 and len(present) == 1:
        return []
    return [name for name in present if name not in expected]


@dataclass
class Checks:
    """What ``course grade`` adds around nbgrader for one run: repair and rename, the static
    scan and the canaries (see the module docstring), per student."""

    release: Path                                   # release/PS: the notebooks as handed out
    token: str = field(default_factory=integrity.new_token)
    repairs: dict[str, list[str]] = field(default_factory=dict)
    findings: dict[str, list[str]] = field(default_factory=dict)
    breaches: dict[str, list[str]] = field(default_factory=dict)

    def stage(self, student: str, source: Path, target: Path, skip=()) -> None:
        """Copy ``source`` (a student's submitted folder) to ``target`` for execution: each
        readable notebook repaired, scanned and guarded."""
        repairs, findings = self.repairs.setdefault(student, []), self.findings.setdefault(student, [])
        notebooks = [p for p in sorted(source.glob("*.ipynb")) if p.name not in skip]
        expected = sorted(p.name for p in self.release.glob("*.ipynb"))
        names = {p.name: p.name for p in notebooks}
        if len(expected) == 1 and len(notebooks) == 1 and notebooks[0].name != expected[0]:
            names[notebooks[0].name] = expected[0]
            repairs.append(f"{notebooks[0].name} graded as {expected[0]}, the assignment's only notebook")
        target.mkdir(parents=True, exist_ok=True)
        for path in source.iterdir():
            if path.is_file() and path.suffix != ".ipynb":
                shutil.copyfile(path, target / path.name)
        for path in notebooks:
            name = names[path.name]
            notebook, upgraded = _read_as_v4(path)
            if upgraded:
                repairs.append(f"{name}: converted from nbformat {upgraded} to 4")
            release = json.loads((self.release / name).read_text()) if (self.release / name).exists() else None
            if release is not None:
                fixed = repair(notebook, release)
                if fixed.changed:
                    repairs.append(f"{name}: {fixed.describe()}")
                    notebook = fixed.notebook
            findings += [f"{name} {finding}" for finding in integrity.scan(notebook, release)]
            (target / name).write_text(json.dumps(integrity.guard(notebook, self.token, release), indent=1))

    def inspect(self, student: str, folder: Path) -> None:
        """Read the canaries of the executed notebooks in ``folder`` and remove them; where they
        show tampering, every test cell gets an error, so nbgrader scores it 0."""
        for path in sorted(folder.glob("*.ipynb")):
            notebook = json.loads(path.read_text())
            problems = integrity.breaches(notebook, self.token)
            notebook = integrity.strip_guards(notebook, self.token)
            if problems:
                self.breaches.setdefault(student, []).extend(f"{path.name}: {p}" for p in problems)
                for cell in notebook["cells"]:
                    if cell.get("cell_type") == "code" and cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
                        cell["outputs"] = [{"output_type": "error", "ename": "IntegrityBreach",
                                            "evalue": "the grader's canaries show tampering: " + "; ".join(problems),
                                            "traceback": []}]
            path.write_text(json.dumps(notebook, indent=1))


def _sandbox(scratch: Path, memory_mb: int, time_limit_s: int) -> tuple[dict, str]:
    """The environment that makes every grading kernel run through the course-sandbox kernel
    spec, and the report's line about it."""
    from . import sandbox

    reason = sandbox.warn_unsandboxed()     # raises when COURSE_REQUIRE_SANDBOX=1
    jupyter = sandbox.write_kernel_spec(scratch / "jupyter", memory_mb=memory_mb, time_limit_s=time_limit_s,
                                        files=sandbox.matplotlib_font_list(scratch / "matplotlib")).parents[1]
    path = os.pathsep.join(filter(None, [str(jupyter), os.environ.get("JUPYTER_PATH")]))
    groups = cgroups.unavailable()
    limits = f"{time_limit_s} s per notebook; " + (
        f"memory {memory_mb} MB and {cgroups.DEFAULT_MAX_TASKS} processes for all of a notebook's processes "
        "together" if groups is None else f"memory {memory_mb} MB per process, their number unlimited ({groups})")
    note = (f"student code ran sandboxed (bubblewrap: no network, none of the course's files; {limits})"
            if reason is None else f"UNSANDBOXED: student code ran with the grader's rights ({reason}); "
            f"only the limits applied: {limits}")
    return {"JUPYTER_PATH": path}, note


def _answer(reply: str, student: str) -> dict:
    """The worker's JSON answer about ``student``; one that is missing, unreadable or about
    someone else means its grading process died or was disturbed."""
    try:
        answer = json.loads(reply) if reply else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or answer.get("student") != student:
        why = "died" if not reply else "gave an answer that could not be read"
        return {"success": False, "log": f"[ERROR] its grading process {why}"}
    return answer


def _execute(root: Path, assignment: str, students: list[str], jobs: int, scratch: Path,
             skip: dict[str, set[str]], checks: Checks, sandbox_env: dict, store: Store,
             stop: StopSignals):
    """Autograde the students with nbgrader in ``jobs`` scratch copies of the course at once,
    leaving out the notebooks named in ``skip`` ({student: names}). Each copy has one worker process
    (``course_lib.grading.worker``) that takes the next student from a common queue; each executed
    submission goes to ``store`` at once. When ``stop`` comes, no further submission starts and
    the worker processes are interrupted (``StopSignals.interrupt_on_stop``: SIGINT, as Ctrl-C
    would; after SIGTERM a sandboxed kernel was left running); an answer that comes after the stop
    (its execution perhaps cut short) counts as neither executed nor failed.
    Returns ({student: folder of executed notebooks}, {student: why it failed}, {student: seconds})."""
    from . import sandbox

    base = scratch_course(root, assignment, scratch / "base")
    _record_assignment(base, assignment, scratch / "base-release")
    env = {**os.environ, **(ONE_THREAD if jobs > 1 else {}), **sandbox_env}
    queue = Queue()
    for student in students:
        queue.put(student)
    executed, failed, seconds = {}, {}, {}

    def start_no_further() -> None:
        with contextlib.suppress(Empty):
            while True:
                queue.get_nowait()

    stop.on_stop(start_no_further)

    def grade_one(course: Path, student: str, process: subprocess.Popen, answers) -> bool:
        """Stage ``student``, have the worker process grade them, and read its answer. Returns
        whether the worker process is still serving."""
        checks.stage(student, root / "submitted" / student / assignment,
                     course / "submitted" / student / assignment, skip.get(student, ()))
        try:
            process.stdin.write(student + "\n")
            process.stdin.flush()
            reply = answers.readline()
        except BrokenPipeError:
            reply = ""
        if stop.signal:   # its execution may have been cut short: not graded in this run
            return False
        answer = _answer(reply, student)
        folder = course / "autograded" / student / assignment
        if answer["success"] and any(folder.glob("*.ipynb")):
            checks.inspect(student, folder)
            executed[student], seconds[student] = folder, answer["seconds"]
            store.put(student, folder)
        else:
            failed[student] = _reason(answer["log"].splitlines()) or "nbgrader produced no grades"
        return bool(reply)

    def serve(course: Path, process: subprocess.Popen, answers) -> None:
        """Hand the worker process students until the queue is empty or the process dies. A
        student whose grading fails here fails alone: the reason is theirs, the others go on."""
        while True:
            try:
                student = queue.get_nowait()
            except Empty:
                return
            try:
                if not grade_one(course, student, process, answers):
                    return
            except Exception as error:   # this student's notebook, or their answer, broke something
                failed[student] = f"grading failed ({type(error).__name__}: {str(error)[:200]})"

    def work(index: int) -> None:
        course = scratch / f"worker{index}"
        shutil.copytree(base, course)
        with open(scratch / f"worker{index}.log", "w") as log:
            while not queue.empty() and not stop.signal:   # a worker process that died is replaced
                # The answers come back on a pipe of their own: kernels write to the worker's
                # stdout and stderr (the log), never to this pipe (see worker.main).
                read_end, write_end = os.pipe()
                command = [sys.executable, "-m", "course_lib.grading.worker", str(course), assignment,
                           sandbox.KERNEL_NAME, str(write_end)]
                with open(read_end) as answers, subprocess.Popen(
                        command, stdin=subprocess.PIPE, stdout=log, stderr=log, text=True, env=env, cwd=course,
                        pass_fds=(write_end,)) as process:
                    os.close(write_end)
                    stop.interrupt_on_stop(process)
                    serve(course, process, answers)
                    try:
                        process.stdin.close()
                    except BrokenPipeError:
                        pass

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(work, range(jobs)))
    return executed, failed, seconds


def _feedback_overrides() -> dict:
    """nbgrader's ``GenerateFeedback`` preprocessors, with the hidden tests and their tracebacks
    taken out of what the student reads (``grading.feedback``)."""
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import GetGrades

    from .feedback import HideHiddenTests

    return {"GenerateFeedback": {"preprocessors": [GetGrades, HideHiddenTests, CSSHTMLHeaderPreprocessor]}}


class Store:
    """Stores each executed submission in the real gradebook as soon as its execution ends, in
    a thread of its own, one submission at a time, so that storing overlaps the execution of
    the others (and fills the cores a finished worker leaves idle at the end): nbgrader's
    ``Autograde`` replayed on the executed notebooks (executing nothing), then its
    ``GenerateFeedback`` for that student. Only this thread writes to the real gradebook."""

    def __init__(self, root: Path, assignment: str, scratch: Path):
        self.root, self.assignment, self.replay = root, assignment, scratch / "replay"
        self.failed: dict[str, str] = {}             # student -> why no grade was stored
        self.problems: dict[str, str] = {}           # student -> why the feedback is missing
        self._queue: Queue = Queue()
        self._thread = threading.Thread(target=self._serve, name="course-grade-store", daemon=True)
        self._thread.start()

    def put(self, student: str, folder: Path) -> None:
        """Store the executed notebooks in ``folder`` as ``student``'s."""
        self._queue.put((student, folder))

    def finish(self) -> None:
        """Wait until everything put so far is stored."""
        self._queue.put(None)
        self._thread.join()

    def _serve(self) -> None:
        while (item := self._queue.get()) is not None:
            student, folder = item
            try:
                self._store(student, folder)
            except Exception as error:  # nbgrader itself failed: that student has no grade
                self.failed[student] = f"nbgrader could not store the grades ({type(error).__name__}: {error})"

    def _store(self, student: str, folder: Path) -> None:
        target = self.replay / student / self.assignment
        target.mkdir(parents=True)
        for notebook in folder.glob("*.ipynb"):
            shutil.copyfile(notebook, target / notebook.name)
        timestamp = self.root / "submitted" / student / self.assignment / TIMESTAMP
        if timestamp.exists():
            shutil.copyfile(timestamp, target / TIMESTAMP)
        stored = worker.run("Autograde", self.root, self.assignment, student, overrides={
            "CourseDirectory": {"submitted_directory": str(self.replay)},
            "Execute": {"enabled": False}, "ClearOutput": {"enabled": False}})
        reason = _reasons(stored.get("log", ""), self.assignment).get(student)
        if reason or not stored["success"]:
            self.failed[student] = reason or "nbgrader could not store the grades"
            return
        feedback = worker.run("GenerateFeedback", self.root, self.assignment, student, overrides=_feedback_overrides())
        if not feedback["success"]:
            why = _reason(feedback["log"].splitlines()) or "nbgrader's GenerateFeedback failed"
            self.problems[student] = f"no feedback was generated: {why}"


def _export(root: Path, assignment: str, csv: Path, scratch: Path) -> list[str]:
    """nbgrader's CSV export of this assignment's grades to ``csv``; an existing different file
    is kept under a dated name. Returns notes."""
    from nbgrader.api import Gradebook
    from nbgrader.plugins import CsvExportPlugin

    fresh = scratch / "grades.csv"
    with Gradebook(worker.gradebook_url(root)) as gradebook:
        CsvExportPlugin(to=str(fresh), assignment=[assignment]).export(gradebook)
    csv.parent.mkdir(parents=True, exist_ok=True)
    notes = []
    if csv.exists() and not filecmp.cmp(csv, fresh, shallow=False):
        kept = _unused(csv.with_name(f"{csv.stem}-{_stamp()}{csv.suffix}"))
        csv.rename(kept)
        notes.append(f"the earlier {csv.name} was kept as {kept.name}")
    shutil.copyfile(fresh, csv)
    return notes


def _retire_stale(root: Path, assignment: str, students: list[str]) -> list[str]:
    """For each of ``students`` (handed in again, no new grade), take the earlier grade out of
    the gradebook, so that neither the CSV nor the formgrader shows it as current. Nothing is
    lost: the earlier grades (each cell's scores and comments) go to
    ``backup/gradebook-<time>/STUDENT/PS.json``, the earlier ``autograded/`` and ``feedback/``
    folders beside them. Returns notes."""
    from nbgrader.api import Gradebook, MissingEntry

    notes, backup = [], _unused(root / "backup" / f"gradebook-{_stamp()}")
    with Gradebook(worker.gradebook_url(root)) as gradebook:
        for student in students:
            try:
                submission = gradebook.find_submission(assignment, student)
            except MissingEntry:
                continue
            kept = backup / student
            kept.mkdir(parents=True)
            (kept / f"{assignment}.json").write_text(json.dumps(_grades(submission), indent=1, default=str))
            for step in ("autograded", "feedback"):
                folder = root / step / student / assignment
                if folder.exists():
                    shutil.move(str(folder), str(kept / step))
            notes.append(f"{student}: no new grade, so the earlier one ({submission.score:g}/{submission.max_score:g}) "
                         f"was taken out of the gradebook and kept in {kept.relative_to(root)}")
            gradebook.remove_submission(assignment, student)
    return notes


def _grades(submission) -> dict:
    """A gradebook submission as plain data: its score, and every cell's scores and comments."""
    return {"score": submission.score, "max_score": submission.max_score, "timestamp": submission.timestamp,
            "notebooks": {notebook.name: {
                "grades": {g.name: {"auto_score": g.auto_score, "manual_score": g.manual_score,
                                    "extra_credit": g.extra_credit, "max_score": g.max_score}
                           for g in notebook.grades},
                "comments": {c.name: {"auto_comment": c.auto_comment, "manual_comment": c.manual_comment}
                             for c in notebook.comments}} for notebook in submission.notebooks}}


def _csv_path(csv: Path | None, root: Path, assignment: str) -> Path:
    """Where the grades go: ``csv``, or ``grades/PS.csv``; a folder is refused before grading."""
    csv = Path(csv) if csv else root / "grades" / f"{assignment}.csv"
    if csv.is_dir():
        raise GradingError(f"--csv {csv} is a folder; expected the path of a CSV file to write "
                           f"(for example {csv / (assignment + '.csv')})")
    return csv


def _shown(url: str) -> str:
    """A gradebook URL fit to print: without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _results(root: Path, assignment: str, students: list[str]) -> dict[str, Result]:
    """Each student's grade in the gradebook: the score after nbgrader's late penalty (as its
    CSV export's ``score``), how late, and the cells a person must grade."""
    from nbgrader.api import Gradebook, MissingEntry

    results = {}
    with Gradebook(worker.gradebook_url(root)) as gradebook:
        for student in students:
            result = results[student] = Result(student)
            try:
                submission = gradebook.find_submission(assignment, student)
            except MissingEntry:
                continue
            result.late_penalty = float(submission.late_submission_penalty or 0)
            result.score = float(submission.score) - result.late_penalty
            result.max_score = float(submission.max_score)
            result.seconds_late = float(submission.total_seconds_late)
            manual = sorted(f"{nb.name}:{g.name}" for nb in submission.notebooks for g in nb.grades
                            if g.needs_manual_grade)
            if manual:
                result.review.append("needs manual grading: " + ", ".join(manual))
    return results


def _no_due_date(root: Path, assignment: str, students: list[str]) -> list[str]:
    """A note when some of ``students`` handed in with a time but the assignment has no due
    date in the gradebook, so nbgrader counted none of them late."""
    from nbgrader.api import Gradebook

    timed = [s for s in students if (root / "submitted" / s / assignment / TIMESTAMP).is_file()]
    with Gradebook(worker.gradebook_url(root)) as gradebook:
        if not timed or gradebook.find_assignment(assignment).duedate is not None:
            return []
    return [f"{len(timed)} submissions have a time ({TIMESTAMP}) but {assignment} has no due date in the "
            f"gradebook, so none counts as late; set one with `nbgrader db assignment add {assignment} "
            f"--duedate='2026-12-01 17:00:00 UTC'` (or the formgrader's Manage Assignments) and grade again"]


def grade(assignment: str, submissions: Path, root: Path | None = None, *, jobs: int = 1,
          csv: Path | None = None, pattern: str = LMS_PATTERN, memory_mb: int = 4096,
          time_limit_s: int = 1200, log=print) -> GradeReport:
    """Collect, autograde, give feedback and export one assignment's submissions (see the
    module docstring). Raises ``GradingError`` for input it cannot use."""
    root = root or find_course_root()
    _check_assignment(root, assignment)
    if jobs < 1:
        raise GradingError(f"--jobs must be 1 or more; got {jobs}")
    csv = _csv_path(csv, root, assignment)
    timings: dict[str, float] = {}
    with (_one_at_a_time(root), tempfile.TemporaryDirectory(prefix=f"grade-{assignment}-") as folder,
          StopSignals() as stop):   # a stop ends the execution early; the rest finishes in order
        scratch = Path(folder)
        clock = time.perf_counter()
        collected = collect(submissions, assignment, root, scratch, pattern)
        students, notes = collected.students, collected.notes
        unreadable = {s: _unreadable(root / "submitted" / s / assignment) for s in students}
        readable = [s for s in students if len(unreadable[s]) <
                    len(list((root / "submitted" / s / assignment).glob("*.ipynb")))]
        _ensure_in_gradebook(root, assignment, scratch)
        timings["collect"] = time.perf_counter() - clock

        clock = time.perf_counter()
        jobs = max(1, min(jobs, len(readable)))
        log(f"{assignment}: executing {len(readable)} submissions with nbgrader, {jobs} at a time; "
            f"each one's grades go to {_shown(worker.gradebook_url(root))} as soon as it is done")
        skip = {s: set(bad) for s, bad in unreadable.items()}
        checks = Checks(root / "release" / assignment)
        sandbox_env, sandbox_note = _sandbox(scratch, memory_mb, time_limit_s)
        notes.append(sandbox_note)
        store = Store(root, assignment, scratch)
        try:
            executed, failed, seconds = (
                _execute(root, assignment, readable, jobs, scratch, skip, checks, sandbox_env, store, stop)
                if readable and not stop.signal else ({}, {}, {}))
            timings["execute"] = time.perf_counter() - clock
        finally:   # (what was executed is stored even when something went wrong)
            clock = time.perf_counter()
            store.finish()
            timings["store"] = time.perf_counter() - clock   # what was left after the last execution
        failed.update(store.failed)
        stopped = {s for s in readable if s not in executed and s not in failed} if stop.signal else set()
        if stop.signal:
            log(f"{assignment}: stopped by {stop.signal.name}; {len(stopped)} submissions not graded, "
                "their earlier grades left as they were")

        clock = time.perf_counter()
        notes += _retire_stale(root, assignment,
                               [s for s in students if (s not in executed or s in failed) and s not in stopped])
        log(f"{assignment}: exporting grades")
        notes += _export(root, assignment, csv, scratch)
        notes += _no_due_date(root, assignment, list(executed))
        timings["report"] = time.perf_counter() - clock

    release = sorted(p.name for p in (root / "release" / assignment).glob("*.ipynb"))
    expected = ", ".join(release)
    for student in students:
        if not any((root / "submitted" / student / assignment).glob("*.ipynb")):
            failed[student] = f"no notebook handed in (expected {expected or 'a notebook'})"
    results = _results(root, assignment, students)
    for student, result in results.items():
        if student in failed:
            result.failed, result.score, result.max_score = failed[student], None, None
        elif student not in executed:
            result.score = result.max_score = None
            result.stopped = student in stopped
        result.review[:0] = list(unreadable[student].values())
        extra = _not_graded(root / "submitted" / student / assignment, release)
        result.review += [f"not graded: {', '.join(extra)} (the assignment's notebooks: {expected})"] if extra else []
        result.review += [store.problems[student]] if student in store.problems else []
        result.review += ([f"the LMS marked it late, but its file names give no time, so nbgrader applied no "
                           f"late penalty (to apply one, write when it was handed in to submitted/{student}/"
                           f"{assignment}/{TIMESTAMP}, e.g. 2026-12-01 17:05:00 UTC, and grade again)"]
                          if student in collected.marked_late else [])
        result.review += [f"tampering, its tests scored 0: {b}" for b in checks.breaches.get(student, [])]
        result.review += [f"integrity scan: {f}" for f in checks.findings.get(student, [])]
        result.repairs = checks.repairs.get(student, [])
        result.seconds = seconds.get(student)
    return GradeReport(assignment, list(results.values()), notes, csv, timings, stop.signal)
