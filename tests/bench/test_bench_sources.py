"""`picozoo bench MODEL_ID` from upstream's own ONNX: with only the [bench] extra (paddle cannot
be imported), for a legacy model whose only runnable artifact is its ONNX, and the choices a
model cannot satisfy. Small real ONNX models are published as upstream's ``onnx-nopp`` files on
a loopback mirror."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.bench_helpers import build_conv_onnx, run_cli

from picozoo.bench.records import Document
from picozoo.bench.targets import model_target
from picozoo.hub.registry import load_registry
from picozoo.hub.store import Store
from picozoo.settings import Settings

FAST = ("--threads", "1", "--min-iters", "10", "--min-time", "0.05", "--warmup", "2")
MODELS = ["picodet-s-416", "picodet-legacy-s-320", "picodet-s-416-quant"]


@pytest.fixture()
def upstream_onnx(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The onnx-nopp ONNX of picodet-s-416 and picodet-legacy-s-320 (small real models) on a
    loopback mirror; an environment (cache, registry, mirror) where paddle cannot be imported,
    as with only `pip install picozoo[bench]`."""
    from support.artifacts import publish, sha256_file, write_registry
    from support.http_server import serve_directory

    reg = load_registry(write_registry(tmp_path / "registry.yaml", MODELS))
    sha = {}
    (tmp_path / "build").mkdir()
    for i, mid in enumerate(MODELS[:2]):
        art = reg.get(mid).artifact("onnx-nopp")
        onnx = build_conv_onnx(tmp_path / "build" / f"{i}.onnx", size=32 + 16 * i, layers=1 + i)
        sha[mid] = sha256_file(publish(art, onnx, tmp_path / "mirror"))
    shadow = tmp_path / "no-paddle" / "paddle"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named paddle')\n")
    with serve_directory(tmp_path / "mirror") as srv:
        env = {
            **os.environ,
            "PICOZOO_MIRROR": srv.url,
            "PICOZOO_CACHE": str(tmp_path / "cache"),
            "PICOZOO_REGISTRY": reg.path,
            "PYTHONPATH": os.pathsep.join([str(shadow.parent), *sys.path]),
        }
        yield {"env": env, "sha256": sha, "registry": reg, "server": srv}


def test_paddle_is_really_blocked(upstream_onnx: dict[str, Any]) -> None:
    r = subprocess.run(
        [sys.executable, "-c", "import paddle"],
        env=upstream_onnx["env"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 1 and "No module named paddle" in r.stderr


@pytest.mark.slow
def test_bench_extra_alone_benches_upstream_onnx_of_current_and_legacy_models(
    upstream_onnx: dict[str, Any], tmp_path: Path
) -> None:
    env, sha = upstream_onnx["env"], upstream_onnx["sha256"]
    saved = tmp_path / "r.json"
    r = run_cli("bench", *MODELS[:2], *FAST, "--report", "json", "--out", str(saved), env=env)
    assert r.returncode == 0, r.stderr
    for mid in MODELS[:2]:  # said on stderr: what was chosen, and the pull
        assert f"{mid}: benching upstream's onnx-nopp ONNX (--source auto)" in r.stderr
        assert f"{mid}: pulling onnx-nopp" in r.stderr
    doc = Document.from_json(json.loads(saved.read_text()), "r.json")
    cells = {c.model_id: c for c in doc.cells}
    reg = upstream_onnx["registry"]
    for mid in MODELS[:2]:
        c = cells[mid]
        assert c.ok, c.failure
        assert c.origin == "upstream" and c.artifact_sha256 == sha[mid]
        url = reg.get(mid).artifact("onnx-nopp").url
        mirrored = upstream_onnx["server"].url.rstrip("/") + "/" + url.split("/", 3)[3]
        assert c.provenance == {  # the bytes came from the mirror: the cell says so
            "artifact": "onnx-nopp",
            "url": url,
            "sha256": sha[mid],
            "fetched_from": mirrored,
        }
    assert cells["picodet-legacy-s-320"].input_size == (48, 48)  # the file's own shape
    assert cells["picodet-legacy-s-320"].claims.map == 27.1  # type: ignore[union-attr]
    # every report format says which file was benched: origin, and what its sha256 is of
    url = reg.get("picodet-s-416").artifact("onnx-nopp").url
    name = Path(str(cells["picodet-s-416"].source)).name
    source = cells["picodet-s-416"].provenance["fetched_from"]  # type: ignore[index]
    line = f"benched picodet-s-416 / onnxruntime: upstream onnx-nopp {url}, downloaded from "
    line += f"{source}; sha256 of {name}: {sha['picodet-s-416']}"
    for fmt in ("md", "table", "html"):
        shown = run_cli("report", "show", str(saved), "--report", fmt)
        assert shown.returncode == 0, shown.stderr
        assert line in shown.stdout.replace("\n", ""), fmt
    rows = list(
        csv.DictReader(io.StringIO(run_cli("report", "show", str(saved), "--report", "csv").stdout))
    )
    assert [(r["model_id"], r["origin"], r["artifact_sha256"]) for r in rows] == [
        (mid, "upstream", sha[mid]) for mid in MODELS[:2]
    ]
    # cached now: benched again without a download
    again = run_cli("bench", "picodet-legacy-s-320", *FAST, "--report", "json", env=env)
    assert again.returncode == 0 and "pulling" not in again.stderr


@pytest.mark.parametrize(
    ("model_id", "engine", "source", "error", "hint"),
    [
        (
            "picodet-legacy-s-320",
            "paddle",
            "auto",
            "picodet-legacy-s-320 has no Paddle inference tarball",
            "bench its upstream ONNX on ONNX Runtime: --engine onnxruntime",
        ),
        (
            "picodet-legacy-s-320",
            "onnxruntime",
            "converted",
            "picodet-legacy-s-320 has no Paddle inference tarball to convert",
            "bench its upstream ONNX: --source upstream (or auto)",
        ),
        (
            "picodet-s-416-quant",
            "onnxruntime",
            "upstream",
            "picodet-s-416-quant has no upstream onnx-nopp ONNX",
            "bench --source converted (or auto)",
        ),
        (
            "picodet-legacy-lcnet-1.5x-640",
            "onnxruntime",
            "auto",
            "picodet-legacy-lcnet-1.5x-640 has no Paddle inference tarball to convert",
            "it has: weights, log, config",
        ),
    ],
)
def test_choices_a_model_cannot_satisfy_say_what_would_work(
    tmp_path: Path, model_id: str, engine: str, source: str, error: str, hint: str
) -> None:
    """No hint sends the user in a circle: each names a choice that works for this model."""
    store = Store(Settings(cache_dir=tmp_path / "cache", offline=True))
    model = load_registry().get(model_id)
    t = model_target(store, model, engine, postprocess=False, source=source)
    assert t.path is None and t.failure is not None
    assert (t.failure.stage, t.failure.error, t.failure.hint) == ("prepare", error, hint)
    assert not (tmp_path / "cache").exists()  # refused before any work


def test_cli_offers_every_source() -> None:
    from picozoo.cli.bench import bench_cmd
    from picozoo.resolve import SOURCES

    (opt,) = [p for p in bench_cmd.params if p.name == "source"]
    assert tuple(opt.type.choices) == SOURCES and opt.default == "auto"  # type: ignore[attr-defined]


def test_converted_source_without_paddle_points_to_upstream(tmp_path: Path) -> None:
    """--source converted for a model that has upstream's ONNX: whatever makes the conversion
    fail (here: offline, nothing cached), the hint also offers upstream's ONNX."""
    store = Store(Settings(cache_dir=tmp_path / "cache", offline=True))
    t = model_target(
        store,
        load_registry().get("picodet-s-416"),
        "onnxruntime",
        postprocess=False,
        source="converted",
    )
    assert t.failure is not None and "offline" in t.failure.error
    assert t.failure.hint is not None
    assert t.failure.hint.endswith("; or bench upstream's ONNX: --source upstream (or auto)")
