"""End to end in a real browser: `course lab` on a copy of the course, driven in headless Chromium.

1. ``notebooks/02_dropout.ipynb``: Run > Run All Cells; no cell errors, matplotlib figures render,
   and the dropout explorer renders and answers its "keep p" slider (moved with the keyboard).
2. ``release/ps2_architectures``, the fastest assignment: nbgrader's Validate button (the
   ``@jupyter/nbgrader`` JupyterLab extension) fails the blank notebook, and passes it once the
   solutions from ``source/`` are pasted into its answer cells (through the notebook model in the
   page, as typing would); Validate saves the notebook and grades what it saved.

JupyterLab serves a temporary copy of the course (nothing in the repository is written), on a free
port of 127.0.0.1 with a random token, in the `ci` profile; the fixture shuts it down and kills its
process group, and its kernels, at the end. Screenshots go to ``build/browser/`` (also one
``failure_*.png`` per failed step), with JupyterLab's log and the time of each step.

Needs Chromium (Debian: ``apt-get install chromium``) and Playwright (``pip install playwright``),
which drives the system's Chromium: no browser download. Without them the test skips, unless
``COURSE_REQUIRE_BROWSER=1`` (set by CI), where it fails.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pytest

from course_lib import cli

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "build" / "browser"
LECTURE = "notebooks/02_dropout.ipynb"
ASSIGNMENT = "ps2_architectures"  # the fastest to validate: no training
RELEASED = f"release/{ASSIGNMENT}/{ASSIGNMENT}.ipynb"
SOLVED = f"source/{ASSIGNMENT}/{ASSIGNMENT}.ipynb"

# Generous but bounded waits (milliseconds), for a loaded 2-core machine.
START_S = 180           # JupyterLab answering its REST API
PAGE_MS = 180_000       # JupyterLab's page loaded, the notebook open and its kernel idle
RUN_ALL_MS = 480_000    # every cell of the lecture notebook executed (about 40 s on a quiet machine)
WIDGET_MS = 60_000      # the explorer answering a slider change
VALIDATE_MS = 480_000   # nbgrader executing the whole assignment (per cell limit: 300 s)

TIMINGS: dict[str, float] = {}


# --- what the test needs ------------------------------------------------------------------------

def _chromium() -> str | None:
    """COURSE_CHROMIUM when set (and then only it), else the system's Chromium."""
    chosen = os.environ.get("COURSE_CHROMIUM")
    candidates = [chosen] if chosen else [shutil.which("chromium"), "/usr/bin/chromium", shutil.which("chromium-browser")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    """The system Chromium's path; skip loudly (or, with COURSE_REQUIRE_BROWSER=1, fail) when the
    browser, Playwright or JupyterLab and nbgrader are missing."""
    path = _chromium()
    missing = []
    if os.name != "posix":
        missing.append("a POSIX system (Linux or macOS) to start and stop JupyterLab's process group")
    if path is None:
        missing.append("Chromium (Debian/Ubuntu: `sudo apt-get install chromium`; or set COURSE_CHROMIUM "
                       "to a Chromium or Chrome executable)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("Playwright for Python (`pip install playwright`, or `pip install -e \".[test]\"`; "
                       "it drives the system Chromium, so do not run `playwright install`)")
    for module, package in (("jupyterlab", "jupyterlab"), ("nbgrader", "nbgrader")):
        if importlib.util.find_spec(module) is None:
            missing.append(f"{package} (`pip install -e \".[lab]\"`)")
    if missing:
        message = "the JupyterLab browser test needs " + "; and ".join(missing)
        if os.environ.get("COURSE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"COURSE_REQUIRE_BROWSER=1 but {message}", pytrace=False)
        warnings.warn(f"BROWSER TEST SKIPPED: {message}", UserWarning, stacklevel=1)
        pytest.skip(f"BROWSER TEST SKIPPED: {message}")
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A temporary course folder: the lecture notebook (outputs cleared), the blank assignment and
    nbgrader's configuration. The repository's own files are only read."""
    import nbformat

    folder = tmp_path_factory.mktemp("browser_course")
    shutil.copy2(ROOT / "nbgrader_config.py", folder / "nbgrader_config.py")
    notebook = nbformat.read(ROOT / LECTURE, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    (folder / LECTURE).parent.mkdir(parents=True)
    nbformat.write(notebook, folder / LECTURE)
    shutil.copytree(ROOT / "release" / ASSIGNMENT, folder / "release" / ASSIGNMENT)
    before = {name: _digest(ROOT / name) for name in (LECTURE, RELEASED, SOLVED)}
    yield folder
    changed = [name for name, digest in before.items() if _digest(ROOT / name) != digest]
    assert not changed, f"the browser test must not write into the repository, but these changed: {changed}"


# --- JupyterLab -----------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, start time) of every process below ``pid``; kernels run in sessions of their own,
    so killing the server's process group alone would not reach them."""
    children: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    if not Path("/proc").is_dir():  # not Linux: JupyterLab's shutdown stops its kernels itself
        return []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        starts[int(entry.name)] = fields[19]
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append((child, starts[child]))
            stack.append(child)
    return found


def _still_running(pid: int, start: str) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[19] == start
    except OSError:
        return False


class Lab:
    def __init__(self, process: subprocess.Popen, url: str, token: str, log: Path):
        self.process, self.url, self.token, self.log = process, url, token, log

    def request(self, path: str, method: str = "GET", timeout: float = 5):
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def page_url(self, workspace: str, path: str) -> str:
        return f"{self.url}/lab/workspaces/{workspace}/tree/{path}?token={self.token}"


def _settings(folder: Path) -> None:
    """User settings for a quiet, deterministic JupyterLab: no news prompt, every cell in the DOM."""
    for plugin, values in {
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "notebook-extension/tracker": {"windowingMode": "none"},
    }.items():
        path = folder / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def _start_lab(course: Path, state: Path) -> Lab:
    port, token = _free_port(), secrets.token_hex(16)
    _settings(state / "settings")
    env = {**os.environ,
           "COURSE_ROOT": str(course), "COURSE_PROFILE": "ci", "TF_CPP_MIN_LOG_LEVEL": "2",
           # Private Jupyter folders: no user configuration, kernels or workspaces leak in.
           "JUPYTER_CONFIG_DIR": str(state / "config"), "JUPYTER_DATA_DIR": str(state / "data"),
           "JUPYTER_RUNTIME_DIR": str(state / "runtime"), "IPYTHONDIR": str(state / "ipython"),
           "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces")}
    env.pop("MPLBACKEND", None)  # the tests' Agg would keep the kernel from drawing figures inline
    # `course lab`, as the README has students start the course; the options go to JupyterLab.
    command = [sys.executable, "-m", "course_lib.cli", "lab",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False",
               "--LabApp.expose_app_in_browser=True"]
    log = state / "jupyterlab.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=course, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    return Lab(process, f"http://127.0.0.1:{port}", token, log)


def _wait_ready(lab: Lab) -> bool:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if lab.process.poll() is not None:
            return False
        if _responds(lab):
            return True
        time.sleep(0.5)
    return False


def _responds(lab: Lab) -> bool:
    try:
        return lab.request("/api/status")[0] == 200
    except (OSError, urllib.error.URLError):
        return False


def _stop_lab(lab: Lab) -> None:
    """Shut JupyterLab down (its kernels with it), then make sure: SIGTERM, SIGKILL."""
    below = _descendants(lab.process.pid)
    with contextlib.suppress(OSError, urllib.error.URLError):
        lab.request("/api/shutdown", method="POST")
    try:
        lab.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        if lab.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(lab.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                lab.process.wait(timeout=grace)
    for pid, start in below:  # kernels, in sessions of their own
        if _still_running(pid, start):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def lab(chromium, course, tmp_path_factory):
    started = time.perf_counter()
    state = tmp_path_factory.mktemp("jupyter_state")
    for old in ARTIFACTS.glob("failure_*.png"):  # what failed in an earlier run
        old.unlink()
    server = None
    try:
        for attempt in range(3):  # retried only if it exits at once: its port, free a moment ago, was taken
            server = _start_lab(course, state)
            if _wait_ready(server):
                break
            exited = server.process.poll() is not None
            _stop_lab(server)
            if not exited:
                break
        else:
            exited = True
        if server.process.poll() is not None or not _responds(server):
            pytest.fail(f"`course lab` did not start JupyterLab within {START_S} s ({attempt + 1} tries; "
                        f"{'it exited' if exited else 'it did not answer'}); its log ends:\n{server.log_tail()}",
                        pytrace=False)
        TIMINGS["start JupyterLab"] = time.perf_counter() - started
        yield server
    finally:
        if server is not None:
            _stop_lab(server)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                shutil.copy(server.log, ARTIFACTS / "jupyterlab.log")
        TIMINGS["total (module)"] = time.perf_counter() - started
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "timings.txt").write_text("".join(f"{name:<46}{seconds:7.1f} s\n" for name, seconds in TIMINGS.items()))


# --- the browser --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    started = time.perf_counter()
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium, headless=True,
                                              args=["--disable-dev-shm-usage"])
        TIMINGS["start Chromium"] = time.perf_counter() - started
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture(scope="module")
def page(browser, lab):
    """One page for the module: loading JupyterLab costs 10-25 s on a loaded machine, so the second
    test opens its notebook in the page the first one left (after a failure, in a fresh load)."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.errors, page.loaded = [], False
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()


@contextlib.contextmanager
def step(page, lab, name: str):
    """Time a step; when it fails, save a screenshot and say where, with the end of JupyterLab's log."""
    started = time.perf_counter()
    try:
        yield
    except Exception as error:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / f"failure_{re.sub(r'[^a-z0-9]+', '_', name.lower()).strip('_')}.png"
        with contextlib.suppress(Exception):
            page.screenshot(path=str(shot))
        page.loaded = False  # the next test starts from a fresh load of JupyterLab
        errors = "\n".join(page.errors[-5:]) or "none"
        raise AssertionError(f"browser step '{name}' failed: {error}\n(screenshot: {shot}; page errors: {errors})\n"
                             f"JupyterLab's log ends:\n{lab.log_tail(25)}") from error
    finally:
        TIMINGS[name] = time.perf_counter() - started


def open_notebook(page, lab, path: str) -> None:
    """Open ``path`` in JupyterLab (loading JupyterLab, in a fresh workspace, if the page has not);
    wait until the notebook is current, read and its kernel idle."""
    if page.loaded:
        page.evaluate("async path => { await window.jupyterapp.commands.execute('docmanager:open', {path}); }", path)
    else:
        page.goto(lab.page_url(f"test-{secrets.token_hex(4)}", path))
    page.wait_for_function(
        """path => { const app = window.jupyterapp; const panel = app && app.shell.currentWidget;
            const kernel = panel && panel.sessionContext && panel.sessionContext.session
                           && panel.sessionContext.session.kernel;
            return !!(panel && panel.context && panel.context.path === path && panel.context.isReady
                      && panel.content.widgets.length > 0 && kernel && kernel.status === 'idle'); }""",
        arg=path, timeout=PAGE_MS)
    page.loaded = True


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path


# --- 1. the lecture notebook --------------------------------------------------------------------

CELL_STATE = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    const cells = Array.from(panel.content.model.cells).map((cell, index) => ({cell, index}))
        .filter(({cell}) => cell.type === 'code');
    const errors = [];
    for (const {cell, index} of cells) {
        for (const output of cell.outputs.toJSON()) {
            if (output.output_type === 'error') errors.push({index, ename: output.ename, evalue: output.evalue});
        }
    }
    const prompts = Array.from(panel.content.node.querySelectorAll('.jp-CodeCell .jp-InputPrompt'));
    return {
        code: cells.length,
        executed: cells.filter(({cell}) => cell.executionCount !== null).length,
        running: prompts.filter(prompt => prompt.textContent.includes('*')).length,
        errors,
    };
}"""


# Figures: PNG outputs in the model (the explorer's own PNG fallback excluded: it carries a widget
# view too), and how many of the page's output images the browser has decoded.
FIGURES = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    let outputs = 0;
    for (const cell of panel.content.model.cells) {
        if (cell.type !== 'code') continue;
        for (const output of cell.outputs.toJSON()) {
            const data = output.data || {};
            if (data['image/png'] && !data['application/vnd.jupyter.widget-view+json']) outputs++;
        }
    }
    const images = Array.from(panel.content.node.querySelectorAll('.jp-OutputArea-output[data-mime-type="image/png"] img'))
        .map(img => ({complete: img.complete, width: img.naturalWidth, height: img.naturalHeight}));
    return {outputs, images, drawn: images.filter(i => i.complete && i.width > 100 && i.height > 100).length};
}"""


def test_lecture_notebook_runs_and_its_widget_responds(page, lab):
    with step(page, lab, "open the lecture notebook"):
        open_notebook(page, lab, LECTURE)
        state = page.evaluate(CELL_STATE)
        assert state["code"] > 0 and state["executed"] == 0, f"expected a fresh notebook, found {state}"

    with step(page, lab, "Run All Cells"):
        page.locator("#jp-MainMenu .lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()
        # Finished: every code cell has run, or one errored and the queue was cleared.
        try:
            page.wait_for_function(f"""() => {{ const s = ({CELL_STATE})();
                return s.running === 0 && (s.executed === s.code || s.errors.length > 0); }}""",
                                   timeout=RUN_ALL_MS, polling=500)
        except Exception as error:
            raise AssertionError(f"Run All Cells did not finish within {RUN_ALL_MS // 1000} s: "
                                 f"{page.evaluate(CELL_STATE)}") from error
        state = page.evaluate(CELL_STATE)
        assert not state["errors"], "cells raised errors in JupyterLab: " + "; ".join(
            f"cell {e['index']}: {e['ename']}: {e['evalue']}" for e in state["errors"])
        assert state["executed"] == state["code"], f"not every code cell ran: {state}"

    if cli.can_encrypt_kernels():  # `course lab` gives kernels CurveZMQ keys: ipykernel has nothing to warn of
        assert "without encryption" not in lab.log.read_text(errors="replace"), lab.log_tail()

    with step(page, lab, "matplotlib figures"):
        figures = page.evaluate(FIGURES)
        assert figures["drawn"] >= 1, (f"no matplotlib figure rendered in the notebook: {figures['outputs']} "
                                       f"image outputs in the notebook model, images in the page: {figures['images']}")

    with step(page, lab, "the dropout explorer responds to its slider"):
        slider = page.locator(".jupyter-widgets.widget-slider",
                              has=page.locator(".widget-label", has_text="keep p"))
        readout = page.locator(".jupyter-widgets.widget-html", has_text="kept")
        picture = page.locator(".jupyter-widgets img.widget-image")
        assert slider.count() == 1, (f"expected one 'keep p' slider (the dropout explorer rendered by the "
                                     f"ipywidgets manager); found {slider.count()}")
        readout.wait_for(timeout=WIDGET_MS)
        handle = slider.locator(".noUi-handle")
        before = handle.get_attribute("aria-valuenow")
        text_before, image_before = readout.inner_text(), picture.first.get_attribute("src")
        assert f"p = {float(before):.2f}" in text_before, f"readout {text_before!r} does not show p = {before}"
        handle.scroll_into_view_if_needed()
        handle.focus()
        for _ in range(6):
            page.keyboard.press("PageUp")
        page.wait_for_function(
            """([handle, before]) => handle.getAttribute('aria-valuenow') !== before""",
            arg=[handle.element_handle(), before], timeout=WIDGET_MS)
        after = float(handle.get_attribute("aria-valuenow"))
        assert after > float(before), f"the keyboard moved 'keep p' from {before} to {after}, expected up"
        expected = f"p = {after:.2f}"
        try:
            page.wait_for_function(
                """([expected, image]) => {
                    const text = Array.from(document.querySelectorAll('.jupyter-widgets.widget-html'))
                        .map(node => node.textContent).find(text => text.includes('kept')) || '';
                    const img = document.querySelector('.jupyter-widgets img.widget-image');
                    const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
                    // The readout and then the picture are set in one update: once the readout shows
                    // the slider's last value and the kernel is idle, the last picture has come too.
                    return text.includes(expected) && kernel.status === 'idle' && img && img.complete
                           && img.getAttribute('src') !== image; }""",
                arg=[expected, image_before], timeout=WIDGET_MS)
        except Exception as error:
            raise AssertionError(f"after moving 'keep p' from {before} to {after}, the readout still says "
                                 f"{readout.inner_text()!r} (expected {expected!r}) or the picture did not "
                                 f"change: the kernel did not answer the slider") from error
        page.evaluate("""() => new Promise(done => {
            document.querySelector('.jupyter-widgets.widget-slider').closest('.jp-Cell').scrollIntoView({block: 'start'});
            requestAnimationFrame(() => requestAnimationFrame(done)); })""")  # scrolled and painted
        screenshot(page, "jupyterlab_dropout.png")


# --- 2. nbgrader's Validate on an assignment ----------------------------------------------------

def _solutions() -> dict[str, str]:
    """The answer of every solution cell of the instructor's notebook, without nbgrader's markers."""
    import nbformat

    answers = {}
    for cell in nbformat.read(ROOT / SOLVED, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution"):
            lines = [line for line in cell.source.splitlines()
                     if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")]
            answers[meta["grade_id"]] = "\n".join(lines)
    return answers


def validate(page) -> tuple[str, str]:
    """Click Validate in the notebook's toolbar; return the result dialog's class and text, and close it."""
    button = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-NotebookPanel-toolbar .validate-button")
    assert button.count() == 1, ("no Validate button in the notebook toolbar: is nbgrader's JupyterLab "
                                 "extension enabled? (`jupyter labextension list` should show @jupyter/nbgrader)")
    button.click()
    message = page.locator(".jp-Dialog #validation-message")
    message.wait_for(timeout=VALIDATE_MS)
    result = (message.get_attribute("class") or "", message.inner_text())
    return result


def close_dialog(page) -> None:
    page.locator(".jp-Dialog .jp-mod-accept").click()
    page.locator(".jp-Dialog").wait_for(state="detached")


def test_validate_fails_the_blank_assignment_and_passes_the_solution(page, lab):
    answers = _solutions()
    assert answers, f"{SOLVED} has no solution cells"

    with step(page, lab, "open the blank assignment"):
        open_notebook(page, lab, RELEASED)

    with step(page, lab, "Validate the blank notebook"):
        kind, text = validate(page)
        assert "validation-failed" in kind, f"Validate should fail the blank notebook; it said ({kind}):\n{text[:2000]}"
        assert "The following cell failed" in text and "NotImplementedError" in text, text[:2000]
        screenshot(page, "jupyterlab_validate_blank.png")
        close_dialog(page)

    with step(page, lab, "paste the solutions"):
        filled = page.evaluate(
            """answers => { const panel = window.jupyterapp.shell.currentWidget; const filled = [];
                for (const cell of panel.content.model.cells) {
                    const meta = cell.getMetadata('nbgrader');
                    if (meta && meta.solution && meta.grade_id in answers) {
                        cell.sharedModel.setSource(answers[meta.grade_id]); filled.push(meta.grade_id); } }
                return filled; }""", answers)
        assert sorted(filled) == sorted(answers), (f"answer cells in {RELEASED} ({sorted(filled)}) differ from "
                                                   f"the solution cells of {SOLVED} ({sorted(answers)})")

    with step(page, lab, "Validate the solved notebook"):
        kind, text = validate(page)
        assert "validation-success" in kind, (f"Validate should pass the notebook with the solutions pasted in; "
                                              f"it said ({kind}):\n{text[:3000]}")
        assert "passes all the tests" in text, text
        screenshot(page, "jupyterlab_validate_solved.png")
        close_dialog(page)

    if cli.can_encrypt_kernels():  # nbgrader_config.py gives Validate's kernels CurveZMQ keys too
        assert "without encryption" not in lab.log.read_text(errors="replace"), lab.log_tail()
