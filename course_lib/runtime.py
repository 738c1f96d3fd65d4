"""Where the course runs: backend, devices, precision, seeding and the run profile.

The run profile sizes every experiment:

* ``ci``   tiny sizes, seconds per notebook: what CI executes;
* ``cpu``  the embedded data at a size a laptop finishes in a few minutes;
* ``full`` real datasets and paper-like schedules, for a GPU or TPU.

``COURSE_PROFILE`` chooses the profile; without it the course takes ``full`` when an
accelerator is present and ``cpu`` otherwise.

The backend is chosen when ``course_lib`` is imported, before Keras is (``choose_backend``):
``KERAS_BACKEND`` if set, else JAX on a TPU (JAX owns the TPU; TensorFlow's TPUStrategy does
not work with Keras 3), TensorFlow where it is installed, JAX otherwise. ``setup`` then spreads
training over every device: ``keras.distribution.DataParallel`` on JAX, ``MirroredStrategy``
on TensorFlow with several GPUs (``distribution_for``); ``scope()`` is where the course's
builders create models and optimizers, so notebooks need no per-device code.
"""
from __future__ import annotations

import contextlib
import functools
import glob
import importlib.util
import os
import platform
import random
import sys
from dataclasses import dataclass, field

import numpy as np

from .validation import check_choice, check_number

PROFILES = ("ci", "cpu", "full")
PROFILE_VARIABLE = "COURSE_PROFILE"
PRECISION_VARIABLE = "COURSE_PRECISION"
POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
BACKEND_VARIABLE = "KERAS_BACKEND"
BACKENDS = ("tensorflow", "jax", "torch", "numpy")
# How Colab and Cloud TPU VMs announce a TPU, without importing anything heavy.
_TPU_VARIABLES = ("COLAB_TPU_ADDR", "TPU_NAME", "TPU_ACCELERATOR_TYPE", "TPU_WORKER_ID")
_TPU_DEVICE_FILES = "/dev/accel[0-9]*"   # not /dev/accel/, Linux's folder for any compute accelerator
# TPU chips on the PCI bus: Google's vendor id and the chips' device ids (as JAX's hardware_utils
# lists them). v5e and v6e chips, Colab's single-chip TPU runtimes among them, are /dev/vfio/N, not
# /dev/accelN, and Google's other PCI devices (gVNIC, the network card of its VMs) are no TPU.
_PCI_DEVICES = "/sys/bus/pci/devices"
_GOOGLE_PCI_VENDOR = "0x1ae0"
_TPU_PCI_DEVICE_IDS = {"0x0027": "v2, v3", "0x0056": "plc (no public name)", "0x005e": "v4", "0x0062": "v5p",
                       "0x0063": "v5e", "0x006f": "v6e", "0x0076": "TPU7x"}


@dataclass(frozen=True)
class RunProfile:
    """A named size for experiments. ``pick`` chooses the value for this profile."""

    name: str

    def __post_init__(self):
        check_choice("profile", self.name, PROFILES)

    def pick(self, *, ci, cpu, full):
        """Return the argument named after this profile, e.g. ``epochs = profile.pick(ci=3, cpu=20, full=60)``."""
        return {"ci": ci, "cpu": cpu, "full": full}[self.name]

    def __str__(self) -> str:
        return self.name


def tpu_present(environ=None, device_files: str = _TPU_DEVICE_FILES, pci_devices: str = _PCI_DEVICES) -> bool:
    """Whether this machine has a TPU, judged without importing a framework: from the environment
    (``TPU_NAME``, ...), the device files ``/dev/accel0``, ``/dev/accel1``, ... (TPU v2-v4 VMs) or a
    TPU chip on the PCI bus (every TPU VM, v5e and v6e included)."""
    environ = os.environ if environ is None else environ
    return (any(environ.get(name) for name in _TPU_VARIABLES)
            or any(not os.path.isdir(path) for path in glob.glob(device_files))
            or bool(tpu_chips_on_pci(pci_devices)))


def tpu_chips_on_pci(pci_devices: str = _PCI_DEVICES) -> list[str]:
    """The TPU chips Linux lists under ``pci_devices`` (``/sys/bus/pci/devices``), by generation."""
    chips = []
    for device in sorted(glob.glob(os.path.join(pci_devices, "*"))):
        try:
            with open(os.path.join(device, "vendor")) as vendor, open(os.path.join(device, "device")) as model:
                vendor_id, device_id = vendor.read().strip().lower(), model.read().strip().lower()
        except OSError:  # not a device folder, or not readable here
            continue
        if vendor_id == _GOOGLE_PCI_VENDOR and device_id in _TPU_PCI_DEVICE_IDS:
            chips.append(_TPU_PCI_DEVICE_IDS[device_id])
    return chips


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def choose_backend(environ=None, *, installed=_installed, tpu: bool | None = None) -> str:
    """The Keras backend the course uses, decided before Keras is imported.

    1. ``KERAS_BACKEND`` when it is set: the student's override;
    2. ``jax`` on a TPU;
    3. ``tensorflow`` when it is installed (the default on CPU and GPU);
    4. ``jax`` when only JAX is (Colab's TPU runtimes ship no TensorFlow).
    """
    environ = os.environ if environ is None else environ
    requested = environ.get(BACKEND_VARIABLE, "").strip().lower()
    if requested:
        check_choice(BACKEND_VARIABLE, requested, BACKENDS)
        return requested
    if (tpu_present(environ) if tpu is None else tpu) and installed("jax"):
        return "jax"
    for name in ("tensorflow", "jax"):
        if installed(name):
            return name
    raise RuntimeError("the course needs TensorFlow or JAX as Keras's backend and neither is installed: "
                       'pip install "course-lib[tensorflow]" (CPU, GPU) or "course-lib[jax]" (TPU)')


backend_source = "not chosen yet"  # who chose the backend, for `course doctor`


def select_backend() -> str:
    """Set ``KERAS_BACKEND`` to ``choose_backend()`` unless Keras is already imported (then
    its backend stands, and ``setup`` checks it is the one asked for)."""
    global backend_source
    chosen = choose_backend()
    if os.environ.get(BACKEND_VARIABLE, "").strip():
        backend_source = f"{BACKEND_VARIABLE} (set before course_lib was imported)"
        os.environ[BACKEND_VARIABLE] = chosen    # as Keras spells it: " JAX " would fail its import
    elif "keras" in sys.modules:
        backend_source = "Keras (imported before course_lib)"
    else:
        backend_source = "course_lib: JAX on a TPU, TensorFlow where installed, else JAX"
        os.environ[BACKEND_VARIABLE] = chosen
    return chosen


def backend() -> str:
    """The Keras backend in use: ``tensorflow``, ``jax``, ``torch`` or ``numpy``."""
    import keras

    return keras.backend.backend()


def devices() -> list[str]:
    """The devices the backend sees, as ``kind:index`` strings (``cpu:0``, ``gpu:0``, ``tpu:3``)."""
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        found = [d.device_type.lower() for d in tf.config.list_physical_devices()]
    elif name == "jax":
        import jax

        found = [d.platform.lower() for d in jax.devices()]
    elif name == "torch":
        import torch

        found = ["cpu"] + ["gpu"] * torch.cuda.device_count()
    else:
        found = ["cpu"]
    counts: dict[str, int] = {}
    listed = []
    for kind in found:
        listed.append(f"{kind}:{counts.get(kind, 0)}")
        counts[kind] = counts.get(kind, 0) + 1
    return listed


def accelerator(device_list: list[str] | None = None) -> str:
    """``tpu``, ``gpu`` or ``cpu``: the fastest kind of device present."""
    kinds = {d.split(":")[0] for d in (devices() if device_list is None else device_list)}
    for kind in ("tpu", "gpu"):
        if kind in kinds:
            return kind
    return "cpu"


def precision_policy(kind: str) -> str:
    """The Keras dtype policy for a device kind: mixed float16 on GPU, mixed bfloat16 on TPU.

    ``$COURSE_PRECISION`` overrides it, e.g. to run a notebook on a CPU under the GPU's
    ``mixed_float16`` and catch what half precision breaks before a GPU does."""
    check_choice("kind", kind, ("cpu", "gpu", "tpu"))
    chosen = os.environ.get(PRECISION_VARIABLE, "").strip()
    if chosen:
        if chosen not in POLICIES:
            raise ValueError(f"{PRECISION_VARIABLE}={chosen!r} is not a precision policy; "
                             f"expected one of {', '.join(POLICIES)}")
        return chosen
    return {"cpu": "float32", "gpu": "mixed_float16", "tpu": "mixed_bfloat16"}[kind]


def distribution_for(backend_name: str, device_list: list[str]) -> str:
    """How training spreads over ``device_list``: ``data_parallel`` (JAX, several devices of
    the fastest kind), ``mirrored`` (TensorFlow, several GPUs) or ``single`` (one device)."""
    check_choice("backend", backend_name, BACKENDS)
    kind = accelerator(device_list)
    count = sum(device.startswith(f"{kind}:") for device in device_list)
    if count > 1 and backend_name == "jax":
        return "data_parallel"
    if count > 1 and backend_name == "tensorflow" and kind == "gpu":
        return "mirrored"
    return "single"


_strategy = None  # TensorFlow's MirroredStrategy, once setup chose it


def batch_splits_evenly(size: int, sharding) -> bool:
    """Whether a batch of ``size`` examples splits into equal parts along ``sharding``'s first
    axis: ``size % (devices the batch axis spans) == 0``."""
    axes = sharding.spec[0] if len(sharding.spec) else None
    names = () if axes is None else (axes if isinstance(axes, tuple) else (axes,))
    parts = 1
    for name in names:
        parts *= sharding.mesh.shape[name]
    return size % parts == 0


def replicating_uneven_batches(distribute_data_input):
    """Wrap Keras's JAX ``distribute_data_input`` so a batch that does not split evenly over the
    devices is given whole to every device (replicated) instead of failing.

    Keras's JAX data parallelism splits every batch over the devices and raises an
    ``IndivisibleError`` when it cannot (keras-team/keras#21167, open): the last, smaller batch of
    most epochs (60,000 examples in batches of 32 leave 0, the embedded 1,078 digits leave 22,
    which 8 TPU cores cannot split) and ``predict`` on a handful of images. A replicated batch
    gives the same numbers, computed on every device; it only happens to the odd batch, on one
    host (Colab), where the process's batch is the whole batch."""
    if getattr(distribute_data_input, "replicates_uneven_batches", False):
        return distribute_data_input

    @functools.wraps(distribute_data_input)
    def distribute(per_process_batch, layout, *args, **kwargs):
        from jax.sharding import NamedSharding, PartitionSpec

        sharding = getattr(layout, "backend_layout", layout)
        shape = getattr(per_process_batch, "shape", ())
        if shape and isinstance(sharding, NamedSharding) and not batch_splits_evenly(shape[0], sharding):
            layout = NamedSharding(sharding.mesh, PartitionSpec())
        return distribute_data_input(per_process_batch, layout, *args, **kwargs)

    distribute.replicates_uneven_batches = True
    return distribute


def _distribute(how: str, kind: str = "gpu") -> None:
    """Make ``how`` (from ``distribution_for``) the way Keras trains from now on; ``mirrored``
    mirrors over the devices of ``kind`` (the GPUs; tests mirror over logical CPUs)."""
    global _strategy
    import keras

    _strategy = None
    if backend() == "jax":  # set_distribution(None) undoes an earlier setup's choice
        if how == "data_parallel":
            from keras.src.backend.jax import distribution_lib

            distribution_lib.distribute_data_input = replicating_uneven_batches(
                distribution_lib.distribute_data_input)
        keras.distribution.set_distribution(keras.distribution.DataParallel() if how == "data_parallel" else None)
    elif how == "mirrored":
        import tensorflow as tf

        _strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices(kind.upper())])


def scope():
    """The context to build models and optimizers in: the MirroredStrategy's scope when
    ``setup`` chose one, else nothing (JAX's distribution is global)."""
    return _strategy.scope() if _strategy is not None else contextlib.nullcontext()


def resolve_profile(name: str | None = None, *, kind: str | None = None) -> RunProfile:
    """The run profile: ``name`` if given, else ``$COURSE_PROFILE``, else by device kind."""
    if name is None:
        name = os.environ.get(PROFILE_VARIABLE) or None
        if name is not None:
            name = name.strip().lower()
            if name not in PROFILES:
                raise ValueError(
                    f"{PROFILE_VARIABLE} must be one of {', '.join(PROFILES)}; got {name!r}"
                )
    if name is None:
        name = "cpu" if (kind or accelerator()) == "cpu" else "full"
    check_choice("profile", name, PROFILES)
    return RunProfile(name)


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and the Keras backend with one call."""
    check_number("seed", seed, low=0, integer=True)
    import keras

    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)


@contextlib.contextmanager
def seeded(seed: int):
    """Run a block from ``seed`` (``seed_everything``), then give the caller its own Python and
    NumPy random states back: building something reproducible in between (the zoo's network)
    changes nothing the caller draws next, whether it was built or read from a cache. That covers
    NumPy's global draws and the seeds of every layer and initializer the caller builds later
    (Keras draws them from Python's ``random``); ``keras.random`` calls given no seed draw from a
    global generator that ``seed_everything`` restarts, so pass them one."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    seed_everything(seed)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


@dataclass
class Runtime:
    """What ``setup`` found and chose; printed by the first cell of every notebook."""

    backend: str
    devices: list[str]
    accelerator: str
    precision: str
    profile: RunProfile
    seed: int
    dataset: str
    distribution: str = "single"
    versions: dict[str, str] = field(default_factory=dict)

    def report(self) -> str:
        rows = [
            ("backend", f"{self.backend} (Keras {self.versions.get('keras', '?')})"),
            ("devices", ", ".join(self.devices)),
            ("precision", self.precision + (f" (from {PRECISION_VARIABLE})"
                                             if os.environ.get(PRECISION_VARIABLE, "").strip() else "")),
            ("training", {"single": "one device",
                          "data_parallel": f"data parallel over {len(self.devices)} devices (keras.distribution)",
                          "mirrored": "MirroredStrategy over the GPUs"}[self.distribution]
             + "; compiled with XLA where it helps (jit_compile='auto')"),
            ("profile", f"{self.profile} (set {PROFILE_VARIABLE}=ci|cpu|full to change)"),
            ("dataset", self.dataset + _stand_in_note()),
            ("seed", str(self.seed)),
            ("python", self.versions.get("python", "?")),
        ]
        return "\n".join(f"{key:>10}: {value}" for key, value in rows)


def _stand_in_note() -> str:
    """What the report adds when ``COURSE_STAND_IN_DATA`` replaces downloads with stand-ins."""
    from .data import STAND_IN_VARIABLE, stand_in_scale

    scale = stand_in_scale()
    if scale is None:
        return ""
    return (f"\n{'':>12}STAND-INS ({STAND_IN_VARIABLE}={scale:g}): Keras's datasets are digits shaped like "
            f"them,\n{'':>12}ImageNet weights are random: times are real, accuracies and claims are not")


def setup(*, seed: int = 0, profile: str | None = None, dataset: str | None = None,
          set_precision: bool = True, verbose: bool = True, wants: str | None = None) -> Runtime:
    """Detect the runtime, choose precision and profile, seed everything and print a report.

    ``dataset`` defaults to the embedded digits in the ``ci`` and ``cpu`` profiles and
    to MNIST in ``full``; it is reported here and used by notebooks through ``runtime.dataset``.
    ``wants="gpu"`` (or ``"tpu"``): the notebook's ``full`` profile wants an accelerator; on a
    CPU the report says how to switch runtime (``switch_hint``).
    """
    import keras

    from .data import DATASETS

    requested = os.environ.get(BACKEND_VARIABLE, "").strip().lower()
    if requested and requested != backend():
        raise RuntimeError(
            f"{BACKEND_VARIABLE} asks for {requested} but Keras runs on {backend()}: Keras was imported "
            f"before course_lib (or ~/.keras/keras.json overrode it). Restart the kernel and run the "
            f"setup cell first.")
    device_list = devices()
    kind = accelerator(device_list)
    chosen = resolve_profile(profile, kind=kind)
    if dataset is None:
        dataset = chosen.pick(ci="digits", cpu="digits", full="mnist")
    check_choice("dataset", dataset, DATASETS)
    policy = precision_policy(kind)
    if set_precision:
        keras.mixed_precision.set_global_policy(policy)
    seed_everything(seed)
    how = distribution_for(backend(), device_list)
    _distribute(how, kind)
    info = Runtime(
        backend=backend(), devices=device_list, accelerator=kind, precision=policy,
        profile=chosen, seed=seed, dataset=dataset, distribution=how,
        versions={"keras": keras.__version__, "python": platform.python_version()},
    )
    if wants is not None:
        check_choice("wants", wants, ("gpu", "tpu"))
    if verbose:
        print(info.report())
        if wants is not None and kind == "cpu":
            print(switch_hint(wants, chosen.name))
    return info


def switch_hint(wants: str, profile: str = "cpu") -> str:
    """How a student gets the accelerator a notebook wants, on Colab and elsewhere; ``profile`` is
    the one running now on the CPU."""
    check_choice("wants", wants, ("gpu", "tpu"))
    check_choice("profile", profile, PROFILES)
    name = {"gpu": "a GPU (T4 or better)", "tpu": "a TPU (v2-8 or newer)"}[wants]
    running = ("it runs the full experiment anyway, slowly" if profile == "full"
               else f"it runs the smaller {profile} profile")
    return (f"\nThis notebook's full experiment wants {name}; on this CPU {running}.\n"
            f"  Colab: Runtime > Change runtime type > {'T4 GPU' if wants == 'gpu' else 'v2-8 TPU'} > Save, "
            f"then Runtime > Run all.\n"
            f"  Elsewhere: install a GPU build (pip install \"tensorflow[and-cuda]\" or \"jax[cuda12]\") "
            f"and restart the kernel.")
