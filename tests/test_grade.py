"""`course grade`: collecting submissions (folders and LMS zips), clear errors for bad input,
and, on a temporary copy of the course, real parallel autograding into nbgrader's gradebook."""
import json
import shutil
import zipfile
from pathlib import Path

import pytest

import processes
from course_lib import cli
from course_lib.grading import grade as grading
from course_lib.grading import sandbox

PS = "ps1_regularization"
NOTEBOOK = f"{PS}.ipynb"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """The course reduced to ps1 (`course grade` records it in a new gradebook.db)."""
    course = tmp_path_factory.mktemp("template") / "course"
    (course / "source").mkdir(parents=True)
    (course / "release").mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "source" / PS, course / "source" / PS)
    shutil.copytree(ROOT / "release" / PS, course / "release" / PS)
    return course


@pytest.fixture
def course(template, tmp_path, monkeypatch):
    copy = tmp_path / "course"
    shutil.copytree(template, copy)
    monkeypatch.setenv("COURSE_ROOT", str(copy))
    return copy


def _solution(course):
    return (course / "source" / PS / NOTEBOOK).read_bytes()


def _blank(course):
    return (course / "release" / PS / NOTEBOOK).read_bytes()


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _canvas_zip(path, files):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


# --- collecting --------------------------------------------------------------------------------

def test_folder_submissions_are_collected_and_a_different_one_is_backed_up(course, tmp_path):
    inbox = tmp_path / "inbox"
    _write(inbox / "alice" / PS / NOTEBOOK, _solution(course))
    _write(inbox / "alice" / PS / "timestamp.txt", b"2026-12-01 16:55:00 UTC")   # as nbgrader collect leaves it
    _write(inbox / "bob" / NOTEBOOK, _blank(course))          # STUDENT/*.ipynb works too
    collected = grading.collect(inbox, PS, course, tmp_path / "scratch1")
    assert collected.students == ["alice", "bob"] and collected.notes == [] and not collected.marked_late
    assert (course / "submitted" / "alice" / PS / NOTEBOOK).read_bytes() == _solution(course)
    assert (course / "submitted" / "alice" / PS / "timestamp.txt").read_text() == "2026-12-01 16:55:00 UTC"
    assert (course / "submitted" / "bob" / PS / NOTEBOOK).read_bytes() == _blank(course)

    # the same submissions again: nothing moves
    assert grading.collect(inbox, PS, course, tmp_path / "scratch2").notes == []
    # bob hands in again: his first submission is kept, not overwritten
    _write(inbox / "bob" / NOTEBOOK, _solution(course))
    notes = grading.collect(inbox, PS, course, tmp_path / "scratch3").notes
    assert len(notes) == 1 and "bob" in notes[0] and "moved to backup/submitted-" in notes[0]
    kept = list((course / "backup").glob(f"submitted-*/bob/{PS}/{NOTEBOOK}"))
    assert len(kept) == 1 and kept[0].read_bytes() == _blank(course)
    assert (course / "submitted" / "bob" / PS / NOTEBOOK).read_bytes() == _solution(course)
    # the same notebook handed in at another time is another submission: the earlier is kept
    _write(inbox / "alice" / PS / "timestamp.txt", b"2026-12-02 09:00:00 UTC")
    notes = grading.collect(inbox, PS, course, tmp_path / "scratch4").notes
    assert len(notes) == 1 and "alice" in notes[0]
    kept = list((course / "backup").glob(f"submitted-*/alice/{PS}/timestamp.txt"))
    assert len(kept) == 1 and kept[0].read_text() == "2026-12-01 16:55:00 UTC"
    assert (course / "submitted" / "alice" / PS / "timestamp.txt").read_text() == "2026-12-02 09:00:00 UTC"


def test_lms_zip_is_collected_by_nbgraders_zip_collect(course, tmp_path):
    archive = _canvas_zip(tmp_path / "submissions.zip", {
        f"smithalice_alice_4411_{NOTEBOOK}": _solution(course),
        f"jonesbob_LATE_bob_4412_{PS}-1.ipynb": _blank(course),   # late, uploaded twice
        "readme.txt": b"not a submission",
    })
    collected = grading.collect(archive, PS, course, tmp_path / "scratch")
    assert sorted(collected.students) == ["alice", "bob"] and collected.notes == []
    assert collected.marked_late == {"bob"}, "Canvas's LATE_ marker is reported: its zip names no time"
    assert (course / "submitted" / "alice" / PS / NOTEBOOK).read_bytes() == _solution(course)
    assert (course / "submitted" / "bob" / PS / NOTEBOOK).read_bytes() == _blank(course)
    assert not list((course / "submitted").glob("*/*/timestamp.txt"))


def test_a_zip_whose_names_give_the_time_keeps_it_for_nbgrader(course, tmp_path):
    """A pattern with nbgrader's (?P<timestamp>...) group: zip_collect writes timestamp.txt,
    and nothing is reported as marked late, since nbgrader itself can count it."""
    archive = _canvas_zip(tmp_path / "moodle.zip", {
        f"alice_20261201T165500_{NOTEBOOK}": _solution(course),
        f"LATE_bob_20261201T181000_{NOTEBOOK}": _blank(course)})
    pattern = (r".*/(?P<late>LATE_)?(?P<student_id>[a-z]+)_(?P<timestamp>\d{8}T\d{6})_"
               r"(?P<file_id>\w+\.ipynb)$")
    collected = grading.collect(archive, PS, course, tmp_path / "scratch", pattern)
    assert sorted(collected.students) == ["alice", "bob"] and not collected.marked_late
    stamps = {s: (course / "submitted" / s / PS / "timestamp.txt").read_text() for s in ("alice", "bob")}
    assert stamps == {"alice": "2026-12-01 16:55:00", "bob": "2026-12-01 18:10:00"}


def test_an_unreadable_submission_time_is_refused_before_anything_is_stored(course, tmp_path):
    inbox = tmp_path / "inbox"
    _write(inbox / "alice" / PS / NOTEBOOK, _solution(course))
    _write(inbox / "bob" / PS / NOTEBOOK, _blank(course))
    _write(inbox / "bob" / PS / "timestamp.txt", b"last tuesday-ish")
    with pytest.raises(grading.GradingError, match=r"bob/ps1_regularization/timestamp.txt holds 'last "
                                                   r"tuesday-ish', not a time nbgrader can read; expected"):
        grading.collect(inbox, PS, course, tmp_path / "scratch")
    assert not (course / "submitted").exists()


def test_the_summary_says_how_late_and_what_the_penalty_took():
    results = [grading.Result("alice", 27.0, 27.0),
               grading.Result("bob", 0.0, 27.0, seconds_late=3900.0, late_penalty=27.0),
               grading.Result("carol", 20.0, 27.0, seconds_late=90061.0)]
    summary = grading.GradeReport(PS, results, []).summary()
    assert "alice                    27/27\n" in summary
    assert "bob                      0/27  late by 1 h 5 min, penalty 27 (raw score 27)" in summary
    assert "carol                    20/27  late by 1 d 1 h, no penalty under the course's late-submission rule" \
        in summary
    assert [grading._duration(s) for s in (12.9, 240, 3600, 172800)] == ["12 s", "4 min", "1 h 0 min", "2 d 0 h"]


def test_bad_input_gets_a_clear_error(course, tmp_path, capsys):
    def error(*args):
        assert cli.main(["grade", *args]) == 1
        return capsys.readouterr().err

    inbox = tmp_path / "inbox"
    _write(inbox / "alice" / PS / NOTEBOOK, _solution(course))
    assert "no assignment 'ps9'" in error("ps9", "--submissions", str(inbox))
    message = error(PS, "--submissions", str(tmp_path / "missing"))
    assert "neither a folder nor a .zip" in message and f"STUDENT/{PS}/*.ipynb" in message
    nobody = tmp_path / "nobody"
    (nobody / "empty-handed").mkdir(parents=True)
    message = error(PS, "--submissions", str(nobody))
    assert "no student folder holds a notebook" in message and f"STUDENT/{PS}/*.ipynb" in message
    empty = _canvas_zip(tmp_path / "empty.zip", {"notes.txt": b"x"})
    assert "holds no notebook (.ipynb)" in error(PS, "--submissions", str(empty))
    odd = _canvas_zip(tmp_path / "odd.zip", {"alice.ipynb": _solution(course)})
    message = error(PS, "--submissions", str(odd), "--pattern", r".*/(?P<student_id>\d+)-(?P<file_id>\w+)\.ipynb")
    assert "matches the pattern" in message and "alice.ipynb" in message
    assert not (course / "submitted").exists()
    with pytest.raises(SystemExit):
        cli.main(["grade", PS, "--submissions", str(inbox), "--jobs", "0"])
    assert "expected a whole number of 1 or more" in capsys.readouterr().err


def test_one_course_grade_at_a_time_per_course(course, tmp_path, capsys):
    """While one `course grade` holds a course, a second stops with a clear error, touching nothing."""
    import fcntl

    inbox = tmp_path / "inbox"
    _write(inbox / "alice" / PS / NOTEBOOK, _solution(course))
    with open(course / grading.LOCK_FILE, "w") as held:
        held.write("pid 4242, since 2026-11-28 09:00:00\n")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert cli.main(["grade", PS, "--submissions", str(inbox)]) == 1
    message = capsys.readouterr().err
    assert "another `course grade` is running" in message and "pid 4242" in message
    assert not (course / "submitted").exists()


def test_kept_files_never_replace_each_other(tmp_path):
    first = grading._unused(tmp_path / "ps1-20261128-090000.csv")
    first.write_text("first")
    second = grading._unused(tmp_path / "ps1-20261128-090000.csv")
    assert second.name == "ps1-20261128-090000-2.csv"
    second.write_text("second")
    assert grading._unused(tmp_path / "ps1-20261128-090000.csv").name == "ps1-20261128-090000-3.csv"
    assert first.read_text() == "first"


# --- grading ------------------------------------------------------------------------------------

def _auto_scores(course, students):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        return {s: {g.name: g.auto_score for nb in gradebook.find_submission(PS, s).notebooks for g in nb.grades}
                for s in students}


def _prepend(solution: bytes, code: str) -> bytes:
    """The solution with ``code`` run first in its first answer cell."""
    notebook = json.loads(solution)
    first = next(c for c in notebook["cells"] if c["metadata"].get("nbgrader", {}).get("solution"))
    first["source"] = code + "".join(first["source"])
    return json.dumps(notebook).encode()


@pytest.mark.slow
def test_grade_in_parallel_then_regrade_from_a_zip_keeping_manual_grades(course, tmp_path, capsys):
    """--jobs 2 on a folder (solution, blank, broken JSON, a kernel that dies, a submission that
    kills its grading process), then --jobs 1 on
    the same notebooks from an LMS zip: same grades, manual grade kept, nothing overwritten."""
    from nbgrader.api import Gradebook

    inbox = tmp_path / "inbox"
    files = {"alice": _solution(course), "bob": _blank(course), "carol": b'{"cells": [',
             "dave": _prepend(_solution(course), "import os\nos._exit(1)\n"),
             # kills the process that runs nbgrader for it: the parent of the kernel's parent
             # (`timeout`, sandbox.sandbox_command); in the sandbox's own process tree none
             "erin": _prepend(_solution(course), "import os, signal\n"
                              "grader = int(open(f'/proc/{os.getppid()}/stat').read().rsplit(')', 1)[1].split()[1])\n"
                              "if grader > 1:\n    os.kill(grader, signal.SIGKILL)\n")}
    for student, data in files.items():
        _write(inbox / student / PS / NOTEBOOK, data)

    assert cli.main(["grade", PS, "--submissions", str(inbox), "--jobs", "2"]) == 1   # dave failed
    out = capsys.readouterr().out
    # In the sandbox erin's kill reaches only the sandbox's own processes: she is graded (and
    # flagged by the scan, as dave is); without it, it kills her grading process.
    sandboxed = sandbox.bwrap_available() is None
    assert (f"5 submissions, {3 if sandboxed else 2} graded, {1 if sandboxed else 2} failed, "
            "3 flagged for manual review") in out
    assert "alice                    27/27" in out and "bob                      0/27" in out
    assert "carol" in out and "could not be read (NotJSONError" in out
    failures = out.split("failed:")[1]
    assert "DeadKernelError: Kernel died" in failures.split("dave")[1].split("\n")[0]
    flagged = out.split("flagged for manual review:")[1]
    assert "calls os._exit() (ends the kernel)" in flagged.split("dave")[1].split("\n")[0]
    assert "calls os.kill() (ends the kernel)" in flagged.split("erin")[1].split("\n")[0]
    if sandboxed:
        assert "erin                     27/27" in out and "note: student code ran sandboxed" in out
    else:
        assert "its grading process died" in failures.split("erin")[1].split("\n")[0]
    scores = _auto_scores(course, ["alice", "bob"])
    assert all(s > 0 for s in scores["alice"].values()) and not any(scores["bob"].values())
    for student, data in files.items():   # the students' files are untouched
        assert (course / "submitted" / student / PS / NOTEBOOK).read_bytes() == data
    for student in ("alice", "bob"):
        assert (course / "feedback" / student / PS / f"{PS}.html").exists()
        assert (course / "autograded" / student / PS / NOTEBOOK).exists()
    csv = (course / "grades" / f"{PS}.csv").read_text().splitlines()
    assert csv[0].startswith("assignment,") and any(",alice," in row and row.endswith(",27.0,27.0") for row in csv)

    # a grader gives bob a manual point in the formgrader's gradebook
    cell = next(iter(scores["bob"]))
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        grade = gradebook.find_grade(cell, PS, PS, "bob")
        grade.manual_score = 1.0
        gradebook.db.commit()

    archive = _canvas_zip(tmp_path / "canvas.zip", {f"smithalice_alice_1_{NOTEBOOK}": files["alice"],
                                                    f"jonesbob_bob_2_{NOTEBOOK}": files["bob"]})
    report = grading.grade(PS, archive, course, jobs=1, log=lambda *_: None)
    assert any("kept as" in note for note in report.notes)   # the CSV changed: kept
    assert any(note.startswith(("student code ran sandboxed", "UNSANDBOXED")) for note in report.notes)
    assert _auto_scores(course, ["alice", "bob"]) == scores            # --jobs 1 == --jobs 2
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        assert gradebook.find_grade(cell, PS, PS, "bob").manual_score == 1.0
        assert gradebook.find_submission(PS, "bob").score == 1.0
    assert [r.score for r in report.results] == [27.0, 1.0]
    assert not (course / "backup").exists()       # same submissions: nothing moved
    assert len(list((course / "grades").glob("*.csv"))) == 2


@pytest.mark.slow
@pytest.mark.parametrize("ctrl_c", [False, True], ids=["SIGTERM", "Ctrl-C"])
def test_a_stopped_run_stores_what_finished_and_leaves_the_rest_as_it_was(course, tmp_path, ctrl_c):
    """SIGTERM to `course grade` while a submission executes (as a job's time limit sends), or
    Ctrl-C in its terminal (SIGINT to its process group, the grading workers included): alice,
    finished, is stored and exported; bob's execution ends, kernel and all; carol is not started
    and keeps her earlier grade; both are reported as not graded; nothing is lost."""
    import os
    import sys

    from nbgrader.api import Gradebook

    first = tmp_path / "first"
    _write(first / "carol" / PS / NOTEBOOK, _blank(course))
    assert grading.grade(PS, first, course, log=lambda *_: None).results[0].score == 0

    inbox = tmp_path / "inbox"
    files = {"alice": _solution(course), "bob": _prepend(_solution(course), "import time\ntime.sleep(600)\n"),
             "carol": _solution(course)}
    for student, data in files.items():
        _write(inbox / student / PS / NOTEBOOK, data)
    temporary = tmp_path / "tmp"   # the run's scratch courses and kernel files, to find what it leaves
    temporary.mkdir()
    with processes.session([sys.executable, "-m", "course_lib.cli", "grade", PS, "--submissions", str(inbox)],
                           tmp_path / "grade.log", marker=str(temporary),
                           env={**os.environ, "COURSE_ROOT": str(course), "TMPDIR": str(temporary)}) as run:
        # alice is stored, so bob (who sleeps) is executing or about to
        processes.wait_until(lambda: (course / "feedback" / "alice").exists() or run.poll() is not None, 300)
        assert (course / "feedback" / "alice").exists(), (tmp_path / "grade.log").read_text()[-3000:]
        stop = processes.stop(run, ctrl_c)
        assert run.wait(timeout=120) == 128 + stop
        out = (tmp_path / "grade.log").read_text()
        assert "3 submissions, 1 graded, 0 failed" in out and f"2 not graded (stopped by {stop.name})" in out, out
        assert out.split(f"not graded, as {stop.name} stopped the run first")[1].split("grades:")[0].split()[-2:] == [
            "bob", "carol"]
        # the kernels it started go with it (none of them is in its session)
        gone = processes.wait_until(lambda: not processes.mentioning(str(temporary)), 30)
        assert gone, f"processes left running: {processes.mentioning(str(temporary))}"
        assert not any(temporary.iterdir()), "its scratch courses were left behind"
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        scores = {s.student.id: s.score for s in gradebook.assignment_submissions(PS)}
    assert scores == {"alice": 27.0, "carol": 0.0}, "carol's earlier grade stays; bob has none"
    for student, data in files.items():   # every hand-in is kept
        assert (course / "submitted" / student / PS / NOTEBOOK).read_bytes() == data
    assert any(",alice," in row for row in (course / "grades" / f"{PS}.csv").read_text().splitlines())


@pytest.mark.slow
@pytest.mark.parametrize("ctrl_c", [False, True], ids=["SIGTERM", "Ctrl-C"])
def test_a_run_stopped_as_a_kernel_starts_leaves_no_kernel_folder_behind(course, tmp_path, ctrl_c):
    """A stop that lands while the first sandboxed kernel starts, its connection file just
    written: that kernel's private folder and control groups go too (at the worker's exit, as
    the kernel's cleanup never came), and both submissions stay as they were handed in, not
    graded."""
    import os
    import sys

    from nbgrader.api import Gradebook

    inbox = tmp_path / "inbox"
    for student in ("alice", "bob"):
        _write(inbox / student / PS / NOTEBOOK, _solution(course))
    temporary = tmp_path / "tmp"   # where the kernels' private folders go (sandbox.SandboxProvisioner)
    temporary.mkdir()

    def connection_files():
        return list(temporary.glob("course-kernel-*/kernel.json"))

    groups_before = processes.kernel_control_groups()
    with processes.session([sys.executable, "-m", "course_lib.cli", "grade", PS, "--submissions", str(inbox)],
                           tmp_path / "grade.log", marker=str(temporary),
                           env={**os.environ, "COURSE_ROOT": str(course), "TMPDIR": str(temporary)}) as run:
        processes.wait_until(lambda: connection_files() or run.poll() is not None, 300, every=0.01)
        assert connection_files() and run.poll() is None, (tmp_path / "grade.log").read_text()[-3000:]
        stop = processes.stop(run, ctrl_c)
        assert run.wait(timeout=120) == 128 + stop
        out = (tmp_path / "grade.log").read_text()
        assert f"2 submissions, 0 graded, 0 failed, 0 flagged for manual review, 2 not graded (stopped by {stop.name})" in out, out
        gone = processes.wait_until(lambda: not processes.mentioning(str(temporary)), 30)
        assert gone, f"processes left running: {processes.mentioning(str(temporary))}"
        assert not list(temporary.iterdir()), "a kernel's folder or a scratch course was left behind"
        assert processes.kernel_control_groups() == groups_before, "a kernel's control groups were left behind"
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        assert not gradebook.assignment_submissions(PS)
    for student in ("alice", "bob"):
        assert (course / "submitted" / student / PS / NOTEBOOK).read_bytes() == _solution(course)


@pytest.mark.slow
def test_late_submissions_get_the_courses_penalty_and_an_lms_late_marker_is_flagged(course, tmp_path):
    """From a Canvas zip (no times, bob marked LATE_) nobody counts as late and bob is flagged.
    With times (timestamp.txt), a due date set by nbgrader's own command and the course's rule
    LateSubmissionPlugin.penalty_method = 'zero', bob's late submission scores 0 and says so."""
    from course_lib.grading.pipeline import run_nbgrader

    archive = _canvas_zip(tmp_path / "canvas.zip", {f"smithalice_alice_1_{NOTEBOOK}": _solution(course),
                                                    f"jonesbob_LATE_bob_2_{NOTEBOOK}": _solution(course)})
    report = grading.grade(PS, archive, course, jobs=2, log=lambda *_: None)
    alice, bob = report.results
    assert (alice.score, bob.score, alice.seconds_late, bob.seconds_late) == (27.0, 27.0, 0.0, 0.0)
    assert not alice.review and len(bob.review) == 1
    assert bob.review[0].startswith("the LMS marked it late, but its file names give no time")
    assert f"submitted/bob/{PS}/timestamp.txt" in bob.review[0]
    assert not any("no due date" in note for note in report.notes)

    inbox = tmp_path / "inbox"
    for student, handed_in in (("alice", "2026-12-01 16:55:00 UTC"), ("bob", "2026-12-01 18:05:00 UTC")):
        _write(inbox / student / PS / NOTEBOOK, _solution(course))
        _write(inbox / student / PS / "timestamp.txt", handed_in.encode())
    with open(course / "nbgrader_config.py", "a") as config:
        config.write("\nc.LateSubmissionPlugin.penalty_method = 'zero'\n")
    report = grading.grade(PS, inbox, course, jobs=2, log=lambda *_: None)
    assert any(note.startswith(f"2 submissions have a time (timestamp.txt) but {PS} has no due date") and
               "nbgrader db assignment add" in note for note in report.notes)
    assert [(r.score, r.seconds_late) for r in report.results] == [(27.0, 0.0), (27.0, 0.0)]

    run_nbgrader(["db", "assignment", "add", PS, "--duedate=2026-12-01 17:00:00 UTC"], course)
    report = grading.grade(PS, inbox, course, jobs=2, log=lambda *_: None)
    alice, bob = report.results
    assert (alice.score, alice.seconds_late, alice.late_penalty) == (27.0, 0.0, 0.0)
    assert (bob.score, bob.seconds_late, bob.late_penalty) == (0.0, 3900.0, 27.0)
    assert not any("no due date" in note for note in report.notes) and not bob.review
    assert "bob                      0/27  late by 1 h 5 min, penalty 27 (raw score 27)" in report.summary()
    rows = (course / "grades" / f"{PS}.csv").read_text().splitlines()
    header, bob_row = rows[0].split(","), next(row.split(",") for row in rows if ",bob," in row)
    assert dict(zip(header, bob_row))["late_submission_penalty"] == "27.0"
    assert dict(zip(header, bob_row))["score"] == "0.0"


@pytest.fixture
def postgres_url():
    """A new, empty database on the PostgreSQL server named by $COURSE_POSTGRES_URL (`.ci/run`
    starts one), dropped afterwards."""
    import os
    import uuid

    server = os.environ.get("COURSE_POSTGRES_URL")
    if not server:
        pytest.skip("COURSE_POSTGRES_URL names no PostgreSQL server (.ci/run starts one)")
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"gradebook_{uuid.uuid4().hex[:12]}"
    libpq = make_url(server).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            yield make_url(server).set(database=name).render_as_string(hide_password=False)
        finally:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.mark.slow
def test_grade_into_postgresql_with_two_jobs_then_two_graders_at_once(template, tmp_path, postgres_url):
    """nbgrader's db_url set to PostgreSQL: `--jobs 2` stores its grades there (no gradebook.db
    appears), then two graders, each with their own copy of the course folder, grade other
    students into the same gradebook at the same time, and every grade is there."""
    import os
    import subprocess
    import sys

    from nbgrader.api import Gradebook

    graders = {}
    for name in ("grader-a", "grader-b"):
        graders[name] = shutil.copytree(template, tmp_path / name)
        with open(graders[name] / "nbgrader_config.py", "a") as config:
            config.write(f"\nc.CourseDirectory.db_url = {postgres_url!r}\n")
    inbox = tmp_path / "inbox"
    _write(inbox / "alice" / PS / NOTEBOOK, _solution(template))
    _write(inbox / "bob" / PS / NOTEBOOK, _blank(template))
    report = grading.grade(PS, inbox, graders["grader-a"], jobs=2, log=lambda *_: None)
    assert [(r.student, r.score, r.failed) for r in report.results] == [("alice", 27.0, ""), ("bob", 0.0, "")]
    assert not (graders["grader-a"] / "gradebook.db").exists()
    csv = (graders["grader-a"] / "grades" / f"{PS}.csv").read_text()
    assert ",alice," in csv and ",bob," in csv

    # two graders at once, each in their own course folder: A grades carol, B grades dave
    course = Path(sys.executable).parent / "course"
    running = []
    for grader, student, data in (("grader-a", "carol", _blank(template)), ("grader-b", "dave", _solution(template))):
        _write(tmp_path / f"inbox-{student}" / student / PS / NOTEBOOK, data)
        running.append(subprocess.Popen(
            [str(course), "grade", PS, "--submissions", str(tmp_path / f"inbox-{student}")],
            env={**os.environ, "COURSE_ROOT": str(graders[grader])},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [process.communicate()[0] for process in running]
    assert [process.returncode for process in running] == [0, 0], outputs
    assert "carol                    0/27" in outputs[0] and "dave                     27/27" in outputs[1]
    with Gradebook(postgres_url) as gradebook:
        stored = {s.student.id: s.score for s in gradebook.assignment_submissions(PS)}
    assert stored == {"alice": 27.0, "bob": 0.0, "carol": 0.0, "dave": 27.0}
    assert not any((g / "gradebook.db").exists() for g in graders.values())


def test_scratch_courses_keep_their_own_gradebook(template, tmp_path):
    """A scratch copy of the course (course grade's workers, course verify) never writes to the
    gradebook the course's config names, whatever it is."""
    from course_lib.grading import worker
    from course_lib.grading.pipeline import scratch_course

    course = shutil.copytree(template, tmp_path / "course")
    with open(course / "nbgrader_config.py", "a") as config:
        config.write("\nc.CourseDirectory.db_url = 'postgresql://grader@db.example.org/gradebook'\n")
    assert worker.gradebook_url(course) == "postgresql://grader@db.example.org/gradebook"
    copy = scratch_course(course, PS, tmp_path / "scratch" / "base")
    assert worker.gradebook_url(copy) == f"sqlite:///{copy / 'gradebook.db'}"
    moved = shutil.copytree(copy, tmp_path / "scratch" / "worker0")   # as course grade's workers do
    assert worker.gradebook_url(moved) == f"sqlite:///{moved / 'gradebook.db'}"
    assert worker.gradebook_url(template) == f"sqlite:///{template / 'gradebook.db'}"   # nbgrader's default


def test_new_sqlite_gradebooks_are_stamped_here_as_nbgrader_would(tmp_path, monkeypatch):
    """nbgrader stamps a new gradebook with the version an `alembic heads` process prints (about
    6 s, for every scratch course); worker.new_sqlite_gradebook writes the same version here."""
    import nbgrader.api
    from nbgrader.api import Gradebook
    from sqlalchemy import text

    from course_lib.grading import worker

    nbgraders_version = nbgrader.api.get_alembic_version()      # what nbgrader's own process says
    monkeypatch.setattr(nbgrader.api, "get_alembic_version", lambda: pytest.fail("alembic was asked"))
    path = tmp_path / "gradebook.db"
    worker.new_sqlite_gradebook(f"sqlite:///{path}")
    with Gradebook(f"sqlite:///{path}") as gradebook:          # nbgrader adds its tables
        gradebook.add_assignment(PS)
        assert gradebook.db.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
            nbgraders_version]
    kept = path.read_bytes()
    worker.new_sqlite_gradebook(f"sqlite:///{path}")             # an existing gradebook is left alone
    worker.new_sqlite_gradebook("postgresql://grader@db.example.org/gradebook")   # not SQLite: nothing
    assert path.read_bytes() == kept


def test_failure_reasons_are_read_from_nbgraders_log():
    log = "\n".join([
        "[INFO] Sanitizing /c/submitted/dave/ps1_regularization/ps1_regularization.ipynb",
        "[ERROR] Kernel died while waiting for execute reply.",
        "[ERROR] There was an error processing assignment: /c/submitted/dave/ps1_regularization",
        "[ERROR] Traceback (most recent call last):",
        "    nbclient.exceptions.DeadKernelError: Kernel died",
        "[INFO] Sanitizing /c/submitted/erin/ps1_regularization/ps1_regularization.ipynb",
        "[ERROR] No notebooks found, did you forget to run 'nbgrader generate_assignment'?",
        "nbgrader.converters.base.NbGraderException: Please see the the above traceback for details",
        "[INFO] Sanitizing /c/submitted/fred/ps1_regularization/ps1_regularization.ipynb",
    ])
    assert grading._reasons(log, PS) == {
        "dave": "nbclient.exceptions.DeadKernelError: Kernel died",
        "erin": "No notebooks found, did you forget to run 'nbgrader generate_assignment'?"}


def test_benchmark_script_options():
    import subprocess
    import sys

    script = ROOT / "benchmarks" / "grade_parallel.py"
    shown = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True)
    assert shown.returncode == 0 and "--jobs" in shown.stdout and "--submissions" in shown.stdout
    refused = subprocess.run([sys.executable, str(script), "--jobs", "0"], capture_output=True, text=True)
    assert refused.returncode == 2 and "must be 1 or more" in refused.stderr
    refused = subprocess.run([sys.executable, str(script), "--assignment", "ps9"], capture_output=True, text=True)
    assert refused.returncode == 2 and "no assignment 'ps9'" in refused.stderr
