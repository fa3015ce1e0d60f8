"""`picozoo bench MODEL_ID`: the registry path, end to end, against a loopback mirror.

A small real Paddle inference model is packed like upstream's ``inference-nopp`` tarball of
picodet-s-416 and served over HTTP; bench pulls it (FETCH), converts it to ONNX (CONVERT) and
benches both engines, then the no-argument form benches every model in the cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from bench_helpers import run_cli

from picozoo.bench.results import validate
from picozoo.registry import load_registry

pytest.importorskip("paddle")
pytest.importorskip("paddle2onnx")

FAST = ("--threads", "1", "--min-iters", "10", "--min-time", "0.1")


def test_bench_model_id_through_mirror(tmp_path: Path) -> None:
    from support.artifacts import make_inference_tarball, publish, write_registry
    from support.http_server import serve_directory
    from support.paddle_models import EXPECTED_PARAMS, SIZE, build_models

    model_dir = build_models(tmp_path / "models", ["legacy"])["legacy"]
    reg = write_registry(tmp_path / "registry.yaml", ["picodet-s-416"])
    artifact = load_registry(reg).get("picodet-s-416").artifact("inference-nopp")
    publish(
        artifact,
        make_inference_tarball(model_dir, tmp_path / artifact.filename),
        tmp_path / "mirror",
    )
    with serve_directory(tmp_path / "mirror") as srv:
        env = {
            **os.environ,
            "PICOZOO_MIRROR": srv.url,
            "PICOZOO_CACHE": str(tmp_path / "cache"),
            "PICOZOO_REGISTRY": str(reg),
        }
        r = run_cli(
            "bench",
            "picodet-s-416",
            "--engine",
            "onnxruntime",
            "--engine",
            "paddle",
            *FAST,
            "--report",
            "json",
            env=env,
        )
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert validate(doc) == []
        cells = {c["engine"]: c for c in doc["cells"]}
        for engine in ("onnxruntime", "paddle"):
            c = cells[engine]
            assert c["status"] == "ok", c.get("error")
            assert c["model_id"] == "picodet-s-416" and c["postprocess"] is False
            assert c["claims"]["latency_ms"]["cpu"] == 6.6
            assert c["input_size"] == [SIZE, SIZE]
            assert 0 < c["modelinfo"]["params"] <= EXPECTED_PARAMS
        assert cells["onnxruntime"]["source"].endswith(".onnx")
        assert cells["paddle"]["provenance"]["artifact"] == "inference-nopp"
        # params from the artifact itself: the Paddle model as built; the ONNX after
        # conversion + simplification (batch norm folded into the conv before it)
        assert cells["paddle"]["modelinfo"]["params"] == EXPECTED_PARAMS
        # no MODEL: every model in the cache (now: picodet-s-416, pulled and converted)
        r = run_cli("bench", *FAST, "--report", "md", env=env)
        assert r.returncode == 0, r.stderr
        assert "| PicoDet-S | 64*64 | 32.5 | 47.6 | 1.18 |" in r.stdout
        assert srv.url  # the mirror was the only source (PICOZOO_MIRROR)
