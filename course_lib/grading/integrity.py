"""Integrity of a graded submission: the cheats nbgrader does not see.

nbgrader restores test cells a student edited, but it runs the student's code in the same
kernel as the tests, so the code can change what the tests rely on: replace ``numpy.allclose``
or a ``course_lib`` check with one that always agrees, rebind a name the test cells call
(``expect_close = lambda *a, **k: None``), silence tracebacks, rewrite the cells that run after
it (IPython's input transformers, its events), or behave differently when ``NBGRADER_EXECUTION``
says it is being graded. Two defences, used together by ``course grade``:

* ``scan`` reads the student's own code (cells nbgrader does not lock) without running it and
  names every construct that touches grading: assignments to a module's attributes, names the
  locked cells define or import bound again, builtins, IPython's shell and kernel, the grader's
  environment variables, files of the course, the network, dynamic code and ending the process.
  A finding sends the submission to manual review.
* ``guard`` inserts canary cells, marked with a token drawn for each grading run. Each runs its
  program with the real builtins, not the notebook's globals. One before any student code
  records the kernel's state; one after each locked cell records the names it bound (and the
  module attributes the tests reach through them); one before every test cell and one at the
  end put those names back, probe the behaviour of what the tests use (``numpy.allclose`` must
  say 0 ≠ 1, a check must fail on a wrong value...) and print the state again; a last cell must
  fail. ``breaches`` then compares the printed states outside the kernel, by object identity:
  a function, module or class the locked cells bound that was bound again, a builtin a test
  reads shadowed by the student's own, any difference in the shell, its transformers or events,
  a probe that failed, a canary that printed nothing or a last cell that did not fail is a
  breach, and a breached submission earns nothing. Data the locked cells bound and the student
  bound again is put back silently, so the tests see the instructor's values. The canaries also
  remove their token from the kernel's input history (``In``, ``_ih``, ``_i``...), so a later
  cell cannot simply read it there.

A determined student sharing the tests' process can still forge a canary's output; the sandbox
(``grading.sandbox``) keeps the files and the network out of reach, and the scan names the
tools such a forgery needs.
"""
from __future__ import annotations

import ast
import builtins
import copy
import json
import secrets
import threading

MARK = "# course-integrity"
LINE = "course-integrity"
METADATA = "course_integrity"   # a canary cell's metadata: {"course_integrity": {"kind": ..., "where": ...}}

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

# The canary's program. It runs through the real ``builtins.exec`` with globals of its own, so a
# name the student bound in the notebook (``print``, ``isinstance``...) cannot reach it. ``guard``
# puts its parameters first: KIND ("first", "record" or "check"), TOKEN, NAMES ({name: strict}
# for what the locked cell before a "record" canary binds; strict: by import, def or class in a
# cell that is not a test), CHAINS (module attributes the tests use, by their root name), READS
# (the builtins the next test cell reads) and PROBES.
_PROGRAM = r'''
import builtins, json, linecache, os, sys, threading, types
import numpy, numpy.testing
from IPython import get_ipython
from course_lib.grading import checks

shell = get_ipython()
ns = shell.user_ns
type_of = ().__class__.__class__   # the real type(), even if builtins.type was replaced
LIBRARIES = ("matplotlib", "ipykernel", "IPython", "ipywidgets", "comm", "jupyter_client")
SHELL_METHODS = ("showtraceback", "_showtraceback", "showsyntaxerror", "run_cell", "run_cell_async",
                 "_run_cell", "run_code", "run_ast_nodes", "transform_cell", "transform_ast",
                 "should_run_async")
KERNEL_METHODS = ("do_execute", "execute_request", "dispatch_shell", "process_one")
MANAGER_METHODS = ("transform_cell", "do_token_transforms", "do_one_token_transform")
EVENTS_METHODS = ("trigger", "register", "unregister")


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


def holds(probe):
    try:
        return bool(eval(probe, {"numpy": numpy, "checks": checks, "_raises": _raises,
                                 "_assert_false": _assert_false}))
    except Exception:
        return False


def fingerprint(value):
    """Identity of an object; for a function also of its code and defaults (replaced in place)."""
    if type_of(value) is types.FunctionType:
        return [id(value), id(value.__code__), repr(value.__defaults__)[:300], repr(value.__kwdefaults__)[:300]]
    return [id(value)]


def methods(owner, names):
    """The identity of ``owner``'s methods ``names``: replaced on its class, or on itself."""
    return [id(getattr(type_of(owner), name, None)) for name in names] + sorted(
        name for name in vars(owner) if name in names)


def ids(items):
    return [id(item) for item in items]


def added_callbacks():
    """The event callbacks that do not come from a library (matplotlib's inline flush does)."""
    return {event: [id(callback) for callback in callbacks
                    if not str(getattr(callback, "__module__", None) or "").startswith(LIBRARIES)]
            for event, callbacks in sorted(shell.events.callbacks.items())}


def kernel_state():
    """What a cell's execution goes through, and what the tests call, by identity."""
    manager, kernel = shell.input_transformer_manager, getattr(shell, "kernel", None)
    handlers = getattr(kernel, "shell_handlers", {})
    return {
        "shell": [type_of(shell).__qualname__, methods(shell, SHELL_METHODS), id(shell.compile),
                  id(shell.events), methods(shell.events, EVENTS_METHODS), id(shell.displayhook),
                  id(shell.display_pub)],
        "kernel": [methods(kernel, KERNEL_METHODS) if kernel is not None else None,
                   sorted((name, id(handler)) for name, handler in handlers.items())],
        "transformers": [id(manager), methods(manager, MANAGER_METHODS), ids(manager.cleanup_transforms),
                         ids(manager.line_transforms), ids(manager.token_transformers),
                         ids(shell.input_transformers_post), ids(shell.ast_transformers)],
        "events": added_callbacks(),
        "hooks": [getattr(sys.excepthook, "__qualname__", "?"), type_of(sys.stderr).__name__,
                  type_of(sys.stdout).__name__, builtins.print.__module__, type_of(builtins.__import__).__name__,
                  sys.gettrace() is None, sys.getprofile() is None, threading.gettrace() is None,
                  threading.getprofile() is None, ns.get("__builtins__") is builtins],
        "environment": os.environ.get("NBGRADER_EXECUTION"),
        # What the tests call, by identity: a replacement shows even if it returns look-alike values.
        "functions": [fingerprint(f) for f in (numpy.allclose, numpy.isclose, numpy.array_equal,
                      numpy.testing.assert_allclose, numpy.testing.assert_array_equal,
                      numpy.testing.assert_almost_equal, checks.expect_close, checks.expect, checks.expect_shape)],
        # ... and what those checks call in turn (``checks.np`` replaced changes every check).
        "checks": {name: id(value) for name, value in vars(checks).items() if not name.startswith("__")},
        "builtins": sorted(k for k, v in vars(builtins).items() if callable(v)
                           and type_of(v).__name__ not in ("builtin_function_or_method", "type")),
    }


def resolve(root, dotted):
    """The object ``root.a.b`` names, through modules only (attributes of data can change)."""
    value = root
    for part in dotted.split(".")[1:]:
        if type_of(value) is not types.ModuleType:
            return None
        value = getattr(value, part, None)
    return value


def record(store):
    """After a locked cell: keep what it bound, and the module attributes the tests reach from it."""
    recorded = {}
    for name, strict in NAMES.items():
        store["strict"].discard(name)
        if name not in ns:
            store["names"].pop(name, None)
            recorded[name] = None   # deleted: no longer the tests'
            continue
        store["names"][name] = ns[name]
        if strict:
            store["strict"].add(name)
        recorded[name] = fingerprint(ns[name])
    for dotted in CHAINS:
        value = resolve(store["names"].get(dotted.split(".")[0]), dotted)
        if recorded.get(dotted.split(".")[0]) is not None and value is not None:
            recorded[dotted] = fingerprint(value)
    return {"recorded": recorded}


def check(store):
    """Before a test cell: put back what the locked cells bound, then probe and describe the kernel."""
    missing = object()
    rebound = []
    for name, value in store["names"].items():
        if ns.get(name, missing) is not value:
            if name in store["strict"]:   # imported or defined by a locked cell: the tests' tools
                rebound.append(name)
            ns[name] = value
    state = {"probes": {name: holds(probe) for name, probe in PROBES.items()}, **kernel_state(),
             "rebound": sorted(rebound),
             "shadowed": sorted(name for name in READS if name not in store["names"] and callable(ns.get(name))
                                and ns.get(name) is not store["shadows"].get(name, getattr(builtins, name, missing))),
             "names": {name: fingerprint(value) for name, value in store["names"].items()}}
    state["names"].update({dotted: fingerprint(resolve(store["names"].get(dotted.split(".")[0]), dotted))
                           for dotted in CHAINS if dotted.split(".")[0] in store["names"]})
    return state


def forget(text):
    """Remove TOKEN from the kernel's input history, its caches of cell sources, and from this
    cell's execution result once it is stored, so a later cell cannot read it there."""
    hidden = "# (" + "course-integrity canary)"
    history = shell.history_manager
    for inputs in (history.input_hist_parsed, history.input_hist_raw):
        inputs[:] = [hidden if text in entry else entry for entry in inputs]
    for name in ("_i", "_ii", "_iii", "_i00"):
        if text in str(getattr(history, name, "")):
            setattr(history, name, hidden)
    for name in [n for n, v in ns.items() if n.startswith("_i") and type_of(v) is str and text in v]:
        ns[name] = hidden
    history.db_input_cache[:] = [e for e in history.db_input_cache if text not in str(e)]
    for name in [n for n, entry in list(linecache.cache.items()) if text in str(entry[2:3])]:
        del linecache.cache[name]

    def scrub(result):
        info = getattr(result, "info", None)
        for field in ("raw_cell", "transformed_cell"):
            if text in str(getattr(info, field, "")):
                setattr(info, field, hidden)
        shell.events.unregister("post_run_cell", scrub)
    shell.events.register("post_run_cell", scrub)


if KIND == "first":
    # (IPython's own names that shadow builtins, such as its ``open``, are the kernel's, not the student's)
    ns["__course_integrity__"] = {"names": {}, "strict": set(),
                                  "shadows": {name: ns[name] for name in vars(builtins) if name in ns}}
    state = {"probes": {name: holds(probe) for name, probe in PROBES.items()}, **kernel_state(),
             "rebound": [], "shadowed": [], "names": {}}
elif KIND == "record":
    state = record(ns["__course_integrity__"])
else:
    state = check(ns["__course_integrity__"])
print(LINE, TOKEN, json.dumps(state, sort_keys=True))
forget(TOKEN)
del TOKEN   # (these globals may outlive the cell until the garbage collector runs)
'''

_CANARY = '''{mark} {token} {kind}{where}: the grader's check of the kernel, not part of the assignment
import builtins as _course_builtins
_course_builtins.exec({program!r}, {{"__builtins__": _course_builtins, "__name__": "course_integrity"}})
del _course_builtins
'''

_MUST_FAIL = '''{mark} {token} must-fail: this cell must fail; if it does not, the kernel was made to hide errors
raise AssertionError("{line} {token} canary")
'''


# --- what the cells bind and read ---------------------------------------------------------

SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.ListComp, ast.SetComp,
          ast.DictComp, ast.GeneratorExp)


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _student_cells(notebook: dict) -> list[tuple[int, str]]:
    """(index, source) of the code cells the student wrote or may edit: nbgrader's unlocked ones."""
    found = []
    for index, cell in enumerate(notebook.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("locked") or meta.get("grade"):
            continue
        found.append((index, _source(cell)))
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


def _top_level(tree: ast.AST | None):
    """The nodes of a cell that run in the notebook's namespace: not inside a function, class,
    lambda or comprehension (their names are local), but the definitions themselves."""
    pending = list(ast.iter_child_nodes(tree)) if tree is not None else []
    while pending:
        node = pending.pop()
        yield node
        if not isinstance(node, SCOPES):
            pending += ast.iter_child_nodes(node)


def bindings(source: str) -> dict[str, bool]:
    """{name: by a definition} for the global names a cell binds: True for ``import``, ``def``
    and ``class``, False for assignments (``for``, ``with ... as``, ``:=`` and ``except ... as``
    too). Names starting with ``_`` (IPython's own ``_``, ``_1``...) are left out."""
    found: dict[str, bool] = {}
    for node in _top_level(_parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.update({(a.asname or a.name).split(".")[0]: True for a in node.names if a.name != "*"})
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found[node.name] = True
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            found.setdefault(node.id, False)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            found.setdefault(node.name, False)
    return {name: strict for name, strict in found.items() if not name.startswith("_")}


def _chains(source: str) -> set[str]:
    """The dotted names a cell reads (``np.testing.assert_allclose``, ``keras.Model``)."""
    return {_dotted(node) for node in ast.walk(_parse(source) or ast.Module(body=[], type_ignores=[]))
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) and _from_a_name(node)}


def _from_a_name(node: ast.Attribute) -> bool:
    """Whether the attributes start at a plain name (``np.random``, not ``f().x``)."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name)


def _builtins_read(source: str) -> set[str]:
    """The builtins a cell reads by name (``isinstance``, ``len``...)."""
    return {node.id for node in ast.walk(_parse(source) or ast.Module(body=[], type_ignores=[]))
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and hasattr(builtins, node.id)}


# --- the static scan ----------------------------------------------------------------------

NETWORK_MODULES = {"socket", "urllib", "urllib3", "requests", "http", "httpx", "aiohttp", "ftplib", "smtplib",
                   "ssl", "websocket", "websockets"}
DANGEROUS_MODULES = {"ctypes", "gc", "inspect", "importlib", "subprocess", "multiprocessing", "signal",
                     "IPython", "ipykernel", "threading", "_thread", "linecache"}
DYNAMIC_CALLS = {"exec", "eval", "compile", "__import__", "setattr", "delattr", "globals", "vars"}
EXIT_CALLS = {("os", "_exit"), ("sys", "exit"), ("os", "kill"), ("os", "abort")}
GRADING_WORDS = ("NBGRADER", "gradebook", "source/", "autograded", "submitted", ".db", "nbgrader_config",
                 "course-integrity", "course_integrity")
# Names of the kernel that lead to the shell, its history (where canaries ran) or the canaries' record.
KERNEL_NAMES = {"__builtins__", "get_ipython", "__IPYTHON__", "_ih", "In", "__course_integrity__"}


def _scan_source(source: str, modules: set[str], protected: set[str]) -> list[str]:
    tree = _parse(source)
    if tree is None:
        return []
    modules = modules | _imported_names(tree)
    findings = []

    def add(node, text):
        findings.append(f"line {getattr(node, 'lineno', '?')}: {text}")

    rebound: dict[int, set[str]] = {}   # line: names the locked cells define or import, bound there
    for node in _top_level(tree):
        if _bound_by(node) & protected:
            rebound.setdefault(node.lineno, set()).update(_bound_by(node) & protected)
    for line, names in sorted(rebound.items()):
        findings.append(f"line {line}: binds {', '.join(sorted(names))} again (the locked cells define or "
                        "import them for the tests)")
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
        elif isinstance(node, ast.Name) and node.id in KERNEL_NAMES:
            add(node, f"uses {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in KERNEL_NAMES:
            add(node, f"uses {_dotted(node) or node.attr}")
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


def _bound_by(node) -> set[str]:
    """The names one top-level node binds (for the line number of a finding)."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
        return {node.id}
    return {node.name} if isinstance(node, ast.ExceptHandler) and node.name else set()


def _is_test(cell: dict) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _is_locked(cell: dict) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("locked")) and not meta.get("solution")


def _locked_sources(notebook: dict, release: dict | None) -> dict[int, str]:
    """{cell index: source} of the locked cells, as nbgrader will run them: the release's source
    of the cell with the same grade_id where there is one (a student may have edited the copy)."""
    handed_out = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id"): _source(c)
                  for c in (release or {}).get("cells", []) if _is_locked(c)}
    return {index: handed_out.get(cell["metadata"]["nbgrader"].get("grade_id"), _source(cell))
            for index, cell in enumerate(notebook.get("cells", [])) if _is_locked(cell)}


def _protected(notebook: dict, release: dict | None) -> set[str]:
    """The names the locked cells that are not tests import or define: the tests' tools."""
    cells = notebook.get("cells", [])
    return {name for index, source in _locked_sources(notebook, release).items() if not _is_test(cells[index])
            for name, strict in bindings(source).items() if strict}


def scan(notebook: dict, release: dict | None = None) -> list[str]:
    """What the student's own cells do that touches grading, one finding per construct,
    e.g. ``"cell 7, line 2: changes np.allclose"``. An empty list: nothing found. ``release``,
    the notebook as handed out, says what the locked cells are (else the notebook's own)."""
    modules = set()  # imported anywhere, the instructor's locked cells too (``np`` from the setup)
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            modules |= _imported_names(_parse(_source(cell)))
    protected = _protected(notebook, release)
    return [f"cell {index}, {finding}" for index, source in _student_cells(notebook)
            for finding in _scan_source(source, modules, protected)]


# --- canaries -------------------------------------------------------------------------------

def new_token() -> str:
    """A token no submission can guess: canaries print it, so output cannot be prepared."""
    return secrets.token_hex(8)


def _canary(token: str, kind: str, where: str = "", names=None, chains=(), reads=()) -> dict:
    """A canary cell of ``kind`` ("first", "record" or "check"), running ``_PROGRAM``."""
    parameters = {"KIND": kind, "TOKEN": token, "NAMES": dict(names or {}), "CHAINS": sorted(chains),
                  "READS": sorted(reads), "PROBES": PROBES, "LINE": LINE}
    program = "".join(f"{key} = {value!r}\n" for key, value in parameters.items()) + _PROGRAM
    source = _CANARY.format(mark=MARK, token=token, kind=kind, where=f" {where}" if where else "",
                            program=program)
    return {"cell_type": "code", "execution_count": None, "outputs": [], "source": source,
            "metadata": {METADATA: {"kind": kind, "where": where}}}


def guard(notebook: dict, token: str, release: dict | None = None) -> dict:
    """A copy of ``notebook`` with canary cells: first, after every locked cell (recording
    what it binds), before every test cell and last (checking), followed by a cell that must
    fail. ``release`` gives the locked cells' sources, as for ``scan``."""
    guarded = copy.deepcopy(notebook)
    locked = _locked_sources(guarded, release)
    chains = set().union(*(_chains(source) for index, source in locked.items()
                           if _is_test(guarded["cells"][index])))
    cells = [_canary(token, "first")]
    for index, cell in enumerate(guarded.get("cells", [])):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        grade_id = meta.get("grade_id", f"cell {index}")
        if cell.get("cell_type") == "code" and meta.get("grade"):
            reads = _builtins_read(locked.get(index, _source(cell)))
            cells.append(_canary(token, "check", f"before {grade_id}", chains=chains, reads=reads))
        cells.append(cell)
        if index in locked:
            names = {name: strict and not _is_test(cell) for name, strict in bindings(locked[index]).items()}
            cells.append(_canary(token, "record", f"after {grade_id}", names=names,
                                 chains={c for c in chains if c.split(".")[0] in names}))
    cells += [_canary(token, "check", "at the end", chains=chains),
              {**_canary(token, "must-fail"), "source": _MUST_FAIL.format(mark=MARK, token=token, line=LINE)}]
    if (guarded.get("nbformat", 4), guarded.get("nbformat_minor", 0)) >= (4, 5):   # cells need ids
        for number, cell in enumerate(c for c in cells if METADATA in c.get("metadata", {})):
            cell["id"] = f"course-integrity-{number}"
    guarded["cells"] = cells
    return guarded


def is_canary(cell: dict, token: str) -> bool:
    """Whether ``cell`` is one of this run's canaries (a student's cell cannot know the token)."""
    return _source(cell).startswith(f"{MARK} {token} ") and METADATA in cell.get("metadata", {})


def strip_guards(notebook: dict, token: str) -> dict:
    """A copy of ``notebook`` without the canary cells (for feedback the student reads)."""
    stripped = copy.deepcopy(notebook)
    stripped["cells"] = [cell for cell in stripped.get("cells", []) if not is_canary(cell, token)]
    return stripped


def _text(cell: dict) -> str:
    parts = []
    for output in cell.get("outputs", []):
        text = output.get("text", "")
        parts.append("".join(text) if isinstance(text, list) else text)
    return "".join(parts)


def _printed(cell: dict, token: str) -> dict | str:
    """The state a canary printed, or why there is none to read."""
    if any(output.get("output_type") == "error" for output in cell.get("outputs", [])):
        return "the check itself failed"
    prefix = f"{LINE} {token} "
    lines = [line for line in _text(cell).splitlines() if line.startswith(prefix)]
    if len(lines) != 1:
        return "printed no state (output hidden or rewritten)"
    try:
        state = json.loads(lines[0][len(prefix):])
    except ValueError:
        state = None
    return state if isinstance(state, dict) else "printed an unreadable state (output rewritten)"


def _compare(state: dict, baseline: dict, recorded: dict) -> list[str]:
    """What one check's state shows: probes that failed, tools bound again, changes since the start."""
    problems = []
    failed = sorted(name for name, ok in state.get("probes", {}).items() if not ok)
    if failed:
        problems.append(f"{', '.join(failed)} no longer behave{'s' if len(failed) == 1 else ''} as the tests expect")
    if state.get("rebound"):
        problems.append(f"{', '.join(state['rebound'])} (defined or imported by the locked cells) bound again")
    if state.get("shadowed"):
        problems.append(f"the builtins {', '.join(state['shadowed'])} shadowed by the student's own")
    changed = sorted(name for name, value in recorded.items() if state.get("names", {}).get(name) != value)
    if changed:
        problems.append(f"{', '.join(changed)} replaced since the locked cells ran")
    kernel = sorted(key for key in baseline if key not in ("probes", "rebound", "shadowed", "names")
                    and state.get(key) != baseline[key])
    if kernel:
        problems.append(f"the kernel's {', '.join(kernel)} changed since the start")
    return problems


def breaches(executed: dict, token: str) -> list[str]:
    """What the canaries of an executed, guarded notebook show was tampered with; [] if nothing."""
    canaries = [cell for cell in executed.get("cells", []) if is_canary(cell, token)]
    if not canaries:
        return ["the canary cells are missing"]
    *runs, must_fail = canaries
    found, baseline, recorded = {}, None, {}   # {problem: where it showed first, and how often}
    for cell in runs:
        meta = cell["metadata"][METADATA] if isinstance(cell["metadata"][METADATA], dict) else {}
        kind = meta.get("kind", "check")
        where = "before any student code" if kind == "first" else meta.get("where") or "a canary"
        state = _printed(cell, token)
        if isinstance(state, str):
            problems = [state]
        elif kind == "record":
            recorded.update(state.get("recorded", {}))
            recorded = {name: value for name, value in recorded.items() if value is not None}
            problems = []
        else:
            baseline = state if baseline is None else baseline
            problems = _compare(state, baseline, recorded)
        for problem in problems:
            found.setdefault(problem, [where, 0])[1] += 1
    problems = [f"{where}: {problem}" + (f" (and at {count - 1} later canaries)" if count > 1 else "")
                for problem, (where, count) in found.items()]
    errors = [output for output in must_fail.get("outputs", []) if output.get("output_type") == "error"]
    if not errors:
        problems.append("the cell that must fail did not fail: errors are being hidden")
    return problems
