"""ipywidgets explorers for the lecture notebooks.

``dropout_explorer`` keeps each entry of an activation vector (or of an image) with
probability p and shows what survives. With a mask m_i ~ Bernoulli(p):

    the slide's dropout:  h̃ = h ⊙ m        E[h̃] = p·h    (test time: p·h)
    inverted dropout:     h̃ = h ⊙ m / p    E[h̃] = h      (test time: h)

Its readout compares mean(h̃) for the mask drawn with that expectation. The mask comes
from ``course_lib.regularization``, so the explorer shows the course's own implementation.

ipywidgets and matplotlib load when an explorer is built, not when this module is imported.
"""
from __future__ import annotations

import io

import numpy as np

from .validation import check_array, check_choice, check_keep_probability, check_number

VARIANTS = ("slide", "inverted")


class DropoutExplorer:
    """A dropout explorer: display it (or its ``widget``) in a notebook, or drive it from code.

    widget          the container to display: the controls, the readout and the picture.
    p_slider        keep probability p (a ``FloatSlider``).
    seed_slider     seed of the random mask (an ``IntSlider``); ``resample_button`` adds one.
    variant_toggle  ``"slide"`` (scale by p at test time) or ``"inverted"`` (scale by 1/p in training).
    readout         an ``HTML`` widget with the numbers below, as text.
    image           an ``Image`` widget with the PNG of h, the mask and h̃.
    values          the numbers of the last update: p, seed, variant, kept, units,
                    mean_h, mean_output, expected_mean (E[mean(h̃)]) and test_mean (mean of the
                    test-time output).

    Setting a control from code (``explorer.p_slider.value = 0.2``) redraws, as dragging it does.
    """

    def __init__(self, h, *, p: float, seed: int, variant: str):
        import ipywidgets as widgets

        self.h = h
        self.p_slider = widgets.FloatSlider(value=p, min=min(0.01, p), max=1.0, step=0.01,
                                            description="keep p", continuous_update=False)
        self.seed_slider = widgets.IntSlider(value=seed, min=0, max=max(999, seed),
                                             description="mask seed", continuous_update=False)
        self.resample_button = widgets.Button(description="new mask")
        self.variant_toggle = widgets.ToggleButtons(options=VARIANTS, value=variant,
                                                    description="dropout")
        self.readout = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.widget = widgets.VBox([
            widgets.HBox([self.p_slider, self.seed_slider, self.resample_button]),
            self.variant_toggle, self.readout, self.image,
        ])
        self.values: dict = {}
        for control in (self.p_slider, self.seed_slider, self.variant_toggle):
            control.observe(self.update, names="value")
        self.resample_button.on_click(self._resample)
        self.update()

    def _resample(self, _button=None) -> None:
        self.seed_slider.max = max(self.seed_slider.max, self.seed_slider.value + 1)
        self.seed_slider.value += 1

    def update(self, _change=None) -> None:
        """Draw the mask for the current controls, then refresh ``values``, ``readout`` and ``image``."""
        from .regularization import dropout_forward, inverted_dropout_forward

        p, seed, variant = float(self.p_slider.value), int(self.seed_slider.value), self.variant_toggle.value
        forward = inverted_dropout_forward if variant == "inverted" else dropout_forward
        output, cache = forward(self.h, p, "train", np.random.default_rng(seed))
        test_output, _ = forward(self.h, p, "test")
        kept = cache.mask != 0
        self.values = {
            "p": p, "seed": seed, "variant": variant,
            "kept": int(kept.sum()), "units": int(kept.size),
            "mean_h": float(self.h.mean()), "mean_output": float(output.mean()),
            "expected_mean": float(self.h.mean() * (1.0 if variant == "inverted" else p)),
            "test_mean": float(test_output.mean()),
        }
        self.readout.value = _readout(self.values)
        self.image.value = _picture(self.h, kept, output, self.values)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def dropout_explorer(h, *, p: float = 0.5, seed: int = 0, variant: str = "slide") -> DropoutExplorer:
    """An interactive view of dropout on ``h``: a 1-D activation vector or a 2-D image.

    h        the activations to drop (a vector) or an image (H, W) or (H, W, 1), e.g. one digit.
    p        the starting keep probability, in (0, 1].
    seed     the starting seed of the mask; the same seed gives the same mask.
    variant  ``"slide"`` (h ⊙ m, scaled by p at test time) or ``"inverted"`` (h ⊙ m / p).

    Returns a ``DropoutExplorer``; it displays as its ``widget``.
    """
    h = check_array("h", h)
    if h.ndim == 3 and h.shape[-1] == 1:
        h = h[..., 0]
    if h.ndim not in (1, 2) or h.size == 0:
        raise ValueError(f"h must be a non-empty vector or image (H, W); got an array of shape {h.shape}")
    check_keep_probability("p", p)
    check_number("seed", seed, low=0, integer=True)
    check_choice("variant", variant, VARIANTS)
    return DropoutExplorer(h, p=p, seed=seed, variant=variant)


def _readout(values: dict) -> str:
    p = values["p"]
    if values["variant"] == "slide":
        expectation = f"p·mean(h) = {p:.2f} × {values['mean_h']:.4f} = {values['expected_mean']:.4f}"
        test = f"at test time the slide scales by p: mean(p·h) = {values['test_mean']:.4f}"
    else:
        expectation = f"mean(h) = {values['expected_mean']:.4f} (the mask was divided by p = {p:.2f})"
        test = f"at test time inverted dropout changes nothing: mean(h) = {values['test_mean']:.4f}"
    return (f"kept {values['kept']} of {values['units']} units ({values['kept'] / values['units']:.0%}, "
            f"p = {p:.2f}) &nbsp;·&nbsp; mean(h̃) = {values['mean_output']:.4f}, its expectation "
            f"{expectation}<br>{test}")


def _picture(h, kept, output, values) -> bytes:
    """PNG of h, the mask and h̃ side by side, drawn without pyplot so no figure is left open."""
    from matplotlib.figure import Figure

    low = min(0.0, float(h.min()), float(output.min()))
    high = max(float(h.max()), float(output.max()), 1e-12)
    panels = [(h, "h", (low, high)), (kept.astype(float), "mask m (white or 1: kept)", (0.0, 1.0)),
              (output, r"$\tilde{h}$, the output", (low, high))]
    fig = Figure(figsize=(9, 2.4), dpi=80)
    axes = fig.subplots(1, 3)
    for ax, (array, title, (vmin, vmax)) in zip(axes, panels):
        if array.ndim == 2:
            ax.imshow(array, cmap="gray", vmin=vmin, vmax=vmax)
            ax.set(xticks=[], yticks=[])
        else:
            ax.vlines(np.arange(array.size), 0, array, linewidth=1)
            ax.set(xlim=(-1, array.size), ylim=(vmin, 1.05 * vmax), xlabel="unit")
        ax.set_title(title, fontsize=9)
    if h.ndim == 1:
        axes[2].axhline(values["mean_output"], color="C1", label=r"mean($\tilde{h}$)")
        axes[2].axhline(values["expected_mean"], color="C2", linestyle="--", label="its expectation")
        axes[2].legend(fontsize=7, loc="upper right")
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.2, top=0.88, wspace=0.25)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
