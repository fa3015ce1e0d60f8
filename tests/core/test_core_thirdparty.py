"""Third-party libraries write nothing under ``$HOME`` (issue 17, item 16): matplotlib's font
cache, Paddle's ``~/.cache/paddle``, ONNX Runtime's and OpenVINO's telemetry ids land in
``<cache>/.thirdparty``; a user's own ``MPLCONFIGDIR`` / ``XDG_CACHE_HOME`` is kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAVED = ROOT / "tests" / "data" / "bench-v0.1-standin-s416.json"

IMPORTS = """
import os, sys
from pathlib import Path
from picozoo.thirdparty import contain_third_party
contain_third_party(Path(sys.argv[1]))
home = os.environ["HOME"]
for name in sys.argv[2:]:
    __import__(name)
    assert os.environ["HOME"] == home, name  # restored after the import
print(os.environ.get("MPLCONFIGDIR"), os.environ.get("XDG_CACHE_HOME"))
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    (tmp_path / "home").mkdir(exist_ok=True)
    # CI, TF_BUILD and JENKINS_URL make ONNX Runtime and OpenVINO skip writing their telemetry
    # files, the very writes these tests follow: as a user's machine, without them
    quiet = ("CI", "TF_BUILD", "JENKINS_URL")
    drop = ("MPLCONFIGDIR", "XDG_CACHE_HOME", "_PICOZOO_THIRDPARTY_DIR", *quiet)
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(HOME=str(tmp_path / "home"), PICOZOO_CACHE=str(tmp_path / "cache"), **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _under_home(tmp_path: Path) -> list[str]:
    return sorted(str(p.relative_to(tmp_path / "home")) for p in (tmp_path / "home").rglob("*"))


def _import(tmp_path: Path, cache: Path, *names: str, **env: str) -> str:
    r = subprocess.run([sys.executable, "-c", IMPORTS, str(cache), *names],
                       capture_output=True, text=True, env=_env(tmp_path, **env))  # fmt: skip
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.mark.slow
def test_imports_write_into_the_cache_not_home(tmp_path: Path) -> None:
    names = [n for n in ("paddle", "onnxruntime", "openvino", "matplotlib.pyplot")
             if _installed(n)]  # fmt: skip
    out = _import(tmp_path, tmp_path / "cache", *names)
    assert _under_home(tmp_path) == []
    third = tmp_path / "cache" / ".thirdparty"
    assert out == f"{third / 'matplotlib'} None"  # XDG_CACHE_HOME was only set during imports
    if "paddle" in names:
        assert (third / "home" / ".cache" / "paddle").is_dir()
    if "onnxruntime" in names:
        assert (third / "home" / ".cache" / "Microsoft").is_dir()


def test_a_users_own_settings_are_kept(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    mine = tmp_path / "mine"
    out = _import(tmp_path, tmp_path / "cache", "onnxruntime",
                  MPLCONFIGDIR=str(mine / "mpl"), XDG_CACHE_HOME=str(mine / "xdg"))  # fmt: skip
    assert out == f"{mine / 'mpl'} {mine / 'xdg'}"
    assert (mine / "xdg" / "Microsoft").is_dir() and _under_home(tmp_path) == []


def test_an_unwritable_cache_uses_a_temporary_folder(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    _import(tmp_path, blocker / "cache", "onnxruntime")
    assert _under_home(tmp_path) == [] and blocker.read_text() == "not a folder"


@pytest.mark.slow
def test_report_html_run_with_home_elsewhere_writes_nothing_there(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    r = subprocess.run(
        [sys.executable, "-m", "picozoo", "report", "show", str(SAVED), "--format", "html"],
        capture_output=True, text=True, env=_env(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0 and r.stdout.startswith("<!DOCTYPE html>"), r.stderr
    assert r.stderr == ""  # no "Matplotlib created a temporary cache directory" note
    assert _under_home(tmp_path) == []
    assert list((tmp_path / "cache" / ".thirdparty" / "matplotlib").glob("fontlist-*.json"))


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name.split(".")[0]) is not None


CHILD = """
import subprocess, sys
from pathlib import Path
from picozoo.thirdparty import contain_third_party
contain_third_party(Path(sys.argv[1]))
subprocess.run([sys.executable, "-c", "import picozoo, onnxruntime"], check=True)
"""


def test_child_processes_inherit_it_through_importing_picozoo(tmp_path: Path) -> None:
    """The bench worker and the converters' child processes import picozoo before any engine:
    the parent's containment reaches them."""
    pytest.importorskip("onnxruntime")
    r = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "cache")],
                       capture_output=True, text=True, env=_env(tmp_path))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert _under_home(tmp_path) == []
    assert (tmp_path / "cache" / ".thirdparty" / "home" / ".cache" / "Microsoft").is_dir()


def test_an_explicit_cache_wins_over_an_inherited_folder(tmp_path: Path) -> None:
    """A picozoo command started by a process that had contained its own (e.g. a test run
    that called the CLI in-process) uses its own cache."""
    pytest.importorskip("onnxruntime")
    stale = tmp_path / "stale" / ".thirdparty"
    _import(tmp_path, tmp_path / "cache", "onnxruntime", _PICOZOO_THIRDPARTY_DIR=str(stale))
    assert (tmp_path / "cache" / ".thirdparty" / "home" / ".cache" / "Microsoft").is_dir()
    assert not stale.exists() and _under_home(tmp_path) == []
