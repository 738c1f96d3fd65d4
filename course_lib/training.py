"""Training a CNN, the lecture's recipe: SGD + momentum, and babysitting the network as it trains.

    sgd_momentum_step      the NumPy reference of SGD with momentum, v ← μv − α·dW, W ← W + v
    layer_activations      every layer's output for a batch of inputs (to judge an initialization)
    activation_statistics  per layer: mean, standard deviation, share of zeros, share saturated
    LiveCurves             loss and accuracy curves, train and validation, redrawn during ``fit``
    UpdateRatio            per layer, ‖ΔW‖ / ‖W‖ of one update (healthy: about 1e-3)
    tensorboard            a TensorBoard callback and the two lines that open it in JupyterLab/Colab
    learning_rate_range    the learning-rate range test: loss against an exponentially rising rate
    random_search          random search over hyperparameters on a log scale (coarse to fine)
    accuracy               share of correct arg-max predictions, in inference mode
    EpochScores            after each epoch, accuracy on named sets (and other measures); the best epoch

The callbacks are cheap by construction: LiveCurves redraws only after epochs and spends at
most ``budget`` of the wall time drawing (plus one final drawing); UpdateRatio copies weights
only around the updates it samples and has no batch-end hook, so Keras's asynchronous
dispatch stays on. ``benchmarks/monitor_overhead.py`` measures both against a bare ``fit``.
"""
from __future__ import annotations

import importlib.util
import io
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from .validation import check_array, check_labels, check_number, check_same_shape


# --- SGD + momentum ---------------------------------------------------------------------------

def sgd_momentum_step(W, dW, velocity, learning_rate: float, momentum: float = 0.9):
    """One step of SGD with momentum (Keras's and the lecture's form); returns (W, velocity):

        v ← μ·v − α·dW
        W ← W + v

    With μ = 0 it is plain SGD. ``keras.optimizers.SGD(learning_rate=α, momentum=μ)`` takes
    the same step (tests/test_training.py shows they agree).
    """
    W, dW, velocity = (check_array(name, value) for name, value in
                       (("W", W), ("dW", dW), ("velocity", velocity)))
    check_same_shape("W", W, "dW", dW)
    check_same_shape("W", W, "velocity", velocity)
    check_number("learning_rate", learning_rate, low=0.0, low_inclusive=False)
    check_number("momentum", momentum, low=0.0, high=1.0, high_inclusive=False)
    velocity = momentum * velocity - learning_rate * dW
    return W + velocity, velocity


# --- initialization: activation statistics ---------------------------------------------------

def layer_activations(model, x, *, layers=None, batch_size: int = 512) -> dict[str, np.ndarray]:
    """The output of each layer of ``model`` for the inputs ``x``, in inference mode, as NumPy.

    model   a Sequential or functional Keras model (one whose layers have a symbolic ``output``).
    layers  names of the layers to record; default: every layer, in order.
    Returns {layer name: array (N, ...)}, in the model's layer order: look at how the spread of
    the activations changes with depth to judge an initialization (cs231n's deep-net figure).
    """
    check_number("batch_size", batch_size, low=1, integer=True)
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model; got {type(model).__name__}")
    try:
        inputs = model.inputs
    except (AttributeError, ValueError) as error:
        raise ValueError("model must be a Sequential model with an Input or a functional model, so its "
                         "layers have symbolic outputs; a subclassed model has none") from error
    if not inputs:
        raise ValueError("model has no symbolic inputs: build it with keras.Input(shape) first")
    names = [layer.name for layer in model.layers]
    wanted = names if layers is None else ([layers] if isinstance(layers, str) else list(layers))
    unknown = [name for name in wanted if name not in names]
    if unknown or not wanted:
        raise ValueError(f"layers must name layers of the model ({names}); got {wanted!r}")
    chosen = [model.get_layer(name) for name in names if name in wanted]
    probe = keras.Model(inputs[0] if len(inputs) == 1 else inputs, [layer.output for layer in chosen])
    if len(x) == 0:
        raise ValueError("x must hold at least one example")
    pieces: list[list[np.ndarray]] = [[] for _ in chosen]
    for start in range(0, len(x), batch_size):
        outputs = probe(x[start:start + batch_size], training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for piece, output in zip(pieces, outputs):
            piece.append(keras.ops.convert_to_numpy(output))
    return {layer.name: np.concatenate(piece) for layer, piece in zip(chosen, pieces)}


def activation_statistics(activations: dict, *, saturation: float = 0.99) -> dict[str, dict[str, float]]:
    """Per layer, the numbers that tell a healthy initialization from a bad one:

        mean, std   of all the layer's activations (std shrinking with depth: signals vanish;
                    growing: they explode)
        zero        share of activations exactly 0 (dead ReLUs)
        saturated   share with |h| ≥ ``saturation`` (tanh units stuck at ±1, where their
                    gradient is about 0); meaningful for activations bounded by 1

    activations  {layer name: array}, e.g. from ``layer_activations``.
    """
    if not isinstance(activations, dict) or not activations:
        raise ValueError("activations must map at least one layer name to an array")
    check_number("saturation", saturation, low=0.0, low_inclusive=False)
    stats = {}
    for name, values in activations.items():
        values = check_array(f"activations[{name!r}]", values)
        if values.size == 0:
            raise ValueError(f"activations[{name!r}] must hold at least one value; got shape {values.shape}")
        stats[name] = {"mean": float(values.mean()), "std": float(values.std()),
                       "zero": float(np.mean(values == 0)),
                       "saturated": float(np.mean(np.abs(values) >= saturation))}
    return stats


# --- babysitting: live curves ------------------------------------------------------------------

class LiveCurves(keras.callbacks.Callback):
    """Learning curves that redraw while ``fit`` runs: one panel per metric (loss, accuracy),
    training solid and validation dashed.

    metrics   the logged names to plot (their ``val_`` twins are added when present).
    budget    the largest share of training time spent drawing (0.01 = 1%): after a drawing
              that took d seconds, the next waits until d / budget seconds have passed (the
              first, until a typical drawing's worth). The curves of the last epoch are always
              drawn, when training ends.

    In a notebook the figure updates in place under the cell; elsewhere (a script, nbval)
    it is rendered all the same and kept as ``png`` (bytes). ``history`` holds the logs and
    ``redraws`` counts the drawings.
    """

    def __init__(self, metrics=("loss", "accuracy"), *, budget: float = 0.01, title: str | None = None):
        super().__init__()
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        if not metrics:
            raise ValueError("metrics must name at least one logged quantity, e.g. 'loss'")
        check_number("budget", budget, low=0.0, high=1.0, low_inclusive=False)
        self.metrics, self.budget, self.title = metrics, budget, title
        self.history: dict[str, list[float]] = {}
        self.redraws, self.png = 0, None
        self._figure = self._handle = None
        self._draw_seconds = 0.25  # a typical drawing on a slow laptop, until one is measured
        self._next_draw, self._drawn_epochs = 0.0, 0

    def on_train_begin(self, logs=None):
        self.history, self._drawn_epochs = {}, 0
        self._next_draw = time.perf_counter() + self._draw_seconds / self.budget

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(float(value))
        if time.perf_counter() >= self._next_draw:
            self.draw()

    def on_train_end(self, logs=None):
        if self.history and self._drawn_epochs < len(self.history[next(iter(self.history))]):
            self.draw()  # the last epochs, whenever training stopped

    def draw(self):
        """Redraw now and show the figure (updating it in place in a notebook)."""
        from .plots import learning_curves

        start = time.perf_counter()
        missing = [name for name in self.metrics if name not in self.history]
        if missing:
            raise KeyError(f"LiveCurves cannot plot {missing}: fit logged {sorted(self.history)}; "
                           "compile the model with those metrics or pass metrics= to LiveCurves")
        if self._figure is None:
            import matplotlib.pyplot as plt

            self._figure, axes = plt.subplots(1, len(self.metrics), figsize=(4.5 * len(self.metrics), 3.2),
                                              squeeze=False)
            plt.close(self._figure)  # shown through ``display``, not by the notebook's own figure hook
            self._figure.subplots_adjust(left=0.1, right=0.97, bottom=0.16, top=0.86, wspace=0.3)
            if self.title:
                self._figure.suptitle(self.title, fontsize=10)
        for ax, metric in zip(self._figure.axes, self.metrics):
            ax.clear()
            learning_curves({"": self.history}, metric=metric, ax=ax)
        buffer = io.BytesIO()
        self._figure.savefig(buffer, format="png", dpi=72)
        self.png = buffer.getvalue()
        self._show()
        self.redraws += 1
        self._drawn_epochs = len(self.history[self.metrics[0]])
        finished = time.perf_counter()
        self._draw_seconds = finished - start
        self._next_draw = finished + self._draw_seconds / self.budget

    def _show(self):
        try:
            from IPython import get_ipython
            from IPython.display import Image, display
        except ImportError:
            return
        if get_ipython() is None:
            return
        if self._handle is None:
            self._handle = display(Image(self.png), display_id=True)
        else:
            self._handle.update(Image(self.png))


# --- babysitting: update/weight ratio ----------------------------------------------------------

class UpdateRatio(keras.callbacks.Callback):
    """The ratio of the update's size to the weights' size, ‖ΔW‖ / ‖W‖, per layer kernel.

    Measured on one update in ``every``: the kernels are copied before that batch and compared
    at the start of the next one (or at the end of training). It uses batch-*begin* hooks only,
    so Keras keeps dispatching its batch-end work asynchronously, and the other batches cost
    nothing. ``ratios[layer]`` lists the measurements. A rough guide (cs231n): about 1e-3 is
    healthy; much lower, the learning rate is too low; much higher, too high.
    """

    def __init__(self, every: int = 50):
        super().__init__()
        check_number("every", every, low=1, integer=True)
        self.every = every
        self.ratios: dict[str, list[float]] = {}
        self._before: dict | None = None
        self._step = 0

    def _kernels(self) -> dict:
        return {layer.name: keras.ops.convert_to_numpy(layer.kernel) for layer in self.model.layers
                if getattr(layer, "kernel", None) is not None and layer.trainable}

    def _measure(self):
        if self._before is None:
            return
        for name, after in self._kernels().items():
            before = self._before[name]
            self.ratios.setdefault(name, []).append(
                float(np.linalg.norm(after - before) / (np.linalg.norm(before) + 1e-12)))
        self._before = None

    def on_train_begin(self, logs=None):
        self.ratios, self._step, self._before = {}, 0, None

    def on_train_batch_begin(self, batch, logs=None):
        self._measure()  # the update of the batch before, if it was sampled
        if self._step % self.every == 0:
            self._before = self._kernels()
        self._step += 1

    def on_train_end(self, logs=None):
        self._measure()

    def summary(self) -> dict[str, float]:
        """The median ratio of each layer."""
        return {name: float(np.median(values)) for name, values in self.ratios.items()}


# --- babysitting: TensorBoard --------------------------------------------------------------------

def tensorboard(run: str, *, log_dir="build/logs", histogram_freq: int = 1):
    """A ``keras.callbacks.TensorBoard`` writing to ``log_dir/run``, and how to look at it.

    In JupyterLab or Colab, run these two lines in a cell (they are printed too):

        %load_ext tensorboard
        %tensorboard --logdir build/logs

    The log writer comes with TensorFlow (on a JAX runtime without it, use ``LiveCurves``); the
    viewer is the ``tensorboard`` package (in the course's ``lab`` extra, and on Colab).
    """
    if not isinstance(run, str) or not run or "/" in run or run.startswith("."):
        raise ValueError(f"run must be a plain folder name such as 'baseline'; got {run!r}")
    check_number("histogram_freq", histogram_freq, low=0, integer=True)
    if importlib.util.find_spec("tensorflow") is None:
        raise RuntimeError("TensorBoard's log writer comes with TensorFlow (pip install tensorflow); "
                           "on a JAX-only runtime use course_lib.training.LiveCurves")
    path = Path(log_dir) / run
    print(f"TensorBoard logs: {path}\nto watch them, run in a cell:\n"
          f"  %load_ext tensorboard\n  %tensorboard --logdir {log_dir}")
    return keras.callbacks.TensorBoard(log_dir=str(path), histogram_freq=histogram_freq)


# --- choosing the learning rate ------------------------------------------------------------------

RANGE_TEST_SMOOTHING = 0.9   # β of the exponential moving average that smooths the batch losses
RANGE_TEST_MIN_FALL = 0.05   # a range test whose smoothed loss falls less than this share learned nothing
RANGE_TEST_NOISE_MULTIPLE = 4.0   # ... or less than this many standard deviations of its noise


@dataclass
class RangeTest:
    """The learning-rate range test's curve, its suggestion, and what went wrong if anything."""
    learning_rates: np.ndarray
    losses: np.ndarray            # smoothed training loss at each rate
    batch_losses: np.ndarray      # the training loss of each batch, before smoothing
    suggestion: float             # the rate where the smoothed loss fell fastest, before its lowest
                                  # (NaN when the curve has no such fall: see ``problem``)
    lowest: float                 # the rate at the lowest smoothed loss: the edge of stability;
                                  # a tenth of it is a conservative choice (fastai's "minimum / 10")
    problem: str | None = None    # None for a curve that fell and then rose; else what the curve
                                  # showed instead and how to change the test


def learning_rate_range(model, x, y, *, low: float = 1e-5, high: float = 1.0, steps: int = 100,
                        batch_size: int = 32, seed: int = 0, stop_factor: float = 4.0) -> RangeTest:
    """Train ``model`` (compiled) for ``steps`` batches while the learning rate rises
    exponentially from ``low`` to ``high``, recording the loss: Smith's (2017) range test in the
    form of fastai's ``lr_find`` (Smith raised the rate linearly and read the accuracy). The loss
    first falls, then explodes; a good rate lies where it falls fastest. The test stops early once
    the smoothed loss exceeds ``stop_factor`` times its best, and restores the model's weights,
    optimizer state and learning rate afterwards, so the model is left as it was.

    A curve that does not fall and then rise has no good rate to offer: the result's ``problem``
    then says what the curve showed (it never fell, its fall was within the batches' noise, or
    it was still falling at ``high``) and which argument to change, and a RuntimeWarning
    repeats it.
    """
    check_number("low", low, low=0.0, low_inclusive=False)
    check_number("high", high, low=low, low_inclusive=False)
    check_number("steps", steps, low=5, integer=True)
    check_number("batch_size", batch_size, low=1, integer=True)
    check_number("stop_factor", stop_factor, low=1.0, low_inclusive=False)
    if getattr(model, "optimizer", None) is None:
        raise ValueError("model must be compiled (model.compile(optimizer, loss)) before the range test")
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length; got {len(x)} and {len(y)}")
    weights = model.get_weights()
    if not model.optimizer.built:    # its momentum (or Adam's moments) would be born in the test
        model.optimizer.build(model.trainable_variables)
    optimizer_state = [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]
    original_rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    rng = np.random.default_rng(seed)
    rates = np.geomspace(low, high, steps)
    batch_losses = []
    for rate in rates:
        model.optimizer.learning_rate = float(rate)
        batch = rng.choice(len(x), size=min(batch_size, len(x)), replace=False)
        model.reset_metrics()  # Keras before 3.15 returns the mean over every batch since the last reset
        loss = model.train_on_batch(x[batch], y[batch])
        batch_losses.append(float(loss[0] if isinstance(loss, (list, tuple)) else loss))
        smoothed = _smoothed(np.array(batch_losses))
        if not math.isfinite(batch_losses[-1]) or smoothed[-1] > stop_factor * smoothed.min():
            break
    model.set_weights(weights)
    for variable, value in zip(model.optimizer.variables, optimizer_state):
        variable.assign(value)
    model.optimizer.learning_rate = original_rate
    test = _read_range_curve(rates[:len(batch_losses)], np.array(batch_losses), finished=len(batch_losses) == steps)
    if test.problem:
        warnings.warn(f"learning-rate range test: {test.problem}", RuntimeWarning, stacklevel=2)
    return test


def _smoothed(batch_losses: np.ndarray) -> np.ndarray:
    """The bias-corrected exponential moving average of the batch losses ℓ₀, ℓ₁, …:

        m_t = β·m_{t−1} + (1 − β)·ℓ_t,  m₋₁ = 0;   smoothed_t = m_t / (1 − β^(t+1))
    """
    average, smoothed = 0.0, []
    for step, loss in enumerate(batch_losses):
        average = RANGE_TEST_SMOOTHING * average + (1 - RANGE_TEST_SMOOTHING) * loss
        smoothed.append(average / (1 - RANGE_TEST_SMOOTHING ** (step + 1)))
    return np.array(smoothed)


def _batch_noise(batch_losses: np.ndarray) -> float:
    """The standard deviation σ of a batch's loss about the curve's trend, from the step-to-step
    changes Δℓ (which cancel the slowly moving trend, and have variance 2σ²), robustly:

        σ ≈ 1.4826 · median|Δℓ − median Δℓ| / √2
    """
    changes = np.diff(batch_losses[np.isfinite(batch_losses)])
    if len(changes) < 2:
        return 0.0
    return float(1.4826 * np.median(np.abs(changes - np.median(changes))) / math.sqrt(2))


def _smoothed_noise(sigma: float, step: int) -> float:
    """The standard deviation of the smoothed loss at ``step`` when each batch loss has noise σ:
    the moving average weighs the batches by wⱼ = βʲ (j = 0 … step, newest first), so its variance
    is σ²·Σwⱼ² / (Σwⱼ)²."""
    weights = RANGE_TEST_SMOOTHING ** np.arange(step + 1)
    return sigma * math.sqrt(np.sum(weights ** 2)) / np.sum(weights)


def _read_range_curve(rates: np.ndarray, batch_losses: np.ndarray, *, finished: bool) -> RangeTest:
    """Smooth the range test's batch losses and read the curve, skipping its first tenth (the
    smoothing's warm-up). A useful curve then falls to its lowest point, by more than
    ``RANGE_TEST_MIN_FALL`` of its level and by more than ``RANGE_TEST_NOISE_MULTIPLE`` standard
    deviations of the smoothed curve's noise (a flat but noisy curve dips that far by chance),
    and rises after it; the suggestion is the rate of the steepest fall before the lowest point.
    Other curves come back with a ``problem`` saying what they show.
    """
    losses = _smoothed(batch_losses)
    start = max(1, len(losses) // 10)
    if len(losses) < start + 3:
        return RangeTest(rates, losses, batch_losses, math.nan, math.nan,
                         f"the test stopped after {len(losses)} step{'s' * (len(losses) > 1)}, at α = "
                         f"{rates[-1]:.3g}, its loss blown up to {losses[-1]:.4g}: lower `low` (and if the "
                         "very first loss was not finite, look for NaN or infinite values in the data or the model)")
    after_warm_up = np.where(np.isfinite(losses[start:]), losses[start:], np.inf)  # the last may be NaN
    lowest = start + int(np.argmin(after_warm_up))
    fall = losses[start] - losses[lowest]
    if lowest - start < 2 or not fall >= RANGE_TEST_MIN_FALL * losses[start]:
        return RangeTest(rates, losses, batch_losses, math.nan, math.nan,
                         f"the loss never fell by {RANGE_TEST_MIN_FALL:.0%} after the first tenth of the test "
                         f"(from {losses[start]:.4g} to at best {losses[lowest]:.4g}): no rate from "
                         f"{rates[0]:.3g} to {rates[-1]:.3g} trained the model in {len(losses)} steps. If the "
                         "curve is flat, take more steps (or check that the labels match the inputs); if it "
                         "rose from the start or fell only at the first rates, lower `low`")
    sigma = _batch_noise(batch_losses)
    noise = math.hypot(_smoothed_noise(sigma, start), _smoothed_noise(sigma, lowest))
    if fall < RANGE_TEST_NOISE_MULTIPLE * noise:
        return RangeTest(rates, losses, batch_losses, math.nan, math.nan,
                         f"the loss fell from {losses[start]:.4g} to {losses[lowest]:.4g}, only {fall / noise:.1f} "
                         f"standard deviations of the smoothed curve's noise (the batches' losses scatter by "
                         f"±{sigma:.3g}; the test asks for {RANGE_TEST_NOISE_MULTIPLE:g}), a dip chance alone can "
                         f"make: no rate from {rates[0]:.3g} to {rates[-1]:.3g} clearly trained the model. "
                         "Take more steps or a larger `batch_size`")
    slopes = np.gradient(losses[start:lowest + 1], np.log(rates[start:lowest + 1]))
    suggestion, lowest_rate = float(rates[start + int(np.argmin(slopes))]), float(rates[lowest])
    if finished and lowest == len(losses) - 1:
        return RangeTest(rates, losses, batch_losses, suggestion, lowest_rate,
                         f"the loss was still falling at the last rate, α = {rates[-1]:.3g}, so the test found "
                         "no edge of stability (`lowest` is only the end of the range): raise `high`")
    return RangeTest(rates, losses, batch_losses, suggestion, lowest_rate)


def random_search(evaluate, space: dict, *, trials: int, seed: int = 0) -> list[dict]:
    """Random search (Bergstra and Bengio 2012), the lecture's way to find a learning rate and
    regularization strength: sample each hyperparameter log-uniformly in its range, evaluate,
    keep the best; then search again, finer, around it.

    evaluate  a function of the sampled hyperparameters (keyword arguments) returning a score
              to maximize, e.g. validation accuracy after a few epochs.
    space     {name: (low, high)}, sampled as 10**uniform(log10 low, log10 high).
    Returns the trials as dicts (the hyperparameters and "score"), best first.
    """
    if not callable(evaluate):
        raise TypeError(f"evaluate must be a function of the hyperparameters; got {evaluate!r}")
    if not isinstance(space, dict) or not space:
        raise ValueError("space must map at least one name to a (low, high) range")
    for name, bounds in space.items():
        if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
            raise ValueError(f"space[{name!r}] must be a (low, high) pair; got {bounds!r}")
        check_number(f"space[{name!r}] low", bounds[0], low=0.0, low_inclusive=False)
        check_number(f"space[{name!r}] high", bounds[1], low=bounds[0])
    check_number("trials", trials, low=1, integer=True)
    rng = np.random.default_rng(seed)
    results = []
    for _ in range(trials):
        params = {name: float(10 ** rng.uniform(np.log10(low), np.log10(high))) for name, (low, high) in space.items()}
        results.append({**params, "score": float(evaluate(**params))})
    return sorted(results, key=lambda result: -result["score"] if math.isfinite(result["score"]) else math.inf)


# --- measuring -----------------------------------------------------------------------------------

def accuracy(model, x, y, *, batch_size: int = 256) -> float:
    """Share of ``x`` whose arg-max prediction equals the integer label ``y`` (shape (N,) or (N, 1)).

    The model is called directly, batch by batch, in inference mode (dropout off). On the
    course's small data this is much faster than ``model.predict``, and it traces no new
    function per model, so scoring many models raises no retracing warnings.
    """
    if len(x) == 0:
        raise ValueError("x must hold at least one example to score; got none")
    y = check_labels("y", y, count=len(x))
    check_number("batch_size", batch_size, low=1, integer=True)
    scores = [keras.ops.convert_to_numpy(model(x[start:start + batch_size], training=False))
              for start in range(0, len(y), batch_size)]
    return float(np.mean(np.argmax(np.concatenate(scores), axis=-1) == y))


class EpochScores(keras.callbacks.Callback):
    """After each epoch, the model's ``accuracy`` on each named set, and each named measure of
    the model, appended to ``history[name]``; with ``keep_best=NAME``, the epoch where that score
    was highest (the first, on ties), its score and the model's weights there, as early
    stopping would keep them::

        scores = EpochScores({"accuracy": (x_train, y_train), "val_accuracy": (x_val, y_val)},
                             measures={"norm": lambda model: np.linalg.norm(model.get_weights()[0])},
                             keep_best="val_accuracy")
        model.fit(..., callbacks=[scores])
        scores.history["val_accuracy"][-1], scores.best_epoch, model.set_weights(scores.best_weights)

    ``best_epoch`` counts from 1, as Keras prints epochs. Scores are computed outside ``fit``'s
    compiled step, on the whole set, in inference mode (dropout off): the numbers ``fit``'s
    own running ``accuracy`` cannot give, since it averages over an epoch of changing weights.
    """

    def __init__(self, sets: dict, *, measures: dict | None = None, keep_best: str | None = None):
        super().__init__()
        self.sets = {name: (x, check_labels(f"sets[{name!r}] labels", y, count=len(x)))
                     for name, (x, y) in sets.items()}
        self.measures = dict(measures or {})
        names = [*self.sets, *self.measures]
        if len(set(names)) != len(names):
            raise ValueError(f"a name is both a set and a measure: {sorted(set(self.sets) & set(self.measures))}")
        if keep_best is not None and keep_best not in names:
            raise ValueError(f"keep_best must name one of the sets or measures {names}; got {keep_best!r}")
        self.keep_best = keep_best
        self.history = {name: [] for name in names}
        self.best_epoch, self.best_score, self.best_weights = None, -math.inf, None

    def on_epoch_end(self, epoch, logs=None):
        for name, (x, y) in self.sets.items():
            self.history[name].append(accuracy(self.model, x, y))
        for name, measure in self.measures.items():
            self.history[name].append(float(measure(self.model)))
        if self.keep_best and self.history[self.keep_best][-1] > self.best_score:
            self.best_epoch, self.best_score = epoch + 1, self.history[self.keep_best][-1]
            self.best_weights = self.model.get_weights()
