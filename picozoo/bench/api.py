"""``picozoo bench`` as one library call: :func:`run` models in, a ``picozoo.bench/1``
:class:`~picozoo.bench.records.Document` out (render it with :func:`picozoo.bench.report.render`).

This module is light: the harness is imported when :func:`run` is called.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import Need, UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from ..hub.registry import Registry
    from ..hub.store import Store
    from .records import Document
    from .targets import BenchTarget

Progress = Callable[[str], None]

#: What :func:`run` is doing, told to its ``phase`` callback: pulling/converting what the
#: models need, then measuring.
PHASES = ("preparing", "measuring")


def parse_warmup(value: int | str) -> int | str:
    """Warm-up iterations: a count >= 0, or ``"auto"`` (until the timings settle).

    >>> parse_warmup("20"), parse_warmup("auto")
    (20, 'auto')
    >>> parse_warmup("-1")
    Traceback (most recent call last):
    ...
    picozoo.errors.UsageError: --warmup must be 'auto' or a count >= 0, got '-1' (e.g. --warmup 20)
    """
    if value == "auto":
        return "auto"
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise UsageError(
            f"--warmup must be 'auto' or a count >= 0, got {value!r}", hint="e.g. --warmup 20"
        )
    return n


def check_seconds(option: str, value: float, *, low: float) -> None:
    """Refuse a duration that is not a finite number >= ``low`` (``nan`` passes every ``<``).

    >>> check_seconds("--timeout", float("nan"), low=1.0)
    Traceback (most recent call last):
    ...
    picozoo.errors.UsageError: --timeout must be a finite number >= 1, got nan (e.g. --timeout 900)
    """
    if not (math.isfinite(value) and value >= low):
        example = {"--timeout": 900, "--min-time": 2}.get(option, 1)
        raise UsageError(
            f"{option} must be a finite number >= {low:g}, got {value!r}",
            hint=f"e.g. {option} {example}",
        )


def parse_size(value: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """An input size ``HxW`` (or ``N`` for NxN, or the named ``NAME=N,C,H,W`` of
    ``picozoo convert``) as ``(H, W)``; None stays None.

    >>> parse_size("416x320"), parse_size("320"), parse_size((64, 48)), parse_size(None)
    ((416, 320), (320, 320), (64, 48), None)
    >>> parse_size("image=1,3,320,256")
    (320, 256)
    """
    if not value:
        return None
    if isinstance(value, tuple):
        dims = [int(v) for v in value]
    else:
        parts = value.partition("=")[2] or value
        try:
            dims = [int(p) for p in parts.lower().replace("*", "x").replace(",", "x").split("x")]
        except ValueError:
            dims = []
        if len(dims) == 4:  # NAME=N,C,H,W
            dims = dims[2:]
        elif len(dims) == 1:
            dims = dims * 2
    if len(dims) != 2 or min(dims) <= 0:
        raise UsageError(f"cannot parse --input-size {value!r}", hint="write HxW, e.g. 416x416")
    return dims[0], dims[1]


def check_installed(engines: Sequence[str], also: Sequence[Need] = ()) -> None:
    """Raise one :class:`~picozoo.errors.MissingDependencyError` (exit 11) naming every
    missing package and the extras that install them, before anything is pulled: ``also``
    (e.g. what the report format needs), and the packages of the engines named in
    ``engines`` (default: ONNX Runtime) when none of them is installed (nothing could be
    measured; when one is, the others' cells fail with the install hint). ``all`` skips what
    is not installed.

    >>> check_installed(["onnxruntime"])
    """
    from ..capture import quiet_import
    from ..errors import require_all
    from .engines import engine_needs, missing_engine

    named = [e for e in dict.fromkeys(engines or ("onnxruntime",)) if e != "all"]
    needs = list(also)
    if named and all(missing_engine(e) is not None for e in named):
        needs += [n for e in named for n in engine_needs(e)]
    require_all(needs, load=quiet_import)


def check_fixed_sizes(targets: Sequence[BenchTarget], size: tuple[int, int]) -> None:
    """Refuse (exit 2, before measuring) an ``--input-size`` that a model file's fixed image
    input would ignore: its cells would be benched at the file's size, not the one asked.
    Model ids named are checked against the registry before anything is pulled
    (:func:`picozoo.resolve.check_runnable`), the cached ones benched when none is named
    here; a file that cannot be loaded here is left to its cell, which says why."""
    from ..resolve import check_runnable
    from ..runtime import load
    from ..targets import Target

    seen: set[Path] = set()
    for t in targets:
        if t.model is not None:  # the cached models benched when none is named
            check_runnable(Target(t.model.id, model=t.model), "bench", input_size=size)
            continue
        if t.path is None or t.path in seen:
            continue
        seen.add(t.path)
        try:
            inputs = load(t.engine, t.path, precision=t.precision).inputs()
        except Exception:
            continue
        for i in inputs:
            hw = list(i.shape[2:]) if len(i.shape) == 4 else []
            fixed = hw and all(isinstance(d, int) and d > 0 for d in hw)
            if fixed and tuple(hw) != tuple(size):
                raise UsageError(
                    f"--input-size {size[0]}x{size[1]} cannot apply to {t.label}: its input "
                    f"{i.name!r} has a fixed size {hw[0]}x{hw[1]}",
                    hint="drop --input-size (it sizes models with a dynamic input), or export "
                    "the model at that size",
                )


def run(
    models: Sequence[str] = (),
    *,
    engines: Sequence[str] = ("onnxruntime",),
    precisions: Sequence[str] = ("fp32",),
    threads: Sequence[int] = (),
    postprocess: bool = False,
    source: str = "auto",
    warmup: int | str = "auto",
    min_iters: int = 100,
    min_time: float = 2.0,
    input_size: str | tuple[int, int] | None = None,
    device: str | None = None,
    timeout: float = 900.0,
    image: str | Path | None = None,
    store: Store | None = None,
    registry: Registry | None = None,
    progress: Progress | None = None,
    phase: Progress | None = None,
    cluster: str | None = None,
    on: Sequence[str] = (),
) -> Document:
    """Measure the inference latency of ``models``, each (model, engine, precision, threads)
    cell in a fresh process, and return the whole result.

    Model ids are benched without post-processing (as upstream measured) unless
    ``postprocess``; whatever a cell needs (the ONNX, an inference tarball, a conversion for
    OpenVINO/MNN/ncnn) is pulled or converted first. A cell that fails is kept in the document
    with its reason (``doc.all_failed`` says whether every cell did); a cell whose file
    ``picozoo eval`` scored carries that measured mAP.

    Args:
        models: model ids, ``.onnx`` files or Paddle inference folders; empty: every model
            with anything in the cache.
        engines: engine names (:data:`picozoo.runtime.ENGINES`) or ``"all"`` (every installed
            engine; the others are skipped with a note).
        precisions: precisions (``fp32``, ``fp16``, ``bf16``, ``int8``) or ``"all"``; one an
            engine does not run is skipped with a note.
        threads: thread counts, one cell each; empty: the cores this process may use; at most
            :func:`picozoo.threads.max_threads` (4x those cores).
        postprocess: bench model ids with post-processing (NMS) included.
        source: on ONNX Runtime, ``"upstream"`` ONNX, ``"converted"`` from the inference
            tarball, or ``"auto"``: picozoo's conversion when the store has one (``picozoo
            convert``'s, see :func:`picozoo.resolve.stored_onnx`), else upstream's when it
            has the requested kind.
        warmup: warm-up iterations, or ``"auto"`` (until the median of the last 5 moves < 5%).
        min_iters, min_time: measure at least this many iterations and seconds (finite).
        input_size: ``"HxW"`` or ``(H, W)`` for models with dynamic input shapes (a model
            id's exports have a fixed size: another one is refused; a file's fixed input
            size fails its cell, see :func:`picozoo.bench.worker.resolve_shape`).
        device: the device label of reports and merges (default: the CPU model).
        timeout: seconds allowed per cell (finite, >= 1).
        image: an image file fed to every cell, pre-processed as ``picozoo infer`` does with
            each model's ``infer_cfg.yml`` (see :mod:`picozoo.bench.image`), instead of
            seeded random data; each cell records its name and sha256 (needs ``[eval]``).
        store, registry: the cache and the model registry (default: from the environment,
            see :class:`picozoo.settings.Settings`).
        progress: called with each progress line (notes, pulls, cells); default: quiet.
        phase: called with ``"preparing"`` then ``"measuring"`` (what an interruption stops).
        cluster: a Dask scheduler (``tcp://HOST:8786``; default: ``PICOZOO_CLUSTER``, else
            none): every cell is measured on every bench machine of that cluster (see
            :mod:`picozoo.bench.fleet`; needs ``[fleet]``), each cell naming its machine.
            Each machine resolves, pulls and converts the models itself (its own cache and
            mirror); here model ids are only checked against the registry, nothing is
            pulled and no engine is needed; a path is read on the machines.
        on: with ``cluster``, only the machines of these names (their ``dask worker --name``).

    Returns:
        The ``picozoo.bench/1`` :class:`~picozoo.bench.records.Document`.

    Raises:
        UsageError: a bad option, an unknown model id, no model to bench, a path that does
            not exist, a claims-only model id, or an ``input_size`` a model id's fixed
            input ignores (before anything is pulled).
        MissingDependencyError: no engine named is installed (before anything is pulled;
            with ``cluster``, a machine without an engine skips its cells instead).
        ClusterUnreachableError: ``cluster``'s scheduler does not answer (exit 4, before
            anything is pulled).
        PicozooError: a model could not be prepared and nothing else can run.

    Example:
        >>> import picozoo.bench
        >>> doc = picozoo.bench.run(["picodet-s-416"], threads=[1, 4])  # doctest: +SKIP
        >>> [round(c.measured.stats.median_ms, 1) for c in doc.cells]  # doctest: +SKIP
        [7.1, 3.0]
    """
    from ..hub.store import Store
    from ..settings import Settings
    from ..threads import check_threads, usable_cores
    from .engines import plan_engines
    from .notes import oversubscription

    say = progress or (lambda _m: None)
    tell = phase or (lambda _p: None)
    check_threads(threads)
    check_seconds("--min-time", min_time, low=0.0)
    check_seconds("--timeout", timeout, low=1.0)
    wu = parse_warmup(warmup)
    size = parse_size(input_size)
    plan = plan_engines(engines or ("onnxruntime",), precisions or ("fp32",))
    store = store if store is not None else Store(Settings.from_env())
    cluster = cluster or store.settings.cluster
    if on and not cluster:
        raise UsageError("--on names machines of a cluster", hint="give --cluster tcp://HOST:8786")
    also: list[Need] = [("cv2", ("eval",), "opencv-python-headless")] if image else []
    if cluster:  # the machines measure: this one needs no engine (theirs skip what they lack)
        from ..capture import quiet_import
        from ..errors import require_all

        require_all(also, load=quiet_import)
    else:
        check_installed(engines, also)
    if image is not None:  # refused now (exit 2) when it is not an image, before any pull
        from pathlib import Path

        from ..detect.preprocess import read_image

        read_image(Path(image))
    if postprocess and image is None:
        plan.notes.append(
            "--postprocess without --image: the models' NMS runs on seeded random inputs, "
            "where it costs what no real image costs; give --image FILE to time it on a photo"
        )
    for note in plan.notes:
        say(f"note: {note}")
    cores = usable_cores()
    counts = list(dict.fromkeys(threads)) or [cores]
    over = oversubscription(counts, cores)
    if over:
        say(f"warning: {over}; their ratio to upstream's latency is not shown")
    client = None
    if cluster:  # refused now (exit 4) when it does not answer, before anything is pulled
        from .fleet import bench_workers, connect

        client = connect(cluster)
        try:
            bench_workers(client, on)
        except BaseException:
            client.close()
            raise
    try:
        return _run(models, plan, wu, size, counts, store, registry, cluster, on, client,
                    postprocess=postprocess, source=source, min_iters=min_iters,
                    min_time=min_time, device=device, timeout=timeout, image=image, say=say,
                    tell=tell)  # fmt: skip
    finally:
        if client is not None:
            client.close()


def _run(
    models: Sequence[str],
    plan: Any,
    wu: int | str,
    size: tuple[int, int] | None,
    counts: list[int],
    store: Store,
    registry: Registry | None,
    cluster: str | None,
    on: Sequence[str],
    client: Any,
    *,
    postprocess: bool,
    source: str,
    min_iters: int,
    min_time: float,
    device: str | None,
    timeout: float,
    image: str | Path | None,
    say: Progress,
    tell: Progress,
) -> Document:
    """:func:`run` once its options are checked (and its cluster answered)."""
    from ..hub.registry import load_registry
    from ..resolve import check_runnable
    from ..targets import is_path_arg, resolve_arg
    from .evals import load_evals
    from .suite import run_suite
    from .targets import resolve_targets

    if registry is None and (not models or not all(is_path_arg(m) for m in models)):
        registry = load_registry(store.settings.registry_path)
    if cluster and not models:
        raise UsageError(
            "bench --cluster needs the models named: each machine benches them from its own "
            "cache and mirror",
            hint="e.g. picozoo bench picodet-s-416 --cluster tcp://HOST:8786",
        )
    for m in models:  # refused before anything is pulled: nothing to measure, or ignored
        named = resolve_arg(m, registry, must_exist=False)
        if cluster and named.model is None:  # a path is read on the machines, not here
            continue
        check_runnable(named, "bench", input_size=size,
                       models=registry.models if registry is not None else ())  # fmt: skip
    if cluster:  # the machines resolve, pull and convert, each into its own cache
        from pathlib import Path

        from .fleet import plan_targets, run_fleet

        planned = plan_targets(models, plan.pairs, registry=registry, postprocess=postprocess,
                               input_size=size, implicit=plan.implicit, notes=plan.notes,
                               progress=say)  # fmt: skip
        tell("measuring")
        return run_fleet(cluster, planned, threads=counts, postprocess=postprocess,
                         source=source, input_size=size,
                         image=Path(image) if image is not None else None, warmup=wu,
                         min_iters=min_iters, min_time_s=min_time, timeout_s=timeout, on=on,
                         device=device, debug=store.settings.debug, progress=say,
                         notes=plan.notes, client=client)  # fmt: skip
    tell("preparing")
    targets = resolve_targets(
        models,
        plan.pairs,
        store=store,
        registry=registry,
        postprocess=postprocess,
        source=source,
        input_size=size,
        progress=say,
        implicit=plan.implicit,
        notes=plan.notes,
    )
    if size is not None:
        check_fixed_sizes(targets, size)
    if not targets:
        raise UsageError(
            f"no model to bench: the cache {store.settings.cache_dir} has no model in it",
            hint="pass a model id or an .onnx file, or `picozoo pull MODEL` first",
        )
    with tempfile.TemporaryDirectory(prefix="picozoo-bench-") as tmp:
        if image is not None:
            from pathlib import Path

            from .image import with_image

            targets = with_image(targets, Path(image), store=store, folder=Path(tmp),
                                 progress=say)  # fmt: skip
        tell("measuring")
        return run_suite(
            targets,
            threads=counts,
            warmup=wu,
            min_iters=min_iters,
            min_time_s=min_time,
            timeout_s=timeout,
            device=device,
            debug=store.settings.debug,
            progress=say,
            evals=load_evals(store.root),
            notes=plan.notes,
        )


__all__ = [
    "PHASES",
    "check_fixed_sizes",
    "check_installed",
    "check_seconds",
    "parse_size",
    "parse_warmup",
    "run",
]
