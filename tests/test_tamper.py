"""The tamper suite: hostile and broken ps1 submissions graded with `course grade --jobs 2`
beside an honest one, each with an asserted outcome. The README's table is generated from it.

Cheats earn nothing and are flagged; crashes cost only the submission's own points; the honest
student's grade is unaffected; nothing is lost. Run it alone with `pytest tests/test_tamper.py`;
if the README's table is out of date the test says so and writes the new one to build/."""
import copy
import json
import re
import shutil
from pathlib import Path

import pytest

from course_lib.grading import grade as grading
from course_lib.grading import sandbox

PS = "ps1_regularization"
NOTEBOOK = f"{PS}.ipynb"
ROOT = Path(__file__).resolve().parents[1]
FULL = 27.0
# `test_duplicated` copies test cells, ids and all; nbformat warns as it renumbers the copies.
pytestmark = pytest.mark.filterwarnings("ignore::nbformat.warnings.DuplicateCellId")
TIME_LIMIT = 90  # seconds per notebook's kernel: the honest notebook needs about 25 under load


def _grade_id(cell):
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _solved() -> dict:
    """The release with the instructor's answers written in: an honest, complete submission."""
    release = json.loads((ROOT / "release" / PS / NOTEBOOK).read_text())
    answers = {_grade_id(c): c["source"] for c in json.loads((ROOT / "source" / PS / NOTEBOOK).read_text())["cells"]}
    for cell in release["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("solution"):
            cell["source"] = answers[_grade_id(cell)]
    return release


def _blank() -> dict:
    return json.loads((ROOT / "release" / PS / NOTEBOOK).read_text())


def _first_answer(notebook: dict, code: str) -> dict:
    """``notebook`` with ``code`` run first in its first answer cell."""
    changed = copy.deepcopy(notebook)
    cell = next(c for c in changed["cells"] if c["metadata"].get("nbgrader", {}).get("solution"))
    cell["source"] = code + "\n" + "".join(cell["source"])
    return changed


def _tests(notebook: dict, change) -> dict:
    """``notebook`` with ``change(cells, index)`` applied to every test cell, last first."""
    changed = copy.deepcopy(notebook)
    cells = changed["cells"]
    for index in reversed([i for i, c in enumerate(cells) if c["metadata"].get("nbgrader", {}).get("grade")]):
        change(cells, index)
    return changed


def _set_source(text):
    def change(cells, index):
        cells[index]["source"] = text
    return change


def _delete(cells, index):
    del cells[index]


def _duplicate(cells, index):
    twin = copy.deepcopy(cells[index])
    twin["source"] = "pass"
    cells.insert(index, twin)


def _strip(notebook: dict) -> dict:
    changed = copy.deepcopy(notebook)
    for cell in changed["cells"]:
        cell["metadata"] = {}
    return changed


def _json(notebook: dict) -> bytes:
    return json.dumps(notebook, indent=1).encode()


def _wrong() -> dict:
    """The release with a wrong answer to every function: each returns zeros of the right shape."""
    changed = _blank()
    for cell in changed["cells"]:
        source = "".join(cell["source"])
        if cell["metadata"].get("nbgrader", {}).get("solution") and "raise NotImplementedError()" in source:
            cell["source"] = source.replace("raise NotImplementedError()", "return np.zeros(1), np.zeros(1)")
    return changed


def _nbformat3(notebook: dict) -> bytes:
    import nbformat

    return nbformat.writes(nbformat.convert(nbformat.from_dict(notebook), 3), version=3).encode()


def _with_cell(notebook: dict, source: str) -> dict:
    """``notebook`` with a code cell of the student's own (no metadata) before its first test."""
    changed = copy.deepcopy(notebook)
    first_test = next(i for i, c in enumerate(changed["cells"]) if c["metadata"].get("nbgrader", {}).get("grade"))
    changed["cells"].insert(first_test, {"cell_type": "code", "execution_count": None, "metadata": {},
                                         "outputs": [], "source": source, "id": "mine"})
    return changed


PATCH_NUMPY = ("import numpy, numpy.testing\nnumpy.allclose = lambda *a, **k: True\n"
               "numpy.testing.assert_allclose = lambda *a, **k: None")
PATCH_CHECKS = ("from course_lib.grading import checks\n"
                "checks.expect_close = checks.expect = checks.expect_shape = lambda *a, **k: None")
PATCH_BUILTINS = "import builtins\nbuiltins.abs = lambda x: x"
READ_SECRETS = ("for secret in ('../../../source/ps1_regularization/ps1_regularization.ipynb', "
                "'../../../gradebook.db'):\n"
                "    try:\n        print('read', len(open(secret, 'rb').read()), 'bytes of', secret)\n"
                "    except OSError as error:\n        print('blocked:', type(error).__name__, secret)")
REBIND = "expect = expect_close = expect_shape = lambda *a, **k: None"
LINE_TRANSFORM = ("import IPython\nIPython.get_ipython().input_transformer_manager.line_transforms.append(\n"
                  "    lambda lines: ['pass\\n'] if lines and lines[0].startswith('# Test') else lines)")
FORGED_ANSWER = ("import json, os, sys\nanswer = {'student': 'honest', 'success': False, 'seconds': 0, "
                 "'log': '[ERROR] RuntimeError: forged'}\nos.write(sys.stdout.fileno(), (json.dumps(answer) + '\\n').encode())")
LOOKALIKE = ("# course-integrity (my notes)\ntoken = _ih[1].split()[2].rstrip(':')\n"
             "print('course-integrity', token, '{not json')")
NETWORK = ("import urllib.request\ntry:\n    urllib.request.urlopen('https://pypi.org', timeout=5)\n"
           "    print('network reached')\nexcept Exception as error:\n    print('network blocked:', type(error).__name__)")

# (number, case, what the submission does, its files, the outcome it must get, needs the sandbox)
# Outcomes: "full" (27/27), "zero" (0/27), "partial" (0 < score < 27), "failed" (no grade, a reason),
# each optionally "+flagged" (manual review) and "+repaired" (the report says what was fixed).
CASES = [
    ("honest", "-", "the solution, handed in as it should be", lambda: _json(_solved()), "full", False),
    ("loop", "1", "`while True: pass` in an answer cell", lambda: _json(_first_answer(_solved(), "while True:\n    pass")),
     "failed", False),
    ("os_exit", "2", "`os._exit(0)` in an answer cell", lambda: _json(_first_answer(_solved(), "import os\nos._exit(0)")),
     "failed+flagged", False),
    ("sys_exit", "2", "`sys.exit()` in the first answer cell", lambda: _json(_first_answer(_solved(), "import sys\nsys.exit()")),
     "partial+flagged", False),
    ("memory", "3", "allocates 64 GiB in the first answer cell",
     lambda: _json(_first_answer(_solved(), "hog = bytearray(64 * 2**30)")), "partial", False),
    ("flood", "4", "prints 200,000 lines", lambda: _json(_first_answer(_solved(), "for i in range(200_000):\n    print(i)")),
     "full", False),
    ("test_edited", "5", "blank answers, every test cell replaced by `pass`", lambda: _json(_tests(_blank(), _set_source("pass"))),
     "zero", False),
    ("test_emptied", "5", "blank answers, every test cell emptied", lambda: _json(_tests(_blank(), _set_source(""))),
     "zero", False),
    ("test_deleted", "5", "blank answers, every test cell deleted", lambda: _json(_tests(_blank(), _delete)),
     "zero+repaired", False),
    ("test_duplicated", "6", "blank answers, every test cell duplicated as `pass`", lambda: _json(_tests(_blank(), _duplicate)),
     "zero+repaired", False),
    ("metadata_stripped", "7", "the solution with all cell metadata lost", lambda: _json(_strip(_solved())),
     "full+repaired", False),
    ("invalid_json", "8", "a file that is not JSON", lambda: b"this is not a notebook", "failed+flagged", False),
    ("truncated", "8", "the solution cut off halfway", lambda: _json(_solved())[:5000], "failed+flagged", False),
    ("renamed", "8", "the solution saved as `my_answers.ipynb`", lambda: _json(_solved()), "full+repaired", False),
    ("missing", "8", "no notebook, only `answers.py`", None, "failed", False),
    ("numpy_patched", "9", "the solution, with `numpy.allclose` and `numpy.testing` replaced",
     lambda: _json(_first_answer(_solved(), PATCH_NUMPY)), "zero+flagged", False),
    ("checks_patched", "9", "the solution, with `course_lib`'s checks replaced",
     lambda: _json(_first_answer(_solved(), PATCH_CHECKS)), "zero+flagged", False),
    ("builtins_patched", "9", "the solution, with `builtins.abs` replaced",
     lambda: _json(_first_answer(_solved(), PATCH_BUILTINS)), "zero+flagged", False),
    ("showtraceback", "10", "the solution, with IPython's `showtraceback` silenced",
     lambda: _json(_first_answer(_solved(), "get_ipython().showtraceback = lambda *a, **k: None")), "zero+flagged", False),
    ("stderr", "10", "the solution, with `sys.stderr` redirected",
     lambda: _json(_first_answer(_solved(), "import io, sys\nsys.stderr = io.StringIO()")), "zero+flagged", False),
    ("nbgrader_execution", "11", "the solution, replacing `numpy.allclose` only when `NBGRADER_EXECUTION` is set",
     lambda: _json(_first_answer(_solved(), "import os, numpy\nif os.environ.get('NBGRADER_EXECUTION'):\n"
                                            "    numpy.allclose = lambda *a, **k: True")), "zero+flagged", False),
    ("read_hidden", "12", "the solution, reading `source/` (hidden tests) and `gradebook.db`",
     lambda: _json(_first_answer(_solved(), READ_SECRETS)), "full+flagged", True),
    ("network", "13", "the solution, calling https://pypi.org", lambda: _json(_first_answer(_solved(), NETWORK)),
     "full+flagged", True),
    ("names_rebound", "9", "wrong answers, with the test cells' `expect`, `expect_close`, `expect_shape` bound again",
     lambda: _json(_first_answer(_wrong(), REBIND)), "zero+flagged", False),
    ("line_transform", "10", "wrong answers, with an IPython line transform that turns each test cell into `pass`",
     lambda: _json(_first_answer(_wrong(), LINE_TRANSFORM)), "zero+flagged", False),
    ("canary_lookalike", "10", "the solution, with a cell marked like a canary printing a broken canary line",
     lambda: _json(_with_cell(_solved(), LOOKALIKE)), "full+flagged", False),
    ("os_system", "14", "the solution, printing through `os.system` (straight to the kernel's stdout)",
     lambda: _json(_first_answer(_solved(), "import os\nos.system('echo hello from a subprocess')")), "full", False),
    ("forged_answer", "14", "the solution, writing a forged grading answer for `honest` to the kernel's stdout",
     lambda: _json(_first_answer(_solved(), FORGED_ANSWER)), "full", False),
    ("nbformat3", "8", "the solution in nbformat 3", lambda: _nbformat3(_solved()), "full+repaired", False),
    ("copy_only", "8", "a blank `ps1_regularization.ipynb`, the work in `ps1_regularization-Copy1.ipynb`",
     lambda: _json(_blank()), "zero+flagged", False),
]
NAMES = {"renamed": "my_answers.ipynb"}
EXTRA = {"copy_only": {"ps1_regularization-Copy1.ipynb": lambda: _json(_solved())}}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade every case at once, two at a time, in a copy of the course reduced to ps1."""
    base = tmp_path_factory.mktemp("tamper")
    course = base / "course"
    (course / "source").mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "source" / PS, course / "source" / PS)
    shutil.copytree(ROOT / "release" / PS, course / "release" / PS)
    inbox = base / "inbox"
    for name, _, _, build, _, _ in CASES:
        folder = inbox / name / PS
        folder.mkdir(parents=True)
        if build is None:
            (folder / "answers.py").write_text("def l2_penalty(w, lam): return 0\n")
        else:
            (folder / NAMES.get(name, NOTEBOOK)).write_bytes(build())
        for extra, make in EXTRA.get(name, {}).items():
            (folder / extra).write_bytes(make())
    report = grading.grade(PS, inbox, course, jobs=2, time_limit_s=TIME_LIMIT, log=lambda *_: None)
    return course, inbox, {r.student: r for r in report.results}, report


def outcome(result) -> str:
    """The outcome of one result in the CASES vocabulary."""
    if result.failed or result.score is None:
        kind = "failed"
    elif result.score == result.max_score == FULL:
        kind = "full"
    elif result.score == 0:
        kind = "zero"
    else:
        kind = "partial"
    return kind + ("+flagged" if result.review else "") + ("+repaired" if result.repairs else "")


def _short(text: str) -> str:
    """Long lists of cell names shortened to the first two and a count."""
    def cut(match):
        names = match.group(0).split(", ")
        return f"{names[0]}, {names[1]} and {len(names) - 2} more"
    return re.sub(r"\b\w+(?:, \w+){3,}\b", cut, text)


def describe(result) -> str:
    """What the README's table says happened: the score, and why."""
    score = (f"no grade: {result.failed}" if result.failed else "no grade" if result.score is None
             else f"{result.score:g}/{result.max_score:g}")
    parts = [score]
    if result.repairs:
        parts.append("repaired: " + _short("; ".join(result.repairs)))
    tampering = [r.split(": ", 1)[1] for r in result.review if r.startswith("tampering")]
    if tampering:
        parts.append("canaries: " + tampering[0])
    scan = [r.split(": ", 2)[-1] for r in result.review if r.startswith("integrity scan")]
    if scan:
        parts.append("flagged: " + "; ".join(dict.fromkeys(re.sub(r"^line \d+: ", "", s) for s in scan)))
    other = [r for r in result.review if not r.startswith(("tampering", "integrity scan"))]
    if other:
        parts.append("flagged: " + "; ".join(other))
    return ". ".join(parts).replace("|", "\\|")


def table(results) -> str:
    lines = ["| # | submission | outcome |", "|---|---|---|"]
    for name, number, what, _, _, _ in CASES:
        lines.append(f"| {number} | {what} | {describe(results[name])} |")
    return "\n".join(lines)


@pytest.mark.slow
@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_each_case_gets_its_outcome(graded, case):
    _, _, results, _ = graded
    name, _, what, _, wanted, needs_sandbox = next(c for c in CASES if c[0] == case)
    if needs_sandbox and sandbox.bwrap_available() is not None:
        pytest.skip(f"needs the grading sandbox: {sandbox.bwrap_available()}")
    assert outcome(results[name]) == wanted, f"{what}: {describe(results[name])}"


@pytest.mark.slow
def test_the_sandbox_blocked_the_reads_and_the_network(graded):
    course, _, _, _ = graded
    if sandbox.bwrap_available() is not None:
        pytest.skip(f"needs the grading sandbox: {sandbox.bwrap_available()}")
    read = (course / "autograded" / "read_hidden" / PS / NOTEBOOK).read_text()
    assert read.count("blocked: FileNotFoundError") == 2 and not re.search(r"read \d+ bytes", read)
    assert "network blocked:" in (course / "autograded" / "network" / PS / NOTEBOOK).read_text()


@pytest.mark.slow
def test_nothing_is_lost(graded):
    course, inbox, results, report = graded
    for name, *_ in CASES:   # every submission is kept as handed in
        for path in (inbox / name / PS).glob("*.ipynb"):
            assert (course / "submitted" / name / PS / path.name).read_bytes() == path.read_bytes()
    flood = course / "autograded" / "flood" / PS / NOTEBOOK
    assert flood.stat().st_size < 2_000_000, "nbgrader's output limit kept the flood out of the gradebook's notebooks"
    rows = (course / "grades" / f"{PS}.csv").read_text().splitlines()
    assert any(row.startswith(f"{PS},") and ",honest," in row and row.endswith(",27.0,27.0") for row in rows)
    honest = (course / "feedback" / "honest" / PS / f"{PS}.html").read_text()
    assert results["honest"].score == FULL and "course-integrity" not in honest, "no canary in feedback"


@pytest.mark.slow
def test_feedback_holds_no_hidden_test(graded):
    """Neither the hidden tests' code nor the tracebacks of those that failed reach the student."""
    course, _, results, _ = graded
    assert results["memory"].score < FULL, "some hidden tests failed here"
    for name in ("honest", "memory", "names_rebound"):
        feedback = (course / "feedback" / name / PS / f"{PS}.html").read_text()
        assert "HIDDEN TESTS" not in feedback and "reference.l2_penalty" not in feedback, name


@pytest.mark.slow
def test_extra_notebooks_are_named_in_the_summary(graded):
    _, _, results, report = graded
    assert ("not graded: ps1_regularization-Copy1.ipynb (the assignment's notebooks: ps1_regularization.ipynb)"
            in results["copy_only"].review)
    assert "not graded: ps1_regularization-Copy1.ipynb" in report.summary()


@pytest.mark.slow
def test_the_readme_table_is_generated_from_this_suite(graded):
    _, _, results, _ = graded
    if sandbox.bwrap_available() is not None:
        pytest.skip("the README's table was generated with the sandbox")
    generated = table(results)
    out = ROOT / "build" / "tamper_table.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(generated + "\n")
    readme = (ROOT / "README.md").read_text()
    start, end = "<!-- tamper table: generated by tests/test_tamper.py -->\n", "\n<!-- end of tamper table -->"
    current = readme.split(start, 1)[1].split(end, 1)[0] if start in readme else None
    if current != generated:
        pytest.fail(f"the README's tamper table is out of date: paste {out} between its markers")


@pytest.mark.slow
def test_a_failed_regrade_leaves_no_stale_grade(graded, tmp_path):
    """A student graded 27/27 hands in a notebook that kills its kernel: the earlier grade is
    no longer current (not in the CSV nor the gradebook), and it is kept, with its files, in backup/.
    (Last in this module: it changes the course the other tests read.)"""
    course, _, results, _ = graded
    assert results["flood"].score == FULL
    inbox = tmp_path / "inbox"
    (inbox / "flood" / PS).mkdir(parents=True)
    (inbox / "flood" / PS / NOTEBOOK).write_bytes(_json(_first_answer(_solved(), "import os\nos._exit(0)")))
    report = grading.grade(PS, inbox, course, jobs=1, time_limit_s=TIME_LIMIT, log=lambda *_: None)
    result, = report.results
    assert result.failed and result.score is None
    assert any(note.startswith("flood: no new grade, so the earlier one (27/27) was taken out")
               for note in report.notes)
    row = next(r for r in (course / "grades" / f"{PS}.csv").read_text().splitlines() if ",flood," in r)
    assert not row.endswith(",27.0,27.0"), row
    kept, = (course / "backup").glob("gradebook-*/flood")
    assert json.loads((kept / f"{PS}.json").read_text())["score"] == FULL
    assert (kept / "autograded" / NOTEBOOK).exists() and (kept / "feedback" / f"{PS}.html").exists()
    assert not (course / "autograded" / "flood" / PS).exists() and not (course / "feedback" / "flood" / PS).exists()
    earlier, = (course / "backup").glob(f"submitted-*/flood/{PS}/{NOTEBOOK}")
    assert "200_000" in earlier.read_text(), "the earlier submission is kept too"
