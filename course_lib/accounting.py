"""Layer accounting: output shapes, parameters, activation memory and operations of a CNN.

The lecture's arithmetic, one function per formula:

    conv output size   (N − F + 2P) / S + 1             conv_output_size(N, F, S, P)
    conv parameters    (F·F·C_in / groups)·K + K         conv_params(F, C_in, K)
    conv MACs          H_out·W_out·K · F·F·C_in/groups    (multiply-accumulates)
    FC parameters      N_in·N_out + N_out
    receptive field    r_l = r_{l−1} + (F_l − 1)·j_{l−1},  j_l = j_{l−1}·S_l

``account(model)`` applies them to every layer of a Keras model and returns a ``Table``
(one ``Row`` per layer, with totals) that prints in the slide's format:

    input          INPUT     [224x224x3]   memory: 224*224*3=151K   params: 0
    block1_conv1   CONV3-64  [224x224x64]  memory: 224*224*64=3.2M  params: (3*3*3)*64+64 = 1,792

Shapes and parameter counts come from Keras itself; the formulas above fill in the operations.
``account`` also takes a ``Traced`` model: the course's builders (``course_lib.models``) can
run on ``SHAPES``, Keras-free stand-ins for the layers they use that compute the same table
with these formulas alone, without allocating a single weight (that is how ``course explain``
answers in a fraction of a second). A test checks the two agree on every architecture.

Conventions. FLOPs = 2 × MACs (a multiply and an add); only convolutions (1-D to 3-D,
depthwise, separable, transposed) and fully connected layers are counted, as in the papers
(torchvision's "GFLOPs" column is GMACs); another convolution warns that it counts as 0.
Activations are the values a layer writes in a forward pass, so views of their input
(``Flatten``, ``Reshape``, ``Dropout`` at inference) count 0, and the input counts once.
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass, field
from types import SimpleNamespace

from .validation import check_number

# --- the formulas ---------------------------------------------------------------------------


def _pair(name, value) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints; got {value!r}")
        pair = tuple(value)
    else:
        pair = (value, value)
    for item in pair:
        check_number(name, item, low=1, integer=True)
    return pair


def conv_output_size(size: int, kernel: int, stride: int = 1, padding="valid") -> int:
    """Output length of a convolution or pooling window along one axis.

    ``padding`` is a number of zeros added on each side, ``"valid"`` (0) or ``"same"``
    (Keras's: enough zeros that the output is ceil(N / S)). With P zeros:

        out = floor((N − F + 2P) / S) + 1
    """
    check_number("size", size, low=1, integer=True)
    check_number("kernel", kernel, low=1, integer=True)
    check_number("stride", stride, low=1, integer=True)
    if padding == "same":
        return -(-size // stride)
    if padding == "valid":
        padding = 0
    if isinstance(padding, str):
        raise ValueError(f"padding must be a number of zeros, 'valid' or 'same' (lower case, as Keras "
                         f"spells them); got {padding!r}")
    check_number("padding", padding, low=0, integer=True)
    if size + 2 * padding < kernel:
        raise ValueError(f"a window of {kernel} does not fit an input of size {size} "
                         f"with padding {padding}: the input is too small for this layer")
    return (size - kernel + 2 * padding) // stride + 1


def conv_params(kernel, in_channels: int, filters: int, *, bias: bool = True, groups: int = 1) -> int:
    """Weights of a 2-d convolution: (F_h·F_w·C_in / groups)·K, plus K biases."""
    kernel_h, kernel_w = _pair("kernel", kernel)
    check_number("in_channels", in_channels, low=1, integer=True)
    check_number("filters", filters, low=1, integer=True)
    check_number("groups", groups, low=1, integer=True)
    if in_channels % groups or filters % groups:
        raise ValueError(f"groups ({groups}) must divide in_channels ({in_channels}) and filters ({filters})")
    return kernel_h * kernel_w * (in_channels // groups) * filters + (filters if bias else 0)


def dense_params(inputs: int, units: int, *, bias: bool = True) -> int:
    """Weights of a fully connected layer: N_in·N_out, plus N_out biases."""
    check_number("inputs", inputs, low=1, integer=True)
    check_number("units", units, low=1, integer=True)
    return inputs * units + (units if bias else 0)


def conv_macs(output_shape, kernel, in_channels: int, *, groups: int = 1) -> int:
    """Multiply-accumulates of a convolution: every output value (H_out·W_out·K of them in 2-D)
    takes F_h·F_w·C_in/groups. ``kernel`` is an int (a square window) or a tuple of 1, 2 or 3 sizes."""
    window = tuple(kernel) if isinstance(kernel, (tuple, list)) else _pair("kernel", kernel)
    for size in window:
        check_number("kernel", size, low=1, integer=True)
    return math.prod(output_shape) * math.prod(window) * (in_channels // groups)


@dataclass(frozen=True)
class ReceptiveField:
    """After one layer of a stack: its receptive field on the input and its jump (input pixels
    between neighbouring outputs, the product of the strides so far)."""
    layer: str
    kernel: int
    stride: int
    size: int
    jump: int


def receptive_field(layers) -> list[ReceptiveField]:
    """Receptive field after each layer of a stack, r_l = r_{l−1} + (F_l − 1)·j_{l−1}.

    ``layers`` is a sequence of ``(kernel, stride)`` pairs, or of Keras layers (a linear
    stack such as ``model.layers``; windows are read from ``kernel_size``/``pool_size`` and
    ``strides``, dilation included, along the height axis; layers without a window leave it
    unchanged; a global pooling layer is an error, since it sees the whole input).
    Three 3×3 stride-1 convolutions: ``receptive_field([(3, 1)] * 3)[-1].size == 7``.
    """
    layers = list(layers)
    if not layers:
        raise ValueError("layers must hold at least one (kernel, stride) pair or Keras layer")
    size, jump, rows = 1, 1, []
    for index, layer in enumerate(layers):
        if isinstance(layer, (tuple, list)):
            if len(layer) != 2:
                raise ValueError(f"layers[{index}] must be a (kernel, stride) pair; got {layer!r}")
            name, (kernel, stride) = f"layer {index + 1}", layer
            check_number(f"layers[{index}] kernel", kernel, low=1, integer=True)
            check_number(f"layers[{index}] stride", stride, low=1, integer=True)
        else:
            name = getattr(layer, "name", None)
            if name is None or not hasattr(layer, "get_config"):
                raise TypeError(f"layers[{index}] must be a (kernel, stride) pair or a Keras layer; got {layer!r}")
            if type(layer).__name__.startswith("Global"):
                raise ValueError(f"layers[{index}] ({name}) pools globally: its receptive field is the "
                                 "whole input, so stop the stack before it")
            config = layer.get_config()
            window = config.get("kernel_size") or config.get("pool_size")
            if window is None:
                kernel, stride = 1, 1
            else:
                dilation = _pair("dilation_rate", config.get("dilation_rate", 1))[0]
                kernel = (_pair("window", window)[0] - 1) * dilation + 1
                stride = _pair("strides", config.get("strides") or window)[0]
        size += (kernel - 1) * jump
        jump *= stride
        rows.append(ReceptiveField(name, kernel, stride, size, jump))
    return rows


# --- the table ------------------------------------------------------------------------------

_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8, "int8": 1, "uint8": 1,
          "int32": 4, "int64": 8}


@dataclass
class Row:
    """One layer: what it computes and what it costs."""
    name: str
    kind: str                   # the Keras class name, e.g. "Conv2D"
    label: str                  # the slide's name, e.g. "CONV3-64", "POOL2", "FC"
    output_shape: tuple         # without the batch axis
    params: int
    activations: int            # values written in a forward pass (0 for views)
    memory_bytes: int           # activations × bytes per value at the layer's dtype
    macs: int                   # multiply-accumulates
    formula: str = ""           # how params were counted, e.g. "(3*3*3)*64+64"

    @property
    def flops(self) -> int:
        return 2 * self.macs


@dataclass
class Table:
    """Per-layer accounting of one model, with totals."""
    model: str
    rows: list = field(default_factory=list)

    @property
    def params(self) -> int:
        return sum(row.params for row in self.rows)

    @property
    def activations(self) -> int:
        return sum(row.activations for row in self.rows)

    @property
    def memory_bytes(self) -> int:
        return sum(row.memory_bytes for row in self.rows)

    @property
    def macs(self) -> int:
        return sum(row.macs for row in self.rows)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def row(self, name: str) -> Row:
        """The row of the layer called ``name``."""
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no layer named {name!r} in {self.model}; layers: "
                       f"{', '.join(row.name for row in self.rows)}")

    def where(self, *kinds: str) -> list[Row]:
        """Rows of the given Keras classes, e.g. ``table.where("Conv2D")``."""
        return [row for row in self.rows if row.kind in kinds]

    def to_dict(self) -> dict:
        rows = [{**asdict(row), "output_shape": list(row.output_shape), "flops": row.flops}
                for row in self.rows]
        totals = {"params": self.params, "activations": self.activations,
                  "memory_bytes": self.memory_bytes, "macs": self.macs, "flops": self.flops}
        return {"model": self.model, "rows": rows, "totals": totals}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def to_text(self, *, all_layers: bool = False) -> str:
        """The slide's format: one line per layer with memory and params, then the totals.

        Rows with no activations and no parameters (``Flatten``, ``Dropout``) are left out
        unless ``all_layers``.
        """
        shown = [row for row in self.rows if all_layers or row.activations or row.params]
        cells = []
        for row in shown:
            shape = "x".join(map(str, row.output_shape))
            memory = f"{'*'.join(map(str, row.output_shape))}={_short(row.activations)}" if row.activations else "0"
            params = f"{row.formula} = {row.params:,}" if row.formula else f"{row.params:,}"
            cells.append((row.name, row.label, f"[{shape}]", f"memory: {memory}", f"params: {params}",
                          f"MACs: {_short(row.macs)}" if row.macs else ""))
        widths = [max(len(cell[i]) for cell in cells) for i in range(5)]
        lines = [f"{self.model}"]
        lines += ["  ".join(cell[i].ljust(widths[i]) for i in range(5)) + "  " + cell[5] for cell in cells]
        lines.append(f"TOTAL memory: {self.activations:,} values ({self.activations / 1e6:.1f}M) = "
                     f"{self.memory_bytes / 1e6:.1f} MB / image (forward only; about ×2 with backward)")
        lines.append(f"TOTAL params: {self.params:,} ({_short(self.params)})")
        lines.append(f"TOTAL operations: {self.macs / 1e9:.3g} GMACs = {self.flops / 1e9:.3g} GFLOPs / image")
        return "\n".join(line.rstrip() for line in lines)

    def __str__(self) -> str:
        return self.to_text()


def _short(count: int) -> str:
    """150528 → '151K', 3211264 → '3.2M': two significant figures below 10, whole units above
    (the slides round some numbers down: their 150K is 150,528)."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            value = count / scale
            return f"{value:.2g}{suffix}" if value < 10 else f"{value:.0f}{suffix}"
    return str(count)


# --- one layer, whoever computed its shapes ------------------------------------------------

VIEW_LAYERS = ("Flatten", "Reshape", "Dropout", "Identity", "SpatialDropout2D")
CONV_LAYERS = ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose")
_LABELS = {"InputLayer": "INPUT", "LocalResponseNormalization": "NORM", "BatchNormalization": "BN",
           "Activation": "ACT", "ReLU": "RELU", "Concatenate": "CONCAT", "GlobalAveragePooling2D": "AVGPOOL",
           "ZeroPadding2D": "PAD", "ZeroPadShortcut": "ZEROPAD"}


def _row(name, kind, config, input_shapes, output_shape, params, itemsize) -> Row:
    """Account one layer from its class name, config, input and output shapes (no batch axis)."""
    output_shape = tuple(int(size) for size in output_shape)
    activations = 0 if kind in VIEW_LAYERS else math.prod(output_shape)
    macs, formula, label = 0, "", _LABELS.get(kind, kind.upper())
    if kind in CONV_LAYERS:
        kernel = tuple(int(size) for size in config["kernel_size"])
        in_channels = int(input_shapes[0][-1])
        multiplier = config.get("depth_multiplier", 1)
        groups = in_channels if kind == "DepthwiseConv2D" else config.get("groups", 1)
        filters = in_channels * multiplier if kind == "DepthwiseConv2D" else config["filters"]
        bias = f"+{filters}" if config.get("use_bias", True) else ""
        positions = math.prod(output_shape[:-1])
        if kind == "Conv2DTranspose":  # each input value scatters through a F·F·K window
            macs = math.prod(input_shapes[0]) * math.prod(kernel) * filters
        elif kind == "SeparableConv2D":  # depthwise F·F per channel and multiplier, then 1×1 to K
            macs = positions * in_channels * multiplier * (math.prod(kernel) + filters)
        else:
            macs = conv_macs(output_shape, kernel, in_channels, groups=groups)
        size = str(kernel[0]) if len(set(kernel)) == 1 else "x".join(map(str, kernel))
        label = f"CONV{size}-{filters}"
        shape = "*".join(map(str, kernel))
        formula = (f"{shape}*{in_channels}*{multiplier}+{in_channels * multiplier}*{filters}{bias}"
                   if kind == "SeparableConv2D" else f"({shape}*{in_channels // groups})*{filters}{bias}")
    elif kind == "Dense":
        inputs, units = int(input_shapes[0][-1]), config["units"]
        macs = math.prod(output_shape[:-1]) * inputs * units
        label = "FC"
        formula = f"{inputs}*{units}" + (f"+{units}" if config.get("use_bias", True) else "")
    elif kind in ("MaxPooling2D", "AveragePooling2D"):
        pool = _pair("pool_size", config["pool_size"])
        label = f"POOL{pool[0]}" if pool[0] == pool[1] else f"POOL{pool[0]}x{pool[1]}"
    elif "Conv" in kind:
        warnings.warn(f"account: no formula for the multiply-accumulates of layer {name!r} ({kind}); "
                      "they count as 0 in the totals", RuntimeWarning, stacklevel=3)
    return Row(name, kind, label, output_shape, int(params), activations, activations * itemsize, int(macs), formula)


def account(model, *, name: str | None = None) -> Table:
    """Per-layer accounting of a Keras model (functional or Sequential), or of a ``Traced`` one.

    Layers that are models themselves (a pretrained base inside a classifier) are expanded,
    their rows named ``outer/inner``. Memory uses each layer's output dtype (2 bytes a value
    under mixed precision).
    """
    if isinstance(model, Traced):
        rows = [_row(node.name, node.kind, node.config, node.input_shapes, node.shape, node.params, 4)
                for node in model.nodes]
        return Table(name or model.name, rows)
    if not (hasattr(model, "layers") and hasattr(model, "count_params")):
        raise TypeError(f"model must be a Keras model or a course_lib Traced model; got {type(model).__name__}")
    if not model.built or not model.layers:
        raise ValueError(f"model {model.name!r} has no layers or is not built: give it an Input "
                         "(keras.Input(shape)) or call it on data first, so every layer has a shape")
    return Table(name or model.name, list(_keras_rows(model, prefix="")))


def _keras_rows(model, prefix, nested=False):
    import keras

    layers = list(model.layers)
    if not nested and isinstance(model, keras.Sequential) and not any(
            isinstance(layer, keras.layers.InputLayer) for layer in layers):
        yield _keras_input_row(model, prefix)
    for layer in layers:
        if isinstance(layer, keras.Model):  # its input is a tensor already counted
            yield from _keras_rows(layer, prefix + layer.name + "/", nested=True)
            continue
        if nested and isinstance(layer, keras.layers.InputLayer):
            continue
        inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        if isinstance(layer, keras.layers.InputLayer):
            inputs = [layer.output]
        output = layer.output
        if isinstance(output, (list, tuple)):
            raise ValueError(f"layer {layer.name!r} has {len(output)} outputs; account handles one per layer")
        itemsize = _BYTES.get(str(output.dtype), 4)
        yield _row(prefix + layer.name, type(layer).__name__, layer.get_config(),
                   [tuple(tensor.shape[1:]) for tensor in inputs], output.shape[1:],
                   layer.count_params(), itemsize)


def _keras_input_row(model, prefix):
    tensor = model.inputs[0]
    return _row(prefix + "input", "InputLayer", {}, [tensor.shape[1:]], tensor.shape[1:], 0,
                _BYTES.get(str(tensor.dtype), 4))


# --- SHAPES: Keras-free stand-ins for the builders' layers -----------------------------------

@dataclass
class _Node:
    name: str
    kind: str
    config: dict
    input_shapes: list
    shape: tuple
    params: int


class _Symbol:
    """A traced tensor: its shape (no batch axis) and the graph it belongs to."""

    def __init__(self, shape, graph):
        self.shape, self.graph = tuple(shape), graph


class Traced:
    """A model built on ``SHAPES``: its layers in order, each with shapes and parameters."""

    def __init__(self, inputs, outputs, name="model"):
        symbols = [*(inputs if isinstance(inputs, (list, tuple)) else [inputs]),
                   *(outputs if isinstance(outputs, (list, tuple)) else [outputs])]
        if not all(isinstance(symbol, _Symbol) for symbol in symbols):
            raise TypeError("Traced models take SHAPES tensors (from SHAPES.Input and SHAPES layers)")
        self.name, self.nodes = name, symbols[0].graph
        self.output_shape = symbols[-1].shape

    def count_params(self) -> int:
        return sum(node.params for node in self.nodes)


class _Layer:
    """Base of the stand-ins: record the call, compute shape and params from the formulas."""
    kind = ""

    def __init__(self, *ignored, name=None, **ignored_config):  # arguments that change no shape or count
        self.name = name

    def __call__(self, inputs):
        symbols = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        graph = symbols[0].graph
        shapes = [symbol.shape for symbol in symbols]
        shape, params, config = self.compute(shapes)
        kind = self.kind or type(self).__name__
        name = self.name or f"{kind.lower()}_{sum(node.kind == kind for node in graph)}"
        graph.append(_Node(name, kind, config, shapes, tuple(shape), params))
        return _Symbol(shape, graph)

    def compute(self, shapes):  # -> (output shape, params, config for _row)
        return shapes[0], 0, {}


def _spatial(shape, window, strides, padding, name):
    (height, width, channels), (wh, ww) = shape, window
    sh, sw = strides
    try:
        return conv_output_size(height, wh, sh, padding), conv_output_size(width, ww, sw, padding)
    except ValueError as error:
        raise ValueError(f"layer {name}: {error} (input {height}x{width}x{channels})") from None


class _Conv2D(_Layer):
    kind = "Conv2D"

    def __init__(self, filters, kernel_size, strides=1, padding="valid", use_bias=True, groups=1, **rest):
        super().__init__(**{key: value for key, value in rest.items() if key == "name"})
        self.filters, self.kernel = filters, _pair("kernel_size", kernel_size)
        self.strides, self.padding = _pair("strides", strides), padding
        self.use_bias, self.groups = use_bias, groups

    def compute(self, shapes):
        height, width = _spatial(shapes[0], self.kernel, self.strides, self.padding, self.name)
        params = conv_params(self.kernel, shapes[0][-1], self.filters, bias=self.use_bias, groups=self.groups)
        config = {"kernel_size": self.kernel, "filters": self.filters, "use_bias": self.use_bias, "groups": self.groups}
        return (height, width, self.filters), params, config


class _Pooling2D(_Layer):
    def __init__(self, pool_size=2, strides=None, padding="valid", name=None):
        super().__init__(name=name)
        self.pool = _pair("pool_size", pool_size)
        self.strides, self.padding = _pair("strides", strides or pool_size), padding

    def compute(self, shapes):
        height, width = _spatial(shapes[0], self.pool, self.strides, self.padding, self.name)
        return (height, width, shapes[0][-1]), 0, {"pool_size": self.pool}


class _MaxPooling2D(_Pooling2D):
    kind = "MaxPooling2D"


class _AveragePooling2D(_Pooling2D):
    kind = "AveragePooling2D"


class _Dense(_Layer):
    kind = "Dense"

    def __init__(self, units, use_bias=True, name=None, **ignored):
        super().__init__(name=name)
        self.units, self.use_bias = units, use_bias

    def compute(self, shapes):
        if len(shapes[0]) != 1:
            raise ValueError(f"layer {self.name}: the course's builders flatten before Dense; got shape {shapes[0]}")
        params = dense_params(shapes[0][0], self.units, bias=self.use_bias)
        return (self.units,), params, {"units": self.units, "use_bias": self.use_bias}


class _BatchNormalization(_Layer):
    kind = "BatchNormalization"

    def compute(self, shapes):  # γ and β (trained), moving mean and variance (tracked)
        return shapes[0], 4 * shapes[0][-1], {}


class _Flatten(_Layer):
    kind = "Flatten"

    def compute(self, shapes):
        return (math.prod(shapes[0]),), 0, {}


class _GlobalAveragePooling2D(_Layer):
    kind = "GlobalAveragePooling2D"

    def compute(self, shapes):
        return (shapes[0][-1],), 0, {}


class _ZeroPadding2D(_Layer):
    kind = "ZeroPadding2D"

    def __init__(self, padding=1, name=None):
        super().__init__(name=name)
        self.padding = padding

    def compute(self, shapes):
        height, width, channels = shapes[0]
        return (height + 2 * self.padding, width + 2 * self.padding, channels), 0, {}


class _Add(_Layer):
    kind = "Add"

    def compute(self, shapes):
        if len(set(shapes)) != 1:
            raise ValueError(f"layer {self.name}: Add needs inputs of one shape; got {shapes}")
        return shapes[0], 0, {}


class _Concatenate(_Layer):
    kind = "Concatenate"

    def compute(self, shapes):
        if len({shape[:-1] for shape in shapes}) != 1:
            raise ValueError(f"layer {self.name}: Concatenate needs equal height and width; got {shapes}")
        return (*shapes[0][:-1], sum(shape[-1] for shape in shapes)), 0, {}


class _ZeroPadShortcut(_Layer):
    kind = "ZeroPadShortcut"

    def __init__(self, filters, stride=1, name=None):
        super().__init__(name=name)
        self.filters, self.stride = filters, stride

    def compute(self, shapes):
        height, width, _ = shapes[0]
        return (-(-height // self.stride), -(-width // self.stride), self.filters), 0, {}


def _input(shape, name="input"):
    graph = []
    graph.append(_Node(name, "InputLayer", {}, [tuple(shape)], tuple(shape), 0))
    return _Symbol(shape, graph)


def _simple(kind):
    return type(f"_{kind}", (_Layer,), {"kind": kind})


SHAPES = SimpleNamespace(
    Input=lambda shape, name="input": _input(shape, name), Model=Traced,
    Conv2D=_Conv2D, MaxPooling2D=_MaxPooling2D, AveragePooling2D=_AveragePooling2D,
    Dense=_Dense, BatchNormalization=_BatchNormalization, Flatten=_Flatten,
    GlobalAveragePooling2D=_GlobalAveragePooling2D, ZeroPadding2D=_ZeroPadding2D,
    Add=_Add, Concatenate=_Concatenate, ZeroPadShortcut=_ZeroPadShortcut,
    Activation=_simple("Activation"), ReLU=_simple("ReLU"), Dropout=_simple("Dropout"),
    LocalResponseNormalization=_simple("LocalResponseNormalization"),
)
"""The layers ``course_lib.models`` builds with, as shape-and-parameter calculators."""

