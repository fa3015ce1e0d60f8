"""The one entry point of picozoo.convert: a model id, a folder or an ONNX file, to ONNX,
Paddle-Lite, OpenVINO, MNN or NCNN, cached in the store.

>>> from picozoo.hub.registry import load_registry
>>> from picozoo.hub.store import Store
>>> from picozoo.settings import Settings
>>> from picozoo.targets import resolve_arg
>>> store = Store(Settings.from_env())
>>> r = convert(store, resolve_arg("picodet-s-416", load_registry()),
...             postprocess=False)  # doctest: +SKIP
>>> r.path.name, r.label, r.provenance.parity_passed  # doctest: +SKIP
('model.onnx', 'picodet-s-416', True)
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import PicozooError, UsageError
from ..hub.registry import INFERENCE_KINDS
from ..hub.store import Store
from ..paddle_dir import PaddleModel
from ..runtime.base import refuse_lite
from ..targets import Target
from .cached import convert_cached, disk_errors
from .p2o import refuse_quantized
from .result import ConversionResult
from .sources import Progress, resolve_source
from .to_engine import EngineWriter

if TYPE_CHECKING:
    from .to_lite import OptTool

FORMATS = ("onnx", "lite", "openvino", "mnn", "ncnn")
ENGINE_FORMATS = FORMATS[2:]


def convert(
    store: Store,
    target: Target | str,
    *,
    to: str = "onnx",
    postprocess: bool = True,
    opset: int = 11,
    simplify: bool = True,
    input_shape: dict[str, list[int]] | None = None,
    dynamic_batch: bool | None = None,
    fp16: bool = False,
    opt_bin: str | None = None,
    precision: str | None = None,
    pnnx_bin: str | None = None,
    progress: Progress | None = None,
    lite_python: str | None = None,
) -> ConversionResult:
    """Convert ``target`` (a model id: its inference tarball, pulled into ``store`` if missing;
    or a folder, cached as ``local-<name>``; or an ``.onnx`` file for the engines) to ``to``
    (``onnx``, ``lite``, ``openvino``, ``mnn`` or ``ncnn``), into the store.

    An identical earlier conversion comes back at once (``cached=True``). ONNX options:
    ``postprocess`` (which tarball of a model id), ``opset``, ``simplify`` (onnxsim),
    ``input_shape`` (``{input: dims}``), ``dynamic_batch`` (None: symbolic batch when the Paddle
    model has one and no NMS; True/False force it); inputs keep Paddle's feed order. Lite:
    ``fp16``, ``opt_bin`` (default: ``store.settings.lite_opt``; without one, the store's
    managed paddle_lite_opt, created with ``lite_python`` (default:
    ``store.settings.lite_python``) or a Python 3.7-3.10 found on the machine). Engines (from
    the ONNX, see :mod:`.onnx_input`; ONNX options apply to that step): ``precision`` (``fp32``
    default; see ``PRECISIONS`` in :mod:`picozoo.runtime.base`), ``pnnx_bin`` (NCNN).
    ``progress`` gets one line per step.

    Args:
        store: the cache (``Store(Settings.from_env())``).
        target: a :class:`~picozoo.targets.Target`, or a model id / path string (resolved
            with the registry of ``store.settings``).
        to: the output format.
        precision: engines: ``fp32`` (default), ``fp16``, ``bf16``, ``int8`` as the engine
            runs them; lite: ``fp32`` or ``fp16`` (the same as ``fp16=True``).

    Returns:
        A :class:`ConversionResult`: ``path`` of the main file, ``provenance`` (parity check,
        tool versions, options), ``cached``.

    Raises:
        UsageError: options that do not fit ``to`` or the model; an unknown model id.
        ConversionError, ParityError, MissingDependencyError: a step failed, the outputs
        disagree, a tool or extra is missing.

    Example:
        >>> store = Store(Settings.from_env())  # doctest: +SKIP
        >>> convert(store, "picodet-s-416", postprocess=False).path.name  # doctest: +SKIP
        'model.onnx'
    """
    if isinstance(target, str):
        from ..hub.registry import load_registry
        from ..targets import resolve_arg

        target = resolve_arg(target, load_registry(store.settings.registry_path))
    if to == "lite" and precision is not None:  # Lite's one reduced precision: opt's FP16
        if precision not in ("fp32", "fp16"):
            raise UsageError(
                f"--precision {precision} is not available for lite", hint="use one of: fp32, fp16"
            )
        fp16, precision = fp16 or precision == "fp16", None
    _check_options(
        to, fp16=fp16, input_shape=input_shape, dynamic_batch=dynamic_batch, precision=precision
    )
    if target.path is not None:
        refuse_lite(target.path)  # an ARM .nb is nobody's source
    if dynamic_batch and to != "lite":
        _refuse_dynamic_batch_with_nms(target, postprocess)
    from .to_lite import find_opt_tool, lite_recipe
    from .to_onnx import onnx_options, onnx_recipe

    if to in ENGINE_FORMATS:
        onnx_options(
            opset=opset, simplify=simplify, input_shape=input_shape, dynamic_batch=dynamic_batch
        )  # checked before any download
        to_onnx = functools.partial(
            convert,
            store,
            postprocess=postprocess,
            opset=opset,
            simplify=simplify,
            input_shape=input_shape,
            dynamic_batch=dynamic_batch,
            progress=progress,
        )
        return _convert_engine(
            store,
            target,
            to,
            precision=precision or "fp32",
            pnnx_bin=pnnx_bin,
            input_shape=input_shape,
            postprocess=postprocess,
            to_onnx=to_onnx,
            progress=progress,
        )

    # check options and tools before any download
    if to == "lite":
        tool = find_opt_tool(
            opt_bin or store.settings.lite_opt,
            store,
            lite_python or store.settings.lite_python,
            progress,
        )
    else:
        options = onnx_options(
            opset=opset, simplify=simplify, input_shape=input_shape, dynamic_batch=dynamic_batch
        )
    source = resolve_source(store, target, postprocess=postprocess, progress=progress)
    if to == "onnx" and isinstance(source.files, PaddleModel):
        refuse_quantized(source.files, target.arg)  # with what works instead, named as given
    say = (lambda m: progress(f"{source.label}: {m}")) if progress else None
    recipe = (
        lite_recipe(tool, fp16=fp16, side_python=_side_python(store, tool))
        if to == "lite"
        else onnx_recipe(options, image_size=source.image_size, progress=say)
    )
    return convert_cached(store, recipe, source)


def _side_python(store: Store, tool: OptTool) -> Path | None:
    """The Python that runs the x86 ``.nb`` of the parity check: the managed tool environment's
    (the optimizer's own, or one already in the store when ``--opt-bin`` was given)."""
    from ..runtime.lite import env_python
    from .lite_toolchain import find_tool_python

    if tool.kind == "managed" and tool.path is not None:
        return env_python(tool.path.parent)
    return find_tool_python(store)


def _convert_engine(
    store: Store,
    target: Target,
    to: str,
    *,
    precision: str,
    pnnx_bin: str | None,
    input_shape: dict[str, list[int]] | None,
    postprocess: bool,
    to_onnx: functools.partial[ConversionResult],
    progress: Progress | None,
) -> ConversionResult:
    """``target`` -> its ONNX (:mod:`.onnx_input`) -> ``to``, both cached."""
    from .onnx_input import engine_source
    from .to_engine import check_precision, engine_recipe

    check_precision(to, precision)
    writer = _engine_writer(to, pnnx_bin)  # tools checked before any download or conversion
    source = engine_source(
        store, target, postprocess=postprocess, to_onnx=to_onnx, progress=progress
    )
    say = (lambda m: progress(f"{source.label}: {m}")) if progress else None
    recipe = engine_recipe(
        writer,
        precision=precision,
        image_size=source.image_size,
        input_shape=input_shape,
        progress=say,
    )
    result = convert_cached(store, recipe, source)
    warn_downgrade(result)
    return result


def warn_downgrade(result: ConversionResult) -> None:
    """Warn on stderr (every time, a cached conversion too) when the engine computed the parity
    check in another precision than the one asked for (see the provenance's
    ``parity.precision_note``): the file is kept, the precision is not claimed."""
    import logging

    parity = result.provenance.parity
    if parity is not None and parity.precision_note:
        logging.getLogger("picozoo.convert").warning(
            "warning: %s: %s's parity errors are those of %s, not of %s",
            parity.precision_note,
            result.label,
            parity.executed_precision,
            parity.precision,
        )


def _engine_writer(to: str, pnnx_bin: str | None) -> EngineWriter:
    if to == "openvino":
        from .to_openvino import openvino_writer

        return openvino_writer()
    if to == "mnn":
        from .to_mnn import mnn_writer

        return mnn_writer()
    from .to_ncnn import ncnn_writer

    return ncnn_writer(pnnx_bin)


def copy_out(result: ConversionResult, out_dir: Path, *, source: Path | None = None) -> Path:
    """Copy the converted files and their provenance to ``out_dir``; return the main file's
    copy.

    Names: ``<name>[-nopp][-fp16|-bf16|-int8]`` + the output's suffixes (``.onnx``, ``.nb``,
    ``.xml`` + ``.bin``, ``.mnn`` + ``.io.json``, ``.ncnn.param`` + ``.ncnn.bin`` +
    ``.ncnn.io.json``) and ``<same>.provenance.json`` (engines: ``<same>.<engine>.provenance.json``;
    ``-nopp``: made from a model's tarball, or upstream's ONNX, without post-processing).
    ``<name>`` is the model id, ``local-<folder>`` for a Paddle folder, or the file's own name
    for an ``.onnx`` file given as ``source`` (``x/a.onnx`` -> ``a.mnn``; the cached conversion
    may have been made from a file of the same content under another name).

    A name holds one conversion: when one of those files is already in ``out_dir`` and the
    provenance there is not this conversion's (another source of the same name, other options,
    a file of the user's), or would be the source file itself, the copies are named
    ``<name>-<key>`` instead (``key``: the conversion's cache key); nothing is overwritten but
    an earlier copy of the same conversion.

    >>> copy_out(convert(store, resolve_arg("picodet-s-416", registry), postprocess=False),
    ...          Path("onnx"))  # doctest: +SKIP
    PosixPath('onnx/picodet-s-416-nopp.onnx')
    """
    with disk_errors(Path(out_dir), kept="the cached conversion is kept"):
        return _copy_out(result, Path(out_dir), source)


def _copy_out(result: ConversionResult, out_dir: Path, source: Path | None) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = result.label
    if source is not None and source.suffix.lower() == ".onnx":
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", source.stem) or stem
    prov = result.provenance
    if prov.source.without_postprocess:
        stem += "-nopp"
    if prov.options.run_precision != "fp32":
        stem += f"-{prov.options.run_precision}"
    key = prov.key or ""
    for name in (stem, f"{stem}-{key[:12]}"):
        pairs = _copies(result, out_dir, name)
        if not _taken(pairs, key, source):
            break
    else:
        raise UsageError(
            f"cannot copy {result.label} to {out_dir}: {pairs[-2][1].name} and "
            f"{pairs[-2][1].with_name(f'{stem}-{key[:12]}').name} are other files",
            hint="choose another --out folder",
        )
    for src, to in pairs:
        tmp = to.with_name(to.name + ".part")
        try:
            shutil.copyfile(src, tmp)
            tmp.replace(to)
        finally:
            tmp.unlink(missing_ok=True)  # a full disk leaves no .part behind
    return pairs[-2][1]


def _copies(result: ConversionResult, out_dir: Path, stem: str) -> list[tuple[Path, Path]]:
    """(cached file, its copy) of every file of ``result``: siblings, the main file, then the
    provenance (last)."""
    suffixes = result.path.name.split(".", 1)[1]  # "onnx", "ncnn.param", ...
    target = result.provenance.target
    prov_infix = f"{target}." if target in ENGINE_FORMATS else ""  # several engines, one --out
    siblings = result.provenance.output.files or {}
    pairs = [(result.path.parent / n, out_dir / f"{stem}.{n.split('.', 1)[1]}") for n in siblings]
    return [
        *pairs,
        (result.path, out_dir / f"{stem}.{suffixes}"),
        (result.provenance_path, out_dir / f"{stem}.{prov_infix}provenance.json"),
    ]


def _taken(pairs: list[tuple[Path, Path]], key: str, source: Path | None) -> bool:
    """Whether copying ``pairs`` would overwrite the source file, or a file that is not an
    earlier copy of the conversion ``key`` (its provenance copy says which)."""
    import json

    dests = [to for _, to in pairs]
    if source is not None and any(_same_file(to, source) for to in dests):
        return True
    if not any(os.path.lexists(to) for to in dests):
        return False
    try:
        earlier = json.loads(dests[-1].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    return not (isinstance(earlier, dict) and key and earlier.get("key") == key)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _refuse_dynamic_batch_with_nms(target: Target, postprocess: bool) -> None:
    """``--dynamic-batch`` on a Paddle model that ends in NMS: refused before any download or
    conversion work (a model id's tarball with post-processing; a folder whose program has a
    ``multiclass_nms`` op). paddle2onnx converts NMS for one image at a time."""
    from ..paddle_dir import find_paddle_model
    from ..resolve import plan
    from .shapes import nms_dynamic_batch_error, program_has_nms

    if target.model is not None:
        tarball = any(target.model.has(k) for k in INFERENCE_KINDS)
        if tarball and plan(target, "paddle", postprocess=postprocess).postprocess:
            raise nms_dynamic_batch_error()
        return
    if target.path is None or target.path.suffix == ".onnx":
        return
    try:
        files = find_paddle_model(target.path)
    except PicozooError:  # not a Paddle model: the conversion says so
        return
    if program_has_nms(files.model_file):
        raise nms_dynamic_batch_error()


def _check_options(
    to: str,
    *,
    fp16: bool,
    input_shape: dict[str, list[int]] | None,
    dynamic_batch: bool | None,
    precision: str | None = None,
) -> None:
    if to not in FORMATS:
        raise UsageError(f"unknown target format {to!r}", hint=f"use --to {'|'.join(FORMATS)}")
    if to != "lite" and fp16:
        hint = "use --precision fp16" if to in ENGINE_FORMATS else "drop --fp16 or use --to lite"
        raise UsageError("--fp16 applies to --to lite only", hint=hint)
    if to not in ENGINE_FORMATS and precision is not None:
        raise UsageError(
            "--precision applies to --to openvino|mnn|ncnn only",
            hint="drop --precision",
        )
    if to == "lite" and (input_shape or dynamic_batch is not None):
        raise UsageError(
            "--input-size/--dynamic-batch/--fixed-batch apply to --to onnx only",
            hint="Paddle-Lite keeps the shapes of the Paddle model",
        )
