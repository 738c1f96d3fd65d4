"""nbgrader's converters run in this process, and the parallel grading worker built on them.

``run(kind, root, assignment, student, overrides)`` runs one nbgrader step (``Autograde``,
``GenerateFeedback``) on the course at ``root`` with its ``nbgrader_config.py`` plus
``overrides``, in-process, the way nbgrader's own formgrader does (``NbGraderAPI``): no new
Python has to import nbgrader for each step.

``python -m course_lib.grading.worker COURSE ASSIGNMENT [KERNEL]`` is one worker of ``course grade
--jobs N``: it imports nbgrader once, then reads student ids on stdin, one a line, autogrades
each in the (scratch) course COURSE, and answers one JSON line per student: ``{"student",
"success", "seconds", "log"}``. A queue of students feeds the N workers, so a slow submission
holds up only its own worker.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

CONFIG_FILE = "nbgrader_config.py"


def run(kind: str, root: Path, assignment: str, student: str = "*", overrides: dict | None = None) -> dict:
    """Run nbgrader's converter ``kind`` ("Autograde" or "GenerateFeedback") on ``root``.
    Returns nbgrader's ``capture_log`` result: {"success", "log", and "error" on failure}."""
    from nbgrader import converters
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.utils import capture_log
    from traitlets.config import Config, PyFileConfigLoader

    config = PyFileConfigLoader(CONFIG_FILE, path=str(root)).load_config()
    config.merge(Config(overrides or {}))
    config.CourseDirectory.root = str(root)
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


def main(argv=None) -> int:
    course, assignment, *kernel = (argv or sys.argv[1:])[:3]
    overrides = {"Execute": {"kernel_name": kernel[0]}} if kernel else None
    answer = os.fdopen(os.dup(sys.stdout.fileno()), "w")   # the protocol's own channel
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
