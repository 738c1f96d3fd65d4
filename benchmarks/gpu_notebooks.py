"""Every lecture notebook in the `full` profile on this machine, timed, with the claims each one
asserts; then the speedups of mixed precision and XLA on ResNet-20 training, as ratios.

    python benchmarks/gpu_notebooks.py [NOTEBOOK ...] [--profile full] [--output build/gpu]
                                       [--speedup-iterations 2000] [--skip-speedups] [--skip-notebooks]
                                       [--stand-in-data [SCALE]]

Meant for one modern GPU (the bar: each notebook at most 5 minutes in `full`). On a machine with
JAX but no TensorFlow, run it with KERAS_BACKEND=jax after installing only what the machine lacks
(benchmarks/offline_wheels.py makes those wheels where there is no network). Writes
`gpu_notebooks.json` and the executed notebooks to --output, and prints two tables in Markdown,
ready for the README (the JSON is rewritten after every notebook and every ResNet-20 arm, so a run
cut short by a time limit keeps what it measured):

* per notebook: seconds, result, and the evidence of every claim it checked (claims.check prints
  it, so it is read back from the executed notebook's output);
* ResNet-20 (benchmarks/cifar_resnet20.py, CIFAR-10 or --synthetic data, no augmentation so that
  the CPU stays out of it) in float32 without XLA, with XLA, in mixed precision, and both:
  steady-state milliseconds per iteration (compilation excluded) and the speedup over the first.

A machine with no network cannot download MNIST, CIFAR-10 or ImageNet weights. `--stand-in-data`
sets COURSE_STAND_IN_DATA (course_lib.data.stand_in): digits shaped and counted like each dataset
(SCALE times the real counts, 1 by default) and random ImageNet weights. The seconds are then the
real ones; the claims are not evidence, so a failed claim or assert is recorded and the notebook
runs on, and only another error fails it.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BAR_SECONDS = 300  # the bar for one notebook in `full` on one GPU
CLAIM = re.compile(r"^\[(?P<id>[A-Z]\d)\] .*?$(?P<body>.*?)^\s*-> (?P<verdict>HOLDS AS QUALIFIED|HOLDS|DOES NOT HOLD)",
                   re.MULTILINE | re.DOTALL)
SPEEDUP_ARMS = (("float32, no XLA", ["--no-xla"]), ("float32, XLA", []),
                ("mixed precision, no XLA", ["--mixed-precision", "--no-xla"]),
                ("mixed precision, XLA", ["--mixed-precision"]))
OUTCOMES = ("ClaimFailed", "AssertionError")  # a check that failed, not code that broke
MS_PER_ITERATION = (re.compile(r"steady state +(?P<ms>[\d.]+) ms per iteration"),  # preferred
                    re.compile(r"training time +[\d.]+ s \((?P<ms>[\d.]+) ms per iteration"))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="names or paths (default: every lecture notebook)")
    parser.add_argument("--profile", choices=("ci", "cpu", "full"), default="full")
    parser.add_argument("--output", default="build/gpu", help="folder for the executed notebooks and the JSON")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    parser.add_argument("--speedup-iterations", type=int, default=2000,
                        help="ResNet-20 iterations per precision/XLA arm (compilation included)")
    parser.add_argument("--synthetic", action="store_true", help="ResNet-20 on random data: no CIFAR-10 download")
    parser.add_argument("--skip-speedups", action="store_true", help="only the notebooks")
    parser.add_argument("--skip-notebooks", action="store_true", help="only the ResNet-20 speedups")
    parser.add_argument("--stand-in-data", type=float, nargs="?", const=1.0, metavar="SCALE",
                        help="digits shaped like the datasets and random ImageNet weights, SCALE times "
                             "the real counts (default 1): real times without a download")
    args = parser.parse_args(argv)
    if args.stand_in_data is not None and not 0.0 < args.stand_in_data <= 1.0:
        parser.error(f"--stand-in-data must be a share of the real size in (0, 1]; got {args.stand_in_data}")
    if args.speedup_iterations < 4:
        parser.error(f"--speedup-iterations must be at least 4; got {args.speedup_iterations}")
    return args


def claims_in(notebook) -> list[dict]:
    """The claims an executed notebook checked, from its output: id, whether it held, whether only
    as qualified (the lecture's sentence does not hold as stated; see ``claims.check``), and the
    evidence lines."""
    text = "\n".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                     for output in cell.get("outputs", []) if output.get("output_type") == "stream")
    return [{"id": found["id"], "holds": found["verdict"].startswith("HOLDS"),
             "qualified": found["verdict"] == "HOLDS AS QUALIFIED",
             "evidence": [line.strip() for line in found["body"].strip().splitlines() if line.strip()]}
            for found in CLAIM.finditer(text)]


def errors_in(notebook) -> list[dict]:
    """Every error an executed notebook shows: its cell's index, the exception's type and message."""
    return [{"cell": index, "type": output["ename"], "message": (output["evalue"].strip().splitlines() or [""])[0]}
            for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"
            for output in cell.get("outputs", []) if output.get("output_type") == "error"]


def environment(args) -> dict:
    """What the notebooks and cifar_resnet20.py run with, besides this process's environment."""
    from course_lib.data import STAND_IN_VARIABLE

    extra = {"TF_CPP_MIN_LOG_LEVEL": "2"}
    if args.stand_in_data is not None:
        extra[STAND_IN_VARIABLE] = f"{args.stand_in_data:g}"
    return extra


def gpu_name() -> str:
    """The GPU's name from nvidia-smi, or the Keras backend's device list where there is none."""
    try:
        names = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=30).stdout.split("\n")
        names = [name.strip() for name in names if name.strip()]
        if names:
            return ", ".join(names)
    except (OSError, subprocess.SubprocessError):
        pass
    from course_lib import runtime

    return "no NVIDIA GPU; devices: " + ", ".join(runtime.devices())


def run_notebooks(args, save) -> list[dict]:
    import nbformat

    from course_lib import cli

    root = cli._root()
    out = Path(args.output).resolve()
    rows = []
    save(notebooks=rows)
    for path in cli._resolve_notebooks(args.notebooks, root):
        print(f"running {path.name} (profile {args.profile}) ...", flush=True)
        stand_ins = args.stand_in_data is not None
        seconds, error = cli.execute_notebook(path, out / path.name, timeout=args.timeout, allow_errors=stand_ins,
                                              env={"COURSE_PROFILE": args.profile, **environment(args)})
        executed = nbformat.read(out / path.name, as_version=4)
        row = {"notebook": path.stem, "seconds": round(seconds, 1), "error": error,
               "within_bar": seconds <= BAR_SECONDS, "claims": claims_in(executed)}
        if stand_ins:  # every cell ran: a failed check is no evidence on stand-ins, another error is a failure
            errors = errors_in(executed)
            row["failed_checks"] = [e for e in errors if e["type"] in OUTCOMES]
            broken = [e for e in errors if e["type"] not in OUTCOMES]
            row["error"] = f"cell {broken[0]['cell']}: {broken[0]['type']}: {broken[0]['message']}" if broken else None
        rows.append(row)
        save(notebooks=rows)
    return rows


def run_speedups(args, save) -> list[dict]:
    rows = []
    save(speedups=rows)
    for name, options in SPEEDUP_ARMS:
        command = [sys.executable, str(HERE / "cifar_resnet20.py"), "--iterations", str(args.speedup_iterations),
                   "--no-augment", *options, *(["--synthetic"] if args.synthetic else [])]
        print(f"ResNet-20, {name}: {' '.join(command[1:])}", flush=True)
        run = subprocess.run(command, capture_output=True, text=True,
                             env={**os.environ, **environment(args)})
        found = next(filter(None, (pattern.search(run.stdout) for pattern in MS_PER_ITERATION)), None)
        rows.append({"arm": name, "ms_per_iteration": float(found["ms"]) if found and run.returncode == 0 else None,
                     "error": None if run.returncode == 0 else (run.stderr.strip().splitlines() or ["?"])[-1]})
        save(speedups=rows)
    baseline = rows[0]["ms_per_iteration"]
    for row in rows:
        row["speedup"] = round(baseline / row["ms_per_iteration"], 2) if baseline and row["ms_per_iteration"] else None
    return rows


def table_cell(text: str) -> str:
    """Text for one cell of a Markdown table: alignment spaces collapsed, `|` (as in |z|) escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _verdict(claim: dict) -> str:
    if not claim["holds"]:
        return "FAILS"
    return "holds as qualified" if claim.get("qualified") else "holds"


def markdown(report: dict) -> str:
    lines = [f"Device: {report['device']}; Keras backend {report['backend']}; profile {report['profile']}; "
             f"data: {report['data']}.", "",
             "| notebook | seconds | result | claims (evidence) |", "|---|---:|---|---|"]
    for row in report.get("notebooks", []):
        result = "ok" if row["error"] is None else f"FAILED: {row['error']}"
        if row["error"] is None and not row["within_bar"]:
            result += f" (over the {BAR_SECONDS} s bar)"
        if row.get("failed_checks"):
            result += f"; {len(row['failed_checks'])} checks failed on stand-ins (no evidence)"
        claims = "; ".join(f"{c['id']} {_verdict(c)} ({', '.join(c['evidence'][:3])})"
                           for c in row["claims"]) or "none"
        lines.append(f"| {row['notebook']} | {row['seconds']:.1f} | {table_cell(result)} | {table_cell(claims)} |")
    if report.get("speedups"):
        lines += ["", "| ResNet-20 training | ms per iteration | speedup over float32, no XLA |", "|---|---:|---:|"]
        for row in report["speedups"]:
            ms = f"{row['ms_per_iteration']:.1f}" if row["ms_per_iteration"] else table_cell(f"failed: {row['error']}")
            speedup = row.get("speedup")
            lines.append(f"| {row['arm']} | {ms} | {str(speedup) + '×' if speedup else '-'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    import course_lib  # noqa: F401  (chooses the backend, as a notebook's setup cell does)
    from course_lib import runtime

    out = Path(args.output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    report = {"device": gpu_name(), "backend": runtime.backend(), "profile": args.profile,
              "data": "real" if args.stand_in_data is None else
              f"stand-ins at {args.stand_in_data:g} of the real size (times real, claims no evidence)"}

    def save(**parts):
        report.update(parts, wall_seconds=round(time.perf_counter() - started, 1))
        (out / "gpu_notebooks.json").write_text(json.dumps(report, indent=2))

    if not args.skip_notebooks:
        run_notebooks(args, save)
    if not args.skip_speedups:
        run_speedups(args, save)
    save()
    print("\n" + markdown(report))
    print(f"\nwall time {report['wall_seconds']:.0f} s; report in {out / 'gpu_notebooks.json'}")
    return 0 if all(row["error"] is None for row in report.get("notebooks", [])) else 1


if __name__ == "__main__":
    sys.exit(main())
