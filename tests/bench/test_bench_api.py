"""``picozoo.bench.run``: the whole benchmark as one library call (what ``picozoo bench`` runs
and renders)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.bench_helpers import run_cli

import picozoo.bench
from picozoo.errors import UsageError
from picozoo.hub.store import Store
from picozoo.settings import Settings


def test_the_public_api_is_run() -> None:
    assert picozoo.bench.__all__ == ["run"] and callable(picozoo.bench.run)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"warmup": "-3"}, "--warmup must be 'auto' or a count >= 0"),
        ({"input_size": "big"}, "cannot parse --input-size 'big'"),
        ({"engines": ["paddle"], "precisions": ["int8"]}, "paddle runs none of the requested"),
    ],
)
def test_bad_options_are_refused_before_any_work(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    store = Store(Settings(cache_dir=tmp_path / "cache", offline=True))
    phases: list[str] = []
    with pytest.raises(UsageError, match=message):
        picozoo.bench.run([str(tmp_path / "m.onnx")], store=store, phase=phases.append,
                          **options)  # type: ignore[arg-type]  # fmt: skip
    assert phases == [] and not (tmp_path / "cache").exists()


def test_an_empty_cache_has_no_model_to_bench(tmp_path: Path) -> None:
    store = Store(Settings(cache_dir=tmp_path / "cache", offline=True))
    with pytest.raises(UsageError, match=r"no model to bench: the cache .* has no model in it"):
        picozoo.bench.run(store=store)


@pytest.mark.slow
def test_run_measures_what_the_cli_prints(tiny_onnx: Path, tmp_path: Path) -> None:
    store = Store(Settings(cache_dir=tmp_path / "cache", offline=True))
    lines: list[str] = []
    phases: list[str] = []
    doc = picozoo.bench.run(
        [str(tiny_onnx)], threads=[1, 2], warmup=2, min_iters=15, min_time=0.05,
        device="here", store=store, progress=lines.append, phase=phases.append,
    )  # fmt: skip
    assert phases == ["preparing", "measuring"]
    assert [(c.model, c.engine, c.precision, c.threads) for c in doc.cells] == [
        ("tiny_conv", "onnxruntime", "fp32", 1),
        ("tiny_conv", "onnxruntime", "fp32", 2),
    ]
    assert all(c.ok for c in doc.cells) and not doc.all_failed and doc.device == "here"
    assert doc.settings.warmup == 2 and doc.settings.min_iters == 15
    assert any("[2/2]" in line for line in lines)  # progress went to the callback
    r = run_cli("bench", str(tiny_onnx), "--threads", "1", "--threads", "2", "--warmup", "2",
                "--min-iters", "15", "--min-time", "0.05", "--device", "here",
                "--format", "json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    cli = json.loads(r.stdout)
    assert [(c["model"], c["threads"], c["status"]) for c in cli["cells"]] == [
        (c.model, c.threads, "ok") for c in doc.cells
    ]
    assert cli["settings"]["warmup"] == 2 and cli["device"] == "here"
