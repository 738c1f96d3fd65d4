"""ResNet (He et al. 2015): residual blocks y = relu(F(x) + shortcut(x)), and their plain twins.

A stage of blocks works at one resolution; each new stage halves it with a stride-2 first
block and doubles the channels. When a block changes the shape, the shortcut must change it
too: a 1×1 stride-s convolution with BatchNorm ("projection", option B), or subsampling and
zero channels ("option A", no parameters, as in the paper's CIFAR networks). There is no
fully connected layer but the classifier, after global average pooling.

Two families:
- ``resnet(depth)``: the ImageNet networks, ResNet-18/34 (basic blocks, two 3×3 convs) and
  ResNet-50/101/152 (bottleneck blocks, 1×1 → 3×3 → 1×1 with 4× wider output).
- ``cifar_resnet(depth)``: the CIFAR-10 networks of section 4.2, depth = 6n + 2 (20, 32, 44, 56,
  110): a 3×3 conv, three stages of n basic blocks with 16, 32, 64 filters, pooling, FC 10.
  ``residual=False`` builds the plain twin: the same layers without the shortcuts.
"""
from __future__ import annotations

from functools import partial

from ..validation import check_choice, check_number
from .base import builder, check_head, check_input_shape, resolve, scaled

IMAGENET_STAGES = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
                   50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3)),
                   152: ("bottleneck", (3, 8, 36, 3))}
"""Block type and blocks per stage (64, 128, 256, 512 filters) of the ImageNet ResNets."""

CIFAR_DEPTHS = (20, 32, 44, 56, 110)
"""The depths He et al. report on CIFAR-10 (any 6n + 2 builds)."""


def residual_block(x, filters, *, stride=1, kind="basic", residual=True, shortcut="projection",
                   use_bias=False, name="block", nn=None, kernel_regularizer=None):
    """One block on tensor ``x``; returns its output.

    kind       "basic": conv 3×3/stride → BN → relu → conv 3×3 → BN;
               "bottleneck": conv 1×1/stride → BN → relu → conv 3×3 → BN → relu → conv 1×1 (4×filters) → BN.
    residual   add the shortcut before the last relu (False: the plain block).
    shortcut   how the shortcut changes shape when the block does: "projection" (1×1 conv + BN)
               or "zeros" (subsample and pad channels with zeros); an unchanged shape is the identity.
    """
    check_choice("kind", kind, ("basic", "bottleneck"))
    check_choice("shortcut", shortcut, ("projection", "zeros"))
    check_number("filters", filters, low=1, integer=True)
    check_number("stride", stride, low=1, integer=True)
    nn = resolve(nn)
    conv = partial(nn.Conv2D, padding="same", use_bias=use_bias, kernel_regularizer=kernel_regularizer)
    norm = partial(nn.BatchNormalization, momentum=0.9, epsilon=1.001e-5)
    out_channels = filters * 4 if kind == "bottleneck" else filters
    if kind == "basic":
        y = conv(filters, 3, strides=stride, name=f"{name}_1_conv")(x)
        y = nn.Activation("relu", name=f"{name}_1_relu")(norm(name=f"{name}_1_bn")(y))
        y = norm(name=f"{name}_2_bn")(conv(filters, 3, name=f"{name}_2_conv")(y))
    else:
        y = conv(filters, 1, strides=stride, name=f"{name}_1_conv")(x)
        y = nn.Activation("relu", name=f"{name}_1_relu")(norm(name=f"{name}_1_bn")(y))
        y = conv(filters, 3, name=f"{name}_2_conv")(y)
        y = nn.Activation("relu", name=f"{name}_2_relu")(norm(name=f"{name}_2_bn")(y))
        y = norm(name=f"{name}_3_bn")(conv(out_channels, 1, name=f"{name}_3_conv")(y))
    if residual:
        identity = x
        if stride != 1 or x.shape[-1] != out_channels:
            if shortcut == "projection":
                identity = conv(out_channels, 1, strides=stride, name=f"{name}_0_conv")(x)
                identity = norm(name=f"{name}_0_bn")(identity)
            else:
                identity = nn.ZeroPadShortcut(out_channels, stride, name=f"{name}_0_pad")(x)
        y = nn.Add(name=f"{name}_add")([identity, y])
    return nn.Activation("relu", name=f"{name}_out")(y)


@builder
def resnet(depth=50, *, input_shape=(224, 224, 3), classes=1000, width=1.0, use_bias=True,
           classifier_activation="softmax", kernel_regularizer=None, nn=None, name=None):
    """ResNet-18/34/50/101/152 for ImageNet:

        conv 7×7/2 64 → BN → relu → max pool 3×3/2 → stages conv2_x..conv5_x (the first block
        of conv3_x..conv5_x has stride 2) → global average pool → FC classes

    Projection shortcuts where the shape changes. With ``use_bias=True`` (the default, as in
    ``keras.applications``, though a bias before BatchNorm is redundant) ResNet-50 has
    25,636,712 parameters, ResNet-101 44,707,176 and ResNet-152 60,419,944; with
    ``use_bias=False`` the trainable counts are torchvision's (ResNet-18 11,689,512).
    """
    check_choice("depth", depth, tuple(IMAGENET_STAGES))
    check_input_shape(input_shape)
    check_head(classes, width)
    nn = resolve(nn)
    kind, blocks = IMAGENET_STAGES[depth]
    inputs = nn.Input(input_shape, name="input")
    x = nn.Conv2D(scaled(64, width), 7, strides=2, padding="same", use_bias=use_bias,
                  kernel_regularizer=kernel_regularizer, name="conv1_conv")(inputs)
    x = nn.BatchNormalization(momentum=0.9, epsilon=1.001e-5, name="conv1_bn")(x)
    x = nn.Activation("relu", name="conv1_relu")(x)
    x = nn.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    for stage, (count, filters) in enumerate(zip(blocks, (64, 128, 256, 512)), 2):
        for index in range(1, count + 1):
            stride = 2 if index == 1 and stage > 2 else 1
            x = residual_block(x, scaled(filters, width), stride=stride, kind=kind, use_bias=use_bias,
                               name=f"conv{stage}_block{index}", nn=nn, kernel_regularizer=kernel_regularizer)
    x = nn.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = nn.Dense(classes, activation=classifier_activation, kernel_regularizer=kernel_regularizer,
                       name="predictions")(x)
    return nn.Model(inputs, outputs, name=name or f"resnet{depth}")


@builder
def cifar_resnet(depth=20, *, residual=True, shortcut="zeros", input_shape=(32, 32, 3), classes=10,
                 width=1.0, use_bias=False, classifier_activation="softmax", kernel_regularizer=None,
                 nn=None, name=None):
    """He et al.'s CIFAR-10 ResNet-(6n+2), or with ``residual=False`` its plain twin.

        conv 3×3 16 → BN → relu → n blocks at 16 filters → n at 32 (first stride 2)
        → n at 64 (first stride 2) → global average pool → FC classes

    ``shortcut="zeros"`` is the paper's option A (ResNet-20: 0.27M parameters); "projection"
    is option B. ``width`` scales 16/32/64, so CPU-sized nets stay the same depth.
    """
    check_number("depth", depth, low=8, integer=True)
    if (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2 (for example {', '.join(map(str, CIFAR_DEPTHS))}); got {depth}")
    check_input_shape(input_shape)
    check_head(classes, width)
    nn = resolve(nn)
    blocks = (depth - 2) // 6
    inputs = nn.Input(input_shape, name="input")
    x = nn.Conv2D(scaled(16, width), 3, padding="same", use_bias=use_bias,
                  kernel_regularizer=kernel_regularizer, name="conv1_conv")(inputs)
    x = nn.BatchNormalization(momentum=0.9, epsilon=1.001e-5, name="conv1_bn")(x)
    x = nn.Activation("relu", name="conv1_relu")(x)
    for stage, filters in enumerate((16, 32, 64), 2):
        for index in range(1, blocks + 1):
            stride = 2 if index == 1 and stage > 2 else 1
            x = residual_block(x, scaled(filters, width), stride=stride, residual=residual, shortcut=shortcut,
                               use_bias=use_bias, name=f"conv{stage}_block{index}", nn=nn,
                               kernel_regularizer=kernel_regularizer)
    x = nn.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = nn.Dense(classes, activation=classifier_activation, kernel_regularizer=kernel_regularizer,
                       name="predictions")(x)
    return nn.Model(inputs, outputs, name=name or f"{'resnet' if residual else 'plain'}{depth}")
