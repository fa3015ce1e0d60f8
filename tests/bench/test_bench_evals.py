"""Measured mAP in the bench tables: a cached `picozoo eval` result of the very file a cell
benched (same sha256, engine, precision) is stored in the cell when the bench runs and shown
beside upstream's claim (with the difference) in md/csv/json/html and the plot; old results
still load. Crafted eval files (the `picozoo.eval/1` format eval writes) test the matching;
the slow tests run the real `picozoo eval`, then `picozoo bench`, on the same files."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from support.bench_helpers import md_tables, run_cli, self_consistency_set

from picozoo.bench.evals import load_evals, match_eval
from picozoo.bench.plot import series_from_rows
from picozoo.bench.records import Document, load_document
from picozoo.bench.report import render
from picozoo.bench.rows import report_rows
from picozoo.bench.suite import run_suite
from picozoo.bench.targets import BenchTarget
from picozoo.errors import ResultFileError
from picozoo.hub.registry import load_registry

DOCS = Path(__file__).resolve().parents[2] / "docs"
FAST = ("--threads", "1", "--min-iters", "10", "--min-time", "0.05", "--warmup", "2")
MEASURED = "mAP<sup>measured<br>0.5:0.95 (Δ)"


def write_eval(cache: Path, name: str, **fields: Any) -> Path:
    """A cached eval result as `picozoo eval` writes it into ``<cache>/evals/``."""
    stats = {"AP": fields.pop("ap"), "AP50": fields.pop("ap50", 0.6)}
    data = {
        "schema": "picozoo.eval/1",
        "model": "tiny_conv",
        "model_path": "/somewhere/tiny_conv.onnx",
        "engine": "onnxruntime",
        "precision": "fp32",
        "dataset": "f" * 64,
        "nms": {"score_threshold": 0.025},
        "images": 3,
        "ann_file": "/data/ann.json",
        "stats": stats,
        "per_class_ap": {},
        **fields,
    }
    path = cache / "evals" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def _sha(path: Path) -> str:
    from picozoo.atomic import sha256_file

    return sha256_file(path)


@pytest.fixture()
def eval_cache(tiny_onnx: Path, tmp_path: Path) -> Path:
    """A cache whose eval results score tiny_conv.onnx (and decoys that must not match)."""
    cache, sha = tmp_path / "cache", _sha(tiny_onnx)
    write_eval(cache, "small", model_sha256=sha, ap=0.41, images=3)
    write_eval(cache, "bigger", model_sha256=sha, ap=0.38, images=5000, dataset_images=5000,
               dataset_name="COCO val2017", ann_sha256="c0c0" * 16,
               ann_file="/coco/val.json")  # fmt: skip
    write_eval(cache, "largest-not-coco", model_sha256=sha, ap=0.99, images=6000,
               dataset_name="mine.json", dataset_images=6000, ann_sha256="ab" * 32)  # fmt: skip
    write_eval(cache, "other-engine", model_sha256=sha, ap=0.2, engine="openvino")
    write_eval(cache, "other-precision", model_sha256=sha, ap=0.1, precision="fp16")
    write_eval(cache, "other-file", model_sha256="0" * 64, ap=0.9, images=50)
    write_eval(cache, "no-stats", model_sha256=sha, ap=None, images=500)
    (cache / "evals" / "broken.json").write_text("{not json")
    return cache


def _picodet_target(path: Path, model_id: str = "picodet-s-416") -> BenchTarget:
    model = load_registry().get(model_id)  # picodet-s-416 claims mAP 32.5
    return BenchTarget(model.id, "onnxruntime", path, model=model, input_size=model.input_size)


def test_matching_takes_sha_engine_and_precision_and_the_biggest_set(
    tiny_onnx: Path, eval_cache: Path
) -> None:
    evals = load_evals(eval_cache)
    assert len(evals) == 7  # the unreadable file is left out
    sha = _sha(tiny_onnx)
    best = match_eval(evals, sha, "onnxruntime", "fp32")  # all of COCO val2017 first
    assert best is not None and (best.ap, best.images, best.ann_file) == (
        0.38,
        5000,
        "/coco/val.json",
    )
    assert best.coco_val2017 and best.set_label == "COCO val2017 (5000 images)"
    assert match_eval(evals, sha, "openvino", "fp32").ap == 0.2  # type: ignore[union-attr]
    assert match_eval(evals, sha, "onnxruntime", "fp16").ap == 0.1  # type: ignore[union-attr]
    assert match_eval(evals, sha, "paddle", "fp32") is None
    assert match_eval(evals, "1" * 64, "onnxruntime", "fp32") is None
    assert load_evals(eval_cache / "nowhere") == []


@pytest.mark.slow
def test_measured_map_in_every_format(tiny_onnx: Path, eval_cache: Path, tmp_path: Path) -> None:
    doc = run_suite(
        [_picodet_target(tiny_onnx)],
        threads=[1],
        warmup=1,
        min_iters=5,
        min_time_s=0.0,
        evals=load_evals(eval_cache),
    )
    (scored,) = doc.cells
    assert scored.ok and scored.measured_map is not None and scored.measured_map.ap == 0.38
    # beside it, a cell of another model that eval did not score
    m416 = load_registry().get("picodet-m-416")
    unscored = dataclasses.replace(scored, model=m416.id, name=m416.name, claims=m416.claims,
                                   measured_map=None)  # fmt: skip
    doc = dataclasses.replace(doc, cells=(scored, unscored))
    # md: the measured mAP beside the claim, with the difference
    main = md_tables(render(doc, "md"))[0]
    rows = [dict(zip(main[0], r, strict=True)) for r in main[1:]]
    header = main[0]
    assert header.index(MEASURED) == header.index("mAP<sup>val<br>0.5:0.95") + 1
    assert [r[MEASURED] for r in rows] == ["38.0 (+5.5)", "-"]
    assert "mAP measured = COCO mAP 0.5:0.95 from `picozoo eval`" in render(doc, "md")
    assert "Data set COCO val2017 (5000 images; /coco/val.json, annotations sha256 c0c0" in render(
        doc, "md"
    )
    # csv
    (row, other) = csv.DictReader(io.StringIO(render(doc, "csv")))
    assert (row["map_measured"], row["map_delta"], row["eval_images"]) == ("38.0", "5.5", "5000")
    assert (row["eval_set"], row["eval_coco_val2017"]) == ("COCO val2017 (5000 images)", "True")
    assert row["map50_measured"] == "60.0" and other["map_measured"] == ""
    # json: stored in the document, and written back unchanged
    data = json.loads(render(doc, "json"))
    assert data["cells"][0]["measured_map"] == {
        "ap": 0.38,
        "ap50": 0.6,
        "images": 5000,
        "dataset": "f" * 64,
        "ann_file": "/coco/val.json",
        "ann_sha256": "c0c0" * 16,
        "dataset_name": "COCO val2017",
        "dataset_images": 5000,
    }
    assert "measured_map" not in data["cells"][1]
    saved = tmp_path / "r.json"
    saved.write_text(doc.to_json())
    assert load_document(saved) == doc and load_document(saved).to_json() == doc.to_json()
    # html and the terminal table
    assert "38.0 (+5.5)" in render(doc, "html") and "38.0 (+5.5)" in render(doc, "table")
    # the plot uses the measured point (filled), the claim where there is none (hollow)
    (series,) = series_from_rows(report_rows(doc))
    points = {p["label"].split()[0]: p for p in series["points"]}
    assert points["PicoDet-S"]["map"] == pytest.approx(38.0)
    assert points["PicoDet-S"]["measured"] is True
    assert points["PicoDet-M"]["map"] == m416.claims.map
    assert points["PicoDet-M"]["measured"] is False


@pytest.mark.slow
def test_results_without_measured_map_still_load_and_render() -> None:
    # a result written by picozoo 0.1 (before measured mAP, precisions and VmHWM)
    doc = load_document(DOCS.parent / "tests" / "data" / "bench-v0.1-standin-s416.json")
    assert all(c.measured_map is None and c.precision is None for c in doc.cells)
    assert all(c.run_precision == "fp32" for c in doc.cells)
    header = md_tables(render(doc, "md"))[0][0]
    assert MEASURED not in header and "Precision" not in header
    assert {r.map_measured for r in report_rows(doc)} == {None}


@pytest.mark.slow
def test_broken_measured_map_or_precision_is_rejected(measured_json: dict[str, Any]) -> None:
    cell = measured_json["cells"][0]
    for change, where in (
        ({"measured_map": {"ap": "high", "images": 3, "dataset": "x"}}, "measured_map.ap"),
        ({"measured_map": {"ap": 0.3, "dataset": "x"}}, "measured_map: missing"),
        ({"precision": "fp64"}, "precision: 'fp64' is not one of"),
    ):
        broken = json.loads(json.dumps(measured_json))
        broken["cells"][0] = {**cell, **change}
        with pytest.raises(ResultFileError, match=r"\$\.cells\[0\]\." + where.split(":")[0]):
            Document.from_json(broken, "r.json")


@pytest.mark.slow
def test_cli_bench_stores_the_measured_map_and_report_show_shows_it(
    tiny_onnx: Path, eval_cache: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "PICOZOO_CACHE": str(eval_cache)}
    saved = tmp_path / "r.json"
    r = run_cli("bench", str(tiny_onnx), *FAST, "--report", "json", "--out", str(saved), env=env)
    assert r.returncode == 0, r.stderr
    assert "mAP 38.0 (eval on COCO val2017, 5000 images)" in r.stderr
    (cell,) = json.loads(saved.read_text())["cells"]
    assert cell["measured_map"]["ap"] == 0.38 and cell["precision"] == "fp32"
    # shown from the saved file alone, whatever the cache holds now
    r = run_cli("report", "show", str(saved), "--report", "md",
                env={**os.environ, "PICOZOO_CACHE": str(tmp_path / "empty")})  # fmt: skip
    assert r.returncode == 0, r.stderr
    main = md_tables(r.stdout)[0]
    assert main[1][main[0].index(MEASURED)] == "38.0"  # a file has no claim: no difference


# -- the real `picozoo eval`, then `picozoo bench` -----------------------------------------------


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A small PicoDet (Paddle nopp/pp exports, the nopp ONNX) and its self-consistency set."""
    pytest.importorskip("paddle")
    pytest.importorskip("skimage")
    from support.picodet_models import build_picodet

    from picozoo.convert import convert_paddle_dir_to_onnx

    root = tmp_path_factory.mktemp("scored")
    dirs = build_picodet(root / "model", (320, 320))
    onnx = convert_paddle_dir_to_onnx(dirs["nopp"], root / "onnx").path
    ann = self_consistency_set(dirs["pp"], root / "set")
    return {**dirs, "onnx": onnx, "ann": ann, "root": root}


def _eval_cli(model: Path, scored: dict[str, Any], cache: Path, *extra: str) -> dict[str, Any]:
    cfg = scored["nopp"] / "infer_cfg.yml"
    r = run_cli("eval", str(model), "--config", str(cfg), "--coco", str(scored["ann"].parent),
                "--ann", str(scored["ann"]), "--format", "json", *extra,
                env={**os.environ, "PICOZOO_CACHE": str(cache)})  # fmt: skip
    assert r.returncode == 0, r.stderr
    result: dict[str, Any] = json.loads(r.stdout)
    return result


@pytest.mark.slow
def test_real_eval_then_bench_shows_that_map(scored: dict[str, Any], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ort = _eval_cli(scored["onnx"], scored, cache)
    paddle = _eval_cli(scored["nopp"], scored, cache, "--engine", "paddle")
    assert ort["stats"]["AP"] >= 0.9 and paddle["stats"]["AP"] >= 0.9  # self-consistent
    env = {**os.environ, "PICOZOO_CACHE": str(cache)}
    r = run_cli("bench", str(scored["onnx"]), *FAST, "--report", "json", env=env)
    assert r.returncode == 0, r.stderr
    (cell,) = json.loads(r.stdout)["cells"]
    assert cell["measured_map"]["ap"] == ort["stats"]["AP"]
    assert cell["measured_map"]["images"] == ort["images"] == 4
    # a Paddle folder: matched by the hash eval gives it (model + params)
    r = run_cli("bench", str(scored["nopp"]), "--engine", "paddle", *FAST, "--report", "json",
                env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    (cell,) = json.loads(r.stdout)["cells"]
    assert cell["measured_map"]["ap"] == paddle["stats"]["AP"]


@pytest.mark.slow
def test_engine_converted_file_gets_its_own_eval(scored: dict[str, Any], tmp_path: Path) -> None:
    """OpenVINO benches the IR picozoo converts from the ONNX: an eval of the ONNX on ONNX
    Runtime is not its mAP; `picozoo eval model.onnx --engine openvino` (the same conversion)
    is, at that precision only."""
    from picozoo.bench.engines import missing_engine

    if missing_engine("openvino"):
        pytest.skip(str(missing_engine("openvino")))
    cache = tmp_path / "cache"
    _eval_cli(scored["onnx"], scored, cache)  # ONNX Runtime on the source ONNX
    env = {**os.environ, "PICOZOO_CACHE": str(cache)}
    args = ("bench", str(scored["onnx"]), "--engine", "openvino", "--precision", "fp32",
            "--precision", "bf16", *FAST, "--report", "json")  # fmt: skip
    r = run_cli(*args, env=env)
    assert r.returncode == 0, r.stderr
    fp32, bf16 = json.loads(r.stdout)["cells"]
    assert fp32["status"] == "ok"
    assert bf16["status"] == "ok" or bf16["stage"] == "skipped"  # a CPU without bf16 skips it
    assert "measured_map" not in fp32 and "measured_map" not in bf16
    result = _eval_cli(scored["onnx"], scored, cache, "--engine", "openvino")
    assert result["model_sha256"] == fp32["artifact_sha256"]  # the very file benched
    r = run_cli(*args, env=env)
    fp32, bf16 = json.loads(r.stdout)["cells"]
    assert fp32["measured_map"]["ap"] == result["stats"]["AP"] >= 0.9
    assert "measured_map" not in bf16  # evaluated at fp32 only


def test_measured_map_record_math() -> None:
    from picozoo.bench.records import MeasuredMap

    m = MeasuredMap(ap=0.2, ap50=None, images=5000, dataset="d", dataset_name="COCO val2017",
                    dataset_images=5000)  # fmt: skip
    assert m.map == pytest.approx(20.0) and m.map50 is None and m.delta(None) is None
    assert dataclasses.replace(m, ap=0.33).delta(32.5) == pytest.approx(0.5)
    # a subset of COCO val2017, another set, a result that does not say: no difference
    assert dataclasses.replace(m, images=500).delta(32.5) is None
    assert dataclasses.replace(m, dataset_name="ann.json").delta(32.5) is None
    assert dataclasses.replace(m, dataset_name=None).delta(32.5) is None


# -- issue 18 #1: mAPs of two data sets ----------------------------------------------------------


def _other_set(scored: dict[str, Any], out: Path) -> Path:
    """Set B: set A's images (all but the last), its boxes moved by a quarter of their size (a
    lower mAP for the same model), in another annotation file."""
    import shutil

    a = json.loads(scored["ann"].read_text())
    out.mkdir(parents=True)
    keep = a["images"][:-1]
    for image in keep:
        shutil.copy(scored["ann"].parent / image["file_name"], out / image["file_name"])
    ids = {i["id"] for i in keep}
    anns = []
    for ann in a["annotations"]:
        if ann["image_id"] in ids:
            x, y, w, h = ann["bbox"]
            anns.append({**ann, "bbox": [x + w / 4, y + h / 4, w, h]})
    b = out / "b.json"
    b.write_text(json.dumps({**a, "images": keep, "annotations": anns}))
    return b


@pytest.mark.slow
def test_maps_of_two_data_sets_are_never_compared(scored: dict[str, Any], tmp_path: Path) -> None:
    """`eval` of the Paddle folder on Paddle with set A, `eval` of its ONNX on ONNX Runtime
    with set B, then both benched as picodet-s-416 (upstream claims 32.5 on COCO val2017):
    each cell's mAP names its set, no difference to the claim, no "loses N mAP" across sets,
    a plot panel per set."""
    import hashlib

    cache = tmp_path / "cache"
    env = {**os.environ, "PICOZOO_CACHE": str(cache)}
    on_a = _eval_cli(scored["nopp"], scored, cache, "--engine", "paddle")
    b = _other_set(scored, tmp_path / "setb")
    cfg = scored["nopp"] / "infer_cfg.yml"
    r = run_cli("eval", str(scored["onnx"]), "--config", str(cfg), "--coco", str(b.parent),
                "--ann", str(b), "--format", "json", env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    on_b = json.loads(r.stdout)
    # every eval result names its set: name, annotation sha256, images
    assert on_a["ann_sha256"] == hashlib.sha256(scored["ann"].read_bytes()).hexdigest()
    assert (on_a["dataset_name"], on_a["images"], on_a["dataset_images"]) == ("ann.json", 4, 4)
    assert (on_b["dataset_name"], on_b["images"]) == ("b.json", 3)
    assert on_a["stats"]["AP"] - on_b["stats"]["AP"] > 0.05  # the sets give other mAPs
    r = run_cli("eval", str(scored["onnx"]), "--config", str(cfg), "--coco", str(b.parent),
                "--ann", str(b), env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].endswith(
        f"on b.json (3 images, annotations sha256 {on_b['ann_sha256'][:12]}), onnxruntime, "
        "precision fp32 as executed"
    )
    model = load_registry().get("picodet-s-416")
    targets = [
        BenchTarget(model.id, "paddle", scored["nopp"], model=model, input_size=(320, 320)),
        BenchTarget(model.id, "onnxruntime", scored["onnx"], model=model, input_size=(320, 320)),
    ]
    doc = run_suite(targets, threads=[1], warmup=1, min_iters=5, min_time_s=0.0,
                    evals=load_evals(cache))  # fmt: skip
    by_engine = {c.engine: c.measured_map for c in doc.cells}
    assert by_engine["paddle"] is not None and by_engine["onnxruntime"] is not None
    assert by_engine["paddle"].dataset_name == "ann.json"
    assert by_engine["onnxruntime"].dataset_name == "b.json"
    saved = tmp_path / "r.json"
    saved.write_text(doc.to_json())
    r = run_cli("report", "show", str(saved), "--report", "md", env=env)
    assert r.returncode == 0, r.stderr
    md = r.stdout
    # the tables: each mAP says its set; no difference against the claim; never compared
    assert "loses" not in render(doc, "table")  # (its cells wrap: the text is checked below)
    for text in (md, render(doc, "html")):
        assert "loses" not in text
        assert "(on ann.json, 4 images)" in text and "(on b.json, 3 images)" in text
        assert "(+" not in text
    assert "mAPs measured on different data sets are not compared" in md
    assert "Data set b.json (3 images; " in md and on_b["ann_sha256"] in md
    assert {row["map_delta"] for row in csv.DictReader(io.StringIO(render(doc, "csv")))} == {""}
    # the plot: the COCO axis holds no measured point; each set has its own named panel
    import matplotlib.pyplot as plt

    from picozoo.bench.plot import COCO_AXIS, map_vs_latency_figure

    fig = map_vs_latency_figure(series_from_rows(report_rows(doc)))
    try:
        labels = [ax.get_ylabel() for ax in fig.axes]
        assert labels[0] == COCO_AXIS and len(labels) == 3
        assert "ann.json, 4 images" in labels[1] and "b.json, 3 images" in labels[2]
        assert [ln.get_label() for ln in fig.axes[0].lines] == [
            "upstream claim (i7-10750H, Paddle Inference, 12 threads)"
        ]
    finally:
        plt.close(fig)


# -- issue 18 #7 and #8: eval's printed stats, and what each hash is of ---------------------------


@pytest.mark.slow
def test_eval_prints_the_same_stats_in_coco_order_and_says_what_each_hash_is_of(
    scored: dict[str, Any], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    env = {**os.environ, "PICOZOO_CACHE": str(cache)}
    cfg = scored["nopp"] / "infer_cfg.yml"
    args = ("eval", str(scored["nopp"]), "--engine", "paddle", "--config", str(cfg),
            "--coco", str(scored["ann"].parent), "--ann", str(scored["ann"]))  # fmt: skip
    first = run_cli(*args, env=env)
    assert first.returncode == 0, first.stderr
    again = run_cli(*args, env=env)  # served from the cache
    assert "cached result" in again.stderr and again.stdout == first.stdout
    stats = next(line for line in first.stdout.splitlines() if line.startswith("AP "))
    assert [w for w in stats.split() if not w[0].isdigit() and w != "-"] == [
        "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
    ]  # fmt: skip
    # what each hash is of: the folder's two files for the model, the annotation file's bytes
    from picozoo.paddle_dir import find_paddle_model

    result = json.loads(run_cli(*args, "--format", "json", env=env).stdout)
    m = find_paddle_model(scored["nopp"])  # model.json (PIR) or model.pdmodel, + .pdiparams
    assert result["model_sha256_of"] == (
        f"{m.model_file.name} + {m.params_file.name} of nopp/ (sha256 of their two sha256 "
        "hex digests)"
    )
    assert result["model_sha256"] == m.sha256()["combined"]
    assert f"sha256 of {result['model_sha256_of']}: {result['model_sha256']}" in first.stdout
    assert f"sha256 of the annotation file: {result['ann_sha256']}" in first.stdout
    # a result cached by an earlier version holds COCO's -1 for "no such objects": shown "-"
    (cached,) = (cache / "evals").glob("*.json")
    old = json.loads(cached.read_text())
    old["stats"]["APs"] = -1.0
    for k in ("ann_sha256", "dataset_images", "dataset_name", "model_sha256_of"):
        old.pop(k)
    cached.write_text(json.dumps(old, sort_keys=True))
    r = run_cli(*args, env=env)
    assert r.returncode == 0, r.stderr
    assert " APs - " in r.stdout and "-100.0" not in r.stdout
    assert r.stdout.splitlines()[0] == first.stdout.splitlines()[0]  # the set named again
