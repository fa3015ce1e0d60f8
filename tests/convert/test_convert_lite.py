"""Paddle -> Paddle-Lite: command construction, missing tool, and a run through a FAKE
``paddle_lite_opt`` (a script that records its argv and writes a .nb) -- that tests picozoo's
plumbing honestly, not Paddle-Lite. A real run needs the real tool and is skipped without it."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from picozoo.convert import ConversionResult, convert
from picozoo.convert.to_lite import OPT_NAME, find_opt_tool, lite_command
from picozoo.errors import (
    ConversionError,
    ExitCode,
    MissingDependencyError,
    ToolchainError,
    UsageError,
)
from picozoo.hub.store import Store
from picozoo.settings import Settings
from picozoo.targets import Target

FAKE_OPT = """#!{python}
import json, os, sys
args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
with open(os.environ["FAKE_OPT_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
if os.environ.get("FAKE_OPT_FAIL"):
    print("Error: unsupported op foo", file=sys.stderr)
    sys.exit(3)
with open(args["model_file"], "rb") as m, open(args["optimize_out"] + ".nb", "wb") as out:
    out.write(b"FAKE-NB " + args["enable_fp16"].encode() + b" " + m.read()[:16])
"""


def _paddlelite_importable() -> bool:
    try:
        from paddlelite.lite import Opt  # noqa: F401
    except Exception:
        return False
    return True


@pytest.fixture
def fake_opt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake paddle_lite_opt on PATH (only it), logging argv to $FAKE_OPT_LOG."""
    if _paddlelite_importable():
        pytest.skip("the paddlelite module is importable and takes precedence over PATH")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / OPT_NAME
    script.write_text(FAKE_OPT.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_OPT_LOG", str(tmp_path / "argv.log"))
    return script


def _to_lite(store: Store, src: Path) -> ConversionResult:
    return convert(store, Target(str(src), path=src), to="lite")


def _legacy_dir(tmp_path: Path) -> Path:
    d = tmp_path / "legacy_model"
    d.mkdir()
    (d / "model.pdmodel").write_bytes(b"PDMODEL-BYTES-0123456789")
    (d / "model.pdiparams").write_bytes(b"\1" * 64)
    return d


def test_command_line() -> None:
    cmd = lite_command(
        Path("/opt/paddle_lite_opt"),
        Path("m/model.pdmodel"),
        Path("m/model.pdiparams"),
        Path("o/model"),
        fp16=False,
    )
    assert cmd == [
        "/opt/paddle_lite_opt",
        "--model_file=m/model.pdmodel",
        "--param_file=m/model.pdiparams",
        "--optimize_out_type=naive_buffer",
        "--optimize_out=o/model",
        "--valid_targets=arm",
        "--enable_fp16=false",
    ]


def test_missing_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if _paddlelite_importable():
        pytest.skip("the paddlelite module is installed here")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainError) as exc:
        find_opt_tool()
    assert "Python <= 3.10" in str(exc.value) and "--opt-bin" in str(exc.value)
    assert isinstance(exc.value, MissingDependencyError)
    assert exc.value.exit_code == ExitCode.MISSING_DEPENDENCY
    with pytest.raises(ToolchainError, match="not found or not executable"):
        find_opt_tool(str(tmp_path / "nope"))
    # the store's settings (PICOZOO_LITE_OPT) name the tool when opt_bin is not given
    store = Store(Settings(cache_dir=tmp_path / "c", lite_opt=str(tmp_path / "gone")))
    src = _legacy_dir(tmp_path)
    with pytest.raises(ToolchainError, match=r"not found or not executable: .*gone"):
        _to_lite(store, src)


def test_fake_opt_on_path_through_library(fake_opt: Path, tmp_path: Path, store: Store) -> None:
    src = _legacy_dir(tmp_path)
    res = convert(store, Target(str(src), path=src), to="lite", fp16=True)
    assert res.path.name == "model.nb" and not res.cached and res.label == "local-legacy_model"
    assert res.path.read_bytes().startswith(b"FAKE-NB true PDMODEL-BYTES")
    argv = [json.loads(line) for line in (tmp_path / "argv.log").read_text().splitlines()]
    assert len(argv) == 1
    a = argv[0]
    assert f"--model_file={src / 'model.pdmodel'}" in a
    assert f"--param_file={src / 'model.pdiparams'}" in a
    assert {"--valid_targets=arm", "--enable_fp16=true", "--optimize_out_type=naive_buffer"} <= set(
        a
    )
    prov = res.provenance
    assert prov.target == "lite" and prov.options.fp16 is True
    assert prov.parity is None and "ARM" in (prov.parity_note or "")
    assert prov.tools is not None and prov.tools["kind"] == "binary"
    assert prov.source.model_file == "model.pdmodel" and prov.source.sha256
    # in the store, where `cache ls/rm/prune` see it, and pinned like a download
    key = res.path.parent.name
    assert res.path.parent == store.converted_dir("local-legacy_model", key)
    assert [c.path for c in store.converted("local-legacy_model")] == [res.path]
    entry = store.pins().get(f"picozoo-converted:local-legacy_model/{key}/model.nb")
    assert entry is not None and entry.sha256 == prov.output.sha256
    # identical re-run: cached, the tool is not run again; fp32 is a different conversion
    again = convert(store, Target(str(src), path=src), to="lite", fp16=True)
    assert again.cached and again.path == res.path and again.provenance == prov
    fp32 = convert(store, Target(str(src), path=src), to="lite")
    assert not fp32.cached and fp32.path != res.path
    assert len((tmp_path / "argv.log").read_text().splitlines()) == 2
    # a damaged output (truncated) is converted again, not served
    fp32.path.chmod(0o644)
    fp32.path.write_bytes(b"x")
    redone = convert(store, Target(str(src), path=src), to="lite")
    assert not redone.cached and redone.path.read_bytes().startswith(b"FAKE-NB false")
    assert len((tmp_path / "argv.log").read_text().splitlines()) == 3


@pytest.mark.slow
def test_lite_precision_is_the_fp16_switch(fake_opt: Path, tmp_path: Path, store: Store) -> None:
    """``precision="fp16"`` (the engines' word; ``--to lite --precision fp16``) is ``fp16=True``;
    the target may be given as a string, as on the command line."""
    src = _legacy_dir(tmp_path)
    res = convert(store, str(src), to="lite", precision="fp16")
    assert res.provenance.options.fp16 is True and res.label == "local-legacy_model"
    again = convert(store, Target(str(src), path=src), to="lite", fp16=True)
    assert again.cached and again.path == res.path
    fp32 = convert(store, str(src), to="lite", precision="fp32")
    assert not fp32.cached and fp32.provenance.options.fp16 is False
    with pytest.raises(UsageError, match="--precision int8 is not available for lite"):
        convert(store, str(src), to="lite", precision="int8")
    assert len((tmp_path / "argv.log").read_text().splitlines()) == 2


def test_fake_opt_failure_and_pir_model(
    fake_opt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: Store
) -> None:
    src = _legacy_dir(tmp_path)
    monkeypatch.setenv("FAKE_OPT_FAIL", "1")
    with pytest.raises(ConversionError, match=r"failed \(exit 3\): Error: unsupported op foo"):
        _to_lite(store, src)
    assert [p.name for p in (store.converted_root / "local-legacy_model").iterdir()] == []
    assert not store.settings.pins_path.exists()
    pir = tmp_path / "pir"
    pir.mkdir()
    (pir / "model.json").write_text("{}")
    (pir / "model.pdiparams").write_bytes(b"\0")
    with pytest.raises(ConversionError, match=r"Paddle-Lite needs model\.pdmodel"):
        _to_lite(store, pir)


@pytest.mark.slow
def test_cli_lite_with_opt_bin(tmp_path: Path, fake_opt: Path) -> None:
    src = _legacy_dir(tmp_path)
    moved = tmp_path / "elsewhere" / "my_opt"
    moved.parent.mkdir()
    shutil.copy2(fake_opt, moved)
    env = {**os.environ, "PICOZOO_CACHE": str(tmp_path / "cache")}
    # only --opt-bin can find the tool: drop the fake's directory from PATH
    env["PATH"] = os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if p != str(fake_opt.parent)
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "picozoo",
            "convert",
            str(src),
            "--to",
            "lite",
            "--fp16",
            "--opt-bin",
            str(moved),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(tmp_path / "out" / "local-legacy_model-fp16.nb")
    assert (tmp_path / "out" / "local-legacy_model-fp16.provenance.json").is_file()
    # PICOZOO_LITE_OPT (read into the settings) names the tool too: same conversion, cached
    via_env = subprocess.run(
        [sys.executable, "-m", "picozoo", "convert", str(src), "--to", "lite", "--fp16"],
        capture_output=True,
        text=True,
        env={**env, "PICOZOO_LITE_OPT": str(moved)},
    )
    assert via_env.returncode == 0, via_env.stderr
    assert "local-legacy_model: cached" in via_env.stderr
    assert via_env.stdout.strip().endswith("model.nb")
    bad = subprocess.run(
        [sys.executable, "-m", "picozoo", "convert", str(src), "--fp16"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 2 and "--fp16 applies to --to lite only" in bad.stderr


#: a real opt binary a developer points at (read at import: each test starts without PICOZOO_*)
LITE_OPT = os.environ.get("PICOZOO_LITE_OPT")


@pytest.mark.skipif(
    not (_paddlelite_importable() or shutil.which(OPT_NAME) or LITE_OPT),
    reason="no paddle_lite_opt given (PATH, PICOZOO_LITE_OPT, paddlelite module): the managed "
    "toolchain is tested in test_convert_lite_toolchain.py and test_convert_lite_x86.py",
)
def test_real_opt(paddle_models: dict[str, Path], store: Store) -> None:
    src = paddle_models["legacy"]
    res = convert(store, Target(str(src), path=src), to="lite", opt_bin=LITE_OPT)
    assert res.path.stat().st_size > 1000
