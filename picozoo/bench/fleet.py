"""``picozoo bench --cluster``: the same plan of cells measured on every machine of a Dask
cluster, gathered into one ``picozoo.bench/1`` document with a machine per cell.

Machines are plain Dask workers with picozoo installed, started as::

    dask scheduler --port 8786
    dask worker tcp://HOST:8786 --name NAME --nthreads 1 --resources bench=1

The worker's ``--name`` is the machine's name in the table; ``bench=1`` marks a bench machine.
Each cell is submitted to one worker (``workers=[address]``) and needs its one ``bench``
resource, so a machine measures one cell at a time; on the worker the task runs the cell in a
fresh process (:func:`picozoo.bench.runner.run_cell`) and returns the typed result with the
worker's machine description. A worker that leaves the cluster (killed, crashed, lost) turns
its unfinished cells into failures naming the machine; the others complete.

The plan is made here (model ids are pulled into this machine's cache): a cell's file must
exist at the same path on every worker (e.g. a shared folder, or the same ``.onnx`` copied).

Needs ``pip install 'picozoo[fleet]'`` (Dask distributed), here and on every worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..errors import ClusterUnreachableError, UsageError
from .records import (
    BenchSpec,
    Cell,
    CellResult,
    Document,
    Environment,
    Failure,
    Machine,
    RunSettings,
)
from .runner import DEFAULT_TIMEOUT_S
from .stats import PERCENTILES
from .targets import BenchTarget

#: the Dask resource that marks a bench machine (``dask worker --resources bench=1``)
RESOURCE = "bench"
#: the CPU of a machine that returned no result
UNKNOWN_CPU = "unknown (no result)"
#: how long to wait for the scheduler before giving up (seconds)
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Worker:
    """A bench machine of the cluster: its scheduler address and ``--name``."""

    address: str
    name: str


@dataclass(frozen=True)
class Returned:
    """What a cluster task returns: the cell's result and the machine that measured it."""

    result: CellResult
    environment: Environment
    name: str


def measure_on_worker(spec: BenchSpec, timeout: float | None, debug: bool) -> Returned:
    """The task run on a worker: the cell in a fresh process there, with the worker's
    machine description and ``--name``."""
    from distributed import get_worker

    from .environment import collect_environment
    from .runner import run_cell

    result = run_cell(spec, timeout=timeout, debug=debug)
    return Returned(result, collect_environment(), str(get_worker().name))


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
    targets: Sequence[BenchTarget],
    *,
    threads: Sequence[int],
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
    """Every (target, threads) cell on every bench machine of the cluster at ``address`` (or
    those named in ``on``), one cell at a time per machine; one document, a machine per cell.

    >>> from picozoo.bench.targets import file_target
    >>> doc = run_fleet("tcp://127.0.0.1:8786", [file_target("m.onnx", "onnxruntime")],
    ...                 threads=[1])  # doctest: +SKIP
    >>> sorted({c.machine.name for c in doc.cells})  # doctest: +SKIP
    ['board-a', 'laptop']
    """
    from .environment import collect_environment
    from .suite import artifact_facts

    say = progress or (lambda _m: None)
    own = client is None
    client = connect(address) if own else client
    try:
        workers = bench_workers(client, on)
        say(
            f"cluster {address}: {len(workers)} bench machine(s): "
            + ", ".join(w.name for w in workers)
        )
        plan: list[tuple[BenchTarget, int, Worker, Any]] = []
        for t in targets:
            for n in threads:
                for w in workers:
                    fut = None
                    if t.path is not None:
                        spec = t.spec(
                            n, warmup=warmup, min_iters=min_iters, min_time_s=min_time_s, seed=seed
                        )
                        fut = client.submit(
                            measure_on_worker,
                            spec,
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
        except BaseException:  # Ctrl-C, SIGTERM: nothing left queued on the cluster
            client.cancel([f for *_, f in plan if f is not None])
            raise
    finally:
        if own:
            client.close()
    facts = {t.path: artifact_facts(t.path) for t, *_ in plan if t.path is not None}
    cells: list[Cell] = []
    for i, (t, n, w, _f) in enumerate(plan):
        got = returned.get(i)
        result: CellResult
        if t.path is None:
            result, machine = t.failure or Failure("prepare", "no artifact"), None
        elif isinstance(got, Returned):
            result, machine = got.result, Machine(got.name, got.environment)
        else:
            result, machine = got or Failure("cluster", f"no result from {w.name}"), None
        sha, info = facts.get(t.path, (None, None)) if t.path is not None else (None, None)
        cell = t.cell(
            n,
            result,
            artifact_sha256=sha,
            modelinfo=info,
            oversubscribed=machine is not None and n > machine.environment.cores,
        )
        cells.append(replace(cell, machine=machine or _unmeasured(w)))
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
    pending = {i: f for i, (*_, f) in enumerate(plan) if f is not None}
    out: dict[int, Returned | Failure] = {}
    total = len(plan)
    while pending:
        alive = set(client.scheduler_info(n_workers=-1)["workers"])
        for i, fut in list(pending.items()):
            t, n, w, _ = plan[i]
            where = f"[{len(out) + 1}/{total}] {w.name}: {t.label} / {t.engine} / {n} thr"
            if fut.status == "finished":
                got: Returned | Failure = fut.result()
                r = got.result if isinstance(got, Returned) else got
                say(f"{where}: " + (f"FAILED: {r.error}" if isinstance(r, Failure) else "ok"))
            elif fut.status in ("error", "cancelled"):
                got = Failure("cluster", f"{w.name}: the task failed: {fut.exception()}")
                say(f"{where}: FAILED: {got.error}")
            elif w.address not in alive:
                got = Failure(
                    "cluster",
                    f"machine {w.name} left the cluster (killed or lost) before this cell finished",
                    f"restart the worker `{w.name}` and bench it again with --on {w.name}",
                )
                fut.cancel()
                say(f"{where}: FAILED: {got.error}")
            else:
                continue
            out[i] = got
            del pending[i]
        if pending:
            time.sleep(0.2)
    return out
