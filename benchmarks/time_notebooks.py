"""Time every lecture notebook and every assignment source in one profile (default `ci`).

    python benchmarks/time_notebooks.py [--profile ci] [--backend tensorflow]

Prints a Markdown table for the README, with the machine it ran on. Targets on a 2-core
CPU machine: each notebook at most 60 s in `ci`.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

from course_lib.cli import execute_notebook

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="ci", choices=("ci", "cpu", "full"))
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"))
    args = parser.parse_args()
    env = {"COURSE_PROFILE": args.profile, "KERAS_BACKEND": args.backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "source").glob("*/*.ipynb"))
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for path in notebooks:
            seconds, error = execute_notebook(path, Path(scratch) / path.name, timeout=600, env=env)
            rows.append((path.relative_to(ROOT), seconds, error))
            print(f"{path.name}: {seconds:.1f} s", file=sys.stderr, flush=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"Profile `{args.profile}`, backend `{args.backend}`, {machine}:\n")
    print("| notebook | seconds | result |\n|---|---:|---|")
    for path, seconds, error in rows:
        print(f"| `{path}` | {seconds:.1f} | {'ok' if error is None else 'FAILED: ' + error} |")
    print(f"| total | {sum(s for _, s, _ in rows):.1f} | |")
    return 0 if all(e is None for _, _, e in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
