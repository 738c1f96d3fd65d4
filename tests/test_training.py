import keras
import numpy as np
import pytest

from course_lib import data
from course_lib.training import accuracy, fit_classifier


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dropout(0.5), keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    return model


def test_fit_classifier_measures_accuracy_after_training_with_dropout_off():
    split = data.load("digits", seed=0)
    x_train, x_val = split.x_train.reshape(-1, 64), split.x_val.reshape(-1, 64)
    model = _model()
    result = fit_classifier(model, x_train, split.y_train, x_val, split.y_val, epochs=5, batch_size=64)
    assert result.val_accuracy > 0.8 and len(result.history["loss"]) == 5
    assert result.train_accuracy == pytest.approx(accuracy(model, x_train, split.y_train))
    assert result.gap == pytest.approx(result.train_accuracy - result.val_accuracy)
    with pytest.raises(ValueError, match="epochs must be in"):
        fit_classifier(model, x_train, split.y_train, x_val, split.y_val, epochs=0)
    with pytest.raises(ValueError, match="x and y must have the same length"):
        accuracy(model, x_val, np.zeros(3))
