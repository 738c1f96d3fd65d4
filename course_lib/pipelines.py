"""Input pipelines for ``model.fit`` that work on every Keras backend.

``ArrayPipeline`` is a ``keras.utils.PyDataset``: plain NumPy batches, reshuffled every
epoch, optionally augmented, so it runs on JAX with TensorFlow not installed. On the
TensorFlow backend, ``pipeline`` hands un-augmented data to tf.data instead, which only
makes it faster. Either shuffles itself: pass ``shuffle=False`` to ``fit`` (Keras warns
that it ignores its own shuffle for tf.data). ``OrderedEpochs`` gives a whole run's epochs in orders drawn beforehand,
for experiments whose arms must see the same batches in the same order.
"""
from __future__ import annotations

import math

import keras
import numpy as np

from .validation import check_number


def _checked_examples(x, y, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` as arrays, checked to pair up, and ``batch_size`` checked to be a count."""
    x = np.asarray(x)
    y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length; got {len(x)} and {len(y)}")
    check_number("batch_size", batch_size, low=1, integer=True)
    return x, y


def _checked_pipeline_arguments(x, y, batch_size: int, seed: int, drop_remainder: bool):
    """``_checked_examples``, and a seed, and at least one batch when the remainder is dropped."""
    x, y = _checked_examples(x, y, batch_size)
    check_number("seed", seed, low=0, integer=True)
    if drop_remainder and len(x) < batch_size:
        raise ValueError(f"batch_size={batch_size} with drop_remainder leaves no batch "
                         f"of {len(x)} examples")
    return x, y


class ArrayPipeline(keras.utils.PyDataset):
    """Batches of (x, y) from NumPy arrays.

    augment         a function (batch, rng) -> batch, e.g. ``lambda b, rng: random_crop(b, rng)``.
    shuffle         draw a new order every epoch (seeded, so runs repeat).
    drop_remainder  keep every batch the same size (static shapes, as TPUs want).

    Every random draw is a function of ``(seed, epoch)`` for the order and ``(seed, epoch,
    index)`` for the augmentation of batch ``index``, not of how often the pipeline has been
    read: Keras reads a batch or two to learn the input's shape before training (how many
    depends on the backend and on whether the model is built yet), yet batch ``index`` of an
    epoch is the same whoever asks for it first, and in whatever order batches are read.
    ``epoch`` counts the calls of ``on_epoch_end``; ``fit`` makes one as it sets up, so its
    epochs are the pipeline's epochs 1, 2, ... on every backend.
    """

    def __init__(self, x, y, *, batch_size: int = 32, shuffle: bool = True, augment=None,
                 seed: int = 0, drop_remainder: bool = False):
        super().__init__()
        x, y = _checked_pipeline_arguments(x, y, batch_size, seed, drop_remainder)
        if augment is not None and not callable(augment):
            raise TypeError(f"augment must be a function (batch, rng) -> batch; got {augment!r}")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.drop_remainder = drop_remainder
        self.seed = seed
        self.epoch = 0
        self.order = self._epoch_order()

    def _epoch_order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.x))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.x))

    def __len__(self) -> int:
        count = len(self.x) / self.batch_size
        return math.floor(count) if self.drop_remainder else math.ceil(count)

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):  # the end of the sequence, for Python's own iteration
            raise IndexError(f"batch {index} asked for; an epoch has batches 0 to {len(self) - 1}")
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        batch = self.x[rows]
        if self.augment is not None:
            batch = self.augment(batch, np.random.default_rng([self.seed, self.epoch, index]))
        return batch.astype(np.float32), self.y[rows]

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = self._epoch_order()


def pipeline(x, y, *, batch_size: int = 32, shuffle: bool = True, augment=None,
             seed: int = 0, drop_remainder: bool | None = None):
    """The input pipeline for this backend: tf.data on TensorFlow when nothing is augmented,
    an ``ArrayPipeline`` otherwise. ``drop_remainder`` defaults to True on a TPU, which compiles
    one program per batch shape and wants every batch the same size."""
    if drop_remainder is None:
        from .runtime import accelerator

        drop_remainder = accelerator() == "tpu"
    x, y = _checked_pipeline_arguments(x, y, batch_size, seed, drop_remainder)
    if augment is None and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        data = tf.data.Dataset.from_tensor_slices((np.asarray(x, np.float32), np.asarray(y)))
        if shuffle:
            data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        return data.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
    return ArrayPipeline(x, y, batch_size=batch_size, shuffle=shuffle, augment=augment,
                         seed=seed, drop_remainder=drop_remainder)


class OrderedEpochs(keras.utils.PyDataset):
    """All the epochs of one run, epoch ``e`` visiting ``x`` in the order ``orders[e]``.

    Batch ``i`` is rows ``orders[e][s·B : (s+1)·B]`` with ``e, s = divmod(i, steps_per_epoch)``
    and ``steps_per_epoch = ceil(len(order) / B)``, so the last batch of an epoch may be short,
    as in ``fit`` on arrays. Arms of an experiment given the same orders train on the same
    batches in the same order, in a single ``fit`` call::

        batches = OrderedEpochs(x, y, orders, batch_size=32)
        model.fit(batches, epochs=batches.epochs, steps_per_epoch=batches.steps_per_epoch,
                  shuffle=False, callbacks=[...])

    Given ``steps_per_epoch``, Keras reads on through one iterator from epoch to epoch, so its
    epochs are ours and its epoch callbacks run after each of them; ``shuffle=False`` keeps
    Keras from reordering the batches. The same training as one ``fit(x[order], y[order],
    shuffle=False)`` call per epoch (``tests/test_pipelines.py`` checks it, weight for weight),
    without the cost of a ``fit`` call per epoch (TensorFlow builds an input pipeline per call).
    """

    def __init__(self, x, y, orders, *, batch_size: int = 32):
        super().__init__()
        x, y = _checked_examples(x, y, batch_size)
        orders = [np.asarray(order) for order in orders]
        if not orders:
            raise ValueError("orders must hold at least one epoch's order; got none")
        for epoch, order in enumerate(orders):
            if order.ndim != 1 or len(order) == 0 or not np.issubdtype(order.dtype, np.integer):
                raise ValueError(f"orders[{epoch}] must be a non-empty 1-D array of row indices; "
                                 f"got {order.dtype} of shape {order.shape}")
            if len(order) != len(orders[0]):
                raise ValueError(f"every epoch must have as many rows as the first ({len(orders[0])}); "
                                 f"orders[{epoch}] has {len(order)}")
            if order.min() < -len(x) or order.max() >= len(x):
                raise ValueError(f"orders[{epoch}] indexes outside x's {len(x)} rows "
                                 f"(it holds {order.min()} to {order.max()})")
        self.x, self.y, self.orders = x, y, orders
        self.batch_size = batch_size
        self.epochs = len(orders)
        self.steps_per_epoch = math.ceil(len(orders[0]) / batch_size)

    @classmethod
    def shuffled(cls, x, y, *, epochs: int, seed: int, batch_size: int = 32) -> OrderedEpochs:
        """``epochs`` epochs, each in a new random order: the permutations drawn in turn from
        ``np.random.default_rng(seed)``. The same ``seed`` gives every arm the same batches."""
        check_number("epochs", epochs, low=1, integer=True)
        rng = np.random.default_rng(seed)
        return cls(x, y, [rng.permutation(len(x)) for _ in range(epochs)], batch_size=batch_size)

    def __len__(self) -> int:
        return self.epochs * self.steps_per_epoch

    def __getitem__(self, index: int):
        epoch, step = divmod(index, self.steps_per_epoch)
        rows = self.orders[epoch][step * self.batch_size:(step + 1) * self.batch_size]
        return self.x[rows].astype(np.float32, copy=False), self.y[rows]
