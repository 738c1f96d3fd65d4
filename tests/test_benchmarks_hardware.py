"""benchmarks/matmul_flops.py: options, and a fast run end to end on tiny matrices."""
import importlib.util
import os
import re
import subprocess
import sys

import pytest


@pytest.fixture
def matmul_flops(root):
    spec = importlib.util.spec_from_file_location("matmul_flops", root / "benchmarks" / "matmul_flops.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
