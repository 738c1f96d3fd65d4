"""The integrity checks of course grade: the static scan, and canaries run in a real kernel."""
import pytest

from course_lib.grading import integrity

SETUP = "import numpy as np\nfrom course_lib.grading import expect_close\n"
HONEST = "def double(x):\n    return 2 * x\n"
TEST = "expect_close('double(3)', double(3), 6.0)\nassert np.allclose(double(1.5), 3.0)\n"


def cell(source, **nbgrader):
    meta = {"nbgrader": {"grade_id": nbgrader.pop("grade_id", "c"), **nbgrader}} if nbgrader else {}
    return {"cell_type": "code", "execution_count": None, "metadata": meta, "outputs": [], "source": source}


def submission(answer: str) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "cells": [cell(SETUP, grade_id="setup", locked=True),
                      cell(answer, grade_id="answer", solution=True),
                      cell(TEST, grade_id="test", grade=True, locked=True, points=1)]}


def test_scan_finds_nothing_in_honest_code():
    assert integrity.scan(submission(HONEST)) == []


@pytest.mark.parametrize("answer, finding", [
    ("np.allclose = lambda *a, **k: True", "changes np.allclose"),
    ("import numpy.testing\nnumpy.testing.assert_allclose = print", "changes numpy.testing.assert_allclose"),
    ("import course_lib.grading.checks as c\nc.expect_close = print", "changes c.expect_close"),
    ("import builtins\nbuiltins.abs = lambda x: 1", "imports builtins"),
    ("import sys, io\nsys.stderr = io.StringIO()", "changes sys.stderr"),
    ("get_ipython().showtraceback = lambda *a, **k: None", "uses get_ipython"),
    ("import os\nif os.environ.get('NBGRADER_EXECUTION'):\n    pass", "mentions 'NBGRADER'"),
    ("open('../../gradebook.db').read()", "mentions 'gradebook'"),
    ("import urllib.request\nurllib.request.urlopen('http://example.com')", "imports urllib.request (network)"),
    ("import os\nos._exit(0)", "calls os._exit() (ends the kernel)"),
    ("exec('x = 1')", "calls exec()"),
    ("%time x = 1\nsetattr(np, 'allclose', print)", "calls setattr()"),
])
def test_scan_names_each_tampering_construct(answer, finding):
    found = integrity.scan(submission(answer))
    assert any(finding in item for item in found), found
    assert all(item.startswith("cell 1, line ") for item in found), "the answer cell, by line"


def test_scan_ignores_locked_cells_and_syntax_errors():
    notebook = submission("def double(x) return")
    notebook["cells"][0]["source"] = "import socket  # the instructor's own setup"
    assert integrity.scan(notebook) == []


def test_scan_from_several_threads_at_once():
    """course grade scans submissions from several threads. A thread switch inside ast.parse
    (forced here by a garbage-collection callback that yields) must not break another
    thread's parse (CPython 3.11's "AST constructor recursion depth mismatch")."""
    import gc
    import sys
    import threading
    import time

    source = "\n".join(f"x{i} = [{', '.join(map(str, range(30)))}]\ndef f{i}(a):\n"
                       f"    return [b * (a - 2) for b in range(a)] if a else None" for i in range(120))
    notebook = {"cells": [{"cell_type": "code", "source": source,
                           "metadata": {"nbgrader": {"solution": True, "grade_id": "answer"}}}]}
    expected = integrity.scan(notebook)
    found, errors = [], []

    def scan_often():
        for _ in range(8):
            try:
                found.append(integrity.scan(notebook))
            except Exception as error:
                errors.append(error)

    def yield_thread(phase, info):
        time.sleep(0)

    thresholds, interval = gc.get_threshold(), sys.getswitchinterval()
    gc.callbacks.append(yield_thread)
    gc.set_threshold(50, 5, 5)
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=scan_often) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        gc.callbacks.remove(yield_thread)
        gc.set_threshold(*thresholds)
        sys.setswitchinterval(interval)
    assert errors == [] and found == [expected] * 32


def test_guard_places_canaries_and_strip_removes_them():
    token = integrity.new_token()
    guarded = integrity.guard(submission(HONEST), token)
    kinds = ["canary" if integrity.is_canary(c) else c["metadata"]["nbgrader"]["grade_id"] for c in guarded["cells"]]
    assert kinds == ["canary", "setup", "answer", "canary", "test", "canary", "canary"]
    assert token in guarded["cells"][-1]["source"] and "raise AssertionError" in guarded["cells"][-1]["source"]
    assert integrity.strip_guards(guarded) == submission(HONEST)
    assert integrity.new_token() != token


def run(answer: str) -> list[str]:
    import nbformat
    from nbclient import NotebookClient

    token = integrity.new_token()
    notebook = nbformat.from_dict(integrity.guard(submission(answer), token))
    NotebookClient(notebook, timeout=120, kernel_name="python3", allow_errors=True).execute()
    return integrity.breaches(notebook, token)


TAMPERING = {
    "numpy.allclose replaced": ("np.allclose = lambda *a, **k: True\n" + HONEST, "numpy.allclose"),
    "numpy.testing replaced": ("import numpy.testing\nnumpy.testing.assert_allclose = lambda *a, **k: None\n"
                               + HONEST, "numpy.testing.assert_allclose"),
    "course_lib check replaced": ("from course_lib.grading import checks\nchecks.expect_close = "
                                  "lambda *a, **k: None\n" + HONEST, "course_lib expect_close"),
    "builtins replaced": ("import builtins\nbuiltins.abs = lambda x: 1\n" + HONEST, "builtins"),
    "builtins replaced by look-alikes": ("import builtins\nclass Same:\n    __eq__ = lambda self, other: True\n"
                                         "builtins.abs = lambda x: Same()\n" + HONEST, "builtins"),
    "showtraceback silenced": ("get_ipython().showtraceback = lambda *a, **k: None\n" + HONEST, "shell"),
    "stderr redirected": ("import io, sys\nsys.stderr = io.StringIO()\n" + HONEST, "hooks"),
    "grader's variable changed": ("import os\nos.environ['NBGRADER_EXECUTION'] = 'validate'\n" + HONEST,
                                  "environment"),
    "later cells rewritten": ("get_ipython().input_transformers_cleanup.append(lambda lines: ['pass\\n'])\n"
                              + HONEST, "printed no state"),
}


@pytest.mark.slow
def test_canaries_stay_quiet_for_honest_code():
    assert run(HONEST) == []


@pytest.mark.slow
@pytest.mark.parametrize("case", list(TAMPERING))
def test_canaries_catch_tampering(case):
    answer, named = TAMPERING[case]
    found = run(answer)
    assert any(named in problem for problem in found), found


def test_breaches_when_canaries_are_missing_or_the_last_cell_passed():
    token = integrity.new_token()
    assert integrity.breaches(submission(HONEST), token) == ["the canary cells are missing"]
    guarded = integrity.guard(submission(HONEST), token)
    problems = integrity.breaches(guarded, token)  # never executed: nothing printed, nothing failed
    assert "the cell that must fail did not fail: errors are being hidden" in problems
    assert any("printed no state" in p for p in problems)
