"""ipywidgets explorers for the lecture notebooks.

``dropout_explorer`` keeps each entry of an activation vector (or of an image) with
probability p and shows what survives. With a mask m_i ~ Bernoulli(p):

    the slide's dropout:  h̃ = h ⊙ m        E[h̃] = p·h    (test time: p·h)
    inverted dropout:     h̃ = h ⊙ m / p    E[h̃] = h      (test time: h)

Its readout compares mean(h̃) for the mask drawn with that expectation. The mask comes
from ``course_lib.regularization``, so the explorer shows the course's own implementation.

``latent_explorer`` puts a slider on each dimension of a generative model's code z (the first
few, for a long code) and decodes z live through the Keras decoder: the image x = g(z) follows
the sliders. Next to it, the first two dimensions of z over the prior N(0, I) (and, if given,
the codes of real images), so one sees when z leaves the region the decoder was trained on.

Where no widget frontend runs (a static notebook viewer, nbconvert), an explorer displays as a
PNG: the current picture, and for the latent explorer a strip of decodes along each slider.

ipywidgets and matplotlib load when an explorer is built, not when this module is imported.
"""
from __future__ import annotations

import base64
import io

import numpy as np

from .plots import check_decoder, decode, show_image
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
        return _bundle(self.widget, self.image.value, **kwargs)


def _bundle(widget, png: bytes, **kwargs) -> dict:
    """The widget's display data plus a PNG: frontends with a widget manager show the live
    widget, the others (static viewers, nbconvert) fall back to the picture."""
    bundle = widget._repr_mimebundle_(**kwargs)
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    data = dict(data or {})
    data["image/png"] = base64.b64encode(bytes(png)).decode("ascii")
    return data


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


# --- the latent explorer ------------------------------------------------------------------------

class LatentExplorer:
    """Sliders over a code z, decoded live: display it (or its ``widget``), or drive it from code.

    widget         the container to display: sliders, buttons, readout and picture.
    sliders        one ``FloatSlider`` per explored dimension, z[0] … z[k−1]; the other
                   dimensions of a longer code stay at ``fixed`` (by default 0, the prior's mean).
    sample_button  draws z ~ N(0, I) for the explored dimensions (the prior: what a VAE samples).
    zero_button    sets every explored dimension to 0.
    readout        an ``HTML`` widget: z and statistics of the decoded image.
    image          an ``Image`` widget with the PNG of the decoded image and of (z[0], z[1]) on the prior.
    decoded        the last decoded image, (H, W, C), a NumPy array.
    values         the numbers of the last update: z (the whole code, a list), log_prior (log N(z; 0, I)
                   in nats), mean, min and max of the decoded pixels.

    Setting a slider from code (``explorer.sliders[0].value = 1.5``) or ``explorer.set(z)``
    re-decodes, as dragging does. ``strip()`` draws a static figure: decodes along each slider.
    """

    def __init__(self, decoder, *, code_size: int, dims: int, start, limit: float, step: float,
                 codes=None, labels=None, seed: int = 0):
        import ipywidgets as widgets

        self.decoder, self.code_size, self.dims, self.limit = decoder, code_size, dims, limit
        self.codes, self.labels = codes, labels
        self.fixed = np.array(start, dtype=np.float64)
        self._rng = np.random.default_rng(seed)
        self.sliders = [widgets.FloatSlider(value=float(start[i]), min=-limit, max=limit, step=step,
                                            description=f"z[{i}]", continuous_update=False,
                                            readout_format=".2f")
                        for i in range(dims)]
        self.sample_button = widgets.Button(description="z ~ N(0, I)")
        self.zero_button = widgets.Button(description="z = 0")
        self.readout = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.decoded = None
        self.values: dict = {}
        self._paused = False
        self.widget = widgets.HBox([
            widgets.VBox([*self.sliders, widgets.HBox([self.sample_button, self.zero_button]), self.readout]),
            self.image,
        ])
        for slider in self.sliders:
            slider.observe(self.update, names="value")
        self.sample_button.on_click(self._sample)
        self.zero_button.on_click(lambda _button=None: self.set(np.zeros(self.dims)))
        self.update()

    @property
    def z(self) -> np.ndarray:
        """The whole code the sliders describe: explored dimensions from the sliders, the rest fixed."""
        z = self.fixed.copy()
        z[:self.dims] = [slider.value for slider in self.sliders]
        return z

    def set(self, z) -> None:
        """Move the sliders to ``z`` (the first ``dims`` values, clipped to ±limit), then decode once."""
        z = _check_code(z, self.dims, self.code_size)
        self._paused = True
        try:
            for slider, value in zip(self.sliders, z):
                slider.value = float(np.clip(value, -self.limit, self.limit))
        finally:
            self._paused = False
        self.update()

    def _sample(self, _button=None) -> None:
        self.set(self._rng.standard_normal(self.dims))

    def update(self, _change=None) -> None:
        """Decode the current z, then refresh ``decoded``, ``values``, ``readout`` and ``image``."""
        if self._paused:
            return
        z = self.z
        self.decoded = decode(self.decoder, z[None])[0]
        self.values = {
            "z": [float(value) for value in z],
            "log_prior": float(-0.5 * np.sum(z ** 2) - 0.5 * len(z) * np.log(2 * np.pi)),
            "mean": float(self.decoded.mean()), "min": float(self.decoded.min()), "max": float(self.decoded.max()),
        }
        self.readout.value = _latent_readout(self.values, self.dims)
        self.image.value = _latent_picture(self)

    def strip(self, *, steps: int = 9, size: float = 0.8):
        """A static figure: for each explored dimension, a row of ``steps`` decodes with that
        dimension swept from −limit to limit and the others at their current values."""
        from matplotlib.figure import Figure

        check_number("steps", steps, low=2, integer=True)
        check_number("size", size, low=0, low_inclusive=False)
        sweep = np.linspace(-self.limit, self.limit, steps)
        fig = Figure(figsize=(steps * size + 0.8, self.dims * size + 0.4), dpi=80)
        axes = fig.subplots(self.dims, steps, squeeze=False)
        for row in range(self.dims):
            z = np.tile(self.z, (steps, 1))
            z[:, row] = sweep
            for ax, image, value in zip(axes[row], decode(self.decoder, z), sweep):
                show_image(ax, image)
                if row == self.dims - 1:
                    ax.set_xlabel(f"{value:.1f}", fontsize=7)
            axes[row][0].set_ylabel(f"z[{row}]", fontsize=8)
        fig.subplots_adjust(left=0.08, right=0.99, bottom=0.12, top=0.97, wspace=0.05, hspace=0.05)
        return fig

    def _repr_mimebundle_(self, **kwargs):
        buffer = io.BytesIO()
        self.strip().savefig(buffer, format="png")
        return _bundle(self.widget, buffer.getvalue(), **kwargs)


def latent_explorer(decoder, *, code_size: int | None = None, dims: int | None = None, z=None,
                    limit: float = 3.0, step: float = 0.05, codes=None, labels=None,
                    seed: int = 0) -> LatentExplorer:
    """An interactive view of a decoder: one slider per latent dimension, the image decoded live.

    decoder    a Keras model from codes (n, code_size) to images (n, H, W, C) with pixels in [0, 1],
               e.g. ``vae.get_layer("decoder")``; it is called eagerly, ``decoder(z, training=False)``.
    code_size  the length of z; default: ``decoder.input_shape[-1]``.
    dims       how many dimensions get a slider (the first ones); default: all, up to 8.
    z          the starting code: ``code_size`` values (the dimensions without a slider keep theirs)
               or ``dims`` values (the rest 0); default: zeros, the prior's mean.
    limit      each slider runs from −limit to limit (3: nearly all of N(0, 1)'s mass).
    step       the sliders' step.
    codes      optional codes of real images (n, code_size), e.g. a VAE's μ(x): drawn behind z in
               the (z[0], z[1]) panel, coloured by ``labels`` (n integers) if given.
    seed       seed of the "z ~ N(0, I)" button's draws.

    Returns a ``LatentExplorer``; it displays as its ``widget`` (as a PNG strip without a widget frontend).
    """
    code_size = check_decoder(decoder, code_size)
    if dims is None:
        dims = min(code_size, 8)
    check_number("dims", dims, low=1, high=code_size, integer=True)
    check_number("limit", limit, low=0, low_inclusive=False)
    check_number("step", step, low=0, high=limit, low_inclusive=False)
    check_number("seed", seed, low=0, integer=True)
    start = np.zeros(code_size)
    if z is not None:
        z = _check_code(z, dims, code_size)
        start[:len(z)] = z
        start[:dims] = np.clip(start[:dims], -limit, limit)
    if codes is not None:
        codes = check_array("codes", codes, ndim=2)
        if codes.shape[1] != code_size:
            raise ValueError(f"codes must have {code_size} columns (one per latent dimension); got shape {codes.shape}")
        if labels is not None:
            labels = check_array("labels", labels, shape=(len(codes),)).astype(int)
    elif labels is not None:
        raise ValueError("labels colour the codes: pass codes too")
    explorer = LatentExplorer(decoder, code_size=code_size, dims=dims, start=start, limit=limit, step=step,
                              codes=codes, labels=labels, seed=seed)
    return explorer


def _check_code(z, dims: int, code_size: int) -> np.ndarray:
    """z must be finite, with ``dims`` values (the sliders) or ``code_size`` (the whole code)."""
    z = check_array("z", z, ndim=1)
    if len(z) not in (dims, code_size):
        raise ValueError(f"z must have {dims} values (the sliders) or {code_size} (the whole code); got {len(z)}")
    if not np.all(np.isfinite(z)):
        raise ValueError(f"z must be finite; got {z.tolist()}")
    return z


def _latent_readout(values: dict, dims: int) -> str:
    z = values["z"]
    shown = ", ".join(f"{value:+.2f}" for value in z[:dims])
    rest = f", … ({len(z) - dims} more fixed)" if len(z) > dims else ""
    return (f"z = ({shown}{rest})<br>log N(z; 0, I) = {values['log_prior']:.2f} nats &nbsp;·&nbsp; "
            f"pixels: mean {values['mean']:.3f}, min {values['min']:.3f}, max {values['max']:.3f}")


def _latent_picture(explorer: LatentExplorer) -> bytes:
    """PNG of the decoded image and, for two or more dimensions, z's position over the prior."""
    from matplotlib.figure import Figure

    z = explorer.z
    two_d = explorer.code_size >= 2
    fig = Figure(figsize=(6.4 if two_d else 3.2, 3.0), dpi=80)
    axes = fig.subplots(1, 2 if two_d else 1, squeeze=False)[0]
    show_image(axes[0], explorer.decoded)
    axes[0].set_title("x = decoder(z)", fontsize=9)
    if two_d:
        ax, limit = axes[1], explorer.limit
        grid = np.linspace(-limit, limit, 101)
        density = np.exp(-0.5 * (grid[None, :] ** 2 + grid[:, None] ** 2))
        ax.contour(grid, grid, density, levels=np.exp(-0.5 * np.array([3.0, 2.0, 1.0]) ** 2),
                   colors="grey", linewidths=0.7)
        if explorer.codes is not None:
            colours = explorer.labels if explorer.labels is not None else "C0"
            ax.scatter(explorer.codes[:, 0], explorer.codes[:, 1], c=colours, cmap="tab10", s=4, alpha=0.5,
                       vmin=0, vmax=9)
        ax.plot(z[0], z[1], "r+", markersize=14, markeredgewidth=2)
        ax.set(xlim=(-limit, limit), ylim=(-limit, limit), aspect="equal")
        ax.set_xlabel("z[0]", fontsize=8)
        ax.set_ylabel("z[1]", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_title("z (+) on the prior's 1, 2, 3σ circles", fontsize=9)
    fig.subplots_adjust(left=0.03, right=0.97, bottom=0.15, top=0.88, wspace=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
