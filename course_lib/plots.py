"""Matplotlib figures the notebooks share. Each function returns its Figure."""
from __future__ import annotations

import numpy as np


def learning_curves(histories: dict, *, metric: str = "accuracy", title: str | None = None, ax=None):
    """Training (solid) and validation (dashed) curves of several Keras histories, one colour each.

    histories  {label: keras History or its ``.history`` dict}
    ax         a matplotlib Axes to draw on (default: a new figure, laid out tightly)
    """
    import matplotlib.pyplot as plt

    if not histories:
        raise ValueError("histories must name at least one run")
    own_figure = ax is None
    if own_figure:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for i, (label, history) in enumerate(histories.items()):
        logs = getattr(history, "history", history)
        if metric not in logs:
            raise KeyError(f"history {label!r} has no {metric!r}; it has {sorted(logs)}")
        colour = f"C{i}"
        epochs = np.arange(1, len(logs[metric]) + 1)
        prefix = f"{label} " if label else ""
        ax.plot(epochs, logs[metric], color=colour, label=f"{prefix}(train)")
        if f"val_{metric}" in logs:
            ax.plot(epochs, logs[f"val_{metric}"], color=colour, linestyle="--", label=f"{prefix}(val)")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    if own_figure:  # a caller that passes ``ax`` owns the figure's layout
        ax.figure.tight_layout()
    return ax.figure


def activation_histograms(runs: dict, *, bins: int = 40, title: str | None = None, size: float = 1.5):
    """Histograms of each layer's activations, one row per run and one column per layer, with
    each panel's standard deviation written on it: cs231n's picture of how an initialization
    makes signals vanish, saturate or explode with depth.

    runs  {label: {layer name: activations}}, e.g. {"He": training.layer_activations(model, x)};
          every run must record the same number of layers.
    size  inches per panel.

    Each panel has its own x range (exploding activations would flatten the others); zeros and
    values stuck at ±1 show up as spikes.
    """
    import matplotlib.pyplot as plt

    from .validation import check_array, check_number

    if not isinstance(runs, dict) or not runs or not all(isinstance(r, dict) and r for r in runs.values()):
        raise ValueError("runs must map at least one label to a non-empty {layer name: activations} dict")
    depths = {label: len(layers) for label, layers in runs.items()}
    if len(set(depths.values())) != 1:
        raise ValueError(f"every run must record the same number of layers; got {depths}")
    check_number("bins", bins, low=1, integer=True)
    check_number("size", size, low=0, low_inclusive=False)
    columns = next(iter(depths.values()))
    fig, axes = plt.subplots(len(runs), columns, figsize=(size * columns, size * 0.8 * len(runs) + 0.5),
                             squeeze=False)
    for row, (label, layers) in enumerate(runs.items()):
        for column, (name, values) in enumerate(layers.items()):
            values = check_array(f"runs[{label!r}][{name!r}]", values).ravel()
            ax = axes[row][column]
            ax.hist(values, bins=bins, color=f"C{row}", histtype="stepfilled")
            ax.set_yticks([])
            ax.tick_params(axis="x", labelsize=6)
            ax.text(0.97, 0.95, f"σ={values.std():.2g}", transform=ax.transAxes, ha="right", va="top", fontsize=7)
            if row == 0:
                ax.set_title(name, fontsize=8)
        axes[row][0].set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def filter_grid(kernels, *, columns: int | None = None, title: str | None = None, size: float = 0.6):
    """Show the filters of a convolution as one mosaic of small images, one tile per filter.

    kernels  the layer's kernel as Keras stores it, (height, width, in_channels, filters),
             with 1 input channel (drawn in grey) or 3 (drawn in colour); e.g.
             ``model.get_layer("conv1").get_weights()[0]``.
    columns  filters per row; default: about the square root of the number of filters.
    size     inches per tile.

    Each filter is stretched to its own range (its smallest weight black, its largest white),
    as in the AlexNet paper's figure of the first layer's filters; tiles are separated by a
    one-pixel white gap.
    """
    import matplotlib.pyplot as plt

    from .validation import check_array, check_number

    kernels = check_array("kernels", kernels, ndim=4)
    height, width, channels, count = kernels.shape
    if channels not in (1, 3):
        raise ValueError(f"kernels must have 1 or 3 input channels (axis 2 of (height, width, in_channels, "
                         f"filters)); got shape {kernels.shape}")
    if min(height, width, count) < 1:
        raise ValueError(f"kernels must hold at least one filter of at least 1x1; got shape {kernels.shape}")
    if not np.all(np.isfinite(kernels)):
        raise ValueError("kernels must be finite; got NaN or infinite weights")
    if columns is None:
        columns = int(np.ceil(np.sqrt(count)))
    check_number("columns", columns, low=1, integer=True)
    check_number("size", size, low=0, low_inclusive=False)
    columns = min(columns, count)
    rows = int(np.ceil(count / columns))
    low = kernels.min(axis=(0, 1, 2), keepdims=True)
    spread = kernels.max(axis=(0, 1, 2), keepdims=True) - low
    tiles = np.where(spread > 0, (kernels - low) / np.where(spread > 0, spread, 1), 0.5)
    mosaic = np.ones((rows * (height + 1) - 1, columns * (width + 1) - 1, channels))
    for index in range(count):
        row, column = divmod(index, columns)
        mosaic[row * (height + 1):row * (height + 1) + height,
               column * (width + 1):column * (width + 1) + width] = tiles[..., index]
    fig, ax = plt.subplots(figsize=(columns * size, rows * size + (0.4 if title else 0)))
    if channels == 1:
        ax.imshow(mosaic[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(mosaic, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def bubble_chart(names, operations, accuracy, params, *, xlabel: str = "operations per image (G multiply-adds)",
                 ylabel: str = "ImageNet top-1 accuracy (%)", title: str | None = None, logx: bool = True):
    """Accuracy against operations, one bubble per model with its area proportional to its
    parameter count (the "comparing complexity" chart of Canziani et al. 2017).

    names       one label per model
    operations  operations per image, e.g. GMACs (x axis)
    accuracy    accuracy, e.g. top-1 in percent (y axis)
    params      parameter counts (bubble areas), e.g. in millions; the legend shows two sizes
    """
    import matplotlib.pyplot as plt

    from .validation import check_array

    names = [str(name) for name in names]
    if not names:
        raise ValueError("names must name at least one model")
    columns = {}
    for label, values in (("operations", operations), ("accuracy", accuracy), ("params", params)):
        values = check_array(label, values, ndim=1)
        if len(values) != len(names):
            raise ValueError(f"{label} must have one value per name ({len(names)}); got {len(values)}")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{label} must be finite; got {values.tolist()}")
        columns[label] = values
    for label in ("operations", "params"):
        if np.any(columns[label] <= 0):
            raise ValueError(f"{label} must be positive; got {columns[label].tolist()}")
    operations, acc, par = columns["operations"], columns["accuracy"], columns["params"]
    scale = 2000.0 / par.max()  # points² per unit of params: the largest bubble is 2000 points²
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, name in enumerate(names):
        ax.scatter(operations[i], acc[i], s=par[i] * scale, color=f"C{i}", alpha=0.5, edgecolors="k", linewidths=0.5)
        ax.text(operations[i], acc[i], name, ha="center", va="center", fontsize=8)
    for reference in _round_sizes(par):
        ax.scatter([], [], s=reference * scale, color="lightgrey", edgecolors="k", linewidths=0.5,
                   label=f"{reference:g}")
    ax.legend(title="parameters", labelspacing=2.0, borderpad=1.2, fontsize=8, title_fontsize=8,
              loc="lower right", frameon=False)
    spread = max(acc.max() - acc.min(), 1.0)
    ax.set_ylim(acc.min() - 0.25 * spread, acc.max() + 0.25 * spread)
    if logx:
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("log")
        ax.set_xlim(operations.min() / 2, operations.max() * 2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def _round_sizes(values) -> list[float]:
    """Two round numbers (1, 2 or 5 times a power of ten) spanning ``values``, for a size legend."""
    def round_down(value):
        power = 10.0 ** np.floor(np.log10(value))
        return max(step * power for step in (1, 2, 5) if step * power <= value)

    low, high = round_down(values.min()), round_down(values.max())
    return [low] if low == high else [low, high]


_QUANTITY_LABELS = {"params": "parameters", "activations": "activations (values)", "macs": "multiply-adds",
                    "memory_bytes": "activation memory (bytes)"}


def layer_costs(tables, *, quantities=("params", "macs"), title: str | None = None):
    """Per-layer costs of one or more accounted models, side by side: one panel per quantity,
    one horizontal bar per layer (and per model, in the order given), each panel's shares of
    its model's total written on the bars.

    tables      an ``accounting.Table`` (from ``accounting.account``) or a list of them; layers
                are matched by name, in the order of the first table
    quantities  row attributes to show: "params", "activations", "macs" or "memory_bytes"

    A layer is shown if it costs something in any panel of any table, so views (Flatten,
    Dropout) drop out.
    """
    import matplotlib.pyplot as plt

    if hasattr(tables, "rows"):
        tables = [tables]
    tables = list(tables)
    if not tables or not all(hasattr(table, "rows") and hasattr(table, "model") for table in tables):
        raise TypeError("tables must be an accounting.Table or a non-empty list of them; "
                        f"got {tables!r}"[:200])
    quantities = [quantities] if isinstance(quantities, str) else list(quantities)
    if not quantities:
        raise ValueError("quantities must name at least one of " + ", ".join(_QUANTITY_LABELS))
    for quantity in quantities:
        if quantity not in _QUANTITY_LABELS:
            raise ValueError(f"quantities must be among {', '.join(_QUANTITY_LABELS)}; got {quantity!r}")
    values = [{row.name: row for row in table.rows} for table in tables]
    names = []
    for table in tables:
        for row in table.rows:
            if row.name not in names and any(getattr(rows[row.name], q) for rows in values if row.name in rows
                                             for q in quantities):
                names.append(row.name)
    if not names:
        raise ValueError("the tables have no layer with a nonzero value of " + ", ".join(quantities))
    height = 0.8 / len(tables)
    positions = np.arange(len(names))
    rows_height = 0.28 * len(names) * max(1, len(tables) * 0.6)
    fig, axes = plt.subplots(1, len(quantities), figsize=(4.2 * len(quantities), 0.9 + rows_height),
                             sharey=True, squeeze=False)
    for ax, quantity in zip(axes[0], quantities):
        for i, (table, rows) in enumerate(zip(tables, values)):
            counts = np.array([getattr(rows[name], quantity) if name in rows else 0 for name in names], float)
            total = sum(getattr(row, quantity) for row in table.rows)
            offset = (i - (len(tables) - 1) / 2) * height
            ax.barh(positions + offset, counts, height=height, color=f"C{i}", label=table.model)
            for y, count in zip(positions + offset, counts):
                if total and count / total >= 0.05:
                    ax.text(count, y, f" {count / total:.0%}", va="center", fontsize=7)
        ax.set_xlabel(_QUANTITY_LABELS[quantity])
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 3))
        ax.margins(x=0.18)
    axes[0][0].set_yticks(positions, names, fontsize=8)
    axes[0][0].invert_yaxis()
    if len(tables) > 1:
        axes[0][-1].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# --- generative models: decoding codes ---------------------------------------------------------

def check_decoder(decoder, code_size=None) -> int:
    """``decoder`` must be a Keras model or a callable mapping codes (n, code_size) to images;
    returns the code size, read from ``decoder.input_shape`` unless ``code_size`` is given."""
    from .validation import check_number

    if not callable(decoder):
        raise TypeError("decoder must be a Keras model or a callable mapping codes (n, code_size) to images, "
                        f"e.g. vae.get_layer('decoder'); got {type(decoder).__name__}")
    if code_size is None:
        shape = getattr(decoder, "input_shape", None)
        if not (isinstance(shape, (tuple, list)) and len(shape) == 2 and isinstance(shape[-1], int)):
            raise ValueError("code_size must be given: the decoder does not say its input shape "
                             f"(n, code_size); its input_shape is {shape!r}")
        code_size = shape[-1]
    check_number("code_size", code_size, low=1, integer=True)
    return int(code_size)


def show_image(ax, image) -> None:
    """Draw one image (H, W, 1) in grey or (H, W, 3) in colour, pixels in [0, 1], without ticks."""
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
    ax.set(xticks=[], yticks=[])


def decode(decoder, z) -> np.ndarray:
    """Decode codes ``z`` (n, code_size) into images (n, H, W, C) as float64 NumPy, by an eager
    call ``decoder(z, training=False)`` (no ``predict``, so no retracing in a widget's callback;
    the same on every Keras backend). Images come back as (n, H, W, 1) or (n, H, W, 3)."""
    from keras import ops

    images = np.asarray(ops.convert_to_numpy(decoder(ops.convert_to_tensor(z, dtype="float32"),
                                                     training=False)), dtype=np.float64)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[0] != len(z) or images.shape[-1] not in (1, 3):
        raise ValueError(f"decoder must map {len(z)} codes to images (n, H, W) or (n, H, W, 1 or 3); "
                         f"got an output of shape {images.shape}")
    return images


def gaussian_quantiles(n: int, *, low: float = 0.05, high: float = 0.95) -> np.ndarray:
    """``n`` values z = Φ⁻¹(p) at evenly spaced probabilities p from ``low`` to ``high``: a grid
    over a N(0, 1) latent axis with equal prior mass between neighbours, as in Kingma & Welling's
    figure of the learned manifold (Φ⁻¹ is the inverse of the normal CDF)."""
    from statistics import NormalDist

    from .validation import check_number

    check_number("n", n, low=1, integer=True)
    check_number("low", low, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    check_number("high", high, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    if not low < high:
        raise ValueError(f"low must be below high; got low={low!r}, high={high!r}")
    return np.array([NormalDist().inv_cdf(p) for p in np.linspace(low, high, n)])


def latent_grid(decoder, *, n: int = 15, dims=(0, 1), code_size: int | None = None, base=None,
                values=None, spacing: str = "quantiles", limit: float = 3.0, gap: int = 0):
    """Decode an n × n grid of codes over two latent dimensions and tile the images.

    decoder    a Keras model (or callable) from codes (m, code_size) to images, e.g. a VAE's decoder.
    n          images per side.
    dims       the two latent dimensions the grid spans (horizontal, vertical).
    code_size  the decoder's code size; default: ``decoder.input_shape[-1]``.
    base       the code the other dimensions keep (default: zeros, the prior's mean).
    values     the n values of each axis; default: from ``spacing``.
    spacing    "quantiles": z = Φ⁻¹ of evenly spaced probabilities in [0.05, 0.95]
               (``gaussian_quantiles``); "linear": evenly from −limit to limit.
    gap        white pixels between tiles (0: touching, as in Kingma & Welling's figure).

    Returns ``(mosaic, values)``: the tiled images (n·(H+gap)−gap, n·(W+gap)−gap, C) with z[dims[1]] decreasing down
    the rows (as on a plot's y axis) and z[dims[0]] increasing along the columns, and the axis values.
    """
    from .validation import check_array, check_choice, check_number

    code_size = check_decoder(decoder, code_size)
    check_number("n", n, low=1, integer=True)
    check_choice("spacing", spacing, ("quantiles", "linear"))
    check_number("limit", limit, low=0, low_inclusive=False)
    check_number("gap", gap, low=0, integer=True)
    dims = tuple(dims) if isinstance(dims, (tuple, list)) else dims
    if (not isinstance(dims, tuple) or len(dims) != 2 or len(set(dims)) != 2
            or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and 0 <= d < code_size
                       for d in dims)):
        raise ValueError(f"dims must be two different latent dimensions in 0..{code_size - 1}; got {dims!r}")
    base = np.zeros(code_size) if base is None else check_array("base", base, shape=(code_size,))
    if values is None:
        values = gaussian_quantiles(n) if spacing == "quantiles" else np.linspace(-limit, limit, n)
    else:
        values = check_array("values", values, shape=(n,))
    across, down = np.meshgrid(values, values[::-1])  # rows: the vertical axis decreasing downwards
    z = np.tile(base, (n * n, 1))
    z[:, dims[0]], z[:, dims[1]] = across.ravel(), down.ravel()
    images = decode(decoder, z)
    _, height, width, channels = images.shape
    padded = np.ones((n, n, height + gap, width + gap, channels))
    padded[:, :, :height, :width] = images.reshape(n, n, height, width, channels)
    mosaic = padded.transpose(0, 2, 1, 3, 4).reshape(n * (height + gap), n * (width + gap), channels)
    return mosaic[:n * (height + gap) - gap, :n * (width + gap) - gap], values


def latent_manifold(decoder, *, n: int = 15, dims=(0, 1), code_size: int | None = None, base=None,
                    spacing: str = "quantiles", limit: float = 3.0, gap: int = 1, title: str | None = None,
                    size: float = 5.0, ax=None):
    """The learned manifold: decode an n × n grid over two latent dimensions (``latent_grid``) and
    show the tiled images, with the axes labelled by the code values at the tiles' centres.

    With ``spacing="quantiles"`` (default) the grid sits at Gaussian quantiles, so each tile stands
    for the same share of the prior N(0, I), as in Kingma & Welling (2014), figure 4.
    ``gap``: white pixels between tiles (1 keeps small digits apart; 0 for the paper's seamless look).
    ``ax``: an Axes to draw on (default: a new figure of ``size`` inches). Returns the Figure."""
    import matplotlib.pyplot as plt

    from .validation import check_number

    check_number("size", size, low=0, low_inclusive=False)
    mosaic, values = latent_grid(decoder, n=n, dims=dims, code_size=code_size, base=base,
                                 spacing=spacing, limit=limit, gap=gap)
    if ax is None:
        _, ax = plt.subplots(figsize=(size, size))
    tile_h, tile_w = (mosaic.shape[0] + gap) // n, (mosaic.shape[1] + gap) // n
    show_image(ax, mosaic)
    ticks = np.arange(n)[:: max(1, n // 5)]
    ax.set_xticks(ticks * tile_w + (tile_w - gap - 1) / 2, [f"{values[i]:.2g}" for i in ticks], fontsize=7)
    ax.set_yticks(ticks * tile_h + (tile_h - gap - 1) / 2, [f"{values[::-1][i]:.2g}" for i in ticks], fontsize=7)
    ax.set_xlabel(f"z[{dims[0]}]")
    ax.set_ylabel(f"z[{dims[1]}]")
    if title:
        ax.set_title(title, fontsize=10)
    return ax.figure


def image_grid(images, *, columns: int = 10, titles=None, title: str | None = None, size: float = 0.7,
               ax=None):
    """Show images (n, H, W) or (n, H, W, 1 or 3) with pixels in [0, 1] as one mosaic, ``columns``
    per row and a one-pixel white gap between them; ``titles``: one label per row (left side).
    Returns the Figure."""
    import matplotlib.pyplot as plt

    from .validation import check_array, check_number

    images = check_array("images", images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or len(images) == 0:
        raise ValueError(f"images must be a non-empty batch (n, H, W) or (n, H, W, 1 or 3); "
                         f"got shape {images.shape}")
    check_number("columns", columns, low=1, integer=True)
    check_number("size", size, low=0, low_inclusive=False)
    n, height, width, channels = images.shape
    columns = min(columns, n)
    rows = int(np.ceil(n / columns))
    if titles is not None and len(titles) != rows:
        raise ValueError(f"titles must give one label per row ({rows}); got {len(titles)}")
    mosaic = np.ones((rows * (height + 1) - 1, columns * (width + 1) - 1, channels))
    for index, image in enumerate(np.clip(images, 0, 1)):
        row, column = divmod(index, columns)
        mosaic[row * (height + 1):row * (height + 1) + height,
               column * (width + 1):column * (width + 1) + width] = image
    if ax is None:
        _, ax = plt.subplots(figsize=(columns * size + (1.2 if titles is not None else 0),
                                      rows * size + (0.4 if title else 0)))
    show_image(ax, mosaic)
    if titles is not None:
        ax.set_yticks([r * (height + 1) + (height - 1) / 2 for r in range(rows)], [str(t) for t in titles],
                      fontsize=8)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    return ax.figure
