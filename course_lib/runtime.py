"""Where the course runs: backend, devices, precision, seeding and the run profile.

The run profile sizes every experiment:

* ``ci``   tiny sizes, seconds per notebook: what CI executes;
* ``cpu``  the embedded data at a size a laptop finishes in a few minutes;
* ``full`` real datasets and paper-like schedules, for a GPU or TPU.

``COURSE_PROFILE`` chooses the profile; without it the course takes ``full`` when an
accelerator is present and ``cpu`` otherwise.
"""
from __future__ import annotations

import os
import platform
import random
from dataclasses import dataclass, field

import numpy as np

from .validation import check_choice, check_number

PROFILES = ("ci", "cpu", "full")
PROFILE_VARIABLE = "COURSE_PROFILE"


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
    """The Keras dtype policy for a device kind: mixed float16 on GPU, mixed bfloat16 on TPU."""
    check_choice("kind", kind, ("cpu", "gpu", "tpu"))
    return {"cpu": "float32", "gpu": "mixed_float16", "tpu": "mixed_bfloat16"}[kind]


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
    versions: dict[str, str] = field(default_factory=dict)

    def report(self) -> str:
        rows = [
            ("backend", f"{self.backend} (Keras {self.versions.get('keras', '?')})"),
            ("devices", ", ".join(self.devices)),
            ("precision", self.precision),
            ("profile", f"{self.profile} (set {PROFILE_VARIABLE}=ci|cpu|full to change)"),
            ("dataset", self.dataset),
            ("seed", str(self.seed)),
            ("python", self.versions.get("python", "?")),
        ]
        return "\n".join(f"{key:>10}: {value}" for key, value in rows)


def setup(*, seed: int = 0, profile: str | None = None, dataset: str | None = None,
          set_precision: bool = True, verbose: bool = True) -> Runtime:
    """Detect the runtime, choose precision and profile, seed everything and print a report.

    ``dataset`` defaults to the embedded digits in the ``ci`` and ``cpu`` profiles and
    to MNIST in ``full``; it is reported here and used by notebooks through ``runtime.dataset``.
    """
    import keras

    from .data import DATASETS

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
    info = Runtime(
        backend=backend(), devices=device_list, accelerator=kind, precision=policy,
        profile=chosen, seed=seed, dataset=dataset,
        versions={"keras": keras.__version__, "python": platform.python_version()},
    )
    if verbose:
        print(info.report())
    return info
