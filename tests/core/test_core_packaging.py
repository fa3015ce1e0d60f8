"""The wheel ships registry.yaml and works without the source tree (ruff and mypy: .ci/run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_contains_registry_and_runs_list_and_show(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
    )
    (wheel,) = tmp_path.glob("picozoo-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert "picozoo/registry.yaml" in names
        assert z.read("picozoo/registry.yaml") == (ROOT / "registry.yaml").read_bytes()
        z.extractall(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "PICOZOO_CACHE": str(tmp_path / "c")}
    env.pop("PICOZOO_REGISTRY", None)
    code = "import picozoo.hub.registry as r; print(r.packaged_registry_path())"
    where = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip() == str(tmp_path / "site" / "picozoo" / "registry.yaml")
    out = subprocess.run(
        [sys.executable, "-m", "picozoo", "show", "picodet-s-416", "--format", "json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)["id"] == "picodet-s-416"
    out = subprocess.run(
        [sys.executable, "-m", "picozoo", "list", "--format", "csv"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(out.stdout.strip().splitlines()) == 34
