"""Run a whole benchmark: every target x every thread count, one fresh worker process each.
Cells with more threads than the cores this process may use
(:func:`~picozoo.bench.environment.usable_cores`) are marked ``oversubscribed``; a cell whose
file ``picozoo eval`` scored on the same engine and precision gets that measured mAP
(:mod:`.evals`).

>>> from picozoo.bench.targets import file_target
>>> doc = run_suite([file_target("/nonexistent.onnx", "onnxruntime")], threads=[1])
>>> doc.all_failed, doc.cells[0].failure.error
(True, '/nonexistent.onnx: no such file or directory')
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path

from ..hub.eval_result import EvalResult
from .environment import collect_environment, device_label, sha256_of
from .evals import measured_map_for
from .records import ArtifactInfo, Cell, CellResult, Document, Failure, RunSettings
from .runner import DEFAULT_TIMEOUT_S, run_cell
from .stats import PERCENTILES
from .targets import BenchTarget


def artifact_facts(path: Path) -> tuple[str | None, ArtifactInfo | None]:
    """sha256 and (when picozoo.modelinfo can read it) params/FLOPs of an artifact.

    >>> artifact_facts(Path("/nonexistent.onnx"))
    (None, None)
    """
    sha, info = None, None
    if not path.exists():
        return sha, info
    with contextlib.suppress(OSError):
        sha = sha256_of(path)
    try:
        from ..modelinfo import inspect_model

        mi = inspect_model(path)
        # a Paddle-Lite .nb has no FLOPs count: the columns stay empty rather than say 0
        info = ArtifactInfo(params=int(mi.params), flops=int(mi.flops)) if mi.lite is None else None
    except Exception:  # a model modelinfo cannot read: the columns stay empty
        info = None
    return sha, info


def run_suite(
    targets: Sequence[BenchTarget],
    *,
    threads: Sequence[int],
    warmup: int | str = "auto",
    min_iters: int = 100,
    min_time_s: float = 2.0,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    device: str | None = None,
    seed: int = 0,
    debug: bool = False,
    progress: Callable[[str], None] | None = None,
    evals: Sequence[EvalResult] = (),
    notes: Sequence[str] = (),
) -> Document:
    """Benchmark every (target, threads) cell and return the ``picozoo.bench/1`` document
    (``evals``: cached ``picozoo eval`` results, see :func:`.evals.load_evals`; ``notes``: what
    the document should say about the whole run).

    >>> from picozoo.bench.targets import file_target
    >>> targets = [file_target("model.onnx", "onnxruntime")]
    >>> doc = run_suite(targets, threads=[1, 4])  # doctest: +SKIP
    >>> [c.stats.median_ms for c in doc.cells]  # doctest: +SKIP
    [7.12, 2.95]
    """
    say = progress or (lambda _m: None)
    env = collect_environment()
    cells: list[Cell] = []
    total = len(targets) * len(threads)
    for t in targets:
        sha, info = artifact_facts(t.path) if t.path is not None else (None, None)
        scored = measured_map_for(t.path, t.engine, t.precision, evals, sha) if t.path else None
        at = "" if t.precision == "fp32" else f" {t.precision}"
        for n in threads:
            where = (
                f"[{len(cells) + 1}/{total}] {t.label} / {t.engine}{at} / "
                f"{n} thread{'s' if n > 1 else ''}"
            )
            result: CellResult
            if t.path is None:
                result = t.failure or Failure("prepare", "no artifact")
            else:
                say(f"{where}: measuring ...")
                spec = t.spec(
                    n, warmup=warmup, min_iters=min_iters, min_time_s=min_time_s, seed=seed
                )
                result = run_cell(spec, timeout=timeout_s, debug=debug)
            cell = t.cell(
                n,
                result,
                artifact_sha256=sha,
                modelinfo=info,
                oversubscribed=n > env.cores,
                measured_map=scored,
            )
            cells.append(cell)
            _report(cell, where, say)
    settings = RunSettings(
        warmup=warmup,
        min_iters=min_iters,
        min_time_s=min_time_s,
        threads=tuple(threads),
        timeout_s=timeout_s,
        seed=seed,
        percentiles=PERCENTILES,
    )
    return Document.create(cells, env, settings, device or device_label(env), notes)


def _report(cell: Cell, where: str, say: Callable[[str], None]) -> None:
    m = cell.measured
    if m is None:
        f = cell.failure
        what = "skipped" if f and f.skipped else "FAILED"
        say(f"{where}: {what}: {f.error if f else 'unknown failure'}")
        return
    s = m.stats
    mm = cell.measured_map
    scored = f", mAP {mm.map:.1f} (eval on {mm.set_short})" if mm else ""
    say(
        f"{where}: median {s.median_ms:.2f} ms, p90 {s.p90_ms:.2f} ms "
        f"(n={s.n}, warm-up {m.warmup.n}){scored}"
    )
    if m.stability.warnings:
        say(f"  (!) unstable: {'; '.join(m.stability.warnings)}")
