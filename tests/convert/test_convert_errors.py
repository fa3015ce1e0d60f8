"""Errors before any conversion work: missing or unusable tools, unreadable models, model ids
without a source, nothing cached. Each is one line with its exit code and what to do (no Paddle
needed: tools are simulated as missing)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from picozoo.convert import convert, toolchain
from picozoo.convert.inspect_target import resolve_inspect_target
from picozoo.convert.sources import select_args
from picozoo.convert.toolchain import check_onnx_toolchain, check_paddle_version
from picozoo.errors import (
    ExitCode,
    MissingDependencyError,
    ModelFileError,
    NotCachedError,
    ToolchainError,
    UnknownArtifactError,
    UsageError,
)
from picozoo.hub.registry import load_registry
from picozoo.hub.store import Store
from picozoo.modelinfo import inspect_model
from picozoo.targets import Target, resolve_arg

INSTALL = "pip install 'picozoo[convert]'"


def _paddle_dir(root: Path) -> Path:
    root.mkdir()
    (root / "model.pdmodel").write_bytes(b"not a program")
    (root / "model.pdiparams").write_bytes(b"\0" * 8)
    return root


@pytest.mark.parametrize("version", ["3.3.0", "3.4.1", "2.6.2"])
def test_paddle_outside_supported_range(version: str) -> None:
    with pytest.raises(ToolchainError) as exc:
        check_paddle_version(version)
    assert "paddlepaddle>=3.0,<3.3" in str(exc.value)
    assert exc.value.exit_code == ExitCode.MISSING_DEPENDENCY


def test_paddle_missing() -> None:
    with pytest.raises(MissingDependencyError) as exc:
        check_paddle_version(None)
    text = str(exc.value)
    assert INSTALL in text and "paddlepaddle>=3.0,<3.3" in text


def test_installed_paddle_is_supported() -> None:
    version = toolchain.dist_version("paddlepaddle")
    if version is None:
        pytest.skip("paddlepaddle is not installed here")
    check_paddle_version(version)


def test_model_without_inference_tarball_and_nothing_cached(store: Store) -> None:
    registry = load_registry()
    legacy = resolve_arg("picodet-legacy-s-320", registry)  # upstream ships no inference tarball
    with pytest.raises(UnknownArtifactError, match="no 'inference-nopp' artifact") as exc:
        convert(store, legacy, postprocess=False)
    assert exc.value.exit_code == ExitCode.USAGE
    with pytest.raises(UsageError, match="no MODEL given and nothing is pulled yet") as none:
        select_args([], store, registry, postprocess=True)
    assert "picozoo pull picodet-s-416`" in str(none.value)
    assert select_args(["a", "b"], store, registry, postprocess=True) == ["a", "b"]
    # legacy: upstream's onnx-nopp is its only model, inspected from it (pulled on demand)
    import dataclasses

    from picozoo.errors import OfflineError

    offline = Store(dataclasses.replace(store.settings, offline=True))
    with pytest.raises(OfflineError, match="picodet-legacy-s-320 onnx-nopp"):
        resolve_inspect_target(offline, legacy, postprocess=True)
    with pytest.raises(NotCachedError, match="nothing to inspect"):  # it has tarballs: says how
        resolve_inspect_target(store, resolve_arg("picodet-s-416", registry), postprocess=True)


def test_no_model_ids_means_every_model_with_anything_in_the_store(store: Store) -> None:
    """`pull MODEL` fetches the post-processed tarball; `convert --no-postprocess` with no ids
    must still pick MODEL (its inference-nopp tarball is pulled by the conversion)."""
    import json

    registry = load_registry()
    # something of picodet-m-416 (here: a conversion), and a folder conversion (not a model id)
    for label in ("picodet-m-416", "local-mine"):
        d = store.converted_root / label / "0123456789abcdef"
        d.mkdir(parents=True)
        (d / "model.onnx").write_bytes(b"onnx")
        (d / "provenance.json").write_text(json.dumps({"target": "onnx", "output": {}}))
    said: list[str] = []
    got = select_args([], store, registry, postprocess=False, progress=said.append)
    assert got == ["picodet-m-416"]
    assert said == [
        "no MODEL given: converting the inference-nopp tarball of every pulled model: picodet-m-416"
    ]


def test_missing_tools_before_any_work(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, store: Store
) -> None:
    real = toolchain.dist_version
    gone = {"onnxsim", "paddle2onnx"}
    monkeypatch.setattr(toolchain, "dist_version", lambda n: None if n in gone else real(n))
    if real("paddlepaddle") is None:
        pytest.skip("paddlepaddle is not installed here")
    with pytest.raises(MissingDependencyError) as exc:
        check_onnx_toolchain(simplify=True)
    assert "paddle2onnx, onnxsim are not installed" in str(exc.value) and INSTALL in str(exc.value)
    gone.discard("paddle2onnx")
    with pytest.raises(MissingDependencyError, match="onnxsim is not installed") as one:
        check_onnx_toolchain(simplify=True)
    assert INSTALL in str(one.value) and one.value.exit_code == 11
    check_onnx_toolchain(simplify=False)  # --no-simplify does not need onnxsim
    # through convert(): refused before anything is written to the store
    src = _paddle_dir(tmp_path / "m")
    with pytest.raises(MissingDependencyError, match="onnxsim"):
        convert(store, Target(str(src), path=src))
    assert store.converted() == [] and not store.settings.pins_path.exists()


def test_inspect_paddle_without_paddle_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    src = _paddle_dir(tmp_path / "m")
    monkeypatch.setitem(sys.modules, "paddle", None)  # `import paddle` now fails
    with pytest.raises(MissingDependencyError) as exc:
        inspect_model(src)
    assert "[convert]" in str(exc.value) and INSTALL in str(exc.value)
    assert "3.3" not in str(exc.value)
    assert exc.value.exit_code == ExitCode.MISSING_DEPENDENCY


@pytest.mark.slow
def test_inspect_cli_without_paddle_names_the_extra(tmp_path: Path) -> None:
    """Through the real CLI, in a process where `import paddle` fails: exit 11 and the extra to
    install, not a diagnosis about models saved by paddlepaddle >= 3.3."""
    import os
    import subprocess

    src = _paddle_dir(tmp_path / "m")
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "paddle.py").write_text(
        "raise ImportError(\"No module named 'paddle' (test stand-in)\", name='paddle')\n"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("PICOZOO_")}
    path = os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")])

    def inspect(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "picozoo", "inspect", str(src)],
            capture_output=True, text=True, env={**base, "PICOZOO_CACHE": str(tmp_path / "c"),
                                                  **env}, timeout=120,
        )  # fmt: skip

    r = inspect({"PYTHONPATH": path})
    assert r.returncode == ExitCode.MISSING_DEPENDENCY == 11, r.stderr
    assert r.stderr.startswith("picozoo: error: paddlepaddle is not installed")
    assert "needs the [convert] extra: " + INSTALL in r.stderr
    assert "3.3" not in r.stderr and len(r.stderr.strip().splitlines()) == 1 and not r.stdout
    if toolchain.dist_version("paddlepaddle") is None:
        return
    # control: with paddle, the same folder gets as far as Paddle refusing the broken program
    r = inspect({})
    assert r.returncode == ExitCode.USAGE and "Paddle cannot load it" in r.stderr


def test_inspect_bad_files(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08garbage that is not a protobuf")
    with pytest.raises(ModelFileError, match="cannot be read as ONNX") as exc:
        inspect_model(bad)
    assert exc.value.exit_code == ExitCode.USAGE and exc.value.__cause__ is not None
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(ModelFileError, match="not an ONNX file or a Paddle inference model"):
        inspect_model(other)
    with pytest.raises(ModelFileError, match="no such file"):
        inspect_model(tmp_path / "nope.onnx")
