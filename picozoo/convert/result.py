"""The result of a conversion (light: no heavy imports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ConversionResult:
    """A converted model: its file, its provenance, and whether it came from the cache."""

    path: Path
    provenance: dict[str, Any] = field(default_factory=dict)
    cached: bool = False

    @property
    def onnx_path(self) -> Path:
        """The converted file (``model.onnx`` for ONNX conversions)."""
        return self.path

    def to_dict(self) -> dict[str, Any]:
        parity = self.provenance.get("parity") or {}
        return {
            "path": str(self.path),
            "cached": self.cached,
            "key": self.provenance.get("key"),
            "format": self.provenance.get("target"),
            "parity": parity or None,
            "provenance": str(self.path.parent / "provenance.json"),
        }
