import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib import plots  # noqa: E402


def test_show_images_draws_one_panel_per_image_with_labels():
    fig = plots.show_images(np.random.default_rng(0).random((7, 8, 8, 1)), labels=list("abcdefg"), columns=4)
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titled == list("abcdefg") and len(fig.axes) == 8
    with pytest.raises(ValueError, match="one entry per image"):
        plots.show_images(np.zeros((2, 4, 4)), labels=["a"])


def test_learning_curves_draw_train_and_validation():
    fig = plots.learning_curves({"plain": {"accuracy": [0.5, 0.9], "val_accuracy": [0.5, 0.7]},
                                 "dropout": {"accuracy": [0.4, 0.8]}})
    assert len(fig.axes[0].lines) == 3
    with pytest.raises(KeyError, match="has no 'accuracy'"):
        plots.learning_curves({"x": {"loss": [1.0]}})


def test_compare_bars():
    fig = plots.compare_bars({"a": 0.5, "b": 0.7}, ylabel="accuracy", errors={"a": 0.1})
    assert len(fig.axes[0].patches) == 2
    with pytest.raises(ValueError, match="at least one bar"):
        plots.compare_bars({}, ylabel="y")
