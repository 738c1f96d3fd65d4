"""Weight decay and dropout: NumPy references and their Keras twins.

Weight decay (lecture: "Regularization is also called weight decay")

    L_reg = λ/2 ‖W‖²          ∂L_reg/∂W = λW
    W ← W − α(∂L_data/∂W + λW)  =  (1 − αλ)W − α ∂L_data/∂W

so each SGD step shrinks W by αλW. (The slide writes W − αλW − ∂L_data/∂W, leaving α
off the data gradient: ``slide_update`` keeps that erratum so notebooks can show it.)

Dropout (Srivastava et al. 2014), with p the probability of *keeping* a unit:

    train:  h̃ = h ⊙ m,  m_i ~ Bernoulli(p)      test:  h̃ = p·h       (E[h̃] = p·h)
    inverted dropout: train h̃ = h ⊙ m / p,      test:  h̃ = h

Keras's own ``layers.Dropout(rate)`` is inverted dropout with rate = 1 − p.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from .validation import (check_array, check_choice, check_keep_probability, check_number,
                         check_same_shape)

MODES = ("train", "test")


# --- weight decay: NumPy references ---------------------------------------------------

def _weight_list(weights):
    if isinstance(weights, (list, tuple)):
        return [check_array(f"weights[{i}]", w) for i, w in enumerate(weights)]
    return [check_array("weights", weights)]


def l2_penalty(weights, lam: float) -> float:
    """L_reg = λ/2 Σ‖W‖² over one weight array or a list of them."""
    check_number("lam", lam, low=0.0)
    return float(0.5 * lam * sum(np.sum(w * w) for w in _weight_list(weights)))


def l2_penalty_gradient(W, lam: float) -> np.ndarray:
    """∂(λ/2‖W‖²)/∂W = λW."""
    check_number("lam", lam, low=0.0)
    return lam * check_array("W", W)


def sgd_step(W, data_gradient, learning_rate: float, lam: float) -> np.ndarray:
    """One SGD step on L_data + λ/2‖W‖²:  W − α(∂L_data/∂W + λW)."""
    W = check_array("W", W)
    data_gradient = check_array("data_gradient", data_gradient)
    check_same_shape("W", W, "data_gradient", data_gradient)
    check_number("learning_rate", learning_rate, low=0.0, low_inclusive=False)
    return W - learning_rate * (data_gradient + l2_penalty_gradient(W, lam))


def slide_update(W, data_gradient, learning_rate: float, lam: float) -> np.ndarray:
    """The slide's update, erratum included:  W − αλW − ∂L_data/∂W (no α on the data gradient)."""
    W = check_array("W", W)
    data_gradient = check_array("data_gradient", data_gradient)
    check_same_shape("W", W, "data_gradient", data_gradient)
    check_number("learning_rate", learning_rate, low=0.0, low_inclusive=False)
    check_number("lam", lam, low=0.0)
    return W - learning_rate * lam * W - data_gradient


def sgd_update(params: dict, grads: dict, learning_rate: float, lam: float, *,
               decay_biases: bool = False) -> dict:
    """SGD with weight decay on a dict of parameters, as in ``{'W1': ..., 'b1': ...}``.

    1-D parameters (biases, and BatchNorm's scale and shift) take the plain step
    W − α ∂L_data/∂W unless ``decay_biases``: the lecture notes biases are often left out.
    """
    if set(params) != set(grads):
        raise ValueError(f"params and grads must have the same keys; got {sorted(params)} "
                         f"and {sorted(grads)}")
    updated = {}
    for name, value in params.items():
        value = check_array(f"params[{name!r}]", value)
        if np.shape(grads[name]) != value.shape:
            raise ValueError(f"grads[{name!r}] must have the shape of params[{name!r}], {value.shape}; "
                             f"got {np.shape(grads[name])}")
        decay = lam if (value.ndim > 1 or decay_biases) else 0.0
        updated[name] = sgd_step(value, grads[name], learning_rate, decay)
    return updated


# --- weight decay: Keras twins --------------------------------------------------------

def keras_l2(lam: float) -> keras.regularizers.Regularizer:
    """The penalty λ/2‖W‖² as a Keras regularizer. Keras's ``L2(c)`` computes c·Σw², so c = λ/2."""
    check_number("lam", lam, low=0.0)
    return keras.regularizers.L2(lam / 2)


def keras_sgd_with_weight_decay(learning_rate: float, lam: float, *, momentum: float = 0.0,
                                decay_biases: bool = False) -> keras.optimizers.SGD:
    """Keras SGD whose decoupled ``weight_decay`` applies W ← W − αλW each step.

    For plain SGD this equals putting λ/2‖W‖² in the loss; biases are excluded unless asked.
    """
    check_number("learning_rate", learning_rate, low=0.0, low_inclusive=False)
    check_number("lam", lam, low=0.0)
    optimizer = keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum,
                                     weight_decay=lam or None)
    if lam and not decay_biases:
        optimizer.exclude_from_weight_decay(var_names=["bias"])
    return optimizer


# --- dropout: NumPy references ----------------------------------------------------------

@dataclass
class DropoutCache:
    """What the backward pass needs: the mask used (None at test time), p, mode and variant."""

    mask: np.ndarray | None
    p: float
    mode: str
    inverted: bool


def _dropout(h, p, mode, rng, inverted):
    h = check_array("h", h)
    check_keep_probability("p", p)
    check_choice("mode", mode, MODES)
    if mode == "test":
        out = h if inverted else h * p
        return out, DropoutCache(None, p, mode, inverted)
    if rng is None:
        raise ValueError("rng must be a numpy.random.Generator in train mode; got None")
    mask = rng.random(h.shape) < p
    scaled_mask = mask / p if inverted else mask.astype(h.dtype)
    return h * scaled_mask, DropoutCache(scaled_mask, p, mode, inverted)


def dropout_forward(h, p: float, mode: str, rng: np.random.Generator | None = None):
    """The lecture's dropout: train h ⊙ m with m ~ Bernoulli(p); test p·h. Returns (out, cache)."""
    return _dropout(h, p, mode, rng, inverted=False)


def inverted_dropout_forward(h, p: float, mode: str, rng: np.random.Generator | None = None):
    """Inverted dropout: train h ⊙ m / p; test h unchanged. Returns (out, cache)."""
    return _dropout(h, p, mode, rng, inverted=True)


def dropout_backward(dout, cache: DropoutCache) -> np.ndarray:
    """∂L/∂h from ∂L/∂h̃ for either variant: multiply by whatever the forward pass multiplied by."""
    if not isinstance(cache, DropoutCache):
        raise TypeError(f"cache must be the DropoutCache a forward pass returned; got {type(cache).__name__}")
    dout = check_array("dout", dout)
    if cache.mode == "train":
        check_same_shape("dout", dout, "cache.mask", cache.mask)
        return dout * cache.mask
    return dout if cache.inverted else dout * cache.p


# --- dropout: Keras twin ---------------------------------------------------------------

class LectureDropout(keras.layers.Layer):
    """Dropout as on the slide: keep each unit with probability ``p`` in training, scale by ``p`` at test.

    ``keras.layers.Dropout(rate=1 - p)`` is the inverted twin: it scales by 1/p in
    training instead, so inference needs no change. Both keep E[output] the same in
    training and at test time.
    """

    def __init__(self, p: float = 0.5, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        check_keep_probability("p", p)
        self.p = float(p)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        if training:
            keep = keras.random.uniform(ops.shape(inputs), seed=self.seed_generator) < self.p
            return inputs * ops.cast(keep, inputs.dtype)
        return inputs * ops.cast(self.p, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "p": self.p, "seed": self.seed}
