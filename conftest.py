"""Test settings: the fast `ci` profile, no display, quiet TensorFlow, and a private cache.

The kernels that execute notebooks (nbval) inherit these settings. The Keras backend comes
from KERAS_BACKEND, else course_lib's choice (TensorFlow where installed, else JAX).
"""
import os
import signal
from pathlib import Path

import pytest

import course_lib  # noqa: F401  (chooses Keras's backend before any test imports Keras)

os.environ.setdefault("COURSE_PROFILE", "ci")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parent


def pytest_configure(config):
    """SIGTERM and SIGHUP (a CI job's time limit, `course test` passing one on, a closed
    terminal) stop the run as Ctrl-C does: pytest reports what ran and tears its fixtures down
    (JupyterLab servers, the PostgreSQL test database, kernels) instead of dying with them up."""
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _interrupt)


def _interrupt(number, frame):
    raise KeyboardInterrupt(f"stopped by {signal.Signals(number).name}")


def pytest_collection_modifyitems(items):
    """Executing notebooks is slow: mark nbval's cells so `-m "not slow"` leaves them out, and
    the lecture notebooks' cells `lecture` too (`course test` runs them on JAX as well)."""
    for item in items:
        path = Path(str(item.fspath))
        if path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)
            if path.parent.name == "notebooks":
                item.add_marker(pytest.mark.lecture)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Keep what tests build out of the user's cache (and the user's cache out of the tests)."""
    folder = tmp_path_factory.mktemp("course_cache")
    previous = os.environ.get("COURSE_CACHE")
    os.environ["COURSE_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("COURSE_CACHE", None)
    else:
        os.environ["COURSE_CACHE"] = previous


@pytest.fixture
def root():
    return ROOT
