"""The wheels a machine with no network lacks to run the lecture notebooks on JAX.

    python benchmarks/offline_wheels.py --have HAVE.txt [--python-version 3.12] [--dest wheels]
                                        [--platform TAG ...] [--dry-run]

For a GPU machine that cannot reach a package registry (a cluster node, a locked-down cloud box)
but has JAX: `benchmarks/gpu_notebooks.py` needs there what `course_lib` needs with its `jax`
extra, plus the headless notebook runner (nbclient, nbformat, ipykernel), and nothing else.

HAVE.txt lists what the target already has: the output of `python3 -m pip list --format=freeze`
run there (`name==version` a line), of plain `pip list`, or bare names separated by spaces, commas
or new lines.

Run it with the virtual environment where course_lib is installed (its requirements are read from
its metadata). pip resolves them for the target's Python and platform (`pip install --dry-run
--report`, with the versions HAVE.txt gives as constraints), drops every package HAVE.txt names,
and downloads the rest (`pip download --no-deps --only-binary=:all:`) into --dest. Then, on the
target, from the course's root:

    python3 -m pip install --no-index --no-deps --target /tmp/site wheels/*.whl
    PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax python3 benchmarks/gpu_notebooks.py --stand-in-data

($PWD, not `.`: each notebook's kernel starts in notebooks/ and must still find course_lib.)
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, requires
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

PROJECT = "course-lib"
EXTRA = "jax"  # the backend that needs no TensorFlow: what a JAX-only GPU or TPU machine runs
RUNNER = ("nbclient", "nbformat", "ipykernel")  # from the `lab` extra: what executes a notebook headless
PACKAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
PIP_LIST_ROW = re.compile(rf"(?P<name>{PACKAGE_NAME.pattern})\s+(?P<version>\d\S*)(\s+\S.*)?")  # name version [location]
MANYLINUX_X86_64 = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                    "manylinux2014_x86_64", "manylinux1_x86_64")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--have", required=True, type=Path,
                        help="the target's packages: `pip list --format=freeze` output, or names")
    parser.add_argument("--python-version", default=f"{sys.version_info.major}.{sys.version_info.minor}",
                        help="the target's Python, e.g. 3.12 (default: this one's)")
    parser.add_argument("--platform", action="append", dest="platforms",
                        help=f"a wheel platform tag the target accepts, repeatable (default: {', '.join(MANYLINUX_X86_64)})")
    parser.add_argument("--dest", type=Path, default=Path("wheels"), help="folder for the wheels")
    parser.add_argument("--dry-run", action="store_true", help="list the missing packages, download nothing")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"3\.\d+", args.python_version):
        parser.error(f"--python-version must be like 3.12; got {args.python_version!r}")
    if not args.have.is_file():
        parser.error(f"--have {args.have}: no such file (expected the target's `pip list --format=freeze`)")
    args.platforms = args.platforms or list(MANYLINUX_X86_64)
    return args


def installed(text: str) -> dict[str, str | None]:
    """The packages a HAVE list names, canonical name -> version (None where it gives none).

    Reads `pip list --format=freeze` (name==version, or name @ URL), `pip list` (name version
    columns under a header) and bare names separated by spaces, commas or new lines."""
    packages = {}
    for line in text.splitlines():
        line = re.sub(r"(^|\s)#.*", "", line).strip()
        if not line or line.startswith("-") or line.split()[:2] == ["Package", "Version"]:
            continue  # `-e`/`--index-url` lines of a freeze; `pip list`'s header and its rule
        columns = PIP_LIST_ROW.fullmatch(line)
        if columns:
            tokens = [f"{columns['name']}=={columns['version']}"]
        elif " @ " in line:
            tokens = [line.split(" @ ")[0]]
        else:
            tokens = re.split(r"[\s,]+", line)
        for token in filter(None, tokens):
            name, _, version = token.partition("==")
            if not PACKAGE_NAME.fullmatch(name):
                raise ValueError(f"{token!r} is not a package name or name==version "
                                 "(expected `pip list --format=freeze` output, or names)")
            packages[canonicalize_name(name)] = version or None
    if not packages:
        raise ValueError("the HAVE list names no packages")
    return packages


def needed() -> list[str]:
    """course_lib's core requirements, its `jax` extra and the notebook runner, markers resolved."""
    try:
        declared = [Requirement(line) for line in requires(PROJECT) or []]
    except PackageNotFoundError:
        raise SystemExit(f"{PROJECT} is not installed here: run this with the course's virtual environment "
                         "(README, 'Two commands')") from None

    def wanted(requirement: Requirement) -> bool:
        if requirement.marker is None:
            return True
        if requirement.marker.evaluate({"extra": EXTRA}):
            return True
        return canonicalize_name(requirement.name) in RUNNER and requirement.marker.evaluate({"extra": "lab"})

    return [f"{r.name}{r.specifier}" for r in declared if wanted(r) and canonicalize_name(r.name) != PROJECT]


def pip(*arguments: str, hint: str = "") -> None:
    """Run pip; the end of its own error, and the hint, when it fails."""
    run = subprocess.run([sys.executable, "-m", "pip", *arguments], capture_output=True, text=True)
    if run.returncode != 0:
        tail = "\n".join(run.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"pip {arguments[0]} failed:\n{tail}" + (f"\n{hint}" if hint else ""))


def target_options(args) -> list[str]:
    return ["--only-binary=:all:", "--python-version", args.python_version, "--implementation", "cp",
            *(option for tag in args.platforms for option in ("--platform", tag))]


def resolve(requirements: list[str], have: dict[str, str | None], args) -> dict[str, str]:
    """Every package the requirements need on the target, canonical name -> version, from pip's report."""
    with tempfile.TemporaryDirectory() as scratch:
        constraints = Path(scratch, "constraints.txt")
        constraints.write_text("".join(f"{name}=={version}\n" for name, version in have.items() if version))
        report = Path(scratch, "report.json")
        pip("install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
            "--target", str(Path(scratch, "target")), *target_options(args), "-c", str(constraints), *requirements,
            hint="A version the HAVE list gives may be missing from this index, or clash with a requirement: "
                 "drop that version (keep the name) and pip chooses one.")
        return {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        have = installed(args.have.read_text())
    except ValueError as error:
        raise SystemExit(f"--have {args.have}: {error}") from None
    requirements = needed()
    resolved = resolve(requirements, have, args)
    missing = {name: version for name, version in sorted(resolved.items()) if name not in have}
    print(f"{PROJECT}[{EXTRA}] + {', '.join(RUNNER)} for Python {args.python_version}: {len(resolved)} packages, "
          f"{len(resolved) - len(missing)} already on the target, {len(missing)} missing:")
    print("  " + " ".join(f"{name}=={version}" for name, version in missing.items()))
    if args.dry_run or not missing:
        return 0
    args.dest.mkdir(parents=True, exist_ok=True)
    pip("download", "--quiet", "--no-deps", *target_options(args), "--dest", str(args.dest),
        *(f"{name}=={version}" for name, version in missing.items()))
    wheels = sorted(args.dest.glob("*.whl"))
    megabytes = sum(wheel.stat().st_size for wheel in wheels) / 2**20
    print(f"{len(wheels)} wheels, {megabytes:.1f} MiB, in {args.dest}")
    parsed = {wheel.name: parse_wheel_filename(wheel.name)[:2] for wheel in wheels}  # (canonical name, version)
    stale = [file for file, (name, version) in parsed.items() if str(version) != missing.get(name)]
    if stale:  # an installed `*.whl` with two versions of one package stops the whole install
        print(f"{args.dest} also holds wheels this list does not ask for; move them away before installing "
              f"{args.dest}/*.whl: {' '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
