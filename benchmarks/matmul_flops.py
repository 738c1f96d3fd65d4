"""Measure this machine's matrix-multiply FLOP/s on the Keras backend, beside the lecture's hardware.

    python benchmarks/matmul_flops.py [--sizes 512 1024 2048] [--dtypes float32 ...] [--repeats 5]
    KERAS_BACKEND=jax python benchmarks/matmul_flops.py

One warm-up call per size, then the best of --repeats calls, each waited for (2·n³ FLOPs per n×n product).
Default dtypes: those the device multiplies fast (float32 on CPU; also float16 and bfloat16 on GPU;
bfloat16 on TPU). Prints one line per measurement and the best per dtype in TFLOP/s.
"""
import argparse
import os
import platform
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048],
                        help="matrix sizes n (n×n @ n×n); default 512 1024 2048")
    parser.add_argument("--dtypes", nargs="+", default=None,
                        choices=("float32", "float16", "bfloat16", "float64"),
                        help="default: the fast ones for this device")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per size (best kept)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1; got {args.repeats}")
    if min(args.sizes) < 1:
        parser.error(f"--sizes must be positive; got {args.sizes}")
    return args


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from course_lib import hardware, runtime

    kind = runtime.accelerator()
    dtypes = args.dtypes or list(hardware.matmul_dtypes(kind))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
          f"Python {platform.python_version()}")
    results = []
    for dtype in dtypes:
        for size in args.sizes:
            results.append(hardware.measure_matmul(size, dtype, repeats=args.repeats))
            print(results[-1], flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device: {results[-1].device} ({kind}), backend {results[-1].backend}, load average {load:.2f}")
    for dtype in dtypes:
        best = max((r for r in results if r.dtype == dtype), key=lambda r: r.flops_per_second)
        print(f"best {dtype:<9} {best.tflops:.4f} TFLOP/s at n={best.size}")
    print("lecture: " + ", ".join(f"{c.name} {c.tflops:g} T ({c.precision})" for c in hardware.LECTURE_HARDWARE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
