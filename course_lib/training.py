"""Training helpers. (The babysitting tools of the lecture's training recipe come with notebook 03.)"""
from __future__ import annotations

import numpy as np

from .validation import check_number


def accuracy(model, x, y, *, batch_size: int = 256) -> float:
    """Share of ``x`` whose arg-max prediction equals the integer label ``y``.

    The model is called directly, batch by batch, in inference mode (dropout off). On the
    course's small data this is much faster than ``model.predict``, and it traces no new
    function per model, so scoring many models raises no retracing warnings.
    """
    from keras import ops

    y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length; got {len(x)} and {len(y)}")
    check_number("batch_size", batch_size, low=1, integer=True)
    scores = [ops.convert_to_numpy(model(x[start:start + batch_size], training=False))
              for start in range(0, len(y), batch_size)]
    return float(np.mean(np.argmax(np.concatenate(scores), axis=-1) == y))
