"""Time `course explain MODEL` end to end (a fresh process each time, as a user runs it).

    python benchmarks/time_explain.py [MODEL ...]      default: vgg16 resnet50 resnet152 googlenet

Prints the best of three wall times per model; the issue's bar is under 2 s for vgg16.
"""
import argparse
import platform
import subprocess
import sys
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", default=["vgg16", "resnet50", "resnet152", "googlenet"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    for model in args.models:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "course_lib.cli", "explain", model],
                           check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
        print(f"course explain {model:<10} best {min(times):.2f} s  (of {args.repeats})")


if __name__ == "__main__":
    main()
