"""Matplotlib figures the notebooks share. Each function returns its Figure."""
from __future__ import annotations

import numpy as np

from .validation import check_array


def show_images(images, labels=None, *, columns: int = 10, title: str | None = None, cmap="gray"):
    """A grid of images (N, H, W) or (N, H, W, C) with optional labels above each."""
    import matplotlib.pyplot as plt

    images = check_array("images", images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim not in (3, 4):
        raise ValueError(f"images must have shape (N, H, W) or (N, H, W, C); got {images.shape}")
    n = len(images)
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels must have one entry per image ({n}); got {len(labels)}")
    columns = max(1, min(columns, n))
    rows = int(np.ceil(n / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.2 * columns, 1.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, ax in enumerate(axes.flat[:n]):
        ax.imshow(np.clip(images[i], 0, 1) if images.ndim == 4 else images[i], cmap=cmap)
        if labels is not None:
            ax.set_title(str(labels[i]), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def learning_curves(histories: dict, *, metric: str = "accuracy", title: str | None = None):
    """Training (solid) and validation (dashed) curves of several Keras histories, one colour each.

    histories  {label: keras History or its ``.history`` dict}
    """
    import matplotlib.pyplot as plt

    if not histories:
        raise ValueError("histories must name at least one run")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, (label, history) in enumerate(histories.items()):
        logs = getattr(history, "history", history)
        if metric not in logs:
            raise KeyError(f"history {label!r} has no {metric!r}; it has {sorted(logs)}")
        colour = f"C{i}"
        epochs = np.arange(1, len(logs[metric]) + 1)
        ax.plot(epochs, logs[metric], color=colour, label=f"{label} (train)")
        if f"val_{metric}" in logs:
            ax.plot(epochs, logs[f"val_{metric}"], color=colour, linestyle="--", label=f"{label} (val)")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def compare_bars(values: dict, *, ylabel: str, errors: dict | None = None, title: str | None = None):
    """One bar per named value, with optional error bars (e.g. the spread over seeds)."""
    import matplotlib.pyplot as plt

    if not values:
        raise ValueError("values must name at least one bar")
    names = list(values)
    fig, ax = plt.subplots(figsize=(max(3.0, 1.1 * len(names)), 3.2))
    yerr = None if errors is None else [errors.get(n, 0.0) for n in names]
    ax.bar(names, [values[n] for n in names], yerr=yerr, color=[f"C{i}" for i in range(len(names))],
           capsize=4)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    return fig
