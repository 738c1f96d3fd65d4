"""What one small training step costs in Keras's `fit` and `train_on_batch`: notebook 03's MLP
on MNIST-sized data.

    python benchmarks/step_cost.py [--images 48000] [--batch-size 32] [--steps-per-execution 1 32]

Notebook 03 trains a 784-100-10 MLP with SGD + momentum in batches of 32. Such a step is a few
MFLOP, so its time is Keras's and the backend's overhead per step (dispatch, batching, callbacks),
not arithmetic, on a CPU and on a GPU alike: steps x this cost is what a profile's training takes.
Prints, for each `steps_per_execution` (steps run per call of the compiled train function), ms
per step over one epoch of random data after a first short fit, and that first fit's time, which
holds the compilation: a notebook that builds a new model per trial pays it every time. Then the
same epoch from `pipelines.OrderedEpochs` (NumPy batches through a PyDataset, as notebooks 01 and
02 train, at the last `steps_per_execution`), as a loop of `train_on_batch` calls, one per batch,
and what a `fit` call costs beyond its steps (a fit of one batch): why notebooks 01 and 02 make a
whole run of tens of short epochs one `fit` call.
"""
from __future__ import annotations

import argparse
import sys
import time


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=48_000, help="training images per epoch (MNIST's, less validation)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps-per-execution", type=int, nargs="+", default=[1, 32])
    args = parser.parse_args(argv)
    for name in ("images", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1; got {getattr(args, name)}")
    if min(args.steps_per_execution) < 1:
        parser.error(f"--steps-per-execution must be at least 1; got {args.steps_per_execution}")
    if args.images < args.batch_size:
        parser.error(f"--images ({args.images}) must hold at least one batch of {args.batch_size}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from course_lib import runtime  # first: importing course_lib chooses Keras's backend
    from course_lib.pipelines import OrderedEpochs
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((args.images, 784), dtype=np.float32)
    y = rng.integers(0, 10, args.images)
    steps = -(-args.images // args.batch_size)
    print(f"backend {runtime.backend()}, devices {', '.join(runtime.devices())}; 784-100-10 MLP, "
          f"batch {args.batch_size}, {steps} steps per epoch")

    def mlp(per_call=1):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(100, activation="relu"),
                                  keras.layers.Dense(10)])
        model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True), steps_per_execution=per_call)
        return model

    def fit_ordered_epoch(model, order):
        batches = OrderedEpochs(x, y, [order], batch_size=args.batch_size)
        model.fit(batches, epochs=1, steps_per_epoch=batches.steps_per_epoch, shuffle=False, verbose=0)

    for per_call in args.steps_per_execution:
        model = mlp(per_call)
        warm_up = min(args.images, 4 * per_call * args.batch_size)
        started = time.perf_counter()
        model.fit(x[:warm_up], y[:warm_up], batch_size=args.batch_size, epochs=1, verbose=0)  # compiles
        first = time.perf_counter() - started
        started = time.perf_counter()
        model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)
        seconds = time.perf_counter() - started
        print(f"steps_per_execution {per_call:>3}: {seconds:6.2f} s per epoch, {1000 * seconds / steps:.3f} ms per step; "
              f"first fit of {-(-warm_up // args.batch_size)} steps (compiling) {first:.2f} s")
    fit_ordered_epoch(model, np.arange(warm_up))  # the PyDataset's batches may trace the function anew
    started = time.perf_counter()
    fit_ordered_epoch(model, np.arange(args.images))
    seconds = time.perf_counter() - started
    print(f"OrderedEpochs in fit:  {seconds:6.2f} s per epoch, {1000 * seconds / steps:.3f} ms per step "
          f"(steps_per_execution {per_call})")
    model = mlp()
    one_batch = x[:args.batch_size], y[:args.batch_size]
    model.fit(*one_batch, batch_size=args.batch_size, verbose=0)  # compiles
    calls = 10
    started = time.perf_counter()
    for _ in range(calls):
        model.fit(*one_batch, batch_size=args.batch_size, verbose=0)
    print(f"fit of one batch:      {1000 * (time.perf_counter() - started) / calls:.1f} ms per call, "
          f"mean of {calls}")
    model.train_on_batch(*one_batch)  # compiles, where fit's train function does not serve
    full_batches = args.images // args.batch_size  # a ragged last batch would compile again
    started = time.perf_counter()
    for start in range(0, full_batches * args.batch_size, args.batch_size):
        model.train_on_batch(x[start:start + args.batch_size], y[start:start + args.batch_size])
    seconds = time.perf_counter() - started
    print(f"train_on_batch loop:   {seconds:6.2f} s for {full_batches} steps, {1000 * seconds / full_batches:.3f} ms per step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
