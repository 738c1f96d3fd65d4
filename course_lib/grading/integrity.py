"""Integrity of a graded submission: the cheats nbgrader does not see.

nbgrader restores test cells a student edited, but it runs the student's code in the same
kernel as the tests, so the code can change what the tests rely on: replace ``numpy.allclose``
or a ``course_lib`` check with one that always agrees, silence tracebacks, rewrite the cells
that run after it, or behave differently when ``NBGRADER_EXECUTION`` says it is being graded.
Two defences, used together by ``course grade``:

* ``scan`` reads the student's own code (cells nbgrader does not lock) without running it and
  names every construct that touches grading: assignments to a module's attributes, builtins,
  IPython's shell, the grader's environment variables, files of the course, the network,
  dynamic code and ending the process. A finding sends the submission to manual review.
* ``guard`` inserts canary cells, marked with a token drawn for each grading run: one before
  any student code records the kernel's state; one before every test cell and one at the end
  probe the behaviour of what the tests use (``numpy.allclose`` must say 0 ≠ 1, a check must
  fail on a wrong value...) and print the state again; a last cell must fail. ``breaches``
  then compares the printed states outside the kernel: any difference, a probe that failed,
  a canary that printed nothing or a last cell that did not fail is a breach, and a breached
  submission earns nothing.

A determined student sharing the tests' process can still forge a canary's output; the sandbox
(``grading.sandbox``) keeps the files and the network out of reach, and the scan names the
tools such a forgery needs.
"""
from __future__ import annotations

import ast
import copy
import json
import secrets
import threading

MARK = "# course-integrity"
LINE = "course-integrity"

# Probes that hold in a healthy kernel; each is a Python expression evaluated in the canary.
PROBES = {
    "numpy.allclose": "not numpy.allclose(0.0, 1.0) and numpy.allclose(1.0, 1.0)",
    "numpy.isclose": "not bool(numpy.isclose(0.0, 1.0))",
    "numpy.array_equal": "not numpy.array_equal([0], [1])",
    "numpy.testing.assert_allclose": "_raises(numpy.testing.assert_allclose, 0.0, 1.0)",
    "numpy.testing.assert_array_equal": "_raises(numpy.testing.assert_array_equal, [0], [1])",
    "numpy.testing.assert_almost_equal": "_raises(numpy.testing.assert_almost_equal, 0.0, 1.0)",
    "course_lib expect_close": "_raises(checks.expect_close, 'x', 0.0, 1.0)",
    "course_lib expect": "_raises(checks.expect, False, 'x')",
    "course_lib expect_shape": "_raises(checks.expect_shape, 'x', [0.0], (2,))",
    "builtins": ("abs(-2) == 2 and len([1, 2, 3]) == 3 and not all([True, False]) and not any([False])"
                 " and not isinstance(1, str) and round(1.6) == 2 and sum([1, 2]) == 3 and max(1, 2) == 2"),
    "assert statement": "_raises(_assert_false)",
}

_CANARY = '''{mark} {token}: the grader's check of the kernel, not part of the assignment
import builtins, json, os, sys
import numpy, numpy.testing
from course_lib.grading import checks

def _raises(function, *args):
    try:
        function(*args)
    except AssertionError:
        return True
    except Exception:
        return False
    return False

def _assert_false():
    assert False

def _holds(probe):
    try:
        return bool(eval(probe))
    except Exception:
        return False

_shell = get_ipython()
_type = ().__class__.__class__  # the real type(), even if builtins.type was replaced

def _identity(function):
    code = getattr(function, "__code__", None)
    return [_type(function).__name__, getattr(function, "__module__", None), getattr(function, "__qualname__", None),
            code.co_code.hex() if code is not None else None]

_SHELL_METHODS = ("showtraceback", "run_cell", "run_cell_async", "run_code", "showsyntaxerror")
_state = {{
    "probes": {{name: _holds(probe) for name, probe in {probes!r}.items()}},
    "shell": [type(_shell).__qualname__,
              sorted(k for k in vars(_shell) if k in _SHELL_METHODS),  # replaced on the instance
              [getattr(getattr(type(_shell), k, None), "__qualname__", "?") for k in _SHELL_METHODS]],
    "transformers": [len(_shell.input_transformers_cleanup), len(_shell.input_transformers_post),
                     len(_shell.ast_transformers)],
    "hooks": [getattr(sys.excepthook, "__qualname__", "?"), type(sys.stderr).__name__,
              type(sys.stdout).__name__, builtins.print.__module__, type(builtins.__import__).__name__],
    "environment": os.environ.get("NBGRADER_EXECUTION"),
    # What the tests call, by identity: a replacement shows even if it returns look-alike values.
    "functions": [_identity(f) for f in (numpy.allclose, numpy.isclose, numpy.array_equal,
                  numpy.testing.assert_allclose, numpy.testing.assert_array_equal,
                  numpy.testing.assert_almost_equal, checks.expect_close, checks.expect, checks.expect_shape)],
    "builtins": sorted(k for k, v in vars(builtins).items() if callable(v)
                       and _type(v).__name__ not in ("builtin_function_or_method", "type")),
}}
print("{line}", "{token}", json.dumps(_state, sort_keys=True))
del _shell, _state, _raises, _assert_false, _holds, _SHELL_METHODS, _type, _identity
'''

_MUST_FAIL = '''{mark} {token}: this cell must fail; if it does not, the kernel was made to hide errors
raise AssertionError("{line} {token} canary")
'''


# --- the static scan ----------------------------------------------------------------------

NETWORK_MODULES = {"socket", "urllib", "urllib3", "requests", "http", "httpx", "aiohttp", "ftplib", "smtplib",
                   "ssl", "websocket", "websockets"}
DANGEROUS_MODULES = {"ctypes", "gc", "inspect", "importlib", "subprocess", "multiprocessing", "signal"}
DYNAMIC_CALLS = {"exec", "eval", "compile", "__import__", "setattr", "delattr", "globals", "vars"}
EXIT_CALLS = {("os", "_exit"), ("sys", "exit"), ("os", "kill"), ("os", "abort")}
GRADING_WORDS = ("NBGRADER", "gradebook", "source/", "autograded", "submitted", ".db", "nbgrader_config")


def _student_cells(notebook: dict) -> list[tuple[int, str]]:
    """(index, source) of the code cells the student wrote or may edit: nbgrader's unlocked ones."""
    found = []
    for index, cell in enumerate(notebook.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("locked") or meta.get("grade"):
            continue
        source = cell.get("source", "")
        found.append((index, "".join(source) if isinstance(source, list) else source))
    return found


def _root_name(node) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.value if not isinstance(node, ast.Call) else node.func
    return node.id if isinstance(node, ast.Name) else None


def _dotted(node) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


# CPython 3.11 keeps ast.parse's recursion count in one place for all threads: two threads
# parsing at once (course grade stages submissions from several) can fail with "SystemError: AST
# constructor recursion depth mismatch" (CPython issue gh-106905). One parse at a time.
_PARSING = threading.Lock()


def _parse(source: str) -> ast.AST | None:
    # IPython magics and shell escapes are not Python: blank them out, keeping line numbers.
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        with _PARSING:
            return ast.parse("\n".join(lines))
    except SyntaxError:
        return None  # a syntax error costs the student the cell's points; it is not tampering


def _imported_names(tree: ast.AST | None) -> set[str]:
    """The names an ``import`` binds to a module (``np`` for ``import numpy as np``), and the
    modules ``from ... import`` reads from."""
    names: set[str] = set()
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.Import):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
            names |= {alias.asname or alias.name for alias in node.names}  # may be modules too
    return names


def _scan_source(source: str, modules: set[str]) -> list[str]:
    tree = _parse(source)
    if tree is None:
        return []
    modules = modules | _imported_names(tree)
    findings = []

    def add(node, text):
        findings.append(f"line {getattr(node, 'lineno', '?')}: {text}")

    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                if top in NETWORK_MODULES:
                    add(node, f"imports {name} (network)")
                elif top in DANGEROUS_MODULES or top == "builtins":
                    add(node, f"imports {name}")
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                for part in ast.walk(target):
                    if isinstance(part, ast.Attribute) and _root_name(part) in modules | {"builtins", "__builtins__"}:
                        add(node, f"changes {_dotted(part) or 'a module attribute'}")
                        break
        elif isinstance(node, ast.Name) and node.id in ("__builtins__", "get_ipython", "__IPYTHON__"):
            add(node, f"uses {node.id}")
        elif isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name in DYNAMIC_CALLS:
                add(node, f"calls {name}() (dynamic code or attributes)")
            elif name in ("exit", "quit"):
                add(node, f"calls {name}() (ends the kernel)")
            elif isinstance(node.func, ast.Attribute) and (_root_name(node.func), node.func.attr) in EXIT_CALLS:
                add(node, f"calls {_dotted(node.func)}() (ends the kernel)")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            for word in GRADING_WORDS:
                if word.lower() in node.value.lower():
                    add(node, f"mentions {word!r} in a string")
                    break
    return findings


def scan(notebook: dict) -> list[str]:
    """What the student's own cells do that touches grading, one finding per construct,
    e.g. ``"cell 7, line 2: changes np.allclose"``. An empty list: nothing found."""
    modules = set()  # imported anywhere, the instructor's locked cells too (``np`` from the setup)
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            source = cell.get("source", "")
            modules |= _imported_names(_parse("".join(source) if isinstance(source, list) else source))
    return [f"cell {index}, {finding}" for index, source in _student_cells(notebook)
            for finding in _scan_source(source, modules)]


# --- canaries -------------------------------------------------------------------------------

def new_token() -> str:
    """A token no submission can guess: canaries print it, so output cannot be prepared."""
    return secrets.token_hex(8)


def _code_cell(source: str) -> dict:
    return {"cell_type": "code", "execution_count": None, "metadata": {"course_integrity": True},
            "outputs": [], "source": source}


def guard(notebook: dict, token: str) -> dict:
    """A copy of ``notebook`` with canary cells: first, before every test cell, and last,
    followed by a cell that must fail."""
    canary = _CANARY.format(mark=MARK, token=token, line=LINE, probes=PROBES)
    guarded = copy.deepcopy(notebook)
    cells = [_code_cell(canary)]
    for cell in guarded.get("cells", []):
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade") and cell.get("cell_type") == "code":
            cells.append(_code_cell(canary))
        cells.append(cell)
    cells += [_code_cell(canary), _code_cell(_MUST_FAIL.format(mark=MARK, token=token, line=LINE))]
    guarded["cells"] = cells
    return guarded


def is_canary(cell: dict) -> bool:
    source = cell.get("source", "")
    return "".join(source).startswith(MARK) if isinstance(source, list) else source.startswith(MARK)


def strip_guards(notebook: dict) -> dict:
    """A copy of ``notebook`` without the canary cells (for feedback the student reads)."""
    stripped = copy.deepcopy(notebook)
    stripped["cells"] = [cell for cell in stripped.get("cells", []) if not is_canary(cell)]
    return stripped


def _text(cell: dict) -> str:
    parts = []
    for output in cell.get("outputs", []):
        text = output.get("text", "")
        parts.append("".join(text) if isinstance(text, list) else text)
    return "".join(parts)


def breaches(executed: dict, token: str) -> list[str]:
    """What the canaries of an executed, guarded notebook show was tampered with; [] if nothing."""
    canaries = [cell for cell in executed.get("cells", []) if is_canary(cell)]
    if not canaries:
        return ["the canary cells are missing"]
    *checks, must_fail = canaries
    problems, baseline = [], None
    for number, cell in enumerate(checks):
        where = "before any student code" if number == 0 else f"canary {number}"
        if any(output.get("output_type") == "error" for output in cell.get("outputs", [])):
            problems.append(f"{where}: the check itself failed")
            continue
        prefix = f"{LINE} {token} "
        lines = [line for line in _text(cell).splitlines() if line.startswith(prefix)]
        if len(lines) != 1:
            problems.append(f"{where}: printed no state (output hidden or rewritten)")
            continue
        state = json.loads(lines[0][len(prefix):])
        failed = [name for name, ok in state.pop("probes").items() if not ok]
        if failed:
            problems.append(f"{where}: {', '.join(failed)} no longer behave{'s' if len(failed) == 1 else ''} "
                            "as the tests expect")
        if baseline is None:
            baseline = state
        elif state != baseline:
            changed = sorted(key for key in state if state[key] != baseline.get(key))
            problems.append(f"{where}: the kernel's {', '.join(changed)} changed since the start")
    errors = [output for output in must_fail.get("outputs", []) if output.get("output_type") == "error"]
    if not errors:
        problems.append("the cell that must fail did not fail: errors are being hidden")
    return list(dict.fromkeys(problems))
