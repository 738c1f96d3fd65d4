"""Autoencoders and the VAE: shapes, the KL term and the sampling layer against NumPy, training on the digits."""
import math

import keras
import numpy as np
import pytest
from keras import ops

from course_lib import data
from course_lib.models import autoencoders as A

rng = np.random.default_rng(0)
SMALL = {"input_shape": (8, 8, 1), "code_size": 2, "width": 0.5}   # one size throughout: JAX compiles each shape


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


def _numpy(x):
    return ops.convert_to_numpy(x)


def test_builders_shapes():
    dense = A.dense_autoencoder(**SMALL)
    assert dense.output_shape == (None, 8, 8, 1)
    assert dense.get_layer("encoder").output_shape == (None, 2)
    conv = A.conv_autoencoder(**SMALL)
    assert conv.output_shape == (None, 8, 8, 1)
    assert conv.get_layer("encoder").output_shape == (None, 2)
    decoder_layers = [type(layer).__name__ for layer in conv.get_layer("decoder").layers]
    assert decoder_layers.count("Conv2DTranspose") == 2
    for kind in ("dense", "conv"):
        model = A.vae(kind=kind, **SMALL)
        assert model.output_shape == (None, 8, 8, 1)
        assert [tuple(out.shape) for out in model.get_layer("encoder").outputs] == [(None, 2), (None, 2)]
        assert model.get_layer("decoder").input_shape == (None, 2)


def test_builders_check_their_arguments():
    with pytest.raises(ValueError, match="multiples of 4"):
        A.conv_autoencoder(input_shape=(10, 10, 1))
    with pytest.raises(ValueError, match="code_size must be in \\[1, inf\\]"):
        A.dense_autoencoder(code_size=0)
    with pytest.raises(ValueError, match="kind must be one of 'dense', 'conv'"):
        A.vae(kind="recurrent")
    with pytest.raises(ValueError, match="input_shape must be \\(height, width, channels\\)"):
        A.vae(input_shape=(64,))
    with pytest.raises(ValueError, match="kl_weight must be in"):
        A.Sampling(kl_weight=-1.0)


def test_kl_divergence_against_numpy():
    mu, logvar = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    reference = A.kl_divergence_reference(mu, logvar)
    assert reference.shape == (6,) and np.all(reference >= 0)
    ours = _numpy(A.kl_divergence(ops.convert_to_tensor(mu, "float32"), ops.convert_to_tensor(logvar, "float32")))
    assert np.allclose(ours, reference, rtol=1e-5)
    # closed forms: KL(N(0, 1) ‖ N(0, 1)) = 0, and a shift μ alone costs μ²/2
    assert A.kl_divergence_reference(np.zeros((1, 3)), np.zeros((1, 3))) == pytest.approx(0.0)
    assert A.kl_divergence_reference([[2.0]], [[0.0]]) == pytest.approx(2.0)
    sigma2 = 4.0   # ½(σ² − 1 − log σ²) for a single dimension
    assert A.kl_divergence_reference([[0.0]], [[math.log(sigma2)]]) == pytest.approx(0.5 * (sigma2 - 1 - math.log(sigma2)))
    with pytest.raises(ValueError, match="mu and logvar must have the same shape"):
        A.kl_divergence_reference(np.zeros((2, 3)), np.zeros((2, 2)))


def test_sampling_layer_moments_and_kl_loss():
    mu = np.array([1.0, -2.0, 0.5], dtype="float32")
    logvar = np.log(np.array([1.0, 4.0, 0.25], dtype="float32"))
    n = 20_000
    batch_mu, batch_logvar = np.tile(mu, (n, 1)), np.tile(logvar, (n, 1))
    layer = A.Sampling(seed=7)
    z = _numpy(layer([ops.convert_to_tensor(batch_mu), ops.convert_to_tensor(batch_logvar)]))
    assert np.allclose(z.mean(axis=0), mu, atol=4 * np.sqrt(np.exp(logvar) / n))
    assert np.allclose(z.var(axis=0), np.exp(logvar), rtol=0.05)      # σ², not log σ² or σ
    (kl,) = layer.losses
    assert float(_numpy(kl)) == pytest.approx(A.kl_divergence_reference(mu[None], logvar[None])[0], rel=1e-5)
    again = _numpy(A.Sampling(seed=7)([ops.convert_to_tensor(batch_mu[:5]), ops.convert_to_tensor(batch_logvar[:5])]))
    assert np.allclose(again, _numpy(A.Sampling(seed=7)([ops.convert_to_tensor(batch_mu[:5]),
                                                         ops.convert_to_tensor(batch_logvar[:5])])))


def test_reconstruction_losses_against_numpy():
    x = rng.uniform(size=(4, 8, 8, 1))
    x_hat = rng.uniform(0.05, 0.95, size=(4, 8, 8, 1))
    flat, flat_hat = x.reshape(4, -1), x_hat.reshape(4, -1)
    bernoulli = -np.sum(flat * np.log(flat_hat) + (1 - flat) * np.log(1 - flat_hat), axis=1)
    gaussian = np.sum((flat - flat_hat) ** 2 / (2 * 0.01) + 0.5 * np.log(2 * np.pi * 0.01), axis=1)
    tensors = ops.convert_to_tensor(x, "float32"), ops.convert_to_tensor(x_hat, "float32")
    assert np.allclose(_numpy(A.bernoulli_nll(*tensors)), bernoulli, rtol=1e-5)
    assert np.allclose(_numpy(A.gaussian_nll(*tensors)), gaussian, rtol=1e-4)
    assert np.allclose(A.nll_reference(x, x_hat), bernoulli)
    assert np.allclose(A.nll_reference(x, x_hat, "gaussian"), gaussian)
    assert A.reconstruction_loss("gaussian") is A.gaussian_nll
    with pytest.raises(ValueError, match="kind must be one of 'bernoulli', 'gaussian'"):
        A.reconstruction_loss("poisson")


def test_conv_autoencoder_learns_to_reconstruct(digits):
    keras.utils.set_random_seed(0)
    model = A.conv_autoencoder(**SMALL)
    model.compile(keras.optimizers.Adam(3e-3), "mse")
    history = model.fit(digits.x_train[:512], digits.x_train[:512], epochs=3, batch_size=64, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_vae_trains_reports_elbo_and_round_trips(digits, tmp_path):
    keras.utils.set_random_seed(0)
    model = A.vae(seed=1, **SMALL)
    model.compile(keras.optimizers.Adam(1e-3), A.reconstruction_loss())
    before = A.negative_elbo(model, digits.x_test)
    history = model.fit(digits.x_train, digits.x_train, epochs=4, batch_size=64, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    after = A.negative_elbo(model, digits.x_test, samples=2)
    assert np.isfinite(after) and 0 < after < before
    evaluated = model.evaluate(digits.x_test, digits.x_test, batch_size=512, verbose=0)
    assert evaluated == pytest.approx(after, rel=0.05)      # the compiled loss is −ELBO too, KL included
    path = tmp_path / "vae.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert A.negative_elbo(loaded, digits.x_test, samples=2) == pytest.approx(after, rel=1e-6)
    samples = _numpy(loaded.get_layer("decoder")(rng.standard_normal((3, 2)).astype("float32")))
    assert samples.shape == (3, 8, 8, 1) and np.all((samples >= 0) & (samples <= 1))


def test_negative_elbo_checks_its_model():
    with pytest.raises(ValueError, match="model must be a VAE"):
        A.negative_elbo(keras.Sequential([keras.Input((8, 8, 1))], name="plain"),
                        np.zeros((2, 8, 8, 1)))
    with pytest.raises(ValueError, match="model must be a VAE.*got 'dense_autoencoder'"):
        A.negative_elbo(A.dense_autoencoder(**SMALL), np.zeros((2, 8, 8, 1)))
    with pytest.raises(ValueError, match="reconstruction must be one of"):
        A.negative_elbo(A.vae(**SMALL), np.zeros((2, 8, 8, 1)), reconstruction="l1")
    with pytest.raises(ValueError, match="x must hold at least one image; got none"):
        A.negative_elbo(A.vae(**SMALL), np.zeros((0, 8, 8, 1)))


def test_vae_keeps_its_loss_terms_in_float32_under_mixed_precision():
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        model = A.vae(seed=0, **SMALL)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    x = ops.convert_to_tensor(rng.uniform(size=(4, 8, 8, 1)), "float32")
    assert model.get_layer("decoder").get_layer("dense1").compute_dtype == "float16"
    assert ops.convert_to_numpy(model(x)).dtype == np.float32
    assert all(ops.convert_to_numpy(head).dtype == np.float32 for head in model.get_layer("encoder")(x))
    assert np.isfinite(float(ops.convert_to_numpy(model.losses[0])))
