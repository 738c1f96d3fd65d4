import gzip
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from course_lib import data


# --- the embedded digits -------------------------------------------------------------------

def test_digits_split_is_disjoint_stratified_and_repeatable():
    split = data.load("digits", seed=0)
    sizes = len(split.x_train), len(split.x_val), len(split.x_test)
    assert sum(sizes) == 1797 and sizes[0] > sizes[1] > 0
    assert split.x_train.dtype == np.float32 and split.x_train.shape[1:] == (8, 8, 1)
    assert 0.0 <= split.x_train.min() and split.x_train.max() <= 1.0
    rows = lambda x: {a.tobytes() for a in x}  # noqa: E731
    # No image is in two parts (the digits hold a few exact duplicates; allow those).
    assert len(rows(split.x_train) & rows(split.x_test)) <= 3
    for part in (split.y_train, split.y_val, split.y_test):
        counts = np.bincount(part, minlength=10)
        assert counts.min() >= 0.8 * counts.mean()
    again = data.load("digits", seed=0)
    assert np.array_equal(split.x_val, again.x_val)
    other = data.load("digits", seed=1)
    assert not np.array_equal(split.y_train, other.y_train)
    assert split.num_classes == 10 and "digits" in repr(split)


def test_resize_channels_classes_and_few_labels():
    split = data.load("digits", image_size=16, channels=3, classes=[5, 7], train_per_class=4)
    assert split.x_train.shape == (8, 16, 16, 3)
    assert sorted(set(split.y_train)) == [0, 1] and split.class_names == ["5", "7"]
    assert set(split.y_test) <= {0, 1} and len(split.x_test) > 50
    assert np.allclose(split.x_train[..., 0], split.x_train[..., 2])


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "imagenet"}, "name must be one of"),
    ({"image_size": (0, 8)}, "image_size must be a positive int"),
    ({"channels": 2}, "channels must be one of 1, 3"),
    ({"classes": [3, 3]}, "classes must be distinct labels"),
    ({"classes": [11]}, "classes must be distinct labels in 0..9"),
    ({"train_per_class": 1000}, "more than the"),
    ({"val_fraction": 0.6, "test_fraction": 0.5}, "val_fraction \\+ test_fraction must be below 1"),
])
def test_bad_load_arguments_say_what_was_wrong(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        data.load(**kwargs)


def test_pretraining_set_is_cached_and_built_from_training_digits_only(private_cache):
    split = data.load("digits_pretrain", image_size=12, pretrain_copies=2, seed=0)
    digits = data.load("digits", image_size=12, seed=0)
    assert len(split.x_train) == 2 * len(digits.x_train)
    assert np.array_equal(split.x_test, digits.x_test)  # the test digits stay undistorted
    assert np.array_equal(split.y_train, np.tile(digits.y_train, 2))
    files = list(private_cache.glob("digits_pretrain-*copies2-seed0-*.npz"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    again = data.load("digits_pretrain", image_size=12, pretrain_copies=2, seed=0)
    assert np.array_equal(split.x_train, again.x_train)
    assert files[0].stat().st_mtime_ns == stamp  # read, not rebuilt


def test_corrupt_pretraining_cache_is_reported_not_overwritten(private_cache):
    split = data.load("digits_pretrain", pretrain_copies=1, seed=5)
    assert split.x_train.shape[1:] == split.x_val.shape[1:] == split.x_test.shape[1:] == (32, 32, 1)
    assert split.image_shape == (32, 32, 1)    # by default all three parts at the distortions' size
    (path,) = private_cache.glob("digits_pretrain-*copies1-seed5-*.npz")
    path.write_bytes(b"not a zip file")
    with pytest.raises(data.DatasetCacheError) as failure:
        data.load("digits_pretrain", pretrain_copies=1, seed=5)
    assert str(path) in str(failure.value) and "Delete" in str(failure.value)
    assert path.read_bytes() == b"not a zip file"


def test_available_offline_lists_every_dataset():
    found = data.available_offline()
    assert set(found) == set(data.DATASETS)
    assert found["digits"] and found["digits_pretrain"]


# --- preprocessing and augmentation -----------------------------------------------------------

def test_subtract_mean_uses_the_training_mean_for_every_part():
    rng = np.random.default_rng(0)
    train, val = rng.random((20, 4, 4, 1)), rng.random((5, 4, 4, 1))
    train_c, val_c, mean = data.subtract_mean(train, val)
    assert np.allclose(train_c.mean(axis=0), 0, atol=1e-6)
    assert np.allclose(val_c, val - train.mean(axis=0), atol=1e-6)
    assert mean.shape == (4, 4, 1)
    with pytest.raises(ValueError, match=r"others\[0\] must have samples of shape"):
        data.subtract_mean(train, np.zeros((3, 5, 5, 1)))
    with pytest.raises(ValueError, match="x_train must hold at least one example"):
        data.subtract_mean(train[:0], val)


def test_random_crop_shifts_content_and_keeps_shape():
    image = np.zeros((1, 6, 6, 1))
    image[0, 3, 3, 0] = 1.0
    crops = data.random_crop(np.repeat(image, 200, axis=0), np.random.default_rng(0), padding=2)
    assert crops.shape == (200, 6, 6, 1)
    positions = {tuple(np.argwhere(c[..., 0] == 1.0)[0]) for c in crops if c.max() == 1.0}
    assert len(positions) > 10  # many different shifts
    assert all(max(abs(r - 3), abs(c - 3)) <= 2 for r, c in positions)
    with pytest.raises(ValueError, match="padding must be in"):
        data.random_crop(image, np.random.default_rng(0), padding=-1)


def test_random_flip_mirrors_about_half():
    images = np.arange(4.0).reshape(1, 1, 4, 1).repeat(400, axis=0)
    flipped = data.random_flip(images, np.random.default_rng(0))
    mirrored = np.all(flipped[:, 0, :, 0] == [3, 2, 1, 0], axis=1)
    untouched = np.all(flipped[:, 0, :, 0] == [0, 1, 2, 3], axis=1)
    assert np.all(mirrored | untouched) and 0.4 < mirrored.mean() < 0.6


def test_random_affine_keeps_shape_and_range_and_moves_pixels():
    digits = data.load("digits", image_size=16)
    distorted = data.random_affine(digits.x_train[:10], np.random.default_rng(0))
    assert distorted.shape == (10, 16, 16, 1) and 0 <= distorted.min() and distorted.max() <= 1
    assert not np.allclose(distorted, digits.x_train[:10])
    same = data.random_affine(digits.x_train[:3], np.random.default_rng(0), max_rotation=0,
                              scale_range=(1, 1), max_shear=0, max_shift=0)
    assert np.allclose(same, digits.x_train[:3], atol=1e-5)


def test_corrupt_labels_changes_exactly_the_fraction_to_other_classes():
    labels = np.arange(1000) % 10
    noisy = data.corrupt_labels(labels, 0.3, 10, np.random.default_rng(0))
    assert np.sum(noisy != labels) == 300 and noisy.min() >= 0 and noisy.max() <= 9
    with pytest.raises(ValueError, match="fraction must be in"):
        data.corrupt_labels(labels, 1.5, 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"labels must lie in 0..2 for 3 classes; got values from 0 to 9"):
        data.corrupt_labels(labels, 0.3, 3, np.random.default_rng(0))   # would wrap 7, 8, 9 round silently


def test_resize_and_channels_validate():
    with pytest.raises(ValueError, match="images must have rank 4"):
        data.resize_images(np.zeros((8, 8)), 4)
    assert data.resize_images(np.ones((2, 8, 8, 1)), (4, 6)).shape == (2, 4, 6, 1)
    grey = data.to_channels(np.full((1, 2, 2, 3), 0.5), 1)
    assert grey.shape == (1, 2, 2, 1) and np.allclose(grey, 0.5)


# --- the real datasets, offline ------------------------------------------------------------------

def _idx(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


FASHION_SCRIPT = textwrap.dedent("""
    from pathlib import Path
    import os
    from course_lib import data
    folder = Path(os.environ["KERAS_HOME"]) / "datasets" / "fashion-mnist"
    assert data.available_offline()["fashion_mnist"]
    split = data.load("fashion_mnist", image_size=14, val_fraction=0.25)
    print("shapes", split.x_train.shape, split.x_val.shape, split.x_test.shape, split.class_names[0])
    print("max", float(split.x_test.max()))
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"corrupted download")
    try:
        data.load("fashion_mnist")
    except data.DatasetCacheError as error:
        print("error", error)
""")


def test_fashion_mnist_reads_idx_files_from_keras_home(tmp_path):
    """Keras's own Fashion-MNIST loader, fed IDX files written into a temporary KERAS_HOME."""
    folder = tmp_path / "datasets" / "fashion-mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for part, n in (("train", 40), ("t10k", 12)):
        (folder / f"{part}-images-idx3-ubyte.gz").write_bytes(
            _idx(rng.integers(0, 256, size=(n, 28, 28)), 2051))
        (folder / f"{part}-labels-idx1-ubyte.gz").write_bytes(_idx(np.arange(n) % 10, 2049))
    env = {**os.environ, "KERAS_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", FASHION_SCRIPT], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "shapes (30, 14, 14, 1) (10, 14, 14, 1) (12, 14, 14, 1) T-shirt/top" in result.stdout
    error_line = next(line for line in result.stdout.splitlines() if line.startswith("error"))
    assert "t10k-images-idx3-ubyte.gz" in error_line and "Delete" in error_line


def test_mnist_goes_through_keras_loader_with_download_replaced(monkeypatch, tmp_path):
    """MNIST's download checks a hash, so only the download step (get_file) is replaced."""
    from keras.src.datasets import mnist

    rng = np.random.default_rng(1)
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
             y_train=np.arange(50) % 10, x_test=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
             y_test=np.arange(20) % 10)
    monkeypatch.setattr(mnist, "get_file", lambda *args, **kwargs: str(path))
    split = data.load("mnist", classes=[0, 1], val_fraction=0.2)
    assert split.x_train.shape == (8, 28, 28, 1) and len(split.x_val) == 2
    assert split.y_test.tolist() == [0, 1, 0, 1]
    path.write_bytes(b"truncated")
    with pytest.raises(data.DatasetCacheError, match="could not download mnist|unreadable"):
        data.load("mnist")


def test_cifar10_goes_through_keras_loader_with_download_replaced(monkeypatch, tmp_path):
    from keras.src.datasets import cifar10

    batches = tmp_path / "cifar-10-batches-py"
    batches.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        label = int(name[-1]) if name[-1].isdigit() else 0
        with open(batches / name, "wb") as handle:
            pickle.dump({b"data": np.full((10000, 3072), label, dtype=np.uint8),
                         b"labels": [label] * 10000}, handle)
    monkeypatch.setattr(cifar10, "get_file", lambda *args, **kwargs: str(tmp_path))
    split = data.load("cifar10", classes=[1, 5], image_size=8, val_fraction=0.1)
    assert split.x_train.shape == (18000, 8, 8, 3) and split.class_names == ["automobile", "dog"]
    assert np.allclose(split.x_train[split.y_train == 1], 5 / 255, atol=1e-6)


@pytest.mark.parametrize("name, train, test, shape", [("mnist", 600, 100, (28, 28)),
                                                     ("fashion_mnist", 600, 100, (28, 28)),
                                                     ("cifar10", 500, 100, (32, 32, 3))])
def test_stand_ins_come_as_keras_loaders_return_the_data(name, train, test, shape):
    (x_train, y_train), (x_test, y_test) = data.stand_in(name, scale=0.01)
    assert x_train.shape == (train, *shape) and x_test.shape == (test, *shape)
    assert x_train.dtype == x_test.dtype == y_train.dtype == np.uint8
    label_shape = (lambda n: (n, 1)) if name == "cifar10" else (lambda n: (n,))  # as Keras gives them
    assert y_train.shape == label_shape(train) and y_test.shape == label_shape(test)
    assert set(y_train.ravel()) == set(range(10)) and x_train.max() > 200
    again = data.stand_in(name, scale=0.01)
    assert np.array_equal(again[0][0], x_train) and np.array_equal(again[1][1], y_test)
    if name != "cifar10":  # MNIST's layout: the digit inside the central 22x22, a blank border
        assert x_train[:, :3].max() == 0 and x_train[:, :, -3:].max() == 0


def test_stand_ins_are_the_digits_they_are_labelled():
    """Nearest class mean, fitted on the training stand-ins, names most test stand-ins right."""
    (x_train, y_train), (x_test, y_test) = data.stand_in("cifar10", scale=0.04)
    grey = lambda x: x.reshape(len(x), -1).astype(np.float32)  # noqa: E731
    means = np.stack([grey(x_train)[y_train.ravel() == c].mean(axis=0) for c in range(10)])
    guesses = np.argmin(((grey(x_test)[:, None] - means[None]) ** 2).sum(axis=-1), axis=1)
    assert np.mean(guesses == y_test.ravel()) > 0.5  # chance is 0.1


def test_stand_in_variable_replaces_the_download(monkeypatch):
    import keras

    def no_download():
        raise AssertionError("Keras's loader was called")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", no_download)
    monkeypatch.setenv(data.STAND_IN_VARIABLE, "0.01")
    split = data.load("mnist", val_fraction=0.2)
    assert len(split.x_train) + len(split.x_val) == 600 and len(split.x_test) == 100
    assert abs(len(split.x_val) - 120) <= 5  # a fifth of each class, rounded
    assert split.image_shape == (28, 28, 1) and split.x_train.dtype == np.float32
    assert data.load("digits").image_shape == (8, 8, 1)  # the embedded data stays as it is


@pytest.mark.parametrize("value", ["0", "2", "-0.5", "half", "nan"])
def test_stand_in_variable_out_of_range_says_what_is_expected(monkeypatch, value):
    monkeypatch.setenv(data.STAND_IN_VARIABLE, value)
    with pytest.raises(ValueError, match=r"COURSE_STAND_IN_DATA must be a share .* in \(0, 1\].*got"):
        data.load("mnist")


def test_stand_in_arguments_are_checked():
    with pytest.raises(ValueError, match="name must be one of"):
        data.stand_in("digits")
    with pytest.raises(ValueError, match="scale must be in"):
        data.stand_in("mnist", scale=0.0)


def test_resize_of_an_empty_part_keeps_the_new_size():
    assert data.resize_images(np.zeros((0, 8, 8, 3)), 4).shape == (0, 4, 4, 3)
