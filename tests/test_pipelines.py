import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from course_lib import data
from course_lib.pipelines import ArrayPipeline, pipeline


def test_batches_cover_every_example_once_per_epoch_and_reshuffle():
    x, y = np.arange(10, dtype="float32").reshape(10, 1), np.arange(10)
    batches = ArrayPipeline(x, y, batch_size=4, seed=0)
    assert len(batches) == 3
    first = np.concatenate([batches[i][1] for i in range(len(batches))])
    assert sorted(first) == list(range(10))
    batches.on_epoch_end()
    second = np.concatenate([batches[i][1] for i in range(len(batches))])
    assert sorted(second) == list(range(10)) and not np.array_equal(first, second)
    for i in range(len(batches)):
        xb, yb = batches[i]
        assert np.array_equal(xb[:, 0], yb)  # images stay with their labels


def test_drop_remainder_gives_static_shapes_and_augment_is_applied():
    x, y = np.zeros((10, 4, 4, 1)), np.zeros(10)
    batches = ArrayPipeline(x, y, batch_size=4, drop_remainder=True,
                            augment=lambda b, rng: b + 1.0)
    assert len(batches) == 2 and all(batches[i][0].shape == (4, 4, 4, 1) for i in range(2))
    assert np.all(batches[0][0] == 1.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"y": np.zeros(3)}, "x and y must have the same length"),
    ({"batch_size": 0}, "batch_size must be in"),
    ({"augment": "crop"}, "augment must be a function"),
    ({"batch_size": 20, "drop_remainder": True}, "leaves no batch"),
])
def test_bad_pipeline_arguments(kwargs, message):
    args = {"x": np.zeros((10, 2)), "y": np.zeros(10), **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        ArrayPipeline(args.pop("x"), args.pop("y"), **args)


def test_a_model_trains_from_the_pipeline_of_this_backend():
    split = data.load("digits", seed=0)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    augment = lambda b, rng: data.random_crop(b, rng, padding=1)  # noqa: E731
    for source in (pipeline(split.x_train, split.y_train, batch_size=64),
                   pipeline(split.x_train, split.y_train, batch_size=64, augment=augment)):
        history = model.fit(source, epochs=3, verbose=0)
        assert history.history["loss"][-1] < history.history["loss"][0]


TENSORFLOW_FREE = textwrap.dedent("""
    import sys

    class NoTensorFlow:
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                raise ImportError("TensorFlow is not installed on this runtime")

    sys.meta_path.insert(0, NoTensorFlow())
    import keras, numpy as np
    import course_lib
    from course_lib import data, regularization
    from course_lib.pipelines import pipeline, ArrayPipeline
    info = course_lib.setup(seed=0)
    split = data.load("digits", seed=0)
    source = pipeline(split.x_train, split.y_train, batch_size=64,
                      augment=lambda b, rng: data.random_crop(b, rng, padding=1))
    assert isinstance(pipeline(split.x_train, split.y_train), ArrayPipeline)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              regularization.LectureDropout(0.8, seed=0),
                              keras.layers.Dense(10, activation="softmax",
                                                 kernel_regularizer=regularization.keras_l2(1e-3))])
    model.compile(regularization.keras_sgd_with_weight_decay(0.1, 1e-4),
                  "sparse_categorical_crossentropy")
    model.fit(source, epochs=2, verbose=0)
    assert "tensorflow" not in sys.modules, "TensorFlow was imported"
    print("backend", info.backend)
""")


def test_course_lib_trains_on_jax_without_tensorflow_installed():
    """As on Colab TPU runtimes: JAX backend, TensorFlow not importable."""
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run([sys.executable, "-c", TENSORFLOW_FREE], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "backend jax" in result.stdout


@pytest.mark.parametrize("kind, batches", [("cpu", 3), ("gpu", 3), ("tpu", 2)])
def test_pipelines_keep_batch_shapes_static_on_a_tpu(monkeypatch, kind, batches):
    from course_lib import runtime

    monkeypatch.setattr(runtime, "accelerator", lambda: kind)
    x, y = np.zeros((10, 2, 2, 1), np.float32), np.arange(10)
    for augment in (None, lambda b, rng: b):  # tf.data on TensorFlow, and the ArrayPipeline
        assert len(list(iter(pipeline(x, y, batch_size=4, augment=augment, shuffle=False)))
                   if augment is None else pipeline(x, y, batch_size=4, augment=augment)) == batches
