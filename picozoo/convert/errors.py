"""Errors of ``picozoo convert``: each says what went wrong and what to do next."""

from __future__ import annotations

from typing import Any

from ..errors import PicozooError


class ConversionError(PicozooError):
    """A conversion step failed (the cache is left untouched)."""

    exit_code = 4


class ToolchainError(ConversionError):
    """A converter is missing, or installed in a version picozoo cannot use."""

    exit_code = 5


class NewerPaddleModelError(ConversionError):
    """The model was saved by paddlepaddle >= 3.3, which paddle2onnx 2.1.0 cannot parse."""


class ParityError(ConversionError):
    """ONNX Runtime and Paddle Inference disagree on at least one output.

    ``failures`` holds the per-output comparison rows that failed.
    """

    exit_code = 6

    def __init__(self, message: str, *, hint: str | None, failures: list[dict[str, Any]]) -> None:
        super().__init__(message, hint=hint)
        self.failures = failures
