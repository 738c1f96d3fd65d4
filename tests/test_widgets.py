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
    code = ("import sys, course_lib.widgets; "
            "print(sorted(m for m in ('ipywidgets', 'matplotlib', 'keras') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
