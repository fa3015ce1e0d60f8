"""Load and validate ``registry.yaml`` into frozen dataclasses.

The registry is the single declarative description of the zoo: models, what upstream claims
about them, and every downloadable artifact with its exact upstream URL.

>>> reg = load_registry()
>>> reg.get("picodet-s-416").artifact("inference").url
'https://paddledet.bj.bcebos.com/deploy/Inference/picodet_s_416_coco_lcnet.tar'

Upstream's file stems are aliases of the model ids (derived from the artifact URLs):

>>> reg.resolve("picodet_s_416_coco_lcnet_non_postprocess")[0].id
'picodet-s-416'
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import RegistryError, UnknownArtifactError, UnknownModelError, UsageError
from ..yaml_strict import StrictYamlError, read_text
from ..yaml_strict import strict_yaml as _strict_yaml
from .mirror import normalise_url

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
#: A registry larger than this is refused unread (the packaged one is ~30 KB).
MAX_REGISTRY_BYTES = 4 << 20
#: File-name endings stripped to get a file's stem.
_FILE_SUFFIXES = (
    ".tar.gz", ".tgz", ".tar", ".zip", ".onnx", ".pdparams", ".pdmodel", ".nb", ".yml",
    ".yaml", ".log",
)  # fmt: skip
#: Stem endings that name a variant of a model rather than another model.
_VARIANT_SUFFIXES = (
    "_non_postprocess", "_postprocessed", "_postprocess", "_fp16", "_fp32", "_int8", "_lite",
)  # fmt: skip
#: Kinds and their counterpart exported without post-processing.
_NOPP_KIND = {"inference": "inference-nopp", "onnx": "onnx-nopp", "lite-int8": "lite-int8-nopp"}


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


#: The fields of a latency claim's conditions (:class:`Conditions`).
CONDITION_FIELDS = ("engine", "threads", "precision", "postprocess")


@dataclass(frozen=True)
class Conditions:
    """How upstream measured a latency claim, as far as the registry says (None: not said):
    the engine, its threads, the precision and whether the model had its post-processing.
    The device itself is the family's ``latency`` text.

    >>> Conditions("paddle", 12, "fp32", False).to_dict()
    {'engine': 'paddle', 'threads': 12, 'precision': 'fp32', 'postprocess': False}
    """

    engine: str | None = None
    threads: int | None = None
    precision: str | None = None
    postprocess: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in CONDITION_FIELDS if getattr(self, k) is not None}


@dataclass(frozen=True)
class Claims:
    """What upstream claims about a model (``None`` where upstream gives nothing);
    ``conditions``: how each ``latency_ms`` device's figure was measured (the family's)."""

    map: float | None = None
    map50: float | None = None
    params_m: float | None = None
    flops_g: float | None = None
    latency_ms: Mapping[str, float] = field(default_factory=dict)
    conditions: Mapping[str, Conditions] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "map": self.map,
            "map50": self.map50,
            "params_m": self.params_m,
            "flops_g": self.flops_g,
            "latency_ms": dict(self.latency_ms),
        }
        if self.conditions:
            out["conditions"] = {k: c.to_dict() for k, c in self.conditions.items()}
        return out


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
    #: the latency devices' conditions as data (the comparisons a report may make)
    conditions: Mapping[str, Conditions] = field(default_factory=dict)


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

    def variant_kind(self, kind: str, postprocess: bool | None) -> str:
        """``kind``, switched to its with/without post-processing counterpart as asked
        (when the model has it); ``postprocess=None`` keeps ``kind``.

        >>> load_registry().get("picodet-s-416").variant_kind("onnx", postprocess=False)
        'onnx-nopp'
        """
        if postprocess is None:
            return kind
        pairs = _NOPP_KIND.items() if postprocess is False else _pp_kinds()
        other = dict(pairs).get(kind)
        return other if other is not None and self.has(other) else kind


def _pp_kinds() -> Iterable[tuple[str, str]]:
    return ((nopp, pp) for pp, nopp in _NOPP_KIND.items())


@dataclass(frozen=True)
class Alias:
    """An upstream file stem naming a model; ``postprocess`` is False for a
    ``_non_postprocess`` stem, True for a ``_postprocessed`` one, else None."""

    model_id: str
    postprocess: bool | None = None


def _look_alike(
    name: str, owner: Model, other: Model, families: Mapping[str, Family]
) -> UsageError:
    """``name`` is upstream's file name of ``owner`` but reads as the id of ``other`` (the
    2021 Lite tarball ``picodet_s_416.tar`` is picodet-legacy-s-416's, not picodet-s-416's):
    say whose name it is instead of silently taking either."""
    family = families.get(owner.family)
    of = f" ({family.title})" if family is not None and family.title else ""
    return UsageError(
        f"{name!r} is upstream's file name of {owner.id}{of}, not of {other.id}",
        hint=f"say which: {other.id}, or {owner.id}",
    )


@dataclass(frozen=True)
class Registry:
    """The loaded registry: families, models, and the upstream origin URL."""

    path: str
    origin: str
    families: Mapping[str, Family]
    models: tuple[Model, ...]
    aliases: Mapping[str, Alias] = field(default_factory=dict)

    def get(self, model_id: str) -> Model:
        """The model with this id or alias, or :class:`UnknownModelError` with suggestions.

        >>> load_registry().get("picodet_s_416_coco_lcnet").id
        'picodet-s-416'
        """
        return self.resolve(model_id)[0]

    def resolve(self, name: str) -> tuple[Model, bool | None]:
        """The model ``name`` (an id, or an upstream file stem or file name) names, and whether
        that name asks for the post-processed variant (None: it does not say)."""
        by_id = {m.id: m for m in self.models}
        key = name.strip().lower()
        alias = self.aliases.get(key) or self.aliases.get(file_stem(key))
        if name in by_id or key in by_id:
            return by_id[name if name in by_id else key], None
        if alias is not None:
            look_alike = by_id.get(file_stem(key).replace("_", "-"))
            if look_alike is not None and look_alike.id != alias.model_id:
                raise _look_alike(name, by_id[alias.model_id], look_alike, self.families)
            return by_id[alias.model_id], alias.postprocess
        names = [*by_id, *self.aliases]
        close = difflib.get_close_matches(key, names, n=3, cutoff=0.6)
        if not close:
            close = [i for i in names if key in i][:3]
        raise UnknownModelError(name, close)

    def aliases_of(self, model_id: str) -> list[str]:
        """The upstream file stems that name ``model_id``, sorted.

        >>> load_registry().aliases_of("picodet-legacy-s-320")
        ['picodet_s_320', 'picodet_s_320_coco', 'picodet_s_320_fp16']
        """
        return sorted(a for a, t in self.aliases.items() if t.model_id == model_id)

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
    p = Path(path or packaged_registry_path())
    try:
        text = read_text(p, max_bytes=MAX_REGISTRY_BYTES)
    except StrictYamlError as e:
        raise RegistryError(str(p), e.problem) from e
    return parse_registry(strict_yaml(text, str(p)), str(p))


def strict_yaml(text: str, path: str = "<registry>") -> Any:
    """Parse YAML with picozoo's one strict loader (:func:`picozoo.yaml_strict.strict_yaml`:
    no anchors or aliases, no nesting deeper than
    :data:`~picozoo.yaml_strict.MAX_YAML_DEPTH`, no duplicate keys,
    no non-finite numbers), as a :class:`RegistryError`.

    >>> strict_yaml("a: 1\\na: 2")
    Traceback (most recent call last):
    ...
    picozoo.errors.RegistryError: <registry>: not valid YAML at line 2: duplicate key 'a' ...
    """
    try:
        return _strict_yaml(text)
    except StrictYamlError as e:
        raise RegistryError(path, e.problem) from e


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
    return Registry(
        path=path,
        origin=origin.rstrip("/"),
        families=families,
        models=tuple(models),
        aliases=derive_aliases(models, path),
    )


def file_stem(filename: str) -> str:
    """A file name without its model-file ending (and a log's ``train_`` prefix).

    >>> file_stem("train_picodet_s_416_coco_lcnet.log"), file_stem("picodet_l_640.tar.gz")
    ('picodet_s_416_coco_lcnet', 'picodet_l_640')
    """
    for ext in _FILE_SUFFIXES:
        if filename.endswith(ext) and len(filename) > len(ext):
            filename = filename[: -len(ext)]
            if ext == ".log" and filename.startswith("train_"):
                filename = filename[len("train_") :]
            break
    return filename


def stem_aliases(filename: str) -> dict[str, bool | None]:
    """The aliases one upstream file name gives its model: its stem (which says whether it is
    the variant with or without post-processing) and the stem without variant suffixes.

    >>> stem_aliases("picodet_s_416_coco_lcnet_non_postprocess.tar")
    {'picodet_s_416_coco_lcnet_non_postprocess': False, 'picodet_s_416_coco_lcnet': None}
    """
    stem = file_stem(filename.lower())
    postprocess = False if "_non_postprocess" in stem else True if "_postprocess" in stem else None
    base = stem
    while suffix := next((x for x in _VARIANT_SUFFIXES if base.endswith(x)), ""):
        base = base[: -len(suffix)]
    return {stem: postprocess, base: None} if base and base != stem else {stem: postprocess}


def derive_aliases(models: Iterable[Model], path: str = "<registry>") -> dict[str, Alias]:
    """Upstream's names of each model, from the file stems of its artifact URLs. A file shared
    by two models (a quantized model's base config) names neither; a stem naming two models is
    a :class:`RegistryError`."""
    models = list(models)
    owners: dict[str, set[str]] = {}
    for m in models:
        for a in m.artifacts:
            owners.setdefault(a.url, set()).add(m.id)
    ids = {m.id for m in models}
    out: dict[str, Alias] = {}
    for m in models:
        for a in m.artifacts:
            if len(owners[a.url]) > 1:
                continue
            for name, postprocess in stem_aliases(a.filename).items():
                known = out.get(name)
                other = known.model_id if known else (name if name in ids else None)
                if other is not None and other != m.id:
                    raise RegistryError(
                        path,
                        f"alias {name!r} (the stem of {a.filename}) would name both "
                        f"{other!r} and {m.id!r}",
                        entry=m.id,
                        field="artifacts",
                    )
                if name == m.id:
                    continue
                same = known is None or known.postprocess == postprocess
                out[name] = Alias(m.id, postprocess if same else None)
    return out


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
        ok = isinstance(data, (int, float)) and not isinstance(data, bool)
        try:
            value = float(data) if ok else math.nan
        except OverflowError:  # an int too large for a float
            value = math.inf
        if not math.isfinite(value) or value < 0:
            raise self.fail(entry, fld, f"must be a finite non-negative number, got {data!r}")
        return value

    def boolean(self, data: Any, entry: str, fld: str) -> bool:
        if not isinstance(data, bool):
            raise self.fail(entry, fld, f"must be true or false, got {data!r}")
        return data

    def family(self, fid: str, data: Any) -> Family:
        d = self.mapping(
            data,
            fid,
            "families",
            {"title", "source", "dataset", "legacy", "reference", "latency", "conditions"},
        )
        latency = self.mapping(d.get("latency") or {}, fid, "latency", None)
        conditions = self.mapping(d.get("conditions") or {}, fid, "conditions", None)
        return Family(
            id=fid,
            title=self.string(d.get("title", fid), fid, "title"),
            source=str(d.get("source", "")),
            dataset=str(d.get("dataset", "")),
            legacy=self.boolean(d.get("legacy", False), fid, "legacy"),
            reference=self.boolean(d.get("reference", False), fid, "reference"),
            latency={str(k): self.string(val, fid, f"latency.{k}") for k, val in latency.items()},
            conditions={str(k): self.conditions(fid, str(k), v) for k, v in conditions.items()},
        )

    def conditions(self, fid: str, device: str, data: Any) -> Conditions:
        fld = f"conditions.{device}"
        d = self.mapping(data, fid, fld, set(CONDITION_FIELDS))
        threads, pp = d.get("threads"), d.get("postprocess")
        if threads is not None and (
            not isinstance(threads, int) or isinstance(threads, bool) or threads < 1
        ):
            raise self.fail(fid, f"{fld}.threads", f"must be a count >= 1, got {threads!r}")
        engine, precision = d.get("engine"), d.get("precision")
        return Conditions(
            engine=self.string(engine, fid, f"{fld}.engine") if engine is not None else None,
            threads=threads,
            precision=self.string(precision, fid, f"{fld}.precision") if precision else None,
            postprocess=self.boolean(pp, fid, f"{fld}.postprocess") if pp is not None else None,
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
            claims=dataclasses.replace(
                self.claims(mid, d.get("claims") or {}), conditions=families[fam].conditions
            ),
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
        return Claims(nums["map"], nums["map50"], nums["params_m"], nums["flops_g"], latency)

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
        try:
            url = normalise_url(url)
        except RegistryError as e:
            raise self.fail(mid, f"{fld}.url", e.problem) from e
        sha = d.get("sha256")
        if sha is not None and (not isinstance(sha, str) or not _SHA256.match(sha)):
            raise self.fail(mid, f"{fld}.sha256", "must be 64 lower-case hex digits")
        size = d.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise self.fail(mid, f"{fld}.size", f"must be a non-negative integer, got {size!r}")
        return Artifact(model_id=mid, kind=kind, url=url, sha256=sha, size=size)
