import matplotlib

matplotlib.use("Agg")

import subprocess  # noqa: E402
import sys  # noqa: E402

import ipywidgets  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib import regularization, widgets  # noqa: E402

H = np.linspace(0.1, 1.0, 200)  # an activation vector whose mean is 0.55


def test_explorer_builds_a_container_with_its_controls_and_picture():
    explorer = widgets.dropout_explorer(H, p=0.5, seed=3)
    assert isinstance(explorer.widget, ipywidgets.Box)
    assert explorer.p_slider.value == 0.5 and explorer.seed_slider.value == 3
    assert bytes(explorer.image.value).startswith(b"\x89PNG")
    assert explorer.values["units"] == 200 and explorer.values["variant"] == "slide"
    assert "mean(h̃)" in explorer.readout.value
    assert "application/vnd.jupyter.widget-view+json" in explorer._repr_mimebundle_()


def test_readout_follows_the_slider_and_the_formula():
    explorer = widgets.dropout_explorer(H, seed=0)
    for p in (0.2, 0.5, 0.9, 1.0):
        before = explorer.readout.value
        explorer.p_slider.value = p
        output, _ = regularization.dropout_forward(H, p, "train", np.random.default_rng(0))
        values = explorer.values
        assert values["p"] == p
        assert values["mean_output"] == pytest.approx(output.mean())
        assert values["expected_mean"] == pytest.approx(p * H.mean())
        assert values["test_mean"] == pytest.approx(p * H.mean())
        assert f"{values['expected_mean']:.4f}" in explorer.readout.value
        assert explorer.readout.value != before
    assert values["kept"] == 200 and values["mean_output"] == pytest.approx(H.mean())  # p = 1 keeps all


def test_mean_over_masks_approaches_p_times_mean_h():
    p, draws = 0.3, 12
    explorer = widgets.dropout_explorer(H, p=p)
    means = []
    for seed in range(draws):
        explorer.seed_slider.value = seed
        means.append(explorer.values["mean_output"])
    standard_error = np.sqrt(p * (1 - p) * np.sum(H**2)) / H.size / np.sqrt(draws)
    assert abs(np.mean(means) - p * H.mean()) < 4 * standard_error


def test_inverted_variant_expects_h_itself():
    explorer = widgets.dropout_explorer(H, p=0.25, seed=5, variant="slide")
    explorer.variant_toggle.value = "inverted"
    output, _ = regularization.inverted_dropout_forward(H, 0.25, "train", np.random.default_rng(5))
    values = explorer.values
    assert values["mean_output"] == pytest.approx(output.mean())
    assert values["expected_mean"] == pytest.approx(H.mean())
    assert values["test_mean"] == pytest.approx(H.mean())
    assert "inverted" in explorer.readout.value


def test_new_mask_button_moves_to_the_next_seed():
    explorer = widgets.dropout_explorer(H, seed=999)
    first = explorer.values["mean_output"]
    explorer.resample_button.click()
    assert explorer.values["seed"] == 1000 and explorer.values["mean_output"] != first


def test_a_small_p_is_kept_as_given():
    assert widgets.dropout_explorer(H, p=0.005).values["p"] == 0.005


def test_an_image_works_too():
    digit = np.random.default_rng(0).random((8, 8, 1))
    explorer = widgets.dropout_explorer(digit, p=0.5)
    assert explorer.values["units"] == 64
    assert bytes(explorer.image.value).startswith(b"\x89PNG")


@pytest.mark.parametrize("kwargs, error, message", [
    ({"p": 0.0}, ValueError, r"p must be in \(0.0, 1.0\]; got 0.0"),
    ({"p": 1.5}, ValueError, r"p must be in \(0.0, 1.0\]"),
    ({"p": "half"}, TypeError, "p must be a real number"),
    ({"seed": -1}, ValueError, "seed must be in"),
    ({"seed": 1.5}, TypeError, "seed must be an integer"),
    ({"variant": "dropconnect"}, ValueError, "variant must be one of 'slide', 'inverted'"),
])
def test_bad_settings_raise_clear_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        widgets.dropout_explorer(H, **kwargs)


@pytest.mark.parametrize("h, error, message", [
    (None, TypeError, "h must be an array of numbers"),
    (np.zeros((2, 3, 4)), ValueError,
     r"h must be a non-empty vector or image \(H, W\); got an array of shape \(2, 3, 4\)"),
    ([], ValueError, "h must be a non-empty vector or image"),
])
def test_bad_activations_raise_clear_errors(h, error, message):
    with pytest.raises(error, match=message):
        widgets.dropout_explorer(h)


def test_import_loads_neither_ipywidgets_nor_matplotlib():
    code = ("import sys, course_lib.widgets, course_lib.plots; "
            "print(sorted(m for m in ('ipywidgets', 'matplotlib', 'keras') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- the latent explorer --------------------------------------------------------------------------

class FakeDecoder:
    """Maps z (n, k) to 4×4 grey images whose pixel (i, j) is sigmoid(z[0] + i·z[1]/4 − j/4): the
    image changes with z, and every call is recorded."""

    def __init__(self, code_size=3, shape=(4, 4, 1)):
        self.input_shape = (None, code_size)
        self.shape = shape
        self.calls = []

    def __call__(self, z, training=None):
        from keras import ops

        z = np.asarray(ops.convert_to_numpy(z), dtype=np.float64)
        self.calls.append((z.copy(), training))
        return expected_images(z, self.shape)


def expected_images(z, shape=(4, 4, 1)):
    height, width, channels = shape
    i, j = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    second = z[:, 1] if z.shape[1] > 1 else np.zeros(len(z))
    logits = z[:, 0, None, None] + i[None] * second[:, None, None] / 4 - j[None] / 4
    images = 1 / (1 + np.exp(-logits))
    return np.repeat(images[..., None], channels, axis=-1).astype("float32")


def test_latent_explorer_builds_sliders_and_decodes_the_prior_mean():
    decoder = FakeDecoder(code_size=3)
    explorer = widgets.latent_explorer(decoder)
    assert isinstance(explorer.widget, ipywidgets.Box)
    assert [s.description for s in explorer.sliders] == ["z[0]", "z[1]", "z[2]"]
    assert all(s.min == -3.0 and s.max == 3.0 and s.value == 0.0 for s in explorer.sliders)
    z, training = decoder.calls[-1]
    assert z.shape == (1, 3) and np.all(z == 0) and training is False   # eager call, inference mode
    assert explorer.values["z"] == [0.0, 0.0, 0.0]
    assert explorer.values["log_prior"] == pytest.approx(-1.5 * np.log(2 * np.pi))
    np.testing.assert_allclose(explorer.decoded, expected_images(np.zeros((1, 3)))[0], rtol=1e-6)
    assert bytes(explorer.image.value).startswith(b"\x89PNG")
    assert "log N(z; 0, I)" in explorer.readout.value


def test_moving_a_slider_decodes_the_new_z():
    decoder = FakeDecoder(code_size=3)
    explorer = widgets.latent_explorer(decoder)
    before_png, before_mean = bytes(explorer.image.value), explorer.values["mean"]
    explorer.sliders[0].value = 1.5
    z, _ = decoder.calls[-1]
    np.testing.assert_allclose(z, [[1.5, 0.0, 0.0]])
    assert explorer.values["z"] == [1.5, 0.0, 0.0]
    assert explorer.values["mean"] == pytest.approx(expected_images(z).mean(), rel=1e-6)
    assert explorer.values["mean"] > before_mean and bytes(explorer.image.value) != before_png
    assert explorer.values["log_prior"] == pytest.approx(-0.5 * 1.5**2 - 1.5 * np.log(2 * np.pi))
    explorer.sliders[1].value = -2.0
    np.testing.assert_allclose(decoder.calls[-1][0], [[1.5, -2.0, 0.0]])
    assert "+1.50, -2.00" in explorer.readout.value


def test_a_long_code_gets_sliders_for_the_first_dims_and_keeps_the_rest():
    decoder = FakeDecoder(code_size=12)
    explorer = widgets.latent_explorer(decoder)
    assert len(explorer.sliders) == 8                      # default: at most 8 sliders
    start = np.arange(12) / 10
    explorer = widgets.latent_explorer(decoder, dims=2, z=start)
    assert len(explorer.sliders) == 2
    explorer.sliders[1].value = 0.7
    np.testing.assert_allclose(decoder.calls[-1][0][0], [0.0, 0.7, *start[2:]])
    assert "10 more fixed" in explorer.readout.value


def test_set_moves_every_slider_and_decodes_once():
    decoder = FakeDecoder(code_size=3)
    explorer = widgets.latent_explorer(decoder)
    calls = len(decoder.calls)
    explorer.set([0.5, -0.25, 9.0])                        # clipped to the sliders' range
    assert len(decoder.calls) == calls + 1
    np.testing.assert_allclose(decoder.calls[-1][0], [[0.5, -0.25, 3.0]])
    explorer.zero_button.click()
    np.testing.assert_allclose(decoder.calls[-1][0], [[0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="z must have 3 values"):
        explorer.set([1.0, 2.0])


def test_sample_button_draws_from_the_prior_repeatably():
    first = widgets.latent_explorer(FakeDecoder(code_size=2), seed=4)
    first.sample_button.click()
    second = widgets.latent_explorer(FakeDecoder(code_size=2), seed=4)
    second.sample_button.click()
    expected = np.clip(np.random.default_rng(4).standard_normal(2), -3, 3)
    np.testing.assert_allclose(first.values["z"], expected)
    assert first.values["z"] == second.values["z"]


def test_strip_and_static_fallback():
    decoder = FakeDecoder(code_size=2)
    explorer = widgets.latent_explorer(decoder, codes=np.zeros((5, 2)), labels=[0, 1, 2, 3, 4])
    fig = explorer.strip(steps=5)
    assert len(fig.axes) == 2 * 5
    sweep, _ = decoder.calls[-1]                          # the last row sweeps z[1], z[0] stays
    np.testing.assert_allclose(sweep, np.column_stack([np.zeros(5), np.linspace(-3, 3, 5)]))
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    import base64

    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")  # what a static viewer shows
    assert "image/png" in widgets.dropout_explorer(H)._repr_mimebundle_()


def test_latent_explorer_with_a_keras_decoder_and_colour_images():
    import keras

    from course_lib.models import autoencoders

    decoder = autoencoders.vae(input_shape=(8, 8, 1), code_size=2, width=0.5).get_layer("decoder")
    explorer = widgets.latent_explorer(decoder)
    assert explorer.decoded.shape == (8, 8, 1) and 0 <= explorer.values["min"] <= explorer.values["max"] <= 1
    explorer.sliders[0].value = 2.0
    expected = keras.ops.convert_to_numpy(decoder(np.array([[2.0, 0.0]], "float32")))[0]
    np.testing.assert_allclose(explorer.decoded, expected, rtol=1e-5, atol=1e-6)
    colour = widgets.latent_explorer(FakeDecoder(code_size=1, shape=(4, 4, 3)))
    assert colour.decoded.shape == (4, 4, 3) and bytes(colour.image.value).startswith(b"\x89PNG")


def no_shape(z, training=None):
    return np.zeros((len(z), 4, 4, 1))


@pytest.mark.parametrize("decoder, kwargs, error, message", [
    ("decoder", {}, TypeError, "decoder must be a Keras model or a callable"),
    (no_shape, {}, ValueError, "code_size must be given: the decoder does not say its input shape"),
    (no_shape, {"code_size": 0}, ValueError, r"code_size must be in \[1, inf\]; got 0"),
    (FakeDecoder(3), {"dims": 4}, ValueError, r"dims must be in \[1, 3\]; got 4"),
    (FakeDecoder(3), {"dims": 1.5}, TypeError, "dims must be an integer"),
    (FakeDecoder(3), {"limit": 0}, ValueError, r"limit must be in \(0, inf\]"),
    (FakeDecoder(3), {"step": 5.0}, ValueError, r"step must be in \(0, 3.0\]"),
    (FakeDecoder(3), {"z": [1.0, 2.0]}, ValueError, "z must have 3 values .* got 2"),
    (FakeDecoder(3), {"z": [np.nan, 0, 0]}, ValueError, "z must be finite"),
    (FakeDecoder(3), {"z": "origin"}, TypeError, "z must be an array of numbers"),
    (FakeDecoder(3), {"codes": np.zeros((4, 2))}, ValueError, r"codes must have 3 columns .* shape \(4, 2\)"),
    (FakeDecoder(3), {"codes": np.zeros((4, 3)), "labels": [0, 1]}, ValueError, r"labels must have shape \(4,\)"),
    (FakeDecoder(3), {"labels": [0, 1]}, ValueError, "pass codes too"),
    (lambda z, training=None: np.zeros((len(z), 5)), {"code_size": 2}, ValueError,
     r"decoder must map 1 codes to images .* got an output of shape \(1, 5\)"),
])
def test_latent_explorer_rejects_bad_arguments(decoder, kwargs, error, message):
    with pytest.raises(error, match=message):
        widgets.latent_explorer(decoder, **kwargs)
