import numpy as np
import pytest

from course_lib.validation import (check_array, check_choice, check_keep_probability, check_labels,
                                   check_number, check_same_shape)


def test_choice_names_argument_value_and_options():
    with pytest.raises(ValueError, match=r"colour must be one of 'red', 'blue'; got 'green'"):
        check_choice("colour", "green", ["red", "blue"])
    check_choice("colour", "red", ["red", "blue"])


@pytest.mark.parametrize("p", [0.0, -0.1, 1.5, float("nan")])
def test_keep_probability_outside_0_1_is_refused(p):
    with pytest.raises(ValueError, match="p must"):
        check_keep_probability("p", p)


@pytest.mark.parametrize("p", [1e-9, 0.5, 1.0])
def test_keep_probability_inside_0_1_is_accepted(p):
    check_keep_probability("p", p)


def test_number_type_and_interval():
    with pytest.raises(TypeError, match="seed must be an integer; got 1.5"):
        check_number("seed", 1.5, integer=True)
    with pytest.raises(TypeError, match="lam must be a real number; got 'x'"):
        check_number("lam", "x")
    with pytest.raises(TypeError):
        check_number("flag", True)
    with pytest.raises(ValueError, match=r"lam must be in \[0.0, inf\]; got -1"):
        check_number("lam", -1, low=0.0)


def test_array_rank_and_shape():
    with pytest.raises(ValueError, match=r"images must have rank 4; got an array of shape \(2, 3\)"):
        check_array("images", np.zeros((2, 3)), ndim=4)
    with pytest.raises(ValueError, match=r"must have shape \(3,\)"):
        check_array("v", [1, 2], shape=(3,))
    with pytest.raises(TypeError, match="x must be an array of numbers; got 'abc'"):
        check_array("x", "abc")
    assert check_array("x", [[1, 2]], ndim=2).dtype == np.float64


def test_same_shape():
    with pytest.raises(ValueError, match=r"W and dW must have the same shape; got \(2,\) and \(3,\)"):
        check_same_shape("W", np.zeros(2), "dW", np.zeros(3))


def test_labels_are_integers_of_shape_n_or_a_column():
    assert check_labels("y", np.array([[3], [1]], np.uint8)).tolist() == [3, 1]   # (N, 1) is flattened
    assert check_labels("y", [0, 2, 1], count=3, num_classes=3).dtype == np.int64
    for bad, message in [(np.eye(3), r"shape \(N,\) or \(N, 1\); got shape \(3, 3\) \(one-hot"),
                         (np.zeros((2, 2, 1), int), r"got shape \(2, 2, 1\)$"),
                         ([0.0, 1.0], "integer class labels; got an array of shape \\(2,\\) and dtype float64"),
                         ("cat", "integer class labels; got 'cat'")]:
        with pytest.raises((ValueError, TypeError), match=message):
            check_labels("y", bad)
    with pytest.raises(ValueError, match="y must hold 4 labels, one per example; got 3"):
        check_labels("y", [0, 1, 2], count=4)
    with pytest.raises(ValueError, match="y must lie in 0..1 for 2 classes; got values from -1 to 1"):
        check_labels("y", [-1, 1], num_classes=2)

