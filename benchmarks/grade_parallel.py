"""Serial `nbgrader autograde` against `course grade --jobs N`, side by side on one batch.

    python benchmarks/grade_parallel.py [--submissions 12] [--jobs 2] [--assignment ps1_regularization]

Builds a batch of submissions in three identical temporary courses (copies of the solution
and of the blank release under different student ids, alternating; an even number, so that the
two kinds are spread evenly over two jobs and neither ends the batch alone), then times

* serial: plain `nbgrader autograde ASSIGNMENT` over the whole batch, one process, with the
  course's config as it is (nbgrader's default: each kernel shut down gracefully);
* serial, kernels killed: the same with `--Execute.shutdown_kernel=immediate`, which course
  grade uses too, so that the ratio against it is what running in parallel alone gains;
* parallel: `course grade ASSIGNMENT --jobs N` (course_lib.grading.grade) on the same batch,
  whole (collect, execute, store in the gradebook with feedback, CSV) and its phases.

Prints per-submission seconds (serial: read from nbgrader's time-stamped log; parallel:
measured by the worker that graded it), the speedups and the machine's load (`uptime`) before,
between and after. The issue's target on a 2-core machine: --jobs 2 at least 1.8x faster than
serial nbgrader.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# nbgrader's log lines stamped with the time, to read off each submission's seconds
TIMED_LOG = "--Application.log_format=%(created).3f [%(name)s | %(levelname)s] %(message)s"


def durations(log: str, assignment: str) -> dict[str, float]:
    """{student: seconds} from a serial nbgrader log written with TIMED_LOG: from the first line
    naming the student to the first line naming the next one (or the end)."""
    where = re.compile(rf"/(?:submitted|autograded)/([^/\s]+)/{re.escape(assignment)}\b")
    starts, last = {}, None
    for line in log.splitlines():
        stamp = re.match(r"^(\d+\.\d+) \[", line)
        if not stamp:
            continue
        last = float(stamp.group(1))
        match = where.search(line)
        if match and match.group(1) not in starts:
            starts[match.group(1)] = last
    order = sorted(starts, key=starts.get)
    ends = [starts[s] for s in order[1:]] + [last]
    return {s: end - starts[s] for s, end in zip(order, ends)}


def _course(folder: Path, assignment: str) -> Path:
    from course_lib.grading import grade

    course = folder / "course"
    (course / "source").mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "source" / assignment, course / "source" / assignment)
    grade._ensure_in_gradebook(course, assignment, folder / "scratch")
    return course


def _batch(folder: Path, assignment: str, count: int) -> dict[str, str]:
    """folder/STUDENT/ASSIGNMENT/*.ipynb, alternately the solution and the blank release."""
    kinds = {}
    for index in range(count):
        kind = "solution" if index % 2 == 0 else "blank"
        student = f"s{index + 1:02d}-{kind}"
        origin = ROOT / ("source" if kind == "solution" else "release") / assignment
        shutil.copytree(origin, folder / student / assignment)
        kinds[student] = kind
    return kinds


# The serial baselines: nbgrader as the course configures it, and with each kernel killed when
# its last cell has run, as course grade does.
SERIAL = {"serial": [], "serial, kernels killed": ["--Execute.shutdown_kernel=immediate"]}

SPIN = "import time\nt = time.perf_counter()\nx = 0\nfor i in range(20_000_000): x += i\nprint(time.perf_counter() - t)"


def _ceiling(jobs: int) -> float:
    """What `jobs` processes at once can gain on this machine at best: a pure-Python loop timed
    alone, then `jobs` copies at once (jobs x alone / together)."""
    def spin(count):
        started = time.perf_counter()
        runs = [subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.DEVNULL) for _ in range(count)]
        for process in runs:
            process.wait()
        return time.perf_counter() - started
    return jobs * spin(1) / spin(jobs)


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assignment", default="ps1_regularization")
    parser.add_argument("--submissions", type=int, default=12, help="batch size (default 12)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel jobs of course grade (default 2)")
    parser.add_argument("--kernel-threads", choices=("one", "default"), default="one",
                        help="with several jobs, each kernel on one thread (course grade's choice) "
                             "or on the libraries' defaults, to compare")
    args = parser.parse_args(argv)
    if args.submissions < 1 or args.jobs < 1:
        parser.error("--submissions and --jobs must be 1 or more")
    if not (ROOT / "source" / args.assignment).is_dir():
        parser.error(f"no assignment {args.assignment!r} in {ROOT / 'source'}")
    os.environ.setdefault("COURSE_PROFILE", "ci")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from course_lib.grading import grade as grading
    from course_lib.grading.grade import grade
    from course_lib.grading.pipeline import run_nbgrader

    ps = args.assignment
    with tempfile.TemporaryDirectory(prefix="grade-bench-") as scratch:
        scratch = Path(scratch)
        inbox = scratch / "inbox"
        kinds = _batch(inbox, ps, args.submissions)
        parallel_course = _course(scratch / "parallel", ps)

        ceiling = _ceiling(args.jobs)
        loads = [f"before:       {_uptime()}"]
        serials, serial_each = {}, {}
        for name, options in SERIAL.items():
            course = _course(scratch / name.replace(" ", "-").replace(",", ""), ps)
            for student in kinds:
                shutil.copytree(inbox / student / ps, course / "submitted" / student / ps)
            print(f"{name} nbgrader autograde of {len(kinds)} submissions ...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            log = run_nbgrader(["autograde", ps, TIMED_LOG, *options], course)
            serials[name] = time.perf_counter() - started
            serial_each[name] = durations(log, ps)
            loads.append(f"after {name}: {_uptime()}")

        print(f"course grade --jobs {args.jobs} ...", file=sys.stderr, flush=True)
        if args.kernel_threads == "default":
            grading.ONE_THREAD = {}
        started = time.perf_counter()
        report = grade(ps, inbox, parallel_course, jobs=args.jobs, log=lambda *_: None)
        parallel = time.perf_counter() - started
        loads.append(f"after course grade: {_uptime()}")

    results = {r.student: r for r in report.results}
    print(f"{ps}: {len(kinds)} submissions; {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, COURSE_PROFILE={os.environ['COURSE_PROFILE']}, "
          f"kernel threads with several jobs: {args.kernel_threads}")
    print(f"\n| student | kind | {' s | '.join(SERIAL)} s | course grade --jobs {args.jobs} s (its worker) | score |")
    print("|---|---|" + "---:|" * (len(SERIAL) + 1) + "---|")
    for student, kind in kinds.items():
        r = results[student]
        score = f"{r.score:g}/{r.max_score:g}" if r.score is not None else f"FAILED {r.failed}"
        each = " | ".join(f"{serial_each[name].get(student, float('nan')):.1f}" for name in SERIAL)
        print(f"| {student} | {kind} | {each} | {r.seconds if r.seconds is not None else float('nan'):.1f} | {score} |")
    phases = ", ".join(f"{name} {seconds:.1f}" for name, seconds in report.timings.items())
    graded = report.timings["execute"] + report.timings["store"]
    print()
    for name, seconds in serials.items():
        print(f"{name + ' `nbgrader autograde`:':<44}{seconds:7.1f} s  ({seconds / len(kinds):.1f} s per submission)")
    print(f"{f'`course grade --jobs {args.jobs}`, whole:':<44}{parallel:7.1f} s  ({parallel / len(kinds):.1f} s "
          f"per submission; phases: {phases})")
    for name, seconds in serials.items():
        print(f"speedup over {name} autograde: whole course grade (collect .. CSV) {seconds / parallel:.2f}x, "
              f"its autograding (execute + store, {graded:.1f} s) {seconds / graded:.2f}x")
    print(f"ceiling: {args.jobs} CPU-bound Python loops at once ran {ceiling:.2f}x the work of one "
          f"in the same time on this machine now")
    print("\nload " + "\nload ".join(loads))
    return 0 if not report.failed else 1


if __name__ == "__main__":
    sys.exit(main())
