"""Run a whole benchmark: every target x every thread count, one fresh worker process each.

>>> from picozoo.bench.targets import file_target
>>> doc = run_suite([file_target("/nonexistent.onnx", "onnxruntime")], threads=[1])
>>> doc["cells"][0]["status"], doc["cells"][0]["error"]
('failed', '/nonexistent.onnx does not exist')
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import PicozooError
from .environment import collect_environment, device_label, sha256_of
from .results import make_cell, make_document
from .runner import DEFAULT_TIMEOUT_S, failure, run_cell
from .targets import Target


class BenchFailedError(PicozooError):
    """Every cell of a benchmark failed (the report still lists each reason)."""

    exit_code = 1


def artifact_facts(path: Path) -> dict[str, Any]:
    """sha256 and (when picozoo.modelinfo is available) params/FLOPs of an artifact."""
    facts: dict[str, Any] = {"artifact_sha256": None, "modelinfo": None}
    if not path.exists():
        return facts
    with contextlib.suppress(OSError):
        facts["artifact_sha256"] = sha256_of(path)
    try:
        from ..modelinfo import inspect_model

        info = inspect_model(path)
        facts["modelinfo"] = {"params": int(info.params), "flops": int(info.flops)}
    except Exception:  # no modelinfo module, or a model it cannot read: the columns stay empty
        facts["modelinfo"] = None
    return facts


def run_suite(
    targets: Sequence[Target],
    *,
    threads: Sequence[int],
    warmup: int | str = "auto",
    min_iters: int = 100,
    min_time_s: float = 2.0,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    device: str | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Benchmark every (target, threads) cell and return the ``picozoo.bench/1`` document."""
    say = progress or (lambda _m: None)
    env = collect_environment()
    cells = []
    total = len(targets) * len(threads)
    i = 0
    for t in targets:
        facts = artifact_facts(t.path) if t.path is not None else {}
        for n in threads:
            i += 1
            where = f"[{i}/{total}] {t.label} / {t.engine} / {n} thread{'s' if n > 1 else ''}"
            if t.path is None:
                result = failure("prepare", t.error or "no artifact", t.hint)
            else:
                say(f"{where}: measuring ...")
                spec = {
                    "path": str(t.path),
                    "engine": t.engine,
                    "threads": n,
                    "warmup": warmup,
                    "min_iters": min_iters,
                    "min_time_s": min_time_s,
                    "input_size": list(t.input_size) if t.input_size else None,
                    "seed": seed,
                }
                result = run_cell(spec, timeout=timeout_s)
            cell = make_cell(t, result, {"threads": n, **facts})
            if t.provenance:
                cell["provenance"] = t.provenance
            cells.append(cell)
            if cell["status"] == "ok":
                s = cell["stats"]
                say(
                    f"{where}: median {s['median_ms']:.2f} ms, p90 {s['p90_ms']:.2f} ms "
                    f"(n={s['n']}, warm-up {cell['warmup']['n']})"
                )
                for w in cell["stability"]["warnings"]:
                    say(f"  warning: {w}")
            else:
                say(f"{where}: FAILED: {cell['error']}")
    settings = {
        "warmup": warmup,
        "min_iters": min_iters,
        "min_time_s": min_time_s,
        "threads": list(threads),
        "timeout_s": timeout_s,
        "seed": seed,
        "percentiles": "linear interpolation (numpy default)",
    }
    return make_document(cells, env, settings, device or device_label(env))


def all_failed(doc: dict[str, Any]) -> bool:
    """True when the document has cells and none of them succeeded."""
    cells = doc["cells"]
    return bool(cells) and all(c["status"] != "ok" for c in cells)
