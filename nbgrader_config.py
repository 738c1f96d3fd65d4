"""The nbgrader course: assignments in source/, student versions in release/.

Used by nbgrader itself (``nbgrader generate_assignment``, ``autograde``, the formgrader)
and by ``course release`` / ``course verify``, which run nbgrader with this file.
"""
import os

from course_lib.cli import can_encrypt_kernels

c = get_config()  # noqa: F821  (nbgrader provides get_config when it reads this file)

c.CourseDirectory.course_id = "cnn-course"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))

# Every notebook runs on the standard Python kernel of the environment running nbgrader.
c.Execute.kernel_name = "python3"
# Per-cell limit: the longest test cell trains two small networks (a few seconds each).
c.Execute.timeout = 300
# Kernels that nbgrader starts over localhost TCP (Validate in the lab, `nbgrader validate`) get
# CurveZMQ keys where jupyter_client and pyzmq can give them, as those of `course run` and `course
# lab` do: their traffic is encrypted and ipykernel has no plain-text warning to print. "auto" keys
# only kernel specs that declare curve support; the grading sandbox's spec does not (its kernels
# talk over IPC sockets in a private folder).
if can_encrypt_kernels():
    c.KernelManager.transport_encryption = "auto"
# The grader's environment is inherited by the kernel: keep TensorFlow's C++ logs quiet and
# grade under the fast, deterministic profile unless the instructor chose another.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# nbgrader scores a test cell 0 when it wrote anything to stderr. TensorFlow, JAX and
# Python's warnings write there on their own, so drop stderr outputs that are only such
# noise: absl/C++ log lines (I1127 12:00:00.0 ...), Python logging (WARNING:absl:...),
# warnings (SomethingWarning: ...), and progress bars (tqdm). Errors are separate "error"
# outputs and still fail the cell.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = (
    r"(?m)^(?:"
    r"[IWEF]\d{4} \d\d:\d\d:\d\d"           # absl / TensorFlow C++ logs
    r"|WARNING: All log messages before absl"
    r"|(?:WARNING|INFO|DEBUG):[\w.]+:"       # Python logging through absl, tensorflow, jax
    r"|.*\b\w*Warning: "                     # warnings.warn(...) output
    r"|To enable the following instructions"
    r"|\s*\d+%\|"                           # tqdm progress bars
    r")"
)
