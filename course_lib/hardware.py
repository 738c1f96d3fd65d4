"""Deep learning hardware, measured: matrix-multiply FLOP/s, eager vs compiled time, the lecture's table.

    hardware.matmul_flops(m, n, k)            # 2·m·n·k: one multiply and one add per term
    hardware.measure_matmul(1024)             # FLOP/s of this device's matmul on the Keras backend
    hardware.time_call(f, x, repeats=5)       # best and median of n calls, warm-up excluded
    hardware.LECTURE_HARDWARE                 # the lecture's TFLOP/s, with the precision each one is quoted in

Fair timing: the first call (tracing, compiling, allocating) is a warm-up and not counted; every
timed call waits for the device to finish (JAX and TensorFlow return before the GPU is done);
the best of several calls estimates what the hardware can do, the median what you typically get.
Nothing here imports TensorFlow or JAX until it is asked to.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import statistics
import time
from dataclasses import dataclass, field

import numpy as np

from .validation import check_choice, check_number

DTYPES = ("float32", "float16", "bfloat16", "float64")


# --- the lecture's table ---------------------------------------------------------------------

@dataclass(frozen=True)
class Chip:
    """One row of the lecture's hardware slide, with the precision its number is quoted in.

    tflops       the lecture's number (10^12 floating-point operations per second)
    precision    the arithmetic that number counts
    fp32_tflops  the chip's float32 peak, for a like-for-like comparison (None: not published as such)
    """

    name: str
    year: int
    tflops: float
    precision: str
    fp32_tflops: float | None
    note: str


# Vendor peak numbers (NVIDIA and Google datasheets). The lecture's column mixes precisions.
# GTX 580: 512 CUDA cores x 1.544 GHz x 2 (a fused multiply-add) = 1.58 TFLOP/s in float32;
# GeForce Fermi ran float64 at 1/8 of that, 0.198 TFLOP/s: the slide's "0.2 TFLOPs".
LECTURE_HARDWARE = (
    Chip("GTX 580", 2010, 0.2, "float64", 1.58,
         "0.2 T is its float64 rate (1/8 of float32 on GeForce Fermi); float32 peak 1.58 T"),
    Chip("Tesla P100", 2016, 11.0, "float32", 10.6,
         "float32 (SXM2 10.6 T, PCIe 9.3 T); float16 21.2 T"),
    Chip("Tesla V100", 2017, 125.0, "float16 tensor cores", 15.7,
         "tensor cores: float16 products, float32 sums; plain float32 15.7 T"),
    Chip("Cloud TPU v2", 2017, 180.0, "bfloat16 (mixed)", None,
         "one board of 4 chips (8 cores), 45 T per chip; matrix units multiply bfloat16"),
)
TPU_POD_BOARDS = 64  # "Google Cloud TPU Pod = 64 Cloud TPUs = 11.5 PFLOPs"


def lecture_table() -> str:
    """The lecture's hardware slide as a text table, with the precision behind each number."""
    rows = [f"{'chip':<14}{'year':>5}{'lecture TFLOP/s':>17}  {'counts':<22}{'float32 TFLOP/s':>16}"]
    for chip in LECTURE_HARDWARE:
        fp32 = "-" if chip.fp32_tflops is None else f"{chip.fp32_tflops:g}"
        rows.append(f"{chip.name:<14}{chip.year:>5}{chip.tflops:>17g}  {chip.precision:<22}{fp32:>16}")
    return "\n".join(rows)


# --- counting --------------------------------------------------------------------------------

def matmul_flops(m: int, n: int | None = None, k: int | None = None) -> int:
    """Floating-point operations of an (m×k) @ (k×n) product: 2·m·n·k (a multiply and an add per term).

    With one argument the matrices are square: ``matmul_flops(1024)`` = 2·1024³.
    """
    n = m if n is None else n
    k = m if k is None else k
    for name, value in (("m", m), ("n", n), ("k", k)):
        check_number(name, value, low=1, integer=True)
    return 2 * int(m) * int(n) * int(k)


def peak_bound(kind: str, dtype: str = "float32", *, cores: int | None = None) -> float:
    """A generous physical upper bound on one device's FLOP/s, to catch a broken measurement.

    CPU: every core at 5 GHz with two 512-bit FMA units (64 float32 FLOP per cycle), or Intel AMX
    for 16-bit types (1024 per cycle). GPU and TPU: 10 PFLOP/s, above any single chip's dense peak.
    Real machines reach a fraction of this; the bound only says "not physically impossible".
    """
    check_choice("kind", kind, ("cpu", "gpu", "tpu"))
    check_choice("dtype", dtype, DTYPES)
    if kind != "cpu":
        return 1e16
    if cores is None:
        cores = os.cpu_count() or 1
    check_number("cores", cores, low=1, integer=True)
    per_cycle = 1024 if dtype in ("float16", "bfloat16") else 64
    return float(cores * 5e9 * per_cycle)


def matmul_dtypes(kind: str) -> tuple[str, ...]:
    """The matmul precisions worth measuring on a device kind.

    GPUs multiply float16 and bfloat16 on tensor cores; TPUs' matrix units take bfloat16; most CPUs
    have no fast 16-bit matmul (it is emulated and slower than float32), so only float32 there.
    """
    check_choice("kind", kind, ("cpu", "gpu", "tpu"))
    return {"cpu": ("float32",), "gpu": ("float32", "float16", "bfloat16"),
            "tpu": ("float32", "bfloat16")}[kind]


# --- timing ----------------------------------------------------------------------------------

def synchronize(value):
    """Wait until ``value`` (an array, or a list/tuple/dict of them) is computed; return it.

    JAX and TensorFlow dispatch work to the device and return at once: a timer must wait.
    JAX arrays have ``block_until_ready``; for TensorFlow one element is copied to the host,
    which waits for the kernel that made it (a device runs its queue in order).
    """
    if isinstance(value, dict):
        for item in value.values():
            synchronize(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            synchronize(item)
    elif hasattr(value, "block_until_ready"):
        value.block_until_ready()
    elif type(value).__module__.startswith("torch"):
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
    elif hasattr(value, "numpy") and hasattr(value, "shape"):
        if "CPU" in str(getattr(value, "device", "")).upper():
            return value  # TensorFlow runs CPU ops synchronously: nothing to wait for
        ndim = len(value.shape)
        size = int(np.prod(value.shape)) if ndim else 1
        (value[(0,) * ndim] if ndim and size else value).numpy()
    return value


@dataclass(frozen=True)
class Timing:
    """Seconds of each timed call (warm-up excluded)."""

    times: tuple[float, ...]
    warmup: tuple[float, ...] = ()

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def __str__(self) -> str:
        return f"best {_seconds(self.best)}, median {_seconds(self.median)} of {len(self.times)}"


def _seconds(value: float) -> str:
    if value < 1e-3:
        return f"{value * 1e6:.0f} µs"
    if value < 1:
        return f"{value * 1e3:.2f} ms"
    return f"{value:.2f} s"


def time_call(fn, *args, repeats: int = 5, warmup: int = 1, **kwargs) -> Timing:
    """Call ``fn(*args, **kwargs)`` ``warmup`` times untimed, then ``repeats`` times, each waited for.

    The warm-up calls are where tracing and compilation happen; their times are kept in
    ``Timing.warmup`` (the first one is the compile time plus one run).
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable; got {type(fn).__name__}")
    check_number("repeats", repeats, low=1, integer=True)
    check_number("warmup", warmup, low=0, integer=True)
    warm, timed = [], []
    for count, bucket in ((warmup, warm), (repeats, timed)):
        for _ in range(count):
            start = time.perf_counter()
            synchronize(fn(*args, **kwargs))
            bucket.append(time.perf_counter() - start)
    return Timing(tuple(timed), tuple(warm))


def compare(functions: dict, *args, repeats: int = 5, warmup: int = 1) -> dict:
    """``time_call`` each of ``{name: fn}`` on the same arguments, one after the other."""
    if not isinstance(functions, dict) or not functions:
        raise ValueError(f"functions must be a non-empty dict of name -> callable; got {functions!r}")
    return {name: time_call(fn, *args, repeats=repeats, warmup=warmup) for name, fn in functions.items()}


def timing_table(timings: dict, *, baseline: str | None = None) -> str:
    """Text table of ``{name: Timing}``: best, median, first call, and speedup over ``baseline``.

    The speedup compares best times: on a shared machine other programs only ever add time,
    so the best of n is the steadiest estimate of what each variant costs.
    """
    if not timings:
        raise ValueError("timings must hold at least one Timing")
    baseline = next(iter(timings)) if baseline is None else baseline
    if baseline not in timings:
        raise KeyError(f"baseline must be one of {list(timings)}; got {baseline!r}")
    width = max(len(name) for name in timings)
    rows = [f"{'':<{width}}  {'best':>10}  {'median':>10}  {'first call':>10}  speedup (best)"]
    for name, timing in timings.items():
        first = _seconds(timing.warmup[0]) if timing.warmup else "-"
        rows.append(f"{name:<{width}}  {_seconds(timing.best):>10}  {_seconds(timing.median):>10}  "
                    f"{first:>10}  {timings[baseline].best / timing.best:.2f}x")
    return "\n".join(rows)


# --- measuring FLOP/s ------------------------------------------------------------------------

@dataclass(frozen=True)
class MatmulResult:
    """One matmul measurement: size×size @ size×size in ``dtype``."""

    size: int
    dtype: str
    timing: Timing
    device: str
    backend: str
    flops: int = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "flops", matmul_flops(self.size))

    @property
    def flops_per_second(self) -> float:
        """FLOP/s of the best call: what the device can do."""
        return self.flops / self.timing.best

    @property
    def tflops(self) -> float:
        return self.flops_per_second / 1e12

    def __str__(self) -> str:
        return (f"{self.size:>6} x {self.size:<6} {self.dtype:<9} {self.flops_per_second / 1e9:10.1f} GFLOP/s"
                f"  ({self.timing})")


def device_of(array) -> str:
    """The device an array lives on, as the backend names it (``TFRT_CPU_0``, ``cuda:0``, ``.../GPU:0``)."""
    if hasattr(array, "devices"):  # JAX
        return ", ".join(sorted(str(d) for d in array.devices()))
    if hasattr(array, "device"):  # TensorFlow, PyTorch
        return str(array.device)
    return "cpu (NumPy)"


def measure_matmul(size: int, dtype: str = "float32", *, repeats: int = 5, warmup: int = 1,
                   seed: int = 0) -> MatmulResult:
    """Time ``keras.ops.matmul`` of two size×size matrices on the Keras backend's default device.

    The inputs are made on the device before timing, so no host-to-device copy is counted.
    """
    check_number("size", size, low=1, integer=True)
    check_choice("dtype", dtype, DTYPES)
    import keras

    rng = np.random.default_rng(seed)
    a, b = (keras.ops.convert_to_tensor(rng.standard_normal((size, size)) / np.sqrt(size), dtype=dtype)
            for _ in range(2))
    made = keras.backend.standardize_dtype(a.dtype)
    if made != dtype:     # JAX makes float32 of float64 unless jax_enable_x64 is set
        raise RuntimeError(f"this backend made {made} matrices when asked for {dtype}; on JAX, "
                           "jax.config.update('jax_enable_x64', True) before any computation enables float64")
    product = synchronize(keras.ops.matmul(a, b))
    timing = time_call(keras.ops.matmul, a, b, repeats=repeats, warmup=warmup)
    return MatmulResult(size=int(size), dtype=dtype, timing=timing, device=device_of(product),
                        backend=keras.backend.backend())


def flops_chart(results, *, ax=None, title: str | None = None):
    """Bar chart on a log scale: the lecture's TFLOP/s (and float32 peaks) beside this machine's best.

    results  MatmulResult objects; the best one per dtype is drawn.
    """
    import matplotlib.pyplot as plt

    results = list(results)
    if not results or not all(isinstance(r, MatmulResult) for r in results):
        raise ValueError("results must be a non-empty list of MatmulResult (from measure_matmul)")
    best = {}
    for result in results:
        if result.dtype not in best or result.flops_per_second > best[result.dtype].flops_per_second:
            best[result.dtype] = result
    own_figure = ax is None
    if own_figure:
        _, ax = plt.subplots(figsize=(7.5, 3.8))
    names = [f"{c.name}\n({c.year})" for c in LECTURE_HARDWARE]
    positions = np.arange(len(names))
    ax.bar(positions - 0.2, [c.tflops for c in LECTURE_HARDWARE], 0.4, color="C0",
           label="lecture's number (mixed precisions)")
    fp32 = [c.fp32_tflops if c.fp32_tflops else np.nan for c in LECTURE_HARDWARE]
    ax.bar(positions + 0.2, fp32, 0.4, color="C1", label="float32 peak (datasheet)")
    short = {"float64": "fp64", "float32": "fp32", "float16 tensor cores": "fp16 TC", "bfloat16 (mixed)": "bf16"}
    for x, chip in zip(positions, LECTURE_HARDWARE):
        ax.text(x - 0.2, chip.tflops, f"{chip.tflops:g} T\n{short.get(chip.precision, chip.precision)}",
                ha="center", va="bottom", fontsize=7)
    start = len(names)
    labelled = set()
    for i, (dtype, result) in enumerate(sorted(best.items(), key=lambda item: item[0] != "float32")):
        label = "this machine, float32" if dtype == "float32" else "this machine, 16-bit"
        ax.bar(start + i, result.tflops, 0.6, color="C2" if dtype == "float32" else "C3",
               label=None if label in labelled else label)
        labelled.add(label)
        ax.text(start + i, result.tflops, f"{result.tflops * 1e3:.3g} G" if result.tflops < 1
                else f"{result.tflops:.3g} T", ha="center", va="bottom", fontsize=7)
        names.append(f"this machine\n{dtype}, n={result.size}")
    ax.set_xticks(np.arange(len(names)))
    ax.set_xticklabels(names, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("TFLOP/s (log scale)")
    ax.set_ylim(top=1e4)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title or "Matrix multiply throughput: the lecture's hardware and this machine")
    if own_figure:
        ax.figure.tight_layout()
    return ax.figure


# --- frameworks ------------------------------------------------------------------------------

FRAMEWORKS = ("tensorflow", "jax", "torch")


def frameworks() -> dict:
    """``{name: version or None}`` for TensorFlow, JAX and PyTorch, without importing them."""
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    distributions = packages_distributions()  # e.g. tensorflow -> tensorflow-cpu
    found = {}
    for name in FRAMEWORKS:
        found[name] = None
        try:
            if importlib.util.find_spec(name) is None:
                continue
        except (ImportError, ValueError):
            continue
        found[name] = "installed"
        for distribution in [name, *distributions.get(name, [])]:
            try:
                found[name] = version(distribution)
                break
            except PackageNotFoundError:
                pass
    return found


def import_framework(name: str, *, verbose: bool = True):
    """Import TensorFlow, JAX or PyTorch if installed, else return None and say so.

    A framework that is not the Keras backend is kept off the accelerator (on CPU) so it does not
    fight the backend for device memory: both TensorFlow and JAX claim most of a GPU on first use.
    """
    check_choice("name", name, FRAMEWORKS)
    if frameworks()[name] is None:
        if verbose:
            print(f"{name} is not installed here: its part is skipped (the rest runs on the Keras backend).")
        return None
    import keras

    if keras.backend.backend() != name and name == "jax":
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # read when JAX first meets a GPU
    module = importlib.import_module(name)
    if keras.backend.backend() != name:
        try:
            if name == "tensorflow":
                module.config.set_visible_devices([], "GPU")
            elif name == "jax":
                module.config.update("jax_platforms", "cpu")
        except (RuntimeError, ValueError):  # already initialized on its devices: leave it as it is
            pass
    return module


@contextlib.contextmanager
def jax_x64():
    """A context in which JAX computes in float64 (off by default in JAX), on the CPU: a TPU has no
    float64 (XLA rewrites it into pairs of float32, and not every operation), so a float64
    reference computed here is the same on a laptop, a GPU machine and a TPU runtime."""
    import jax

    if hasattr(jax, "enable_x64"):
        x64 = jax.enable_x64(True)
    else:
        from jax.experimental import enable_x64  # older JAX

        x64 = enable_x64()
    try:
        cpu = jax.devices("cpu")[0]
    except RuntimeError:  # JAX_PLATFORMS leaves the CPU out: float64 wherever JAX computes
        cpu = None
    with x64, jax.default_device(cpu):
        yield


@contextlib.contextmanager
def full_float32_matmuls():
    """A context in which float32 matrix products and convolutions run in true float32.

    By default NVIDIA GPUs since Ampere (A100, H100, H200) compute float32 products on tensor
    cores in TensorFloat-32: each input is rounded to a 10-bit mantissa, a relative error of
    up to 2^-11 ≈ 4.9e-4 per factor instead of float32's 2^-24 ≈ 6e-8 (TPUs do the same with
    bfloat16). Training does not mind; a gradient check does. Inside this context JAX uses
    ``jax.default_matmul_precision("float32")`` (newer JAX also calls it "highest"; 0.4.30 does
    not) and TensorFlow has TF32 turned off; both are restored on exit. On a CPU nothing
    changes: it has no TF32.
    """
    installed = frameworks()
    with contextlib.ExitStack() as stack:
        if installed["jax"] is not None:
            import jax

            stack.enter_context(jax.default_matmul_precision("float32"))
        if installed["tensorflow"] is not None:
            import tensorflow as tf

            was_enabled = tf.config.experimental.tensor_float_32_execution_enabled()
            tf.config.experimental.enable_tensor_float_32_execution(False)
            stack.callback(tf.config.experimental.enable_tensor_float_32_execution, was_enabled)
        yield
