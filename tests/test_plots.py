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
