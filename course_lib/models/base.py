"""What every builder shares: the layer namespace it builds with, and argument checks."""
from __future__ import annotations

import functools
from types import SimpleNamespace

from ..validation import check_number

_KERAS_LAYERS = ("Conv2D", "MaxPooling2D", "AveragePooling2D", "Dense", "BatchNormalization",
                 "Flatten", "GlobalAveragePooling2D", "ZeroPadding2D", "Add", "Concatenate",
                 "Activation", "ReLU", "Dropout")


def resolve(nn):
    """The namespace a builder calls (``nn.Conv2D``, ``nn.Input``, ``nn.Model``, ...).

    ``None`` means Keras (with the course's ``LocalResponseNormalization`` and
    ``ZeroPadShortcut``); ``course_lib.accounting.SHAPES`` computes shapes and parameter
    counts without Keras, for instant accounting.
    """
    if nn is not None:
        return nn
    import keras

    from .layers import LocalResponseNormalization, ZeroPadShortcut

    return SimpleNamespace(Input=keras.Input, Model=keras.Model,
                           LocalResponseNormalization=LocalResponseNormalization,
                           ZeroPadShortcut=ZeroPadShortcut,
                           **{name: getattr(keras.layers, name) for name in _KERAS_LAYERS})


def check_input_shape(input_shape) -> tuple[int, int, int]:
    """``input_shape`` must be (height, width, channels), positive ints."""
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels); got {input_shape!r}")
    for axis, size in zip(("height", "width", "channels"), input_shape):
        check_number(f"input_shape {axis}", size, low=1, integer=True)
    return tuple(input_shape)


def check_head(classes, width):
    check_number("classes", classes, low=1, integer=True)
    check_number("width", width, low=0, low_inclusive=False)


def scaled(filters: int, width: float) -> int:
    """``filters`` times the width multiplier, at least 1: the same architecture, narrower."""
    return max(1, int(round(filters * width)))


def builder(build):
    """Make a model builder check its shapes first, Keras-free, so a too-small ``input_shape``
    fails with a message naming the layer and the sizes (not deep inside Keras); then build the
    Keras model in ``runtime.scope()``, where a multi-GPU strategy wants its variables."""
    @functools.wraps(build)
    def checked(*args, nn=None, **kwargs):
        if nn is not None:
            return build(*args, nn=nn, **kwargs)
        from ..accounting import SHAPES
        from ..runtime import scope

        build(*args, nn=SHAPES, **kwargs)
        with scope():
            return build(*args, nn=nn, **kwargs)

    return checked
