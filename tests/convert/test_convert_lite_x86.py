"""Paddle-Lite on x86: ``.nb`` files read as data (no ARM code run), the x86 ``.nb`` of a Lite
conversion proved against Paddle Inference, and ``--engine lite`` in bench/infer.

The fast tests read ``tests/data/lite/tiny-*.nb``: three files written by the real
``paddle_lite_opt`` 2.12 (``--valid_targets=x86``, ``arm``, ``arm --enable_fp16=true``) from
the ``legacy`` test model of :mod:`support.paddle_models` (conv -> depthwise conv -> batch norm
-> class / box branches; 481 parameters, 457 once opt folded the batch norm into the conv).
The slow tests run the real toolchain in a tool environment made once per session (they skip,
with the reason, where no Python 3.7-3.10 exists).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from picozoo.errors import ExitCode, MissingDependencyError, ModelFileError, ParityError
from picozoo.hub.store import Store
from picozoo.naive_buffer import read_nb, read_nb_file
from picozoo.settings import Settings

DATA = Path(__file__).parent.parent / "data" / "lite"
TINY_PARAMS = 457  # support.paddle_models.EXPECTED_PARAMS (481) with the batch norm folded


# -- the .nb read as data ---------------------------------------------------------------------
def test_nb_files_read_without_paddlelite() -> None:
    x86, arm, fp16 = (read_nb_file(DATA / f"tiny-{n}.nb") for n in ("x86", "arm", "arm-fp16"))
    for nb in (x86, arm, fp16):
        assert (nb.meta_version, nb.opt_version) == (2, "v2.12")
        assert nb.feeds == ["image"] and nb.input_shapes() == {"image": [-1, 3, 64, 64]}
        assert (nb.params, nb.param_elements, nb.param_dtypes) == (10, TINY_PARAMS, {"float32": 10})
        assert nb.ops.count("feed") == 1 and nb.ops.count("fetch") == 2
    assert x86.targets == ["x86"] and x86.places == {"x86/float": 12, "host/any": 7}
    assert arm.targets == ["arm"] and arm.fp16_kernels == 0 and arm.places["arm/float"] == 10
    assert fp16.targets == ["arm"] and fp16.fp16_kernels == 15 and "arm/float" not in fp16.places
    assert x86.fetches == ["flatten_0.tmp_0", "tmp_1"]
    assert x86.vars["flatten_0.tmp_0"].dims == [-1, 5, 1024]
    assert x86.vars["tmp_1"].dims == [-1, 1024, 4]
    assert "conv2d" in x86.ops and "depthwise_conv2d" in x86.ops and "batch_norm" not in x86.ops


def test_damaged_nb_is_one_model_file_error() -> None:
    """Truncated anywhere, or another file: a ModelFileError naming the file, nothing else."""
    data = (DATA / "tiny-x86.nb").read_bytes()
    for cut in (0, 10, 26, 27, 200, len(data) // 2, len(data) - 100, len(data) - 1):
        with pytest.raises(ModelFileError):
            read_nb(data[:cut])
    with pytest.raises(ModelFileError, match=r"not a Paddle-Lite \.nb"):
        read_nb(b"\x08\x00" + data[2:])
    rng = np.random.default_rng(0)
    for _ in range(20):  # flipped bytes in the topology: parsed or refused, never a crash
        bad = bytearray(data)
        for pos in rng.integers(26, 26 + 2000, 8):
            bad[pos] ^= 0xFF
        with contextlib.suppress(ModelFileError):
            read_nb(bytes(bad))


def test_inspect_reads_a_nb(tmp_path: Path) -> None:
    from picozoo.modelinfo import inspect_model

    info = inspect_model(DATA / "tiny-arm-fp16.nb").to_dict()
    assert info["format"] == "paddle-lite" and info["params"] == TINY_PARAMS
    assert info["inputs"] == [{"name": "image", "shape": ["?", 3, 64, 64], "dtype": "float32"}]
    assert info["lite"]["opt_version"] == "v2.12" and info["lite"]["targets"] == ["arm"]
    assert info["lite"]["fp16_kernels"] == 15 and info["op_histogram"]["conv2d"] == 2
    # an unpacked lite-* tarball: a folder holding one .nb
    folder = tmp_path / "picodet_lite"
    folder.mkdir()
    shutil.copy(DATA / "tiny-x86.nb", folder / "model.nb")
    assert inspect_model(folder).to_dict()["lite"]["targets"] == ["x86"]


def test_lite_engine_refuses_arm_and_needs_a_tool_environment(tmp_path: Path) -> None:
    from picozoo.runtime import load
    from picozoo.runtime.lite import env_python, find_side_python

    with pytest.raises(ModelFileError, match=r"tiny-arm\.nb is a Paddle-Lite model for ARM"):
        load("lite", DATA / "tiny-arm.nb")
    with pytest.raises(ModelFileError, match="Paddle-Lite model for ARM"):
        load("onnxruntime", DATA / "tiny-x86.nb")  # other engines refuse every .nb
    with pytest.raises(MissingDependencyError) as exc:
        find_side_python(DATA / "tiny-x86.nb", cache_dir=tmp_path)
    assert exc.value.exit_code == ExitCode.MISSING_DEPENDENCY
    assert "--to lite" in str(exc.value)
    # an environment made before numpy was part of it cannot run a model (it is rebuilt)
    old = tmp_path / "tools" / "paddlelite-2.12-cp37"
    (old / "venv" / "bin").mkdir(parents=True)
    (old / "venv" / "bin" / "python").write_text("")
    (old / ".complete").write_text("paddlelite==2.12\n")
    assert env_python(old) is None
    (old / ".complete").write_text("paddlelite==2.12\nnumpy==1.21.6\n")
    assert env_python(old) == old / "venv" / "bin" / "python"


def test_engine_all_leaves_lite_to_be_named() -> None:
    from picozoo.bench.engines import plan_engines

    plan = plan_engines(["all"], ["fp32"])
    assert "lite" not in plan.engines
    assert any("lite skipped" in n and "--engine lite" in n for n in plan.notes)


# -- the real toolchain ----------------------------------------------------------------------
@pytest.fixture(scope="session")
def lite_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding the managed Paddle-Lite tool environment (made once per session)."""
    from picozoo.convert.lite_toolchain import ensure_lite_opt, find_interpreter
    from picozoo.errors import ToolchainError

    try:
        find_interpreter()
    except ToolchainError as e:
        pytest.skip(f"no interpreter a paddlelite wheel supports: {e}")
    cache = tmp_path_factory.mktemp("lite-cache")
    ensure_lite_opt(Store(Settings(cache_dir=cache)))
    return cache


def _env(cache: Path) -> dict[str, str]:
    env = {**os.environ, "PICOZOO_CACHE": str(cache)}
    for name in ("PICOZOO_LITE_OPT", "PICOZOO_LITE_PYTHON"):
        env.pop(name, None)
    return env


def _picozoo(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "picozoo", *args], capture_output=True, text=True, env=_env(cache)
    )


@pytest.mark.slow
def test_x86_nb_matches_paddle_inference(lite_cache: Path, paddle_models: dict[str, Path]) -> None:
    """The conversion's x86 .nb, run in the tool environment, computes what Paddle Inference
    computes on a seeded input whose outputs vary (checked here, beside the provenance)."""
    from picozoo.convert import convert
    from picozoo.runtime import load
    from picozoo.targets import Target

    src = paddle_models["legacy"]
    store = Store(Settings(cache_dir=lite_cache))
    res = convert(store, Target(str(src), path=src), to="lite", fp16=True)
    parity = res.provenance.parity
    assert parity is not None and parity.passed is True and parity.engine == "lite"
    assert parity.reference == "paddle" and parity.seeds == [0, 1, 2, 3]
    assert len(parity.outputs) > 0 and parity.max_abs < 1e-4
    assert parity.extra["file"] == "model.x86.nb" and "not ARM FP16" in parity.extra["proves"]
    x86 = res.path.with_name("model.x86.nb")
    assert read_nb_file(x86).targets == ["x86"] and read_nb_file(res.path).fp16_kernels > 0
    assert res.provenance.output.files is not None and "model.x86.nb" in res.provenance.output.files
    # the same file, run again by hand: outputs spread (not a near-constant model) and agree
    image = np.random.default_rng(7).standard_normal((1, 3, 64, 64)).astype("float32")
    lite = load("lite", x86)
    assert lite.executed_precision == "fp32" and lite.version == "v2.12"
    got = lite.run({"image": image})
    want = load("paddle", src, reference=True).run({"image": image})
    assert [g.shape for g in got] == [w.shape for w in want]
    assert max(float(np.std(w)) for w in want) > 1e-2
    for g, w in zip(got, want, strict=True):
        assert np.abs(g - w).max() < 1e-4
    # equal inputs are not sent again (the child keeps them); changed ones are, in place too
    sent = lite._sent
    again = lite.run({"image": image})
    assert lite._sent is sent
    assert all(np.array_equal(a, b) for a, b in zip(again, got, strict=True))
    image *= -2.0
    changed = lite.run({"image": image})
    assert lite._sent is not sent
    want = load("paddle", src, reference=True).run({"image": image})
    assert not np.array_equal(changed[0], got[0])
    for g, w in zip(changed, want, strict=True):
        assert np.abs(g - w).max() < 1e-4


@pytest.mark.slow
def test_a_graph_that_computes_something_else_is_exit_10(
    lite_cache: Path, paddle_models: dict[str, Path], tmp_path: Path
) -> None:
    """An x86 .nb built from the same model with other weights fails the parity check."""
    from picozoo.convert.lite_parity import check_lite_parity
    from picozoo.convert.to_lite import OptTool, run_opt
    from picozoo.paddle_dir import find_paddle_model
    from picozoo.runtime.lite import find_side_python

    src = paddle_models["legacy"]
    other = tmp_path / "other"
    shutil.copytree(src, other)
    params = bytearray((other / "model.pdiparams").read_bytes())
    tail = np.frombuffer(bytes(params[-64:]), "float32") * 3.0 + 0.5  # the last weights
    params[-64:] = tail.astype("float32").tobytes()
    (other / "model.pdiparams").write_bytes(bytes(params))
    [env] = list((lite_cache / "tools").iterdir())
    tool = OptTool("managed", env / "paddle_lite_opt", "2.12")
    nb = run_opt(tool, find_paddle_model(other), tmp_path / "model", fp16=False, target="x86")
    with pytest.raises(ParityError) as exc:
        check_lite_parity(find_paddle_model(src), nb, find_side_python(nb, lite_cache))
    assert exc.value.exit_code == ExitCode.PARITY
    assert "Paddle-Lite x86 and Paddle Inference disagree" in str(exc.value)


@pytest.mark.slow
def test_cli_convert_bench_infer_on_x86(
    lite_cache: Path, paddle_models: dict[str, Path], tmp_path: Path
) -> None:
    """`convert --to lite --precision fp16` prints the x86 parity figure and what it proves;
    `bench --engine lite` gives a cell (fp32, the x86 .nb, threads named); `infer --engine lite`
    runs it; `verify --deep` reads both .nb files."""
    src = paddle_models["legacy-sf"]
    conv = _picozoo("convert", str(src), "--to", "lite", "--precision", "fp16", cache=lite_cache)
    assert conv.returncode == 0, conv.stderr
    assert "x86 parity: Paddle-Lite x86 .nb vs Paddle Inference, 4 seeded inputs" in conv.stderr
    assert "not ARM FP16 arithmetic" in conv.stderr and "FP16 kernels of" in conv.stderr
    quick = ("--min-time", "0", "--min-iters", "3", "--warmup", "1", "--threads", "1")
    bench = _picozoo("bench", str(src), "--engine", "lite", *quick, "--format", "json",
                     cache=lite_cache)  # fmt: skip
    assert bench.returncode == 0, bench.stderr
    [cell] = json.loads(bench.stdout)["cells"]
    assert cell["engine"] == "lite" and cell["threads"] == 1
    assert cell["source"].endswith("model.x86.nb") and cell["status"] == "ok"
    assert cell["executed_precision"] == "fp32" and cell["engine_version"] == "v2.12"
    assert cell["engine_settings"]["target"] == "x86" and cell["stats"]["median_ms"] > 0
    assert "OMP_NUM_THREADS" in cell["engine_settings"]["threads_via"]
    assert cell["engine_settings"]["os_threads"] == 1
    image = tmp_path / "a.png"
    _write_png(image)
    out = tmp_path / "out"
    infer = _picozoo("infer", str(src), str(image), "--engine", "lite", "--out", str(out),
                     "--format", "json", cache=lite_cache)  # fmt: skip
    assert infer.returncode == 0, infer.stderr
    assert (out / "results.json").is_file()
    verify = _picozoo("verify", "--deep", "--format", "json", cache=lite_cache)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def _write_png(path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(path)


@pytest.mark.slow
def test_verify_deep_reads_pulled_lite_tarballs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upstream's lite-fp32/fp16 tarballs (stand-ins holding real .nb files) are read, not run:
    version, target, kernels and params reported; a lite-fp16 one without FP16 kernels is a
    problem."""
    from support.artifacts import make_inference_tarball, publish
    from support.http_server import serve_directory
    from support.store import pull, store_at

    from picozoo.hub.registry import load_registry
    from picozoo.hub.verify import verify_cache

    monkeypatch.delenv("PICOZOO_MIRROR", raising=False)
    monkeypatch.delenv("PICOZOO_OFFLINE", raising=False)
    model = load_registry().get("picodet-s-416")
    mirror = tmp_path / "mirror"
    # the lite-fp16 one holds the FP32 .nb: mislabelled on purpose
    for kind in ("lite-fp32", "lite-fp16"):
        src = tmp_path / kind / "picodet_s_416_lite"
        src.mkdir(parents=True)
        shutil.copy(DATA / "tiny-arm.nb", src / "model.nb")
        publish(model.artifact(kind), make_inference_tarball(src, tmp_path / f"{kind}.tar"), mirror)
    quant = load_registry().get("picodet-s-416-quant").artifact("lite-int8")  # a bare .nb
    publish(quant, DATA / "tiny-arm.nb", mirror)
    store = store_at(tmp_path / "cache")
    with serve_directory(mirror) as srv:
        for art in (model.artifact("lite-fp32"), model.artifact("lite-fp16"), quant):
            pull(art, cache_dir=store.root, mirrors=srv.url)
    result = verify_cache(store, load_registry(), deep=True)
    [problem] = result.problems
    assert problem.kind == "lite-fp16" and "without FP16 kernels" in problem.message
    row = next(r for r in result.rows if r["kind"] == "lite-fp32")
    assert row["status"] == "ok" and row["params"] == TINY_PARAMS
    assert "v2.12 arm: 18 ops, 0 FP16 kernels of 18" in row["detail"]
    row = next(r for r in result.rows if r["kind"] == "lite-int8")
    assert row["status"] == "ok" and row["params"] == TINY_PARAMS and "v2.12 arm" in row["detail"]


@pytest.mark.slow
def test_a_tool_environment_without_numpy_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An environment made before numpy was part of it (its marker names no numpy) is rebuilt
    from scratch, and then runs a .nb."""
    from picozoo.convert.lite_toolchain import (
        MARKER,
        ensure_lite_opt,
        find_interpreter,
        pinned_paddlelite,
        tool_name,
    )
    from picozoo.errors import ToolchainError
    from picozoo.runtime import load

    try:
        interp = find_interpreter()
    except ToolchainError as e:
        pytest.skip(f"no interpreter a paddlelite wheel supports: {e}")
    version = pinned_paddlelite(interp.version)
    assert version is not None
    store = Store(Settings(cache_dir=tmp_path / "cache"))
    old = store.tool_dir(tool_name(version, interp.version))
    old.mkdir(parents=True)
    (old / "paddle_lite_opt").write_text("#!/bin/sh\nexit 1\n")
    (old / "left-over").write_text("from the old environment")
    (old / MARKER).write_text(f"paddlelite=={version}\n")
    said: list[str] = []
    opt, _ = ensure_lite_opt(store, progress=said.append)
    assert opt == old / "paddle_lite_opt" and not (old / "left-over").exists()
    assert any("rebuilding" in s for s in said)
    nb = tmp_path / "model.nb"
    shutil.copy(DATA / "tiny-x86.nb", nb)
    monkeypatch.setenv("PICOZOO_CACHE", str(store.root))  # where --engine lite looks
    runtime = load("lite", nb, threads=1)
    [scores, boxes] = runtime.run({"image": np.zeros((1, 3, 64, 64), "float32")})
    assert scores.shape == (1, 5, 1024) and boxes.shape == (1, 1024, 4)
