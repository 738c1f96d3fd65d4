"""Training helpers: one way to fit and score a classifier, so every arm of an experiment
gets the same treatment."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .validation import check_number


@dataclass
class FitResult:
    """Accuracies measured after training, in inference mode (dropout off), and the history."""

    train_accuracy: float
    val_accuracy: float
    history: dict

    @property
    def gap(self) -> float:
        """Train minus validation accuracy: how much the model overfits."""
        return self.train_accuracy - self.val_accuracy


def accuracy(model, x, y, *, batch_size: int = 256) -> float:
    """Share of ``x`` whose arg-max prediction equals the integer label ``y``.

    The model is called directly, batch by batch, in inference mode (dropout off). On the
    course's small data this is much faster than ``model.predict``, and it traces no new
    function per model, so scoring many models raises no retracing warnings.
    """
    from keras import ops

    y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length; got {len(x)} and {len(y)}")
    check_number("batch_size", batch_size, low=1, integer=True)
    scores = [ops.convert_to_numpy(model(x[start:start + batch_size], training=False))
              for start in range(0, len(y), batch_size)]
    return float(np.mean(np.argmax(np.concatenate(scores), axis=-1) == y))


def fit_classifier(model, x_train, y_train, x_val, y_val, *, epochs: int,
                   batch_size: int = 32, verbose: int = 0) -> FitResult:
    """Fit a compiled Keras classifier and measure train and validation accuracy afterwards.

    The training accuracy is that of the labels trained on (noisy ones included), measured
    with dropout off, unlike the running average ``fit`` logs.
    """
    check_number("epochs", epochs, low=1, integer=True)
    check_number("batch_size", batch_size, low=1, integer=True)
    history = model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=epochs,
                        batch_size=batch_size, verbose=verbose)
    return FitResult(accuracy(model, x_train, y_train), accuracy(model, x_val, y_val),
                     history.history)
