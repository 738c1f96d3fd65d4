"""Matplotlib figures the notebooks share. Each function returns its Figure."""
from __future__ import annotations

import numpy as np


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
