"""The benchmark scripts: options, data and augmentation, and a run end to end on synthetic data
(the real runs need CIFAR-10 and a GPU)."""
import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from course_lib import data


@pytest.fixture
def resnet20(root):
    path = root / "benchmarks" / "cifar_resnet20.py"
    spec = importlib.util.spec_from_file_location("cifar_resnet20", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_resnet20(root, *options):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, str(root / "benchmarks" / "cifar_resnet20.py"), *options],
                          capture_output=True, text=True, env=env, timeout=300)


def test_resnet20_defaults_are_the_papers(resnet20):
    args = resnet20.parse_args([])
    assert (args.iterations, args.batch_size, args.seed) == (64_000, 128, 0)
    assert not (args.mixed_precision or args.synthetic)
    with pytest.raises(SystemExit):
        resnet20.parse_args(["--iterations", "2"])


def test_resnet20_help(root):
    run = run_resnet20(root, "--help")
    assert run.returncode == 0
    for option in ("--iterations", "--batch-size", "--seed", "--mixed-precision", "--backend", "--synthetic"):
        assert option in run.stdout


def test_resnet20_trains_on_all_cifar10_training_images_mean_subtracted(resnet20, monkeypatch):
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (100, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, (100, 1))
    test = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, (20, 1))
    monkeypatch.setattr(data, "_load_keras_dataset", lambda name: (train, test))  # no download
    x_train, y_train, x_test, y_test = resnet20.load_data(synthetic=False, seed=0)
    assert x_train.shape == (100, 32, 32, 3) and x_test.shape == (20, 32, 32, 3), "no validation split"
    assert sorted(y_train) == sorted(train[1].ravel()) and list(y_test) == list(test[1].ravel())
    mean = (train[0] / 255).mean(axis=0)
    np.testing.assert_allclose(x_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(x_test, test[0] / 255 - mean, atol=1e-5, err_msg="test images minus the training mean")


def test_pad_crop_flip_cuts_shifted_and_mirrored_copies(resnet20):
    batch = np.random.default_rng(0).random((64, 32, 32, 3), np.float32)
    out = resnet20.pad_crop_flip(batch, np.random.default_rng(1))
    assert out.shape == batch.shape and out.dtype == np.float32
    padded = np.pad(batch, ((0, 0), (4, 4), (4, 4), (0, 0)))
    mirrored = []
    for image, source in zip(out, padded):
        found = [step for r in range(9) for c in range(9) for step in (1, -1)
                 if np.array_equal(image, source[r:r + 32, c:c + 32][:, ::step])]
        assert found, "every output must be a 32x32 window of the padded image, mirrored or not"
        mirrored.append(found[0] == -1)
    assert 0.2 < np.mean(mirrored) < 0.8, "about half the images are mirrored"


def test_resnet20_runs_and_reports(root):
    run = run_resnet20(root, "--synthetic", "--iterations", "4", "--batch-size", "16")
    assert run.returncode == 0, run.stderr[-3000:]
    report = run.stdout
    assert "4 iterations of batch 16" in report, report  # stopped mid-epoch (32 batches), as asked
    assert re.search(r"test error +\d+\.\d\d% on 256 test images +\(He et al\. 2015: 8\.75%\)", report), report
    assert re.search(r"wall time +\d+\.\d s", report), report
    assert re.search(r"device +\S.*backend (tensorflow|jax), precision float32", report), report
