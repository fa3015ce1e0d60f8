"""The managed Paddle-Lite toolchain: an interpreter a paddlelite wheel supports is found on the
machine, a pinned paddlelite is installed in a venv inside the store, and its paddle_lite_opt
writes real ``.nb`` files whose FP16 kernels are counted. The end-to-end test runs the real
toolchain (it installs paddlelite from the package index the machine's pip uses) and skips,
with the reason, where no Python 3.7-3.10 exists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from picozoo.convert.lite_toolchain import MARKER, find_interpreter, probe
from picozoo.errors import ExitCode, ToolchainError
from picozoo.hub.maintenance import list_rows, remove
from picozoo.hub.store import Store
from picozoo.settings import Settings


def test_no_interpreter_is_one_line_exit_11(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No python3.7-3.10 on PATH and no pyenv: exit 11 saying what to install."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ToolchainError) as exc:
        find_interpreter()
    assert exc.value.exit_code == ExitCode.MISSING_DEPENDENCY
    assert "no Python 3.7-3.10" in str(exc.value) and "--lite-python" in str(exc.value)
    assert "\n" not in str(exc.value)


@pytest.mark.slow
def test_cli_no_interpreter_exit_11(tmp_path: Path) -> None:
    """The same through the CLI, before any work, and no tool environment is left behind."""
    src = tmp_path / "m"
    src.mkdir()
    (src / "model.pdmodel").write_bytes(b"x")
    (src / "model.pdiparams").write_bytes(b"x")
    env = {**os.environ, "PATH": str(tmp_path), "HOME": str(tmp_path)}
    env["PICOZOO_CACHE"] = str(tmp_path / "cache")
    proc = subprocess.run(
        [sys.executable, "-m", "picozoo", "convert", str(src), "--to", "lite"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 11, proc.stderr
    assert "no Python 3.7-3.10" in proc.stderr
    assert not (tmp_path / "cache" / "tools").exists() or not any(
        (tmp_path / "cache" / "tools").iterdir()
    )


def test_lite_python_must_be_a_supported_python(tmp_path: Path) -> None:
    with pytest.raises(ToolchainError, match="not a working Python interpreter"):
        find_interpreter(str(tmp_path / "nope"))
    this = probe(sys.executable)
    assert this is not None and this.version == sys.version_info[:2]
    if this.version > (3, 10):
        with pytest.raises(ToolchainError, match=r"wheels for Python 3\.6-3\.10 only"):
            find_interpreter(sys.executable)


def test_settings_read_lite_python() -> None:
    s = Settings.from_env({"PICOZOO_LITE_PYTHON": "/usr/bin/python3.7"})
    assert s.lite_python == "/usr/bin/python3.7"
    assert Settings.from_env({}).lite_python is None


@pytest.mark.slow
def test_real_managed_toolchain_fp16(tmp_path: Path, paddle_models: dict[str, Path]) -> None:
    """A fresh cache: the tool environment is created, FP32 and FP16 ``.nb`` files are written
    by the real paddle_lite_opt, the FP16 one holds ARM FP16 kernels (the FP32 one none), the
    counts are in provenance and on stderr; `cache ls` lists the tool environment and
    `cache rm --all` removes it."""
    try:
        interp = find_interpreter()
    except ToolchainError as e:
        pytest.skip(f"no interpreter a paddlelite wheel supports: {e}")
    src = paddle_models["legacy"]  # the old ProgramDesc format paddlelite reads
    cache = tmp_path / "cache"
    env = {**os.environ, "PICOZOO_CACHE": str(cache)}
    env.pop("PICOZOO_LITE_OPT", None)
    cmd = [sys.executable, "-m", "picozoo", "convert", str(src), "--to", "lite"]
    cmd += ["--lite-python", str(interp.path), "--format", "json"]
    fp16 = subprocess.run([*cmd, "--precision", "fp16"], capture_output=True, text=True, env=env)
    assert fp16.returncode == 0, fp16.stderr
    assert "creating the Paddle-Lite tool environment" in fp16.stderr
    [done] = json.loads(fp16.stdout)
    nb = Path(done["path"])
    assert nb.name == "model.nb" and nb.stat().st_size > 1000
    tools = sorted((cache / "tools").iterdir())
    assert len(tools) == 1 and tools[0].name.startswith("paddlelite-")
    assert (tools[0] / MARKER).is_file()
    store = Store(Settings(cache_dir=cache))
    [conv] = store.converted("local-legacy")
    prov = conv.provenance
    assert prov.options.fp16 is True and prov.tools is not None
    assert prov.tools["kind"] == "managed"
    assert prov.tools["paddle_lite_opt"].startswith("paddlelite==")
    assert prov.converter is not None
    assert prov.converter["fp16_kernels"] > 0 and prov.converter["kernels"]["arm/fp16"] > 0
    assert prov.converter["version"].startswith("v2.1")
    assert f"{prov.converter['fp16_kernels']} FP16 kernels of" in fp16.stderr
    # the x86 .nb built beside it, run in the same environment, matched Paddle Inference
    assert "x86 parity: Paddle-Lite x86 .nb vs Paddle Inference" in fp16.stderr
    assert prov.parity is not None and prov.parity.passed is True
    assert (nb.parent / "model.x86.nb").is_file()
    # FP32: the same tool environment (not created again), no FP16 kernel
    fp32 = subprocess.run([*cmd, "--precision", "fp32"], capture_output=True, text=True, env=env)
    assert fp32.returncode == 0, fp32.stderr
    assert "creating the Paddle-Lite tool environment" not in fp32.stderr
    assert "0 FP16 kernels of" in fp32.stderr
    by_fp16 = {c.provenance.options.fp16: c for c in store.converted("local-legacy")}
    conv32 = by_fp16[False].provenance.converter
    assert conv32 is not None and conv32["fp16_kernels"] == 0
    assert conv32["kernels"].get("arm/float", 0) > 0
    # the FP16 one again: served from the cache
    again = subprocess.run([*cmd, "--precision", "fp16"], capture_output=True, text=True, env=env)
    assert again.returncode == 0 and "cached" in again.stderr
    # listed and removable like other store content
    assert [r["kind"] for r in list_rows(store) if r["kind"].startswith("tool:")] == [
        f"tool:{tools[0].name}"
    ]
    removed = remove(store, None)
    assert any(r.path == tools[0] for r in removed)
    assert not tools[0].exists()
