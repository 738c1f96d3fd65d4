"""Transfer learning: reuse a network trained on one dataset for another.

The lecture's table, as ``strategy(data, similarity)`` returns it:

                         very similar dataset          very different dataset
    very little data     linear classifier on top      linear classifiers from different stages
    quite a lot of data  fine-tune a few layers        fine-tune a larger number of layers

The tools for each cell:

    features(model, layer, x)       a layer's outputs (the "features"), in inference mode
    linear_probe(model, layer, ...) a logistic regression on them (scikit-learn), its accuracies
    classifier_on(base, classes)    a new head on a base network called with training=False
    unfreeze_top(base, count)       make the top ``count`` weighted layers trainable, BatchNorm kept frozen

Fine-tuning has two traps, both handled here: a BatchNorm layer that trains on the new data
moves its moving mean and variance and wrecks the features the head learned on, so BatchNorm
layers stay frozen (in Keras 3 a frozen BatchNorm always normalizes with its stored statistics;
calling the base with ``training=False`` is not enough, because ``fit`` calls the outer model
with ``training=True`` and that reaches the base's layers: keras-team/keras#20285); and changing
``trainable`` takes effect only when the model is compiled again (with a low learning rate).
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from .validation import check_choice, check_number

STRATEGIES = {
    ("little", "similar"): "linear classifier on the top layer",
    ("little", "different"): "linear classifiers on features from different stages",
    ("lots", "similar"): "fine-tune a few layers",
    ("lots", "different"): "fine-tune a larger number of layers",
}


def strategy(data: str, similarity: str) -> str:
    """The lecture's advice for ``data`` ("little" or "lots") and ``similarity`` ("similar" or
    "different") between the new dataset and the one the network was trained on."""
    check_choice("data", data, ("little", "lots"))
    check_choice("similarity", similarity, ("similar", "different"))
    return STRATEGIES[data, similarity]


def _layer(model, layer):
    if isinstance(layer, int):
        check_number("layer", layer, low=-len(model.layers), high=len(model.layers) - 1, integer=True)
        return model.layers[layer]
    try:
        return model.get_layer(layer)
    except ValueError:
        names = ", ".join(item.name for item in model.layers)
        raise ValueError(f"model {model.name!r} has no layer {layer!r}; its layers: {names}") from None


def feature_model(model, layer) -> keras.Model:
    """A model from ``model``'s input to the output of ``layer`` (a name or an index)."""
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, _layer(model, layer).output, name=f"{model.name}_to_{_layer(model, layer).name}")


def features(model, layer, x, *, batch_size: int = 256, pool: str = "average") -> np.ndarray:
    """The outputs of ``layer`` for images ``x``, computed in inference mode, one row per image.

    pool  how a convolutional layer's (H, W, C) output becomes a vector: "average" over the
          positions (C numbers, as global average pooling does) or "flatten" (H·W·C).
    """
    check_choice("pool", pool, ("average", "flatten"))
    check_number("batch_size", batch_size, low=1, integer=True)
    if len(x) == 0:
        raise ValueError("x must hold at least one image; got none")
    extractor = feature_model(model, layer)
    rows = []
    for start in range(0, len(x), batch_size):
        out = keras.ops.convert_to_numpy(extractor(x[start:start + batch_size], training=False))
        if out.ndim > 2:
            out = out.mean(axis=tuple(range(1, out.ndim - 1))) if pool == "average" else out.reshape(len(out), -1)
        rows.append(out)
    return np.concatenate(rows).astype(np.float64)


@dataclass
class Probe:
    """A linear classifier on one layer's features and how well it does."""
    layer: str
    dimensions: int
    train_accuracy: float
    val_accuracy: float
    classifier: object  # the fitted scikit-learn pipeline (standardize, then logistic regression)


def linear_probe(model, layer, x_train, y_train, x_val, y_val, *, C: float = 1.0, pool: str = "average",
                 max_iter: int = 2000) -> Probe:
    """Fit a logistic regression (scikit-learn, L2 strength 1/C) on ``layer``'s standardized
    features of the training images, and score it on the validation images. The network is
    not changed: this measures how linearly separable the classes are in that layer."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    check_number("C", C, low=0.0, low_inclusive=False)
    for name, x, y in (("train", x_train, y_train), ("val", x_val, y_val)):
        if len(x) != len(y):
            raise ValueError(f"x_{name} and y_{name} must have the same length; got {len(x)} and {len(y)}")
    train, val = (features(model, layer, x, pool=pool) for x in (x_train, x_val))
    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    classifier.fit(train, y_train)
    return Probe(_layer(model, layer).name, train.shape[1], float(classifier.score(train, y_train)),
                 float(classifier.score(val, y_val)), classifier)


def classifier_on(base, classes: int, *, dropout: float = 0.0, name: str | None = None) -> keras.Model:
    """A new classifier: ``base`` with its BatchNorm layers frozen (so they always normalize with
    their stored statistics, even in ``fit``), global average pooling if its output is a feature
    map, optional dropout, and a softmax layer of ``classes`` units.

    The base is also called with ``training=False``, which keeps its BatchNorm and dropout in
    inference mode when the model is called directly; during ``fit`` only the freezing does."""
    check_number("classes", classes, low=2, integer=True)
    check_number("dropout", dropout, low=0.0, high=1.0, high_inclusive=False)
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    inputs = keras.Input(base.input_shape[1:])
    x = base(inputs, training=False)
    if len(x.shape) > 2:
        x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name=name or f"{base.name}_transfer")


def unfreeze_top(base, count: int) -> list[str]:
    """Make the top ``count`` layers of ``base`` that have weights trainable and freeze the rest;
    BatchNormalization layers stay frozen wherever they are. Returns the trainable layers' names.

    ``count=0`` freezes the whole base (feature extraction). Compile the model again afterwards,
    with a low learning rate: ``trainable`` changes take effect at ``compile``.
    """
    weighted = [layer for layer in base.layers if layer.weights]
    check_number("count", count, low=0, high=len(weighted), integer=True)
    base.trainable = True
    top = {id(layer) for layer in weighted[len(weighted) - count:]} if count else set()
    names = []
    for layer in base.layers:
        layer.trainable = id(layer) in top and not isinstance(layer, keras.layers.BatchNormalization)
        if layer.trainable:
            names.append(layer.name)
    return names
