"""The first case studies: LeNet-5, AlexNet, ZFNet and VGG, as the lecture draws them.

Each builder returns a Keras model (or a ``Traced`` one with ``nn=accounting.SHAPES``).
``input_shape``, ``classes`` and ``width`` (a multiplier on every layer's channels and hidden
units) make CPU-sized twins of the same architecture, e.g. ``vgg(16, input_shape=(32, 32, 1),
classes=10, width=1/16)``.
"""
from __future__ import annotations

from functools import partial

from ..validation import check_choice, check_number
from .base import builder, check_head, check_input_shape, resolve, scaled


def _classifier(x, nn, *, hidden, classes, dropout, activation, regularizer, names):
    """Flatten, then fully connected layers of ``hidden`` units with dropout, then the classes."""
    check_number("dropout", dropout, low=0.0, high=1.0, high_inclusive=False)
    x = nn.Flatten(name="flatten")(x)
    for units, name in zip(hidden, names):
        x = nn.Dense(units, activation="relu", kernel_regularizer=regularizer, name=name)(x)
        if dropout:
            x = nn.Dropout(dropout, name=f"{name}_dropout")(x)
    return nn.Dense(classes, activation=activation, kernel_regularizer=regularizer, name=names[-1])(x)


@builder
def lenet5(*, input_shape=(32, 32, 1), classes=10, width=1.0, activation="tanh", pooling="average",
           classifier_activation="softmax", kernel_regularizer=None, nn=None, name="lenet5"):
    """LeNet-5 (LeCun et al. 1998): CONV-POOL-CONV-POOL-FC-FC, 5×5 convolutions at stride 1 and
    2×2 subsampling at stride 2. C1 has 6 maps, C3 16; C5 (120) and F6 (84) are fully connected.
    61,706 parameters on 32×32×1 with 10 classes."""
    check_input_shape(input_shape)
    check_head(classes, width)
    check_choice("pooling", pooling, ("average", "max"))
    nn = resolve(nn)
    pool = nn.AveragePooling2D if pooling == "average" else nn.MaxPooling2D
    conv = partial(nn.Conv2D, kernel_size=5, activation=activation, kernel_regularizer=kernel_regularizer)
    inputs = nn.Input(input_shape, name="input")
    x = conv(scaled(6, width), name="c1")(inputs)
    x = pool(2, name="s2")(x)
    x = conv(scaled(16, width), name="c3")(x)
    x = pool(2, name="s4")(x)
    x = nn.Flatten(name="flatten")(x)
    x = nn.Dense(scaled(120, width), activation=activation, kernel_regularizer=kernel_regularizer, name="c5")(x)
    x = nn.Dense(scaled(84, width), activation=activation, kernel_regularizer=kernel_regularizer, name="f6")(x)
    outputs = nn.Dense(classes, activation=classifier_activation, kernel_regularizer=kernel_regularizer,
                       name="output")(x)
    return nn.Model(inputs, outputs, name=name)


def _alexnet_family(name, *, conv1, conv2, conv345, pool_padding, input_shape, classes, width, lrn,
                    dropout, classifier_activation, kernel_regularizer, nn):
    """conv1, conv2 = (filters, kernel, stride, padding); padding is "valid", "same" or a number
    of zeros (a ZeroPadding2D layer). Each is followed by a 3×3 stride-2 max pool (and NORM if
    ``lrn``); then three 3×3 convolutions, a pool, and FC6–FC8 with dropout."""
    check_head(classes, width)
    nn = resolve(nn)
    conv = partial(nn.Conv2D, activation="relu", kernel_regularizer=kernel_regularizer)
    inputs = nn.Input(input_shape, name="input")
    x = inputs
    for index, ((filters, kernel, stride, padding), pooling) in enumerate(zip((conv1, conv2), pool_padding), 1):
        if isinstance(padding, int):
            x = nn.ZeroPadding2D(padding, name=f"pad{index}")(x)
            padding = "valid"
        x = conv(scaled(filters, width), kernel, strides=stride, padding=padding, name=f"conv{index}")(x)
        x = nn.MaxPooling2D(3, strides=2, padding=pooling, name=f"pool{index}")(x)
        if lrn:
            x = nn.LocalResponseNormalization(name=f"norm{index}")(x)
    for index, filters in enumerate(conv345, 3):
        x = conv(scaled(filters, width), 3, padding="same", name=f"conv{index}")(x)
    x = nn.MaxPooling2D(3, strides=2, name="pool3")(x)
    outputs = _classifier(x, nn, hidden=[scaled(4096, width)] * 2, classes=classes, dropout=dropout,
                          activation=classifier_activation, regularizer=kernel_regularizer,
                          names=("fc6", "fc7", "fc8"))
    return nn.Model(inputs, outputs, name=name)


@builder
def alexnet(*, input_shape=(227, 227, 3), classes=1000, width=1.0, lrn=False, dropout=0.5,
            classifier_activation="softmax", kernel_regularizer=None, nn=None, name="alexnet"):
    """AlexNet (Krizhevsky et al. 2012) as on the slide, in one tower:

        [227x227x3] INPUT → CONV1 96 11×11/4 pad 0 [55x55x96] → POOL1 3×3/2 [27x27x96] → (NORM1)
        → CONV2 256 5×5/1 pad 2 [27x27x256] → POOL2 [13x13x256] → (NORM2)
        → CONV3 384, CONV4 384, CONV5 256 3×3/1 pad 1 [13x13] → POOL3 [6x6x256]
        → FC6 4096 → FC7 4096 → FC8 classes

    ``lrn=True`` adds the NORM layers (``LocalResponseNormalization``). 62,378,344 parameters.
    """
    check_input_shape(input_shape)
    return _alexnet_family(name, conv1=(96, 11, 4, "valid"), conv2=(256, 5, 1, "same"),
                           conv345=(384, 384, 256), pool_padding=("valid", "valid"),
                           input_shape=input_shape, classes=classes, width=width, lrn=lrn,
                           dropout=dropout, classifier_activation=classifier_activation,
                           kernel_regularizer=kernel_regularizer, nn=nn)


@builder
def zfnet(*, input_shape=(224, 224, 3), classes=1000, width=1.0, lrn=False, dropout=0.5,
          classifier_activation="softmax", kernel_regularizer=None, nn=None, name="zfnet"):
    """ZFNet (Zeiler and Fergus 2013): AlexNet, but CONV1 7×7 stride 2 instead of 11×11 stride 4
    and CONV3-5 with 512, 1024, 512 filters instead of 384, 384, 256 (the slide's two changes).

    The slide leaves out a third: the paper's CONV2 has stride 2, which brings the larger
    CONV1 output back to AlexNet's 13×13 at CONV3 (110 → 55 → 26 → 13 → 6 on 224×224 input).
    Without it FC6 alone would hold 354M weights.
    """
    check_input_shape(input_shape)
    return _alexnet_family(name, conv1=(96, 7, 2, 1), conv2=(256, 5, 2, "valid"),
                           conv345=(512, 1024, 512), pool_padding=("same", "same"),
                           input_shape=input_shape, classes=classes, width=width, lrn=lrn,
                           dropout=dropout, classifier_activation=classifier_activation,
                           kernel_regularizer=kernel_regularizer, nn=nn)


VGG_BLOCKS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
"""Convolutions per block of VGG-11/13/16/19; the blocks have 64, 128, 256, 512, 512 filters."""


@builder
def vgg(depth=16, *, input_shape=(224, 224, 3), classes=1000, width=1.0, dropout=0.5,
        classifier_activation="softmax", kernel_regularizer=None, nn=None, name=None):
    """VGG (Simonyan and Zisserman 2014): only 3×3 convolutions at stride 1, pad 1, and 2×2 max
    pools at stride 2, in five blocks, then FC 4096, FC 4096, FC classes.

    VGG16 has 138,357,544 parameters and VGG19 143,667,240, as in ``keras.applications``
    (whose layer names ``block1_conv1`` ... it shares; the FC layers are named fc6–fc8 as in
    the lecture).
    """
    check_choice("depth", depth, tuple(VGG_BLOCKS))
    check_input_shape(input_shape)
    check_head(classes, width)
    nn = resolve(nn)
    inputs = nn.Input(input_shape, name="input")
    x = inputs
    for block, (convs, filters) in enumerate(zip(VGG_BLOCKS[depth], (64, 128, 256, 512, 512)), 1):
        for index in range(1, convs + 1):
            x = nn.Conv2D(scaled(filters, width), 3, padding="same", activation="relu",
                          kernel_regularizer=kernel_regularizer, name=f"block{block}_conv{index}")(x)
        x = nn.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
    outputs = _classifier(x, nn, hidden=[scaled(4096, width)] * 2, classes=classes, dropout=dropout,
                          activation=classifier_activation, regularizer=kernel_regularizer,
                          names=("fc6", "fc7", "fc8"))
    return nn.Model(inputs, outputs, name=name or f"vgg{depth}")
