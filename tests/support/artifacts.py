"""Build small fake upstream artifacts and publish them in the upstream path layout.

>>> d = make_inference_dir(tmp / "m", seed=1)                 # doctest: +SKIP
>>> tar = make_inference_tarball(d, tmp / "picodet_s_416_coco_lcnet.tar")   # doctest: +SKIP
>>> publish(model.artifact("inference"), tar, mirror_root)    # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import tarfile
from pathlib import Path
from typing import Any

import yaml

INFER_CFG = """\
mode: paddle
draw_threshold: 0.5
metric: COCO
use_dynamic_shape: false
arch: GFL
min_subgraph_size: 3
Preprocess:
- interp: 2
  keep_ratio: false
  target_size:
  - {size}
  - {size}
  type: Resize
- is_scale: true
  mean:
  - 0.485
  - 0.456
  - 0.406
  std:
  - 0.229
  - 0.224
  - 0.225
  type: NormalizeImage
- type: Permute
label_list:
- person
- bicycle
- car
- motorcycle
- airplane
NMS:
  keep_top_k: 100
  name: MultiClassNMS
  nms_threshold: 0.6
  nms_top_k: 1000
  score_threshold: 0.025
fpn_stride:
- 8
- 16
- 32
- 64
"""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make_inference_dir(
    dest: Path, *, seed: int = 0, size: int = 416, pir: bool = False, nbytes: int = 4096
) -> Path:
    """A fake Paddle inference directory: random model/params bytes + a realistic infer_cfg.yml."""
    rnd = random.Random(seed)
    dest.mkdir(parents=True, exist_ok=True)
    model = "model.json" if pir else "model.pdmodel"
    (dest / model).write_bytes(rnd.randbytes(nbytes))
    (dest / "model.pdiparams").write_bytes(rnd.randbytes(nbytes * 4))
    (dest / "infer_cfg.yml").write_text(INFER_CFG.format(size=size), encoding="utf-8")
    return dest


def make_inference_tarball(model_dir: Path, dest_tar: Path) -> Path:
    """Tar ``model_dir``'s files under a top-level folder named after ``dest_tar`` (upstream
    layout: ``picodet_s_416_coco_lcnet.tar`` holds ``picodet_s_416_coco_lcnet/model.pdmodel``)."""
    top = dest_tar.name
    for ext in (".tar.gz", ".tgz", ".tar"):
        if top.endswith(ext):
            top = top[: -len(ext)]
            break
    mode = "w:gz" if dest_tar.name.endswith((".tar.gz", ".tgz")) else "w"
    dest_tar.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest_tar, mode) as tf:  # type: ignore[call-overload]
        tf.add(model_dir, arcname=top, recursive=False)
        for p in sorted(model_dir.iterdir()):
            tf.add(p, arcname=f"{top}/{p.name}")
    return dest_tar


def make_tarball(dest_tar: Path, members: list[dict[str, Any]]) -> Path:
    """A tarball from explicit member specs, for hostile archives.

    Each spec: ``{"name": ..., "type": tarfile.REGTYPE|SYMTYPE|LNKTYPE|DIRTYPE|CHRTYPE|FIFOTYPE,
    "data": b"...", "linkname": "..."}``.
    """
    with tarfile.open(dest_tar, "w", format=tarfile.GNU_FORMAT) as tf:
        for spec in members:
            ti = tarfile.TarInfo(spec["name"])
            ti.type = spec.get("type", tarfile.REGTYPE)
            ti.mode = spec.get("mode", 0o644)
            ti.linkname = spec.get("linkname", "")
            data = spec.get("data", b"")
            if ti.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                if ti.type in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                    ti.devmajor, ti.devminor = 1, 3
                tf.addfile(ti)
    return dest_tar


def publish(artifact: Any, src_file: Path, mirror_root: Path) -> Path:
    """Copy ``src_file`` to ``mirror_root / artifact.url_path`` (the upstream path layout)."""
    dest = Path(mirror_root) / artifact.url_path
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".publishing")
    shutil.copyfile(src_file, tmp)
    os.replace(tmp, dest)
    return dest


def write_registry(
    path: Path, model_ids: list[str], pins: dict[tuple[str, str], dict[str, Any]] | None = None
) -> Path:
    """A registry YAML with only ``model_ids`` of the packaged registry (real ids and URLs).

    ``pins`` maps ``(model_id, kind)`` to extra artifact fields, e.g.
    ``{"sha256": ..., "size": ...}``.
    """
    from picozoo.hub.registry import packaged_registry_path

    data = yaml.safe_load(packaged_registry_path().read_text(encoding="utf-8"))
    data["models"] = [m for m in data["models"] if m["id"] in model_ids]
    for m in data["models"]:
        m.pop("base_model", None)
        for a in m.get("artifacts", []):
            a.update((pins or {}).get((m["id"], a["kind"]), {}))
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def make_pdparams(dest: Path, *, seed: int = 0) -> Path:
    """A small checkpoint pickled like ``paddle.save(state_dict)``: {name: numpy array}.

    Conv (8*3*3*3 + 8) + BatchNorm (weight 8, bias 8; _mean/_variance 8+8 not counted) +
    Linear (8*4 + 4): 276 parameters, 292 elements.
    """
    import pickle

    import numpy as np

    rng = np.random.default_rng(seed)
    sd = {
        "backbone.conv.weight": rng.standard_normal((8, 3, 3, 3)).astype("float32"),
        "backbone.conv.bias": np.zeros(8, "float32"),
        "backbone.bn.weight": np.ones(8, "float32"),
        "backbone.bn.bias": np.zeros(8, "float32"),
        "backbone.bn._mean": np.zeros(8, "float32"),
        "backbone.bn._variance": np.ones(8, "float32"),
        "head.fc.weight": rng.standard_normal((8, 4)).astype("float32"),
        "head.fc.bias": np.zeros(4, "float32"),
        "StructuredToParameterName@@": {"backbone.conv.weight": "conv2d_0.w_0"},
    }
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as f:
        pickle.dump(sd, f, protocol=4)
    return dest


def make_artifact_file(artifact: Any, workdir: Path, *, seed: int = 0, nbytes: int = 4096) -> Path:
    """A plausible stand-in for any registry artifact (tarballs unpack to the right layout)."""
    rnd = random.Random(f"{seed}-{artifact.url}")
    out = workdir / "build" / f"{seed}" / artifact.kind / artifact.filename
    out.parent.mkdir(parents=True, exist_ok=True)
    name = artifact.filename
    if artifact.kind in ("inference", "inference-nopp"):
        d = make_inference_dir(
            workdir / "build" / f"{seed}" / artifact.kind / "src",
            seed=rnd.randrange(1 << 30),
            nbytes=nbytes,
        )
        return make_inference_tarball(d, out)
    if artifact.is_tarball:  # Paddle-Lite tarballs: a folder with a .nb file
        d = workdir / "build" / f"{seed}" / artifact.kind / "src"
        d.mkdir(parents=True, exist_ok=True)
        (d / "model.nb").write_bytes(rnd.randbytes(nbytes))
        return make_inference_tarball(d, out)
    if name.endswith(".pdparams"):
        return make_pdparams(out, seed=seed)
    if name.endswith((".yml", ".yaml")):
        out.write_text("architecture: PicoDet\nepoch: 300\n", encoding="utf-8")
    elif name.endswith(".log"):
        out.write_text("".join(f"[epoch {i}] loss: {rnd.random():.4f}\n" for i in range(50)))
    elif name.endswith(".onnx"):  # protobuf fields of an ONNX ModelProto around random bytes
        out.write_bytes(onnx_like(rnd.randbytes(nbytes)))
    else:
        out.write_bytes(rnd.randbytes(nbytes))
    return out


def onnx_like(payload: bytes) -> bytes:
    """Bytes that start like an ONNX model (ir_version, producer_name, then ``payload`` as the
    doc_string), so picozoo's content check accepts them as an ``.onnx`` download."""
    n, size = len(payload), b""
    while True:
        size += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            break
    return b"\x08\x08" + b"\x12\x07picozoo" + b"\x32" + size + payload


def build_mirror(
    registry: Any,
    mirror_root: Path,
    workdir: Path,
    model_ids: list[str],
    kinds: tuple[str, ...] = ("inference",),
    *,
    seed: int = 0,
    nbytes: int = 4096,
) -> dict[tuple[str, str], Path]:
    """Publish stand-ins of ``kinds`` ('all' for every kind) of ``model_ids`` under
    ``mirror_root`` in upstream's path layout; returns {(model_id, kind): published file}."""
    out = {}
    for mid in model_ids:
        model = registry.get(mid)
        for a in model.artifacts:
            if "all" in kinds or a.kind in kinds:
                src = make_artifact_file(a, workdir, seed=seed, nbytes=nbytes)
                out[(mid, a.kind)] = publish(a, src, mirror_root)
    return out


def tree_snapshot(root: Path) -> set[str]:
    """Every path under ``root`` (relative, POSIX), symlinks not followed."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


__all__ = [
    "build_mirror",
    "make_artifact_file",
    "make_inference_dir",
    "make_inference_tarball",
    "make_pdparams",
    "make_tarball",
    "onnx_like",
    "publish",
    "sha256_file",
    "tree_snapshot",
    "write_registry",
]
