"""`picozoo bench --engine openvino|mnn|ncnn|all [--precision ...]`: which (engine, precision)
cells run, a missing engine is one failed cell with its install hint (never a crash), `all`
skips what is not installed with a note, precision and engine version are recorded, and the
cross-engine table with its "fastest on this machine" line. Missing packages are simulated by
a ``sitecustomize`` that makes their import fail in the CLI and in every worker it starts."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from support.bench_helpers import blocked_env, md_tables, run_cli

from picozoo.bench.engines import missing_engine, plan_engines
from picozoo.bench.records import BenchSpec, Document, Failure
from picozoo.bench.report import render, to_markdown
from picozoo.bench.worker import run as run_worker
from picozoo.errors import UsageError
from picozoo.runtime.base import ENGINES, PRECISIONS

FAST = ("--threads", "1", "--min-iters", "10", "--min-time", "0.05", "--warmup", "2")
NEW_ENGINES = ("openvino", "mnn", "ncnn")
MODULES = {"paddle": "paddle", "openvino": "openvino", "mnn": "MNN", "ncnn": "ncnn"}


def _adapter(engine: str) -> bool:
    return importlib.util.find_spec(f"picozoo.runtime.{engine}") is not None


# -- which cells run ----------------------------------------------------------------------------


def test_named_engines_run_the_requested_precisions_they_have() -> None:
    plan = plan_engines(["onnxruntime", "openvino", "mnn"], ["fp32", "fp16", "int8"])
    assert plan.pairs == [
        ("onnxruntime", "fp32"),
        ("openvino", "fp32"),
        ("openvino", "fp16"),
        ("mnn", "fp32"),
        ("mnn", "fp16"),
        ("mnn", "int8"),
    ]
    assert plan.notes == [
        "onnxruntime runs fp32 only: fp16, int8 skipped",
        "openvino runs fp32, bf16, fp16: int8 skipped",
    ]
    every = plan_engines(["ncnn", "openvino"], ["all"])
    assert every.pairs == [("ncnn", p) for p in PRECISIONS["ncnn"]] + [
        ("openvino", p) for p in PRECISIONS["openvino"]
    ]


def test_all_skips_engines_that_are_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "MNN", None)  # as if the mnn wheel were not installed
    monkeypatch.setitem(sys.modules, "ncnn", None)
    plan = plan_engines(["all"], ["fp32"])
    assert "mnn" not in plan.engines and "ncnn" not in plan.engines
    assert plan.engines[:2] == ["onnxruntime", "paddle"]
    assert (
        "--engine all: mnn skipped: MNN is not installed; this needs the [mnn] extra: "
        "pip install 'picozoo[mnn]'" in plan.notes
    )
    # named explicitly, a missing engine is not skipped: its cells fail with the hint
    assert plan_engines(["all", "mnn"], ["fp32"]).precisions("mnn") == ["fp32"]
    assert missing_engine("mnn") and missing_engine("onnxruntime") is None


def test_requests_no_engine_can_satisfy_are_usage_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match=r"onnxruntime runs none of the requested precisions"):
        plan_engines(["onnxruntime", "openvino"], ["int8"])
    for name in MODULES.values():
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(UsageError, match=r"no engine to bench at bf16") as e:
        plan_engines(["all"], ["bf16"])  # only openvino runs bf16, and it is "not installed"
    assert "openvino skipped" in e.value.message and "picozoo[openvino]" in (e.value.hint or "")
    with pytest.raises(UsageError, match=r"unknown --precision 'fp8'"):
        plan_engines(["onnxruntime"], ["fp8"])


# -- a missing engine: one failed cell, never a crash -------------------------------------------


def test_worker_reports_a_missing_engine_as_an_import_failure(
    tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # each engine's own file (adapters check the file before importing their engine; paddle
    # checks a whole folder, see test_bench_cli's Paddle tests)
    files = {"onnxruntime": tiny_onnx, "openvino": tiny_onnx}
    for name in ("m.mnn", "m.param", "m.bin"):
        (tmp_path / name).write_bytes(b"\0" * 64)
    files.update(mnn=tmp_path / "m.mnn", ncnn=tmp_path / "m.param")
    for engine, path in files.items():
        monkeypatch.setitem(sys.modules, MODULES.get(engine, engine), None)
        spec = BenchSpec(path, engine, 1, 1, 1, 0.0).to_dict()
        failure = run_worker(spec)
        assert isinstance(failure, Failure) and failure.stage == "import", (engine, failure)
        extra = ENGINES[engine][1]
        assert f"pip install 'picozoo[{extra}]'" in f"{failure.error} {failure.hint}"


@pytest.mark.slow
def test_cli_missing_engines_are_failed_cells_with_the_install_hint(
    tiny_onnx: Path, tmp_path: Path
) -> None:
    env = blocked_env(tmp_path, ["MNN", "openvino"])
    env["PICOZOO_CACHE"] = str(tmp_path / "cache")
    r = run_cli(
        "bench", str(tiny_onnx), "--engine", "onnxruntime", "--engine", "mnn", "--engine",
        "openvino", *FAST, "--report", "json", env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr  # one engine measured
    cells = {c.engine: c for c in Document.from_json(json.loads(r.stdout)).cells}
    assert cells["onnxruntime"].ok
    for engine in ("mnn", "openvino"):
        f = cells[engine].failure
        assert f is not None and f.stage == "import", f
        assert f"pip install 'picozoo[{engine}]'" in f.error
    assert "Traceback" not in r.stderr
    # no engine named is installed: exit 11 before anything is done, naming every package
    r = run_cli("bench", str(tiny_onnx), "--engine", "mnn", "--engine", "openvino", *FAST,
                "--report", "md", env=env)  # fmt: skip
    assert r.returncode == 11 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        "picozoo: error: mnn and openvino are not installed; this needs the [mnn,openvino] "
        "extras: pip install 'picozoo[mnn,openvino]'"
    ]


@pytest.mark.slow
def test_cli_engine_all_skips_what_is_not_installed_with_a_note(
    tiny_onnx: Path, tmp_path: Path
) -> None:
    env = blocked_env(tmp_path, ["openvino", "MNN", "ncnn"])
    env["PICOZOO_CACHE"] = str(tmp_path / "cache")
    r = run_cli("bench", str(tiny_onnx), "--engine", "all", *FAST, "--report", "json", env=env)
    assert r.returncode == 0, r.stderr
    doc = Document.from_json(json.loads(r.stdout))
    assert [(c.engine, c.precision, c.ok) for c in doc.cells] == [("onnxruntime", "fp32", True)]
    skipped = {n.split(":")[1].strip().split()[0]: n for n in doc.notes}
    assert sorted(skipped) == ["lite", "mnn", "ncnn", "openvino", "paddle"]
    assert "pip install 'picozoo[mnn]'" in skipped["mnn"]
    assert "name it: --engine lite" in skipped["lite"]  # its first use pip-installs paddlelite
    # paddle is installed, but cannot run an .onnx file: skipped for it, not a failed cell
    assert (
        skipped["paddle"]
        == f"--engine all: paddle skipped for {tiny_onnx}: it cannot run that file"
    )
    assert "note: --engine all: ncnn skipped: ncnn is not installed" in r.stderr
    r = run_cli("bench", str(tiny_onnx), "--engine", "all", *FAST, "--report", "md", env=env)
    assert "- note: --engine all: openvino skipped: openvino is not installed" in r.stdout
    # a precision no installed engine runs: exit 2 before anything is measured
    r = run_cli("bench", str(tiny_onnx), "--engine", "all", "--precision", "fp16", env=env)
    assert r.returncode == 2 and r.stdout == "" and "no engine to bench at fp16" in r.stderr


@pytest.mark.slow
def test_cli_precision_an_engine_does_not_run_is_refused_or_noted(tiny_onnx: Path) -> None:
    r = run_cli("bench", str(tiny_onnx), "--precision", "int8")
    assert r.returncode == 2 and r.stdout == ""
    assert "onnxruntime runs none of the requested precisions (int8)" in r.stderr
    r = run_cli("bench", str(tiny_onnx), "--precision", "fp32", "--precision", "fp16", *FAST,
                "--report", "json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "note: onnxruntime runs fp32 only: fp16 skipped" in r.stderr
    (cell,) = json.loads(r.stdout)["cells"]
    assert cell["precision"] == "fp32" and cell["engine_version"]


# -- reports ------------------------------------------------------------------------------------


def _as(c: Any, engine: str, precision: str, scale: float) -> Any:
    """Cell ``c`` relabelled as another (engine, precision), its samples scaled: a cross-engine
    result made from real measurements (for the table's logic; real engines are below)."""
    m = c.measured
    samples = tuple(int(s * scale) for s in m.samples_ns)
    from picozoo.bench.stats import summarize

    stats = summarize([s / 1e6 for s in samples])
    m = dataclasses.replace(m, samples_ns=samples, stats=stats, engine_version=f"{engine}-v",
                            executed_precision=precision)  # fmt: skip
    return dataclasses.replace(c, engine=engine, precision=precision, result=m)


@pytest.mark.slow
def test_cross_engine_table_and_fastest_line(measured_doc: Document) -> None:
    pico = next(c for c in measured_doc.cells if c.model_id and c.ok and c.threads == 1)
    cells = (
        _as(pico, "paddle", "fp32", 4.0),
        _as(pico, "openvino", "fp32", 2.0),
        _as(pico, "mnn", "int8", 1.0),
        dataclasses.replace(
            pico,
            engine="ncnn",
            precision="fp16",
            result=Failure("import", "ncnn is not installed; this needs the [ncnn] extra"),
        ),
    )
    doc = dataclasses.replace(measured_doc, cells=cells)
    md = to_markdown(doc)
    tables = md_tables(md)
    engines = next(t for t in tables if t[0][:4] == ["Model", "Input size", "Engine", "Precision"])
    body = [dict(zip(engines[0], r, strict=True)) for r in engines[1:]]
    assert [(r["Engine"], r["Precision"]) for r in body] == [
        ("mnn", "int8"),
        ("openvino", "fp32"),
        ("paddle", "fp32"),
        ("ncnn", "fp16"),  # failed: last
    ]
    assert body[0]["vs fastest"] == "1.00x" and body[0]["Version"] == "mnn-v"
    ratio = float(body[2]["vs fastest"].rstrip("x"))
    assert 3.8 < ratio < 4.2  # paddle's samples are 4x mnn's
    assert body[3]["Median<br><sup>(ms)"] == "failed (import)"
    main = tables[0]
    assert "Precision" in main[0]  # some cell is not fp32
    fastest = [ln for ln in md.splitlines() if ln.startswith("**Fastest on this machine:**")]
    assert len(fastest) == 1 and "PicoDet-S (64*64): mnn int8, 1 thr" in fastest[0]
    assert "x faster than Paddle Inference fp32, upstream's CPU method, at 1 thr" in fastest[0]
    assert "failed: picodet-s-416 / ncnn fp16 / 1 thr: ncnn is not installed" in md
    html = render(doc, "html")
    assert "<h2>Across engines and precisions" in html and "Fastest on this machine" in html
    assert "Fastest on this machine" in render(doc, "table")
    # one (engine, precision): no cross-engine table, no fastest line
    single = dataclasses.replace(measured_doc, cells=cells[:1])
    assert "Across engines" not in to_markdown(single)
    assert "Fastest" not in to_markdown(single)


@pytest.mark.slow
def test_plot_colours_by_engine(measured_doc: Document) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.colors as mcolors
    import matplotlib.pyplot as plt

    from picozoo.bench.plot import ENGINE_COLORS, map_vs_latency_figure, series_from_rows
    from picozoo.bench.rows import report_rows

    pico = [c for c in measured_doc.cells if c.model_id and c.ok]
    cells = [_as(pico[0], "paddle", "fp32", 3.0), _as(pico[0], "openvino", "fp16", 1.0)]
    cells += [_as(pico[1], "openvino", "fp32", 1.5)]
    doc = dataclasses.replace(measured_doc, cells=tuple(cells))
    series = series_from_rows(report_rows(doc))
    assert [s["name"] for s in series] == [
        "paddle, 1 thr",
        "openvino fp16, 1 thr",
        "openvino, 2 thr",
    ]
    fig = map_vs_latency_figure(series, reference=[])
    try:
        lines = {ln.get_label(): ln for ln in fig.axes[0].lines}
        for name, engine in (("paddle, 1 thr", "paddle"), ("openvino, 2 thr", "openvino")):
            line = lines[f"{name} (claimed mAP)"]  # no eval: the claim, hollow
            assert mcolors.same_color(line.get_color(), ENGINE_COLORS[engine])
            assert line.get_markerfacecolor() == "none"
        a, b = lines["openvino fp16, 1 thr (claimed mAP)"], lines["openvino, 2 thr (claimed mAP)"]
        assert a.get_color() == b.get_color() and a.get_marker() != b.get_marker()
    finally:
        plt.close(fig)


# -- the real engines (their adapters and converters) --------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("engine", NEW_ENGINES)
def test_real_engine_cells_record_version_precision_and_threads(
    engine: str, tiny_onnx: Path, tmp_path: Path
) -> None:
    """An .onnx file benched on each new engine at every precision it runs: converted for it by
    picozoo, each cell in its own worker, version / precision / threads recorded."""
    if not _adapter(engine) or missing_engine(engine):
        pytest.skip(f"{engine}: {missing_engine(engine)}")
    env = {**blocked_env(tmp_path, []), "PICOZOO_CACHE": str(tmp_path / "cache")}
    r = run_cli("bench", str(tiny_onnx), "--engine", engine, "--precision", "all",
                "--threads", "2", *FAST[2:], "--report", "json", env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = Document.from_json(json.loads(r.stdout))
    assert [c.precision for c in doc.cells] == list(PRECISIONS[engine])
    for c in doc.cells:
        if c.failure is not None and c.failure.skipped:  # this CPU cannot run that precision
            assert f"cannot run {c.precision} on this CPU" in c.failure.error, c.failure
            continue
        assert c.ok, c.failure
        m = c.measured
        assert m and m.engine_version and c.threads == 2 and c.origin == "converted"
        assert m.executed_precision == c.precision  # read back from the engine
        assert c.source and Path(c.source).suffix in {".xml", ".mnn", ".param"}
    assert doc.cells[0].ok  # fp32 always runs
    assert len(md_tables(render(doc, "md"))) >= 2  # several precisions: cross-engine table
