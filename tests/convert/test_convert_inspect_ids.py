"""`picozoo inspect MODEL_ID` for models whose only runnable artifact is upstream's ONNX (the
2021 legacy models): pulled on demand from a loopback mirror and inspected; what the cache
has is used first; and the hints of models with nothing to inspect lead somewhere."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from picozoo.errors import ExitCode
from picozoo.hub.registry import load_registry

LEGACY = "picodet-legacy-s-320"
IDS = [LEGACY, "picodet-s-416", "picodet-legacy-lcnet-1.5x-640"]


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture()
def inspect_cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Run]:
    """``picozoo inspect ARGS`` through the real entry point, in this process, with ``env`` as
    its environment: (exit code, stdout, stderr). What the entry point sets up for itself (the
    ``picozoo`` logger's stderr handler) is undone afterwards."""
    import logging

    from picozoo.cli import main

    logger = logging.getLogger("picozoo")
    handlers, level = list(logger.handlers), logger.level

    def run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        with pytest.raises(SystemExit) as done:
            main(["inspect", *args])
        out = capsys.readouterr()
        return int(done.value.code or 0), out.out, out.err

    yield run
    logger.handlers[:] = handlers
    logger.setLevel(level)


def _conv_onnx(path: Path) -> Path:
    """One 3x3 Conv (8 filters) on a 1x3x32x32 image: 224 parameters."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((8, 3, 3, 3), np.float32), "w")
    b = numpy_helper.from_array(np.zeros(8, np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w", "b"], ["out"], pads=[1, 1, 1, 1])],
        "conv",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 8, 32, 32])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture()
def mirror(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The legacy model's onnx-nopp (a small real ONNX) on a loopback mirror, and the
    environment (cache, registry) that uses it."""
    from support.artifacts import publish, write_registry
    from support.http_server import serve_directory

    reg = load_registry(write_registry(tmp_path / "registry.yaml", IDS))
    art = reg.get(LEGACY).artifact("onnx-nopp")
    publish(art, _conv_onnx(tmp_path / "m.onnx"), tmp_path / "mirror")
    with serve_directory(tmp_path / "mirror") as srv:
        env = {"PICOZOO_CACHE": str(tmp_path / "cache"), "PICOZOO_REGISTRY": reg.path}
        yield {"env": env, "url": srv.url, "artifact": art, "server": srv}


def test_legacy_model_is_inspected_from_its_upstream_onnx(
    mirror: dict[str, Any], inspect_cli: Run
) -> None:
    env, art = mirror["env"], mirror["artifact"]
    code, out, err = inspect_cli(LEGACY, "--mirror", mirror["url"], "--format", "json", env=env)
    assert code == 0, err
    data = json.loads(out)
    assert Path(data["path"]).name == art.filename and data["format"] == "onnx"
    assert data["params"] == 224 and data["op_histogram"] == {"Conv": 1}
    # it has no onnx (with NMS): said, and its onnx-nopp is used; then pulled
    assert err.splitlines() == [
        f"{LEGACY}: has no onnx artifact; inspecting its onnx-nopp instead",
        f"{LEGACY}: pulling onnx-nopp ({art.filename})",
    ]
    assert mirror["server"].stats.full_gets[art.url_path] == 1
    # now cached: offline, no pull, the same file
    code, out, err = inspect_cli(
        LEGACY, "--no-postprocess", "--offline", "--format", "json", env=env
    )
    assert code == 0, err
    assert json.loads(out)["path"] == data["path"] and err == ""


def test_models_with_nothing_to_inspect_say_what_to_do(
    mirror: dict[str, Any], inspect_cli: Run
) -> None:
    env = {**mirror["env"], "PICOZOO_OFFLINE": "1"}
    code, out, err = inspect_cli("picodet-legacy-lcnet-1.5x-640", env=env)
    assert code == ExitCode.USAGE and out == ""
    assert err == (
        "picozoo: error: picodet-legacy-lcnet-1.5x-640 has no ONNX or Paddle inference model to "
        "inspect (it has: weights, log, config)\n"
    )
    code, _, err = inspect_cli("picodet-s-416", "--no-postprocess", env=env)
    assert code == ExitCode.NOT_CACHED
    assert "`picozoo pull picodet-s-416 --artifact onnx-nopp`" in err  # a way out
    code, _, err = inspect_cli(LEGACY, env=env)  # offline, not pulled yet
    assert code == ExitCode.OFFLINE and f"{LEGACY} onnx-nopp" in err
