"""The lecture's layer arithmetic, and the accounting table of Keras models."""
import json

import keras
import pytest

from course_lib import accounting as A
from course_lib import models


# --- the formulas ---------------------------------------------------------------------------

def test_conv_output_size_is_the_slide_formula():
    assert A.conv_output_size(227, 11, 4, 0) == 55          # AlexNet conv1
    assert A.conv_output_size(55, 3, 2) == 27               # pool1
    assert A.conv_output_size(27, 5, 1, 2) == 27            # conv2, pad 2
    assert A.conv_output_size(7, 3, 2, 1) == 4              # (7 − 3 + 2)/2 + 1
    assert A.conv_output_size(7, 3, 3) == 2                 # does not fit evenly: floor, as Keras
    assert A.conv_output_size(110, 3, 2, "same") == 55      # Keras "same": ceil(N / S)
    with pytest.raises(ValueError, match="window of 11 does not fit an input of size 8"):
        A.conv_output_size(8, 11, 4)
    with pytest.raises(ValueError, match="stride must be in"):
        A.conv_output_size(8, 3, 0)
    with pytest.raises(ValueError, match="padding must be a number of zeros, 'valid' or 'same'.*got 'SAME'"):
        A.conv_output_size(8, 3, 1, "SAME")


def test_conv_and_dense_params():
    assert A.conv_params(11, 3, 96, bias=False) == 34_848   # the slide's ~35K
    assert A.conv_params(11, 3, 96) == 34_944
    assert A.conv_params((3, 5), 8, 4) == 3 * 5 * 8 * 4 + 4
    assert A.conv_params(3, 8, 8, groups=8, bias=False) == 72
    assert A.conv_macs((55, 55, 96), 11, 3) == 55 * 55 * 96 * 11 * 11 * 3   # AlexNet conv1: 105M
    assert A.conv_macs((96, 6), (5,), 4) == 96 * 6 * 5 * 4 and A.conv_macs((4, 4, 8), 3, 8, groups=8) == 4 * 4 * 8 * 9
    assert A.dense_params(7 * 7 * 512, 4096, bias=False) == 102_760_448
    with pytest.raises(ValueError, match="groups"):
        A.conv_params(3, 6, 4, groups=4)
    layer = keras.layers.Conv2D(96, 11, strides=4)
    layer.build((None, 227, 227, 3))
    assert layer.count_params() == A.conv_params(11, 3, 96)


def test_receptive_field_of_three_3x3_is_7():
    rows = A.receptive_field([(3, 1)] * 3)
    assert [row.size for row in rows] == [3, 5, 7]
    assert A.receptive_field([(7, 1)])[-1].size == 7
    strided = A.receptive_field([(3, 2), (3, 1), (2, 2), (3, 1)])
    assert [row.size for row in strided] == [3, 7, 9, 17] and strided[-1].jump == 4


def test_receptive_field_reads_keras_layers():
    stack = [keras.layers.Conv2D(4, 3), keras.layers.MaxPooling2D(2),
             keras.layers.Conv2D(4, 3, dilation_rate=2), keras.layers.ReLU()]
    rows = A.receptive_field(stack)
    assert [(row.kernel, row.stride, row.size) for row in rows] == [(3, 1, 3), (2, 2, 4), (5, 1, 12), (1, 1, 12)]
    with pytest.raises(ValueError, match="at least one"):
        A.receptive_field([])
    with pytest.raises(ValueError, match=r"layers\[1\] \(gap\) pools globally"):
        A.receptive_field([keras.layers.Conv2D(1, 3), keras.layers.GlobalAveragePooling2D(name="gap")])
    with pytest.raises(ValueError, match=r"layers\[1\] must be a \(kernel, stride\) pair"):
        A.receptive_field([(3, 1), (3,)])
    with pytest.raises(TypeError, match=r"layers\[0\]"):
        A.receptive_field(["conv"])
    with pytest.raises(TypeError, match=r"layers\[0\] must be a \(kernel, stride\) pair or a Keras layer"):
        A.receptive_field(models.lenet5(nn=A.SHAPES).nodes)


# --- tables of Keras models ------------------------------------------------------------------

def test_alexnet_table_reproduces_the_slide():
    table = A.account(models.alexnet(lrn=True))
    conv1, pool1 = table.row("conv1"), table.row("pool1")
    assert conv1.output_shape == (55, 55, 96) and conv1.params == 34_944
    assert conv1.formula == "(11*11*3)*96+96" and conv1.label == "CONV11-96"
    assert conv1.macs == 55 * 55 * 96 * 11 * 11 * 3
    assert pool1.output_shape == (27, 27, 96) and pool1.params == 0 and pool1.macs == 0
    assert table.row("norm1").output_shape == (27, 27, 96)
    assert [row.output_shape for row in table.where("MaxPooling2D")] == [(27, 27, 96), (13, 13, 256), (6, 6, 256)]
    assert table.params == 62_378_344
    with pytest.raises(KeyError, match="no layer named 'conv9' in alexnet"):
        table.row("conv9")


def test_vgg16_table_and_the_slide_erratum():
    table = A.account(models.vgg(16, nn=A.SHAPES))
    assert table.params == 138_357_544
    # The slide's rows (input, 13 convs, 5 pools, 3 FC) sum to 15.2M values, not its "24M".
    assert table.activations == 15_237_608
    assert table.memory_bytes == 4 * 15_237_608          # ≈ 61 MB, not 96 MB
    biggest_memory = max(table.rows, key=lambda row: row.activations)
    biggest_params = max(table.rows, key=lambda row: row.params)
    assert biggest_memory.name.startswith("block1_") and biggest_params.name == "fc6"
    assert table.row("flatten").activations == 0 and table.row("fc6_dropout").activations == 0
    assert round(table.macs / 1e9, 1) == 15.5             # torchvision's "15.5 GFLOPs" are MACs
    text = table.to_text()
    assert "CONV3-64" in text and "224*224*3=151K" in text and "(3*3*3)*64+64 = 1,792" in text
    assert "flatten" not in text and "flatten" in table.to_text(all_layers=True)
    assert "TOTAL params: 138,357,544" in text and "15,237,608 values (15.2M)" in text
    data = json.loads(table.to_json())
    assert data["totals"]["params"] == 138_357_544 and data["rows"][1]["output_shape"] == [224, 224, 64]
    assert data["rows"][1]["flops"] == 2 * data["rows"][1]["macs"]


def test_memory_follows_the_layer_dtype():
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Conv2D(4, 3, dtype="mixed_float16", name="half")(inputs)
    table = A.account(keras.Model(inputs, outputs))
    assert table.row("half").memory_bytes == 6 * 6 * 4 * 2
    assert table.row(table.rows[0].name).memory_bytes == 8 * 8 * 3 * 4


def test_sequential_and_nested_models():
    base = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Conv2D(2, 3, name="c")], name="base")
    inputs = keras.Input((12, 12, 1))
    outputs = keras.layers.Dense(3, name="head")(keras.layers.Flatten()(base(inputs)))
    table = A.account(keras.Model(inputs, outputs))
    names = [row.name for row in table.rows]
    assert "base/c" in names and table.row("base/c").output_shape == (10, 10, 2)
    assert sum(row.kind == "InputLayer" for row in table.rows) == 1
    assert table.params == 2 * 9 + 2 + 200 * 3 + 3


def test_every_kind_of_convolution_is_counted():
    inputs = keras.Input((10, 10, 4))
    separable = keras.layers.SeparableConv2D(8, 3, depth_multiplier=2, name="separable")(inputs)
    depthwise = keras.layers.DepthwiseConv2D(3, name="depthwise")(inputs)
    line = keras.layers.Conv1D(6, 5, name="line")(keras.layers.Reshape((100, 4))(inputs))
    volume = keras.layers.Conv3D(2, (3, 3, 2), name="volume")(keras.layers.Reshape((10, 10, 4, 1))(inputs))
    table = A.account(keras.Model(inputs, [separable, depthwise, line, volume]))
    assert table.row("separable").macs == 8 * 8 * (3 * 3 * 4 * 2 + 4 * 2 * 8)   # depthwise, then 1×1
    assert table.row("depthwise").macs == 8 * 8 * 4 * 3 * 3
    assert table.row("line").macs == 96 * 6 * 5 * 4
    assert table.row("volume").macs == 8 * 8 * 3 * 2 * (3 * 3 * 2 * 1)
    for row in table.rows:                   # the formulas give Keras's own parameter counts
        if row.formula:
            assert eval(row.formula) == row.params, row.name


def test_a_convolution_without_a_formula_is_not_counted_silently():
    inputs = keras.Input((4, 6, 6, 2))
    outputs = keras.layers.ConvLSTM2D(3, 3, name="recurrent")(inputs)
    with pytest.warns(RuntimeWarning, match="no formula for the multiply-accumulates of layer 'recurrent'"):
        A.account(keras.Model(inputs, outputs))


def test_account_rejects_what_it_cannot_read():
    with pytest.raises(TypeError, match="model must be a Keras model"):
        A.account("vgg16")
    with pytest.raises(ValueError, match="not built"):
        A.account(keras.Sequential([keras.layers.Dense(2)]))


# --- SHAPES, the Keras-free twin ---------------------------------------------------------------

def _comparable(table):
    return {row.name: (row.kind, row.label, row.output_shape, row.params, row.activations, row.macs,
                       row.formula) for row in table.rows}


# Allocating the big ones takes seconds each (a minute on JAX): the small ones run on both backends.
FAST = {"lenet5", "resnet20", "plain20"}


@pytest.mark.parametrize("name", [pytest.param(name, marks=[] if name in FAST else [pytest.mark.slow])
                                  for name in models.ARCHITECTURES])
def test_shapes_twin_equals_the_keras_model(name):
    traced = A.account(models.build(name, nn=A.SHAPES))
    model = models.build(name)
    assert traced.params == model.count_params()
    assert _comparable(traced) == _comparable(A.account(model))


def test_shapes_errors_name_the_layer():
    inputs = A.SHAPES.Input((8, 8, 3))
    with pytest.raises(ValueError, match="Add needs inputs of one shape"):
        A.SHAPES.Add()([inputs, A.SHAPES.Conv2D(4, 3)(inputs)])
    with pytest.raises(ValueError, match=r"layer pool2: a window of 3 does not fit .* \(input 2x2x256\)"):
        models.alexnet(input_shape=(32, 32, 3))
    with pytest.raises(TypeError, match="SHAPES tensors"):
        A.Traced(keras.Input((2,)), keras.Input((2,)))
