"""Test-cell checks and the pieces of the instructor pipeline (the full proof is in
test_assignments.py)."""
import json

import numpy as np
import pytest

import processes
from course_lib.grading import CheckFailed, expect, expect_close, expect_shape
from course_lib.grading import pipeline


# --- checks -----------------------------------------------------------------------------------

def test_expect_close_passes_within_tolerance():
    expect_close("x", np.array([1.0, 2.0]) + 1e-12, [1.0, 2.0])


def test_failure_says_what_and_where_without_the_answer():
    with pytest.raises(CheckFailed) as failure:
        expect_close("new_W", np.array([[1.0, 2.0], [3.0, 4.5]]), [[1.0, 2.0], [3.0, 4.0]])
    message = str(failure.value)
    assert "new_W" in message and "off by 0.5" in message and "(1, 1)" in message
    assert "4.0" not in message  # the expected value is not printed


def test_constant_factor_and_sign_are_named():
    with pytest.raises(CheckFailed, match="2 times the expected one"):
        expect_close("penalty", 2.8, 1.4)
    with pytest.raises(CheckFailed, match="opposite sign"):
        expect_close("gradient", [-1.0, 2.0], [1.0, -2.0])


def test_shape_none_and_nan_are_explained():
    with pytest.raises(CheckFailed, match=r"has shape \(3,\); expected shape \(2,\)"):
        expect_close("out", np.zeros(3), np.zeros(2))
    with pytest.raises(CheckFailed, match="forget to `return`"):
        expect_close("out", None, 1.0)
    with pytest.raises(CheckFailed, match="NaN"):
        expect_close("out", [np.nan], [1.0])
    with pytest.raises(CheckFailed, match="should be a number"):
        expect_shape("out", object(), (1,))
    with pytest.raises(CheckFailed, match="the hint"):
        expect(False, "the hint")


# --- pipeline pieces -----------------------------------------------------------------------------

def _notebook(*cells):
    return {"cells": [{"cell_type": "code", "source": src,
                       "metadata": {"nbgrader": {"grade_id": gid, "solution": True}}}
                      for gid, src in cells], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_apply_mutant_changes_one_cell_exactly_once():
    nb = _notebook(("a", "return h * p"), ("b", "return h * p"))
    mutant = pipeline.Mutant("m", "a", "h * p", "h", "why")
    changed = pipeline.apply_mutant(nb, mutant)
    assert changed["cells"][0]["source"] == "return h" and changed["cells"][1]["source"] == "return h * p"
    assert nb["cells"][0]["source"] == "return h * p"  # the original is untouched
    assert pipeline.apply_mutant(nb, pipeline.Mutant("m", "zzz", "x", "y", "")) is None
    with pytest.raises(pipeline.GradingError, match="occurs 0 times in cell 'a'"):
        pipeline.apply_mutant(nb, pipeline.Mutant("m", "a", "missing", "y", ""))


def test_load_mutants_validates_the_file(tmp_path):
    folder = tmp_path / "tests" / "mutants"
    folder.mkdir(parents=True)
    with pytest.raises(pipeline.GradingError, match="is missing"):
        pipeline.load_mutants("ps9", tmp_path)
    (folder / "ps9.py").write_text("MUTANTS = []\n")
    with pytest.raises(pipeline.GradingError, match="non-empty list of Mutant"):
        pipeline.load_mutants("ps9", tmp_path)
    (folder / "ps9.py").write_text(
        "from course_lib.grading.pipeline import Mutant\n"
        "MUTANTS = [Mutant('a', 'c', 'x', 'y', ''), Mutant('a', 'c', 'x', 'z', '')]\n")
    with pytest.raises(pipeline.GradingError, match="must be unique"):
        pipeline.load_mutants("ps9", tmp_path)


def test_every_assignment_has_at_least_six_mutants_that_apply(root):
    for name in pipeline.assignment_names(root):
        mutants = pipeline.load_mutants(name, root)
        assert len(mutants) >= 6, name
        notebooks = [json.loads(p.read_text()) for p in (root / "source" / name).glob("*.ipynb")]
        for mutant in mutants:
            assert any(pipeline.apply_mutant(nb, mutant) for nb in notebooks), mutant.name


def test_stale_release_is_detected(tmp_path):
    generated = tmp_path / "generated"
    committed = tmp_path / "release" / "ps9"
    generated.mkdir()
    committed.mkdir(parents=True)
    (generated / "a.ipynb").write_text(json.dumps(_notebook(("a", "x"))))
    (committed / "a.ipynb").write_text(json.dumps(_notebook(("a", "x")), indent=4))
    assert pipeline.stale_release_files("ps9", tmp_path, generated) == []
    (committed / "a.ipynb").write_text(json.dumps(_notebook(("a", "y"))))
    assert pipeline.stale_release_files("ps9", tmp_path, generated) == ["release/ps9/a.ipynb"]
    assert pipeline.stale_release_files("ps8", tmp_path, generated) == ["release/ps8 (missing)"]


def test_course_root_is_found_from_inside_and_unknown_assignments_named(root, tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_ROOT", raising=False)
    assert pipeline.find_course_root(root / "notebooks") == root
    with pytest.raises(pipeline.GradingError, match="no nbgrader_config.py"):
        pipeline.find_course_root(tmp_path)
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    with pytest.raises(pipeline.GradingError, match="holds no nbgrader_config.py"):
        pipeline.find_course_root()
    with pytest.raises(pipeline.GradingError, match="no assignment 'ps0'.*ps1_regularization"):
        pipeline.release("ps0", root)


def test_judging_rules():
    full = {"nb:t1": (2.0, 2.0), "nb:t2": (3.0, 3.0)}
    assert pipeline._judge("solution", "full marks", full).passed
    assert not pipeline._judge("solution", "full marks", {"nb:t1": (1.0, 2.0)}).passed
    assert pipeline._judge("blank", "0 on every test cell", {"nb:t1": (0.0, 2.0)}).passed
    assert not pipeline._judge("blank", "0 on every test cell", {"nb:t1": (1.0, 2.0)}).passed
    caught = pipeline._judge("mutant-x", "lose points", {"nb:t1": (0.0, 2.0), "nb:t2": (3.0, 3.0)}, "why")
    assert caught.passed and "caught by t1" in caught.detail
    missed = pipeline._judge("mutant-x", "lose points", full, "why")
    assert not missed.passed and "NOT CAUGHT" in missed.detail
    assert not pipeline._judge("mutant-x", "lose points", None).passed


def test_stderr_noise_pattern_spares_real_errors(root):
    """nbgrader's IgnorePattern drops stderr that is only library noise (nbgrader_config.py)."""
    import re
    import runpy

    class Config(dict):
        def __getattr__(self, name):
            return self.setdefault(name, type(self)())

        def __setattr__(self, name, value):
            self[name] = value

    config = Config()
    runpy.run_path(str(root / "nbgrader_config.py"), init_globals={"get_config": lambda: config})
    assert config.IgnorePattern.enabled
    pattern = re.compile(config.IgnorePattern.pattern)
    noise = [
        "I0000 00:00:1795762901.240628    2216 cpu_feature_guard.cc:227] This TensorFlow binary",
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "WARNING:absl:You are saving your model as an HDF5 file",
        "/x/keras/src/trainers/epoch_iterator.py:74: UserWarning: `shuffle=True` was passed",
        "100%|██████████| 10/10 [00:01<00:00,  5.68it/s]",
    ]
    for text in noise:
        assert pattern.search(text), text
    assert not pattern.search("the student's own message\n")
    assert config.Execute.timeout >= 60 and config.Execute.kernel_name == "python3"


def _graded_cell(source: str, grade_id: str, points: int | None = None):
    """A code cell as nbgrader marks it: a solution cell, or (with ``points``) a test cell."""
    from nbformat.v4 import new_code_cell

    cell = new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade_id": grade_id, "grade": points is not None, "locked": points is not None,
                                 "solution": points is None, "schema_version": 3, "task": False}
    if points is not None:
        cell.metadata["nbgrader"]["points"] = points
    return cell


def _one_notebook_course(root, course, cells):
    """A course at ``course`` with the course's nbgrader_config.py and one assignment, ps0, whose
    one notebook has ``cells``."""
    import shutil

    import nbformat
    from nbformat.v4 import new_notebook

    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (course / "source" / "ps0").mkdir(parents=True)
    shutil.copy(root / "nbgrader_config.py", course / "nbgrader_config.py")
    nbformat.write(nb, course / "source" / "ps0" / "ps0.ipynb")
    return course


@pytest.mark.slow
def test_library_noise_on_stderr_does_not_zero_a_passing_test_cell(root, tmp_path):
    """A real `nbgrader autograde` with the course's nbgrader_config.py: a test cell that passes
    while TensorFlow-style logs and a Python warning reach stderr keeps its points; a failing
    one still scores 0."""
    import shutil

    noisy = ("import sys, warnings\n"
             "print('I0000 00:00:1795762901.240628    2216 cpu_feature_guard.cc:227] This TensorFlow binary', file=sys.stderr, flush=True)\n"
             "print('WARNING:absl:Compiled the loaded model, but the compiled metrics have yet to be built.', file=sys.stderr, flush=True)\n"
             "warnings.warn('a library being chatty', UserWarning)\n"
             "assert answer() == 42\n")
    course = _one_notebook_course(root, tmp_path / "course", [
        _graded_cell("def answer():\n    ### BEGIN SOLUTION\n    return 42\n    ### END SOLUTION", "answer"),
        _graded_cell(noisy, "test_noisy", 2),
        _graded_cell("assert answer() == 41, 'wrong on purpose'", "test_failing", 1)])
    pipeline.run_nbgrader(["generate_assignment", "ps0", "--force"], course)
    (course / "submitted" / "alice" / "ps0").mkdir(parents=True)
    shutil.copy(course / "source" / "ps0" / "ps0.ipynb", course / "submitted" / "alice" / "ps0")
    pipeline.run_nbgrader(["autograde", "ps0", "--force"], course)
    scores = pipeline._scores(course, "ps0", ["alice"])["alice"]
    assert scores["ps0:test_noisy"] == (2.0, 2.0)
    assert scores["ps0:test_failing"] == (0.0, 1.0)


@pytest.mark.slow
@pytest.mark.parametrize("ctrl_c", [False, True], ids=["SIGTERM", "Ctrl-C"])
@pytest.mark.parametrize("moment", ["executing", "kernel starting"])
def test_a_stopped_verify_ends_its_nbgrader_runs_and_leaves_nothing_behind(root, tmp_path, ctrl_c, moment):
    """SIGTERM to `course verify` (a CI job's time limit), or Ctrl-C in its terminal (SIGINT to its
    whole process group), while a submission executes or while its kernel starts: its nbgrader run
    ends, kernel and all, the scratch copy of the course and the kernel's connection file are
    removed, and it exits with 128 + the signal's number saying nothing was proved. (On SIGTERM it
    used to die at once, its nbgrader runs going on to the end; a stop as the kernel started
    left the connection file in TMPDIR.)"""
    import os
    import sys

    from nbformat.v4 import new_code_cell

    executing = tmp_path / "executing"   # the kernel got there: it runs the notebook (started in full)
    course = _one_notebook_course(root, tmp_path / "course", [   # every submission sleeps here
        new_code_cell(f"import pathlib, time\npathlib.Path({str(executing)!r}).touch()\ntime.sleep(600)"),
        _graded_cell("def answer():\n    ### BEGIN SOLUTION\n    return 42\n    ### END SOLUTION", "answer"),
        _graded_cell("assert answer() == 42", "test_answer", 1)])
    (course / "tests" / "mutants").mkdir(parents=True)
    (course / "tests" / "mutants" / "ps0.py").write_text(
        "from course_lib.grading.pipeline import Mutant\n"
        "MUTANTS = [Mutant('off', 'answer', 'return 42', 'return 41', 'off by one')]\n")
    temporary = tmp_path / "tmp"   # its scratch course, and its kernels' connection files
    temporary.mkdir()
    with processes.session([sys.executable, "-m", "course_lib.cli", "verify", "ps0", "--jobs", "1"],
                           tmp_path / "verify.log", marker=str(temporary),
                           env={**os.environ, "COURSE_ROOT": str(course), "TMPDIR": str(temporary)}) as run:
        if moment == "executing":
            processes.wait_until(lambda: executing.exists() or run.poll() is not None, 120)
            assert executing.exists() and run.poll() is None, (tmp_path / "verify.log").read_text()[-3000:]
        else:   # the kernel's connection file is written just before the kernel is launched
            processes.wait_until(lambda: any(temporary.rglob("*.json")) or run.poll() is not None, 120, every=0.01)
            assert any(temporary.rglob("*.json")) and run.poll() is None, (tmp_path / "verify.log").read_text()[-3000:]
        stop = processes.stop(run, ctrl_c)   # Ctrl-C reaches nbgrader too (not its kernel: a session of its own)
        assert run.wait(timeout=120) == 128 + stop, (tmp_path / "verify.log").read_text()[-3000:]
        out = (tmp_path / "verify.log").read_text()
        assert f"stopped by {stop.name} before the proof finished: nothing proved" in out, out
        assert "no further assignment was verified" in out, out
        gone = processes.wait_until(lambda: not processes.mentioning(str(temporary)), 30)
        assert gone, f"processes left running: {processes.mentioning(str(temporary))}"
        assert not processes.in_session(run.pid)
        assert not list(temporary.iterdir()), "its scratch course or a kernel's connection file was left behind"


# --- course grade: its pieces -------------------------------------------------------------------

PS = "ps1_regularization"


def test_a_csv_path_that_is_a_folder_is_refused_before_grading(root, tmp_path):
    from course_lib.grading import grade

    folder = tmp_path / "grades"
    (folder / "keep.txt").parent.mkdir()
    (folder / "keep.txt").write_text("the instructor's")
    with pytest.raises(pipeline.GradingError, match=r"--csv .*grades is a folder; expected the path of a CSV "
                                                     r"file to write \(for example .*grades/ps1_regularization.csv\)"):
        grade.grade(PS, tmp_path / "no-inbox", root, csv=folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grades"] and (folder / "keep.txt").exists()


def test_an_lms_zip_is_recognised_whatever_the_case_of_its_suffix(tmp_path, monkeypatch):
    from course_lib.grading import grade

    archive, notebook = tmp_path / "SUBMISSIONS.ZIP", tmp_path / "a.ipynb"
    archive.write_bytes(b"zip")
    notebook.write_text("{}")
    monkeypatch.setattr(grade, "_from_zip", lambda *args: ({"alice": [notebook]}, set()))
    students = grade.collect(archive, PS, tmp_path / "course", tmp_path / "scratch").students
    assert students == ["alice"] and (tmp_path / "course/submitted/alice" / PS / "a.ipynb").exists()


def test_notebooks_the_release_does_not_have_are_named(tmp_path):
    from course_lib.grading.grade import _not_graded

    for name in ("ps1.ipynb", "ps1-Copy1.ipynb"):
        (tmp_path / name).write_text("{}")
    assert _not_graded(tmp_path, ["ps1.ipynb"]) == ["ps1-Copy1.ipynb"]
    (tmp_path / "ps1.ipynb").unlink()
    assert _not_graded(tmp_path, ["ps1.ipynb"]) == [], "a lone notebook is graded under the expected name"


def test_an_nbformat_3_notebook_is_read_as_version_4(root, tmp_path):
    import nbformat

    from course_lib.grading.grade import _read_as_v4
    from course_lib.grading.repair import repair

    release = json.loads((root / "release" / PS / f"{PS}.ipynb").read_text())
    old = tmp_path / "old.ipynb"
    old.write_text(nbformat.writes(nbformat.convert(nbformat.from_dict(release), 3), version=3))
    notebook, upgraded = _read_as_v4(old)
    assert upgraded == 3 and notebook["nbformat"] == 4
    assert not repair(notebook, release).reinserted, "its cells and their metadata are all there"


def test_a_worker_answer_that_cannot_be_read_fails_only_its_student():
    from course_lib.grading.grade import _answer

    good = {"student": "alice", "success": True, "seconds": 1.0, "log": ""}
    assert _answer(json.dumps(good) + "\n", "alice") == good
    for reply, why in [("", "died"), ("hello from a subprocess\n", "could not be read"),
                       (json.dumps({**good, "student": "x"}), "could not be read")]:
        answer = _answer(reply, "alice")
        assert not answer["success"] and why in answer["log"]


def test_the_worker_answers_on_its_own_channel(tmp_path):
    """The answer pipe the grader passes is not inherited by what the worker starts (its kernels)."""
    import os
    import subprocess
    import sys

    from course_lib.grading import worker

    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)   # as pass_fds leaves it in the worker
    channel = worker._answer_channel(str(write_end))
    child = subprocess.run([sys.executable, "-c", f"import os; os.write({write_end}, b'forged')"],
                           close_fds=False, capture_output=True, text=True)
    channel.write("answer\n")
    channel.close()
    with open(read_end) as answers:
        assert answers.read() == "answer\n"
    assert "Bad file descriptor" in child.stderr


@pytest.mark.filterwarnings("ignore:Object of type")   # nbgrader's own add_submission, in SQLAlchemy 2
def test_a_failed_regrade_takes_the_earlier_grade_out_and_keeps_it(tmp_path):
    from nbgrader.api import Gradebook, MissingEntry

    from course_lib.grading import worker
    from course_lib.grading.grade import _retire_stale

    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    url = worker.gradebook_url(tmp_path)
    worker.new_sqlite_gradebook(url)
    with Gradebook(url) as gradebook:
        gradebook.add_assignment("ps1")
        gradebook.add_notebook("ps1", "ps1")
        gradebook.add_grade_cell("test_a", "ps1", "ps1", max_score=2.0, cell_type="code")
        gradebook.add_student("alice")
        gradebook.add_submission("ps1", "alice")
        gradebook.find_grade("test_a", "ps1", "ps1", "alice").manual_score = 1.5
        gradebook.db.commit()
    for step, name in (("autograded", "ps1.ipynb"), ("feedback", "ps1.html")):
        (tmp_path / step / "alice" / "ps1").mkdir(parents=True)
        (tmp_path / step / "alice" / "ps1" / name).write_text("earlier")

    notes = _retire_stale(tmp_path, "ps1", ["alice", "bob"])
    assert len(notes) == 1 and notes[0].startswith("alice: no new grade, so the earlier one (1.5/2) was taken out")
    with Gradebook(url) as gradebook, pytest.raises(MissingEntry):
        gradebook.find_submission("ps1", "alice")
    kept, = (tmp_path / "backup").glob("gradebook-*/alice")
    assert json.loads((kept / "ps1.json").read_text())["notebooks"]["ps1"]["grades"]["test_a"]["manual_score"] == 1.5
    assert (kept / "autograded" / "ps1.ipynb").read_text() == (kept / "feedback" / "ps1.html").read_text() == "earlier"
    assert not (tmp_path / "autograded" / "alice" / "ps1").exists()


def test_feedback_hides_the_hidden_tests_and_their_tracebacks():
    import nbformat

    from course_lib.grading.feedback import HideHiddenTests

    source = ("expect_close('f(1)', f(1), 2.0)\n### BEGIN HIDDEN TESTS\nsecret_input = 123.25\n"
              "expect_close('f(secret)', f(secret_input), 246.5)\n### END HIDDEN TESTS")
    cell = nbformat.v4.new_code_cell(source, outputs=[nbformat.v4.new_output(
        "error", ename="CheckFailed", evalue="f(secret) is not what the formula gives",
        traceback=["----> 4 expect_close('f(secret)', f(secret_input), 246.5)", "secret_input = 123.25"])])
    visible = nbformat.v4.new_code_cell("print(1)", outputs=[nbformat.v4.new_output(
        "error", ename="ValueError", evalue="bad", traceback=["----> 1 print(1)"])])
    notebook = nbformat.v4.new_notebook(cells=[cell, visible])
    done, _ = HideHiddenTests().preprocess(notebook, {})
    text = json.dumps(done)
    assert "secret_input" not in text and "HIDDEN" not in text and "246.5" not in text
    assert done.cells[0].outputs[0].traceback[0] == "CheckFailed: f(secret) is not what the formula gives"
    assert done.cells[1].outputs[0].traceback == ["----> 1 print(1)"], "cells without hidden tests keep theirs"
