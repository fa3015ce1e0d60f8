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
    with pytest.raises(UsageError, match="no model has an 'inference' tarball") as none:
        select_args([], store, registry, postprocess=True)
    assert "picozoo pull picodet-s-416 --artifact inference" in str(none.value)
    assert select_args(["a", "b"], store, registry, postprocess=True) == ["a", "b"]
    with pytest.raises(NotCachedError, match="nothing to inspect"):
        resolve_inspect_target(store, legacy, postprocess=True)


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
