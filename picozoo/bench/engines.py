"""Which (engine, precision) pairs a benchmark runs: ``--engine`` (``all``: every engine) x
``--precision`` (``all``: every precision of each engine).

An engine the user named is always run: if it is not installed its cells fail with the install
hint (one failed cell per target, never a crash); when no engine named is installed, nothing
could be measured, and :func:`picozoo.bench.api.check_installed` refuses the run (exit 11)
before anything is pulled. Engines that only ``all`` brought in are skipped with a note when
they are not installed (ncnn also when its converter, pnnx, is not). A precision an engine
does not run is skipped with a note; an engine the user named that runs none of the requested
precisions is a usage error (exit 2) before anything is pulled or measured.

>>> plan = plan_engines(["onnxruntime", "paddle"], ["fp32"])
>>> plan.pairs, plan.notes
([('onnxruntime', 'fp32'), ('paddle', 'fp32')], [])
>>> plan_engines(["onnxruntime"], ["fp32", "fp16"]).notes
['onnxruntime runs fp32 only: fp16 skipped']
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MissingDependencyError, Need, PicozooError, UsageError
from ..runtime.base import CONVERTED_ENGINES, ENGINES, PRECISIONS
from .records import ALL_PRECISIONS, Failure

ALL = "all"
#: ``--engine`` / ``--precision`` choices
ENGINE_CHOICES = (*ENGINES, ALL)
PRECISION_CHOICES = (*ALL_PRECISIONS, ALL)
#: the Python module each engine imports (its adapter imports it; checked without importing)
ENGINE_MODULES = {
    "onnxruntime": "onnxruntime",
    "paddle": "paddle",
    "openvino": "openvino",
    "mnn": "MNN",
    "ncnn": "ncnn",
    "lite": "picozoo.runtime.lite",  # paddlelite itself is in the store's tool environment
}


def engine_needs(engine: str, *, onnxruntime_extra: str = "bench") -> list[Need]:
    """What running ``engine`` needs installed (:func:`picozoo.errors.require_all` checks it
    all at once): its package, and ONNX Runtime for the engines converted to (the parity
    reference of each conversion). ``onnxruntime_extra``: the extra named for ONNX Runtime
    alone (``eval`` for infer/eval, which need that extra anyway).

    >>> engine_needs("openvino")
    [('openvino', ('openvino',), None), ('onnxruntime', ('openvino', 'bench', 'eval'), None)]
    """
    _, extra = ENGINES[engine]
    package = {"paddle": "paddlepaddle", "mnn": "mnn"}.get(engine)
    ort_extras = tuple(dict.fromkeys([onnxruntime_extra, "bench", "eval"]))
    if engine == "onnxruntime":
        return [("onnxruntime", ort_extras, None)]
    if engine == "lite":  # the parity reference of its conversion: Paddle Inference
        return [("paddle", ("convert",), "paddlepaddle")]
    needs: list[Need] = [(ENGINE_MODULES[engine], (extra,), package)]
    if engine in CONVERTED_ENGINES:
        needs.append(("onnxruntime", (extra, *ort_extras), None))
    return needs


def missing_engine(engine: str) -> str | None:
    """Why ``engine`` cannot run here (its package or picozoo's adapter is not installed), or
    None when it can. Nothing is imported.

    >>> missing_engine("onnxruntime") is None
    True
    """
    adapter, extra = ENGINES[engine]
    for module in (ENGINE_MODULES.get(engine, engine), adapter):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a broken or shadowed package
            found = False
        if not found:
            if module == adapter:
                return f"this picozoo has no {engine} adapter"
            return MissingDependencyError(module, extra).message
    return None


def runs_file(engine: str, path: Path) -> bool:
    """True when ``engine`` can bench the file or folder at ``path``, as it is or converted for
    it: Paddle Inference a Paddle model, ONNX Runtime an ``.onnx`` file, OpenVINO/MNN/ncnn
    their own files, an ``.onnx`` file or a Paddle model. (``--engine all`` skips the others.)

    >>> runs_file("paddle", Path("m.onnx")), runs_file("mnn", Path("m.onnx"))
    (False, True)
    """
    path = Path(path)
    if path.suffix in CONVERTED_ENGINES.get(engine, ()) or (
        engine in ("onnxruntime", *CONVERTED_ENGINES) and path.suffix == ".onnx"
    ):
        return True
    if engine == "onnxruntime":
        return False
    from ..paddle_dir import find_paddle_model

    try:
        find_paddle_model(path)
    except PicozooError:
        return False
    return True


def _missing_converter(engine: str) -> str | None:
    """Why the files ``--engine all`` benches on ``engine`` cannot be converted here (ncnn:
    the pnnx converter, installed apart), with the exact install command; None when they can.
    """
    if engine == "lite":  # its first use pip-installs paddlelite into the cache: asked by name
        return "it runs in a Paddle-Lite tool environment in the cache; name it: --engine lite"
    if engine != "ncnn":
        return None
    from ..convert.to_ncnn import find_pnnx

    try:
        find_pnnx()
    except PicozooError as e:
        return f"{e.message}: pip install --no-deps pnnx"
    return None


def missing_engine_failure(engine: str) -> Failure | None:
    """The failed cell of an engine that cannot run here (see :func:`missing_engine`), None
    when it can: its ``import`` stage names the extra that installs it.

    >>> missing_engine_failure("onnxruntime") is None
    True
    """
    why = missing_engine(engine)
    if why is None:
        return None
    return Failure("import", why, f"or bench another engine (--engine {', '.join(ENGINES)})")


@dataclass
class EnginePlan:
    """The (engine, precision) pairs to bench, in order, and what was skipped (notes)."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: engines only ``--engine all`` brought in (skipped for files they cannot run)
    implicit: set[str] = field(default_factory=set)

    @property
    def engines(self) -> list[str]:
        """The engines of :attr:`pairs`, in order, once each."""
        return list(dict.fromkeys(e for e, _ in self.pairs))

    def precisions(self, engine: str) -> list[str]:
        """The precisions ``engine`` is benched at."""
        return [p for e, p in self.pairs if e == engine]


def plan_engines(engines: Sequence[str], precisions: Sequence[str]) -> EnginePlan:
    """The pairs to bench for ``--engine`` x ``--precision`` (see the module docstring).

    >>> plan = plan_engines(["all"], ["fp16"])
    >>> [e for e, _ in plan.pairs] == [e for e in ENGINES if "fp16" in PRECISIONS[e]
    ...                                and missing_engine(e) is None]
    True
    >>> plan_engines(["paddle"], ["int8"])
    Traceback (most recent call last):
    ...
    picozoo.errors.UsageError: paddle runs none of the requested precisions (int8) \
(paddle runs: fp32)
    """
    for name, given, choices in (
        ("--engine", engines, ENGINE_CHOICES),
        ("--precision", precisions, PRECISION_CHOICES),
    ):
        bad = [g for g in given if g not in choices]
        if bad:
            raise UsageError(f"unknown {name} {bad[0]!r}", hint=f"use one of: {', '.join(choices)}")
    named = [e for e in dict.fromkeys(engines) if e != ALL]
    order = list(ENGINES) if ALL in engines else named
    wanted = list(dict.fromkeys(precisions or ["fp32"]))
    plan = EnginePlan()
    for engine in order:
        explicit = engine in named
        if not explicit:
            plan.implicit.add(engine)
            why = missing_engine(engine) or _missing_converter(engine)
            if why is not None:
                plan.notes.append(f"--engine all: {engine} skipped: {why}")
                continue
        runs = PRECISIONS[engine]
        chosen = list(runs) if ALL in wanted else [p for p in wanted if p in runs]
        skipped = [p for p in wanted if p != ALL and p not in runs]
        if not chosen:
            if explicit:
                raise UsageError(
                    f"{engine} runs none of the requested precisions ({', '.join(skipped)})",
                    hint=f"{engine} runs: {', '.join(runs)}",
                )
            plan.notes.append(f"{engine} runs {', '.join(runs)}: skipped")
            continue
        if skipped:
            only = " only" if len(runs) == 1 else ""
            plan.notes.append(
                f"{engine} runs {', '.join(runs)}{only}: {', '.join(skipped)} skipped"
            )
        plan.pairs += [(engine, p) for p in chosen]
    if not plan.pairs:
        raise UsageError(
            f"no engine to bench at {', '.join(wanted)}: " + "; ".join(plan.notes),
            hint="install an engine's extra, e.g. pip install 'picozoo[openvino]', or name "
            "the engine with --engine",
        )
    return plan
