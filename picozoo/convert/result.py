"""The result of a conversion (light: no heavy imports).

>>> r = ConversionResult(Path("/c/converted/m/0123/model.onnx"),
...                      Provenance(key="0123", target="onnx"), cached=True, label="m")
>>> r.to_dict()["format"], r.to_dict()["provenance"]
('onnx', '/c/converted/m/0123/provenance.json')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..hub.store import PROVENANCE
from ..provenance import Provenance


@dataclass
class ConversionResult:
    """A converted model: its file (``model.onnx`` or ``model.nb``), its provenance, whether it
    came from the cache, and its cache label (a model id, or ``local-<folder name>``)."""

    path: Path
    provenance: Provenance = field(default_factory=Provenance)
    cached: bool = False
    label: str = ""

    @property
    def provenance_path(self) -> Path:
        """The ``provenance.json`` written next to :attr:`path`."""
        return self.path.parent / PROVENANCE

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "path": str(self.path),
            "cached": self.cached,
            "key": self.provenance.key or None,
            "format": self.provenance.target or None,
            "parity": self.provenance.parity.to_json() if self.provenance.parity else None,
            "provenance": str(self.provenance_path),
        }
