"""The README's two commands are the interface: CI must run the very same test command."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands():
    readme = (ROOT / "README.md").read_text()
    return re.findall(r"```(?:bash|sh)\n(python3 -m venv[^\n]*)\n```", readme)


def test_readme_opens_with_the_two_commands():
    start, test = _commands()[:2]
    assert start.endswith("course lab") and test.endswith("course test")
    assert "pip install -e \".[dev]\"" in start and "pip install -e \".[dev]\"" in test


def test_ci_runs_the_readme_test_command_verbatim():
    test = _commands()[1]
    script = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test in script
