"""The model zoo: networks trained on one dataset, ready to transfer to another.

"Deep learning frameworks provide a Model Zoo of pretrained models so you don't need to train
your own" (the lecture). This one holds two kinds:

* ``digits_cnn``: the course's own small pretrained network. It is a BatchNorm CNN trained on the
  digits **0-4** of the embedded pretraining set (random affine distortions of the scikit-learn
  digits' training split, ``data.load("digits_pretrain")``), so the digits **5-9** are never seen
  and stay free to be a transfer target. It needs no network: its weights are built by code in
  this module on first use (15-30 s on a 2-core CPU), with a progress bar, and cached under
  ``data.cache_dir()``. ``python -m course_lib.zoo`` builds them ahead of time.
* ``mobilenet_v2``, ``resnet50``, ``vgg16``: ``keras.applications`` networks with ImageNet
  weights, downloaded once by Keras's own loader into its cache (``~/.keras/models``). This is the
  ``full`` profile's road; with no network and no cached file it fails with a message saying
  what is missing and how to get it.

    from course_lib import zoo
    net = zoo.pretrained("digits_cnn")           # built and cached on first use
    net.get_layer("pool2").output                # the stages a layer-wise probe reads
    base = zoo.pretrained("mobilenet_v2", input_shape=(96, 96, 3))   # needs the weights file
    x = zoo.preprocess("mobilenet_v2", images_in_0_1)

The cache file's name carries the recipe's version, a hash of every number of the recipe and the
Keras backend, so a changed recipe never reuses an old file and each backend uses the weights it
trained itself; a file that cannot be read is reported, never overwritten.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import data
from .validation import check_choice, check_number

RECIPE_VERSION = 2  # bump when the training code below changes what it produces
SOURCE_CLASSES = (0, 1, 2, 3, 4)  # the digits the course's network is pretrained on
TARGET_CLASSES = (5, 6, 7, 8, 9)  # never seen in pretraining: the "similar" transfer target
STAGES = ("pool1", "pool2", "pool3")  # each stage's output, input side first: what a layer-wise probe reads

# name -> (keras.applications constructor, its module with preprocess_input)
APPLICATIONS = {
    "mobilenet_v2": ("MobileNetV2", "mobilenet_v2"),
    "resnet50": ("ResNet50", "resnet50"),
    "vgg16": ("VGG16", "vgg16"),
}
MODELS = ("digits_cnn", *APPLICATIONS)


class ZooCacheError(RuntimeError):
    """A cached weights file exists but cannot be used."""


class ZooDownloadError(RuntimeError):
    """Pretrained weights are neither cached nor downloadable (no network)."""


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the course network's weights; its ``key`` names the cache file."""

    classes: tuple = SOURCE_CLASSES
    image_size: int = 16
    widths: tuple = (16, 32, 64)
    dropout: float = 0.5
    pretrain_copies: int = 10
    epochs: int = 3
    batch_size: int = 64
    learning_rate: float = 2e-3
    seed: int = 0

    def __post_init__(self):
        if not self.classes or len(set(self.classes)) != len(self.classes) or not all(
                isinstance(c, (int, np.integer)) and 0 <= c <= 9 for c in self.classes):
            raise ValueError(f"classes must be distinct digits 0-9; got {self.classes!r}")
        check_number("image_size", self.image_size, low=8, integer=True)
        for i, width in enumerate(self.widths):
            check_number(f"widths[{i}]", width, low=1, integer=True)
        if len(self.widths) != 3:
            raise ValueError(f"widths must give the filters of the 3 stages; got {self.widths!r}")
        check_number("dropout", self.dropout, low=0.0, high=1.0, high_inclusive=False)
        check_number("pretrain_copies", self.pretrain_copies, low=1, integer=True)
        check_number("epochs", self.epochs, low=1, integer=True)
        check_number("batch_size", self.batch_size, low=1, integer=True)
        check_number("learning_rate", self.learning_rate, low=0.0, low_inclusive=False)
        check_number("seed", self.seed, low=0, integer=True)

    @property
    def key(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True, default=_plain)
        return f"digits_cnn-v{RECIPE_VERSION}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def _plain(value):
    """JSON for what ``json`` cannot write itself: NumPy numbers as Python numbers, tuples as lists."""
    return value.item() if isinstance(value, np.generic) else list(value)


DEFAULT_RECIPE = Recipe()


# --- the course's network --------------------------------------------------------------------

def digits_cnn(*, input_shape=(16, 16, 1), classes: int = 5, widths=(16, 32, 64), dropout: float = 0.5,
               name: str = "digits_cnn"):
    """The course network's architecture, untrained (training from scratch starts here).

    Three stages of conv 3x3 → BatchNorm → ReLU → 2x2 max pooling (the ReLUs are named
    ``stage1``..``stage3``, the poolings ``pool1``..``pool3``), then the flattened last stage
    (``features``, the "top layer" a linear classifier reads), dropout, and the softmax classifier
    (``predictions``):

        16x16x1 → pool1 8x8x16 → pool2 4x4x32 → pool3 2x2x64 → features 256 → classes

    BatchNorm's moving statistics use momentum 0.8 (Keras's default 0.99 needs several hundred
    steps to forget their initial values, more than the short runs of the course's notebooks).
    Its weights are float32 whatever the global precision policy.
    """
    import keras
    from keras import layers

    check_number("classes", classes, low=2, integer=True)
    check_number("dropout", dropout, low=0.0, high=1.0, high_inclusive=False)
    inputs = keras.Input(tuple(input_shape), name="image")
    x = inputs
    for i, filters in enumerate(widths, start=1):
        check_number(f"widths[{i - 1}]", filters, low=1, integer=True)
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}", dtype="float32")(x)
        x = layers.BatchNormalization(momentum=0.8, name=f"bn{i}", dtype="float32")(x)
        x = layers.Activation("relu", name=f"stage{i}", dtype="float32")(x)
        x = layers.MaxPooling2D(name=f"pool{i}", dtype="float32")(x)
    x = layers.Flatten(name="features", dtype="float32")(x)
    x = layers.Dropout(dropout, name="dropout", dtype="float32")(x)
    outputs = layers.Dense(classes, activation="softmax", name="predictions", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def base_of(model):
    """The network without its classifier: from the input to ``features`` (what transfer reuses)."""
    import keras

    return keras.Model(model.inputs[0], model.get_layer("features").output, name=f"{model.name}_base")


def weights_path(recipe: Recipe = DEFAULT_RECIPE) -> Path:
    """Where the weights of ``recipe`` are cached: ``data.cache_dir()/<recipe key>-<backend>.npz``.
    Each backend trains its own: the same recipe gives slightly different weights on TensorFlow
    and on JAX, and a shared file would make a notebook's numbers depend on which backend
    happened to build it first."""
    import keras

    return data.cache_dir() / f"{recipe.key}-{keras.backend.backend()}.npz"


def pretraining_data(recipe: Recipe = DEFAULT_RECIPE):
    """The pretraining ``Split``: distorted training digits of ``recipe.classes`` (classes renumbered
    0..k-1), with the undistorted validation and test digits of the same classes."""
    return data.load("digits_pretrain", classes=list(recipe.classes), image_size=recipe.image_size,
                     pretrain_copies=recipe.pretrain_copies, seed=0)


def build_weights(recipe: Recipe = DEFAULT_RECIPE, *, progress: bool = True) -> list[np.ndarray]:
    """Train ``digits_cnn`` by ``recipe`` from a fixed seed and return its weights (not cached).

    Adam at ``recipe.learning_rate``, cosine decay to zero over ``recipe.epochs`` epochs, on the
    pretraining set in a seeded order. Deterministic for a given backend and machine.
    """
    import keras

    from .runtime import seeded

    split = pretraining_data(recipe)
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        with seeded(recipe.seed):  # the caller's random state is left as it was
            model = digits_cnn(input_shape=split.image_shape, classes=len(recipe.classes),
                               widths=recipe.widths, dropout=recipe.dropout)
            steps = recipe.epochs * (len(split.x_train) // recipe.batch_size)
            schedule = keras.optimizers.schedules.CosineDecay(recipe.learning_rate, steps)
            model.compile(keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"],
                          jit_compile=keras.backend.backend() != "tensorflow")  # on TensorFlow/CPU, XLA
            # would take longer to compile than this takes to train; JAX always compiles
            rng = np.random.default_rng(recipe.seed)
            callbacks = [_epoch_bar(recipe.epochs)] if progress else []
            for _ in range(recipe.epochs):  # one seeded order per epoch, whole batches only
                order = rng.permutation(len(split.x_train))[:steps // recipe.epochs * recipe.batch_size]
                model.fit(split.x_train[order], split.y_train[order], batch_size=recipe.batch_size, epochs=1,
                          shuffle=False, verbose=0, callbacks=callbacks)
            for callback in callbacks:
                callback.close()
    finally:
        keras.config.set_dtype_policy(policy)
    return [np.asarray(w) for w in model.get_weights()]


def _epoch_bar(epochs: int):
    """A tqdm progress bar over the pretraining epochs, as a Keras callback."""
    import keras
    from tqdm.auto import tqdm

    class EpochBar(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.bar = tqdm(total=epochs, desc="pretraining digits_cnn on digits 0-4", unit="epoch")

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            self.bar.set_postfix(loss=f"{logs.get('loss', float('nan')):.3f}",
                                 accuracy=f"{logs.get('accuracy', float('nan')):.3f}")
            self.bar.update(1)

        def close(self):
            self.bar.close()

    return EpochBar()


def digits_net(recipe: Recipe = DEFAULT_RECIPE, *, build: bool = True, progress: bool = True):
    """The pretrained course network (a new ``keras.Model`` on every call, weights from the cache).

    build     if the cache has no file for ``recipe``: True builds and caches it, False raises.
    progress  show a progress bar while building.
    """
    path = weights_path(recipe)
    if path.exists():
        weights = _read_weights(path)
    elif build:
        weights = build_weights(recipe, progress=progress)
        data.write_cache_file(path, count=len(weights), recipe=json.dumps(asdict(recipe), default=list),
                              **{f"w{i}": w for i, w in enumerate(weights)})
    else:
        raise FileNotFoundError(f"no cached weights for {recipe.key} at {path}; run "
                                f"`python -m course_lib.zoo` (or call digits_net()) to build them")
    model = digits_cnn(input_shape=(recipe.image_size, recipe.image_size, 1), classes=len(recipe.classes),
                       widths=recipe.widths, dropout=recipe.dropout)
    expected = [tuple(w.shape) for w in model.weights]
    if [tuple(w.shape) for w in weights] != expected:
        raise ZooCacheError(f"the cached weights {path} do not fit the network ({len(weights)} arrays, "
                            f"expected {len(expected)} of shapes {expected}). Delete that file and call "
                            f"again (or run `python -m course_lib.zoo`) to rebuild it.")
    model.set_weights(weights)
    return model


def _read_weights(path: Path) -> list[np.ndarray]:
    try:
        with np.load(path) as stored:
            count = int(stored["count"])
            return [stored[f"w{i}"] for i in range(count)]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise ZooCacheError(
            f"the cached weights {path} are unreadable ({error}). Delete that file and call again "
            f"(or run `python -m course_lib.zoo`) to rebuild it (under a minute).") from error


# --- keras.applications ----------------------------------------------------------------------

def pretrained(name: str = "digits_cnn", *, input_shape=None, include_top: bool = False, pooling=None,
               weights: str | None = "imagenet", **kwargs):
    """A pretrained network from the zoo, by name (one of ``MODELS``).

    ``digits_cnn``: the course network (``digits_net``; ``recipe=`` and ``progress=`` pass through).
    Others: the ``keras.applications`` network with ImageNet ``weights`` (``None`` for random ones),
    ``include_top`` and ``pooling`` as Keras takes them; ``input_shape`` defaults to (224, 224, 3)
    without the top. Images go in through ``preprocess(name, images)``.
    """
    check_choice("name", name, MODELS)
    if name == "digits_cnn":
        return digits_net(**kwargs)
    check_choice("weights", weights, ("imagenet", None))
    check_choice("pooling", pooling, (None, "avg", "max"))
    import keras

    constructor = getattr(keras.applications, APPLICATIONS[name][0])
    if weights == "imagenet" and data.stand_in_scale() is not None:
        print(f"{name}: random weights instead of ImageNet's ({data.STAND_IN_VARIABLE} is set): "
              f"times are real, accuracies are not")
        weights = None
    if input_shape is None and not include_top:
        input_shape = (224, 224, 3)
    try:
        return constructor(include_top=include_top, weights=weights, input_shape=input_shape,
                           pooling=pooling, **kwargs)
    except Exception as error:  # Keras's downloader raises a bare Exception on a failed fetch
        if not _is_download_failure(error):
            raise
        raise ZooDownloadError(
            f"could not download the ImageNet weights of {name} ({error}). Keras downloads them "
            f"once into {applications_cache()}; connect to the network and call again, or copy the "
            f"weights file (its name and address are in the message above) into that folder. "
            f"Offline, pretrained('digits_cnn') builds the course's own pretrained network.") from error


def _is_download_failure(error: BaseException) -> bool:
    import urllib.error

    return (isinstance(error, (urllib.error.URLError, ConnectionError, TimeoutError))
            or str(error).startswith("URL fetch failure"))


def applications_cache() -> Path:
    """Where Keras keeps the keras.applications weights: ``$KERAS_HOME/models``."""
    from keras.src.backend.config import keras_home

    return Path(keras_home()) / "models"


def preprocess(name: str, images) -> np.ndarray:
    """Images in [0, 1] (N, H, W, 3), as the network ``name`` expects them.

    ``digits_cnn`` takes them as they are; each ImageNet network has its own convention
    (MobileNetV2 scales to [-1, 1], ResNet50 and VGG16 subtract ImageNet's mean BGR pixel),
    applied by its ``preprocess_input``.
    """
    check_choice("name", name, MODELS)
    images = np.asarray(images, np.float32)
    if name == "digits_cnn":
        return images
    import importlib

    module = importlib.import_module(f"keras.applications.{APPLICATIONS[name][1]}")
    return np.asarray(module.preprocess_input(images * 255.0))


# --- the script ------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.zoo",
        description="Build and cache the course's pretrained network (digits_cnn: a small BatchNorm "
                    "CNN trained on the digits 0-4 of the embedded pretraining set), so notebooks "
                    "find it ready. Offline, deterministic, 15-30 s on a 2-core CPU.")
    parser.add_argument("--force", action="store_true",
                        help="rebuild even if a cached file exists (replaces it)")
    parser.add_argument("--where", action="store_true", help="print the cache file's path and exit")
    args = parser.parse_args(argv)
    path = weights_path()
    if args.where:
        print(path)
        return 0
    if path.exists() and not args.force:
        _read_weights(path)  # a corrupt file is reported here, not overwritten
        print(f"already built: {path} (use --force to rebuild)")
    else:
        if path.exists():
            path.unlink()
        net = digits_net()
        split = pretraining_data()
        from .training import accuracy

        print(f"built {path}; validation accuracy on the digits {list(DEFAULT_RECIPE.classes)}: "
              f"{accuracy(net, split.x_val, split.y_val):.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
