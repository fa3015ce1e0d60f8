"""Where converted models live, their cache key and provenance, and the lock entry.

Layout: ``<cache>/converted/<model_id>/<key>/{model.onnx | model.nb, provenance.json}``. The key
is a hash of (source sha256, tool versions, options); a directory appears only once every check
passed (it is built under a temporary name and renamed into place).

>>> cache_key("ab" * 32, {"onnx": "1.17.0"}, {"opset": 11})
'8c58bcea9e5d5ec2'
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

CONVERTED_DIR = "converted"
PROVENANCE = "provenance.json"
LOCK_PREFIX = "picozoo-converted:"


def cache_key(source_sha256: str, tools: dict[str, Any], options: dict[str, Any]) -> str:
    """16 hex digits identifying one conversion."""
    blob = json.dumps({"source": source_sha256, "tools": tools, "options": options}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def output_dir(cache_dir: Path, label: str, key: str) -> Path:
    return Path(cache_dir) / CONVERTED_DIR / label / key


def staging_dir(cache_dir: Path, label: str) -> Path:
    """A fresh temporary directory beside the final location (same filesystem)."""
    parent = Path(cache_dir) / CONVERTED_DIR / label
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".tmp-", dir=parent))


def install(staging: Path, final: Path) -> Path:
    """Move a finished ``staging`` directory to ``final`` (if another process won, keep theirs)."""
    try:
        os.replace(staging, final)
    except OSError:
        if not (final / PROVENANCE).is_file():
            raise
        shutil.rmtree(staging, ignore_errors=True)
    return final


def read_provenance(directory: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((directory / PROVENANCE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_provenance(directory: Path, data: dict[str, Any]) -> None:
    (directory / PROVENANCE).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def list_converted(model_id: str, cache_dir: Path) -> list[dict[str, Any]]:
    """Converted outputs of ``model_id`` in the cache, newest first (for ``picozoo show``).

    >>> list_converted("picodet-s-416", Path("/nonexistent"))
    []
    """
    root = Path(cache_dir) / CONVERTED_DIR / model_id
    if not root.is_dir():
        return []
    items = []
    for d in root.iterdir():
        prov = read_provenance(d) if d.is_dir() and not d.name.startswith(".") else None
        if prov is None:
            continue
        out = prov.get("output", {})
        parity = prov.get("parity") or {}
        items.append(
            {
                "key": d.name,
                "target": prov.get("target"),
                "path": str(d / out.get("file", "")),
                "sha256": out.get("sha256"),
                "size": out.get("size"),
                "source_kind": prov.get("source", {}).get("kind"),
                "options": prov.get("options", {}),
                "parity": (
                    None
                    if not parity
                    else {
                        "passed": parity.get("passed"),
                        "max_abs": max(
                            (o.get("max_abs", 0.0) for o in parity["outputs"]), default=0.0
                        ),
                    }
                ),
                "created": prov.get("created"),
            }
        )
    items.sort(key=lambda i: str(i.get("created") or ""), reverse=True)
    return items


def record_in_lock(cache_dir: Path, label: str, key: str, file: Path, sha256: str) -> None:
    """Pin the converted file in ``picozoo.lock`` like a downloaded artifact."""
    from ..lockfile import Lock, default_lock_path

    lock = Lock.load(default_lock_path(Path(cache_dir)))
    url = f"{LOCK_PREFIX}{label}/{key}/{file.name}"
    entry = lock.get(url)
    if entry is None or entry.sha256 != sha256:
        lock.record(url, sha256, file.stat().st_size)
        lock.save()
