"""nbgrader's converters run in this process, and the parallel grading worker built on them.

``run(kind, root, assignment, student, overrides)`` runs one nbgrader step (``Autograde``,
``GenerateFeedback``) on the course at ``root`` with its ``nbgrader_config.py`` plus
``overrides``, in-process, the way nbgrader's own formgrader does (``NbGraderAPI``): no new
Python has to import nbgrader for each step.

``gradebook_url(root)`` is the gradebook the course's config names: nbgrader's ``db_url``
(``sqlite:///ROOT/gradebook.db`` unless the config sets another, such as PostgreSQL's
``postgresql://user@host/db``).

``python -m course_lib.grading.worker COURSE ASSIGNMENT KERNEL ANSWER_FD`` is one worker of
``course grade --jobs N``: it imports nbgrader once, then reads student ids on stdin, one a line,
autogrades each in the (scratch) course COURSE with the kernel spec KERNEL, and answers one JSON
line per student: ``{"student", "success", "seconds", "log"}``, on the file descriptor ANSWER_FD
(a pipe the grader passes). The answers have that channel to themselves: the kernels
the worker starts inherit its stdout and stderr, and student code can write there (``os.system``,
``os.write(1, ...)``), but not to ANSWER_FD, which no kernel inherits. A queue of students feeds
the N workers, so a slow submission holds up only its own worker.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

CONFIG_FILE = "nbgrader_config.py"


def put_nbgrader_scripts_on_path() -> None:
    """nbgrader's ``Gradebook`` runs the ``alembic`` script installed beside it when it creates
    a gradebook, in this process or in an nbgrader it starts: find it even when this Python's
    environment is not activated."""
    scripts = str(Path(sys.executable).parent)
    if scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join(filter(None, [scripts, os.environ.get("PATH")]))


put_nbgrader_scripts_on_path()   # for every gradebook this process opens


def course_config(root: Path, overrides: dict | None = None):
    """The traitlets ``Config`` nbgrader uses for the course at ``root``: its
    ``nbgrader_config.py``, then ``overrides`` ({"Section": {"trait": value}})."""
    from traitlets.config import Config, PyFileConfigLoader

    config = PyFileConfigLoader(CONFIG_FILE, path=str(root)).load_config()
    config.merge(Config(overrides or {}))
    config.CourseDirectory.root = str(root)
    return config


def gradebook_url(root: Path) -> str:
    """The database URL of the course's gradebook, as nbgrader computes it from the config."""
    from nbgrader.coursedir import CourseDirectory

    return CourseDirectory(config=course_config(root)).db_url


def new_sqlite_gradebook(url: str) -> None:
    """Where ``url`` names an SQLite gradebook that does not exist yet, make it, stamped with
    nbgrader's schema version, here. nbgrader's ``Gradebook`` stamps a new database itself,
    but asks a new process (``alembic heads``) for the version, and that process imports
    nbgrader again: about 6 s for each new gradebook. Finding a table there, nbgrader then
    creates the rest of its tables as usual."""
    import sqlite3

    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR

    prefix = "sqlite:///"
    path = Path(url[len(prefix):]) if url.startswith(prefix) else None
    if path is None or path.exists():
        return
    head = ScriptDirectory(ALEMBIC_DIR).get_current_head()
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        db.execute("INSERT INTO alembic_version (version_num) VALUES (?)", (head,))


def run(kind: str, root: Path, assignment: str, student: str = "*", overrides: dict | None = None) -> dict:
    """Run nbgrader's converter ``kind`` ("Autograde", "GenerateFeedback", "GenerateAssignment")
    on ``root``. Returns nbgrader's ``capture_log`` result: {"success", "log", and "error" on
    failure}."""
    from nbgrader import converters
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.utils import capture_log

    config = course_config(root, overrides)
    if kind == "GenerateFeedback":
        config.HTMLExporter.template_name = "feedback"   # as nbgrader's own API sets it
    coursedir = CourseDirectory(config=config, assignment_id=assignment, student_id=student)
    logger = logging.getLogger(f"course.grade.{kind}")
    logger.propagate = False                              # captured, not printed
    app = getattr(converters, kind)(coursedir=coursedir, config=config, log=logger)
    app.force = True
    with warnings.catch_warnings():
        # nbgrader's Gradebook makes SQLAlchemy warn about autoflush on new submissions
        warnings.simplefilter("ignore", category=Warning)
        result = capture_log(app)
    if not result["success"]:
        result["log"] = result.get("log", "") + result.get("error", "")
    return result


def _answer_channel(descriptor: str):
    """The protocol's own channel: the pipe ``descriptor`` names, not inherited by the kernels
    this process starts."""
    fd = int(descriptor)
    os.set_inheritable(fd, False)
    return os.fdopen(fd, "w")


def main(argv=None) -> int:
    course, assignment, kernel, channel = (argv or sys.argv[1:])[:4]
    # The kernel is killed once its last cell has run: its outputs are all in, and a graceful
    # exit after importing TensorFlow costs seconds of CPU (see grade.py, step 2).
    overrides = {"Execute": {"shutdown_kernel": "immediate", "kernel_name": kernel}}
    answer = _answer_channel(channel)
    sys.stdout = sys.stderr                                  # anything else printed goes to the log
    os.chdir(course)
    import nbgrader.converters  # noqa: F401  (once, before the first student)

    from course_lib.grading import sandbox  # noqa: F401  (registers the course-sandbox provisioner)

    for line in sys.stdin:
        student = line.strip()
        if not student:
            continue
        started = time.perf_counter()
        try:
            result = run("Autograde", Path(course), assignment, student, overrides)
        except Exception as error:  # a failure of nbgrader itself: report it, keep serving
            result = {"success": False, "log": f"[ERROR] {type(error).__name__}: {error}"}
        answer.write(json.dumps({"student": student, "success": result["success"],
                                 "seconds": time.perf_counter() - started,
                                 "log": result.get("log", "")}) + "\n")
        answer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
