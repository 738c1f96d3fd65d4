"""The integrity checks of course grade: the static scan, and canaries run in a real kernel."""
import pytest

from course_lib.grading import integrity

SETUP = "import numpy as np\nfrom course_lib.grading import expect_close\n"
HONEST = "def double(x):\n    return 2 * x\n"
TEST = ("expect_close('double(3)', double(3), 6.0)\nassert np.allclose(double(1.5), 3.0)\n"
        "assert isinstance(double(2), int)\n")
WRONG = "def double(x):\n    return 3 * x\n"


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
    ("expect_close = np = lambda *a, **k: None", "binds expect_close, np again (the locked cells define"),
    ("def np(): pass", "binds np again"),
    ("import IPython\nIPython.get_ipython().events", "imports IPython"),
    ("import IPython\nIPython.get_ipython().events", "uses IPython.get_ipython"),
    ("print(_ih[1])", "uses _ih"),
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


def test_scan_reads_the_locked_cells_from_the_release():
    """A student who edits the setup cell's copy cannot hide which names the tests rely on:
    nbgrader runs the release's source, and the scan reads that."""
    notebook = submission("expect_close = print")
    notebook["cells"][0]["source"] = "import numpy as np\n"
    assert not any("binds expect_close" in f for f in integrity.scan(notebook))
    assert any("binds expect_close" in f for f in integrity.scan(notebook, submission(HONEST)))


def test_bindings_of_a_cell():
    source = ("import numpy as np, os.path\nfrom a import b as c\ndef f(x):\n    inner = 1\nclass K: pass\n"
              "x = y = 1\nfor i in range(2): pass\nwith open('f') as handle: pass\n_private = 1\n"
              "total = [z for z in range(3)]\n")
    assert integrity.bindings(source) == {"np": True, "os": True, "c": True, "f": True, "K": True, "x": False,
                                          "y": False, "i": False, "handle": False, "total": False}


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
    kinds = ["canary" if integrity.is_canary(c, token) else c["metadata"]["nbgrader"]["grade_id"] for c in guarded["cells"]]
    assert kinds == ["canary", "setup", "canary", "answer", "canary", "test", "canary", "canary", "canary"]
    kinds = [c["metadata"][integrity.METADATA]["kind"] for c in guarded["cells"] if integrity.is_canary(c, token)]
    assert kinds == ["first", "record", "check", "record", "check", "must-fail"]
    assert token in guarded["cells"][-1]["source"] and "raise AssertionError" in guarded["cells"][-1]["source"]
    assert integrity.strip_guards(guarded, token) == submission(HONEST)
    assert integrity.new_token() != token


def execute(answer: str, token: str) -> dict:
    """The guarded submission with ``answer``, executed in a real kernel."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.from_dict(integrity.guard(submission(answer), token))
    NotebookClient(notebook, timeout=120, kernel_name="python3", allow_errors=True).execute()
    return notebook


def run(answer: str) -> list[str]:
    token = integrity.new_token()
    return integrity.breaches(execute(answer, token), token)


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
    "a name the tests call bound again": ("expect_close = lambda *a, **k: None\n" + WRONG,
                                          "expect_close (defined or imported by the locked cells) bound again"),
    "bound again through exec": ("exec('expect_close = np = None')\n" + WRONG, "expect_close, np (defined or"),
    "a check's code replaced in place": ("from course_lib.grading import checks\n"
                                        "checks.expect_close.__code__ = (lambda *a, **k: None).__code__\n" + WRONG,
                                        "expect_close replaced since the locked cells ran"),
    "test cells rewritten by a line transform": (
        "import IPython\nIPython.get_ipython().input_transformer_manager.line_transforms.append(\n"
        "    lambda lines: ['pass\\n'] if lines and lines[0].startswith('expect') else lines)\n" + WRONG,
        "the kernel's transformers changed"),
    "a token transformer added": ("from IPython.core.inputtransformer2 import TokenTransformBase\n"
                                  "class Quiet(TokenTransformBase):\n    find = classmethod(lambda cls, tokens: None)\n"
                                  "get_ipython().input_transformer_manager.token_transformers.append(Quiet)\n"
                                  + WRONG, "the kernel's transformers changed"),
    "an event callback added": ("get_ipython().events.register('pre_run_cell', lambda info: None)\n" + WRONG,
                                "the kernel's events changed"),
    "a builtin the tests read shadowed": ("isinstance = lambda *a: True\n" + WRONG, "the builtins isinstance shadowed"),
    "what the checks call replaced": ("from course_lib.grading import checks\nclass Agree:\n"
                                      "    def __getattr__(self, name):\n        return getattr(np, name)\n"
                                      "checks.np = Agree()\n" + WRONG, "the kernel's checks changed"),
    "a tracer set": ("import sys\nsys.settrace(lambda *a: None)\n" + HONEST, "the kernel's hooks changed"),
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


@pytest.mark.slow
def test_a_rebound_name_is_put_back_before_the_tests():
    """Rebinding a name the tests call is caught, and the tests still run the real check."""
    token = integrity.new_token()
    notebook = execute("expect_close = lambda *a, **k: None\n" + WRONG, token)
    test = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade"))
    assert [o.get("ename") for o in test.outputs] == ["CheckFailed"], test.outputs


@pytest.mark.slow
def test_the_token_is_not_left_in_the_input_history():
    snoop = ("import linecache\nshell = get_ipython()\nseen = [In, _ih, shell.history_manager.input_hist_raw,\n"
             "        {k: v for k, v in globals().items() if k.startswith('_i')}, linecache.cache,\n"
             "        shell.last_execution_result.info.raw_cell, shell.history_manager.db_input_cache]\n"
             "print(seen)\n")
    token = integrity.new_token()
    notebook = execute(snoop + HONEST, token)
    answer = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "answer")
    printed = "".join(o.get("text", "") for o in answer.outputs)
    assert "course-integrity" in printed and token not in printed


def test_a_student_cell_that_looks_like_a_canary_is_not_one():
    """Only this run's canaries count: a student's cell marked like one, or a canary's line that is
    not JSON, cannot break the reading of the canaries."""
    token = integrity.new_token()
    notebook = submission(HONEST)
    notebook["cells"].insert(2, cell(f"{integrity.MARK} my notes\nprint('{integrity.LINE} {token} {{not json')"))
    guarded = integrity.guard(notebook, token)
    assert integrity.strip_guards(guarded, token) == notebook
    for canary in (c for c in guarded["cells"] if integrity.is_canary(c, token)):
        forged = f"{integrity.LINE} {token} {{not json\n"
        canary["outputs"] = [{"output_type": "stream", "name": "stdout", "text": forged}]
    problems = integrity.breaches(guarded, token)
    assert problems[0] == ("before any student code: printed an unreadable state (output rewritten) "
                           "(and at 4 later canaries)")


def test_breaches_when_canaries_are_missing_or_the_last_cell_passed():
    token = integrity.new_token()
    assert integrity.breaches(submission(HONEST), token) == ["the canary cells are missing"]
    guarded = integrity.guard(submission(HONEST), token)
    problems = integrity.breaches(guarded, token)  # never executed: nothing printed, nothing failed
    assert "the cell that must fail did not fail: errors are being hidden" in problems
    assert any("printed no state" in p for p in problems)
