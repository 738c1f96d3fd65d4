import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from course_lib import plots  # noqa: E402


def test_learning_curves_draw_train_and_validation():
    fig = plots.learning_curves({"plain": {"accuracy": [0.5, 0.9], "val_accuracy": [0.5, 0.7]},
                                 "dropout": {"accuracy": [0.4, 0.8]}})
    assert len(fig.axes[0].lines) == 3
    with pytest.raises(KeyError, match="has no 'accuracy'"):
        plots.learning_curves({"x": {"loss": [1.0]}})


def test_filter_grid_draws_one_tile_per_filter():
    import numpy as np

    kernels = np.random.default_rng(0).normal(size=(5, 5, 1, 7))
    fig = plots.filter_grid(kernels, columns=4, title="conv1")
    mosaic = fig.axes[0].images[0].get_array()
    assert mosaic.shape == (2 * 6 - 1, 4 * 6 - 1)  # 2 rows of 4 tiles, 1-pixel gaps
    first = mosaic[:5, :5]
    assert first.min() == 0 and first.max() == 1  # each tile stretched to its own range
    assert np.allclose(first, (kernels[..., 0, 0] - kernels[..., 0, 0].min()) / np.ptp(kernels[..., 0, 0]))
    assert np.all(mosaic[5, :] == 1) and np.all(mosaic[6:, 18:] == 1)  # a gap, and the empty 8th tile
    assert fig.axes[0].get_title() == "conv1"
    rgb = plots.filter_grid(np.random.default_rng(1).normal(size=(3, 3, 3, 2)))
    assert rgb.axes[0].images[0].get_array().shape == (3, 7, 3)
    flat = plots.filter_grid(np.zeros((3, 3, 1, 1)))  # a constant filter does not divide by zero
    assert np.all(flat.axes[0].images[0].get_array() == 0.5)


def test_filter_grid_rejects_what_is_not_a_kernel():
    import numpy as np

    with pytest.raises(ValueError, match="kernels must have rank 4"):
        plots.filter_grid(np.zeros((5, 5, 6)))
    with pytest.raises(ValueError, match="1 or 3 input channels"):
        plots.filter_grid(np.zeros((5, 5, 2, 6)))
    with pytest.raises(ValueError, match="at least one filter"):
        plots.filter_grid(np.zeros((5, 5, 1, 0)))
    with pytest.raises(ValueError, match="finite"):
        plots.filter_grid(np.full((5, 5, 1, 2), np.nan))
    with pytest.raises(ValueError, match="columns must be in"):
        plots.filter_grid(np.zeros((5, 5, 1, 2)), columns=0)


def test_bubble_chart_sizes_bubbles_by_parameters():
    fig = plots.bubble_chart(["A", "B", "C"], [0.7, 15.5, 4.1], [56.5, 71.6, 76.1], [61.1, 138.4, 25.6],
                             title="complexity")
    ax = fig.axes[0]
    bubbles = [c for c in ax.collections if len(c.get_offsets())]
    assert len(bubbles) == 3
    sizes = [float(c.get_sizes()[0]) for c in bubbles]
    assert sizes[1] == pytest.approx(2000) and sizes[0] / sizes[1] == pytest.approx(61.1 / 138.4)
    assert [t.get_text() for t in ax.texts] == ["A", "B", "C"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["20", "100"]
    assert ax.get_xscale() == "log" and ax.get_title() == "complexity"


def test_bubble_chart_rejects_bad_columns():
    with pytest.raises(ValueError, match="one value per name"):
        plots.bubble_chart(["A", "B"], [1.0], [50.0, 60.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="params must be positive"):
        plots.bubble_chart(["A"], [1.0], [50.0], [0.0])
    with pytest.raises(ValueError, match="operations must be positive"):
        plots.bubble_chart(["A"], [-1.0], [50.0], [1.0])
    with pytest.raises(ValueError, match="at least one model"):
        plots.bubble_chart([], [], [], [])
    with pytest.raises(TypeError, match="accuracy must be an array of numbers"):
        plots.bubble_chart(["A"], [1.0], None, [1.0])


def test_layer_costs_draws_one_bar_per_layer_and_model():
    from course_lib import accounting, models

    small = accounting.account(models.lenet5(nn=accounting.SHAPES))
    wide = accounting.account(models.lenet5(width=2, nn=accounting.SHAPES), name="lenet5 x2")
    fig = plots.layer_costs([small, wide], quantities=("params", "macs", "activations"), title="LeNet")
    assert len(fig.axes) == 3
    shown = [label.get_text() for label in fig.axes[0].get_yticklabels()]
    assert shown == ["input", "c1", "s2", "c3", "s4", "c5", "f6", "output"]  # flatten costs nothing
    assert len(fig.axes[0].patches) == 2 * len(shown)
    assert [t.get_text() for t in fig.axes[-1].get_legend().get_texts()] == ["lenet5", "lenet5 x2"]
    one = plots.layer_costs(small, quantities="params")
    assert len(one.axes) == 1 and one.axes[0].get_legend() is None


def test_layer_costs_rejects_bad_arguments():
    from course_lib import accounting, models

    table = accounting.account(models.lenet5(nn=accounting.SHAPES))
    with pytest.raises(TypeError, match="accounting.Table"):
        plots.layer_costs([])
    with pytest.raises(TypeError, match="accounting.Table"):
        plots.layer_costs({"params": 3})
    with pytest.raises(ValueError, match="quantities must be among"):
        plots.layer_costs(table, quantities=("flops",))
    with pytest.raises(ValueError, match="at least one"):
        plots.layer_costs(table, quantities=())


def test_activation_histograms_draw_one_panel_per_layer_and_run():
    import numpy as np

    rng = np.random.default_rng(0)
    runs = {"small": {"h1": rng.normal(0, 0.01, (50, 4)), "h2": rng.normal(0, 1e-4, (50, 4))},
            "He": {"h1": rng.normal(0, 1, (50, 4)), "h2": rng.normal(0, 1, (50, 4))}}
    fig = plots.activation_histograms(runs, bins=10, title="init")
    assert len(fig.axes) == 4
    assert fig.axes[0].get_title() == "h1" and fig.axes[0].get_ylabel() == "small"
    assert fig.axes[3].texts[0].get_text().startswith("σ=")
    with pytest.raises(ValueError, match="same number of layers"):
        plots.activation_histograms({"a": {"h1": [1.0]}, "b": {"h1": [1.0], "h2": [2.0]}})
    with pytest.raises(ValueError, match="runs must map"):
        plots.activation_histograms({})


class GridDecoder:
    """z (n, k) → 2×3 images whose pixels all equal z[0] + 10·z[1] (to find each tile's code)."""

    input_shape = (None, 3)

    def __init__(self):
        self.calls = []

    def __call__(self, z, training=None):
        import numpy as np
        from keras import ops

        z = np.asarray(ops.convert_to_numpy(z), dtype=np.float64)
        self.calls.append((z, training))
        return np.ones((len(z), 2, 3, 1)) * (z[:, 0] + 10 * z[:, 1])[:, None, None, None]


def test_gaussian_quantiles_are_the_normal_inverse_cdf():
    import numpy as np
    from scipy.stats import norm

    np.testing.assert_allclose(plots.gaussian_quantiles(7), norm.ppf(np.linspace(0.05, 0.95, 7)), rtol=1e-9)
    np.testing.assert_allclose(plots.gaussian_quantiles(3, low=0.25, high=0.75), [-0.6744898, 0, 0.6744898],
                               atol=1e-6)
    with pytest.raises(ValueError, match=r"low must be in \(0.0, 1.0\)"):
        plots.gaussian_quantiles(5, low=0.0)
    with pytest.raises(ValueError, match="low must be below high"):
        plots.gaussian_quantiles(5, low=0.9, high=0.1)


def test_latent_grid_tiles_decodes_with_z0_across_and_z1_up():
    import numpy as np

    decoder = GridDecoder()
    mosaic, values = plots.latent_grid(decoder, n=4, spacing="linear", limit=1.5, base=[0.0, 0.0, 7.0])
    np.testing.assert_allclose(values, [-1.5, -0.5, 0.5, 1.5])
    assert mosaic.shape == (4 * 2, 4 * 3, 1)
    z, training = decoder.calls[-1]
    assert z.shape == (16, 3) and np.all(z[:, 2] == 7.0) and training is False
    tiles = mosaic[::2, ::3, 0]                            # one pixel per tile
    np.testing.assert_allclose(tiles, values[None, :] + 10 * values[::-1, None])
    quantile_mosaic, quantiles = plots.latent_grid(decoder, n=5, dims=(2, 0))
    np.testing.assert_allclose(quantiles, plots.gaussian_quantiles(5))
    z, _ = decoder.calls[-1]
    np.testing.assert_allclose(np.unique(z[:, 2]), quantiles)
    np.testing.assert_allclose(z[:, 1], 0)
    assert quantile_mosaic.shape == (10, 15, 1)
    gapped, _ = plots.latent_grid(decoder, n=4, spacing="linear", limit=1.5, base=[0.0, 0.0, 7.0], gap=1)
    assert gapped.shape == (4 * 3 - 1, 4 * 4 - 1, 1)
    np.testing.assert_allclose(gapped[::3, ::4, 0], tiles)            # the same tiles, white lines between
    assert np.all(gapped[2, :] == 1) and np.all(gapped[:, 3] == 1)


def test_latent_manifold_draws_the_mosaic_with_code_ticks():
    import numpy as np

    from course_lib.models import autoencoders

    decoder = autoencoders.vae(input_shape=(8, 8, 1), code_size=2, width=0.5).get_layer("decoder")
    fig = plots.latent_manifold(decoder, n=6, title="manifold")
    ax = fig.axes[0]
    assert ax.images[0].get_array().shape == (6 * 9 - 1, 6 * 9 - 1)   # 8×8 tiles, 1-pixel gaps
    assert ax.get_xlabel() == "z[0]" and ax.get_ylabel() == "z[1]" and ax.get_title() == "manifold"
    assert ax.get_xticklabels()[0].get_text() == f"{plots.gaussian_quantiles(6)[0]:.2g}"
    mosaic, _ = plots.latent_grid(decoder, n=6, gap=1)
    np.testing.assert_allclose(ax.images[0].get_array(), mosaic[..., 0])
    assert ax.get_xticks()[0] == pytest.approx(3.5)                  # the centre of the first tile
    seamless = plots.latent_manifold(decoder, n=6, gap=0).axes[0]
    assert seamless.images[0].get_array().shape == (48, 48)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"n": 0}, ValueError, r"n must be in \[1, inf\]"),
    ({"dims": (0, 0)}, ValueError, r"dims must be two different latent dimensions in 0..2; got \(0, 0\)"),
    ({"dims": (0, 3)}, ValueError, "dims must be two different latent dimensions"),
    ({"base": [0.0, 1.0]}, ValueError, r"base must have shape \(3,\)"),
    ({"spacing": "log"}, ValueError, "spacing must be one of 'quantiles', 'linear'"),
    ({"values": [1.0, 2.0], "n": 3}, ValueError, r"values must have shape \(3,\)"),
    ({"gap": -1}, ValueError, r"gap must be in \[0, inf\]"),
])
def test_latent_grid_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        plots.latent_grid(GridDecoder(), **kwargs)
    with pytest.raises(TypeError, match="decoder must be a Keras model or a callable"):
        plots.latent_manifold(None)


def test_image_grid_tiles_images_with_row_labels():
    import numpy as np

    images = np.random.default_rng(0).random((7, 3, 3))
    fig = plots.image_grid(images, columns=4, titles=["a", "b"], title="samples")
    mosaic = fig.axes[0].images[0].get_array()
    assert mosaic.shape == (2 * 4 - 1, 4 * 4 - 1)
    np.testing.assert_allclose(mosaic[4:7, 4:7], images[5])
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["a", "b"]
    assert plots.image_grid(np.zeros((2, 3, 3, 3))).axes[0].images[0].get_array().shape == (3, 7, 3)
    with pytest.raises(ValueError, match="one label per row"):
        plots.image_grid(images, columns=4, titles=["a"])
    with pytest.raises(ValueError, match=r"images must be a non-empty batch"):
        plots.image_grid(np.zeros((2, 3, 3, 2)))
