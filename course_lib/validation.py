"""Argument checks shared by every public function.

Each check raises an error that names the argument, the value it got and what
was expected, so a student reading the traceback knows what to change.
"""
from __future__ import annotations

import numbers

import numpy as np


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_choice(name: str, value, choices) -> None:
    """``value`` must be one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(
            f"{name} must be one of {', '.join(map(repr, choices))}; got {_describe(value)}"
        )


def check_number(name: str, value, *, low=None, high=None,
                 low_inclusive=True, high_inclusive=True, integer=False) -> None:
    """``value`` must be a real number (an integer if asked) inside the given interval."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        expected = "an integer" if integer else "a real number"
        raise TypeError(f"{name} must be {expected}; got {_describe(value)}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value!r}")
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        left = ("[" if low_inclusive else "(") + ("-inf" if low is None else repr(low))
        right = ("inf" if high is None else repr(high)) + ("]" if high_inclusive else ")")
        raise ValueError(f"{name} must be in {left}, {right}; got {value!r}")


def check_keep_probability(name: str, p) -> None:
    """A dropout keep probability lies in (0, 1]: p = 0 would drop every unit."""
    check_number(name, p, low=0.0, high=1.0, low_inclusive=False)


def check_array(name: str, value, *, ndim=None, min_ndim=None, shape=None) -> np.ndarray:
    """Convert ``value`` to a float NumPy array and check its rank or shape."""
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be an array of numbers; got {_describe(value)}")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be an array of numbers; got {_describe(value)}") from error
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must have rank {ndim}; got an array of shape {array.shape}")
    if min_ndim is not None and array.ndim < min_ndim:
        raise ValueError(
            f"{name} must have rank {min_ndim} or more; got an array of shape {array.shape}"
        )
    if shape is not None and array.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}; got shape {array.shape}")
    return array


def check_same_shape(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    if np.shape(a) != np.shape(b):
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape; "
            f"got {np.shape(a)} and {np.shape(b)}"
        )


def check_labels(name: str, labels, *, count: int | None = None, num_classes: int | None = None) -> np.ndarray:
    """Integer class labels as a NumPy array of shape (N,). A column of shape (N, 1), as Keras's
    CIFAR-10 loader gives, is flattened; one-hot rows are refused (pass ``labels.argmax(axis=1)``),
    so a comparison with predictions of shape (N,) cannot broadcast to an N × N table."""
    if isinstance(labels, (str, bytes)) or labels is None:
        raise TypeError(f"{name} must be integer class labels; got {_describe(labels)}")
    array = np.asarray(labels)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        hint = " (one-hot rows? pass labels.argmax(axis=1))" if array.ndim == 2 else ""
        raise ValueError(f"{name} must be integer class labels of shape (N,) or (N, 1); "
                         f"got shape {array.shape}{hint}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be integer class labels; got {_describe(array)}")
    array = array.astype(np.int64)
    if count is not None and len(array) != count:
        raise ValueError(f"{name} must hold {count} labels, one per example; got {len(array)}")
    if num_classes is not None and array.size and (array.min() < 0 or array.max() >= num_classes):
        raise ValueError(f"{name} must lie in 0..{num_classes - 1} for {num_classes} classes; "
                         f"got values from {array.min()} to {array.max()}")
    return array
