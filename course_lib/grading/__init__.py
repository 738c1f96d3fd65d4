"""Assignment grading: checks for test cells (``expect_close`` and friends), and the
instructor pipeline behind ``course release`` and ``course verify`` (``grading.pipeline``)."""
from .checks import CheckFailed, expect, expect_close, expect_shape

__all__ = ["CheckFailed", "expect", "expect_close", "expect_shape"]
