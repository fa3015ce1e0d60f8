"""One cached conversion, whatever the target format: key, cache hit, staging, provenance,
install, pin.

A target format supplies a :class:`Recipe`: its options and tool identities (both go into the
cache key) and a ``produce`` step that writes the output file (and its sibling files, e.g. an
IR's ``.bin``) into a staging folder and returns its own provenance fields. Everything else is
done here, once:

* the key is a hash of (source sha256, tools, options); the output lives in the store at
  ``converted/<label>/<key>/{model.onnx | model.nb | model.xml + model.bin | ...,
  provenance.json}``; every file's sha256 and size is in the provenance;
* a cache hit reads ``provenance.json`` and checks the files against it and their pins
  (:meth:`~picozoo.hub.store.Store.converted_problems`: size and sha256 of every file, no
  paddle/onnx import). A damaged output is converted again, with a warning on stderr: it is
  derived from the verified source, so rebuilding it loses nothing verified, and the new one
  passes the same parity check before it replaces the damaged one;
* a miss runs ``produce`` in a ``.tmp-*`` staging folder beside the final place, which appears
  only once every check passed (renamed into place); the files are then pinned in the pins file.

>>> cache_key("ab" * 32, {"onnx": "1.17.0"}, {"opset": 11})
'8c58bcea9e5d5ec2'
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..atomic import sha256_file
from ..errors import ConversionError, PicozooError
from ..hub.disk import disk_error
from ..hub.store import PROVENANCE, STAGING_PREFIX, Store
from ..provenance import Provenance
from .result import ConversionResult
from .sources import Source

SCHEMA = 1
_log = logging.getLogger("picozoo.convert")


@dataclass(frozen=True)
class Recipe:
    """What one target format supplies.

    ``produce(files, staging)`` (``files``: the source's
    :class:`~picozoo.paddle_dir.PaddleModel` or :class:`~picozoo.convert.sources.OnnxFile`)
    writes ``staging / output_file`` and the ``siblings`` beside it, and returns provenance
    fields (``output`` is merged with the files' names, sha256 and sizes).
    """

    target: str  #: ``onnx``, ``lite``, ``openvino``, ``mnn`` or ``ncnn``
    output_file: str  #: the main file: ``model.onnx``, ``model.nb``, ``model.xml``, ...
    options: dict[str, Any]
    tools: dict[str, Any]
    produce: Callable[[Any, Path], dict[str, Any]]
    siblings: tuple[str, ...] = ()  #: other files of the output, e.g. ``model.bin``


def cache_key(source_sha256: str, tools: dict[str, Any], options: dict[str, Any]) -> str:
    """16 hex digits identifying one conversion."""
    blob = json.dumps({"source": source_sha256, "tools": tools, "options": options}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def convert_cached(store: Store, recipe: Recipe, source: Source) -> ConversionResult:
    """Convert ``source`` into the store unless that exact conversion is already there.

    A full or read-only cache is one :class:`~picozoo.errors.DiskError` (exit 12).

    >>> convert_cached(Store(settings), onnx_recipe(...), local_source(Path("m")))  # doctest: +SKIP
    ConversionResult(path=PosixPath('.../converted/local-m/8c58bcea9e5d5ec2/model.onnx'), ...)
    """
    with disk_errors(store.root):
        return _convert_cached(store, recipe, source)


def _convert_cached(store: Store, recipe: Recipe, source: Source) -> ConversionResult:
    """:func:`convert_cached` without its disk-error translation."""
    shas = source.files.sha256()
    final = store.converted_dir(source.label, _key(recipe, shas))
    hit = store.read_converted(final)
    damage = store.converted_problems(hit) if hit is not None else []
    if hit is None and final.is_dir():
        damage = [f"{final / PROVENANCE} is missing or unreadable"]
    cached = hit is not None and not damage
    if not cached:
        if damage:  # a damaged output (file gone, truncated, changed): convert it again
            _log.warning("warning: %s; converting it again", damage[0])
            shutil.rmtree(final, ignore_errors=True)
        staging = store.staging_dir(final.parent)
        try:
            _build(staging, recipe, source, shas)
            store.install_dir(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        hit = store.read_converted(final)
    assert hit is not None
    store.pin_converted(hit)
    return ConversionResult(hit.path, hit.provenance, cached=cached, label=source.label)


def convert_into(out_dir: Path, recipe: Recipe, source: Source) -> ConversionResult:
    """Convert ``source`` into ``out_dir/<output file>`` + ``provenance.json`` (no cache); the
    files appear only once every check passed.

    >>> convert_into(Path("out"), onnx_recipe(...), local_source(Path("m"))).path  # doctest: +SKIP
    PosixPath('out/model.onnx')
    """
    out_dir = Path(out_dir)
    shas = source.files.sha256()
    with disk_errors(out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))
        try:
            prov = _build(staging, recipe, source, shas)
            for name in (*recipe.siblings, recipe.output_file, PROVENANCE):
                (staging / name).replace(out_dir / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return ConversionResult(out_dir / recipe.output_file, prov, label=source.label)


@contextlib.contextmanager
def disk_errors(where: Path, kept: str = "nothing was cached") -> Iterator[None]:
    """A full or read-only disk met by the body as one :class:`~picozoo.errors.DiskError`
    (exit 12) naming the file written; the body removes its own staging files."""
    try:
        yield
    except PicozooError:
        raise
    except OSError as e:
        if isinstance(e.filename2, str):  # a copy or rename: the destination is the one written
            e = OSError(e.errno, e.strerror, e.filename2)
        error = disk_error(e, where, kept=kept)
        if error is None:
            raise
        raise error from e


def _key(recipe: Recipe, shas: dict[str, str]) -> str:
    return cache_key(shas["combined"], recipe.tools, recipe.options)


def _build(staging: Path, recipe: Recipe, source: Source, shas: dict[str, str]) -> Provenance:
    """Run ``produce`` into ``staging`` and write its ``provenance.json``; return that."""
    try:
        fields = recipe.produce(source.files, staging)
    except ConversionError as e:  # native tools do not say ENOSPC: "iostream error" ...
        if _free_bytes(staging) < FULL_DISK_BYTES:
            full = disk_error(OSError(errno.ENOSPC, "No space left on device"), staging)
            assert full is not None
            raise full from e
        raise
    out = staging / recipe.output_file
    prov: dict[str, Any] = {
        "schema": SCHEMA,
        "target": recipe.target,
        "key": _key(recipe, shas),
        "label": source.label,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tools": recipe.tools,
        "options": recipe.options,
        "source": source.provenance(shas),
        **fields,
    }
    prov["output"] = {
        **fields.get("output", {}),
        "file": recipe.output_file,
        "sha256": sha256_file(out),
        "size": out.stat().st_size,
    }
    if recipe.siblings:
        prov["output"]["files"] = {
            name: {"sha256": sha256_file(staging / name), "size": (staging / name).stat().st_size}
            for name in recipe.siblings
        }
    record = Provenance.from_json(prov)
    (staging / PROVENANCE).write_text(json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n")
    return record


#: Less free space than this after a failed step: the disk was full (the tools do not say so).
FULL_DISK_BYTES = 1 << 20


def _free_bytes(path: Path) -> int:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return FULL_DISK_BYTES
