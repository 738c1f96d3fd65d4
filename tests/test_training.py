import keras
import numpy as np
import pytest

from course_lib.training import accuracy


def test_accuracy_is_measured_in_inference_mode():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dropout(0.9),
                              keras.layers.Dense(2, kernel_initializer="identity", use_bias=False)])
    x = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]] * 50, dtype="float32")
    y = np.array([0, 1] * 50)
    assert accuracy(model, x, y, batch_size=7) == 1.0  # dropout would scramble a training-mode pass
    assert accuracy(model, x, 1 - y) == 0.0
    with pytest.raises(ValueError, match="x and y must have the same length"):
        accuracy(model, x, np.zeros(3))
    with pytest.raises(ValueError, match="batch_size must be in"):
        accuracy(model, x, y, batch_size=0)
