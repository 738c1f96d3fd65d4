import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from course_lib import data
from course_lib.pipelines import ArrayPipeline, OrderedEpochs, pipeline


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
    with pytest.raises(IndexError, match="batches 0 to 1"):  # the end, also where Keras has no __iter__
        batches[2]


@pytest.mark.parametrize("kwargs, message", [
    ({"y": np.zeros(3)}, "x and y must have the same length"),
    ({"batch_size": 0}, "batch_size must be in"),
    ({"augment": "crop"}, "augment must be a function"),
    ({"batch_size": 20, "drop_remainder": True}, "leaves no batch"),
    ({"seed": -1}, "seed must be in"),
])
@pytest.mark.parametrize("make", [ArrayPipeline, pipeline])   # pipeline: tf.data on TensorFlow
def test_bad_pipeline_arguments(kwargs, message, make):
    args = {"x": np.zeros((10, 2)), "y": np.zeros(10), **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        make(args.pop("x"), args.pop("y"), **args)


def _crop_and_jitter(batch, rng):
    return data.random_crop(batch, rng, padding=1) + rng.normal(0, 0.1, batch.shape)


def test_a_batch_is_the_same_whoever_reads_it_first():
    split = data.load("digits", seed=0)
    in_order, out_of_order = (ArrayPipeline(split.x_train[:100], split.y_train[:100], batch_size=32,
                                            augment=_crop_and_jitter, seed=3) for _ in range(2))
    for index in (2, 0, 0, 1):  # as Keras may: a peek at one batch, then the others in any order
        out_of_order[index]
    for epoch in range(2):
        for index in range(len(in_order)):
            for a, b in zip(in_order[index], out_of_order[index]):
                assert np.array_equal(a, b)
        in_order.on_epoch_end()
        out_of_order.on_epoch_end()
    assert in_order.epoch == 2 and not np.array_equal(in_order[0][1], ArrayPipeline(
        split.x_train[:100], split.y_train[:100], batch_size=32, seed=3)[0][1]), "epochs reshuffle"


def test_fit_sees_the_same_batches_whether_or_not_keras_peeks_first():
    """Keras reads a batch to build an unbuilt model (on JAX); a built one trains without that
    peek. Both must train on the same augmented batches."""
    split = data.load("digits", seed=0)

    def trained(build_first):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
        model.compile(keras.optimizers.SGD(0.1),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        if build_first:
            model.evaluate(split.x_val[:32], split.y_val[:32], verbose=0)
        batches = ArrayPipeline(split.x_train, split.y_train, batch_size=64, augment=_crop_and_jitter)
        model.fit(batches, epochs=2, shuffle=False, verbose=0)
        assert batches.epoch == 3, "fit ends an epoch as it sets up, then each of its own"
        return model.get_weights()

    for a, b in zip(trained(build_first=False), trained(build_first=True)):
        np.testing.assert_array_equal(a, b)


def test_a_model_trains_from_the_pipeline_of_this_backend():
    split = data.load("digits", seed=0)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    augment = lambda b, rng: data.random_crop(b, rng, padding=1)  # noqa: E731
    for source in (pipeline(split.x_train, split.y_train, batch_size=64),
                   pipeline(split.x_train, split.y_train, batch_size=64, augment=augment)):
        history = model.fit(source, epochs=3, shuffle=False, verbose=0)  # the pipeline shuffles
        assert history.history["loss"][-1] < history.history["loss"][0]


def test_ordered_epochs_visit_each_order_in_turn_with_a_short_last_batch():
    x, y = np.arange(10, dtype="float64").reshape(10, 1), np.arange(10)
    orders = [np.random.default_rng(seed).permutation(10) for seed in (1, 2)]
    batches = OrderedEpochs(x, y, orders, batch_size=4)
    assert (batches.epochs, batches.steps_per_epoch, len(batches)) == (2, 3, 6)
    assert [len(batches[i][1]) for i in range(6)] == [4, 4, 2, 4, 4, 2]
    for epoch, order in enumerate(orders):
        labels = np.concatenate([batches[epoch * 3 + step][1] for step in range(3)])
        assert np.array_equal(labels, order)
    xb, yb = batches[4]
    assert xb.dtype == np.float32 and np.array_equal(xb[:, 0], yb)


def test_shuffled_epochs_draw_each_order_in_turn_from_the_seed():
    x, y = np.zeros((10, 1)), np.arange(10)
    batches = OrderedEpochs.shuffled(x, y, epochs=3, seed=7, batch_size=4)
    shuffler = np.random.default_rng(7)
    assert all(np.array_equal(got, shuffler.permutation(10)) for got in batches.orders)
    again = OrderedEpochs.shuffled(x, y, epochs=3, seed=7, batch_size=4)
    assert all(np.array_equal(a, b) for a, b in zip(batches.orders, again.orders)), "same seed, same batches"
    assert not np.array_equal(batches.orders[0], batches.orders[1]), "each epoch in a new order"
    with pytest.raises(ValueError, match="epochs must be"):
        OrderedEpochs.shuffled(x, y, epochs=0, seed=7)


def _dropout_mlp(steps_per_execution):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dropout(0.5, seed=0), keras.layers.Dense(10)])
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=steps_per_execution)
    return model


@pytest.mark.parametrize("per_call", ["one step", "an epoch"])
def test_one_fit_over_ordered_epochs_trains_as_one_fit_per_epoch(per_call):
    """Pins the Keras behaviour OrderedEpochs relies on: given steps_per_epoch, fit reads on
    through one iterator from epoch to epoch, and calls the epoch callbacks between them."""
    split = data.load("digits", seed=0)
    x, y = split.x_train[:150].reshape(150, -1), split.y_train[:150]  # 150 = 4 × 32 + 22: a short last batch
    shuffler = np.random.default_rng(0)
    orders = [shuffler.permutation(len(x)) for _ in range(3)]
    steps_per_execution = 1 if per_call == "one step" else 5

    per_epoch_fits = _dropout_mlp(steps_per_execution)
    expected = []
    for order in orders:
        per_epoch_fits.fit(x[order], y[order], batch_size=32, shuffle=False, verbose=0)
        expected.append(per_epoch_fits.get_weights())

    one_fit = _dropout_mlp(steps_per_execution)
    batches = OrderedEpochs(x, y, orders, batch_size=32)
    after_each_epoch = []
    keep = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: after_each_epoch.append(one_fit.get_weights()))
    one_fit.fit(batches, epochs=batches.epochs, steps_per_epoch=batches.steps_per_epoch,
                shuffle=False, verbose=0, callbacks=[keep])
    assert len(after_each_epoch) == 3
    for epoch, (got, want) in enumerate(zip(after_each_epoch, expected)):
        assert all(np.array_equal(a, b) for a, b in zip(got, want)), f"weights differ after epoch {epoch + 1}"


@pytest.mark.parametrize("orders, kwargs, message", [
    ([], {}, "at least one epoch"),
    ([np.arange(4), np.arange(3)], {}, "as many rows as the first"),
    ([np.arange(4.0)], {}, "1-D array of row indices"),
    ([np.arange(4).reshape(2, 2)], {}, "1-D array of row indices"),
    ([np.array([0, 10])], {}, "outside x's 10 rows"),
    ([np.arange(4)], {"batch_size": 0}, "batch_size must be in"),
    ([np.arange(4)], {"y": np.zeros(3)}, "x and y must have the same length"),
])
def test_bad_ordered_epochs_arguments(orders, kwargs, message):
    args = {"x": np.zeros((10, 2)), "y": np.zeros(10), **kwargs}
    with pytest.raises(ValueError, match=message):
        OrderedEpochs(args.pop("x"), args.pop("y"), orders, **args)


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
