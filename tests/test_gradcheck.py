import keras
import numpy as np
import pytest

from course_lib import gradcheck


def test_numerical_gradient_of_a_known_function():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    grad = gradcheck.numerical_gradient(lambda z: np.sum(np.sin(z) * z), x)
    assert gradcheck.relative_error(grad, np.cos(x) * x + np.sin(x)) < 1e-8
    assert np.array_equal(x, [[1.0, -2.0], [0.5, 3.0]])  # input left alone


def test_numerical_gradient_array_checks_a_backward_pass():
    x, dout = np.random.default_rng(0).normal(size=(2, 3)), np.ones((2, 3)) * 2
    grad = gradcheck.numerical_gradient_array(lambda z: z ** 2, x, dout)
    assert gradcheck.relative_error(grad, 2 * x * dout) < 1e-8


def test_relative_error_is_scale_free_and_catches_a_factor_of_two():
    a = np.array([1e-3, 2e-3])
    assert gradcheck.relative_error(a, a) == 0.0
    assert gradcheck.relative_error(a, 2 * a) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="a and b must have the same shape"):
        gradcheck.relative_error(np.zeros(2), np.zeros(3))


def test_bad_arguments():
    with pytest.raises(TypeError, match="f must be a function"):
        gradcheck.numerical_gradient(3, np.zeros(2))
    with pytest.raises(ValueError, match="h must be in"):
        gradcheck.numerical_gradient(np.sum, np.zeros(2), h=0)


def test_autodiff_agrees_with_numerical_gradient_on_this_backend():
    W = np.random.default_rng(1).normal(size=(3, 2))
    x = np.array([0.5, -1.0, 2.0], dtype="float32")

    def loss(w):
        return keras.ops.sum(keras.ops.tanh(keras.ops.matmul(keras.ops.convert_to_tensor(x), w)))

    auto = gradcheck.autodiff_gradient(loss, W)
    numeric = gradcheck.numerical_gradient(lambda w: np.sum(np.tanh(x @ w)), W)
    assert gradcheck.relative_error(auto, numeric) < 1e-4  # float32 autodiff vs float64 differences


def test_autodiff_gives_zero_for_a_constant_and_refuses_a_vector_on_every_backend():
    x = np.array([1.0, 2.0, 3.0])
    assert np.array_equal(gradcheck.autodiff_gradient(lambda z: keras.ops.convert_to_tensor(2.0), x), [0, 0, 0])
    with pytest.raises(ValueError, match=r"f must return a scalar .*got a value of shape \(3,\)"):
        gradcheck.autodiff_gradient(lambda z: z ** 2, x)       # TensorFlow used to sum it quietly
