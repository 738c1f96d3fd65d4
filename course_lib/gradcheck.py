"""Gradient checking, cs231n style: centred differences and relative error.

    ∂f/∂x_i ≈ (f(x + h e_i) − f(x − h e_i)) / 2h          (error O(h²))
    relative error = max_i |a_i − b_i| / max(|a_i| + |b_i|, 1e-8)

In float64 a correct analytic gradient usually gives a relative error below 1e-7;
above 1e-2 it is almost certainly wrong.
"""
from __future__ import annotations

import numpy as np

from .validation import check_array, check_number


def numerical_gradient(f, x, h: float = 1e-5) -> np.ndarray:
    """Gradient of a scalar function ``f`` at ``x`` by centred differences (float64)."""
    if not callable(f):
        raise TypeError(f"f must be a function of one array returning a number; got {type(f).__name__}")
    check_number("h", h, low=0.0, low_inclusive=False)
    x = check_array("x", x).copy()
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + h
        plus = float(f(x))
        x[index] = original - h
        minus = float(f(x))
        x[index] = original
        grad[index] = (plus - minus) / (2 * h)
    return grad


def numerical_gradient_array(f, x, dout, h: float = 1e-5) -> np.ndarray:
    """Gradient of Σ f(x) ⊙ dout with respect to ``x``: checks a backward pass given upstream ``dout``."""
    dout = check_array("dout", dout)
    return numerical_gradient(lambda z: np.sum(np.asarray(f(z), dtype=np.float64) * dout), x, h)


def relative_error(a, b) -> float:
    """max |a − b| / max(|a| + |b|, 1e-8), elementwise, then the largest."""
    a = check_array("a", a)
    b = check_array("b", b)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape; got {a.shape} and {b.shape}")
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b)))) if a.size else 0.0


def autodiff_gradient(f, x) -> np.ndarray:
    """Gradient of a scalar function ``f`` (written with ``keras.ops``) at ``x``, by the backend's autodiff.

    TensorFlow records a tape, JAX transforms the function, PyTorch fills ``.grad``: three
    routes to the same number, which is what a framework gives you for free. An ``f`` that
    does not depend on ``x`` has gradient zero on every backend.
    """
    import keras

    x = check_array("x", x).astype(keras.config.floatx())
    value = keras.ops.convert_to_numpy(f(keras.ops.convert_to_tensor(x)))
    if np.size(value) != 1:
        raise ValueError(f"f must return a scalar (the gradient of a vector is a Jacobian); "
                         f"got a value of shape {np.shape(value)}")
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        variable = tf.Variable(x)
        with tf.GradientTape() as tape:
            value = keras.ops.sum(f(variable))
        return np.asarray(tape.gradient(value, variable, unconnected_gradients=tf.UnconnectedGradients.ZERO))
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda z: keras.ops.sum(f(z)))(x))
    if backend == "torch":
        import torch

        tensor = torch.tensor(x, requires_grad=True)
        value = keras.ops.sum(f(tensor))
        if not value.requires_grad:
            return np.zeros_like(x)
        value.backward()
        return tensor.grad.detach().cpu().numpy()
    raise RuntimeError(f"autodiff_gradient needs the tensorflow, jax or torch backend; got {backend!r}")
