"""The case-study builders: the papers' counts, keras.applications' counts, and the course's layers."""
import keras
import numpy as np
import pytest
from keras import ops

from course_lib import accounting, models
from course_lib.models.layers import LocalResponseNormalization, ZeroPadShortcut


def _trainable(model):
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)


@pytest.mark.slow
@pytest.mark.parametrize("name, application", [("vgg16", "VGG16"), ("vgg19", "VGG19"), ("resnet50", "ResNet50"),
                                               ("resnet101", "ResNet101"), ("resnet152", "ResNet152")])
def test_params_equal_keras_applications(name, application):
    reference = getattr(keras.applications, application)(weights=None).count_params()
    assert models.build(name).count_params() == reference
    assert {"vgg16": 138_357_544, "vgg19": 143_667_240, "resnet50": 25_636_712}.get(name, reference) == reference


def test_famous_counts_without_allocating():
    traced = {name: models.build(name, nn=accounting.SHAPES).count_params()
              for name in ("lenet5", "alexnet", "vgg16", "vgg19", "resnet50")}
    assert traced == {"lenet5": 61_706, "alexnet": 62_378_344, "vgg16": 138_357_544,
                      "vgg19": 143_667_240, "resnet50": 25_636_712}


@pytest.mark.slow
@pytest.mark.parametrize("depth, torchvision", [(18, 11_689_512), (34, 21_797_672), (50, 25_557_032)])
def test_bias_free_resnets_have_torchvisions_trainable_counts(depth, torchvision):
    assert _trainable(models.resnet(depth, use_bias=False)) == torchvision


def test_cifar_resnet_and_its_plain_twin():
    resnet, plain = models.cifar_resnet(20), models.cifar_resnet(20, residual=False)
    assert _trainable(resnet) == _trainable(plain) == 269_722          # the paper's "0.27M"
    kinds = lambda model: [type(layer).__name__ for layer in model.layers]
    assert kinds(resnet).count("Add") == 9 and "Add" not in kinds(plain)
    assert kinds(resnet).count("ZeroPadShortcut") == 2                  # option A at both stage changes
    assert sum(kind == "Conv2D" for kind in kinds(resnet)) == sum(kind == "Conv2D" for kind in kinds(plain)) == 19
    assert resnet.get_layer("conv4_block1_out").output.shape[1:] == (8, 8, 64)
    projection = models.cifar_resnet(20, shortcut="projection")
    assert sum(isinstance(layer, keras.layers.Conv2D) for layer in projection.layers) == 21
    with pytest.raises(ValueError, match="depth must be 6n \\+ 2"):
        models.cifar_resnet(21)


def test_small_variants_train_a_step():
    x = np.random.default_rng(0).normal(size=(4, 16, 16, 1)).astype("float32")
    y = np.arange(4) % 3
    for model in (models.cifar_resnet(8, width=0.5, input_shape=(16, 16, 1), classes=3),
                  models.lenet5(input_shape=(16, 16, 1), classes=3, pooling="max")):
        model.compile("sgd", "sparse_categorical_crossentropy")
        loss = model.train_on_batch(x, y)
        assert np.isfinite(loss) and model.output_shape == (None, 3)


def test_builders_check_their_arguments():
    with pytest.raises(ValueError, match="depth must be one of 11, 13, 16, 19"):
        models.vgg(17)
    with pytest.raises(ValueError, match="input_shape must be \\(height, width, channels\\)"):
        models.lenet5(input_shape=(32, 32))
    with pytest.raises(ValueError, match="width must be in \\(0"):
        models.resnet(18, width=0)
    with pytest.raises(ValueError, match="unknown architecture 'resnet19'"):
        models.build("resnet19")
    assert models.build("ResNet-20", nn=accounting.SHAPES).name == "resnet20"


def test_inception_module_bottleneck_saves_operations():
    """cs231n's example: 28×28×256 in; 1×1 128, 3×3 192, 5×5 96; reducers and projection 64."""
    def module(bottleneck):
        inputs = accounting.SHAPES.Input((28, 28, 256))
        outputs = models.inception_module(inputs, (128, 64, 192, 64, 96, 64), bottleneck=bottleneck,
                                          nn=accounting.SHAPES)
        return accounting.account(accounting.SHAPES.Model(inputs, outputs))

    naive, bottleneck = module(False), module(True)
    assert naive.rows[-1].output_shape == (28, 28, 672) and bottleneck.rows[-1].output_shape == (28, 28, 480)
    assert naive.macs == 854_196_224            # cs231n's "854M ops"
    assert bottleneck.macs == 271_351_808       # cs231n says 358M, but its six listed terms sum to 271M
    assert bottleneck.params < naive.params / 2
    with pytest.raises(ValueError, match="filters must be"):
        models.inception_module(None, (1, 2, 3))


def test_local_response_normalization_is_the_papers_formula():
    x = np.random.default_rng(1).normal(size=(2, 3, 3, 7)).astype("float32") * 5
    layer = LocalResponseNormalization(depth_radius=2, bias=2.0, alpha=1e-2, beta=0.75)
    squared = np.pad(x ** 2, [(0, 0)] * 3 + [(2, 2)])
    energy = sum(squared[..., offset:offset + 7] for offset in range(5))
    expected = x / (2.0 + 1e-2 * energy) ** 0.75
    assert np.allclose(ops.convert_to_numpy(layer(x)), expected, rtol=1e-5)
    assert layer.count_params() == 0
    assert LocalResponseNormalization.from_config(layer.get_config()).alpha == 1e-2
    with pytest.raises(ValueError, match="beta must be in"):
        LocalResponseNormalization(beta=-1)


def test_zero_pad_shortcut_subsamples_and_pads_channels():
    x = np.arange(2 * 4 * 4 * 2, dtype="float32").reshape(2, 4, 4, 2)
    y = ops.convert_to_numpy(ZeroPadShortcut(6, stride=2)(x))
    assert y.shape == (2, 2, 2, 6)
    assert np.array_equal(y[..., 2:4], x[:, ::2, ::2, :])
    assert not y[..., :2].any() and not y[..., 4:].any()
    with pytest.raises(ValueError, match="pads channels up to filters=1"):
        ZeroPadShortcut(1)(x)
