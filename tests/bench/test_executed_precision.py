"""Issue 18 item 2, the precision that ran: each engine's precision is read back after loading
(OpenVINO's compiled model, ncnn's applied options and CPU, MNN's device report), recorded in
the runtime's settings, the bench cell and the conversion's parity provenance; a precision
this CPU cannot run is a skipped bench cell naming why, and a conversion warns instead of
claiming it.

The engines are real. What a CPU can run is read from its feature flags
(:mod:`support.cpu`), never its vendor: on a CPU with AVX512-BF16 but no AVX512-FP16/AMX-FP16
(this machine), OpenVINO runs ``f16`` as ``bf16``, a real downgrade; on x86, ncnn and MNN have
no fp16 arithmetic. The AVX2-only case (bf16 read back as ``f32``) is tested on the decision
function with the value the plugin reports there.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from pathlib import Path
from typing import Any

import pytest
from support.bench_helpers import md_tables, run_cli
from support.cpu import FP16_FLAGS, cpu_flags, has_bf16, openvino_runs
from support.engines import need_engine

from picozoo.bench.records import Document
from picozoo.runtime import load
from picozoo.runtime.base import precision_shortfall

FAST = ("--threads", "1", "--min-iters", "10", "--min-time", "0.05", "--warmup", "2")
X86 = platform.machine().lower() in ("x86_64", "amd64")


def _need_x86_features() -> None:
    if not cpu_flags():
        pytest.skip("no /proc/cpuinfo flags: cannot say what this CPU runs")
    if not X86:
        pytest.skip("the expectations here are those of x86 CPUs")


# -- the runtime layer reads back what runs -------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_openvino_records_the_precision_its_compiled_model_runs(
    precision: str, tiny_onnx: Path
) -> None:
    need_engine("openvino")
    _need_x86_features()
    rt = load("openvino", tiny_onnx, precision=precision)
    ran = openvino_runs(precision)
    assert rt.executed_precision == ran and rt.settings["executed_precision"] == ran
    assert rt.downgraded is (ran != precision)
    assert f"read back from the compiled model: {ran}" in rt.precision_note
    assert rt.precision == precision  # what was asked stays recorded
    from picozoo.runtime.openvino import executed

    # the runtime model's computing layers agree: the convolutions run at that precision
    layers = rt.settings["layer_precisions"]
    assert layers and ran in {executed(k) for k in layers}, layers


def test_openvino_f16_runs_bf16_on_a_cpu_with_bf16_but_no_fp16(tiny_onnx: Path) -> None:
    """The downgrade that really happens on a CPU with AVX512-BF16 and no AVX512-FP16/AMX-FP16:
    asked for f16, the compiled model says bf16."""
    need_engine("openvino")
    if not has_bf16() or any(f in cpu_flags() for f in FP16_FLAGS):
        pytest.skip("needs a CPU with AVX512-BF16/AMX-BF16 and without AVX512-FP16/AMX-FP16")
    rt = load("openvino", tiny_onnx, precision="fp16")
    assert rt.settings["requested"]["INFERENCE_PRECISION_HINT"] == "f16"
    assert "bfloat16" in rt.settings["INFERENCE_PRECISION_HINT"]
    assert (rt.executed_precision, rt.downgraded) == ("bf16", True)


def test_the_avx2_only_value_is_a_downgrade() -> None:
    """On an AVX2-only CPU the plugin reads back ``f32`` for a bf16 (or f16) request (its
    ``Type`` prints as ``<Type: 'float32'>``): the decision says it cannot run bf16 there."""
    from picozoo.runtime.openvino import executed

    assert executed("<Type: 'float32'>") == executed("f32") == "fp32"
    assert executed("<Type: 'bfloat16'>") == "bf16" and executed("<Type: 'float16'>") == "fp16"
    why = precision_shortfall("openvino", "bf16", executed("<Type: 'float32'>"), "read back f32")
    assert why == "openvino cannot run bf16 on this CPU: it computes in fp32 (read back f32)"
    assert precision_shortfall("openvino", "bf16", "bf16") is None


def test_ncnn_reads_back_its_options_and_the_cpus_fp16_arithmetic(tmp_path: Path) -> None:
    """ncnn's options as applied after loading, and whether ncnn finds fp16 arithmetic (ARMv8.2
    only): on x86 an fp16 request computes in fp32."""
    ncnn = pytest.importorskip("ncnn")
    param = tmp_path / "relu.param"
    param.write_text("7767517\n2 2\nInput in0 0 1 in0\nReLU relu 1 1 in0 out0\n")
    param.with_suffix(".bin").write_bytes(b"")
    fp16_cpu = bool(ncnn.cpu_support_arm_asimdhp())
    rt = load("ncnn", param, precision="fp16")
    assert rt.settings["applied"]["use_fp16_arithmetic"] is True
    assert rt.settings["cpu_fp16_arithmetic"] is fp16_cpu
    assert rt.executed_precision == ("fp16" if fp16_cpu else "fp32")
    if X86:
        assert rt.downgraded and "cpu_support_arm_asimdhp() = 0" in rt.precision_note
    fp32 = load("ncnn", param, precision="fp32")
    assert fp32.executed_precision == "fp32" and not fp32.downgraded
    assert fp32.settings["applied"]["use_fp16_storage"] is False


def test_mnn_reads_its_device_report(tmp_path: Path) -> None:
    """MNN says on import whether the CPU has fp16 arithmetic; the adapter keeps that report
    (a fresh interpreter: MNN prints it once per process)."""
    pytest.importorskip("MNN")
    code = (
        "from picozoo.runtime.mnn import device_fp16, import_mnn\n"
        "import_mnn()\n"
        "print(device_fp16())\n"
    )
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    assert "MNN's device report: fp16:" in out.stdout
    if X86:
        assert out.stdout.startswith("(False,")


def test_onnxruntime_runs_what_it_is_asked(tiny_onnx: Path) -> None:
    rt = load("onnxruntime", tiny_onnx)
    assert (rt.executed_precision, rt.settings["executed_precision"], rt.downgraded) == (
        "fp32",
        "fp32",
        False,
    )


# -- bench: a precision this CPU cannot run is skipped, naming why -----------------------------


@pytest.mark.slow
def test_bench_skips_the_precision_openvino_does_not_run_here(
    tiny_onnx: Path, tmp_path: Path
) -> None:
    need_engine("openvino")
    _need_x86_features()
    env = {**os.environ, "PICOZOO_CACHE": str(tmp_path / "cache")}
    args = ("bench", str(tiny_onnx), "--engine", "openvino", "--precision", "all", *FAST)
    r = run_cli(*args, "--format", "json", env=env)
    assert r.returncode == 0, r.stderr
    doc = Document.from_json(json.loads(r.stdout))
    cells = {c.run_precision: c for c in doc.cells}
    assert sorted(cells) == ["bf16", "fp16", "fp32"]
    for precision, c in cells.items():
        ran = openvino_runs(precision)
        if ran == precision:
            assert c.ok and c.measured and c.measured.executed_precision == precision
            assert c.measured.engine_settings["executed_precision"] == precision
            assert c.executed_precision == precision
        else:  # never labelled as run: a skipped cell naming what would run and why
            f = c.failure
            assert f is not None and f.skipped, c.result
            assert f"cannot run {precision} on this CPU: it computes in {ran}" in f.error
            assert "INFERENCE_PRECISION_HINT" in f.error
            assert f"--precision {ran}" in (f.hint or "")
            assert f"skipped: {f.error}" in r.stderr
    skipped = [c for c in doc.cells if c.failure]
    md = run_cli(*args, "--format", "md", env=env)
    assert md.returncode == 0, md.stderr
    main = md_tables(md.stdout)[0]
    head = main[0]
    shown = [(row[head.index("Precision")], row[head.index("Engine")]) for row in main[1:]]
    assert [p for p, _ in shown] == [c.run_precision for c in doc.cells]
    for c in skipped:
        assert f"skipped: {c.model} / openvino {c.run_precision} / 1 thr" in md.stdout


# -- convert: a downgraded precision is reported, not claimed --------------------------------------


def _expected(engine: str) -> str:
    """What ``engine`` computes in on this CPU when asked for fp16."""
    if engine == "openvino":
        return openvino_runs("fp16")
    if engine == "ncnn":
        import ncnn

        return "fp16" if ncnn.cpu_support_arm_asimdhp() else "fp32"
    return "fp32" if X86 else "fp16"  # mnn: fp16 arithmetic on ARMv8.2 only


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["openvino", "mnn", "ncnn"])
def test_convert_reports_the_precision_that_ran(
    engine: str, tiny_onnx: Path, tmp_path: Path
) -> None:
    need_engine(engine)
    _need_x86_features()
    env = {**os.environ, "PICOZOO_CACHE": str(tmp_path / "cache")}
    args = ("convert", str(tiny_onnx), "--to", engine, "--precision", "fp16", "--format", "json")
    ran = _expected(engine)
    for attempt in ("converted", "cached"):
        r = run_cli(*args, env=env)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        result = out[0] if isinstance(out, list) else out
        parity = (result.get("results") or [result])[0]["parity"]
        assert parity["precision"] == "fp16" and parity["executed_precision"] == ran, attempt
        assert parity["engine_settings"]["executed_precision"] == ran
        if ran == "fp16":
            assert "precision_note" not in parity and "warning" not in r.stderr
        else:
            note = parity["precision_note"]
            assert f"{engine} cannot run fp16 on this CPU: it computes in {ran}" in note
            assert f"warning: {note}" in r.stderr, attempt  # every time, a cached one too
            assert f"parity errors are those of {ran}, not of fp16" in r.stderr


def test_parity_provenance_keeps_the_executed_precision() -> None:
    from picozoo.provenance import Parity, Provenance

    note = "openvino cannot run fp16 on this CPU: it computes in bf16"
    data = {"passed": "reported", "outputs": [], "precision": "fp16",
            "executed_precision": "bf16", "precision_note": note}  # fmt: skip
    p = Parity.from_json(data)
    assert (p.precision, p.executed_precision) == ("fp16", "bf16") and not p.extra
    assert p.to_json() == data
    old = Provenance.from_json({"target": "mnn", "parity": {"passed": True, "precision": "fp32"}})
    assert old.parity is not None and old.parity.executed_precision is None
    assert "executed_precision" not in old.to_json()["parity"]


# -- records and reports: the precision column shows what ran ----------------------------------


def test_old_results_show_what_their_engine_ran(measured_doc: Document) -> None:
    """A result written before cells were skipped: an "openvino bf16" cell whose engine settings
    say the compiled model ran f32 is shown as fp32, with what was asked; its JSON reads and
    writes back unchanged."""
    from picozoo.bench.report import render
    from picozoo.bench.rows import report_rows

    cell = next(c for c in measured_doc.cells if c.ok)
    m = cell.measured
    assert m is not None and m.executed_precision == "fp32"  # the worker records it
    settings = {"INFERENCE_PRECISION_HINT": "<Type: 'float32'>", "requested": {}}
    old = dataclasses.replace(m, executed_precision=None, engine_settings=settings)
    c = dataclasses.replace(cell, engine="openvino", precision="bf16", result=old)
    doc = dataclasses.replace(measured_doc, cells=(c,))
    data: dict[str, Any] = json.loads(doc.to_json())
    assert "executed_precision" not in data["cells"][0]
    again = Document.from_json(data)
    assert again.to_json() == doc.to_json()
    assert again.cells[0].executed_precision == "fp32"
    assert report_rows(again)[0].precision == "fp32 (bf16 asked)"
    assert "fp32 (bf16 asked)" in render(again, "md")
    new = dataclasses.replace(c, result=dataclasses.replace(old, executed_precision="bf16"))
    assert json.loads(Document.from_json(json.loads(
        dataclasses.replace(doc, cells=(new,)).to_json())).to_json())["cells"][0][
        "executed_precision"] == "bf16"  # fmt: skip


@pytest.mark.slow
def test_bench_of_only_a_precision_this_cpu_cannot_run_says_so(
    tiny_onnx: Path, tmp_path: Path
) -> None:
    """ncnn has no fp16 arithmetic on x86: its only cell is skipped, and the run says that
    nothing was measured and why (exit 1, as when every cell failed)."""
    need_engine("ncnn")
    if not X86:
        pytest.skip("ncnn computes in fp16 on ARMv8.2")
    env = {**os.environ, "PICOZOO_CACHE": str(tmp_path / "cache")}
    r = run_cli("bench", str(tiny_onnx), "--engine", "ncnn", "--precision", "fp16", *FAST,
                "--format", "md", env=env)  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert "ncnn cannot run fp16 on this CPU: it computes in fp32" in r.stdout
    assert "nothing was measured: this CPU cannot run the precisions asked" in r.stderr
