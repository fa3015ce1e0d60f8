"""Registry models as conversion sources: pick the inference tarball, pull it if needed.

>>> source_kind(postprocess=False)
'inference-nopp'
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import PicozooError
from ..registry import Model, Registry
from .pipeline import OnnxHook, Progress, convert_to_cache
from .result import ConversionResult


def source_kind(*, postprocess: bool) -> str:
    """``inference`` (exported with NMS) or ``inference-nopp`` (raw scores and boxes)."""
    return "inference" if postprocess else "inference-nopp"


def source_dir(
    model: Model,
    *,
    postprocess: bool,
    cache_dir: Path,
    mirrors: str | Sequence[str] | None = None,
    offline: bool | None = None,
    progress: Progress | None = None,
) -> tuple[Path, dict[str, Any]]:
    """The unpacked inference directory of ``model`` (pulled if missing) and its metadata."""
    from ..cache import Cache

    artifact = model.artifact(source_kind(postprocess=postprocess))
    cache = Cache(Path(cache_dir))
    entry = cache.lookup(artifact)
    if entry is None:
        from ..fetch import pull

        if progress:
            progress(f"{model.id}: pulling {artifact.kind} ({artifact.filename})")
        pull(artifact, cache_dir=Path(cache_dir), mirrors=mirrors, offline=offline)
        entry = cache.lookup(artifact)
        if entry is None:  # pragma: no cover - pull guarantees an entry
            raise PicozooError(f"{model.id} {artifact.kind}: not in the cache after pulling")
    meta = {
        "model_id": model.id,
        "kind": artifact.kind,
        "url": artifact.url,
        "artifact_sha256": entry.sha256,
    }
    return entry.path, meta


def ensure_onnx(
    model: Model,
    *,
    postprocess: bool,
    cache_dir: Path,
    opset: int = 11,
    simplify: bool = True,
    input_shape: dict[str, list[int]] | None = None,
    dynamic_batch: bool = False,
    mirrors: str | Sequence[str] | None = None,
    offline: bool | None = None,
    progress: Progress | None = None,
    onnx_hook: OnnxHook | None = None,
) -> ConversionResult:
    """See :func:`picozoo.convert.ensure_onnx`."""
    src, meta = source_dir(
        model,
        postprocess=postprocess,
        cache_dir=cache_dir,
        mirrors=mirrors,
        offline=offline,
        progress=progress,
    )
    say = (lambda m: progress(f"{model.id}: {m}")) if progress else None
    return convert_to_cache(
        src,
        cache_dir=Path(cache_dir),
        label=model.id,
        opset=opset,
        simplify=simplify,
        input_shape=input_shape,
        dynamic_batch=dynamic_batch,
        image_size=model.input_size,
        source_meta={**meta, "postprocess": postprocess},
        onnx_hook=onnx_hook,
        progress=say,
    )


def cached_sources(registry: Registry, cache_dir: Path, *, postprocess: bool) -> list[Model]:
    """Models whose inference tarball of the selected kind is already in the cache."""
    from ..cache import Cache

    cache = Cache(Path(cache_dir))
    kind = source_kind(postprocess=postprocess)
    return [m for m in registry.models if m.has(kind) and cache.lookup(m.artifact(kind))]
