"""The two layers the case studies need that Keras does not ship, written with ``keras.ops``
so they run on every backend."""
from __future__ import annotations

import keras
from keras import ops

from ..validation import check_number


@keras.saving.register_keras_serializable(package="course_lib")
class LocalResponseNormalization(keras.layers.Layer):
    """AlexNet's "NORM" layer (Krizhevsky et al. 2012, section 3.3): each activation is divided
    by the energy of its neighbours across channels,

        b_c = a_c / (k + α · Σ_{c' = c−r}^{c+r} a_{c'}²)^β

    with r = ``depth_radius`` (the paper's n = 2r + 1 = 5), k = 2, α = 1e-4, β = 0.75.
    It has no parameters. VGG showed it does not help; it is here to build AlexNet as on the slide.
    """

    def __init__(self, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75, **kwargs):
        super().__init__(**kwargs)
        check_number("depth_radius", depth_radius, low=0, integer=True)
        for name, value in (("bias", bias), ("alpha", alpha), ("beta", beta)):
            check_number(name, value, low=0)
        self.depth_radius, self.bias, self.alpha, self.beta = depth_radius, bias, alpha, beta

    def call(self, inputs):
        radius, channels = self.depth_radius, inputs.shape[-1]
        padded = ops.pad(ops.square(inputs), [[0, 0]] * (len(inputs.shape) - 1) + [[radius, radius]])
        energy = sum(padded[..., offset:offset + channels] for offset in range(2 * radius + 1))
        return inputs / ops.power(self.bias + self.alpha * energy, self.beta)

    def get_config(self):
        return {**super().get_config(), "depth_radius": self.depth_radius, "bias": self.bias,
                "alpha": self.alpha, "beta": self.beta}


@keras.saving.register_keras_serializable(package="course_lib")
class ZeroPadShortcut(keras.layers.Layer):
    """The parameter-free shortcut of He et al.'s CIFAR ResNets ("option A"): when a stage
    halves the resolution and widens the channels, the identity is subsampled with stride
    ``stride`` and padded with zero channels up to ``filters``. It has no parameters."""

    def __init__(self, filters, stride=1, **kwargs):
        super().__init__(**kwargs)
        check_number("filters", filters, low=1, integer=True)
        check_number("stride", stride, low=1, integer=True)
        self.filters, self.stride = filters, stride

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        shrink = (lambda size: None if size is None else -(-size // self.stride))
        return (batch, shrink(height), shrink(width), self.filters)

    def call(self, inputs):
        channels = inputs.shape[-1]
        if channels > self.filters:
            raise ValueError(f"ZeroPadShortcut pads channels up to filters={self.filters}; "
                             f"the input already has {channels}")
        subsampled = inputs[:, ::self.stride, ::self.stride, :]
        extra = self.filters - channels
        return ops.pad(subsampled, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "stride": self.stride}
