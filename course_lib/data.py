"""Datasets, splits, preprocessing and augmentation, in NumPy.

The embedded default is scikit-learn's handwritten digits (1,797 8x8 images shipped
with scikit-learn, so no network is needed). The real datasets (MNIST, Fashion-MNIST,
CIFAR-10) load through Keras's own loaders and cache behind the same ``load`` call.

Every array this module returns is float32 in [0, 1] with shape (N, H, W, C).
Input pipelines for training live in ``course_lib.pipelines``.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .validation import check_array, check_choice, check_labels, check_number

DATASETS = ("digits", "digits_pretrain", "mnist", "fashion_mnist", "cifar10")
EMBEDDED = ("digits", "digits_pretrain")
CACHE_VARIABLE = "COURSE_CACHE"
STAND_IN_VARIABLE = "COURSE_STAND_IN_DATA"  # a share of the real size: stand-ins instead of downloads
PRETRAIN_BASE_SIZE = 32  # distortions are drawn at this resolution, then resized
_PRETRAIN_FORMAT = 1  # bump when the recipe changes, so old cache files are not reused

# Files Keras's loaders keep under $KERAS_HOME/datasets, to tell what is there offline.
_KERAS_FILES = {
    "mnist": ["mnist.npz"],
    "fashion_mnist": [f"fashion-mnist/{name}" for name in (
        "train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz")],
    "cifar10": ["cifar-10-batches-py-target/cifar-10-batches-py/test_batch"],
}
_CLASS_NAMES = {
    "digits": [str(d) for d in range(10)],
    "mnist": [str(d) for d in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"],
}


# What keras.datasets.<name>.load_data() returns: training and test counts, one image's shape.
_KERAS_SIZES = {"mnist": (60000, 10000, (28, 28)), "fashion_mnist": (60000, 10000, (28, 28)),
                "cifar10": (50000, 10000, (32, 32, 3))}


class DatasetCacheError(RuntimeError):
    """A cached dataset file exists but cannot be read."""


@dataclass
class Split:
    """Train, validation and test arrays of one dataset: images (N, H, W, C), integer labels (N,)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (f"Split({self.name!r}: train {self.x_train.shape}, val {self.x_val.shape}, "
                f"test {self.x_test.shape}, {self.num_classes} classes)")


# --- locations -------------------------------------------------------------------------

def cache_dir() -> Path:
    """Where the course caches what it builds: ``$COURSE_CACHE`` or ``~/.cache/course_lib``."""
    return Path(os.environ.get(CACHE_VARIABLE) or Path.home() / ".cache" / "course_lib")


def keras_datasets_dir() -> Path:
    """Where Keras's loaders cache downloads: ``$KERAS_HOME/datasets`` (default ``~/.keras``).

    Keras reads ``KERAS_HOME`` once, when it is imported; this asks Keras for the result.
    """
    from keras.src.backend.config import keras_home

    return Path(keras_home()) / "datasets"


def available_offline() -> dict[str, bool]:
    """Which datasets load without a network right now."""
    found = {name: True for name in EMBEDDED}
    for name, files in _KERAS_FILES.items():
        found[name] = all((keras_datasets_dir() / f).exists() for f in files)
    return found


# --- image operations ------------------------------------------------------------------

def resize_images(images, size) -> np.ndarray:
    """Resize a batch (N, H, W, C) to (N, size[0], size[1], C) by bilinear interpolation."""
    from scipy import ndimage

    images = check_array("images", images, ndim=4)
    size = _check_size("size", size)
    if images.shape[1:3] == size:
        return images.astype(np.float32)
    if len(images) == 0:
        return np.zeros((0, *size, images.shape[-1]), np.float32)
    factors = (1, size[0] / images.shape[1], size[1] / images.shape[2], 1)
    out = ndimage.zoom(images, factors, order=1, mode="nearest", grid_mode=True)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def to_channels(images, channels: int) -> np.ndarray:
    """Convert grey (C=1) to RGB (C=3) by repeating, or RGB to grey by averaging."""
    images = check_array("images", images, ndim=4)
    check_choice("channels", channels, (1, 3))
    have = images.shape[-1]
    if have == channels:
        return images.astype(np.float32)
    if have == 1:
        return np.repeat(images, 3, axis=-1).astype(np.float32)
    if have == 3:
        return images.mean(axis=-1, keepdims=True).astype(np.float32)
    raise ValueError(f"images must have 1 or 3 channels; got {have}")


def random_affine(images, rng: np.random.Generator, *, max_rotation=15.0,
                  scale_range=(0.85, 1.15), max_shear=0.2, max_shift=0.1) -> np.ndarray:
    """Distort each image by its own random affine map.

    The map is rotation by θ ~ U(±max_rotation°), scaling by s ~ U(scale_range), shear
    ~ U(±max_shear), then a shift of up to ``max_shift`` of the image size, about the centre.
    """
    from scipy import ndimage

    images = check_array("images", images, ndim=4)
    n, h, w, _ = images.shape
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    out = np.empty_like(images, dtype=np.float32)
    for i in range(n):
        theta = np.deg2rad(rng.uniform(-max_rotation, max_rotation))
        scale = rng.uniform(*scale_range)
        shear = rng.uniform(-max_shear, max_shear)
        rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        forward = rotation @ np.array([[1.0, shear], [0.0, 1.0]]) * scale
        inverse = np.linalg.inv(forward)  # affine_transform maps output coords to input coords
        shift = rng.uniform(-max_shift, max_shift, size=2) * np.array([h, w])
        offset = centre - inverse @ (centre + shift)
        for c in range(images.shape[-1]):
            out[i, :, :, c] = ndimage.affine_transform(
                images[i, :, :, c], inverse, offset=offset, order=1, mode="constant", cval=0.0)
    return np.clip(out, 0.0, 1.0)


def random_crop(images, rng: np.random.Generator, *, padding: int = 2) -> np.ndarray:
    """Pad each image by ``padding`` zeros on every side and cut a random crop of the original size."""
    images = check_array("images", images, ndim=4)
    check_number("padding", padding, low=0, integer=True)
    n, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    rows = rng.integers(0, 2 * padding + 1, size=n)
    cols = rng.integers(0, 2 * padding + 1, size=n)
    out = np.stack([padded[i, r:r + h, c:c + w] for i, (r, c) in enumerate(zip(rows, cols))])
    return out.astype(np.float32)


def random_flip(images, rng: np.random.Generator) -> np.ndarray:
    """Mirror each image left-right with probability 1/2 (not for digits: a mirrored 2 is no 2)."""
    images = check_array("images", images, ndim=4)
    flip = rng.random(len(images)) < 0.5
    out = images.copy()
    out[flip] = out[flip, :, ::-1]
    return out.astype(np.float32)


def subtract_mean(x_train, *others):
    """Centre data on the training mean image: x - mean(x_train).

    Returns the centred training set, the centred ``others`` (each with the *training*
    mean, never their own) and the mean image.
    """
    x_train = check_array("x_train", x_train, min_ndim=2)
    if len(x_train) == 0:
        raise ValueError("x_train must hold at least one example to take the mean of; got none")
    mean = x_train.mean(axis=0)
    centred = [x_train - mean]
    for i, other in enumerate(others):
        other = check_array(f"others[{i}]", other, min_ndim=2)
        if other.shape[1:] != mean.shape:
            raise ValueError(f"others[{i}] must have samples of shape {mean.shape}; "
                             f"got {other.shape[1:]}")
        centred.append(other - mean)
    return (*[c.astype(np.float32) for c in centred], mean.astype(np.float32))


def corrupt_labels(labels, fraction: float, num_classes: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Replace a random ``fraction`` of labels by a different class, chosen uniformly.

    Noisy labels make overfitting visible on easy data: a network that memorises them
    fits the training set perfectly and loses accuracy on clean validation data.
    """
    check_number("fraction", fraction, low=0.0, high=1.0)
    check_number("num_classes", num_classes, low=2, integer=True)
    labels = check_labels("labels", labels, num_classes=num_classes)
    noisy = labels.copy()
    chosen = rng.choice(len(labels), size=int(round(fraction * len(labels))), replace=False)
    shift = rng.integers(1, num_classes, size=len(chosen))
    noisy[chosen] = (labels[chosen] + shift) % num_classes
    return noisy


# --- loading ---------------------------------------------------------------------------

def load(name: str = "digits", *, image_size=None, channels: int | None = None,
         classes=None, train_per_class: int | None = None, val_fraction: float = 0.2,
         test_fraction: float = 0.2, pretrain_copies: int = 10, seed: int = 0) -> Split:
    """Load a dataset as a train/val/test ``Split``.

    name             one of ``DATASETS``; ``digits`` and ``digits_pretrain`` need no network.
    image_size       (H, W) to resize to, or an int for square images; default: native size
                     (for ``digits_pretrain``, the distortions' 32 × 32, validation and test too).
    channels         1 (grey) or 3 (RGB); default: native.
    classes          keep only these labels, renumbered 0..k-1 in the order given.
    train_per_class  keep only this many training examples of each class (few-label experiments).
    val_fraction     share of the training data held out for validation.
    test_fraction    share of the digits held out for testing (other datasets ship a test set).
    pretrain_copies  for ``digits_pretrain``: distorted copies of each training digit.
    seed             makes the split, the subsampling and the distortions repeatable.

    ``digits_pretrain`` is a larger set of random affine distortions of the digits *training*
    split (cached on disk), with the undistorted validation and test digits, so a model
    pretrained on it has never seen a test image.
    """
    check_choice("name", name, DATASETS)
    check_number("val_fraction", val_fraction, low=0.0, high=1.0, high_inclusive=False)
    check_number("test_fraction", test_fraction, low=0.0, high=1.0, high_inclusive=False)
    check_number("seed", seed, low=0, integer=True)
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(f"val_fraction + test_fraction must be below 1; got {val_fraction} + {test_fraction}")
    if train_per_class is not None:
        check_number("train_per_class", train_per_class, low=1, integer=True)
    size = None if image_size is None else _check_size("image_size", image_size)
    if channels is not None:
        check_choice("channels", channels, (1, 3))

    if name in EMBEDDED:
        split = _digits_split(val_fraction, test_fraction, seed)
        if name == "digits_pretrain":
            check_number("pretrain_copies", pretrain_copies, low=1, integer=True)
            x, y = _pretraining_images(split, pretrain_copies, seed)
            size = size or (PRETRAIN_BASE_SIZE, PRETRAIN_BASE_SIZE)   # one size for all three parts
            split = Split(name, x, y, split.x_val, split.y_val, split.x_test, split.y_test,
                          split.class_names)
    else:
        split = _keras_split(name, val_fraction, seed)

    if classes is not None:
        split = _keep_classes(split, classes)
    if train_per_class is not None:
        split = _limit_per_class(split, train_per_class, seed)
    arrays = {}
    for part in ("train", "val", "test"):
        x = getattr(split, f"x_{part}")
        if size is not None:
            x = resize_images(x, size)
        if channels is not None:
            x = to_channels(x, channels)
        arrays[part] = x.astype(np.float32)
    return Split(split.name, arrays["train"], split.y_train, arrays["val"], split.y_val,
                 arrays["test"], split.y_test, split.class_names)


def _check_size(name, size) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in size)):
        raise ValueError(f"{name} must be a positive int or a pair (height, width); got {size!r}")
    return int(size[0]), int(size[1])


def _stratified_indices(labels, fractions, seed):
    """Split indices into consecutive groups with the given fractions, class by class."""
    rng = np.random.default_rng(seed)
    groups = [[] for _ in fractions]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        cuts = np.cumsum([int(round(f * len(members))) for f in fractions[:-1]])
        for group, part in zip(groups, np.split(members, cuts)):
            group.extend(part)
    return [np.sort(np.array(g, dtype=np.int64)) for g in groups]


def _digits_split(val_fraction, test_fraction, seed) -> Split:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    train_fraction = 1.0 - val_fraction - test_fraction
    train, val, test = _stratified_indices(y, [train_fraction, val_fraction, test_fraction], seed)
    return Split("digits", x[train], y[train], x[val], y[val], x[test], y[test],
                 list(_CLASS_NAMES["digits"]))


def _pretraining_images(split: Split, copies: int, seed: int):
    """Random affine distortions of the training digits, built once and cached as uint8."""
    key = f"digits_pretrain-v{_PRETRAIN_FORMAT}-copies{copies}-seed{seed}-{_fingerprint(split.x_train)}"
    path = cache_dir() / f"{key}.npz"
    if path.exists():
        try:
            with np.load(path) as cached:
                x, y = cached["x"], cached["y"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            raise DatasetCacheError(
                f"the cached pretraining set {path} is unreadable ({error}). Delete that file "
                f"and call load('digits_pretrain') again to rebuild it (about a minute).") from error
        return x.astype(np.float32) / 255.0, y
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    base = resize_images(split.x_train, PRETRAIN_BASE_SIZE)
    batches = []
    for _ in tqdm(range(copies), desc="building the digits pretraining set", leave=False):
        batches.append(random_affine(base, rng))
    x = np.round(np.concatenate(batches) * 255).astype(np.uint8)
    y = np.tile(split.y_train, copies)
    write_cache_file(path, x=x, y=y)
    return x.astype(np.float32) / 255.0, y


def _fingerprint(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:12]


def write_cache_file(path: Path, **arrays) -> None:
    """Write an .npz next to its final name, then rename: readers never see half a file. A file
    that appeared meanwhile (another process built the same thing) is left as it is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with open(partial, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    if path.exists():
        partial.unlink()
    else:
        os.replace(partial, path)


def _keras_split(name, val_fraction, seed) -> Split:
    (x_train, y_train), (x_test, y_test) = _load_keras_dataset(name)
    x_train = _as_images(x_train)
    x_test = _as_images(x_test)
    y_train = np.asarray(y_train).reshape(-1).astype(np.int64)
    y_test = np.asarray(y_test).reshape(-1).astype(np.int64)
    train, val = _stratified_indices(y_train, [1.0 - val_fraction, val_fraction], seed)
    return Split(name, x_train[train], y_train[train], x_train[val], y_train[val],
                 x_test, y_test, list(_CLASS_NAMES[name]))


def stand_in_scale() -> float | None:
    """The share of each real dataset's size that ``COURSE_STAND_IN_DATA`` asks for in stand-ins
    (``1``: full size), or None when it is unset, and the real datasets load."""
    value = os.environ.get(STAND_IN_VARIABLE, "").strip()
    if not value:
        return None
    try:
        scale = float(value)
    except ValueError:
        scale = float("nan")
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"{STAND_IN_VARIABLE} must be a share of the real datasets' size in (0, 1], "
                         f"such as 1 or 0.05; got {value!r}. Unset it to load the real datasets.")
    return scale


def stand_in(name: str, scale: float = 1.0, seed: int = 0):
    """Stand-ins for a Keras dataset that cannot be downloaded (a GPU machine with no network).

    Returns what ``keras.datasets.<name>.load_data()`` returns, ((x_train, y_train), (x_test,
    y_test)) as uint8 arrays of the same shapes, with ``scale`` times the real counts. Each image
    is an embedded 8x8 digit enlarged to the box the real objects fill (20x20 of MNIST's 28x28,
    24x24 of CIFAR-10's 32x32), centred within one pixel; CIFAR-10's are tinted on a coloured
    background. Labels are the digits' own. Times measured on stand-ins are the real dataset's
    (same sizes, same schedules); accuracies and the claims checked on them are not.
    """
    check_choice("name", name, tuple(_KERAS_SIZES))
    check_number("scale", scale, low=0.0, high=1.0, low_inclusive=False)
    from sklearn.datasets import load_digits

    digits = load_digits()
    n_train, n_test, shape = _KERAS_SIZES[name]
    side, box = shape[0], 20 if shape[0] == 28 else 24
    boxes = resize_images(digits.images[..., None] / 16.0, box)[..., 0]
    rng = np.random.default_rng(seed)

    def draw(count):
        pick = rng.integers(0, len(boxes), count)
        shifts = rng.integers(-1, 2, (count, 2)) + (side - box) // 2
        x = np.zeros((count, side, side), np.float32)
        for dy, dx in {tuple(shift) for shift in shifts}:  # at most 9 placements, each vectorized
            rows = np.flatnonzero((shifts[:, 0] == dy) & (shifts[:, 1] == dx))
            x[rows, dy:dy + box, dx:dx + box] = boxes[pick[rows]]
        if len(shape) == 3:  # a random tint on a random darker background, per image
            tint = rng.uniform(0.3, 1.0, (count, 1, 1, 3)).astype(np.float32)
            ground = rng.uniform(0.0, 0.4, (count, 1, 1, 3)).astype(np.float32)
            x = ground + x[..., None] * (tint - ground)  # = x·tint + (1 − x)·ground
        y = digits.target[pick].astype(np.uint8)
        return (x * 255 + 0.5).astype(np.uint8), y[:, None] if name == "cifar10" else y

    return draw(max(1, round(scale * n_train))), draw(max(1, round(scale * n_test)))


def _load_keras_dataset(name):
    """Call Keras's own loader (or make stand-ins, if ``COURSE_STAND_IN_DATA`` asks); turn an
    unreadable cached download into a clear error."""
    scale = stand_in_scale()
    if scale is not None:
        return stand_in(name, scale)
    import keras

    loader = {"mnist": keras.datasets.mnist, "fashion_mnist": keras.datasets.fashion_mnist,
              "cifar10": keras.datasets.cifar10}[name]
    folder = keras_datasets_dir()
    try:
        return loader.load_data()
    except (OSError, EOFError, ValueError, zlib.error, zipfile.BadZipFile,
            pickle.UnpicklingError) as error:
        cached = [folder / f for f in _KERAS_FILES[name] if (folder / f).exists()]
        if not cached:  # nothing cached: the download itself failed
            raise DatasetCacheError(
                f"could not download {name} ({error}). Connect to the network, or copy the "
                f"files {', '.join(_KERAS_FILES[name])} into {folder}; the embedded "
                f"'digits' dataset works offline.") from error
        raise DatasetCacheError(
            f"the cached {name} files under {folder} are unreadable ({error}). Delete "
            f"{', '.join(str(c) for c in cached)} and load again to download a fresh copy.") from error


def _as_images(x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    return (x.astype(np.float32) / 255.0)


def _keep_classes(split: Split, classes) -> Split:
    classes = [int(c) for c in classes]
    if not classes or len(set(classes)) != len(classes) or not all(0 <= c < split.num_classes for c in classes):
        raise ValueError(f"classes must be distinct labels in 0..{split.num_classes - 1}; got {classes}")
    relabel = {c: i for i, c in enumerate(classes)}
    parts = []
    for part in ("train", "val", "test"):
        x, y = getattr(split, f"x_{part}"), getattr(split, f"y_{part}")
        keep = np.isin(y, classes)
        parts += [x[keep], np.array([relabel[v] for v in y[keep]], dtype=np.int64)]
    return Split(split.name, *parts, [split.class_names[c] for c in classes])


def _limit_per_class(split: Split, per_class: int, seed: int) -> Split:
    rng = np.random.default_rng(seed + 1)
    keep = []
    for label in np.unique(split.y_train):
        members = np.flatnonzero(split.y_train == label)
        if len(members) < per_class:
            raise ValueError(f"train_per_class={per_class} is more than the {len(members)} "
                             f"training examples of class {label}")
        keep.extend(rng.choice(members, size=per_class, replace=False))
    keep = np.sort(np.array(keep))
    return Split(split.name, split.x_train[keep], split.y_train[keep], split.x_val,
                 split.y_val, split.x_test, split.y_test, split.class_names)
