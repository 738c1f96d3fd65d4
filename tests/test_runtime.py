import os
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


def test_accelerator_and_precision(monkeypatch):
    monkeypatch.delenv("COURSE_PRECISION", raising=False)
    assert runtime.accelerator(["cpu:0"]) == "cpu"
    assert runtime.accelerator(["cpu:0", "gpu:0"]) == "gpu"
    assert runtime.accelerator(["cpu:0", "tpu:0", "tpu:1"]) == "tpu"
    assert runtime.precision_policy("cpu") == "float32"
    assert runtime.precision_policy("gpu") == "mixed_float16"
    assert runtime.precision_policy("tpu") == "mixed_bfloat16"
    with pytest.raises(ValueError, match="kind must be one of"):
        runtime.precision_policy("npu")


def test_course_precision_overrides_the_devices_policy(monkeypatch):
    monkeypatch.setenv("COURSE_PRECISION", "mixed_float16")
    assert runtime.precision_policy("cpu") == "mixed_float16"
    monkeypatch.setenv("COURSE_PRECISION", "float16")
    with pytest.raises(ValueError, match=r"COURSE_PRECISION='float16'.*mixed_float16"):
        runtime.precision_policy("cpu")


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


def test_backend_choice_follows_override_then_tpu_then_tensorflow():
    both = lambda name: name in ("tensorflow", "jax")  # noqa: E731
    jax_only = lambda name: name == "jax"  # noqa: E731
    assert runtime.choose_backend({"KERAS_BACKEND": " JAX "}, installed=both) == "jax"
    assert runtime.choose_backend({}, installed=both, tpu=False) == "tensorflow"
    assert runtime.choose_backend({}, installed=both, tpu=True) == "jax"
    assert runtime.choose_backend({}, installed=jax_only, tpu=False) == "jax"
    assert runtime.choose_backend({"COLAB_TPU_ADDR": "10.0.0.2:8470"}, installed=both) == "jax"
    with pytest.raises(ValueError, match="KERAS_BACKEND must be one of .*got 'theano'"):
        runtime.choose_backend({"KERAS_BACKEND": "theano"}, installed=both)
    with pytest.raises(RuntimeError, match="neither is installed"):
        runtime.choose_backend({}, installed=lambda name: False, tpu=False)


def test_tpu_is_seen_in_the_environment_or_in_dev(tmp_path):
    assert not runtime.tpu_present({}, device_files=str(tmp_path / "accel*"))
    assert runtime.tpu_present({"TPU_NAME": "local"}, device_files=str(tmp_path / "accel*"))
    (tmp_path / "accel0").touch()
    assert runtime.tpu_present({}, device_files=str(tmp_path / "accel*"))


def test_importing_course_lib_sets_the_backend_keras_then_uses():
    import keras

    import course_lib  # noqa: F401  (imported first by every notebook's setup cell)

    assert os.environ["KERAS_BACKEND"] == keras.backend.backend()


def test_distribution_for_each_case():
    assert runtime.distribution_for("tensorflow", ["cpu:0"]) == "single"
    assert runtime.distribution_for("tensorflow", ["cpu:0", "gpu:0"]) == "single"
    assert runtime.distribution_for("tensorflow", ["cpu:0", "gpu:0", "gpu:1"]) == "mirrored"
    assert runtime.distribution_for("jax", ["cpu:0", "gpu:0", "gpu:1"]) == "data_parallel"
    assert runtime.distribution_for("jax", [f"tpu:{i}" for i in range(8)]) == "data_parallel"
    assert runtime.distribution_for("jax", ["cpu:0"]) == "single"
    assert runtime.distribution_for("tensorflow", ["cpu:0", "cpu:1"]) == "single"  # TF has one CPU device
    with pytest.raises(ValueError, match="backend must be one of"):
        runtime.distribution_for("caffe", ["cpu:0"])


def test_setup_refuses_a_silent_fallback_to_another_backend(monkeypatch):
    import keras

    other = "jax" if keras.backend.backend() == "tensorflow" else "tensorflow"
    monkeypatch.setenv("KERAS_BACKEND", other)
    with pytest.raises(RuntimeError, match=f"KERAS_BACKEND asks for {other} but Keras runs on"):
        runtime.setup(verbose=False)


def test_setup_on_one_device_builds_in_no_special_scope(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "ci")
    info = runtime.setup(verbose=False)
    assert info.distribution == "single" and "training" in info.report()
    with runtime.scope():
        pass


def test_setup_tells_how_to_switch_runtime_when_the_notebook_wants_an_accelerator(capsys, monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "ci")
    runtime.setup(wants="gpu")
    printed = capsys.readouterr().out
    if runtime.accelerator() == "cpu":
        assert "Runtime > Change runtime type > T4 GPU" in printed
        assert "it runs the smaller ci profile" in printed
    assert "v2-8 TPU" in runtime.switch_hint("tpu")
    assert "runs the full experiment anyway, slowly" in runtime.switch_hint("gpu", "full")
    with pytest.raises(ValueError, match="wants must be one of 'gpu', 'tpu'; got 'npu'"):
        runtime.setup(wants="npu", verbose=False)
