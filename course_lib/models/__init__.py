"""The lecture's case studies as Keras model builders (``course_lib.models``).

    LeNet-5 → AlexNet → ZFNet → VGG → GoogLeNet → ResNet, and the CIFAR ResNets with plain twins.

Every builder takes ``input_shape``, ``classes`` and ``width`` (channel multiplier), so the
same code builds the paper's network and a CPU-sized one, and ``nn=accounting.SHAPES`` to
compute shapes and parameter counts without Keras. ``build("vgg16")`` builds by name.
"""
from __future__ import annotations

from functools import partial

from .classic import VGG_BLOCKS, alexnet, lenet5, vgg, zfnet
from .googlenet import INCEPTION_V1, googlenet, inception_module
from .resnet import CIFAR_DEPTHS, IMAGENET_STAGES, cifar_resnet, residual_block, resnet

ARCHITECTURES = {
    "lenet5": lenet5, "alexnet": alexnet, "zfnet": zfnet,
    **{f"vgg{depth}": partial(vgg, depth) for depth in VGG_BLOCKS},
    "googlenet": googlenet,
    **{f"resnet{depth}": partial(resnet, depth) for depth in IMAGENET_STAGES},
    **{f"resnet{depth}": partial(cifar_resnet, depth) for depth in CIFAR_DEPTHS},
    **{f"plain{depth}": partial(cifar_resnet, depth, residual=False) for depth in CIFAR_DEPTHS},
}
"""Builders by name: the ImageNet networks, He et al.'s CIFAR ResNet-20..110 and plain-20..110."""


def build(name: str, **kwargs):
    """Build the architecture called ``name`` (a key of ``ARCHITECTURES``), e.g.
    ``build("resnet20", width=0.5, input_shape=(16, 16, 1))``."""
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[key](**kwargs)


__all__ = ["ARCHITECTURES", "CIFAR_DEPTHS", "IMAGENET_STAGES", "INCEPTION_V1", "VGG_BLOCKS", "alexnet",
           "build", "cifar_resnet", "googlenet", "inception_module", "lenet5", "residual_block",
           "resnet", "vgg", "zfnet"]
