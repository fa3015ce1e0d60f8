"""`picozoo bench MODEL_ID`: the registry path, end to end, against a loopback mirror.

A small real Paddle inference model is packed like upstream's ``inference-nopp`` tarball of
picodet-s-416 and served over HTTP; bench pulls it (hub.pull) and benches it on Paddle
Inference, converts it to ONNX (picozoo.convert, ``--source converted``) and benches that on
ONNX Runtime, then the no-argument form benches every model in the cache. (Upstream's ONNX,
``--source upstream``/``auto``: test_bench_sources.py.)"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.bench_helpers import run_cli
from support.needs import needs

from picozoo.bench.records import Document
from picozoo.hub.registry import load_registry

pytestmark = needs("paddle")

FAST = ("--threads", "1", "--min-iters", "10", "--min-time", "0.1")


@pytest.fixture()
def mirror_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """picodet-s-416's inference-nopp tarball (a small real model) on a loopback mirror, and an
    environment (cache, registry, mirror) that uses it."""
    from support.artifacts import make_inference_tarball, publish, write_registry
    from support.http_server import serve_directory
    from support.paddle_models import build_models

    model_dir = build_models(tmp_path / "models", ["legacy"])["legacy"]
    reg = write_registry(tmp_path / "registry.yaml", ["picodet-s-416"])
    artifact = load_registry(reg).get("picodet-s-416").artifact("inference-nopp")
    tarball = make_inference_tarball(model_dir, tmp_path / artifact.filename)
    publish(artifact, tarball, tmp_path / "mirror")
    with serve_directory(tmp_path / "mirror") as srv:
        yield {
            **os.environ,
            "PICOZOO_MIRROR": srv.url,
            "PICOZOO_CACHE": str(tmp_path / "cache"),
            "PICOZOO_REGISTRY": str(reg),
        }


def _cells(stdout: str) -> dict[str, Any]:
    doc = json.loads(stdout)
    Document.from_json(doc, "stdout")
    return {c["engine"]: c for c in doc["cells"]}


def _check_model_cell(c: dict[str, Any]) -> None:
    from support.paddle_models import EXPECTED_PARAMS, SIZE

    assert c["status"] == "ok", c.get("error")
    assert c["model_id"] == "picodet-s-416" and c["postprocess"] is False
    assert c["claims"]["latency_ms"]["cpu"] == 6.6
    assert c["input_size"] == [SIZE, SIZE]  # infer_cfg.yml's size, not the registry's 416
    assert 0 < c["modelinfo"]["params"] <= EXPECTED_PARAMS


@pytest.mark.slow
def test_bench_model_id_on_paddle_pulls_the_nopp_tarball(mirror_env: dict[str, str]) -> None:
    from support.paddle_models import EXPECTED_PARAMS

    r = run_cli(
        "bench", "picodet-s-416", "--engine", "paddle", *FAST, "--report", "json", env=mirror_env
    )
    assert r.returncode == 0, r.stderr
    c = _cells(r.stdout)["paddle"]
    _check_model_cell(c)
    assert c["provenance"]["artifact"] == "inference-nopp" and c["origin"] == "upstream"
    assert c["modelinfo"]["params"] == EXPECTED_PARAMS  # the Paddle model as built
    # the pull used the mirror; the pulled model is now "in the cache"
    r = run_cli("bench", "--engine", "paddle", *FAST, "--report", "md", env=mirror_env)
    assert r.returncode == 0, r.stderr
    assert "| PicoDet-S | 64*64 | 32.5 | 47.6 | 1.18 |" in r.stdout


@pytest.mark.slow
def test_bench_model_id_on_onnxruntime_converts_it(mirror_env: dict[str, str]) -> None:
    pytest.importorskip("paddle2onnx")
    r = run_cli(
        "bench",
        "picodet-s-416",
        "--engine",
        "onnxruntime",
        "--source",
        "converted",
        *FAST,
        "--report",
        "json",
        env=mirror_env,
    )
    assert r.returncode == 0, r.stderr
    c = _cells(r.stdout)["onnxruntime"]
    _check_model_cell(c)
    assert c["source"].endswith(".onnx")
    assert c["provenance"]["target"] == "onnx" and c["origin"] == "converted"
    assert "benching an ONNX converted from its inference-nopp tarball (--source converted)" in (
        r.stderr
    )
    # no MODEL: every model in the cache (now: picodet-s-416, pulled and converted)
    r = run_cli("bench", "--source", "converted", *FAST, "--report", "md", env=mirror_env)
    assert r.returncode == 0, r.stderr
    assert "| PicoDet-S | 64*64 | 32.5 | 47.6 | 1.18 |" in r.stdout
    assert (
        "- benched picodet-s-416 / onnxruntime: converted by picozoo from the inference-nopp "
        "tarball picodet_s_416_coco_lcnet_non_postprocess.tar sha256 "
    ) in r.stdout
    assert "picodet-s-416: benching the ONNX picozoo converted from its inference-nopp" in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["openvino", "mnn", "ncnn"])
def test_bench_model_id_on_a_new_engine_benches_picozoos_conversion(
    engine: str, mirror_env: dict[str, str]
) -> None:
    """A model id on OpenVINO / MNN / ncnn: the tarball is pulled and converted for the engine
    (`picozoo convert --to ENGINE`), and that file is benched, its origin and version said."""
    from picozoo.bench.engines import missing_engine

    if missing_engine(engine):
        pytest.skip(str(missing_engine(engine)))
    r = run_cli("bench", "picodet-s-416", "--engine", engine, "--precision", "fp32", *FAST,
                "--report", "json", env=mirror_env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    c = _cells(r.stdout)[engine]
    assert c["status"] == "ok", c.get("error")
    assert c["model_id"] == "picodet-s-416" and c["precision"] == "fp32"
    assert c["origin"] == "converted" and c["provenance"]["target"] == engine
    assert Path(c["source"]).suffix in {".xml", ".mnn", ".param"} and c["engine_version"]
    assert f"picodet-s-416: benching a {engine} fp32 model converted by picozoo" in r.stderr
