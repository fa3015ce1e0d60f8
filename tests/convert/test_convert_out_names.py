"""``convert --out`` names (issue 17, item 13): an ``.onnx`` source's copies are named after the
file; a name holds one conversion, so different sources never overwrite each other, a user's
file or the source itself, while repeating a conversion refreshes its own copies."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from picozoo.errors import ExitCode


def _convert(src: Path, out: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PICOZOO_CACHE": str(cache)}
    cmd = [sys.executable, "-m", "picozoo", "convert", str(src), "--to", "mnn", "--out", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=300)


@pytest.mark.slow
def test_onnx_files_of_one_folder_get_their_own_names(tmp_path: Path) -> None:
    from support.engines import need_engine
    from support.tiny_detector import build_tiny_detector

    need_engine("mnn")
    folder, out, cache = tmp_path / "onnx", tmp_path / "o", tmp_path / "cache"
    folder.mkdir()
    a = build_tiny_detector(folder / "a.onnx", seed=0)
    b = build_tiny_detector(folder / "b.onnx", seed=1)
    twin = folder / "twin.onnx"  # a's bytes under another name: a cache hit, its own name
    twin.write_bytes(a.read_bytes())
    for src in (a, b, twin):
        r = _convert(src, out, cache)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == str(out / f"{src.stem}.mnn")
    names = sorted(p.name for p in out.iterdir())
    exts = (".mnn", ".io.json", ".mnn.provenance.json")
    assert names == sorted(f"{s}{ext}" for s in ("a", "b", "twin") for ext in exts)
    before = (out / "b.mnn").read_bytes()
    assert (out / "a.mnn").read_bytes() != before
    r = _convert(b, out, cache)  # the same conversion again: its own copies, refreshed
    assert r.returncode == 0 and r.stdout.strip() == str(out / "b.mnn")
    assert (out / "b.mnn").read_bytes() == before and len(list(out.iterdir())) == 9


@pytest.mark.slow
def test_a_same_named_source_or_a_users_file_is_never_overwritten(tmp_path: Path) -> None:
    from support.engines import need_engine
    from support.tiny_detector import build_tiny_detector

    need_engine("mnn")
    cache, out = tmp_path / "cache", tmp_path / "o"
    for d in ("x", "y", "o"):
        (tmp_path / d).mkdir()
    x = build_tiny_detector(tmp_path / "x" / "m.onnx", seed=0)
    y = build_tiny_detector(tmp_path / "y" / "m.onnx", seed=1)
    (out / "m.io.json").write_text("the user's own file")
    r = _convert(x, out, cache)
    assert r.returncode == 0, r.stderr
    first = Path(r.stdout.strip())
    assert first.name.startswith("m-") and first.suffix == ".mnn"  # m.* is taken
    assert (out / "m.io.json").read_text() == "the user's own file"
    r = _convert(y, out, cache)
    second = Path(r.stdout.strip())
    assert r.returncode == 0 and second != first and second.name.startswith("m-")
    assert first.exists() and first.read_bytes() != second.read_bytes()
    # --out the source's own folder: the source is never a destination
    r = _convert(x, x.parent, cache)
    assert r.returncode == ExitCode.OK and x.read_bytes()[:2] != b"MN"
    assert Path(r.stdout.strip()) == x.parent / "m.mnn"


def test_the_source_itself_is_never_a_copy_destination(tmp_path: Path) -> None:
    """The guard below the names: a destination that is the source file (an ``m.mnn`` source,
    --out its own folder) takes the keyed name instead."""
    from picozoo.convert.result import ConversionResult
    from picozoo.convert.run import _copies, _taken
    from picozoo.provenance import Provenance

    cached = tmp_path / "cache" / "k"
    cached.mkdir(parents=True)
    (cached / "model.mnn").write_bytes(b"MNN")
    (cached / "provenance.json").write_text('{"key": "k1", "target": "mnn"}')
    prov = Provenance.from_json({"key": "k1", "target": "mnn"})
    result = ConversionResult(cached / "model.mnn", prov, label="l")
    src = tmp_path / "src" / "m.mnn"
    src.parent.mkdir()
    src.write_bytes(b"the user's model")
    pairs = _copies(result, src.parent, "m")
    assert _taken(pairs, "k1", src)
    assert not _taken(_copies(result, tmp_path / "empty", "m"), "k1", src)
