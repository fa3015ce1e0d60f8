"""Settings (flags > environment > defaults), the error table, and rendering in one place."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import picozoo
from picozoo.errors import ExitCode, PicozooError, UsageError
from picozoo.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PICOZOO_")}
    return subprocess.run(
        [sys.executable, "-m", "picozoo", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        check=False,
    )


def test_flags_override_the_environment_which_overrides_defaults(tmp_path: Path) -> None:
    env = {"PICOZOO_CACHE": str(tmp_path / "env"), "PICOZOO_MIRROR": "http://a/pp,http://b/pp"}
    s = Settings.from_env(env)
    assert s.cache_dir == tmp_path / "env" and s.mirrors == ("http://a/pp", "http://b/pp")
    assert s.pins_path == tmp_path / "env" / "picozoo.lock" and not s.offline
    s = Settings.from_env(env, cache_dir=tmp_path / "flag", mirrors=("http://c",), offline=True)
    assert s.cache_dir == tmp_path / "flag" and s.mirrors == ("http://c",) and s.offline
    assert Settings.from_env({}, lock_path="x.lock").pins_path == Path("x.lock").absolute()
    assert "picozoo" in str(Settings.from_env({}).cache_dir)  # platformdirs default


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan", "abc"])
def test_a_bad_timeout_is_a_usage_error(value: str) -> None:
    with pytest.raises(UsageError, match="PICOZOO_TIMEOUT"):
        Settings.from_env({"PICOZOO_TIMEOUT": value})


def test_a_bad_environment_value_is_one_line_with_the_usage_exit_code() -> None:
    r = _run("pull", "picodet-s-416", env={"PICOZOO_TIMEOUT": "abc"})
    assert r.returncode == ExitCode.USAGE
    assert r.stderr.strip().count("\n") == 0 and "PICOZOO_TIMEOUT='abc'" in r.stderr


@pytest.mark.slow
def test_show_reads_pins_from_the_lock_file_given(tmp_path: Path) -> None:
    from picozoo.hub.registry import load_registry

    url = load_registry().get("picodet-s-416").artifact("inference").url
    lock = tmp_path / "project.lock"
    lock.write_text(
        json.dumps({"version": 1, "artifacts": {url: {"sha256": "cd" * 32, "size": 7}}})
    )
    r = _run("show", "picodet-s-416", "--format", "json", "--lock", str(lock),
             "--cache", str(tmp_path / "c"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    (inference,) = [a for a in json.loads(r.stdout)["artifacts"] if a["kind"] == "inference"]
    assert inference["sha256"] == "cd" * 32 and inference["size"] == 7
    r = _run("show", "picodet-s-416", "--format", "json", "--cache", str(tmp_path / "c"))
    (inference,) = [a for a in json.loads(r.stdout)["artifacts"] if a["kind"] == "inference"]
    assert inference["sha256"] is None


@pytest.mark.slow
def test_debug_shows_the_chained_cause(tmp_path: Path) -> None:
    bad = tmp_path / "reg.yaml"
    bad.write_text("models: [unclosed\n")
    r = _run("--registry", str(bad), "list")
    assert r.returncode == ExitCode.CONFIG and "Traceback" not in r.stderr
    r = _run("--registry", str(bad), "list", env={"PICOZOO_DEBUG": "1"})
    assert r.returncode == ExitCode.CONFIG
    assert "yaml" in r.stderr and "direct cause" in r.stderr


def test_every_picozoo_error_is_defined_in_the_error_table() -> None:
    for mod in pkgutil.walk_packages(picozoo.__path__, "picozoo."):
        if not mod.name.endswith("__main__"):
            importlib.import_module(mod.name)
    classes: list[type] = [PicozooError]
    seen = []
    while classes:
        cls = classes.pop()
        seen.append(cls)
        classes += cls.__subclasses__()
    outside = [c.__qualname__ for c in seen if c.__module__ != "picozoo.errors"]
    assert outside == [] and len(seen) > 15
    assert all(isinstance(c.exit_code, ExitCode) for c in seen)
