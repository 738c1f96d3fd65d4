"""The benchmark scripts: options, data and augmentation, and fast runs end to end on synthetic data
or tiny sizes (the real runs need CIFAR-10, a GPU or a quiet machine)."""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from course_lib import data


def load_script(root, name):
    """A benchmark script, imported as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, root / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def resnet20(root):
    return load_script(root, "cifar_resnet20")


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
    for option in ("--iterations", "--batch-size", "--seed", "--mixed-precision", "--no-xla", "--backend",
                   "--synthetic", "--no-augment"):
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
    run = run_resnet20(root, "--synthetic", "--iterations", "4", "--batch-size", "16", "--no-xla")
    assert run.returncode == 0, run.stderr[-3000:]
    report = run.stdout
    assert "4 iterations of batch 16" in report, report  # stopped mid-epoch (100 batches), as asked
    assert re.search(r"test error +\d+\.\d\d% on 1,000 test images +\(He et al\. 2015: 8\.75%\)", report), report
    assert re.search(r"steady state +\d+\.\d\d ms per iteration \(the last 3 iterations", report), report
    assert re.search(r"wall time +\d+\.\d s", report), report
    assert re.search(r"device +\S.*backend (tensorflow|jax), precision float32, XLA off, augmentation on",
                     report), report


def test_steady_state_timer_skips_the_warmup_iterations(resnet20, monkeypatch):
    clock = iter([10.0, 10.5])  # the end of iteration 2, then the end of training
    monkeypatch.setattr(resnet20.time, "perf_counter", lambda: next(clock))
    timer = resnet20.SteadyStateTimer(warmup=2)
    assert timer.ms_per_iteration is None
    for batch in range(6):
        timer.callback.on_train_batch_end(batch)
    timer.callback.on_train_end()
    assert timer.ms_per_iteration == pytest.approx(1000 * 0.5 / 4)


@pytest.fixture
def gpu_notebooks(root):
    return load_script(root, "gpu_notebooks")


def test_gpu_notebooks_times_each_notebook_and_reads_back_its_claims(gpu_notebooks, tmp_path, monkeypatch):
    import json

    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    (tmp_path / "notebooks").mkdir()
    lesson = new_notebook(cells=[new_code_cell(
        "import os\nfrom course_lib import claims\n"
        "claims.check('W1', True, {'profile': os.environ['COURSE_PROFILE'], 'relative error': 1e-9})\n"
        "claims.check('G3', True, {'gain': 0.01}, qualified='pretraining neither helps nor hurts here')")])
    lesson.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(lesson, tmp_path / "notebooks" / "01_lesson.ipynb")
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    out = tmp_path / "out"
    assert gpu_notebooks.main(["--profile", "ci", "--output", str(out), "--skip-speedups"]) == 0
    report = json.loads((out / "gpu_notebooks.json").read_text())
    (row,) = report["notebooks"]
    assert row["notebook"] == "01_lesson" and row["error"] is None and row["seconds"] > 0
    assert row["claims"] == [
        {"id": "W1", "holds": True, "qualified": False, "evidence": ["profile         ci", "relative error  1.000e-09"]},
        {"id": "G3", "holds": True, "qualified": True,
         "evidence": ["does not hold as stated; what holds: pretraining neither helps nor hurts here", "gain  0.01"]}]
    assert report["profile"] == "ci" and report["device"]
    assert "| 01_lesson |" in gpu_notebooks.markdown(report)
    assert "W1 holds (profile ci, relative error 1.000e-09)" in gpu_notebooks.markdown(report)
    assert "G3 holds as qualified (does not hold as stated; what holds: " in gpu_notebooks.markdown(report)
    row["claims"] = [{"id": "D2", "holds": True, "evidence": ["largest |z|    3.323"]}]
    last_row = gpu_notebooks.markdown(report).splitlines()[-1]
    assert len(re.findall(r"(?<!\\)\|", last_row)) == 5, f"a | in the evidence must be escaped: {last_row}"


def test_gpu_notebooks_on_stand_ins_runs_past_failed_checks_but_not_past_broken_code(gpu_notebooks, tmp_path,
                                                                                     monkeypatch):
    import json

    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    (tmp_path / "notebooks").mkdir()
    cells = {"01_checks": ["from course_lib import claims, data\nsplit = data.load('mnist')",
                           "claims.check('W1', len(split.x_train) > 10**6, {'training images': len(split.x_train)})",
                           "assert False, 'an accuracy bar'",
                           "import os\nprint('reached the end with', os.environ['COURSE_STAND_IN_DATA'])"],
             "02_broken": ["x = 1", "undefined_name + x", "print('runs on')"]}
    for name, sources in cells.items():
        notebook = new_notebook(cells=[new_code_cell(source) for source in sources])
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(notebook, tmp_path / "notebooks" / f"{name}.ipynb")
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    monkeypatch.delenv("COURSE_STAND_IN_DATA", raising=False)
    out = tmp_path / "out"
    assert gpu_notebooks.main(["--profile", "ci", "--output", str(out), "--skip-speedups",
                               "--stand-in-data", "0.01"]) == 1  # the broken notebook fails the run
    report = json.loads((out / "gpu_notebooks.json").read_text())
    checks, broken = report["notebooks"]
    assert checks["error"] is None and [c["type"] for c in checks["failed_checks"]] == ["ClaimFailed", "AssertionError"]
    assert checks["claims"][0]["evidence"] == ["training images  482"]  # 1% of MNIST's 60,000, less validation
    executed = nbformat.read(out / "01_checks.ipynb", as_version=4)
    assert "reached the end with 0.01" in executed.cells[-1].outputs[0]["text"]
    assert broken["error"].startswith("cell 1: NameError: name 'undefined_name' is not defined")
    assert report["data"].startswith("stand-ins at 0.01 of the real size")
    table = gpu_notebooks.markdown(report)
    assert "2 checks failed on stand-ins (no evidence)" in table and "data: stand-ins" in table
    assert gpu_notebooks.environment(gpu_notebooks.parse_args(["--stand-in-data"]))["COURSE_STAND_IN_DATA"] == "1"
    assert "COURSE_STAND_IN_DATA" not in gpu_notebooks.environment(gpu_notebooks.parse_args([]))
    with pytest.raises(SystemExit):
        gpu_notebooks.parse_args(["--stand-in-data", "1.5"])


def test_gpu_notebooks_speedups_are_ratios_to_float32_without_xla(gpu_notebooks, monkeypatch):
    milliseconds = {("--no-xla",): 40.0, (): 20.0, ("--mixed-precision", "--no-xla"): 25.0,
                    ("--mixed-precision",): 10.0}

    def fake_run(command, **kwargs):
        assert "--no-augment" in command and "--synthetic" in command
        options = tuple(option for option in command if option in ("--no-xla", "--mixed-precision"))
        # The whole time includes compilation; the steady-state time is the one compared.
        return subprocess.CompletedProcess(command, 0, "training time  9.9 s (99.0 ms per iteration, compilation "
                                           f"included)\nsteady state   {milliseconds[options]} ms per iteration\n", "")

    monkeypatch.setattr(gpu_notebooks.subprocess, "run", fake_run)
    saved = []
    rows = gpu_notebooks.run_speedups(gpu_notebooks.parse_args(["--speedup-iterations", "8", "--synthetic"]),
                                      lambda **parts: saved.append(len(parts["speedups"])))
    assert saved == [0, 1, 2, 3, 4], "the report is saved after every arm"
    assert [(row["arm"], row["speedup"]) for row in rows] == [
        ("float32, no XLA", 1.0), ("float32, XLA", 2.0), ("mixed precision, no XLA", 1.6),
        ("mixed precision, XLA", 4.0)]
    with pytest.raises(SystemExit):
        gpu_notebooks.parse_args(["--speedup-iterations", "2"])


def test_monitor_overhead_compares_one_model_with_and_without_the_callbacks(root):
    run = subprocess.run([sys.executable, str(root / "benchmarks" / "monitor_overhead.py"), "--epochs", "1",
                          "--repeats", "2"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "Agg"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert re.search(r"bare fit +\d+\.\d\d s", run.stdout), run.stdout
    assert re.search(r"with LiveCurves \+ UpdateRatio +\d+\.\d\d s +\(\d+ drawings", run.stdout), run.stdout
    assert re.search(r"overhead +[+-]\d+\.\d%", run.stdout), run.stdout


@pytest.fixture
def matmul_flops(root):
    return load_script(root, "matmul_flops")


def test_matmul_flops_options(matmul_flops):
    args = matmul_flops.parse_args([])
    assert (args.sizes, args.dtypes, args.repeats) == ([512, 1024, 2048], None, 5)
    args = matmul_flops.parse_args(["--sizes", "8", "16", "--dtypes", "float32", "--repeats", "2"])
    assert (args.sizes, args.dtypes, args.repeats) == ([8, 16], ["float32"], 2)
    for bad in (["--repeats", "0"], ["--sizes", "0"], ["--dtypes", "int8"]):
        with pytest.raises(SystemExit):
            matmul_flops.parse_args(bad)


def test_matmul_flops_runs_and_reports(root):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run([sys.executable, str(root / "benchmarks" / "matmul_flops.py"),
                          "--sizes", "8", "32", "--dtypes", "float32", "--repeats", "2"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    report = run.stdout
    assert len(re.findall(r"^ +(8|32) x (8|32) +float32 +\d+\.\d GFLOP/s", report, re.M)) == 2, report
    assert re.search(r"^device: .+, backend (tensorflow|jax|torch)", report, re.M), report
    assert re.search(r"^best float32 +\d+\.\d{4} TFLOP/s at n=(8|32)$", report, re.M), report
    assert "Tesla V100 125 T" in report, report


@pytest.fixture
def offline_wheels(root):
    return load_script(root, "offline_wheels")


def test_offline_wheels_reads_a_pip_freeze_or_bare_names(offline_wheels):
    freeze = "# from the GPU machine\nnumpy==2.5.2\n-e git+https://example.org/x.git#egg=x\nTyping_Extensions==4.15.0\n"
    assert offline_wheels.installed(freeze + "JAX, jaxlib scikit-learn\nx @ file:///src/x\n") == {
        "numpy": "2.5.2", "typing-extensions": "4.15.0", "jax": None, "jaxlib": None, "scikit-learn": None,
        "x": None}
    pip_list = "Package    Version  Editable project location\n---------- -------- ----\njax        0.11.2\n" \
               "course-lib 0.1.0    /work/main\n"
    assert offline_wheels.installed(pip_list) == {"jax": "0.11.2", "course-lib": "0.1.0"}
    with pytest.raises(ValueError, match="'numpy>=2' is not a package name or name==version"):
        offline_wheels.installed("numpy>=2")
    with pytest.raises(ValueError, match="names no packages"):
        offline_wheels.installed("# nothing\n")


def test_offline_wheels_needs_the_jax_extra_and_the_notebook_runner_and_no_tensorflow(offline_wheels):
    from packaging.requirements import Requirement

    names = {Requirement(line).name for line in offline_wheels.needed()}
    assert {"keras", "numpy", "scikit-learn", "ipywidgets", "jax", "nbclient", "nbformat", "ipykernel"} <= names
    assert not names & {"tensorflow", "tensorflow-cpu", "jupyterlab", "nbgrader", "pytest", "course-lib"}


def test_offline_wheels_downloads_only_what_the_target_lacks(offline_wheels, tmp_path, monkeypatch, capsys):
    import json

    calls = []

    def fake_pip(*arguments, hint=""):  # pip's resolver needs a registry; here it answers from a fixed report
        options = list(arguments)
        if arguments[0] == "install":
            constraints = Path(options[options.index("-c") + 1]).read_text()
            calls.append(("install", options, constraints))
            resolved = [("keras", "3.15.1"), ("NumPy", "2.5.2"), ("jax", "0.11.2"), ("namex", "0.1.0")]
            Path(options[options.index("--report") + 1]).write_text(json.dumps(
                {"install": [{"metadata": {"name": name, "version": version}} for name, version in resolved]}))
        else:
            calls.append(("download", options, None))
            dest = Path(options[options.index("--dest") + 1])
            for wheel in ("keras-3.15.1-py3-none-any.whl", "namex-0.1.0-py3-none-any.whl"):
                (dest / wheel).write_bytes(b"0" * 1024)

    monkeypatch.setattr(offline_wheels, "pip", fake_pip)
    have = tmp_path / "have.txt"
    have.write_text("numpy==2.5.2\njax\n")
    dest = tmp_path / "wheels"
    assert offline_wheels.main(["--have", str(have), "--python-version", "3.12", "--dest", str(dest)]) == 0
    (_, resolving, constraints), (_, downloading, _) = calls
    assert constraints == "numpy==2.5.2\n", "the target's versions constrain the resolution"
    for options in (resolving, downloading):
        assert options[options.index("--python-version") + 1] == "3.12" and "--only-binary=:all:" in options
        assert "manylinux2014_x86_64" in options
    assert "--dry-run" in resolving and "nbclient>=0.10" in resolving
    assert "--no-deps" in downloading and downloading[-2:] == ["keras==3.15.1", "namex==0.1.0"]
    out = capsys.readouterr().out
    assert "4 packages, 2 already on the target, 2 missing" in out and "2 wheels, 0.0 MiB" in out

    calls.clear()
    assert offline_wheels.main(["--have", str(have), "--dry-run"]) == 0
    assert [call[0] for call in calls] == ["install"], "a dry run downloads nothing"

    (dest / "keras-3.14.0-py3-none-any.whl").write_bytes(b"0")  # left from an earlier run
    assert offline_wheels.main(["--have", str(have), "--dest", str(dest)]) == 1
    assert "move them away before installing" in capsys.readouterr().out.splitlines()[-1]
    assert (dest / "keras-3.14.0-py3-none-any.whl").exists(), "nothing is deleted"


def test_offline_wheels_refuses_bad_options(offline_wheels, tmp_path, capsys):
    with pytest.raises(SystemExit):
        offline_wheels.parse_args(["--have", str(tmp_path / "absent.txt")])
    assert "absent.txt: no such file" in capsys.readouterr().err
    (tmp_path / "have.txt").write_text("numpy\n")
    with pytest.raises(SystemExit):
        offline_wheels.parse_args(["--have", str(tmp_path / "have.txt"), "--python-version", "312"])
    assert "--python-version must be like 3.12; got '312'" in capsys.readouterr().err
    (tmp_path / "bad.txt").write_text("numpy>=2.5\n")
    with pytest.raises(SystemExit, match="bad.txt: 'numpy>=2.5' is not a package name or name==version"):
        offline_wheels.main(["--have", str(tmp_path / "bad.txt"), "--dry-run"])


def test_offline_wheels_shows_pips_own_error_and_a_hint(offline_wheels):
    with pytest.raises(SystemExit) as failed:
        offline_wheels.pip("download", "--no-index", "--dest", "/nonexistent", "no-such-package-0", hint="try this")
    assert "pip download failed:" in str(failed.value) and "no-such-package-0" in str(failed.value)
    assert str(failed.value).endswith("\ntry this")


def test_step_cost_reports_ms_per_step_for_each_steps_per_execution(root):
    run = subprocess.run([sys.executable, str(root / "benchmarks" / "step_cost.py"), "--images", "256",
                          "--steps-per-execution", "1", "4"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert re.search(r"^backend (tensorflow|jax), devices .+; 784-100-10 MLP, batch 32, 8 steps per epoch$",
                     run.stdout, re.M), run.stdout
    rows = re.findall(r"^steps_per_execution +(\d+): +\d+\.\d\d s per epoch, \d+\.\d{3} ms per step; "
                      r"first fit of (\d+) steps \(compiling\) \d+\.\d\d s$", run.stdout, re.M)
    assert rows == [("1", "4"), ("4", "8")], run.stdout
    assert re.search(r"^OrderedEpochs in fit: +\d+\.\d\d s per epoch, \d+\.\d{3} ms per step \(steps_per_execution 4\)$",
                     run.stdout, re.M), run.stdout
    assert re.search(r"^fit of one batch: +\d+\.\d ms per call, mean of 10$", run.stdout, re.M), run.stdout
    assert re.search(r"^train_on_batch loop: +\d+\.\d\d s for 8 steps, \d+\.\d{3} ms per step$", run.stdout, re.M), run.stdout


def test_step_cost_refuses_bad_options(root):
    step_cost = load_script(root, "step_cost")
    for bad in (["--images", "0"], ["--batch-size", "0"], ["--steps-per-execution", "0"], ["--images", "16"]):
        with pytest.raises(SystemExit):
            step_cost.parse_args(bad)
