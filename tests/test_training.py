"""The training recipe's tools: SGD + momentum against Keras, and the babysitting callbacks."""
import keras
import numpy as np
import pytest

from course_lib import training
from course_lib.training import accuracy

rng = np.random.default_rng(0)


def _classifier(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu", name="hidden"),
                              keras.layers.Dense(3, activation="softmax", name="out")])
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def _data(n=240, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, 8)).astype("float32")
    return x, (x[:, 0] > 0).astype(int) + (x[:, 1] > 1).astype(int)


def test_accuracy_is_measured_in_inference_mode():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dropout(0.9),
                              keras.layers.Dense(2, kernel_initializer="identity", use_bias=False)])
    x = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]] * 50, dtype="float32")
    y = np.array([0, 1] * 50)
    assert accuracy(model, x, y, batch_size=7) == 1.0  # dropout would scramble a training-mode pass
    assert accuracy(model, x, 1 - y) == 0.0
    assert accuracy(model, x, y[:, None]) == 1.0           # a label column, as keras.datasets.cifar10 gives
    with pytest.raises(ValueError, match=r"one-hot rows\? pass labels.argmax\(axis=1\)"):
        accuracy(model, x, np.eye(2, dtype=int)[y])         # used to broadcast to a 100 × 100 comparison
    with pytest.raises(ValueError, match="y must hold 100 labels, one per example; got 3"):
        accuracy(model, x, np.zeros(3, int))
    with pytest.raises(ValueError, match="x must hold at least one example"):
        accuracy(model, x[:0], y[:0])
    with pytest.raises(ValueError, match="batch_size must be in"):
        accuracy(model, x, y, batch_size=0)


def test_epoch_scores_record_each_epoch_and_keep_the_best_epochs_weights():
    x, y = _data()
    model = _classifier()
    after_each_epoch = []
    scores = training.EpochScores({"train": (x, y), "val": (x[:60], y[:60, None])},
                                  measures={"first kernel": lambda m: m.get_weights()[0][0, 0]}, keep_best="val")
    keep = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: after_each_epoch.append(model.get_weights()))
    model.fit(x, y, epochs=6, batch_size=32, verbose=0, shuffle=False, callbacks=[scores, keep])
    assert all(len(scores.history[name]) == 6 for name in ("train", "val", "first kernel"))
    for epoch, weights in enumerate(after_each_epoch):
        model.set_weights(weights)
        assert scores.history["train"][epoch] == accuracy(model, x, y)
        assert scores.history["first kernel"][epoch] == weights[0][0, 0]
    val = scores.history["val"]
    assert scores.best_epoch == int(np.argmax(val)) + 1 and scores.best_score == max(val)   # the first best
    assert all(np.array_equal(a, b) for a, b in zip(scores.best_weights, after_each_epoch[scores.best_epoch - 1]))
    assert training.EpochScores({"train": (x, y)}).best_weights is None


@pytest.mark.parametrize("kwargs, message", [
    ({"keep_best": "test"}, r"keep_best must name one of the sets or measures \['train', 'norm'\]; got 'test'"),
    ({"measures": {"train": len}}, r"a name is both a set and a measure: \['train'\]"),
    ({"sets": {"train": (np.zeros((4, 8)), np.zeros(3, int))}}, r"sets\['train'\] labels must hold 4 labels"),
])
def test_bad_epoch_scores_arguments(kwargs, message):
    x, y = _data()
    args = {"sets": {"train": (x, y)}, "measures": {"norm": np.linalg.norm}, **kwargs}
    with pytest.raises(ValueError, match=message):
        training.EpochScores(args.pop("sets"), **args)


def test_sgd_momentum_step_matches_keras():
    W0 = rng.normal(size=(4, 3)).astype("float32")
    gradients = [rng.normal(size=(4, 3)).astype("float32") for _ in range(5)]
    variable = keras.Variable(W0)
    optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    W, velocity = W0.astype(float), np.zeros_like(W0, dtype=float)
    for gradient in gradients:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(gradient), variable)])
        W, velocity = training.sgd_momentum_step(W, gradient, velocity, 0.1, 0.9)
    assert np.allclose(keras.ops.convert_to_numpy(variable), W, atol=1e-5)
    plain, _ = training.sgd_momentum_step(W0, gradients[0], np.zeros_like(W0), 0.1, momentum=0.0)
    assert np.allclose(plain, W0 - 0.1 * gradients[0])
    with pytest.raises(ValueError, match="momentum must be in"):
        training.sgd_momentum_step(W0, W0, W0, 0.1, momentum=1.0)
    with pytest.raises(ValueError, match="W and velocity must have the same shape"):
        training.sgd_momentum_step(W0, W0, np.zeros(3), 0.1)


def test_live_curves_draw_within_budget_and_always_the_last_epoch():
    x, y = _data()
    curves = training.LiveCurves(budget=1e-9)  # a tiny budget: only the final drawing happens
    _classifier().fit(x, y, validation_split=0.25, epochs=4, verbose=0, callbacks=[curves])
    assert curves.redraws == 1 and curves.png.startswith(b"\x89PNG")
    assert len(curves.history["val_accuracy"]) == 4
    eager = training.LiveCurves(budget=1.0)    # drawing may take as long as training
    eager._draw_seconds = 0.0                  # so the first epoch is drawn at once
    _classifier().fit(x, y, epochs=3, verbose=0, callbacks=[eager])
    assert 2 <= eager.redraws <= 3 and eager._drawn_epochs == len(eager.history["loss"]) == 3


def test_live_curves_explain_missing_metrics():
    x, y = _data(40)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(KeyError, match="LiveCurves cannot plot \\['accuracy'\\]"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[training.LiveCurves()])
    with pytest.raises(ValueError, match="budget must be in"):
        training.LiveCurves(budget=0)


def test_update_ratio_samples_batches():
    x, y = _data()
    ratio = training.UpdateRatio(every=5)
    _classifier().fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[ratio])
    assert set(ratio.ratios) == {"hidden", "out"}
    assert len(ratio.ratios["hidden"]) == 6          # 30 batches, one in 5 measured
    assert all(0 < value < 1 for value in ratio.summary().values())
    frozen = _classifier()
    frozen.compile(keras.optimizers.SGD(1e-9), "sparse_categorical_crossentropy")
    tiny = training.UpdateRatio(every=1)
    frozen.fit(x, y, batch_size=60, epochs=1, verbose=0, callbacks=[tiny])
    assert max(tiny.summary().values()) < 1e-7


def test_learning_rate_range_finds_a_sensible_rate_and_restores_the_model():
    x, y = _data(600)
    model = _classifier()
    before = [w.copy() for w in model.get_weights()]
    test = training.learning_rate_range(model, x, y, low=1e-4, high=10.0, steps=60, batch_size=64)
    after_test = [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]
    fresh = _classifier()
    fresh.optimizer.build(fresh.trainable_variables)
    assert len(after_test) == len(fresh.optimizer.variables) > 2     # the momentum variables too ...
    assert all(np.array_equal(a, keras.ops.convert_to_numpy(b))       # ... back at zero, as never trained
               for a, b in zip(after_test, fresh.optimizer.variables))
    assert 1e-3 < test.suggestion < 3.0
    assert test.lowest == test.learning_rates[np.argmin(test.losses)] and test.suggestion <= test.lowest
    assert test.losses.min() < test.losses[0]                     # the loss fell somewhere
    assert test.problem is None
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="must be compiled"):
        training.learning_rate_range(keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)]), x, y)


def _range_curve(batch_losses):
    batch_losses = np.asarray(batch_losses, dtype=float)
    return training._read_range_curve(np.geomspace(1e-4, 1.0, len(batch_losses)), batch_losses, finished=True)


def test_range_curve_suggests_the_steepest_fall_before_the_lowest_loss():
    falls_then_rises = [2.3] * 10 + [2.2, 2.0, 1.5, 0.9, 0.6, 0.5, 0.45, 0.8, 2.0, float("nan")]
    test = _range_curve(falls_then_rises)
    assert test.problem is None
    assert test.losses[:10] == pytest.approx([2.3] * 10)            # the bias-corrected average of a constant
    weights = 0.9 ** np.arange(11)                                # newest first: 2.2, then ten of 2.3
    assert test.losses[10] == pytest.approx((2.2 * weights[0] + 2.3 * weights[1:].sum()) / weights.sum())
    # the smoothed curve lags the batches by a few steps: steepest at step 13, lowest at 17 (not the final NaN)
    assert test.suggestion == test.learning_rates[13] and test.lowest == test.learning_rates[17]


@pytest.mark.parametrize("losses, says", [
    ([2.3] * 30, "never fell by 5%"),                             # flat: learned nothing
    ([2.3] * 20 + [2.25, 2.4, 3.0, 5.0], "never fell by 5%"),     # a dip smaller than 5%, then up
    ([2.3] + [0.5 + 0.03 * i for i in range(99)], "never fell"),  # fell only at the first rate
    ([2.3, 5.0, 12.0], "stopped after 3 steps"),                  # blew up at once
    ([float("nan")], "stopped after 1 step,"),                    # NaN from the first batch
    ([2.3 - 0.1 * i for i in range(20)], "still falling at the last rate"),
])
def test_range_curve_says_what_went_wrong(losses, says):
    test = _range_curve(losses)
    assert says in test.problem
    if "still falling" in says:                                   # the fall was measured; its edge was not
        assert test.lowest == test.learning_rates[-1] and test.suggestion <= test.lowest
    else:
        assert np.isnan(test.suggestion) and np.isnan(test.lowest)


def test_range_curve_does_not_read_a_flat_noisy_curve_as_a_fall():
    """Batch losses scattering by 20% about a flat level: the smoothed curve dips more than 5% by
    chance in 141 of these 200 tests; the noise check turns all but one of them down."""
    rng = np.random.default_rng(0)
    flat_and_noisy = [_range_curve(2.3 * (1 + 0.2 * rng.standard_normal(100))) for _ in range(200)]
    assert sum(test.problem is None for test in flat_and_noisy) <= 4
    assert sum("a dip chance alone can make" in (test.problem or "") for test in flat_and_noisy) > 50
    assert all(np.isnan(test.suggestion) for test in flat_and_noisy if test.problem and "chance" in test.problem)


def test_range_curve_reads_a_noisy_curve_that_clearly_falls():
    rng = np.random.default_rng(0)
    step = np.arange(100)
    falls_by_half = 1 - 0.5 * np.clip((step - 20) / 50, 0, 1)     # from step 20 to step 70
    then_blows_up = np.exp(np.clip(step - 85, 0, None) / 3)
    for _ in range(20):
        test = _range_curve(2.3 * falls_by_half * then_blows_up * (1 + 0.2 * rng.standard_normal(100)))
        assert test.problem is None
        assert test.suggestion < test.lowest and test.learning_rates[60] <= test.lowest <= test.learning_rates[92]


def test_batch_noise_measures_the_scatter_about_a_moving_trend():
    rng = np.random.default_rng(0)
    trend = np.linspace(2.3, 0.5, 400)
    assert training._batch_noise(trend) == 0.0                     # a smooth trend is no noise
    assert training._batch_noise(trend + 0.1 * rng.standard_normal(400)) == pytest.approx(0.1, rel=0.15)
    assert training._smoothed_noise(0.1, 0) == pytest.approx(0.1)  # the first step is one batch
    assert training._smoothed_noise(0.1, 1000) == pytest.approx(0.1 * np.sqrt(0.1 / 1.9))  # steady state: (1-β)/(1+β)


def test_learning_rate_range_records_each_batchs_own_loss():
    """Not the running mean over the batches so far (what ``train_on_batch`` returned before
    Keras 3.15): with rates too small to move the weights, each loss is its batch's mean of y²."""
    x, y = np.ones((50, 1), "float32"), np.arange(50, dtype="float32")
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    model.compile(keras.optimizers.SGD(), "mse")
    with pytest.warns(RuntimeWarning, match="never fell"):  # the rates are too small to learn: as meant
        test = training.learning_rate_range(model, x, y, low=1e-12, high=1e-11, steps=6, batch_size=4, seed=3,
                                            stop_factor=1e9)
    rng = np.random.default_rng(3)
    expected = [np.mean(y[rng.choice(50, size=4, replace=False)] ** 2) for _ in range(6)]
    np.testing.assert_allclose(test.batch_losses, expected, rtol=1e-5)


def test_learning_rate_range_warns_when_the_model_learns_nothing():
    x = np.random.default_rng(0).normal(size=(512, 8)).astype("float32")
    labels_unrelated_to_x = np.random.default_rng(1).integers(0, 10, 512)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(10, kernel_initializer="zeros")])
    model.compile(keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.warns(RuntimeWarning, match="never fell by 5%.*lower `low`"):
        test = training.learning_rate_range(model, x, labels_unrelated_to_x, low=1e-6, high=1e3, steps=60,
                                            batch_size=64)
    assert np.isnan(test.suggestion) and "take more steps" in test.problem


def test_random_search_samples_log_uniformly_and_ranks():
    seen = []

    def evaluate(learning_rate, weight_decay):
        seen.append((learning_rate, weight_decay))
        return -abs(np.log10(learning_rate) + 2)                  # best at 1e-2

    results = training.random_search(evaluate, {"learning_rate": (1e-4, 1.0), "weight_decay": (1e-6, 1e-2)},
                                     trials=40, seed=1)
    assert len(results) == 40 and results[0]["score"] >= results[-1]["score"]
    assert abs(np.log10(results[0]["learning_rate"]) + 2) < 0.2
    exponents = np.log10([lr for lr, _ in seen])
    assert exponents.min() < -3 and exponents.max() > -1          # spread over the decades
    assert results == training.random_search(evaluate, {"learning_rate": (1e-4, 1.0),
                                                         "weight_decay": (1e-6, 1e-2)}, trials=40, seed=1)
    with pytest.raises(ValueError, match="must be a \\(low, high\\) pair"):
        training.random_search(evaluate, {"learning_rate": 0.1}, trials=2)


def test_tensorboard_writes_event_files(tmp_path, capsys):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorBoard's writer is TensorFlow's")
    x, y = _data(64)
    callback = training.tensorboard("baseline", log_dir=tmp_path, histogram_freq=0)
    assert "%tensorboard --logdir" in capsys.readouterr().out
    _classifier().fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    assert list((tmp_path / "baseline").rglob("events.out.tfevents.*"))
    with pytest.raises(ValueError, match="run must be a plain folder name"):
        training.tensorboard("../escape")


def _deep(initializer, activation, depth=6, width=64, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((32,))] + [
        keras.layers.Dense(width, activation=activation, kernel_initializer=initializer, name=f"h{i + 1}")
        for i in range(depth)])


def test_layer_activations_record_every_layer_in_batches():
    x = np.random.default_rng(0).normal(size=(70, 32)).astype("float32")
    model = _deep("he_normal", "relu", depth=3)
    activations = training.layer_activations(model, x, batch_size=32)
    assert list(activations) == ["h1", "h2", "h3"] and activations["h3"].shape == (70, 64)
    assert np.allclose(activations["h3"], keras.ops.convert_to_numpy(model(x)), atol=1e-5)
    assert list(training.layer_activations(model, x, layers=["h2"])) == ["h2"]
    with pytest.raises(ValueError, match="layers must name layers of the model"):
        training.layer_activations(model, x, layers=["conv9"])
    with pytest.raises(TypeError, match="model must be a keras.Model"):
        training.layer_activations(keras.layers.Dense(3), x)


def test_activation_statistics_tell_bad_initializations_from_good():
    x = np.random.default_rng(0).normal(size=(200, 32)).astype("float32")

    def last(initializer, activation):
        stats = training.activation_statistics(training.layer_activations(_deep(initializer, activation), x))
        return stats["h6"]

    small = keras.initializers.RandomNormal(stddev=0.01)
    large = keras.initializers.RandomNormal(stddev=1.0)
    assert last(small, "tanh")["std"] < 1e-4                       # signals vanish
    assert last(large, "tanh")["saturated"] > 0.5                  # tanh units stuck at ±1
    glorot = last("glorot_normal", "tanh")
    assert 0.1 < glorot["std"] < 0.9 and glorot["saturated"] < 0.05
    assert 0.3 < last("he_normal", "relu")["std"] < 3.0            # He keeps ReLU signals alive
    assert 0.3 < last("he_normal", "relu")["zero"] < 0.7           # about half the ReLUs are off
    assert last(large, "relu")["std"] > 1e3                        # and too large explodes
    with pytest.raises(ValueError, match="activations must map"):
        training.activation_statistics({})
    with pytest.raises(ValueError, match="must hold at least one value"):
        training.activation_statistics({"h1": np.zeros((0, 3))})
