"""The cost of babysitting: `fit` with LiveCurves and UpdateRatio against a bare `fit` of the
same model, in the same run (issue bar: at most 3% slower).

    python benchmarks/monitor_overhead.py [--epochs 100] [--repeats 3]

A small CNN on the embedded digits (16×16), about half a minute of training per fit on a 2-core
laptop: the length of run one babysits. Both arms train the same model (compiled first), so they
differ only by the callbacks; the arms alternate, in turn first, and the best time of each is
compared, so drift of the machine's speed hits both alike. The figures are rendered to PNG as in a notebook.
LiveCurves's cost is at most its budget (1%) plus one final drawing, so it shrinks with the
length of the run; UpdateRatio's is a few weight copies.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

import keras  # noqa: E402

from course_lib import data, training  # noqa: E402


def build(seed: int):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((16, 16, 1)),
        keras.layers.Conv2D(16, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    split = data.load("digits", image_size=16, channels=1)
    fit = dict(x=split.x_train, y=split.y_train, validation_data=(split.x_val, split.y_val),
               batch_size=32, verbose=0)
    # One model for both arms: separately built copies differ in speed by a few percent on their
    # own (memory layout, thread placement), which would swamp what the callbacks cost.
    model = build(0)
    model.fit(epochs=1, callbacks=[training.LiveCurves(), training.UpdateRatio()], **fit)  # compiles
    times = {"bare": [], "monitored": []}
    drawn = None  # the last monitored run's LiveCurves
    for repeat in range(args.repeats):
        for arm in (("bare", "monitored") if repeat % 2 == 0 else ("monitored", "bare")):
            curves = training.LiveCurves()
            callbacks = [curves, training.UpdateRatio()] if arm == "monitored" else []
            start = time.perf_counter()
            model.fit(epochs=args.epochs, callbacks=callbacks, **fit)
            times[arm].append(time.perf_counter() - start)
            if arm == "monitored":
                drawn = curves
    best = {arm: min(values) for arm, values in times.items()}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; Keras {keras.__version__} "
          f"on {keras.backend.backend()}")
    print(f"fit of {args.epochs} epochs ({len(split.x_train)} images), best of {args.repeats}:")
    print(f"  bare fit                        {best['bare']:.2f} s")
    print(f"  with LiveCurves + UpdateRatio   {best['monitored']:.2f} s  ({drawn.redraws} drawings, the last "
          f"{drawn._draw_seconds:.2f} s)")
    print(f"  overhead                        {best['monitored'] / best['bare'] - 1:+.1%}  (bar: at most +3%)")


if __name__ == "__main__":
    main()
