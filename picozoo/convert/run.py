"""What ``picozoo convert`` does for each argument: a model id or a plain directory.

>>> is_path_target("picodet-s-416")
False
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..registry import Registry
from .pipeline import Progress
from .result import ConversionResult


@dataclass
class Converted:
    """One converted target: what was asked for, its cache label and the result."""

    target: str
    label: str
    result: ConversionResult
    copied_to: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"target": self.target, "label": self.label, **self.result.to_dict()}
        d["copied_to"] = str(self.copied_to) if self.copied_to else None
        return d


def is_path_target(target: str) -> bool:
    """A target is a path when it names an existing file/directory or contains a separator."""
    return Path(target).exists() or "/" in target or target.startswith(".")


def select_targets(
    targets: list[str], registry: Registry, cache_dir: Path, *, postprocess: bool
) -> list[str]:
    """``targets``, or (when empty) every model whose selected inference tarball is cached."""
    if targets:
        return targets
    from .models import cached_sources, source_kind

    found = [m.id for m in cached_sources(registry, cache_dir, postprocess=postprocess)]
    if not found:
        kind = source_kind(postprocess=postprocess)
        flag = "" if postprocess else " --no-postprocess"
        raise UsageError(
            f"no model has an {kind!r} tarball in the cache ({cache_dir})",
            hint=f"name models (`picozoo convert picodet-s-416{flag}`) or pull them first "
            f"(`picozoo pull picodet-s-416 --artifact {kind}`)",
        )
    return found


def convert_target(
    target: str,
    *,
    registry: Registry,
    cache_dir: Path,
    to: str = "onnx",
    postprocess: bool = True,
    opset: int = 11,
    simplify: bool = True,
    input_shape: dict[str, list[int]] | None = None,
    dynamic_batch: bool = False,
    fp16: bool = False,
    opt_bin: str | None = None,
    progress: Progress | None = None,
) -> Converted:
    """Convert one model id or directory; cached results come back instantly."""
    if to not in ("onnx", "lite"):
        raise UsageError(f"unknown target format {to!r}", hint="use --to onnx or --to lite")
    if to == "onnx" and fp16:
        raise UsageError("--fp16 applies to --to lite only", hint="drop --fp16 or use --to lite")
    if to == "lite" and (input_shape or dynamic_batch):
        raise UsageError(
            "--input-shape/--dynamic-batch apply to --to onnx only",
            hint="Paddle-Lite keeps the shapes of the Paddle model",
        )
    meta: dict[str, Any]
    if is_path_target(target):
        from .pipeline import local_label

        src, label, image_size = Path(target), local_label(Path(target)), None
        meta = {"path": str(Path(target).resolve())}
    else:
        from .models import source_dir

        model = registry.get(target)
        src, meta = source_dir(
            model, postprocess=postprocess, cache_dir=cache_dir, progress=progress
        )
        meta["postprocess"] = postprocess
        label, image_size = model.id, model.input_size
    say = (lambda m: progress(f"{label}: {m}")) if progress else None
    if to == "lite":
        from .lite import convert_to_lite

        result = convert_to_lite(
            src, cache_dir=cache_dir, label=label, fp16=fp16, opt_bin=opt_bin, source_meta=meta
        )
    else:
        from .pipeline import convert_to_cache

        result = convert_to_cache(
            src,
            cache_dir=cache_dir,
            label=label,
            opset=opset,
            simplify=simplify,
            input_shape=input_shape,
            dynamic_batch=dynamic_batch,
            image_size=image_size,
            source_meta=meta,
            progress=say,
        )
    return Converted(target, label, result)


def copy_out(item: Converted, out_dir: Path, *, postprocess: bool, fp16: bool = False) -> Path:
    """Copy the converted file and its provenance to ``out_dir/<name>.<ext>``; return the copy.

    Names: ``<label>[-nopp][-fp16].onnx|.nb`` and ``<same>.provenance.json``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = item.label
    if not item.label.startswith("local-") and not postprocess:
        stem += "-nopp"
    if fp16:
        stem += "-fp16"
    src = item.result.path
    dest = out_dir / f"{stem}{src.suffix}"
    tmp = dest.with_name(dest.name + ".part")
    shutil.copyfile(src, tmp)
    tmp.replace(dest)
    shutil.copyfile(src.parent / "provenance.json", out_dir / f"{stem}.provenance.json")
    item.copied_to = dest
    return dest
