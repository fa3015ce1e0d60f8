"""Load and validate ``registry.yaml`` into frozen dataclasses.

The registry is the single declarative description of the zoo: models, what upstream claims
about them, and every downloadable artifact with its exact upstream URL.

>>> reg = load_registry()
>>> reg.get("picodet-s-416").artifact("inference").url
'https://paddledet.bj.bcebos.com/deploy/Inference/picodet_s_416_coco_lcnet.tar'
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import RegistryError, UnknownArtifactError, UnknownModelError

#: The fixed vocabulary of artifact kinds.
ARTIFACT_KINDS: tuple[str, ...] = (
    "weights",  # training checkpoint (.pdparams)
    "log",  # training log
    "config",  # PaddleDetection config (.yml, on GitHub)
    "slim-config",  # PaddleSlim quantization config
    "inference",  # Paddle inference tarball, exported with post-processing (NMS)
    "inference-nopp",  # Paddle inference tarball, exported without post-processing
    "onnx",  # ONNX with post-processing
    "onnx-nopp",  # ONNX without post-processing
    "lite-fp32",  # Paddle-Lite .nb for ARM, FP32 (tarball)
    "lite-fp16",  # Paddle-Lite .nb for ARM, FP16 (tarball)
    "lite-int8",  # Paddle-Lite .nb, INT8 (quantized model), with post-processing
    "lite-int8-nopp",  # Paddle-Lite .nb, INT8, without post-processing
)
#: Kinds that are Paddle inference models (tarballs with model + params + infer_cfg.yml).
INFERENCE_KINDS = ("inference", "inference-nopp")
CLAIM_FIELDS = ("map", "map50", "params_m", "flops_g")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9.\-]*$")


@dataclass(frozen=True)
class Artifact:
    """One downloadable file of a model."""

    model_id: str
    kind: str
    url: str
    sha256: str | None = None
    size: int | None = None

    @property
    def filename(self) -> str:
        """Last path component of the URL, e.g. ``picodet_s_416_coco_lcnet.tar``."""
        return self.url_path.rsplit("/", 1)[-1]

    @property
    def url_path(self) -> str:
        """The URL path without the leading slash, e.g. ``deploy/Inference/x.tar``."""
        return urlsplit(self.url).path.lstrip("/")

    @property
    def is_tarball(self) -> bool:
        return self.filename.endswith((".tar", ".tar.gz", ".tgz"))


@dataclass(frozen=True)
class Claims:
    """What upstream claims about a model (``None`` where upstream gives nothing)."""

    map: float | None = None
    map50: float | None = None
    params_m: float | None = None
    flops_g: float | None = None
    latency_ms: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "map": self.map,
            "map50": self.map50,
            "params_m": self.params_m,
            "flops_g": self.flops_g,
            "latency_ms": dict(self.latency_ms),
        }


@dataclass(frozen=True)
class Family:
    """A group of models from one upstream table, with its benchmark conditions."""

    id: str
    title: str
    source: str = ""
    dataset: str = ""
    legacy: bool = False
    reference: bool = False
    latency: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Model:
    """A model of the zoo and its artifacts."""

    id: str
    family: str
    name: str
    input_size: tuple[int, int]
    claims: Claims
    artifacts: tuple[Artifact, ...]
    quantized: bool = False
    base_model: str | None = None

    @property
    def kinds(self) -> list[str]:
        return [a.kind for a in self.artifacts]

    def artifact(self, kind: str) -> Artifact:
        """The artifact of ``kind``; raises :class:`UnknownArtifactError` if there is none."""
        for a in self.artifacts:
            if a.kind == kind:
                return a
        raise UnknownArtifactError(self.id, kind, self.kinds)

    def has(self, kind: str) -> bool:
        return any(a.kind == kind for a in self.artifacts)


@dataclass(frozen=True)
class Registry:
    """The loaded registry: families, models, and the upstream origin URL."""

    path: str
    origin: str
    families: Mapping[str, Family]
    models: tuple[Model, ...]

    def get(self, model_id: str) -> Model:
        """The model with this id, or :class:`UnknownModelError` with suggestions."""
        for m in self.models:
            if m.id == model_id:
                return m
        ids = [m.id for m in self.models]
        close = difflib.get_close_matches(model_id.lower(), ids, n=3, cutoff=0.6)
        if not close:
            close = [i for i in ids if model_id.lower() in i][:3]
        raise UnknownModelError(model_id, close)

    def select(self, model_ids: Iterable[str]) -> list[Model]:
        return [self.get(i) for i in model_ids]

    def artifacts(self) -> Iterable[Artifact]:
        for m in self.models:
            yield from m.artifacts

    def family_of(self, model: Model) -> Family:
        return self.families[model.family]


def packaged_registry_path() -> Path:
    """Path of the registry shipped with picozoo (inside the wheel, or the repo's top level)."""
    package = Path(__file__).resolve().parent.parent
    inside = package / "registry.yaml"
    return inside if inside.is_file() else package.parent / "registry.yaml"


def load_registry(path: str | os.PathLike[str] | None = None) -> Registry:
    """Load and validate a registry: ``path``, else the packaged one.

    >>> load_registry().get("picodet-xs-320").input_size
    (320, 320)
    """
    import yaml

    p = Path(path or packaged_registry_path())
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise RegistryError(str(p), f"cannot read: {e.strerror or e}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise RegistryError(str(p), f"not valid YAML{where}") from e
    return parse_registry(data, str(p))


def parse_registry(data: Any, path: str = "<registry>") -> Registry:
    """Validate an already-parsed registry document; see :func:`load_registry`."""
    v = _Validator(path)
    doc = v.mapping(data, None, "(top level)", {"schema", "origin", "families", "models"})
    if doc.get("schema", 1) != 1:
        raise RegistryError(path, f"unsupported schema {doc.get('schema')!r} (expected 1)")
    origin = v.string(doc.get("origin", "https://paddledet.bj.bcebos.com"), None, "origin")
    families = {
        fid: v.family(fid, fdata)
        for fid, fdata in v.mapping(doc.get("families") or {}, None, "families", None).items()
    }
    raw_models = doc.get("models")
    if not isinstance(raw_models, list) or not raw_models:
        raise RegistryError(path, "must have a non-empty list", field="models")
    models: list[Model] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_models):
        m = v.model(i, raw, families)
        if m.id in seen:
            raise RegistryError(path, "duplicate model id", entry=m.id, field="id")
        seen.add(m.id)
        models.append(m)
    for m in models:
        if m.base_model and m.base_model not in seen:
            raise RegistryError(path, "names an unknown model", entry=m.id, field="base_model")
    return Registry(path=path, origin=origin.rstrip("/"), families=families, models=tuple(models))


class _Validator:
    """Turns YAML data into dataclasses, raising :class:`RegistryError` with the exact place."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, entry: str | None, fld: str | None, problem: str) -> RegistryError:
        return RegistryError(self.path, problem, entry=entry, field=fld)

    def mapping(
        self, data: Any, entry: str | None, fld: str, allowed: set[str] | None
    ) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(entry, fld, f"must be a mapping, got {type(data).__name__}")
        if allowed is not None:
            unknown = sorted(set(map(str, data)) - allowed)
            if unknown:
                raise self.fail(
                    entry, unknown[0], f"unknown field (allowed: {', '.join(sorted(allowed))})"
                )
        return data

    def string(self, data: Any, entry: str | None, fld: str) -> str:
        if not isinstance(data, str) or not data.strip():
            raise self.fail(entry, fld, "must be a non-empty string")
        return data

    def number(self, data: Any, entry: str, fld: str) -> float | None:
        if data is None:
            return None
        if isinstance(data, bool) or not isinstance(data, (int, float)) or data < 0:
            raise self.fail(entry, fld, f"must be a non-negative number, got {data!r}")
        return float(data)

    def boolean(self, data: Any, entry: str, fld: str) -> bool:
        if not isinstance(data, bool):
            raise self.fail(entry, fld, f"must be true or false, got {data!r}")
        return data

    def family(self, fid: str, data: Any) -> Family:
        d = self.mapping(
            data,
            fid,
            "families",
            {"title", "source", "dataset", "legacy", "reference", "latency"},
        )
        latency = self.mapping(d.get("latency") or {}, fid, "latency", None)
        return Family(
            id=fid,
            title=self.string(d.get("title", fid), fid, "title"),
            source=str(d.get("source", "")),
            dataset=str(d.get("dataset", "")),
            legacy=self.boolean(d.get("legacy", False), fid, "legacy"),
            reference=self.boolean(d.get("reference", False), fid, "reference"),
            latency={str(k): self.string(val, fid, f"latency.{k}") for k, val in latency.items()},
        )

    def model(self, index: int, data: Any, families: Mapping[str, Family]) -> Model:
        entry = f"models[{index}]"
        if isinstance(data, dict) and isinstance(data.get("id"), str):
            entry = data["id"]
        d = self.mapping(
            data,
            entry,
            "models",
            {
                "id",
                "family",
                "name",
                "input_size",
                "claims",
                "artifacts",
                "quantized",
                "base_model",
            },
        )
        mid = self.string(d.get("id"), entry, "id")
        if not _MODEL_ID.match(mid):
            raise self.fail(entry, "id", "must be lower-case letters, digits, '.' and '-'")
        fam = self.string(d.get("family"), mid, "family")
        if fam not in families:
            raise self.fail(mid, "family", f"unknown family {fam!r} (known: {', '.join(families)})")
        size = d.get("input_size")
        if (
            not isinstance(size, list)
            or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
        ):
            raise self.fail(
                mid, "input_size", f"must be [height, width] of positive ints, got {size!r}"
            )
        arts_raw = d.get("artifacts", [])
        if not isinstance(arts_raw, list):
            raise self.fail(mid, "artifacts", "must be a list")
        artifacts = tuple(self.artifact(mid, j, a) for j, a in enumerate(arts_raw))
        kinds = [a.kind for a in artifacts]
        dup = next((k for k in kinds if kinds.count(k) > 1), None)
        if dup:
            raise self.fail(mid, "artifacts", f"kind {dup!r} appears twice")
        base = d.get("base_model")
        return Model(
            id=mid,
            family=fam,
            name=self.string(d.get("name", mid), mid, "name"),
            input_size=(size[0], size[1]),
            claims=self.claims(mid, d.get("claims") or {}),
            artifacts=artifacts,
            quantized=self.boolean(d.get("quantized", False), mid, "quantized"),
            base_model=self.string(base, mid, "base_model") if base is not None else None,
        )

    def claims(self, mid: str, data: Any) -> Claims:
        d = self.mapping(data, mid, "claims", {*CLAIM_FIELDS, "latency_ms"})
        lat = self.mapping(d.get("latency_ms") or {}, mid, "claims.latency_ms", None)
        latency: dict[str, float] = {}
        for k, val in lat.items():
            num = self.number(val, mid, f"claims.latency_ms.{k}")
            if num is not None:
                latency[str(k)] = num
        nums = {k: self.number(d.get(k), mid, f"claims.{k}") for k in CLAIM_FIELDS}
        return Claims(latency_ms=latency, **nums)

    def artifact(self, mid: str, j: int, data: Any) -> Artifact:
        fld = f"artifacts[{j}]"
        d = self.mapping(data, mid, fld, {"kind", "url", "sha256", "size"})
        kind = self.string(d.get("kind"), mid, f"{fld}.kind")
        if kind not in ARTIFACT_KINDS:
            raise self.fail(
                mid, f"{fld}.kind", f"unknown kind {kind!r} (known: {', '.join(ARTIFACT_KINDS)})"
            )
        url = self.string(d.get("url"), mid, f"{fld}.url")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or not parts.path.strip("/"):
            raise self.fail(mid, f"{fld}.url", f"must be an http(s) URL to a file, got {url!r}")
        sha = d.get("sha256")
        if sha is not None and (not isinstance(sha, str) or not _SHA256.match(sha)):
            raise self.fail(mid, f"{fld}.sha256", "must be 64 lower-case hex digits")
        size = d.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise self.fail(mid, f"{fld}.size", f"must be a non-negative integer, got {size!r}")
        return Artifact(model_id=mid, kind=kind, url=url, sha256=sha, size=size)
