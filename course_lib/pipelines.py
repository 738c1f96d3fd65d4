"""Input pipelines for ``model.fit`` that work on every Keras backend.

``ArrayPipeline`` is a ``keras.utils.PyDataset``: plain NumPy batches, reshuffled every
epoch, optionally augmented, so it runs on JAX with TensorFlow not installed. On the
TensorFlow backend, ``pipeline`` hands un-augmented data to tf.data instead, which only
makes it faster.
"""
from __future__ import annotations

import math

import keras
import numpy as np

from .validation import check_number


class ArrayPipeline(keras.utils.PyDataset):
    """Batches of (x, y) from NumPy arrays.

    augment         a function (batch, rng) -> batch, e.g. ``lambda b, rng: random_crop(b, rng)``.
    shuffle         draw a new order every epoch (seeded, so runs repeat).
    drop_remainder  keep every batch the same size (static shapes, as TPUs want).
    """

    def __init__(self, x, y, *, batch_size: int = 32, shuffle: bool = True, augment=None,
                 seed: int = 0, drop_remainder: bool = False):
        super().__init__()
        x = np.asarray(x)
        y = np.asarray(y)
        if len(x) != len(y):
            raise ValueError(f"x and y must have the same length; got {len(x)} and {len(y)}")
        check_number("batch_size", batch_size, low=1, integer=True)
        if drop_remainder and len(x) < batch_size:
            raise ValueError(f"batch_size={batch_size} with drop_remainder leaves no batch "
                             f"of {len(x)} examples")
        if augment is not None and not callable(augment):
            raise TypeError(f"augment must be a function (batch, rng) -> batch; got {augment!r}")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.drop_remainder = drop_remainder
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(x)) if shuffle else np.arange(len(x))

    def __len__(self) -> int:
        count = len(self.x) / self.batch_size
        return math.floor(count) if self.drop_remainder else math.ceil(count)

    def __getitem__(self, index: int):
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        batch = self.x[rows]
        if self.augment is not None:
            batch = self.augment(batch, self.rng)
        return batch.astype(np.float32), self.y[rows]

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.order = self.rng.permutation(len(self.x))


def pipeline(x, y, *, batch_size: int = 32, shuffle: bool = True, augment=None,
             seed: int = 0, drop_remainder: bool | None = None):
    """The input pipeline for this backend: tf.data on TensorFlow when nothing is augmented,
    an ``ArrayPipeline`` otherwise. ``drop_remainder`` defaults to True on a TPU, which compiles
    one program per batch shape and wants every batch the same size."""
    if drop_remainder is None:
        from .runtime import accelerator

        drop_remainder = accelerator() == "tpu"
    if augment is None and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        data = tf.data.Dataset.from_tensor_slices((np.asarray(x, np.float32), np.asarray(y)))
        if shuffle:
            data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        return data.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
    return ArrayPipeline(x, y, batch_size=batch_size, shuffle=shuffle, augment=augment,
                         seed=seed, drop_remainder=drop_remainder)
