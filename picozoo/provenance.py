"""The ``provenance.json`` written beside every converted model, as typed records.

:class:`Provenance` is what :mod:`picozoo.convert` writes and what the store (``cache ls``),
``convert --out``, engine conversions and the bench footnotes read: the target format, cache
key, tools, options, the source it was made from (:class:`SourceFacts`), the files it wrote
(:class:`OutputFacts`), the parity check (:class:`Parity`, one :class:`ParityOutput` per
output) and the detection agreement (:class:`Agreement`).

:meth:`Provenance.from_json` reads every provenance the converters write;
:meth:`~Provenance.to_json` gives back the same JSON: a field that is None is not written
(unless the format writes it as ``null``, e.g. a ``.nb``'s ``parity``), and every key a record
does not name is kept in its ``extra`` and written back as it was.

>>> p = Provenance.from_json({"target": "lite", "key": "0123", "options": {"fp16": True},
...                           "parity": None, "source": {"kind": "inference"}})
>>> p.target, p.options.fp16, p.parity, p.source.kind
('lite', True, None, 'inference')
>>> p.to_json()["parity"] is None and p.to_json()["options"] == {"fp16": True}
True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = [
    "Agreement",
    "Batch",
    "FileFacts",
    "Options",
    "OutputFacts",
    "Parity",
    "ParityOutput",
    "Provenance",
    "SourceFacts",
    "UpstreamArtifact",
    "read_cell_provenance",
]

R = TypeVar("R", bound="_Record")


def _kept(default: Any = None) -> Any:
    """A field written even when it is None (the format has it as ``null``)."""
    return field(default=default, metadata={"keep_none": True})


@dataclass(frozen=True)
class _Record:
    """JSON object <-> record: named keys become fields, the others go to ``extra``. A field's
    metadata says when it holds a record (``one``), a list of records (``list``) or a name ->
    record mapping (``map``), and whether it is written when None (``keep_none``)."""

    extra: Mapping[str, Any] = field(default_factory=dict, kw_only=True)

    @classmethod
    def from_json(cls: type[R], data: Mapping[str, Any]) -> R:
        rest = dict(data)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name != "extra" and f.name in rest:
                values[f.name] = _load(f, rest.pop(f.name))
        return cls(**values, extra=rest)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name != "extra" and (value is not None or f.metadata.get("keep_none")):
                out[f.name] = _dump(value)
        out.update(self.extra)
        return out


def _load(f: dataclasses.Field[Any], value: Any) -> Any:
    if value is None:
        return None
    if "one" in f.metadata:
        return f.metadata["one"].from_json(value)
    if "list" in f.metadata:
        return tuple(f.metadata["list"].from_json(v) for v in value)
    if "map" in f.metadata:
        return {k: f.metadata["map"].from_json(v) for k, v in value.items()}
    return value


def _dump(value: Any) -> Any:
    if isinstance(value, _Record):
        return value.to_json()
    if isinstance(value, tuple):
        return [_dump(v) for v in value]
    if isinstance(value, dict) and any(isinstance(v, _Record) for v in value.values()):
        return {k: _dump(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class FileFacts(_Record):
    """sha256 and size of one file of an output."""

    sha256: str = ""
    size: int = 0


@dataclass(frozen=True)
class Options(_Record):
    """The conversion options (also the cache key's); only the ones picozoo reads are named."""

    target: str | None = None
    opset: int | None = None  #: ``--to onnx``
    fp16: bool | None = None  #: ``--to lite``
    precision: str | None = None  #: the engine formats

    @property
    def run_precision(self) -> str:
        """``fp16`` for an fp16 ``.nb``, else the engine precision (``fp32`` when unset).

        >>> Options(fp16=True).run_precision, Options(precision="int8").run_precision
        ('fp16', 'int8')
        """
        return "fp16" if self.fp16 else (self.precision or "fp32")


@dataclass(frozen=True)
class SourceFacts(_Record):
    """What was converted: the model id's artifact (``model_id``, ``kind``, ``url``...) or a
    local ``path``, and the files read with their sha256."""

    model_id: str | None = None
    kind: str | None = None  #: the artifact kind, e.g. ``inference-nopp``
    url: str | None = None
    artifact_sha256: str | None = None
    postprocess: bool | None = None
    path: str | None = None  #: a folder or file given on the command line
    onnx: Mapping[str, Any] | None = None  #: engine formats: where the source ONNX came from
    directory: str | None = None
    model_file: str | None = None
    params_file: str | None = _kept()
    format: str | None = None  #: ``legacy``, ``pir`` or ``onnx``
    model_sha256: str | None = None
    params_sha256: str | None = _kept()
    sha256: str | None = None

    @property
    def without_postprocess(self) -> bool:
        """Made from a tarball or upstream ONNX without post-processing."""
        return self.kind in ("inference-nopp", "onnx-nopp")


@dataclass(frozen=True)
class Batch(_Record):
    dynamic: bool | None = None
    why: str | None = None


@dataclass(frozen=True)
class OutputFacts(_Record):
    """The converted files: the main one and its siblings, and the model's inputs/outputs."""

    file: str = ""
    sha256: str = ""
    size: int = 0
    #: the sibling files (e.g. an IR's ``model.bin``)
    files: dict[str, FileFacts] | None = field(default=None, metadata={"map": FileFacts})
    opset: int | None = None
    inputs: dict[str, list[Any]] | None = None
    input_order: list[str] | None = None
    outputs: dict[str, list[Any]] | None = None
    batch: Batch | None = field(default=None, metadata={"one": Batch})


@dataclass(frozen=True)
class ParityOutput(_Record):
    """One output of the parity check (see :func:`picozoo.convert.parity.compare`)."""

    index: int | None = None
    name: str = _kept("")
    paddle_name: str | None = _kept()
    shape: list[int] | None = None
    dtype: str | None = None
    atol: float | None = None
    rtol: float | None = None
    max_abs: float | None = None
    max_rel: float | None = None
    ok: bool = _kept(False)
    problem: str | None = None


@dataclass(frozen=True)
class Agreement(_Record):
    """Detections of both sides matched (:func:`picozoo.detect.agreement.agreement_on_images`),
    or why that was ``skipped``."""

    skipped: str | None = None
    images: int | str | None = None
    inputs: int | None = None
    threshold: float | None = None
    matched: int | None = None
    detections: int | None = None
    agreement: float | None = None
    mean_iou: float | None = _kept()
    max_score_diff: float | None = _kept()
    nms: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.skipped is not None:
            return {"skipped": self.skipped, **self.extra}
        return super().to_json()


@dataclass(frozen=True)
class Parity(_Record):
    """The parity check: ``passed`` is True, or ``"reported"`` at a reduced precision."""

    passed: bool | str | None = None
    seed: int | None = None
    inputs: dict[str, list[int]] | None = None
    rule: str | None = None
    outputs: tuple[ParityOutput, ...] = field(default=(), metadata={"list": ParityOutput})
    within_fp32_tolerance: bool | None = None
    reference: str | None = None
    engine: str | None = None
    precision: str | None = None  #: the precision asked for
    #: the precision the engine computed in, read back after loading (None: a provenance
    #: written before it was recorded)
    executed_precision: str | None = None
    #: why the engine did not compute in ``precision`` (None: it did)
    precision_note: str | None = None
    seeds: list[int] | None = None
    engine_settings: Mapping[str, Any] | None = None
    agreement: Agreement | None = field(default=None, metadata={"one": Agreement})

    @property
    def max_abs(self) -> float:
        """The largest absolute error over the outputs (0.0 without one)."""
        return max((o.max_abs or 0.0 for o in self.outputs), default=0.0)


@dataclass(frozen=True)
class Provenance(_Record):
    """One ``provenance.json`` (see the module docstring)."""

    schema: int | None = None
    target: str = ""  #: ``onnx``, ``lite``, ``openvino``, ``mnn`` or ``ncnn``
    key: str = ""
    label: str = ""
    created: str | None = None
    tools: Mapping[str, Any] | None = None
    options: Options = field(default_factory=Options, metadata={"one": Options})
    source: SourceFacts = field(default_factory=SourceFacts, metadata={"one": SourceFacts})
    source_onnx: str | None = None
    output: OutputFacts = field(default_factory=OutputFacts, metadata={"one": OutputFacts})
    parity: Parity | None = field(default=None, metadata={"one": Parity, "keep_none": True})
    parity_note: str | None = None
    detection_agreement: Agreement | None = field(default=None, metadata={"one": Agreement})
    converter: Mapping[str, Any] | None = None
    seconds: Mapping[str, float] | None = None

    @property
    def parity_passed(self) -> bool | str | None:
        """The parity verdict (None: no parity check, e.g. a ``.nb``)."""
        return self.parity.passed if self.parity is not None else None


@dataclass(frozen=True)
class UpstreamArtifact(_Record):
    """The provenance of a bench cell that ran a registry artifact as published."""

    artifact: str | None = None  #: its kind, e.g. ``onnx-nopp``
    url: str | None = None
    sha256: str | None = None
    #: where its bytes were downloaded from when not ``url`` (a ``PICOZOO_MIRROR``, without
    #: any user:password); None: from ``url``, or a result that does not say
    fetched_from: str | None = None


def read_cell_provenance(data: Mapping[str, Any] | None) -> Provenance | UpstreamArtifact | None:
    """What a bench cell saved as its provenance: a conversion's (it names its ``target``), a
    registry artifact's (it names the ``artifact``), or nothing (a file the user gave).

    >>> read_cell_provenance({"artifact": "onnx-nopp", "url": "https://h/m.onnx"}).url
    'https://h/m.onnx'
    >>> read_cell_provenance({"target": "onnx", "source": {"kind": "inference"}}).source.kind
    'inference'
    """
    if data and "target" in data:
        return Provenance.from_json(data)
    if data and "artifact" in data:
        return UpstreamArtifact.from_json(data)
    return None
