"""The one entry point of picozoo.convert: a model id or a folder, to ONNX or Paddle-Lite, cached
in the store.

>>> from picozoo.hub.registry import load_registry
>>> from picozoo.hub.store import Store
>>> from picozoo.settings import Settings
>>> from picozoo.targets import resolve_arg
>>> store = Store(Settings.from_env())
>>> r = convert(store, resolve_arg("picodet-s-416", load_registry()),
...             postprocess=False)  # doctest: +SKIP
>>> r.path.name, r.label, r.provenance["parity"]["passed"]  # doctest: +SKIP
('model.onnx', 'picodet-s-416', True)
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import UsageError
from ..hub.store import Store
from ..targets import Target
from .cached import convert_cached
from .result import ConversionResult
from .sources import Progress, resolve_source

FORMATS = ("onnx", "lite")


def convert(
    store: Store,
    target: Target,
    *,
    to: str = "onnx",
    postprocess: bool = True,
    opset: int = 11,
    simplify: bool = True,
    input_shape: dict[str, list[int]] | None = None,
    dynamic_batch: bool | None = None,
    fp16: bool = False,
    opt_bin: str | None = None,
    progress: Progress | None = None,
) -> ConversionResult:
    """Convert ``target`` (a model id: its inference tarball, pulled into ``store`` if missing;
    or a folder, cached as ``local-<name>``) to ``to`` (``onnx`` or ``lite``), into the store.

    An identical earlier conversion comes back at once (``cached=True``). ONNX options:
    ``postprocess`` (which tarball of a model id), ``opset``, ``simplify`` (onnxsim),
    ``input_shape`` (``{input: dims}``), ``dynamic_batch`` (None: symbolic batch when the Paddle
    model has one and no NMS; True/False force it); inputs keep Paddle's feed order. Lite:
    ``fp16``, ``opt_bin`` (default: ``store.settings.lite_opt``). ``progress`` gets one line per
    step.
    """
    _check_options(to, fp16=fp16, input_shape=input_shape, dynamic_batch=dynamic_batch)
    from .to_lite import find_opt_tool, lite_recipe
    from .to_onnx import onnx_options, onnx_recipe

    # check options and tools before any download
    if to == "lite":
        tool = find_opt_tool(opt_bin or store.settings.lite_opt)
    else:
        options = onnx_options(
            opset=opset, simplify=simplify, input_shape=input_shape, dynamic_batch=dynamic_batch
        )
    source = resolve_source(store, target, postprocess=postprocess, progress=progress)
    say = (lambda m: progress(f"{source.label}: {m}")) if progress else None
    recipe = (
        lite_recipe(tool, fp16=fp16)
        if to == "lite"
        else onnx_recipe(options, image_size=source.image_size, progress=say)
    )
    return convert_cached(store, recipe, source)


def copy_out(result: ConversionResult, out_dir: Path) -> Path:
    """Copy the converted file and its provenance to ``out_dir``; return the copy.

    Names: ``<label>[-nopp][-fp16].onnx|.nb`` and ``<same>.provenance.json`` (``-nopp``: made
    from a model's tarball without post-processing).

    >>> copy_out(convert(store, resolve_arg("picodet-s-416", registry), postprocess=False),
    ...          Path("onnx"))  # doctest: +SKIP
    PosixPath('onnx/picodet-s-416-nopp.onnx')
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = result.label
    if result.provenance.get("source", {}).get("kind") == "inference-nopp":
        stem += "-nopp"
    if result.provenance.get("options", {}).get("fp16"):
        stem += "-fp16"
    dest = out_dir / f"{stem}{result.path.suffix}"
    for src, to in (
        (result.path, dest),
        (result.provenance_path, dest.with_suffix(".provenance.json")),
    ):
        tmp = to.with_name(to.name + ".part")
        shutil.copyfile(src, tmp)
        tmp.replace(to)
    return dest


def _check_options(
    to: str, *, fp16: bool, input_shape: dict[str, list[int]] | None, dynamic_batch: bool | None
) -> None:
    if to not in FORMATS:
        raise UsageError(f"unknown target format {to!r}", hint="use --to onnx or --to lite")
    if to == "onnx" and fp16:
        raise UsageError("--fp16 applies to --to lite only", hint="drop --fp16 or use --to lite")
    if to == "lite" and (input_shape or dynamic_batch is not None):
        raise UsageError(
            "--input-shape/--dynamic-batch/--fixed-batch apply to --to onnx only",
            hint="Paddle-Lite keeps the shapes of the Paddle model",
        )
