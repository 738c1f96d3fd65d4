import random

import numpy as np
import pytest

from course_lib import runtime


def test_profile_pick_chooses_by_name():
    assert runtime.RunProfile("ci").pick(ci=1, cpu=2, full=3) == 1
    assert runtime.RunProfile("full").pick(ci=1, cpu=2, full=3) == 3


def test_unknown_profile_is_refused():
    with pytest.raises(ValueError, match="profile must be one of 'ci', 'cpu', 'full'; got 'fast'"):
        runtime.RunProfile("fast")


def test_profile_from_environment_overrides(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", " CPU ")
    assert runtime.resolve_profile(kind="gpu").name == "cpu"
    monkeypatch.setenv("COURSE_PROFILE", "bogus")
    with pytest.raises(ValueError, match="COURSE_PROFILE must be one of ci, cpu, full; got 'bogus'"):
        runtime.resolve_profile()


def test_profile_follows_the_device_without_override(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    assert runtime.resolve_profile(kind="cpu").name == "cpu"
    assert runtime.resolve_profile(kind="gpu").name == "full"
    assert runtime.resolve_profile(kind="tpu").name == "full"
    assert runtime.resolve_profile("ci", kind="gpu").name == "ci"


def test_accelerator_and_precision():
    assert runtime.accelerator(["cpu:0"]) == "cpu"
    assert runtime.accelerator(["cpu:0", "gpu:0"]) == "gpu"
    assert runtime.accelerator(["cpu:0", "tpu:0", "tpu:1"]) == "tpu"
    assert runtime.precision_policy("cpu") == "float32"
    assert runtime.precision_policy("gpu") == "mixed_float16"
    assert runtime.precision_policy("tpu") == "mixed_bfloat16"
    with pytest.raises(ValueError, match="kind must be one of"):
        runtime.precision_policy("npu")


def test_devices_on_this_machine():
    found = runtime.devices()
    assert "cpu:0" in found or any(d.startswith(("gpu:", "tpu:")) for d in found)


def test_seed_everything_repeats_python_numpy_and_keras():
    import keras

    def draw():
        runtime.seed_everything(7)
        return (random.random(), np.random.rand(),
                float(keras.ops.convert_to_numpy(keras.random.uniform((1,)))[0]))

    assert draw() == draw()
    with pytest.raises(ValueError, match="seed must be in"):
        runtime.seed_everything(-1)


def test_setup_reports_everything(capsys, monkeypatch):
    import keras

    monkeypatch.setenv("COURSE_PROFILE", "ci")
    info = runtime.setup(seed=3)
    printed = capsys.readouterr().out
    for word in ("backend", "devices", "precision", "profile", "dataset", "seed"):
        assert word in printed
    assert info.backend == keras.backend.backend() and info.backend in printed
    assert info.profile.name == "ci" and info.dataset == "digits"
    assert keras.config.dtype_policy().name == info.precision
    with pytest.raises(ValueError, match="dataset must be one of"):
        runtime.setup(dataset="imagenet", verbose=False)
