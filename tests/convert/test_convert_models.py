"""``picozoo.convert.ensure_onnx`` (what ``bench`` and ``show`` use) on a registry model whose
post-processed ``inference`` tarball (with multiclass_nms3) is served by the local mirror."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("paddle")
pytest.importorskip("paddle2onnx")

from support.artifacts import make_inference_tarball, publish
from support.http_server import serve_directory

from picozoo.convert import ensure_onnx, list_converted
from picozoo.convert.inspect_target import resolve_inspect_target
from picozoo.describe import describe_model
from picozoo.errors import PicozooError
from picozoo.fetch import pull
from picozoo.modelinfo import inspect_model
from picozoo.registry import load_registry


def test_ensure_onnx_pulls_converts_then_hits_cache(
    paddle_models: dict[str, Path], tmp_path: Path
) -> None:
    registry = load_registry()
    model = registry.get("picodet-xs-320")
    artifact = model.artifact("inference")
    tar = make_inference_tarball(paddle_models["legacy-nms"], tmp_path / artifact.filename)
    publish(artifact, tar, tmp_path / "mirror")
    cache = tmp_path / "cache"
    messages: list[str] = []
    with serve_directory(tmp_path / "mirror") as srv:
        res = ensure_onnx(
            model, postprocess=True, cache_dir=cache, mirrors=[srv.url], progress=messages.append
        )
        assert srv.total_bytes(artifact.url_path) > 0  # it really was downloaded
        # inspect MODEL before any conversion: the cached inference directory (Paddle)
        only_pulled = tmp_path / "cache2"
        pull(artifact, cache_dir=only_pulled, mirrors=[srv.url])
    src = resolve_inspect_target(model.id, registry, only_pulled, postprocess=True)
    assert src.is_dir()
    pinfo = inspect_model(src)
    assert pinfo.format == "paddle" and pinfo.op_histogram["multiclass_nms3"] == 1
    with pytest.raises(PicozooError, match="nothing to inspect"):
        resolve_inspect_target(model.id, registry, only_pulled, postprocess=False)
    assert not res.cached and res.onnx_path.is_file()
    assert any("pulling inference" in m for m in messages)
    assert any(m.startswith("picodet-xs-320: parity ok") for m in messages)
    prov = res.provenance
    assert prov["source"]["kind"] == "inference" and prov["source"]["postprocess"] is True
    assert prov["parity"]["passed"] and prov["parity"]["outputs"][0]["shape"][1] == 6
    # second call: no server needed, straight from the cache
    again = ensure_onnx(model, postprocess=True, cache_dir=cache, offline=True)
    assert again.cached and again.onnx_path == res.onnx_path
    listed = list_converted(model.id, cache)
    assert [i["path"] for i in listed] == [str(res.onnx_path)]
    assert listed[0]["source_kind"] == "inference"
    shown = describe_model(registry, model.id, cache)
    assert shown["converted"][0]["key"] == res.onnx_path.parent.name
    # inspect MODEL after converting: the converted ONNX
    assert resolve_inspect_target(model.id, registry, cache, postprocess=True) == res.onnx_path
