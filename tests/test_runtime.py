import functools
import os
import random
import subprocess
import sys

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


def test_seeded_gives_the_caller_its_random_state_back():
    import keras

    def draws():
        return (random.random(), np.random.rand(),
                keras.ops.convert_to_numpy(keras.initializers.GlorotUniform()((3, 2))).tolist())

    runtime.seed_everything(5)
    expected = draws()
    runtime.seed_everything(5)
    with runtime.seeded(11):
        inside = draws()
    assert draws() == expected
    runtime.seed_everything(11)
    assert draws() == inside  # the block ran from its own seed
    runtime.seed_everything(5)
    with pytest.raises(RuntimeError), runtime.seeded(11):
        raise RuntimeError("the block failed")
    assert draws() == expected
    with pytest.raises(ValueError, match="seed must be in"), runtime.seeded(-1):
        pass


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


def test_setup_says_loudly_when_stand_ins_replace_the_datasets(capsys, monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "ci")
    monkeypatch.delenv("COURSE_STAND_IN_DATA", raising=False)
    runtime.setup(dataset="mnist")
    assert "STAND-INS" not in capsys.readouterr().out
    monkeypatch.setenv("COURSE_STAND_IN_DATA", "0.05")
    runtime.setup(dataset="mnist")
    printed = capsys.readouterr().out
    assert "STAND-INS (COURSE_STAND_IN_DATA=0.05)" in printed and "claims are not" in printed
    monkeypatch.setenv("COURSE_STAND_IN_DATA", "all")
    with pytest.raises(ValueError, match="COURSE_STAND_IN_DATA must be a share"):
        runtime.setup(dataset="mnist")


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
    device_files = str(tmp_path / runtime._TPU_DEVICE_FILES.removeprefix("/dev/"))
    seen = functools.partial(runtime.tpu_present, device_files=device_files, pci_devices=str(tmp_path / "no-pci"))
    assert not seen({})
    assert seen({"TPU_NAME": "local"})
    (tmp_path / "accel").mkdir()                  # Linux's compute-accelerator folder: any accelerator
    (tmp_path / "accel" / "accel0").touch()
    assert not seen({})
    (tmp_path / "accel0").touch()                 # a TPU VM's chip
    assert seen({})


def _pci_device(root, slot, vendor, device):
    folder = root / slot
    folder.mkdir(parents=True)
    (folder / "vendor").write_text(vendor + "\n")
    (folder / "device").write_text(device + "\n")


def test_a_tpu_chip_on_the_pci_bus_is_a_tpu_and_googles_network_card_is_not(tmp_path):
    no_dev_files, pci = str(tmp_path / "dev" / "accel[0-9]*"), tmp_path / "pci"
    _pci_device(pci, "0000:00:04.0", "0x1ae0", "0x0042")   # gVNIC, the network card of Google's VMs
    _pci_device(pci, "0000:00:05.0", "0x10de", "0x2330")   # an NVIDIA H100
    (pci / "0000:00:06.0").mkdir()                          # a folder without ids
    assert runtime.tpu_chips_on_pci(str(pci)) == []
    assert not runtime.tpu_present({}, device_files=no_dev_files, pci_devices=str(pci))
    _pci_device(pci, "0000:00:07.0", "0x1ae0", "0x0063")   # Colab's v5e-1: /dev/vfio/0, no /dev/accel0
    assert runtime.tpu_chips_on_pci(str(pci)) == ["v5e"]
    assert runtime.tpu_present({}, device_files=no_dev_files, pci_devices=str(pci))
    assert not runtime.tpu_present({}, device_files=no_dev_files, pci_devices=str(tmp_path / "no-such-bus"))


def test_a_backend_named_in_capitals_reaches_keras_spelt_as_keras_wants():
    import keras

    spelt_loudly = {**os.environ, "KERAS_BACKEND": f" {keras.backend.backend().upper()} "}
    code = "import course_lib, keras; print(keras.backend.backend())"
    run = subprocess.run([sys.executable, "-c", code], env=spelt_loudly, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[-1] == keras.backend.backend()


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


# Fits, evaluates and predicts with batches that do not split over the devices (23 examples in
# batches of 8 leave 7; predict on 5), as the notebooks do, then prints what came out.
_DATA_PARALLEL_RUN = """
import json, sys
import numpy as np
from course_lib import runtime

info = runtime.setup(seed=0, verbose=False)
import keras
from keras.src.backend.jax import distribution_lib

rng = np.random.default_rng(0)
x, y = rng.random((23, 4), dtype=np.float32), rng.integers(0, 3, 23)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
model.compile(keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
loss, accuracy = model.evaluate(x, y, batch_size=8, verbose=0)
few = model.predict(x[:5], verbose=0)
kernel_sharding = str(model.weights[0].value.sharding)
keras_alone = None
if info.distribution == "data_parallel":  # Keras's own splitting, without the course's wrapper
    distribution_lib.distribute_data_input = distribution_lib.distribute_data_input.__wrapped__
    try:  # a failed predict leaves the model's variables purged: it comes last
        model.predict(x[:5], verbose=0)
        keras_alone = "ok"
    except Exception as error:
        keras_alone = type(error).__name__
print(json.dumps({"distribution": info.distribution, "devices": len(info.devices),
                  "losses": history.history["loss"] + [loss], "predicted": few.tolist(),
                  "kernel_sharding": kernel_sharding, "keras_alone": keras_alone}))
"""


def _run_on_cpu_devices(count):
    import json
    import subprocess
    import sys

    environment = {**os.environ, "KERAS_BACKEND": "jax", "COURSE_PROFILE": "ci",
                   "XLA_FLAGS": f"--xla_force_host_platform_device_count={count}"}
    done = subprocess.run([sys.executable, "-c", _DATA_PARALLEL_RUN], env=environment,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_data_parallel_over_eight_devices_trains_like_one_device_with_uneven_batches():
    """A TPU v2-8's mesh (8 devices) on this CPU: every batch that does not split over 8 is
    replicated by the course (runtime.replicating_uneven_batches), and the numbers are those of
    one device. Keras alone still fails on them (keras-team/keras#21167): when it stops failing,
    the wrapper can go."""
    pytest.importorskip("jax")
    one, eight = _run_on_cpu_devices(1), _run_on_cpu_devices(8)
    assert (one["distribution"], one["devices"]) == ("single", 1)
    assert (eight["distribution"], eight["devices"]) == ("data_parallel", 8)
    assert "'batch': 8" in eight["kernel_sharding"]  # the weights live on all 8 devices
    np.testing.assert_allclose(eight["losses"], one["losses"], rtol=1e-5)
    np.testing.assert_allclose(eight["predicted"], one["predicted"], rtol=1e-5, atol=1e-6)
    # Keras's IndivisibleError; under JAX 0.4.30 (constraints/oldest.txt) JAX's own ValueError
    assert eight["keras_alone"] in ("IndivisibleError", "ValueError"), \
        "Keras now splits uneven batches: drop the wrapper"


def test_batch_splits_evenly_counts_the_devices_of_the_batch_axis():
    jax = pytest.importorskip("jax")
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("batch", "model"))
    assert runtime.batch_splits_evenly(7, NamedSharding(mesh, PartitionSpec("batch")))
    assert runtime.batch_splits_evenly(7, NamedSharding(mesh, PartitionSpec()))
    fake = type("Sharding", (), {"spec": PartitionSpec(("batch", "model")), "mesh": type("M", (), {
        "shape": {"batch": 4, "model": 2}})()})()
    assert runtime.batch_splits_evenly(16, fake) and not runtime.batch_splits_evenly(12, fake)


# MirroredStrategy over `count` logical CPUs (the GPUs' code path), a model from a course builder
# fitted on 24 examples (batches of 8 split 4 + 4) and on 23 (the last batch splits 4 + 3).
_MIRRORED_RUN = """
import json, sys
import numpy as np
import tensorflow as tf

count = int(sys.argv[1])
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * count)
from course_lib import runtime
from course_lib.models.autoencoders import dense_autoencoder

runtime.setup(seed=0, verbose=False)
if count > 1:
    runtime._distribute("mirrored", "cpu")
import keras

report = {}
for size in (24, 23):
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((size, 8, 8, 1), dtype=np.float32)
    model = dense_autoencoder(input_shape=(8, 8, 1), code_size=2)
    model.compile(keras.optimizers.SGD(0.5), "mse")
    history = model.fit(x, x, batch_size=8, epochs=3, shuffle=False, verbose=0)
    report[size] = {"losses": history.history["loss"] + [model.evaluate(x, x, batch_size=8, verbose=0)],
                    "predicted": model.predict(x[:5], verbose=0).ravel().tolist()}
report["replicas"] = model.distribute_strategy.num_replicas_in_sync
report["variable"] = type(model.weights[0].value).__name__
print(json.dumps(report))
"""


def _run_mirrored_on_cpus(count):
    import json
    import subprocess
    import sys

    environment = {**os.environ, "KERAS_BACKEND": "tensorflow", "COURSE_PROFILE": "ci"}
    done = subprocess.run([sys.executable, "-c", _MIRRORED_RUN, str(count)], env=environment,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_mirrored_strategy_builds_in_its_scope_and_trains_like_one_device():
    """The multi-GPU path on two logical CPUs: the course's builder makes mirrored variables in
    the strategy's scope, and training gives one device's numbers when batches split evenly. An
    uneven last batch (7 = 4 + 3) is averaged per replica, so it differs in the 5th digit."""
    pytest.importorskip("tensorflow")
    one, two = _run_mirrored_on_cpus(1), _run_mirrored_on_cpus(2)
    assert (one["replicas"], one["variable"]) == (1, "ResourceVariable")
    assert (two["replicas"], two["variable"]) == (2, "MirroredVariable")
    for size, tolerance in (("24", 1e-5), ("23", 1e-3)):
        np.testing.assert_allclose(two[size]["losses"], one[size]["losses"], rtol=tolerance)
        np.testing.assert_allclose(two[size]["predicted"], one[size]["predicted"], rtol=tolerance)
