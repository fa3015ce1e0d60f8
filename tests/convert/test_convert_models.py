"""``picozoo.convert.convert`` on a registry model id (what ``bench`` uses): its
post-processed ``inference`` tarball (with multiclass_nms3) is served by the local mirror,
pulled into the store, converted, and found again by ``inspect``."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.artifacts import make_inference_tarball, publish
from support.http_server import serve_directory
from support.needs import needs

from picozoo.convert import convert
from picozoo.convert.inspect_target import resolve_inspect_target
from picozoo.errors import NotCachedError, OfflineError
from picozoo.hub.pull import pull
from picozoo.hub.registry import load_registry
from picozoo.hub.store import Store
from picozoo.modelinfo import inspect_model
from picozoo.settings import Settings
from picozoo.targets import resolve_arg

pytestmark = needs("paddle", "paddle2onnx")


@pytest.mark.slow
def test_convert_model_id_pulls_converts_then_hits_cache(
    paddle_models: dict[str, Path], tmp_path: Path
) -> None:
    registry = load_registry()
    target = resolve_arg("picodet-xs-320", registry)
    model = registry.get("picodet-xs-320")
    artifact = model.artifact("inference")
    tar = make_inference_tarball(paddle_models["legacy-nms"], tmp_path / artifact.filename)
    publish(artifact, tar, tmp_path / "mirror")
    cache = tmp_path / "cache"
    messages: list[str] = []
    with serve_directory(tmp_path / "mirror") as srv:
        store = Store(Settings(cache_dir=cache, mirrors=(srv.url,)))
        res = convert(store, target, postprocess=True, progress=messages.append)
        assert srv.total_bytes(artifact.url_path) > 0  # it really was downloaded
        # inspect MODEL before any conversion: the cached inference directory (Paddle)
        only_pulled = Store(Settings(cache_dir=tmp_path / "cache2", mirrors=(srv.url,)))
        pull(only_pulled, artifact)
    src = resolve_inspect_target(only_pulled, target, postprocess=True)
    assert src.is_dir()
    pinfo = inspect_model(src)
    assert pinfo.format == "paddle" and pinfo.op_histogram["multiclass_nms3"] == 1
    with pytest.raises(NotCachedError, match="nothing to inspect"):
        resolve_inspect_target(only_pulled, target, postprocess=False)
    assert not res.cached and res.path.is_file() and res.label == model.id
    assert res.path.parent == store.converted_dir(model.id, res.path.parent.name)
    assert any("pulling inference" in m for m in messages)
    assert any(m.startswith("picodet-xs-320: parity ok") for m in messages)
    prov = res.provenance
    assert prov.source.kind == "inference" and prov.source.postprocess is True
    assert prov.source.url == artifact.url and prov.source.model_id == model.id
    assert prov.parity is not None and prov.parity.passed
    assert (prov.parity.outputs[0].shape or [])[1] == 6
    # second call: no server needed, straight from the cache (offline)
    offline = Store(Settings(cache_dir=cache, offline=True))
    messages.clear()
    again = convert(offline, target, postprocess=True, progress=messages.append)
    assert again.cached and again.path == res.path and messages == []
    listed = offline.converted(model.id)
    assert [i.path for i in listed] == [res.path]
    assert listed[0].source_kind == "inference"
    # the other tarball is not cached: offline, convert says so instead of downloading
    with pytest.raises(OfflineError):
        convert(offline, target, postprocess=False)
    # inspect MODEL after converting: the converted ONNX
    assert resolve_inspect_target(offline, target, postprocess=True) == res.path
