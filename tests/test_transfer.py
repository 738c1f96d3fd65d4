"""Transfer learning tools: features, linear probes, new heads, fine-tuning with BatchNorm frozen."""
import keras
import numpy as np
import pytest

from course_lib import transfer


def _base(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.Activation("relu", name="relu1")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.Activation("relu", name="relu2")(x)
    return keras.Model(inputs, x, name="base")


def _data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = rng.normal(size=(n, 8, 8, 1)).astype("float32") * 0.5
    x[y == 1, :4] += 1.5                      # class 1: a bright top half
    return x, y


def test_strategy_is_the_lectures_table():
    assert transfer.strategy("little", "similar") == "linear classifier on the top layer"
    assert "different stages" in transfer.strategy("little", "different")
    assert transfer.strategy("lots", "similar") == "fine-tune a few layers"
    assert transfer.strategy("lots", "different") == "fine-tune a larger number of layers"
    with pytest.raises(ValueError, match="data must be one of 'little', 'lots'"):
        transfer.strategy("some", "similar")


def test_features_pool_or_flatten_in_inference_mode():
    base, (x, _) = _base(), _data(10)
    assert transfer.features(base, "relu2", x, batch_size=3).shape == (10, 16)
    assert transfer.features(base, "relu2", x, pool="flatten").shape == (10, 4 * 4 * 16)
    assert transfer.features(base, 1, x).shape == (10, 8)
    again = transfer.features(base, "relu2", x)
    assert np.array_equal(again, transfer.features(base, "relu2", x))   # no batch statistics used
    with pytest.raises(ValueError, match="has no layer 'fc7'; its layers: input_layer"):
        transfer.features(base, "fc7", x)
    with pytest.raises(ValueError, match="x must hold at least one image; got none"):
        transfer.features(base, "relu2", x[:0])


def test_linear_probe_separates_easy_classes():
    base, (x, y) = _base(), _data()
    probe = transfer.linear_probe(base, "relu1", x[:150], y[:150], x[150:], y[150:])
    assert probe.layer == "relu1" and probe.dimensions == 8
    assert probe.val_accuracy > 0.9 and probe.train_accuracy > 0.9
    with pytest.raises(ValueError, match="x_val and y_val must have the same length"):
        transfer.linear_probe(base, "relu1", x, y, x, y[:3])


def test_unfreeze_top_keeps_batchnorm_frozen():
    base = _base()
    assert transfer.unfreeze_top(base, 0) == [] and not base.trainable_weights
    assert transfer.unfreeze_top(base, 2) == ["conv2"]        # the top two weighted layers: conv2, bn2
    assert transfer.unfreeze_top(base, 4) == ["conv1", "conv2"]
    with pytest.raises(ValueError, match="count must be in \\[0, 4\\]"):
        transfer.unfreeze_top(base, 5)


def test_fine_tuning_leaves_batchnorm_statistics_alone():
    base, (x, y) = _base(), _data()
    keras.Model(base.input, base.output).predict(x, verbose=0)
    statistics = lambda name: [keras.ops.convert_to_numpy(w).copy() for w in
                               (base.get_layer(name).moving_mean, base.get_layer(name).moving_variance)]
    moving = {name: statistics(name) for name in ("bn1", "bn2")}
    model = transfer.classifier_on(base, 2)
    transfer.unfreeze_top(base, 4)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    conv1 = keras.ops.convert_to_numpy(base.get_layer("conv1").kernel).copy()
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    for name, before in moving.items():
        assert all(np.array_equal(a, b) for a, b in zip(before, statistics(name))), f"{name}'s statistics moved"
    assert not np.allclose(conv1, keras.ops.convert_to_numpy(base.get_layer("conv1").kernel))  # it did train
    assert model.get_layer("head").output.shape == (None, 2)


def test_batchnorm_in_training_mode_would_move():
    """The trap the tools avoid: a base whose BatchNorm is trainable updates its statistics in fit,
    even when the outer model calls it with training=False (keras-team/keras#20285)."""
    base, (x, y) = _base(), _data()
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Dense(2, activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(base(inputs, training=False)))
    model = keras.Model(inputs, outputs)
    mean = keras.ops.convert_to_numpy(base.get_layer("bn1").moving_mean).copy()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    assert not np.allclose(mean, keras.ops.convert_to_numpy(base.get_layer("bn1").moving_mean)), \
        "Keras now keeps a base called with training=False in inference mode during fit: update transfer.py's docstrings"


def test_classifier_on_freezes_batchnorm_even_in_a_trainable_base():
    base, (x, y) = _base(), _data()
    model = transfer.classifier_on(base, 2)
    assert base.trainable and not base.get_layer("bn1").trainable and base.get_layer("conv1").trainable
    mean = keras.ops.convert_to_numpy(base.get_layer("bn1").moving_mean).copy()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    assert np.array_equal(mean, keras.ops.convert_to_numpy(base.get_layer("bn1").moving_mean))
