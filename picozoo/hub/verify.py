"""``picozoo verify``: re-hash cached artifacts and unpacked files; ``deep`` checks structure.

Each cached blob is re-hashed against its ref, the registry pin and the lock pin; each file
of an unpacked tarball against the manifest written while unpacking (users load those files,
so a flipped byte there matters as much); each file of a converted output against its
``provenance.json`` and its pin (:meth:`~picozoo.hub.store.Store.converted_problems`; a
converted output's "model" is its label: a model id, or ``local-<name>`` for a local folder or
file).  ``deep`` adds: tarball members re-checked for safety and compared to the manifest,
``infer_cfg.yml`` parses, ONNX files (downloaded, unpacked or converted) pass
``onnx.checker``, ``.pdparams`` checkpoints are read with a restricted unpickler (parameter
count reported), and Paddle-Lite ``.nb`` files (the lite-fp32/fp16 tarballs, a quantized
``.nb``, a ``--to lite`` conversion) are parsed without running them
(:mod:`picozoo.naive_buffer`: optimizer version, targets, kernels by precision, ops, params
reported); a ``lite-fp16`` artifact must hold FP16 kernels, a ``lite-*`` tarball a ``.nb``.

>>> result = verify_cache(store, registry, deep=True)                     # doctest: +SKIP
>>> [str(p) for p in result.problems]                                     # doctest: +SKIP
['picodet-s-416 inference: unpacked file picodet_s_416_coco_lcnet/model.pdiparams: sha256 ...']
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import sha256_file
from ..errors import ArchiveError, InferConfigError, MissingDependencyError, ModelFileError
from ..onnx_files import check_external_data
from ..paddle_dir import INFER_CFG, MAX_CONFIG_BYTES, InferConfig, missing_inference_files
from ..yaml_strict import StrictYamlError, load_file
from .pins import PinFile
from .store import PROVENANCE, Ref, Store
from .unpack import TREE, check_members, check_unpacked, list_members, read_manifest


@dataclass(frozen=True)
class Problem:
    model: str
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.model} {self.kind}: {self.message}"


@dataclass
class VerifyResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_cache(
    store: Store,
    registry: Any,
    *,
    model_ids: Iterable[str] | None = None,
    deep: bool = False,
) -> VerifyResult:
    """Verify every cached artifact (or those of ``model_ids``); see the module docstring."""
    pins = store.pins()
    wanted = list(model_ids) if model_ids else None
    by_url = {a.url: a for a in registry.artifacts()} if registry is not None else {}
    result = VerifyResult()
    seen_models: set[str] = set()
    for ref in store.refs():
        model = ref.model_id
        if wanted is not None and model not in wanted:
            continue
        seen_models.add(model)
        problems, detail = _verify_ref(store, ref, by_url.get(ref.url), pins, deep)
        store.set_verified(ref.url, not problems)
        result.problems += problems
        result.rows.append(
            {
                "model": model,
                "kind": ref.kind,
                "status": "ok" if not problems else "FAILED",
                "size": ref.size,
                "sha256": ref.sha256,
                "files": detail.pop("files", 0),
                "params": detail.get("params"),
                "detail": "; ".join(f"{k}={v}" for k, v in detail.items()) or None,
                "problems": [p.message for p in problems],
            }
        )
    for item in store.converted():
        if wanted is not None and item.label not in wanted:
            continue
        seen_models.add(item.label)
        problems = _verify_converted(store, item, pins, deep)
        result.problems += problems
        result.rows.append(
            {
                "model": item.label,
                "kind": f"converted:{item.target}",
                "status": "ok" if not problems else "FAILED",
                "size": item.provenance.output.size,
                "sha256": item.provenance.output.sha256,
                "files": len(store.converted_files(item)),
                "params": None,
                "detail": f"key={item.key}",
                "problems": [p.message for p in problems],
            }
        )
    for folder in store.unreadable_converted():
        label = folder.parent.name
        if wanted is not None and label not in wanted:
            continue
        seen_models.add(label)
        message = (
            f"{folder / PROVENANCE} is missing or unreadable "
            "(the next `picozoo convert` builds it again; `picozoo cache rm` removes it)"
        )
        result.problems.append(Problem(label, "converted", message))
        result.rows.append(
            {"model": label, "kind": "converted", "status": "FAILED", "size": None,
             "sha256": None, "files": 0, "params": None, "detail": f"key={folder.name}",
             "problems": [message]}
        )  # fmt: skip
    for mid in wanted or []:
        if mid not in seen_models:
            result.problems.append(Problem(mid, "-", "nothing of this model is in the cache"))
    return result


def _verify_ref(
    store: Store, ref: Ref, artifact: Any, pins: PinFile, deep: bool
) -> tuple[list[Problem], dict[str, Any]]:
    model, kind = ref.model_id, ref.kind
    problems: list[Problem] = []
    detail: dict[str, Any] = {}

    def bad(msg: str) -> None:
        problems.append(Problem(model, kind, msg))

    sha = ref.sha256
    blob = store.blob_path(sha)
    if not blob.is_file():
        bad(f"cached file {blob} is missing")
    else:
        actual = sha256_file(blob)
        if actual != sha:
            bad(f"cached file {blob}: sha256 {actual}, recorded {sha} (bytes changed on disk)")
        if artifact is not None and artifact.sha256 and artifact.sha256 != sha:
            bad(f"recorded sha256 {sha} differs from the registry's {artifact.sha256}")
        pinned = pins.get(ref.url)
        if pinned is not None and pinned.sha256 != sha:
            bad(f"recorded sha256 {sha} differs from {pins.path}'s {pinned.sha256}")
    named = store.root / ref.path if ref.path and not ref.unpacked else None
    if named is not None:
        if not named.is_file():
            bad(f"cached file {named} is missing")
        elif not (blob.is_file() and os.path.samefile(named, blob)):
            actual = sha256_file(named)
            if actual != sha:
                bad(f"cached file {named}: sha256 {actual}, recorded {sha} (bytes changed on disk)")
    if ref.unpacked:
        udir = store.root / ref.unpacked
        n = _verify_unpacked(udir, bad)
        detail["files"] = n
        if deep and blob.is_file():
            _deep_tarball(blob, udir, kind, bad, detail)
    elif deep and blob.is_file():
        name = ref.url.rsplit("/", 1)[-1]
        if name.endswith(".onnx"):
            _deep_onnx(blob, bad, detail)
        elif name.endswith(".pdparams"):
            _deep_pdparams(blob, bad, detail)
        elif name.endswith((".yml", ".yaml")):
            _deep_yaml(blob, bad)
        elif name.endswith(".nb"):
            _deep_nb(blob, kind, bad, detail, name=name)
    return problems, detail


def _verify_converted(store: Store, item: Any, pins: PinFile, deep: bool) -> list[Problem]:
    """A converted output's files against its provenance and pins; ``deep``: an ONNX output
    also passes ``onnx.checker``."""
    kind = f"converted:{item.target}"
    hint = " (the next `picozoo convert` builds it again)"
    problems = [Problem(item.label, kind, m + hint) for m in store.converted_problems(item, pins)]
    if deep and not problems and item.path.suffix == ".onnx":
        _deep_onnx(item.path, lambda m: problems.append(Problem(item.label, kind, m)), {})
    if deep and not problems and item.path.suffix == ".nb":
        said = lambda m: problems.append(Problem(item.label, kind, m))  # noqa: E731
        _deep_nb(item.path, "lite-fp16" if item.provenance.options.fp16 else "lite", said, {})
        for name in item.provenance.output.files or {}:  # the x86 .nb of the parity check
            if name.endswith(".nb"):
                _deep_nb(item.path.parent / name, "lite-x86", said, {})
    return problems


def _verify_unpacked(udir: Path, bad: Any) -> int:
    n, problems = check_unpacked(udir)
    for msg in problems:
        bad(msg)
    return n


def _deep_tarball(
    blob: Path, udir: Path, kind: str, bad: Any, detail: dict[str, Any] | None = None
) -> None:
    try:
        names = check_members(list_members(blob), str(blob))
    except ArchiveError as e:
        bad(e.message)
        return
    manifest = read_manifest(udir) or {}
    if sorted(names) != sorted(manifest.get("members", [])):
        bad("tarball members differ from what was unpacked")
    root = udir / str(manifest.get("root", TREE))
    if kind.startswith("inference"):
        missing = missing_inference_files(root)
        if missing:
            bad(f"not a Paddle inference model: missing {', '.join(missing)}")
        if (root / INFER_CFG).is_file():
            _deep_infer_cfg(root / INFER_CFG, bad)
    for p in sorted(root.rglob("*.onnx")):
        _deep_onnx(p, bad, {})
    nbs = sorted(root.rglob("*.nb"))
    if kind.startswith("lite") and not nbs:
        bad("a Paddle-Lite artifact without a .nb file")
    for p in nbs:
        _deep_nb(p, kind, bad, detail if detail is not None else {}, name=str(p.relative_to(root)))


def _deep_nb(path: Path, kind: str, bad: Any, detail: dict[str, Any], name: str = "") -> None:
    """A Paddle-Lite ``.nb`` parses (:func:`picozoo.naive_buffer.read_nb_file`, no code run);
    its facts go to ``detail["lite"][name]``; a ``*-fp16`` kind must hold FP16 kernels."""
    from ..naive_buffer import read_nb_file

    try:
        nb = read_nb_file(path)
    except ModelFileError as e:
        bad(e.message)
        return
    label = name or path.name
    kernels = ", ".join(f"{n} {k}" for k, n in nb.places.items())
    summary = (
        f"{label} {nb.opt_version} {'/'.join(nb.targets)}: {len(nb.ops)} ops, "
        f"{nb.fp16_kernels} FP16 kernels of {len(nb.kernels)}, {nb.params} weight tensors"
    )
    detail["nb"] = "; ".join(filter(None, [detail.get("nb"), summary]))
    detail["params"] = int(detail.get("params") or 0) + nb.param_elements
    if kind.endswith("fp16") and not nb.fp16_kernels:
        bad(f"{label}: a {kind} model without FP16 kernels ({kernels})")


def _deep_yaml(path: Path, bad: Any) -> None:
    """A YAML file parses with picozoo's strict loader (no aliases, duplicate keys, ...)."""
    try:
        load_file(path, max_bytes=MAX_CONFIG_BYTES)
    except StrictYamlError as e:
        bad(f"{path.name}: {e.problem}")


def _deep_infer_cfg(path: Path, bad: Any) -> None:
    """An ``infer_cfg.yml`` passes the checks ``infer``, ``eval`` and ``convert`` make."""
    try:
        InferConfig.load(path)
    except InferConfigError as e:
        bad(f"{INFER_CFG}: {e.message.removeprefix(str(path) + ': ')}")


def _deep_onnx(path: Path, bad: Any, detail: dict[str, Any]) -> None:
    try:
        import onnx
    except ImportError as e:
        raise MissingDependencyError(
            "onnx", "convert", why=f" (needed to check {path.name})"
        ) from e
    try:
        check_external_data(path)
    except ModelFileError as e:
        bad(e.message)
        return
    try:
        onnx.checker.check_model(str(path))
    except Exception as e:  # onnx raises several unrelated types
        bad(f"{path.name} fails onnx.checker: {str(e).splitlines()[0] if str(e) else e}")
        return
    detail["onnx"] = "checker ok"


def _deep_pdparams(path: Path, bad: Any, detail: dict[str, Any]) -> None:
    from ..errors import CheckpointError
    from .checkpoint import read_pdparams

    try:
        info = read_pdparams(path)
    except CheckpointError as e:
        bad(e.message)
        return
    detail["tensors"] = len(info.tensors)
    detail["params"] = info.params
