"""The footnotes of a benchmark report: how it was measured, then what a reader must know about
particular cells -- too many threads, unstable measurements, which file was benched, engine
notes, failures. Markdown, HTML and the terminal table print them; CSV and JSON carry the same
facts as columns/fields (``oversubscribed``, ``stable``, ``origin``, ``artifact_sha256``).

Cells are marked in the tables: ``(!)`` after an unstable latency, ``(*)`` after a thread count
above the cores the benchmark could use; the notes explain each mark once.

>>> oversubscription([1, 2, 12], cores=2)
'12 threads exceed the 2 cores this process may use (CPU affinity / cgroup quota): those cells \
measure threads waiting for a core, not the model'
>>> oversubscription([1, 2], cores=2) is None
True
"""

from __future__ import annotations

from ..hub.eval_result import COCO_VAL2017
from ..provenance import Provenance, UpstreamArtifact, read_cell_provenance
from ..threads import oversubscription
from .claimed import claim_conditions, describe, ratio_to_claim
from .records import Cell, Document, MeasuredMap
from .stats import ADVICE, short_warning

UNSTABLE_MARK = "(!)"
OVERSUBSCRIBED_MARK = "(*)"
#: the distribution whose version a report gives for each engine
ENGINE_DISTS = {
    "onnxruntime": "onnxruntime",
    "paddle": "paddlepaddle",
    "openvino": "openvino",
    "mnn": "mnn",
    "ncnn": "ncnn",
    "lite": "paddlelite",  # in the tool environment: each cell's engine_version says which
}
#: how each engine is set up for speed (the adapters of picozoo.runtime)
ENGINE_SETTINGS = {
    "onnxruntime": "ONNX Runtime: intra-op threads = N, inter-op = 1, sequential, all graph "
    "optimizations.",
    "paddle": "Paddle Inference as PaddleDetection's deploy/python/infer.py sets it up: MKLDNN "
    "on (cache of 10 shapes), CPU math threads = N, IR and memory optimisation on, no feed/fetch "
    "ops.",
    "openvino": "OpenVINO: CPU, N inference threads, latency hint, inference precision = the "
    "cell's (f32 unless asked).",
    "mnn": "MNN: N threads, precision = the cell's (fp32: normal, fp16/int8: low).",
    "ncnn": "ncnn: N threads, fp16 storage and arithmetic off unless the cell is fp16.",
    "lite": "Paddle-Lite (x86 .nb, fp32 kernels): MobileConfig in the cache's tool environment "
    "(Python 3.7-3.10), threads = N through OMP_NUM_THREADS/MKL_NUM_THREADS; timed around a "
    "pipe round trip to that process (engine_settings.last_run_ms: the predictor's own run).",
}


def where(c: Cell, *, threads: bool = True) -> str:
    """``model / engine [precision] / N thr``: how notes name a cell (fp32 is not said).

    >>> from picozoo.bench.records import Failure
    >>> where(Cell(model="m", engine="paddle", threads=4, result=Failure(None, "x")))
    'm / paddle / 4 thr'
    >>> where(Cell(model="m", engine="mnn", precision="int8", threads=2, result=Failure(None, "x")))
    'm / mnn int8 / 2 thr'
    """
    at = "" if c.run_precision == "fp32" else f" {c.run_precision}"
    return f"{c.model} / {c.engine}{at}" + (f" / {c.threads} thr" if threads else "")


def origin_of(c: Cell) -> str | None:
    """Where the benched file came from: ``upstream`` (a registry artifact as published),
    ``converted`` (picozoo converted it) or ``file`` (a path the user gave); results written
    before cells said so are read from their provenance.

    >>> from picozoo.bench.records import Failure
    >>> origin_of(Cell(model="m", engine="onnxruntime", threads=1, result=Failure(None, "x"),
    ...                provenance={"target": "onnx", "source": {"kind": "inference-nopp"}}))
    'converted'
    """
    if c.origin:
        return c.origin
    prov = read_cell_provenance(c.provenance)
    if isinstance(prov, Provenance):
        return "converted"
    if isinstance(prov, UpstreamArtifact):
        return "upstream"
    return "file" if c.source else None


#: the file names a benched artifact can have (anything else a Paddle cell ran is a folder)
MODEL_FILE_SUFFIXES = (".onnx", ".xml", ".mnn", ".param", ".bin", ".nb", ".pdmodel", ".json")


def hash_scope(c: Cell) -> str:
    """What a cell's ``artifact_sha256`` is the sha256 of: the benched file, or for a Paddle
    folder every file in it (each one's relative name and sha256, in name order). ``eval``
    hashes a folder another way (its model + params files), a pulled tarball has its own.

    >>> from picozoo.bench.records import Failure
    >>> hash_scope(Cell(model="m", engine="onnxruntime", threads=1, source="/c/m.onnx",
    ...                 result=Failure(None, "x")))
    'sha256 of m.onnx'
    >>> hash_scope(Cell(model="m", engine="paddle", threads=1, source="/c/picodet_s_416",
    ...                 result=Failure(None, "x")))
    "sha256 of folder picodet_s_416/ (its files' names and sha256s)"
    """
    if not c.source:
        return "sha256"
    name = c.source.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    if c.engine == "paddle" and not name.endswith(MODEL_FILE_SUFFIXES):
        return f"sha256 of folder {name}/ (its files' names and sha256s)"
    return f"sha256 of {name}"


def benched_file(c: Cell) -> str:
    """One line saying which file a cell benched: origin, URL or path, and each hash with what
    it is the sha256 of (the downloaded file, the benched file or folder).

    >>> from picozoo.bench.records import Failure
    >>> benched_file(Cell(model="m", engine="paddle", threads=1, source="/c/m_nopp",
    ...                   origin="upstream", artifact_sha256="ab" * 4, result=Failure(None, "x"),
    ...                   provenance={"artifact": "inference-nopp", "url": "https://h/m.tar",
    ...                               "sha256": "cd" * 4}))
    "m / paddle: upstream inference-nopp https://h/m.tar (sha256 of the download m.tar: \
cdcdcdcd), /c/m_nopp; sha256 of folder m_nopp/ (its files' names and sha256s): abababab"
    """
    prov, origin = c.provenance or {}, origin_of(c)
    if origin == "upstream":
        up = UpstreamArtifact.from_json(prov)
        what = f"upstream {up.artifact or ''} {up.url or c.source}"
        if up.fetched_from:  # the same name, downloaded from a mirror: its sha256 says which
            what += f", downloaded from {up.fetched_from}"
        if up.sha256 and up.sha256 != c.artifact_sha256 and up.url:
            download = up.url.rstrip("/").rsplit("/", 1)[-1]
            what += f" (sha256 of the download {download}: {up.sha256}), {c.source}"
    elif origin == "converted":
        record = Provenance.from_json(prov)
        src = record.source
        made = src.kind or (f"{src.format} file {src.model_file}" if src.format else None)
        if src.kind and src.url:  # a model id's tarball: which one, and the conversion's key
            tar = src.url.rstrip("/").rsplit("/", 1)[-1]
            sha = f" sha256 {src.artifact_sha256}" if src.artifact_sha256 else ""
            made = f"the {src.kind} tarball {tar}{sha}"
        key = f", key {record.key}" if record.key else ""
        what = f"converted by picozoo from {made or 'a Paddle model'}{key} ({c.source})"
    else:
        what = f"file {c.source}"
    return f"{where(c, threads=False)}: {what}; {hash_scope(c)}: {c.artifact_sha256 or 'unknown'}"


def _cell_version(doc: Document, dist: str) -> str | None:
    """The engine version the cells of ``dist``'s engine reported (an engine run outside this
    interpreter, e.g. Paddle-Lite in its tool environment)."""
    engines = [e for e, d in ENGINE_DISTS.items() if d == dist]
    found = {c.measured.engine_version for c in doc.cells if c.engine in engines and c.measured}
    return ", ".join(sorted(str(f) for f in found if f)) or None


def methodology(doc: Document) -> list[str]:
    """Where and how ``doc`` was measured (the same for every cell)."""
    env, s, v = doc.environment, doc.settings, doc.environment.versions
    usable = f", {env.usable_cores} usable" if env.usable_cores else ""
    hwm = any(c.measured and c.measured.rss_before_load_mb is not None for c in doc.cells)
    rss = (
        "RSS = the worker process's own peak resident memory (VmHWM: interpreter, engine and "
        "model)."
        if hwm
        else "RSS = the worker's getrusage peak (ru_maxrss), which can be the peak of the "
        "process that started it."
    )
    engines = list(dict.fromkeys(c.engine for c in doc.cells))
    others = [e for e in engines if e not in ("onnxruntime", "paddle")]
    versions = ", ".join(
        f"{dist} {v.get(dist) or _cell_version(doc, dist)}"
        for dist in ("onnxruntime", "paddlepaddle", *[ENGINE_DISTS[e] for e in others], "numpy")
    )
    settings = [ENGINE_SETTINGS[e] for e in ("onnxruntime", "paddle", *others) if e in engines]
    settings = settings or [ENGINE_SETTINGS["onnxruntime"], ENGINE_SETTINGS["paddle"]]
    if others:
        settings.append("Each cell's engine_settings (JSON) record how its engine was set up.")
    settings.append(
        "Precision (fp32 where a table does not say) is what the engine computed in, read back "
        "after loading: a precision this CPU cannot run is skipped, not measured."
    )
    out = [
        f"Measured on {env.cpu_model} ({env.physical_cores or '?'} physical / "
        f"{env.logical_cores} logical cores{usable}), {doc.created}; {versions}, "
        f"Python {v.get('python')}.",
        f"Latency = median of the measured iterations (at least {s.min_iters} and "
        f"{s.min_time_s} s), after warm-up ({s.warmup}); each (model, engine, precision, "
        "threads) in a fresh process; inputs prepared outside the timed region. "
        + " ".join(settings)
        + f" {rss}",
        "Upstream CPU latency: Intel Core i7-10750H, Paddle Inference + MKLDNN, 12 threads. "
        "Params/FLOPS (artifact) are computed from the benchmarked file (FLOPs = 2 x MACs).",
    ]
    out += map_notes(doc)
    return out


def map_notes(doc: Document) -> list[str]:
    """What the measured mAPs are: how they were measured, and each data set (name, images,
    annotation file and its sha256) with the cells measured on it."""
    sets: dict[tuple[str, int, str], tuple[MeasuredMap, list[str]]] = {}
    for c in doc.cells:
        if c.measured_map is not None:
            m = c.measured_map
            sets.setdefault(m.set_key, (m, []))[1].append(where(c, threads=False))
    if not sets:
        return []
    out = [
        "mAP measured = COCO mAP 0.5:0.95 from `picozoo eval` of the very file benched "
        "(same sha256, engine and precision as executed), stored in the result when it was "
        f"benched; (Δ) = measured - upstream's claim, shown only for all of {COCO_VAL2017} "
        "with upstream's evaluation NMS (as the claims were measured); an mAP on another set "
        "or with another NMS names them, and mAPs are compared only between cells on the same "
        "set with the same NMS."
    ]
    for m, cells in sets.values():
        ann = f"{m.ann_file}, " if m.ann_file else ""
        sha = f"annotations sha256 {m.ann_sha256}" if m.ann_sha256 else f"fingerprint {m.dataset}"
        name = m.dataset_name or "data set"
        count = (
            f"first {m.images} of {m.dataset_images} images"
            if m.dataset_images is not None and m.images < m.dataset_images
            else f"{m.images} images"
        )
        nms = f"; {m.nms_label}" if m.nms_label else ""
        out.append(
            f"Data set {name} ({count}; {ann}{sha}{nms}): " + ", ".join(dict.fromkeys(cells)) + "."
        )
    return out


def cell_notes(doc: Document) -> list[str]:
    """What particular cells need said: one line per kind of mark, one per benched file, then
    engine notes and failures."""
    out: list[str] = [f"note: {n}" for n in doc.notes]
    over = [c for c in doc.cells if c.oversubscribed]
    text = oversubscription([c.threads for c in over], doc.environment.cores)
    if over:
        text = text or f"{len(over)} cells used more threads than this process could use"
        out.append(f"{OVERSUBSCRIBED_MARK} {text}; their measured/claimed ratio is not shown.")
    unstable = [c for c in doc.cells if c.measured and not c.measured.stability.stable]
    if unstable:
        cells = "; ".join(
            f"{where(c)} ({', '.join(short_warning(w) for w in c.measured.stability.warnings)})"
            for c in unstable
            if c.measured
        )
        out.append(f"{UNSTABLE_MARK} unstable: {cells}. To fix: {ADVICE}.")
    unlike = [c for c in doc.cells if ratio_to_claim(c)[1]]
    if unlike:
        claims = "; ".join(
            dict.fromkeys(describe(cond) for c in unlike if (cond := claim_conditions(c)))
        )
        out.append(
            "measured / claimed is given only for a cell measured as upstream measured its "
            f"CPU claim ({claims}); the others say which of those conditions differed: "
            "their latencies measure something else."
        )
    out += list(dict.fromkeys(f"benched {benched_file(c)}" for c in doc.cells if c.source))
    fed = [c for c in doc.cells if c.image]
    for image in dict.fromkeys(c.image for c in fed if c.image):
        cells = ", ".join(dict.fromkeys(where(c, threads=False) for c in fed if c.image == image))
        out.append(
            f"fed image {image.name} ({image.size[0]}x{image.size[1]}, sha256 {image.sha256}), "
            f"pre-processed as `picozoo infer` does with each model's infer_cfg.yml: {cells}"
            + ("; the other cells: seeded random inputs" if len(fed) < len(doc.cells) else "")
        )
    for c in doc.cells:
        m, f = c.measured, c.failure
        out += [f"note: {where(c)}: {n}" for n in (m.notes if m else ())]
        if f is not None:
            what = "skipped" if f.skipped else "failed"
            out.append(f"{what}: {where(c)}: {f.error}" + (f" ({f.hint})" if f.hint else ""))
    return out


def notes(doc: Document) -> list[str]:
    """Every footnote of ``doc``: :func:`methodology`, then :func:`cell_notes`.

    >>> notes(doc)[0][:12]  # doctest: +SKIP
    'Measured on '
    """
    return methodology(doc) + cell_notes(doc)
