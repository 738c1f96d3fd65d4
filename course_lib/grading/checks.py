"""Checks for assignment test cells whose failure messages teach.

A failed check says what was tested, what was expected (a shape, a tolerance, a property)
and what came back, with a hint where the mistake has a recognisable pattern (a constant
factor, a flipped sign), without printing the expected values themselves.
"""
from __future__ import annotations

import numpy as np


class CheckFailed(AssertionError):
    """A test-cell check failed; the message explains how."""


def _as_array(what: str, value) -> np.ndarray:
    if value is None:
        raise CheckFailed(f"{what} is None: did the function forget to `return` its result?")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise CheckFailed(f"{what} should be a number or an array of numbers; got {type(value).__name__}")
    return array


def _factor_hint(got: np.ndarray, expected: np.ndarray) -> str:
    """Name a constant factor between got and expected, the signature of many slips."""
    mask = np.abs(expected) > 1e-12
    if not mask.any() or np.any(np.abs(got[~mask]) > 1e-12):
        return ""
    ratios = got[mask] / expected[mask]
    if np.allclose(ratios, ratios.flat[0], rtol=1e-6, atol=1e-12):
        factor = float(ratios.flat[0])
        if np.isclose(factor, -1.0):
            return " Every value has the opposite sign: check the sign of your update."
        return f" Every value is {factor:.4g} times the expected one: look for a missing or extra factor."
    return ""


def expect_shape(what: str, got, shape) -> None:
    """``got`` must have exactly ``shape``."""
    array = _as_array(what, got)
    if array.shape != tuple(shape):
        raise CheckFailed(f"{what} has shape {array.shape}; expected shape {tuple(shape)}.")


def expect_close(what: str, got, expected, *, rtol: float = 1e-6, atol: float = 1e-9,
                 hint: str = "") -> None:
    """``got`` must equal ``expected`` to within |got − expected| ≤ atol + rtol·|expected|."""
    got_array = _as_array(what, got)
    expected = np.asarray(expected, dtype=np.float64)
    if got_array.shape != expected.shape:
        raise CheckFailed(f"{what} has shape {got_array.shape}; expected shape {expected.shape}.")
    if not np.all(np.isfinite(got_array)):
        raise CheckFailed(f"{what} contains NaN or infinite values.")
    error = np.abs(got_array - expected)
    allowed = atol + rtol * np.abs(expected)
    if np.all(error <= allowed):
        return
    worst = np.unravel_index(np.argmax(error - allowed), error.shape) if error.ndim else ()
    where = f" at index {tuple(int(i) for i in worst)}" if worst else ""
    message = (f"{what} is not what the formula gives: it is off by {float(error[worst]):.3g}"
               f"{where} (allowed: {float(allowed[worst]):.1g}).")
    raise CheckFailed(message + _factor_hint(got_array, expected) + (f" {hint}" if hint else ""))


def expect(condition, message: str) -> None:
    """A property that must hold, e.g. ``expect(0.45 < kept < 0.55, "about half the units kept ...")``."""
    if not bool(condition):
        raise CheckFailed(message)
