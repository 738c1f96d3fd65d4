"""course_lib.hardware: FLOP counts, timing mechanics, the lecture's table, frameworks.

No test depends on how fast this machine is: only on shapes, formulas, validation and signs."""
import numpy as np
import pytest

from course_lib import hardware


def test_matmul_flops_counts_a_multiply_and_an_add_per_term():
    assert hardware.matmul_flops(2, 3, 4) == 2 * 2 * 3 * 4
    assert hardware.matmul_flops(1024) == 2 * 1024 ** 3
    assert hardware.matmul_flops(8, 16) == 2 * 8 * 16 * 8  # k defaults to m
    assert hardware.matmul_flops(np.int64(3)) == 54


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-4, ValueError), (2.5, TypeError),
                                        (True, TypeError), ("8", TypeError)])
def test_matmul_flops_rejects_non_positive_integers(bad, error):
    with pytest.raises(error, match="m must be"):
        hardware.matmul_flops(bad)
    with pytest.raises(error, match="k must be"):
        hardware.matmul_flops(4, 4, bad)


def test_peak_bound_is_generous_and_validated():
    assert hardware.peak_bound("cpu", cores=2) == 2 * 5e9 * 64
    assert hardware.peak_bound("cpu", "bfloat16", cores=2) > hardware.peak_bound("cpu", "float32", cores=2)
    assert hardware.peak_bound("cpu") >= 5e9 * 64
    assert hardware.peak_bound("gpu") == hardware.peak_bound("tpu") == 1e16
    # every chip of the lecture is physically possible under the bound
    assert all(chip.tflops * 1e12 < hardware.peak_bound("gpu") for chip in hardware.LECTURE_HARDWARE)
    with pytest.raises(ValueError, match="kind"):
        hardware.peak_bound("fpga")
    with pytest.raises(ValueError, match="dtype"):
        hardware.peak_bound("cpu", "int8")
    with pytest.raises(ValueError, match="cores"):
        hardware.peak_bound("cpu", cores=0)


def test_matmul_dtypes_per_device():
    assert hardware.matmul_dtypes("cpu") == ("float32",)
    assert set(hardware.matmul_dtypes("gpu")) == {"float32", "float16", "bfloat16"}
    assert "bfloat16" in hardware.matmul_dtypes("tpu") and "float16" not in hardware.matmul_dtypes("tpu")
    with pytest.raises(ValueError, match="kind"):
        hardware.matmul_dtypes("GPU0")


def test_lecture_table_matches_the_slides_and_names_precisions():
    slide = {chip.name: chip.tflops for chip in hardware.LECTURE_HARDWARE}
    assert slide == {"GTX 580": 0.2, "Tesla P100": 11.0, "Tesla V100": 125.0, "Cloud TPU v2": 180.0}
    precisions = {chip.name: chip.precision for chip in hardware.LECTURE_HARDWARE}
    assert precisions["GTX 580"] == "float64" and precisions["Tesla P100"] == "float32"
    assert "float16" in precisions["Tesla V100"] and "bfloat16" in precisions["Cloud TPU v2"]
    # the pod slide: 64 Cloud TPUs = 11.5 PFLOPs
    assert abs(hardware.TPU_POD_BOARDS * slide["Cloud TPU v2"] / 1000 - 11.5) < 0.05
    text = hardware.lecture_table()
    for chip in hardware.LECTURE_HARDWARE:
        assert chip.name in text and chip.precision in text


def test_time_call_excludes_warmup_and_counts_calls():
    calls = []
    timing = hardware.time_call(lambda a, b=0: calls.append((a, b)) or np.zeros(3), 1, b=2, repeats=4, warmup=2)
    assert len(calls) == 6 and calls[0] == (1, 2)
    assert len(timing.times) == 4 and len(timing.warmup) == 2
    assert all(t > 0 for t in timing.times)
    assert timing.best <= timing.median
    assert "best" in str(timing) and "of 4" in str(timing)
    assert hardware.time_call(lambda: None, warmup=0).warmup == ()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(repeats=0), ValueError, "repeats"), (dict(repeats=1.5), TypeError, "repeats"),
    (dict(warmup=-1), ValueError, "warmup"),
])
def test_time_call_validates(kwargs, error, match):
    with pytest.raises(error, match=match):
        hardware.time_call(lambda: None, **kwargs)
    with pytest.raises(TypeError, match="fn must be callable"):
        hardware.time_call("not a function")


def test_synchronize_waits_on_every_array_it_is_given():
    waited = []

    class Pending:  # stands in for a JAX array
        def block_until_ready(self):
            waited.append(self)
            return self

    one, two = Pending(), Pending()
    value = {"loss": one, "grads": [two, np.ones(2)]}
    assert hardware.synchronize(value) is value
    assert waited == [one, two]
    assert hardware.synchronize(3.0) == 3.0


def test_timing_table_and_compare():
    timings = hardware.compare({"slow": lambda x: x, "fast": lambda x: x}, np.ones(2), repeats=2)
    assert list(timings) == ["slow", "fast"]
    table = hardware.timing_table(timings, baseline="slow")
    assert table.splitlines()[1].startswith("slow") and table.splitlines()[1].endswith("1.00x")
    assert "first call" in table
    fixed = {"eager": hardware.Timing((0.004, 0.002, 0.003)), "jit": hardware.Timing((0.001,), (0.5,))}
    table = hardware.timing_table(fixed)
    assert "2.00x" in table and "500.00 ms" in table and "3.00 ms" in table  # best 2 ms vs 1 ms; median 3 ms
    with pytest.raises(KeyError, match="baseline"):
        hardware.timing_table(fixed, baseline="graph")
    with pytest.raises(ValueError, match="at least one"):
        hardware.timing_table({})
    with pytest.raises(ValueError, match="non-empty dict"):
        hardware.compare({})


def test_measure_matmul_on_the_keras_backend():
    import keras

    result = hardware.measure_matmul(16, repeats=2)
    assert (result.size, result.dtype, result.backend) == (16, "float32", keras.backend.backend())
    assert result.flops == 2 * 16 ** 3
    assert result.flops_per_second > 0 and result.tflops == pytest.approx(result.flops_per_second / 1e12)
    assert result.flops_per_second == pytest.approx(result.flops / result.timing.best)
    assert len(result.timing.times) == 2 and result.device
    assert "GFLOP/s" in str(result) and "float32" in str(result)


@pytest.mark.filterwarnings("ignore:Explicitly requested dtype float64")   # JAX's own word on it
def test_measure_matmul_times_the_dtype_it_names_or_says_why_not():
    import keras

    if keras.backend.backend() == "jax" and not __import__("jax").config.jax_enable_x64:
        with pytest.raises(RuntimeError, match="made float32 matrices when asked for float64.*jax_enable_x64"):
            hardware.measure_matmul(8, "float64", repeats=1)
    else:
        assert hardware.measure_matmul(8, "float64", repeats=1).dtype == "float64"


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(size=0), ValueError, "size"), (dict(size=8.0), TypeError, "size"),
    (dict(size=8, dtype="int32"), ValueError, "dtype"), (dict(size=8, repeats=0), ValueError, "repeats"),
])
def test_measure_matmul_validates(kwargs, error, match):
    with pytest.raises(error, match=match):
        hardware.measure_matmul(**kwargs)


def test_flops_chart_draws_the_table_and_the_best_measurement():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    small = hardware.MatmulResult(8, "float32", hardware.Timing((1e-3,)), "cpu:0", "jax")
    large = hardware.MatmulResult(64, "float32", hardware.Timing((1e-3,)), "cpu:0", "jax")
    half = hardware.MatmulResult(64, "bfloat16", hardware.Timing((5e-4,)), "cpu:0", "jax")
    fig = hardware.flops_chart([small, large, half])
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    labels = [tick.get_text() for tick in ax.get_xticklabels()]
    assert len(labels) == len(hardware.LECTURE_HARDWARE) + 2  # one bar per dtype, the best size
    assert any("n=64" in label and "float32" in label for label in labels)
    heights = sorted(p.get_height() for p in ax.patches if np.isfinite(p.get_height()))
    assert pytest.approx(large.tflops) in heights and pytest.approx(small.tflops) not in heights
    plt.close(fig)
    with pytest.raises(ValueError, match="MatmulResult"):
        hardware.flops_chart([])
    with pytest.raises(ValueError, match="MatmulResult"):
        hardware.flops_chart([1.0])


def test_frameworks_and_import_framework(monkeypatch, capsys):
    found = hardware.frameworks()
    assert set(found) == {"tensorflow", "jax", "torch"}
    assert all(version is None or isinstance(version, str) for version in found.values())
    assert any(found.values()), "the course needs TensorFlow or JAX"
    monkeypatch.setattr(hardware, "frameworks", lambda: {"tensorflow": None, "jax": None, "torch": None})
    assert hardware.import_framework("tensorflow") is None
    assert "tensorflow is not installed" in capsys.readouterr().out
    with pytest.raises(ValueError, match="name"):
        hardware.import_framework("theano")


def test_full_float32_matmuls_turns_tf32_off_inside_only():
    installed = hardware.frameworks()
    if installed["jax"] is not None:
        import jax

        before = jax.config.jax_default_matmul_precision
    if installed["tensorflow"] is not None:
        import tensorflow as tf

        assert tf.config.experimental.tensor_float_32_execution_enabled(), "TensorFlow's default"
    with hardware.full_float32_matmuls():
        if installed["jax"] is not None:
            assert jax.config.jax_default_matmul_precision == "float32"
        if installed["tensorflow"] is not None:
            assert not tf.config.experimental.tensor_float_32_execution_enabled()
    if installed["jax"] is not None:
        assert jax.config.jax_default_matmul_precision == before
    if installed["tensorflow"] is not None:
        assert tf.config.experimental.tensor_float_32_execution_enabled(), "restored on exit"


def test_jax_x64_gives_float64_on_the_cpu_inside_only():
    jax = pytest.importorskip("jax")
    with hardware.jax_x64():
        inside = jax.grad(lambda x: jax.numpy.sum(jax.numpy.tanh(x) ** 2))(np.ones(2))
        assert inside.dtype == np.float64
        assert {device.platform for device in inside.devices()} == {"cpu"}, "float64 where it is exact"
    assert jax.numpy.asarray(np.ones(2)).dtype == np.float32


def test_jax_x64_without_a_cpu_backend_computes_float64_where_jax_does(monkeypatch):
    jax = pytest.importorskip("jax")

    def no_cpu(backend=None):
        raise RuntimeError(f"Unknown backend: {backend!r} requested")  # as under JAX_PLATFORMS=tpu

    monkeypatch.setattr(jax, "devices", no_cpu)
    with hardware.jax_x64():
        assert jax.numpy.ones(2, dtype="float64").dtype == np.float64
