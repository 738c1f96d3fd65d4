"""GoogLeNet (Szegedy et al. 2014): a stem, nine inception modules, global average pooling.

An inception module runs 1×1, 3×3 and 5×5 convolutions and a 3×3 max pool side by side on
the same input and concatenates their outputs along the channels. Run naively, the 3×3 and
5×5 branches see every input channel and the pool passes them all on, so the output (and the
cost) grows module after module. GoogLeNet puts a 1×1 "bottleneck" convolution before the
3×3 and 5×5 branches and after the pool, which cuts operations and parameters several-fold.
"""
from __future__ import annotations

from functools import partial

from ..validation import check_number
from .base import builder, check_head, check_input_shape, resolve, scaled

INCEPTION_V1 = {
    # module: (1×1, 3×3 reduce, 3×3, 5×5 reduce, 5×5, pool projection), Table 1 of the paper
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128), "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def inception_module(x, filters, *, bottleneck=True, name="inception", nn=None, kernel_regularizer=None):
    """One inception module on tensor ``x``.

    ``filters`` = (1×1, 3×3 reduce, 3×3, 5×5 reduce, 5×5, pool projection). With
    ``bottleneck=False`` the reduce and projection convolutions are left out (the "naive"
    module): the output then has 1×1 + 3×3 + 5×5 + input channels.
    """
    if len(filters) != 6:
        raise ValueError("filters must be (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection); "
                         f"got {filters!r}")
    for value in filters:
        check_number("filters", value, low=1, integer=True)
    nn = resolve(nn)
    ones, reduce3, threes, reduce5, fives, projection = filters
    conv = partial(nn.Conv2D, padding="same", activation="relu", kernel_regularizer=kernel_regularizer)
    branch1 = conv(ones, 1, name=f"{name}_1x1")(x)
    branch3 = conv(reduce3, 1, name=f"{name}_3x3_reduce")(x) if bottleneck else x
    branch3 = conv(threes, 3, name=f"{name}_3x3")(branch3)
    branch5 = conv(reduce5, 1, name=f"{name}_5x5_reduce")(x) if bottleneck else x
    branch5 = conv(fives, 5, name=f"{name}_5x5")(branch5)
    pool = nn.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    if bottleneck:
        pool = conv(projection, 1, name=f"{name}_pool_proj")(pool)
    return nn.Concatenate(name=f"{name}_concat")([branch1, branch3, branch5, pool])


@builder
def googlenet(*, input_shape=(224, 224, 3), classes=1000, width=1.0, lrn=False, dropout=0.4,
              classifier_activation="softmax", kernel_regularizer=None, nn=None, name="googlenet"):
    """GoogLeNet, inception v1 (the auxiliary classifiers used only in training are left out):

        conv 7×7/2 64 → max pool 3×3/2 → (NORM) → conv 1×1 64 → conv 3×3 192 → (NORM)
        → max pool → 3a 3b → max pool → 4a 4b 4c 4d 4e → max pool → 5a 5b
        → global average pool → dropout 0.4 → FC classes

    About 7.0M parameters, 9× fewer than AlexNet's 62.4M (the often-quoted "12×" compares
    with the paper's rounder 5M), and no large FC layer.
    """
    check_input_shape(input_shape)
    check_head(classes, width)
    nn = resolve(nn)
    conv = partial(nn.Conv2D, padding="same", activation="relu", kernel_regularizer=kernel_regularizer)
    inputs = nn.Input(input_shape, name="input")
    x = conv(scaled(64, width), 7, strides=2, name="conv1")(inputs)
    x = nn.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    if lrn:
        x = nn.LocalResponseNormalization(name="norm1")(x)
    x = conv(scaled(64, width), 1, name="conv2_reduce")(x)
    x = conv(scaled(192, width), 3, name="conv2")(x)
    if lrn:
        x = nn.LocalResponseNormalization(name="norm2")(x)
    x = nn.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    for module, filters in INCEPTION_V1.items():
        if module in ("4a", "5a"):
            x = nn.MaxPooling2D(3, strides=2, padding="same", name=f"pool{module[0]}")(x)
        x = inception_module(x, [scaled(f, width) for f in filters], name=f"inception_{module}", nn=nn,
                             kernel_regularizer=kernel_regularizer)
    x = nn.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = nn.Dropout(dropout, name="dropout")(x)
    outputs = nn.Dense(classes, activation=classifier_activation, kernel_regularizer=kernel_regularizer,
                       name="predictions")(x)
    return nn.Model(inputs, outputs, name=name)
