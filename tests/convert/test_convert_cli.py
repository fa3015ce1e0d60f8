"""``picozoo convert`` / ``inspect`` through the real CLI, with a tarball served by the local
test mirror (loopback HTTP, PICOZOO_MIRROR), like a user following the README."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.artifacts import make_inference_tarball, publish, sha256_file
from support.http_server import serve_directory
from support.needs import needs

from picozoo.errors import ExitCode
from picozoo.hub.registry import load_registry

pytestmark = needs("paddle", "paddle2onnx")

MODEL = "picodet-s-416"


def _picozoo(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "picozoo", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )


@pytest.mark.slow
def test_convert_from_mirror_then_cached_then_inspect(
    paddle_models: dict[str, Path], tmp_path: Path
) -> None:
    artifact = load_registry().get(MODEL).artifact("inference-nopp")
    tar = make_inference_tarball(paddle_models["legacy"], tmp_path / artifact.filename)
    mirror = tmp_path / "mirror"
    publish(artifact, tar, mirror)
    cache = tmp_path / "cache"
    with serve_directory(mirror) as srv:
        env = {"PICOZOO_MIRROR": srv.url, "PICOZOO_CACHE": str(cache)}
        proc = _picozoo("convert", MODEL, "--to", "onnx", "--no-postprocess", env=env)
        assert proc.returncode == 0, proc.stderr
        # stdout is data only: the path of the converted model
        out = Path(proc.stdout.strip())
        assert out.name == "model.onnx" and out.is_file()
        assert out.parent.parent == cache / "converted" / MODEL
        assert "parity ok" in proc.stderr
        prov = json.loads((out.parent / "provenance.json").read_text())
        assert prov["source"]["kind"] == "inference-nopp"
        assert prov["source"]["url"] == artifact.url
        assert prov["source"]["artifact_sha256"] == sha256_file(tar)
        assert prov["source"]["model_file"] == "model.pdmodel"
        assert prov["parity"]["passed"] and prov["options"]["opset"] == 11

        # no MODEL: every model whose inference-nopp tarball is cached; now a cache hit
        again = _picozoo("convert", "--to", "onnx", "--no-postprocess", "--format", "json", env=env)
        assert again.returncode == 0, again.stderr
        items = json.loads(again.stdout)
        assert [(i["target"], i["cached"], i["path"]) for i in items] == [(MODEL, True, str(out))]

    lock = json.loads((cache / "picozoo.lock").read_text())
    assert f"picozoo-converted:{MODEL}/{out.parent.name}/model.onnx" in json.dumps(lock)

    env = {"PICOZOO_CACHE": str(cache), "PICOZOO_OFFLINE": "1"}
    show = _picozoo("show", MODEL, "--format", "json", env=env)
    assert show.returncode == 0, show.stderr
    assert [c["path"] for c in json.loads(show.stdout)["converted"]] == [str(out)]
    insp = _picozoo("inspect", MODEL, "--no-postprocess", "--format", "json", env=env)
    assert insp.returncode == 0, insp.stderr
    data = json.loads(insp.stdout)
    assert data["path"] == str(out) and data["format"] == "onnx" and data["flops"] > 0


@pytest.mark.slow
def test_convert_cli_errors(tmp_path: Path, paddle_models: dict[str, Path]) -> None:
    env = {"PICOZOO_CACHE": str(tmp_path / "cache"), "PICOZOO_OFFLINE": "1"}
    nothing = _picozoo("convert", "--no-postprocess", env=env)
    assert nothing.returncode == 2
    assert nothing.stderr.count("\n") == 1 and "picozoo pull" in nothing.stderr
    bad = _picozoo("convert", str(paddle_models["pir"]), "--input-size", "image=1,3,x", env=env)
    assert bad.returncode == 2 and "bad --input-size" in bad.stderr and not bad.stdout
    unknown = _picozoo("convert", "picodet-s-41", env=env)
    assert unknown.returncode == 2 and "did you mean" in unknown.stderr
    missing = _picozoo("inspect", str(tmp_path / "nope.onnx"), env=env)
    assert missing.returncode == ExitCode.USAGE and "no such file" in missing.stderr
    nowhere = _picozoo("convert", str(tmp_path / "no_dir"), env=env)
    assert nowhere.returncode == ExitCode.USAGE and "no such file" in nowhere.stderr
    uncached = _picozoo("inspect", MODEL, env=env)
    assert uncached.returncode == ExitCode.NOT_CACHED and "nothing to inspect" in uncached.stderr
    assert f"picozoo convert {MODEL}" in uncached.stderr
    offline = _picozoo("convert", MODEL, env=env)
    assert offline.returncode == ExitCode.OFFLINE and not offline.stdout


@pytest.mark.slow
def test_convert_cli_directory_text_output(tmp_path: Path, paddle_models: dict[str, Path]) -> None:
    env = {"PICOZOO_CACHE": str(tmp_path / "cache")}
    proc = _picozoo(
        "convert",
        str(paddle_models["pir-sf"]),
        "--no-simplify",
        "--out",
        str(tmp_path / "o"),
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{tmp_path / 'o' / 'local-pir-sf.onnx'}\n"
    prov = json.loads((tmp_path / "o" / "local-pir-sf.provenance.json").read_text())
    assert prov["options"]["simplify"] is False and prov["label"] == "local-pir-sf"
    text = _picozoo("inspect", str(paddle_models["pir-sf"]), env=env)
    assert text.returncode == 0, text.stderr
    assert "FLOPs:" in text.stdout and "2 x MACs" in text.stdout and "scale_factor" in text.stdout


@pytest.mark.slow
def test_convert_cli_keeps_going_after_a_failure(
    tmp_path: Path, paddle_models: dict[str, Path]
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text("not a program")
    (broken / "model.pdiparams").write_bytes(b"\0" * 8)
    env = {"PICOZOO_CACHE": str(tmp_path / "cache")}
    proc = _picozoo("convert", str(broken), str(paddle_models["legacy"]), env=env)
    assert proc.returncode == ExitCode.FAILED
    assert proc.stdout.strip().endswith("model.onnx") and proc.stdout.count("\n") == 1
    assert "cannot convert" in proc.stderr and "not a PIR program" in proc.stderr
    assert "1 of 2 conversions failed" in proc.stderr
    # alone, the failed conversion is the command's error: its own exit code, one line
    alone = _picozoo("convert", str(broken), env=env)
    assert alone.returncode == ExitCode.CONVERSION and not alone.stdout
    last = alone.stderr.strip().splitlines()[-1]
    assert last.startswith("picozoo: error: cannot convert") and "not a PIR program" in last
    assert not (tmp_path / "cache" / "converted" / "local-broken").exists() or not any(
        p for p in (tmp_path / "cache" / "converted" / "local-broken").iterdir()
    )
