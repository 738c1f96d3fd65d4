"""NumPy references of weight decay and dropout, and their agreement with the Keras twins."""
import keras
import numpy as np
import pytest

from course_lib import regularization as R
from course_lib.gradcheck import autodiff_gradient, numerical_gradient, relative_error

rng = np.random.default_rng(0)


# --- weight decay ------------------------------------------------------------------------------

def test_l2_penalty_and_gradient():
    W = np.array([[1.0, -2.0], [3.0, 0.5]])
    assert R.l2_penalty(W, 0.1) == pytest.approx(0.05 * 14.25)
    assert R.l2_penalty([W, np.ones(3)], 0.1) == pytest.approx(0.05 * (14.25 + 3))
    assert np.allclose(R.l2_penalty_gradient(W, 0.1), 0.1 * W)
    numeric = numerical_gradient(lambda w: R.l2_penalty(w, 0.3), W)
    assert relative_error(numeric, R.l2_penalty_gradient(W, 0.3)) < 1e-7
    with pytest.raises(ValueError, match="lam must be in"):
        R.l2_penalty(W, -0.1)


def test_sgd_step_shrinks_by_one_minus_alpha_lambda():
    W = rng.normal(size=(3, 4))
    assert np.allclose(R.sgd_step(W, np.zeros_like(W), 0.1, 0.5), (1 - 0.05) * W)
    dW = rng.normal(size=(3, 4))
    assert np.allclose(R.sgd_step(W, dW, 0.1, 0.5), W - 0.1 * (dW + 0.5 * W))
    with pytest.raises(ValueError, match="W and data_gradient must have the same shape"):
        R.sgd_step(W, np.zeros(3), 0.1, 0.5)
    with pytest.raises(ValueError, match="learning_rate must be in"):
        R.sgd_step(W, dW, 0.0, 0.5)


def test_slide_update_agrees_only_at_unit_learning_rate():
    W, dW = rng.normal(size=(2, 2)), rng.normal(size=(2, 2))
    assert np.allclose(R.slide_update(W, dW, 1.0, 0.1), R.sgd_step(W, dW, 1.0, 0.1))
    assert not np.allclose(R.slide_update(W, dW, 0.1, 0.1), R.sgd_step(W, dW, 0.1, 0.1))


def test_sgd_update_leaves_biases_undecayed_unless_asked():
    params = {"W1": np.ones((2, 2)), "b1": np.ones(2)}
    zero = {k: np.zeros_like(v) for k, v in params.items()}
    new = R.sgd_update(params, zero, 0.1, 1.0)
    assert np.allclose(new["W1"], 0.9) and np.allclose(new["b1"], 1.0)
    assert np.allclose(R.sgd_update(params, zero, 0.1, 1.0, decay_biases=True)["b1"], 0.9)
    with pytest.raises(ValueError, match="params and grads must have the same keys"):
        R.sgd_update(params, {"W1": zero["W1"]}, 0.1, 1.0)
    with pytest.raises(ValueError, match=r"grads\['b1'\] must have the shape of params\['b1'\], \(2,\); got \(3,\)"):
        R.sgd_update(params, {**zero, "b1": np.zeros(3)}, 0.1, 1.0)


def _one_keras_step(regularizer, optimizer, W, b, X, Y):
    keras.utils.set_random_seed(0)
    layer = keras.layers.Dense(W.shape[1], kernel_regularizer=regularizer)
    model = keras.Sequential([keras.Input((W.shape[0],)), layer])
    layer.set_weights([W.astype("float32"), b.astype("float32")])
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(X, Y, batch_size=len(X), epochs=1, shuffle=False, verbose=0)
    return [np.asarray(v) for v in layer.get_weights()]


def test_keras_twins_take_the_same_step_as_numpy():
    """L2 in the loss (keras_l2) and decoupled decay (keras_sgd_with_weight_decay) both equal
    W − α(∂L_data/∂W + λW) for plain SGD; the bias takes the plain step."""
    W, b = rng.normal(size=(3, 2)), rng.normal(size=2)
    X, Y = rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 2)).astype("float32")
    residual = X @ W + b - Y
    dW, db = 2 * X.T @ residual / residual.size, 2 * residual.sum(axis=0) / residual.size
    lr, lam = 0.1, 0.5
    expected_W, plain_b = R.sgd_step(W, dW, lr, lam), b - lr * db

    in_loss_W, in_loss_b = _one_keras_step(R.keras_l2(lam), keras.optimizers.SGD(lr), W, b, X, Y)
    decoupled_W, decoupled_b = _one_keras_step(None, R.keras_sgd_with_weight_decay(lr, lam), W, b, X, Y)
    for got in (in_loss_W, decoupled_W):
        assert np.allclose(got, expected_W, atol=1e-5)
    for got in (in_loss_b, decoupled_b):
        assert np.allclose(got, plain_b, atol=1e-5)


def test_keras_l2_is_half_lambda_times_squared_norm():
    W = rng.normal(size=(4, 3)).astype("float32")
    value = float(keras.ops.convert_to_numpy(R.keras_l2(0.2)(W)))
    assert value == pytest.approx(R.l2_penalty(W, 0.2), rel=1e-5)


# --- dropout ----------------------------------------------------------------------------------

def test_dropout_train_and_test_modes():
    h = rng.random((200, 50)) + 0.1
    out, cache = R.dropout_forward(h, 0.3, "train", np.random.default_rng(1))
    kept = out != 0
    assert np.allclose(out[kept], h[kept]) and abs(kept.mean() - 0.3) < 0.02
    assert np.array_equal(kept, np.random.default_rng(1).random(h.shape) < 0.3)
    test_out, test_cache = R.dropout_forward(h, 0.3, "test")
    assert np.allclose(test_out, 0.3 * h) and test_cache.mask is None
    inv, _ = R.inverted_dropout_forward(h, 0.3, "train", np.random.default_rng(1))
    assert np.allclose(inv, out / 0.3)
    assert np.allclose(R.inverted_dropout_forward(h, 0.3, "test")[0], h)


@pytest.mark.parametrize("inverted", [False, True])
@pytest.mark.parametrize("mode", ["train", "test"])
def test_dropout_backward_matches_numerical_gradient(inverted, mode):
    forward = R.inverted_dropout_forward if inverted else R.dropout_forward
    h, dout = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    _, cache = forward(h, 0.6, mode, np.random.default_rng(2))
    numeric = numerical_gradient(
        lambda z: np.sum(forward(z, 0.6, mode, np.random.default_rng(2))[0] * dout), h)
    assert relative_error(R.dropout_backward(dout, cache), numeric) < 1e-8


def test_dropout_expectation_equals_test_output():
    h = rng.random(20) + 0.5
    draws = np.random.default_rng(3)
    mean = np.mean([R.dropout_forward(h, 0.4, "train", draws)[0] for _ in range(20000)], axis=0)
    assert np.max(np.abs(mean - R.dropout_forward(h, 0.4, "test")[0])) < 0.02


@pytest.mark.parametrize("call, message", [
    (lambda: R.dropout_forward(np.ones(3), 0.0, "train", rng), "p must be in"),
    (lambda: R.dropout_forward(np.ones(3), 1.2, "test"), "p must be in"),
    (lambda: R.dropout_forward(np.ones(3), 0.5, "eval", rng), "mode must be one of 'train', 'test'"),
    (lambda: R.dropout_forward(np.ones(3), 0.5, "train"), "rng must be a numpy.random.Generator"),
    (lambda: R.dropout_backward(np.ones(3), np.ones(3)), "cache must be the DropoutCache"),
    (lambda: R.LectureDropout(p=0), "p must be in"),
])
def test_bad_dropout_arguments_are_named(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def test_lecture_dropout_layer_is_the_numpy_reference_in_keras():
    x = np.full((400, 50), 2.0, dtype="float32")
    layer = R.LectureDropout(p=0.3, seed=1)
    assert np.allclose(keras.ops.convert_to_numpy(layer(x)), R.dropout_forward(x, 0.3, "test")[0])
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    assert set(np.unique(out)) <= {0.0, 2.0} and abs(np.mean(out == 2.0) - 0.3) < 0.02
    # E[training output] = p·x = inference output
    assert abs(out.mean() - 0.3 * 2.0) < 0.03
    # Gradient flows through kept units only, exactly like dropout_backward with that mask.
    dout = rng.normal(size=(4, 5)).astype("float32")
    grad = autodiff_gradient(lambda z: keras.ops.sum(layer(z, training=True) * dout), np.ones((4, 5)))
    mask = grad / dout
    assert np.all(np.isclose(mask, 0) | np.isclose(mask, 1))
    cache = R.DropoutCache(np.round(mask), 0.3, "train", inverted=False)
    assert np.allclose(R.dropout_backward(dout, cache), grad, atol=1e-6)
    clone = R.LectureDropout.from_config(layer.get_config())
    assert clone.p == 0.3 and clone.seed == 1


def test_keras_dropout_is_the_inverted_twin():
    x = np.full((400, 50), 2.0, dtype="float32")
    layer = keras.layers.Dropout(rate=1 - 0.4, seed=0)
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    numpy_out, _ = R.inverted_dropout_forward(x, 0.4, "train", np.random.default_rng(0))
    assert set(np.round(np.unique(out), 4)) == set(np.round(np.unique(numpy_out), 4)) == {0.0, 5.0}
    assert abs(np.mean(out != 0) - 0.4) < 0.02 and abs(out.mean() - 2.0) < 0.1
    assert np.allclose(keras.ops.convert_to_numpy(layer(x)), R.inverted_dropout_forward(x, 0.4, "test")[0])
