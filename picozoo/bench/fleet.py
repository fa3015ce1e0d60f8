"""``picozoo bench --cluster``: the same plan of cells measured on every machine of a Dask
cluster, gathered into one ``picozoo.bench/1`` document with a machine per cell.

Machines are plain Dask workers with picozoo installed, started as::

    dask scheduler --port 8786
    dask worker tcp://HOST:8786 --name NAME --nthreads 1 --resources bench=1

The worker's ``--name`` is the machine's name in the table; ``bench=1`` marks a bench machine.
Each cell is submitted to one worker (``workers=[address]``) and needs its one ``bench``
resource, so a machine measures one cell at a time.

The client plans, the machines prepare: here a model id is only checked against this
machine's registry (an unknown id is refused with suggestions, exit 2, before anything is
submitted); nothing is pulled here and this machine needs no engine. On the worker, the task
(:func:`measure_on_worker`) resolves the argument as ``picozoo bench`` does there
(:func:`picozoo.bench.targets.resolve_targets` with the worker's own settings: its
``PICOZOO_CACHE``, ``PICOZOO_MIRROR``, ``PICOZOO_REGISTRY``...), pulls or converts what the cell
needs into the worker's cache, runs the cell in a fresh process there
(:func:`picozoo.bench.runner.run_cell`) and returns the typed cell with the worker's machine
description. A path is read on the worker (it must exist there: a shared folder, or the same
file copied); ``--image`` is sent with the cells.

Faults cost cells, not the run: what fails on a worker (its mirror lacks the artifact, a
conversion fails, the cell crashes) is that machine's failed cell with the reason; an engine
whose package the worker lacks is a ``skipped`` cell with the install command; a worker that
leaves the cluster (killed, crashed, lost) turns its unfinished cells into failures naming the
machine. Ctrl-C (or SIGTERM) cancels every submitted cell: a worker measuring one kills its
process within :data:`~picozoo.bench.runner.POLL_S` s, as it does when the client vanishes.

Needs ``pip install 'picozoo[fleet]'`` (Dask distributed), here and on every worker.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ClusterUnreachableError, UsageError
from .records import (
    SKIPPED,
    Cell,
    Document,
    Environment,
    Failure,
    Machine,
    RunSettings,
)
from .runner import DEFAULT_TIMEOUT_S
from .stats import PERCENTILES
from .targets import BenchTarget

if TYPE_CHECKING:
    from ..hub.registry import Registry

#: the Dask resource that marks a bench machine (``dask worker --resources bench=1``)
RESOURCE = "bench"
#: the CPU of a machine that returned no result
UNKNOWN_CPU = "unknown (no result)"
#: how long to wait for the scheduler before giving up (seconds)
CONNECT_TIMEOUT_S = 10.0
#: how long to wait for a finished cell's result to be fetched before looking again (seconds)
RESULT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Worker:
    """A bench machine of the cluster: its scheduler address and ``--name``."""

    address: str
    name: str


@dataclass(frozen=True)
class Job:
    """What a machine prepares and measures for one cell: the argument as the user named it
    (a model id, or a path on that machine), what the client knows of it (``target``: label,
    engine, precision, the registry's model), the thread count and the run's settings."""

    arg: str
    target: BenchTarget
    threads: int
    postprocess: bool = False
    source: str = "auto"
    input_size: tuple[int, int] | None = None
    warmup: int | str = "auto"
    min_iters: int = 100
    min_time_s: float = 2.0
    seed: int = 0
    image: tuple[str, bytes] | None = None  #: ``--image``: its file name and bytes


@dataclass(frozen=True)
class Returned:
    """What a cluster task returns: the cell (prepared and measured on the machine) and the
    machine that measured it."""

    cell: Cell
    environment: Environment
    name: str


def plan_targets(
    args: Sequence[str],
    pairs: Sequence[tuple[str, str]],
    *,
    registry: Registry | None,
    postprocess: bool = False,
    input_size: tuple[int, int] | None = None,
    implicit: Collection[str] = (),
    notes: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[tuple[str, BenchTarget]]:
    """Each (argument, engine, precision) to bench on the machines, with what this machine
    knows of it (no ``path``: the machines resolve it): a model id is looked up in
    ``registry`` (unknown: :class:`~picozoo.errors.UsageError` with suggestions), nothing is
    pulled; a file that an ``implicit`` engine (``--engine all``) cannot run, judging by its
    name here, is not benched on it (``notes`` says so).

    >>> [(a, t.label, t.engine) for a, t in plan_targets(["m.onnx"], [("onnxruntime", "fp32")],
    ...                                                 registry=None)]
    [('m.onnx', 'm', 'onnxruntime')]
    """
    from ..targets import resolve_arg
    from .engines import runs_file

    say = progress or (lambda _m: None)
    out: list[tuple[str, BenchTarget]] = []
    for arg in args:
        named = resolve_arg(arg, registry, must_exist=False)
        model = named.model
        for engine, precision in pairs:
            if model is None and engine in implicit and not runs_file(engine, Path(arg)):
                said = f"--engine all: {engine} skipped for {arg}: it cannot run that file"
                if notes is not None and said not in notes:
                    notes.append(said)
                    say(f"note: {said}")
                continue
            if model is not None:
                t = BenchTarget(model.id, engine, model=model, postprocess=postprocess,
                                input_size=input_size or model.input_size,
                                precision=precision)  # fmt: skip
            else:
                t = BenchTarget(named.label, engine, input_size=input_size, origin="file",
                                precision=precision)  # fmt: skip
            out.append((arg, t))
    return out


def prepare_and_measure(
    job: Job,
    environment: Environment,
    *,
    name: str,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    debug: bool = False,
    stop: Callable[[], bool] | None = None,
    progress: Callable[[str], None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Cell:
    """``job``'s cell, prepared and measured on this machine (``name``, described by
    ``environment``) with this process's settings (its cache, mirror, registry): an engine not
    installed here is a ``skipped`` cell with the install command; what fails while preparing
    is a ``prepare`` failure with the reason; never raises for a failing cell. ``environ``:
    the cell process's environment (default: this process's; see :func:`cell_environ`).

    >>> from picozoo.bench.environment import collect_environment
    >>> job = Job("/nonexistent.onnx", BenchTarget("nonexistent", "onnxruntime"), 1)
    >>> prepare_and_measure(job, collect_environment(), name="box").failure.error
    '/nonexistent.onnx: no such file or directory'
    """
    from ..hub.registry import load_registry
    from ..hub.store import Store
    from ..settings import Settings
    from ..targets import is_path_arg
    from .engines import missing_engine
    from .evals import load_evals, measured_map_for
    from .image import with_image
    from .runner import run_cell
    from .suite import artifact_facts
    from .targets import _prepare_failure, resolve_targets

    t, n = job.target, job.threads
    why = missing_engine(t.engine)
    if why is not None:  # as --engine all skips what is not installed, with the command
        return t.cell(n, Failure(SKIPPED, f"{why} (on {name})",
                                 f"install it in the environment of the worker {name} and "
                                 "restart it, or bench another engine"))  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="picozoo-fleet-") as tmp:
        try:
            store = Store(Settings.from_env())
            registry = None if is_path_arg(job.arg) else load_registry(store.settings.registry_path)
            (ready,) = resolve_targets([job.arg], [(t.engine, t.precision)], store=store,
                                       registry=registry, postprocess=job.postprocess,
                                       source=job.source, input_size=job.input_size,
                                       progress=progress)  # fmt: skip
            if job.image is not None and ready.path is not None:
                image = Path(tmp) / "image" / Path(job.image[0]).name
                image.parent.mkdir()
                image.write_bytes(job.image[1])
                (ready,) = with_image([ready], image, store=store, folder=Path(tmp),
                                      progress=progress)  # fmt: skip
        except Exception as e:  # an unknown id in this machine's registry, a bad image...
            return t.cell(n, _prepare_failure(e))
        if ready.path is None:
            return ready.cell(n, ready.failure or Failure("prepare", "no artifact"))
        sha, info = artifact_facts(ready.path)
        scored = measured_map_for(ready.path, ready.engine, ready.precision,
                                  load_evals(store.root), sha)  # fmt: skip
        spec = ready.spec(n, warmup=job.warmup, min_iters=job.min_iters,
                          min_time_s=job.min_time_s, seed=job.seed)  # fmt: skip
        result = run_cell(spec, timeout=timeout, debug=debug, stop=stop, environ=environ)
    return ready.cell(n, result, artifact_sha256=sha, modelinfo=info,
                      oversubscribed=n > environment.cores, measured_map=scored)  # fmt: skip


def measure_on_worker(job: Job, timeout: float | None, debug: bool) -> Returned:
    """The task run on a worker: :func:`prepare_and_measure` there (the cell in a fresh
    process, killed when the task is cancelled), with the worker's machine description and
    ``--name``."""
    import logging

    from distributed import get_worker

    from .environment import collect_environment

    worker = get_worker()
    name = str(worker.name)
    env = collect_environment()
    log = logging.getLogger("picozoo.bench.fleet")
    cell = prepare_and_measure(job, env, name=name, timeout=timeout, debug=debug,
                               stop=_cancelled(worker), progress=log.info,
                               environ=cell_environ())  # fmt: skip
    return Returned(cell, env, name)


def cell_environ(
    environ: Mapping[str, str] | None = None, injected: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """The environment a cell runs in on a worker: the worker's as it was started, less what
    Dask's nanny puts in every worker process (``injected``; default: its
    ``distributed.nanny.pre-spawn-environ``: ``MALLOC_TRIM_THRESHOLD_=65536``,
    ``OMP/MKL/OPENBLAS_NUM_THREADS=1``), which a local bench's cell does not have (a variable
    set to another value when the worker was started is kept).

    >>> cell_environ({"MKL_NUM_THREADS": "1", "MALLOC_TRIM_THRESHOLD_": "0", "HOME": "/h"},
    ...              {"MKL_NUM_THREADS": 1, "MALLOC_TRIM_THRESHOLD_": 65536})
    {'MALLOC_TRIM_THRESHOLD_': '0', 'HOME': '/h'}
    """
    if injected is None:
        import dask.config

        injected = dask.config.get("distributed.nanny.pre-spawn-environ", None) or {}
    env = dict(os.environ if environ is None else environ)
    return {k: v for k, v in env.items() if k not in injected or str(injected[k]) != v}


def _cancelled(worker: Any) -> Callable[[], bool]:
    """Whether the task this thread runs was cancelled (by the client, or because the client
    is gone): the worker's state for it says so."""
    key = worker.get_current_task()

    def stop() -> bool:
        ts = worker.state.tasks.get(key)
        return ts is None or ts.state in ("cancelled", "released", "forgotten")

    return stop


def connect(address: str, *, timeout: float = CONNECT_TIMEOUT_S) -> Any:
    """A ``distributed.Client`` of the scheduler at ``address``; raises
    :class:`ClusterUnreachableError` (exit 4) when it does not answer within ``timeout``,
    :class:`~picozoo.errors.UsageError` (exit 2) when it is not an address.

    >>> connect("notanaddress")
    Traceback (most recent call last):
    ...
    picozoo.errors.UsageError: --cluster 'notanaddress' is not a scheduler address: missing \
port number in address 'notanaddress' (write tcp://HOST:PORT, e.g. tcp://10.0.0.2:8786)
    """
    from ..capture import quiet_import
    from ..errors import require_all

    require_all([("distributed", ("fleet",), "distributed")], load=quiet_import)
    from distributed import Client
    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port

    try:  # refused before a Client is made (a half-made one hangs 20 s on exit)
        parse_host_port(parse_address(address)[1])
    except ValueError as e:
        raise UsageError(
            f"--cluster {address!r} is not a scheduler address: {e}",
            hint="write tcp://HOST:PORT, e.g. tcp://10.0.0.2:8786",
        ) from e
    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as e:
        raise ClusterUnreachableError(
            f"cannot reach the Dask scheduler at {address}: {str(e).splitlines()[0][:200]}",
            hint="start it with `dask scheduler --port 8786`, or check --cluster / PICOZOO_CLUSTER",
        ) from e


def bench_workers(client: Any, on: Sequence[str] = ()) -> list[Worker]:
    """The cluster's bench machines (workers with the ``bench`` resource), by name; only
    those named in ``on`` when given (an unknown name is refused, exit 2)."""
    info = client.scheduler_info(n_workers=-1)["workers"]
    workers = sorted(
        (
            Worker(addr, str(w.get("name", addr)))
            for addr, w in info.items()
            if w.get("resources", {}).get(RESOURCE)
        ),
        key=lambda w: w.name,
    )
    if on:
        known = {w.name for w in workers}
        unknown = [n for n in on if n not in known]
        if unknown:
            raise UsageError(
                f"no bench machine named {', '.join(unknown)} in the cluster "
                f"(it has: {', '.join(sorted(known)) or 'none'})",
                hint="start it with `dask worker tcp://HOST:8786 --name NAME --nthreads 1 "
                "--resources bench=1`",
            )
        workers = [w for w in workers if w.name in on]
    if not workers:
        raise UsageError(
            "the cluster has no bench machine",
            hint="start one with `dask worker tcp://HOST:8786 --name NAME --nthreads 1 "
            "--resources bench=1`",
        )
    return workers


def run_fleet(
    address: str,
    planned: Sequence[tuple[str, BenchTarget]],
    *,
    threads: Sequence[int],
    postprocess: bool = False,
    source: str = "auto",
    input_size: tuple[int, int] | None = None,
    image: Path | None = None,
    warmup: int | str = "auto",
    min_iters: int = 100,
    min_time_s: float = 2.0,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    on: Sequence[str] = (),
    device: str | None = None,
    seed: int = 0,
    debug: bool = False,
    progress: Callable[[str], None] | None = None,
    notes: Sequence[str] = (),
    client: Any = None,
) -> Document:
    """Every (argument, target) of ``planned`` (:func:`plan_targets`) x ``threads`` on every
    bench machine of the cluster at ``address`` (or those named in ``on``), one cell at a time
    per machine, each machine preparing its own files; one document, a machine per cell.

    >>> planned = plan_targets(["picodet-s-416"], [("onnxruntime", "fp32")], registry=reg)
    ...                                                  # doctest: +SKIP
    >>> doc = run_fleet("tcp://127.0.0.1:8786", planned, threads=[1])  # doctest: +SKIP
    >>> sorted({c.machine.name for c in doc.cells})  # doctest: +SKIP
    ['board-a', 'laptop']
    """
    from .environment import collect_environment

    say = progress or (lambda _m: None)
    picture = (image.name, image.read_bytes()) if image is not None else None
    own = client is None
    client = connect(address) if own else client
    try:
        workers = bench_workers(client, on)
        say(
            f"cluster {address}: {len(workers)} bench machine(s): "
            + ", ".join(w.name for w in workers)
        )
        plan: list[tuple[BenchTarget, int, Worker, Any]] = []
        for arg, t in planned:
            for n in threads:
                job = Job(arg, t, n, postprocess, source, input_size, warmup, min_iters,
                          min_time_s, seed, picture)  # fmt: skip
                for w in workers:
                    fut = client.submit(
                        measure_on_worker,
                        job,
                        timeout_s,
                        debug,
                        workers=[w.address],
                        allow_other_workers=False,
                        resources={RESOURCE: 1},
                        pure=False,
                    )
                    plan.append((t, n, w, fut))
        try:
            returned = _gather(client, plan, say)
        except BaseException:  # Ctrl-C, SIGTERM: nothing left queued or running on the cluster
            client.cancel([f for *_, f in plan])
            raise
    finally:
        if own:
            client.close()
    cells: list[Cell] = []
    for i, (t, n, w, _f) in enumerate(plan):
        got = returned.get(i)
        if isinstance(got, Returned):
            cells.append(replace(got.cell, machine=Machine(got.name, got.environment)))
            continue
        failure = got or Failure("cluster", f"no result from {w.name}")
        cells.append(replace(t.cell(n, failure), machine=_unmeasured(w)))
    settings = RunSettings(
        warmup=warmup,
        min_iters=min_iters,
        min_time_s=min_time_s,
        threads=tuple(threads),
        timeout_s=timeout_s,
        seed=seed,
        percentiles=PERCENTILES,
    )
    names = ", ".join(w.name for w in workers)
    about = [machine_note(w, cells) for w in workers]
    return Document.create(
        cells, collect_environment(), settings, device or f"fleet: {names}", [*notes, *about]
    )


def machine_note(w: Worker, cells: Sequence[Cell]) -> str:
    """What the machine ``w`` is (from the first cell it returned), or that none came back.

    >>> machine_note(Worker("tcp://127.0.0.1:1", "box"), [])
    'machine box (dask worker tcp://127.0.0.1:1): returned no result; its cells are failed'
    """
    from .environment import device_label

    got = [c.machine for c in cells if c.machine is not None and c.machine.name == w.name
           and c.machine.environment.cpu_model != UNKNOWN_CPU]  # fmt: skip
    head = f"machine {w.name} (dask worker {w.address})"
    if not got:
        return f"{head}: returned no result; its cells are failed"
    env = got[0].environment
    ort = env.versions.get("onnxruntime")
    return (
        f"{head}: {device_label(env)}, {env.cores} usable, host {env.hostname or '?'}, "
        f"{env.os or '?'}" + (f", onnxruntime {ort}" if ort else "")
    )


def _unmeasured(w: Worker) -> Machine:
    """The machine of a cell it never returned (its description is unknown)."""
    return Machine(w.name, Environment(UNKNOWN_CPU, None, 1, None, None, None, None, {}, None))


def _gather(
    client: Any, plan: list[tuple[BenchTarget, int, Worker, Any]], say: Callable[[str], None]
) -> dict[int, Returned | Failure]:
    """Each cell's result as it arrives; the cells of a machine that left the cluster fail
    naming it."""
    pending = {i: f for i, (*_, f) in enumerate(plan)}
    out: dict[int, Returned | Failure] = {}
    total = len(plan)
    while pending:
        alive = set(client.scheduler_info(n_workers=-1)["workers"])
        for i, fut in list(pending.items()):
            t, n, w, _ = plan[i]
            got = _outcome(fut, w, w.address in alive)
            if got is None:
                continue
            where = f"[{len(out) + 1}/{total}] {w.name}: {t.label} / {t.engine} / {n} thr"
            f = got.cell.failure if isinstance(got, Returned) else got
            m = got.cell.measured if isinstance(got, Returned) else None
            what = "skipped" if f is not None and f.skipped else "FAILED"
            ok = f"median {m.stats.median_ms:.2f} ms (n={m.stats.n})" if m else "ok"
            say(f"{where}: " + (f"{what}: {f.error}" if f is not None else ok))
            out[i] = got
            del pending[i]
        if pending:
            time.sleep(0.2)
    return out


def _outcome(fut: Any, w: Worker, alive: bool) -> Returned | Failure | None:
    """What became of the cell of ``fut`` on machine ``w`` (``alive``: still in the cluster):
    its result, a failure, or None while it is still to come. A result is fetched from the
    machine that holds it: when that machine is gone first, the result is lost with it (the
    wait is bounded, so a result lost meanwhile never hangs the run)."""
    from distributed import TimeoutError as DaskTimeout

    left = Failure(
        "cluster",
        f"machine {w.name} left the cluster (killed or lost) before this cell's result was "
        "gathered",
        f"restart the worker `{w.name}` and bench it again with --on {w.name}",
    )
    if fut.status == "finished":
        try:
            got: Returned = fut.result(timeout=RESULT_TIMEOUT_S)
        except (DaskTimeout, TimeoutError):
            return None if alive else left
        except Exception as e:  # the result could not be fetched
            return left if not alive else Failure("cluster", f"{w.name}: no result: {e}")
        return got
    if fut.status in ("error", "cancelled"):
        why = "it was cancelled" if fut.status == "cancelled" else fut.exception()
        return Failure("cluster", f"{w.name}: the task failed: {why}")
    if not alive:
        fut.cancel()
        return left
    return None
