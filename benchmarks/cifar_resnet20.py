"""Train He et al.'s CIFAR-10 ResNet-20 with the paper's recipe and report its test error.

    python benchmarks/cifar_resnet20.py [--iterations 64000] [--batch-size 128] [--seed 0]
                                        [--mixed-precision] [--no-xla] [--backend jax] [--synthetic]
                                        [--no-augment]

The recipe of He et al. 2015 (section 4.2): ResNet-20 with parameter-free shortcuts (option A);
SGD with momentum 0.9 and weight decay 1e-4, batch 128; learning rate 0.1, divided by 10 at 32k
and 48k iterations (50% and 75% of --iterations), 64k in all; per-pixel mean subtraction; in
training, 4 pixels of zero padding, a random 32x32 crop and a random horizontal flip. They train
on all 50,000 training images and report 8.75% error on the 10,000 test images.

Weight decay: the paper's 1e-4 is the λ of a λ·w term in the gradient, that is of the penalty
λ/2·‖w‖². Keras's ``regularizers.L2(c)`` adds c·‖w‖² (gradient 2c·w), so c = λ/2 = 5e-5. It
applies to the convolution and classifier kernels, not to BatchNorm's scales and shifts.

Runs on TensorFlow and on JAX without TensorFlow installed (NumPy batches, no tf.data).
``--synthetic`` trains on random CIFAR-shaped arrays (100 batches): a smoke test and a speed test
that need no download. ``--no-augment`` skips the crops and flips, which run on the CPU one batch
at a time, so that a fast GPU's speed is the model's and not the input pipeline's.

Besides the whole training time (compilation included) it prints the steady-state time per
iteration, over the last 80% of the iterations, once the train step is compiled.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

PAPER_TEST_ERROR = 8.75  # percent, ResNet-20 on CIFAR-10 (He et al. 2015, table 6)
WEIGHT_DECAY = 1e-4  # the paper's λ; Keras's L2 coefficient is λ/2 (see above)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Prints the test error beside the paper's, the wall time and the device.")
    parser.add_argument("--iterations", type=int, default=64_000,
                        help="SGD steps (default: the paper's 64000); the learning rate drops at 50%% and 75%%")
    parser.add_argument("--batch-size", type=int, default=128, help="images per step (default: 128)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the weights, batch order and augmentation")
    parser.add_argument("--mixed-precision", action="store_true",
                        help="compute in float16 on a GPU, bfloat16 on a TPU (a CPU stays in float32)")
    parser.add_argument("--no-xla", action="store_true",
                        help="compile the train step without XLA (jit_compile=False), to measure XLA's speedup")
    parser.add_argument("--backend", choices=("tensorflow", "jax", "torch"), default=None,
                        help="the Keras backend (default: $KERAS_BACKEND, else Keras's default)")
    parser.add_argument("--synthetic", action="store_true",
                        help="random CIFAR-shaped data instead of CIFAR-10 (offline smoke or speed test)")
    parser.add_argument("--no-augment", action="store_true",
                        help="no random crops and flips (speed tests: keeps the CPU out of the timing)")
    args = parser.parse_args(argv)
    if args.iterations < 4:
        parser.error(f"--iterations must be at least 4 (the schedule drops the rate twice); got {args.iterations}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be positive; got {args.batch_size}")
    if args.seed < 0:
        parser.error(f"--seed must be 0 or more; got {args.seed}")
    return args


def load_data(synthetic: bool, seed: int, batch_size: int = 128):
    """Training and test images with the training set's mean image subtracted, and their labels.
    Synthetic data has 100 training batches, so that epochs are long enough to time."""
    from course_lib import data

    if synthetic:
        rng = np.random.default_rng(seed)
        n_train = 100 * batch_size
        x_train, y_train = rng.random((n_train, 32, 32, 3), np.float32), rng.integers(0, 10, n_train)
        x_test, y_test = rng.random((1000, 32, 32, 3), np.float32), rng.integers(0, 10, 1000)
    else:
        split = data.load("cifar10", val_fraction=0.0)  # all 50,000 training images, as the paper
        x_train, y_train, x_test, y_test = split.x_train, split.y_train, split.x_test, split.y_test
    x_train, x_test, _ = data.subtract_mean(x_train, x_test)
    return x_train, y_train, x_test, y_test


def pad_crop_flip(batch: np.ndarray, rng: np.random.Generator, padding: int = 4) -> np.ndarray:
    """Pad with zeros (the mean, after mean subtraction), cut a random crop of the original size and
    mirror half the images. ``data.random_crop`` and ``data.random_flip`` do the same one image at
    a time with input checks; this is the fast path that keeps a GPU fed."""
    n, height, width, _ = batch.shape
    padded = np.pad(batch, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    rows, cols = rng.integers(0, 2 * padding + 1, size=(2, n))
    steps = rng.choice([1, -1], size=n)  # -1 reads the columns backwards: a mirror image
    return np.stack([padded[i, r:r + height, c:c + width][:, ::s]
                     for i, (r, c, s) in enumerate(zip(rows, cols, steps))])


class SteadyStateTimer:
    """Times the iterations after the first ``warmup`` ones (compilation, first batches), across
    several ``fit`` calls: ``ms_per_iteration`` = elapsed / iterations timed."""

    def __init__(self, warmup: int):
        import keras

        timer = self

        class Callback(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                timer.seen += 1
                if timer.seen == timer.warmup:
                    timer.started = time.perf_counter()

            def on_train_end(self, logs=None):
                timer.ended = time.perf_counter()  # fit has fetched its last metrics: the device is done

        self.warmup, self.seen, self.started, self.ended = warmup, 0, None, None
        self.callback = Callback()

    @property
    def ms_per_iteration(self) -> float | None:
        timed = self.seen - self.warmup
        if self.started is None or self.ended is None or timed < 1:
            return None
        return 1000 * (self.ended - self.started) / timed


def device_name(kind: str) -> str:
    """The accelerator's model name (e.g. ``NVIDIA H100 80GB HBM3``), or the CPU's."""
    import keras

    if kind != "cpu" and keras.backend.backend() == "jax":
        import jax

        return jax.devices()[0].device_kind
    if kind == "gpu" and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
        return details.get("device_name", kind)
    if kind == "cpu" and os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as info:
            names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
        if names:
            return f"{names[0]}, {os.cpu_count()} cores"
    return platform.processor() or kind


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend  # must happen before Keras is imported
    started = time.perf_counter()
    import keras

    import course_lib
    from course_lib import data, pipelines, training
    from course_lib.models import cifar_resnet

    runtime = course_lib.setup(seed=args.seed, profile="full", dataset="cifar10",
                               set_precision=args.mixed_precision, verbose=False)
    x_train, y_train, x_test, y_test = load_data(args.synthetic, args.seed, args.batch_size)
    train = pipelines.pipeline(x_train, y_train, batch_size=args.batch_size,
                               augment=None if args.no_augment else pad_crop_flip,
                               seed=args.seed, drop_remainder=True)
    model = cifar_resnet(20, shortcut="zeros", classifier_activation=None,
                         kernel_regularizer=keras.regularizers.L2(WEIGHT_DECAY / 2))
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
        [args.iterations // 2, args.iterations * 3 // 4], [0.1, 0.01, 0.001])
    model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"],
                  jit_compile=False if args.no_xla else "auto")

    # The paper counts iterations, not epochs: whole passes over the data, then part of one more.
    passes, remainder = divmod(args.iterations, len(train))
    timer = SteadyStateTimer(warmup=max(1, args.iterations // 5))
    fit_started = time.perf_counter()
    if passes:
        model.fit(train, epochs=passes, verbose=2, callbacks=[timer.callback])
    if remainder:
        model.fit(train, initial_epoch=passes, epochs=passes + 1, steps_per_epoch=remainder, verbose=2,
                  callbacks=[timer.callback])
    train_seconds = time.perf_counter() - fit_started
    applied = int(model.optimizer.iterations)  # steps skipped by mixed precision's loss scaling do not count
    test_error = 100 * (1 - training.accuracy(model, x_test, y_test, batch_size=1000))

    data_name = ("synthetic random data (chance: 90% error)" if args.synthetic
                 else "CIFAR-10 stand-ins (COURSE_STAND_IN_DATA: digits, the error is no evidence)"
                 if data.stand_in_scale() is not None else "CIFAR-10")
    skipped = f" (and {args.iterations - applied} skipped by loss scaling)" if applied < args.iterations else ""
    print(f"\nResNet-20 (option A, {model.count_params():,} parameters) on {data_name}: "
          f"{applied:,} iterations{skipped} of batch {args.batch_size}, seed {args.seed}")
    print(f"test error     {test_error:.2f}% on {len(y_test):,} test images   "
          f"(He et al. 2015: {PAPER_TEST_ERROR}%)")
    print(f"training time  {train_seconds:.1f} s ({1000 * train_seconds / args.iterations:.1f} ms per iteration, "
          "compilation included)")
    if timer.ms_per_iteration is not None:
        print(f"steady state   {timer.ms_per_iteration:.2f} ms per iteration (the last "
              f"{timer.seen - timer.warmup:,} iterations, after compilation)")
    print(f"wall time      {time.perf_counter() - started:.1f} s")
    print(f"device         {device_name(runtime.accelerator)} ({runtime.accelerator}); "
          f"backend {runtime.backend}, precision {keras.config.dtype_policy().name}, "
          f"XLA {'off' if args.no_xla else 'auto'}, augmentation {'off' if args.no_augment else 'on'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
