"""The model zoo: the course's pretrained network (built, cached, deterministic, really pretrained)
and keras.applications with ImageNet weights (a clear error offline; no test touches the network)."""
import random
import urllib.error

import keras
import numpy as np
import pytest

from course_lib import training, zoo

# A tiny recipe: two epochs on three distorted copies of the digits 0-4, a few seconds.
TINY = zoo.Recipe(widths=(4, 8, 8), pretrain_copies=3, epochs=2)


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    return tmp_path


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_cache_file_names_carry_version_and_recipe(cache):
    path = zoo.weights_path(TINY)
    assert path.parent == cache and path.name.startswith(f"digits_cnn-v{zoo.RECIPE_VERSION}-")
    assert path.name.endswith(f"-{keras.backend.backend()}.npz"), "each backend trains and caches its own"
    assert zoo.weights_path(zoo.Recipe(widths=(4, 8, 8), pretrain_copies=3, epochs=3)) != path
    assert zoo.weights_path(zoo.Recipe(widths=(4, 8, 8), pretrain_copies=3, epochs=2)) == path
    numpy_numbers = zoo.Recipe(widths=tuple(np.array([4, 8, 8])), pretrain_copies=np.int64(3), epochs=2)
    assert zoo.weights_path(numpy_numbers) == path          # the same recipe, the same file


def test_built_once_then_loaded_from_the_cache(cache, monkeypatch):
    first = zoo.digits_net(TINY, progress=False)
    assert zoo.weights_path(TINY).exists()
    assert not list(cache.glob(".*partial"))  # written atomically: no partial file left behind

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cached weights should have been used")

    monkeypatch.setattr(zoo, "build_weights", no_rebuild)
    second = zoo.digits_net(TINY)
    assert second is not first and _same(first.get_weights(), second.get_weights())
    assert [layer.name for layer in zoo.base_of(second).layers][-1] == "features"


def test_not_built_when_asked_not_to(cache):
    with pytest.raises(FileNotFoundError, match="python -m course_lib.zoo"):
        zoo.digits_net(TINY, build=False)


def test_building_is_deterministic(cache):
    assert _same(zoo.build_weights(TINY, progress=False), zoo.build_weights(TINY, progress=False))


def test_building_leaves_the_callers_random_state_alone(cache):
    """What a notebook draws after zoo.pretrained (its layers' seeds, NumPy's draws) is the same
    whether the network was just built or read from the cache."""
    def draws():
        return (random.random(), np.random.rand(),
                keras.ops.convert_to_numpy(keras.layers.Dropout(0.5).seed_generator.state).tolist())

    keras.utils.set_random_seed(5)
    zoo.digits_net(TINY, progress=False)  # built: the cache is empty
    after_building = draws()
    keras.utils.set_random_seed(5)
    zoo.digits_net(TINY, progress=False)  # read from the cache
    assert draws() == after_building


def test_corrupt_cache_is_reported_not_overwritten(cache):
    path = zoo.weights_path(TINY)
    path.write_bytes(b"not an npz file")
    with pytest.raises(zoo.ZooCacheError, match="unreadable") as error:
        zoo.digits_net(TINY)
    assert str(path) in str(error.value) and "Delete that file" in str(error.value)
    assert path.read_bytes() == b"not an npz file"
    default = zoo.weights_path()
    default.write_bytes(b"not an npz file either")
    with pytest.raises(zoo.ZooCacheError, match="unreadable"):
        zoo.main([])  # the script reports it too, and leaves the file alone without --force
    assert default.read_bytes() == b"not an npz file either"


def test_weights_of_another_shape_are_reported(cache):
    path = zoo.weights_path(TINY)
    np.savez(path, count=1, w0=np.zeros(3))
    with pytest.raises(zoo.ZooCacheError, match="do not fit the network"):
        zoo.digits_net(TINY)


@pytest.mark.parametrize("call, message", [
    (lambda: zoo.pretrained("alexnet"), "name must be one of 'digits_cnn', 'mobilenet_v2', 'resnet50', 'vgg16'"),
    (lambda: zoo.preprocess("resnet", np.zeros((1, 8, 8, 3))), "name must be one of 'digits_cnn'"),
    (lambda: zoo.pretrained("vgg16", weights="cifar"), "weights must be one of 'imagenet', None"),
    (lambda: zoo.pretrained("vgg16", pooling="mean"), "pooling must be one of None, 'avg', 'max'"),
    (lambda: zoo.Recipe(classes=(0, 0)), "classes must be distinct digits"),
    (lambda: zoo.Recipe(epochs=0), "epochs must be in"),
    (lambda: zoo.digits_cnn(classes=1), "classes must be in"),
])
def test_bad_arguments_say_what_was_expected(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_imagenet_weights_offline_give_a_clear_error(monkeypatch, tmp_path):
    """Keras's own downloader runs; only its network call fails, and into an empty Keras cache."""
    from keras.src.backend import config
    from keras.src.utils import file_utils

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(config, "keras_home", lambda: str(tmp_path))
    monkeypatch.setattr(file_utils, "urlretrieve", no_network)
    with pytest.raises(zoo.ZooDownloadError) as error:
        zoo.pretrained("mobilenet_v2", input_shape=(96, 96, 3))
    text = str(error.value)
    assert "mobilenet_v2" in text and str(tmp_path / "models") in text and "pretrained('digits_cnn')" in text


def test_stand_ins_replace_imagenet_weights_by_random_ones(monkeypatch, capsys):
    from keras.src.utils import file_utils

    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(file_utils, "get_file", no_download)
    monkeypatch.setenv("COURSE_STAND_IN_DATA", "1")
    model = zoo.pretrained("mobilenet_v2", input_shape=(32, 32, 3), pooling="avg", alpha=0.35)
    assert model.output.shape[-1] > 0
    assert "random weights instead of ImageNet's" in capsys.readouterr().out


def test_random_weights_need_no_download():
    model = zoo.pretrained("mobilenet_v2", weights=None, input_shape=(32, 32, 3), pooling="avg", alpha=0.35)
    assert model.output.shape[-1] > 0


def test_preprocess_follows_each_networks_convention():
    images = np.stack([np.zeros((4, 4, 3)), np.ones((4, 4, 3))]).astype("float32")
    assert np.array_equal(zoo.preprocess("digits_cnn", images), images)
    scaled = zoo.preprocess("mobilenet_v2", images)
    assert np.allclose(scaled[0], -1) and np.allclose(scaled[1], 1)


def test_script_help_and_where(cache, capsys):
    with pytest.raises(SystemExit) as exit_:
        zoo.main(["--help"])
    assert exit_.value.code == 0 and "digits_cnn" in capsys.readouterr().out
    assert zoo.main(["--where"]) == 0
    assert capsys.readouterr().out.strip() == str(zoo.weights_path())


def test_tiny_network_learns_something(cache):
    net = zoo.digits_net(TINY, progress=False)
    split = zoo.pretraining_data(TINY)
    assert training.accuracy(net, split.x_val, split.y_val) > 0.5  # chance is 0.2


@pytest.mark.slow
def test_course_network_is_pretrained_on_its_classes_only(cache):
    """The default recipe, as notebooks use it: ≥ 97% on held-out digits 0-4, built in a fresh cache."""
    net = zoo.pretrained("digits_cnn", progress=False)
    split = zoo.pretraining_data()
    assert training.accuracy(net, split.x_val, split.y_val) >= 0.97
    keras.utils.set_random_seed(0)
    untrained = zoo.digits_cnn()
    assert training.accuracy(untrained, split.x_val, split.y_val) < 0.5
    assert net.output.shape[-1] == len(zoo.SOURCE_CLASSES) == 5
    assert not set(zoo.SOURCE_CLASSES) & set(zoo.TARGET_CLASSES)
