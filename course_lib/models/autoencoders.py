"""Autoencoders and the variational autoencoder (lecture: "Generative methods"), in ``keras.ops``.

An autoencoder learns a code z = f(x) of ``code_size`` numbers and a decoder x̂ = g(z) by
minimising a reconstruction error ‖x − g(f(x))‖², no labels needed. Its encoder can then
start a supervised model.

A VAE (Kingma & Welling 2014) makes the code a distribution: the encoder gives μ(x) and
log σ²(x), a code is sampled with the reparameterization trick

    z = μ + exp(½ log σ²) ⊙ ε,   ε ~ N(0, I)

(so gradients flow to μ and σ through a deterministic function of the noise), and training
minimises the negative evidence lower bound, in nats per image,

    −ELBO(x) = E_q[−log p(x | z)] + KL(q(z | x) ‖ N(0, I)),
    KL = −½ Σ_j (1 + log σ_j² − μ_j² − σ_j²).

The KL term is added by the ``Sampling`` layer with ``add_loss`` (a scalar, inside ``call``),
the reconstruction term is the compiled loss, so ``fit`` trains it on TensorFlow and JAX alike.
Decoding z ~ N(0, I) then generates new images.

The code heads, the sampling and the output pixels compute in float32 even under a mixed
precision policy (float16 would round 1 − 1e-7 to 1 and overflow exp(log σ²)).

Every builder takes ``input_shape``, ``code_size`` and ``width`` (units or channels), so an
8×8 digits model trains on a CPU in seconds and a 28×28 or 32×32 one on a GPU. Builders
return uncompiled models whose sub-models are ``model.get_layer("encoder")`` and
``model.get_layer("decoder")``.
"""
from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from ..validation import check_array, check_choice, check_number
from .base import check_input_shape, scaled

RECONSTRUCTIONS = ("bernoulli", "gaussian")
GAUSSIAN_SIGMA = 0.1
"""The decoder's fixed standard deviation σ in the Gaussian likelihood (pixels in [0, 1])."""
_EPSILON = 1e-7


# --- the VAE's two loss terms: NumPy references and keras.ops twins ------------------------

def kl_divergence_reference(mu, logvar) -> np.ndarray:
    """KL(N(μ, diag σ²) ‖ N(0, I)) = −½ Σ_j (1 + log σ_j² − μ_j² − σ_j²) per row, in NumPy."""
    mu, logvar = check_array("mu", mu), check_array("logvar", logvar)
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must have the same shape; got {mu.shape} and {logvar.shape}")
    return -0.5 * np.sum(1 + logvar - mu ** 2 - np.exp(logvar), axis=-1)


def kl_divergence(mu, logvar):
    """KL(N(μ, diag σ²) ‖ N(0, I)) = −½ Σ_j (1 + log σ_j² − μ_j² − σ_j²) per row, in keras.ops."""
    return -0.5 * ops.sum(1 + logvar - ops.square(mu) - ops.exp(logvar), axis=-1)


def _per_image(values):
    return ops.sum(ops.reshape(values, (ops.shape(values)[0], -1)), axis=-1)


@keras.saving.register_keras_serializable(package="course_lib")
def bernoulli_nll(x, x_hat):
    """−log p(x | x̂) = −Σ_pixels [x log x̂ + (1 − x) log(1 − x̂)] per image, in nats (x̂ clipped
    to [1e-7, 1 − 1e-7]). For grey levels in [0, 1] rather than 0/1 pixels it is the usual
    cross-entropy surrogate, not a normalized likelihood; it stays positive."""
    x_hat = ops.clip(x_hat, _EPSILON, 1 - _EPSILON)
    return _per_image(-(x * ops.log(x_hat) + (1 - x) * ops.log(1 - x_hat)))


@keras.saving.register_keras_serializable(package="course_lib")
def gaussian_nll(x, x_hat):
    """−log N(x; x̂, σ² I) = Σ_pixels [(x − x̂)² / (2σ²) + ½ log(2πσ²)] per image, in nats, with
    σ = ``GAUSSIAN_SIGMA``. A density, so it can be negative."""
    constant = 0.5 * math.log(2 * math.pi * GAUSSIAN_SIGMA ** 2)
    return _per_image(ops.square(x - x_hat) / (2 * GAUSSIAN_SIGMA ** 2) + constant)


def reconstruction_loss(kind: str = "bernoulli"):
    """The compiled loss of a VAE: ``bernoulli_nll`` (pixels in [0, 1]) or ``gaussian_nll``."""
    check_choice("kind", kind, RECONSTRUCTIONS)
    return bernoulli_nll if kind == "bernoulli" else gaussian_nll


def nll_reference(x, x_hat, kind: str = "bernoulli") -> np.ndarray:
    """``bernoulli_nll`` or ``gaussian_nll`` in NumPy: −log p(x | x̂) per image, in nats."""
    check_choice("kind", kind, RECONSTRUCTIONS)
    x, x_hat = check_array("x", x), check_array("x_hat", x_hat)
    if x.shape != x_hat.shape:
        raise ValueError(f"x and x_hat must have the same shape; got {x.shape} and {x_hat.shape}")
    x, x_hat = x.reshape(len(x), -1), x_hat.reshape(len(x_hat), -1)
    if kind == "bernoulli":
        x_hat = np.clip(x_hat, _EPSILON, 1 - _EPSILON)
        return -np.sum(x * np.log(x_hat) + (1 - x) * np.log(1 - x_hat), axis=1)
    sigma2 = GAUSSIAN_SIGMA ** 2
    return np.sum((x - x_hat) ** 2 / (2 * sigma2) + 0.5 * math.log(2 * math.pi * sigma2), axis=1)


# --- the sampling layer --------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="course_lib")
class Sampling(keras.layers.Layer):
    """The reparameterization trick: from ``[mu, logvar]`` return

        z = μ + exp(½ log σ²) ⊙ ε,   ε ~ N(0, I) from ``keras.random`` with the layer's SeedGenerator,

    and add ``kl_weight`` · mean over the batch of KL(N(μ, σ²) ‖ N(0, I)) to the model's losses
    (``add_loss`` of a scalar: trains on every backend). ``kl_weight = 0`` gives a plain
    stochastic code; 1 gives the ELBO."""

    def __init__(self, kl_weight: float = 1.0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        check_number("kl_weight", kl_weight, low=0.0)
        if seed is not None:
            check_number("seed", seed, low=0, integer=True)
        self.kl_weight, self.seed = float(kl_weight), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        mu, logvar = inputs
        if self.kl_weight:
            self.add_loss(self.kl_weight * ops.mean(kl_divergence(mu, logvar)))
        epsilon = keras.random.normal(ops.shape(mu), dtype=mu.dtype, seed=self.seed_generator)
        return mu + ops.exp(0.5 * logvar) * epsilon

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "kl_weight": self.kl_weight, "seed": self.seed}


# --- builders --------------------------------------------------------------------------------

def _check(input_shape, code_size, width):
    input_shape = check_input_shape(input_shape)
    check_number("code_size", code_size, low=1, integer=True)
    check_number("width", width, low=0, low_inclusive=False)
    return input_shape


def _dense_encoder(inputs, hidden, outputs):
    x = layers.Flatten(name="flatten")(inputs)
    for index, units in enumerate(hidden, 1):
        x = layers.Dense(units, activation="relu", name=f"dense{index}")(x)
    return [layers.Dense(size, dtype="float32", name=name)(x) for name, size in outputs]


def _dense_decoder(code_size, hidden, output_shape):
    inputs = keras.Input((code_size,), name="code")
    x = inputs
    for index, units in enumerate(reversed(hidden), 1):
        x = layers.Dense(units, activation="relu", name=f"dense{index}")(x)
    x = layers.Dense(int(np.prod(output_shape)), activation="sigmoid", dtype="float32", name="pixels")(x)
    outputs = layers.Reshape(output_shape, dtype="float32", name="image")(x)
    return keras.Model(inputs, outputs, name="decoder")


def _conv_encoder(inputs, width, outputs):
    """Two 3×3 stride-2 convolutions (H → H/2 → H/4), then dense heads."""
    x = inputs
    for index, filters in enumerate((scaled(16, width), scaled(32, width)), 1):
        x = layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu", name=f"conv{index}")(x)
    x = layers.Flatten(name="flatten")(x)
    return [layers.Dense(size, dtype="float32", name=name)(x) for name, size in outputs]


def _conv_decoder(code_size, width, output_shape):
    """The encoder mirrored: a dense layer to an H/4 × W/4 map, then two 3×3 stride-2 transposed
    convolutions that double the resolution each (H/4 → H/2 → H), sigmoid pixels."""
    height, breadth, channels = output_shape
    filters = scaled(32, width)
    inputs = keras.Input((code_size,), name="code")
    x = layers.Dense(height // 4 * breadth // 4 * filters, activation="relu", name="dense")(inputs)
    x = layers.Reshape((height // 4, breadth // 4, filters), name="map")(x)
    x = layers.Conv2DTranspose(scaled(16, width), 3, strides=2, padding="same", activation="relu",
                               name="deconv1")(x)
    outputs = layers.Conv2DTranspose(channels, 3, strides=2, padding="same", activation="sigmoid",
                                     dtype="float32", name="deconv2")(x)
    return keras.Model(inputs, outputs, name="decoder")


def _check_conv_shape(input_shape):
    if input_shape[0] % 4 or input_shape[1] % 4:
        raise ValueError(f"input_shape height and width must be multiples of 4 (two stride-2 levels); "
                         f"got {input_shape!r}")


def _hidden(width):
    return (scaled(64, width),)


def dense_autoencoder(*, input_shape=(8, 8, 1), code_size: int = 16, width: float = 1.0,
                      name: str = "dense_autoencoder") -> keras.Model:
    """x → Flatten → Dense(64·width, ReLU) → Dense(code_size) = z → Dense(64·width, ReLU)
    → Dense(H·W·C, sigmoid) → x̂. Train with ``compile(loss="mse")`` on pixels in [0, 1]."""
    input_shape = _check(input_shape, code_size, width)
    from ..runtime import scope

    with scope():
        inputs = keras.Input(input_shape, name="image")
        (code,) = _dense_encoder(inputs, _hidden(width), [("code", code_size)])
        encoder = keras.Model(inputs, code, name="encoder")
        decoder = _dense_decoder(code_size, _hidden(width), input_shape)
        return keras.Model(inputs, decoder(encoder(inputs)), name=name)


def conv_autoencoder(*, input_shape=(8, 8, 1), code_size: int = 16, width: float = 1.0,
                     name: str = "conv_autoencoder") -> keras.Model:
    """x → Conv(16·width, 3×3, /2) → Conv(32·width, 3×3, /2) → Dense(code_size) = z, and a
    transposed-convolution decoder back to H × W × C with sigmoid pixels. H and W must be
    multiples of 4 (8×8 digits, 28×28 MNIST, 32×32 CIFAR-10)."""
    input_shape = _check(input_shape, code_size, width)
    _check_conv_shape(input_shape)
    from ..runtime import scope

    with scope():
        inputs = keras.Input(input_shape, name="image")
        (code,) = _conv_encoder(inputs, width, [("code", code_size)])
        encoder = keras.Model(inputs, code, name="encoder")
        decoder = _conv_decoder(code_size, width, input_shape)
        return keras.Model(inputs, decoder(encoder(inputs)), name=name)


def vae(*, input_shape=(8, 8, 1), code_size: int = 2, width: float = 1.0, kind: str = "dense",
        kl_weight: float = 1.0, seed: int | None = None, name: str = "vae") -> keras.Model:
    """A variational autoencoder: the encoder ("dense" like ``dense_autoencoder`` or "conv" like
    ``conv_autoencoder``) outputs [μ, log σ²] of size ``code_size`` each; ``Sampling`` draws
    z = μ + exp(½ log σ²) ⊙ ε and adds the KL term; the decoder maps z to sigmoid pixels.

    Compile with the reconstruction term, e.g. ``model.compile("adam", reconstruction_loss())``:
    the training loss is then −ELBO in nats per image. Generate with
    ``model.get_layer("decoder").predict(z)`` for z ~ N(0, I)."""
    input_shape = _check(input_shape, code_size, width)
    check_choice("kind", kind, ("dense", "conv"))
    if kind == "conv":
        _check_conv_shape(input_shape)
    from ..runtime import scope

    heads = [("mu", code_size), ("logvar", code_size)]
    with scope():
        inputs = keras.Input(input_shape, name="image")
        if kind == "dense":
            mu, logvar = _dense_encoder(inputs, _hidden(width), heads)
            decoder = _dense_decoder(code_size, _hidden(width), input_shape)
        else:
            mu, logvar = _conv_encoder(inputs, width, heads)
            decoder = _conv_decoder(code_size, width, input_shape)
        encoder = keras.Model(inputs, [mu, logvar], name="encoder")
        z = Sampling(kl_weight, seed, dtype="float32", name="sampling")(encoder(inputs))
        return keras.Model(inputs, decoder(z), name=name)


# --- evaluation -------------------------------------------------------------------------------

def negative_elbo(model: keras.Model, x, *, reconstruction: str = "bernoulli", samples: int = 1,
                  seed: int = 0, batch_size: int = 256) -> float:
    """−ELBO in nats per image on ``x`` (held-out images), estimated with ``samples`` codes each:

        −ELBO = (1/n) Σ_i [ (1/S) Σ_s −log p(x_i | z_is) + KL(N(μ_i, σ_i²) ‖ N(0, I)) ],
        z_is = μ_i + σ_i ε_is,  ε_is ~ N(0, I) from NumPy with ``seed``

    The sampling is done in NumPy, so the same seed gives the same number on every backend up to
    floating point. With a normalized likelihood (``gaussian``, or ``bernoulli`` on 0/1 pixels) it
    upper-bounds −log p(x); ``bernoulli`` on grey levels is a cross-entropy surrogate that bounds
    nothing, but ranks models alike. Either way, lower is better."""
    x = check_array("x", x, min_ndim=2)
    if len(x) == 0:
        raise ValueError("x must hold at least one image; got none")
    check_choice("reconstruction", reconstruction, RECONSTRUCTIONS)
    check_number("samples", samples, low=1, integer=True)
    check_number("seed", seed, low=0, integer=True)
    check_number("batch_size", batch_size, low=1, integer=True)
    parts = {layer.name: layer for layer in getattr(model, "layers", ())}
    encoder, decoder = parts.get("encoder"), parts.get("decoder")
    if decoder is None or len(getattr(encoder, "outputs", ())) != 2:
        raise ValueError(f"model must be a VAE built by course_lib.models.autoencoders.vae, whose "
                         f"'encoder' outputs [mu, logvar] and 'decoder' maps codes to images; "
                         f"got {getattr(model, 'name', model)!r}")
    mu, logvar = _predict(encoder, x, batch_size)
    rng = np.random.default_rng(seed)
    reconstruction_nll = np.zeros(len(x))
    for _ in range(samples):
        z = mu + np.exp(0.5 * logvar) * rng.standard_normal(mu.shape)
        (x_hat,) = _predict(decoder, z, batch_size)
        reconstruction_nll += nll_reference(x, x_hat, reconstruction) / samples
    return float(np.mean(reconstruction_nll + kl_divergence_reference(mu, logvar)))


def _predict(model, x, batch_size):
    """The model's outputs on x in batches, as a list of float64 NumPy arrays (eager calls, so no
    retracing as ``predict`` on a sub-model would)."""
    batches = []
    for start in range(0, len(x), batch_size):
        outputs = model(ops.convert_to_tensor(x[start:start + batch_size], dtype="float32"), training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        batches.append([ops.convert_to_numpy(output).astype(np.float64) for output in outputs])
    return [np.concatenate(parts) for parts in zip(*batches)]
