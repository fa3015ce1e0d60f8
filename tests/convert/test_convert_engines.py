"""``convert --to openvino|mnn|ncnn``: from the ONNX, cached with provenance and pins, proved
against ONNX Runtime on inputs whose outputs vary; reduced precisions report their error and
detection agreement; MNN's converter runs in-process without pip, subprocess or network; the
NCNN runtime copes with non-contiguous inputs; missing tools are exit 11 with the install
hint; an ARM ``.nb`` is refused by the runtime layer, ``bench`` and ``convert``.

The fast tier uses a tiny PicoDet-shaped ONNX (support.tiny_detector, written in
milliseconds); the slow tier converts the PicoDet-like Paddle test model's ONNX.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from picozoo.errors import ExitCode, ModelFileError
from picozoo.hub.store import CONVERTED_PIN_PREFIX, Store
from picozoo.settings import Settings
from picozoo.targets import Target

ENGINES = ["openvino", "mnn", "ncnn"]
#: each engine's Python module (skip, not fail, where an engine is not installed)
FILES = {
    "openvino": ("model.xml", ["model.bin"]),
    "mnn": ("model.mnn", ["model.io.json"]),
    "ncnn": ("model.ncnn.param", ["model.ncnn.bin", "model.ncnn.io.json"]),
}
REDUCED = {"openvino": "bf16", "mnn": "int8", "ncnn": "fp16"}

Run = Callable[..., tuple[int, str, str]]


def _need(engine: str) -> None:
    from support.engines import need_engine

    need_engine(engine)


def _convert(store: Store, path: Path, to: str, **kw: Any) -> Any:
    from picozoo.convert import convert

    return convert(store, Target(str(path), path=path), to=to, **kw)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny PicoDet-shaped ONNX; its outputs spread (a constant model proves nothing)."""
    pytest.importorskip("onnx")
    from support.tiny_detector import build_tiny_detector, output_spread

    path = build_tiny_detector(tmp_path_factory.mktemp("tiny") / "tiny.onnx")
    spread = output_spread(path)
    assert spread["scores"] > 0.2 and spread["dists"] > 2.0, spread
    return path


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A store shared by the tests that only need the tiny model converted (cache hits)."""
    return Store(Settings(cache_dir=tmp_path_factory.mktemp("tiny_store") / "cache"))


@pytest.fixture(scope="module")
def picodet_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The PicoDet-like Paddle test model (no post-processing, 320x320), converted to ONNX by
    picozoo (parity-checked against Paddle Inference)."""
    pytest.importorskip("paddle")
    from support.picodet_models import build_picodet
    from support.tiny_detector import output_spread

    from picozoo.convert import convert_paddle_dir_to_onnx

    root = tmp_path_factory.mktemp("picodet_engines")
    dirs = build_picodet(root, (320, 320))
    path = convert_paddle_dir_to_onnx(dirs["nopp"], root / "onnx").path
    spread = output_spread(path)
    assert spread["scores"] > 0.1 and spread["dists"] > 1.0, spread
    return path


@pytest.fixture()
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    """``picozoo ARGS`` through the real entry point, in this process: (exit code, stdout,
    stderr). The ``picozoo`` logger's handler the entry point adds is removed afterwards."""
    import logging

    from picozoo.cli import main

    logger = logging.getLogger("picozoo")
    handlers, level = list(logger.handlers), logger.level

    def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        with pytest.raises(SystemExit) as done:
            main(list(args))
        out = capsys.readouterr()
        return int(done.value.code or 0), out.out, out.err

    yield run
    logger.handlers[:] = handlers
    logger.setLevel(level)


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_conversion(store: Store, onnx: Path, engine: str) -> Any:
    """Convert ``onnx`` at fp32 and check everything a conversion promises."""
    from picozoo.runtime import load

    first = _convert(store, onnx, engine)
    prov = first.provenance
    parity = prov.parity
    assert parity is not None and not first.cached and parity.passed is True
    assert parity.reference == "onnxruntime" and parity.seeds == [0, 1, 2, 3]
    rows = parity.outputs
    assert len(rows) == 8 and all(r.ok for r in rows)
    # scores within 1e-4, distance logits within 1e-3: and measured, not zero
    assert all(r.atol == 1e-4 and 0 < (r.max_abs or 0) <= 1e-4 for r in rows[:4]), rows
    assert all(r.atol == 1e-3 and 0 < (r.max_abs or 0) <= 1e-3 for r in rows[4:]), rows
    agreement = parity.agreement
    assert agreement is not None and (agreement.detections or 0) > 0, agreement
    assert agreement.agreement == 1.0, agreement
    # provenance: source ONNX by hash, tools, every output file by hash
    main, siblings = FILES[engine]
    assert first.path.name == main and prov.target == engine
    assert prov.source.format == "onnx" and prov.source.sha256 == _sha(onnx)
    assert prov.tools is not None and prov.tools[engine if engine != "ncnn" else "pnnx"]
    assert prov.options.precision == "fp32"
    siblings_written = prov.output.files or {}
    files = {main: prov.output.sha256, **{n: f.sha256 for n, f in siblings_written.items()}}
    assert sorted(files) == sorted([main, *siblings])
    assert sorted(p.name for p in first.path.parent.iterdir()) == sorted(
        [*files, "provenance.json"]
    )
    for name, sha in files.items():
        assert _sha(first.path.parent / name) == sha
    # pinned, every file
    pins = store.pins()
    for name, sha in files.items():
        pin = pins.get(f"{CONVERTED_PIN_PREFIX}{first.label}/{prov.key}/{name}")
        assert pin is not None and pin.sha256 == sha
    # the converted model runs under the ONNX names, in the ONNX order
    runtime = load(engine, first.path)
    import onnx as onnx_lib

    graph = onnx_lib.load(str(onnx)).graph
    assert runtime.output_names() == [o.name for o in graph.output]
    assert [i.name for i in runtime.inputs()] == [i.name for i in graph.input]
    # the second time: from the cache, same files
    again = _convert(store, onnx, engine)
    assert again.cached and again.path == first.path and again.provenance == prov
    return first


# -- fast tier: the tiny ONNX ------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_tiny_model_converts_proves_caches_and_pins(engine: str, tiny: Path, store: Store) -> None:
    _need(engine)
    _check_conversion(store, tiny, engine)


def _with_pnnx(script: str, onnx: Path, tmp_path: Path, cli: Run) -> tuple[int, str, str, Path]:
    """``convert ONNX --to ncnn`` with a crafted pnnx (a shell ``script`` run in pnnx's scratch
    folder): (exit code, stdout, stderr, cache folder)."""
    fake = tmp_path / "crafted_pnnx"
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    cache = tmp_path / "cache"
    args = ("convert", str(onnx), "--to", "ncnn", "--pnnx-bin", str(fake), "--cache", str(cache))
    return (*cli(*args), cache)


@pytest.mark.slow
def test_fp32_disagreement_is_exit_10_and_nothing_is_cached(
    tiny: Path, tmp_path: Path, cli: Run
) -> None:
    """A converter that writes another model (a crafted pnnx that hands back the NCNN files of
    differently-weighted twin) fails the parity check: exit 10, the outputs named, no file
    kept."""
    _need("ncnn")
    from support.tiny_detector import build_tiny_detector

    twin = build_tiny_detector(tmp_path / "twin" / "twin.onnx", seed=1)
    twin_store = Store(Settings(cache_dir=tmp_path / "twin_cache"))
    made = _convert(twin_store, twin, "ncnn").path
    script = f"cp '{made}' model.ncnn.param && cp '{made.with_suffix('.bin')}' model.ncnn.bin"
    code, out, err, cache = _with_pnnx(script, tiny, tmp_path, cli)
    assert code == ExitCode.PARITY and out == ""
    assert "parity check failed, NCNN and ONNX Runtime disagree: output #0" in err
    assert not list((cache / "converted").rglob("model.ncnn.*"))
    assert not [p for p in (cache / "converted").rglob("*") if p.name.startswith(".tmp")]


@pytest.mark.slow
def test_failing_pnnx_is_exit_9_with_its_last_line(tiny: Path, tmp_path: Path, cli: Run) -> None:
    _need("ncnn")
    script = "echo 'layer Foo not supported' >&2; exit 3"
    code, out, err, cache = _with_pnnx(script, tiny, tmp_path, cli)
    assert code == ExitCode.CONVERSION and out == ""
    assert "pnnx failed on tiny.onnx (exit 3): layer Foo not supported" in err
    assert not list((cache / "converted").rglob("model.ncnn.*"))


@pytest.mark.slow
def test_reduced_precision_is_cached_apart(tiny: Path, store: Store) -> None:
    _need("mnn")
    fp32 = _convert(store, tiny, "mnn")
    int8 = _convert(store, tiny, "mnn", precision="int8")
    assert int8.path != fp32.path and int8.provenance.options.precision == "int8"
    assert int8.path.stat().st_size < fp32.path.stat().st_size  # 8-bit weights
    assert int8.provenance.parity_passed == "reported"


class _Audit:
    """Records subprocess, exec and socket-connect events while ``active``; an audit hook
    cannot be removed, so it is installed once and switched. An audit hook sees every thread:
    only events of the recording thread and of threads started while recording are the
    action's (a thread started earlier, say by another test's import, is not)."""

    EVENTS = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
              "os.fork", "os.forkpty", "socket.connect", "socket.getaddrinfo")  # fmt: skip

    def __init__(self) -> None:
        self.active = False
        self.before: set[int | None] = set()
        self.seen: list[tuple[str, str]] = []
        sys.addaudithook(self)

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if self.active and event in self.EVENTS and threading.get_ident() not in self.before:
            self.seen.append((event, repr(args)[:200]))

    def record(self, action: Callable[[], Any]) -> list[tuple[str, str]]:
        mine = threading.get_ident()
        self.before = {t.ident for t in threading.enumerate()} - {mine}
        self.seen, self.active = [], True
        try:
            action()
        finally:
            self.active = False
        return self.seen


def _only_the_native_child(seen: list[tuple[str, str]]) -> bool:
    """Exactly one process started, picozoo's own child (:mod:`picozoo.native`) that runs the
    recipe; no socket."""
    return [e for e, _ in seen] == ["subprocess.Popen"] and "picozoo.native" in seen[0][1]


def _steps_here(onnx: Path, to: str, precision: str) -> dict[str, Any]:
    """The engine recipe's steps in this process: what the native child runs."""
    import tempfile

    from picozoo.convert.run import _engine_writer
    from picozoo.convert.sources import OnnxFile
    from picozoo.convert.to_engine import produce_here

    with tempfile.TemporaryDirectory() as staging:
        return produce_here(
            OnnxFile(onnx), Path(staging), writer=_engine_writer(to, None), precision=precision,
            image_size=None, input_shape=None, say=lambda _m: None,
        )  # fmt: skip


@pytest.fixture(scope="session")
def audit() -> _Audit:
    return _Audit()


@pytest.mark.slow
def test_mnn_conversion_uses_no_subprocess_pip_or_network(
    tiny: Path, store: Store, audit: _Audit
) -> None:
    """The wheel's ``mnnconvert`` wrapper would run ``pip install`` and post usage data;
    picozoo's conversion (and its parity run) starts no process and opens no socket."""
    _need("mnn")
    # the audit sees what it must (else an empty list would prove nothing)
    canary = audit.record(lambda: subprocess.run(["true"], check=True))
    assert [e for e, _ in canary] == ["subprocess.Popen"]
    with socket.socket() as s:
        s.settimeout(0.2)
        canary = audit.record(lambda: s.connect_ex(("127.0.0.1", 9)))
    assert [e for e, _ in canary] == ["socket.connect"]

    for precision in ("fp32", "fp16", "int8"):
        seen = audit.record(lambda p=precision: _convert(store, tiny, "mnn", precision=p))
        assert _only_the_native_child(seen), seen
        # what that child runs, audited here: the same steps in this process
        seen = audit.record(lambda p=precision: _steps_here(tiny, "mnn", p))
        assert seen == [], seen
    assert "MNN.tools.utils.log" not in sys.modules and "aliyun" not in sys.modules


#: run in a fresh interpreter: an audit hook (on every thread, and inherited by forked
#: children) appends each process/socket event to argv[1], then argv[2:] runs
AUDITED = """
import runpy, sys
EVENTS = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
          "os.forkpty", "socket.connect", "socket.getaddrinfo"}
def hook(event, args, log=sys.argv[1]):
    if event in EVENTS:
        with open(log, "a") as f:
            f.write(event + " " + repr(args)[:300].replace("\\n", " ") + "\\n")
sys.addaudithook(hook)
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _audited(tmp_path: Path, script: str, *args: str) -> list[str]:
    """The events a fresh interpreter running ``script`` caused, in any thread or forked
    child, up to its exit (when pending background work, such as a ThreadPoolExecutor's, has
    run)."""
    run = tmp_path / f"audited-{len(list(tmp_path.glob('audited-*')))}"
    run.mkdir()
    log, path = run / "events.log", run / "script.py"
    path.write_text(script)
    # OpenVINO's telemetry stays quiet where CI, TF_BUILD or JENKINS_URL is set: not here
    quiet = ("CI", "TF_BUILD", "JENKINS_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICOZOO_") and k not in quiet}
    r = subprocess.run(
        [sys.executable, "-c", AUDITED, str(log), str(path), *args],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.slow
def test_openvino_conversion_sends_no_telemetry(tiny: Path, tmp_path: Path) -> None:
    """OpenVINO's ``ov.convert_model`` front end reports usage, and ``import openvino`` posts
    an event from a background thread (a forked process); picozoo imports it without
    ``openvino_telemetry``, reads the ONNX with ``Core.read_model`` and writes with
    ``ov.save_model``: from its import to the process's exit, no process, no socket."""
    _need("openvino")
    # the audit sees what it must, in a background thread too (else [] would prove nothing)
    canary = "import subprocess, threading\n" + (
        "t = threading.Thread(target=subprocess.run, args=(['true'],)); t.start(); t.join()"
    )
    seen = _audited(tmp_path, canary)
    assert [line.split()[0] for line in seen] == ["subprocess.Popen"], seen
    # through convert(): the only process is picozoo's own child running the recipe
    convert = """
import sys
from pathlib import Path
from picozoo.convert import convert
from picozoo.hub.store import Store
from picozoo.settings import Settings
from picozoo.targets import Target
onnx, cache = Path(sys.argv[1]), Path(sys.argv[2])
convert(Store(Settings(cache_dir=cache)), Target(str(onnx), path=onnx), to="openvino",
        precision="fp16")
"""
    seen = _audited(tmp_path, convert, str(tiny), str(tmp_path / "cache"))
    assert [line.split()[0] for line in seen] == ["subprocess.Popen"], seen
    assert "picozoo.native" in seen[0], seen
    # what that child runs (openvino imported, the IR written), from import to exit: nothing
    steps = """
import sys, tempfile
from pathlib import Path
from picozoo.convert.run import _engine_writer
from picozoo.convert.sources import OnnxFile
from picozoo.convert.to_engine import produce_here
with tempfile.TemporaryDirectory() as staging:
    produce_here(OnnxFile(Path(sys.argv[1])), Path(staging),
                 writer=_engine_writer("openvino", None), precision="fp16", image_size=None,
                 input_shape=None, say=lambda _m: None)
assert "openvino" in sys.modules
"""
    assert _audited(tmp_path, steps, str(tiny)) == []


@pytest.mark.slow
def test_ncnn_conversion_runs_only_pnnx(tiny: Path, store: Store, audit: _Audit) -> None:
    _need("ncnn")
    from picozoo.convert.to_ncnn import find_pnnx

    seen = audit.record(lambda: _convert(store, tiny, "ncnn"))
    assert _only_the_native_child(seen), seen
    seen = audit.record(lambda: _steps_here(tiny, "ncnn", "fp32"))
    assert [e for e, _ in seen] == ["subprocess.Popen"]
    assert str(find_pnnx().path) in seen[0][1]
    # pnnx's by-products (.pnnx.param, _pnnx.py, _ncnn.py, .pnnx.onnx, ...) are not kept
    folder = _convert(store, tiny, "ncnn").path.parent
    assert sorted(p.name for p in folder.iterdir()) == [
        "model.ncnn.bin", "model.ncnn.io.json", "model.ncnn.param", "provenance.json"
    ]  # fmt: skip


@pytest.mark.slow
def test_ncnn_runtime_copes_with_non_contiguous_and_batched_inputs(
    tiny: Path, tiny_store: Store
) -> None:
    """ncnn.Mat ignores numpy strides (a transposed view came out with 9.9 max error): the
    adapter copies inputs C-contiguous; NCNN has no batch: items run one by one."""
    _need("ncnn")
    from picozoo.runtime import load

    path = _convert(tiny_store, tiny, "ncnn").path
    ncnn_rt, ort = load("ncnn", path), load("onnxruntime", tiny, reference=True)
    x = np.random.default_rng(5).standard_normal((1, 64, 64, 3)).astype("float32")
    view = x.transpose(0, 3, 1, 2)  # NHWC memory seen as NCHW: not C-contiguous
    assert not view.flags.c_contiguous
    want = ort.run({"image": np.ascontiguousarray(view)})
    got = ncnn_rt.run({"image": view})
    for w, g in zip(want, got, strict=True):
        assert g.shape == w.shape and np.abs(g - w).max() < 1e-4
    # the trap is real: the same view handed to ncnn.Mat as it is gives other numbers
    import ncnn

    ex = ncnn_rt.net.create_extractor()
    ex.input("in0", ncnn.Mat(view[0]))
    raw = np.array(ex.extract("out4")[1]).reshape(want[4].shape)
    assert np.abs(raw - want[4]).max() > 0.1
    # a batch of 2: stacked, each item as if alone
    batch = np.concatenate([np.ascontiguousarray(view), -np.ascontiguousarray(view)])
    two = ncnn_rt.run({"image": batch})
    alone = ncnn_rt.run({"image": -np.ascontiguousarray(view)})
    for b, a, w in zip(two, alone, want, strict=True):
        assert b.shape == (2, *w.shape[1:]) and np.array_equal(b[1], a[0])


@pytest.mark.slow
def test_out_copies_every_file_and_the_copies_run(tiny: Path, tiny_store: Store) -> None:
    _need("ncnn")
    _need("openvino")
    from picozoo.convert.run import copy_out
    from picozoo.runtime import load

    out = tiny_store.root.parent / "out"
    ncnn_result = _convert(tiny_store, tiny, "ncnn")
    ncnn_copy = copy_out(ncnn_result, out)
    ov_copy = copy_out(_convert(tiny_store, tiny, "openvino"), out)
    stem = ncnn_result.label  # local-<folder of the .onnx>
    assert sorted(p.name for p in out.iterdir()) == [
        f"{stem}.bin", f"{stem}.ncnn.bin", f"{stem}.ncnn.io.json", f"{stem}.ncnn.param",
        f"{stem}.ncnn.provenance.json", f"{stem}.openvino.provenance.json", f"{stem}.xml",
    ]  # fmt: skip
    x = {"image": np.random.default_rng(1).standard_normal((1, 3, 64, 64)).astype("float32")}
    want = load("onnxruntime", tiny).run(x)
    for copy, engine in ((ncnn_copy, "ncnn"), (ov_copy, "openvino")):
        runtime = load(engine, copy)
        got = runtime.run(x)
        assert runtime.output_names()[0] == "scores0"
        assert max(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True)) < 1e-3


@pytest.mark.slow
def test_upstream_onnx_of_a_legacy_model_is_the_source(tiny: Path, tmp_path: Path) -> None:
    """A model without inference tarballs converts from upstream's ONNX, pulled from a
    loopback mirror; its provenance says so."""
    _need("openvino")
    from support.artifacts import publish, write_registry
    from support.http_server import serve_directory

    from picozoo.convert import convert
    from picozoo.hub.registry import load_registry

    legacy = "picodet-legacy-s-320"
    reg = load_registry(write_registry(tmp_path / "registry.yaml", [legacy]))
    art = reg.get(legacy).artifact("onnx-nopp")
    publish(art, tiny, tmp_path / "mirror")
    with serve_directory(tmp_path / "mirror") as srv:
        store = Store(Settings(cache_dir=tmp_path / "cache", mirrors=(srv.url,)))
        said: list[str] = []
        model = reg.get(legacy)
        r = convert(store, Target(legacy, model=model), to="openvino", postprocess=False,
                    progress=said.append)  # fmt: skip
    src = r.provenance.source
    assert src.kind == "onnx-nopp" and src.url == art.url and src.onnx == {"from": "upstream"}
    assert src.sha256 == _sha(tiny) and r.provenance.parity_passed is True
    assert f"{legacy}: pulling onnx-nopp ({art.filename})" in said
    assert r.label == legacy and r.path.parent.parent == store.root / "converted" / legacy


# -- missing tools, wrong inputs ---------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    ("engine", "module", "extra"),
    [("openvino", "openvino", "openvino"), ("mnn", "_tools", "mnn"), ("ncnn", "ncnn", "ncnn")],
)
def test_missing_engine_is_exit_11_with_the_install_hint(
    engine: str, module: str, extra: str, tiny: Path, tmp_path: Path, cli: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setitem(sys.modules, module, None)  # "not installed": import fails
    cache = tmp_path / "cache"
    code, out, err = cli("convert", str(tiny), "--to", engine, "--cache", str(cache))
    assert code == ExitCode.MISSING_DEPENDENCY and out == ""
    assert f"this needs the [{extra}] extra: pip install 'picozoo[{extra}]'" in err
    assert not (cache / "converted").exists()


def test_missing_pnnx_is_exit_11_saying_how_to_install_it(
    tiny: Path, tmp_path: Path, cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ncnn")
    monkeypatch.setitem(sys.modules, "pnnx", None)  # no pnnx package ...
    monkeypatch.setenv("PATH", str(tmp_path))  # ... and no pnnx on PATH
    launcher = tmp_path / "pnnx"  # the package's Python launcher is not the executable
    launcher.write_text("#!/usr/bin/python3\nfrom pnnx import pnnx\n")
    launcher.chmod(0o755)
    code, out, err = cli("convert", str(tiny), "--to", "ncnn", "--cache", str(tmp_path / "c"))
    assert code == ExitCode.MISSING_DEPENDENCY and out == ""
    assert err == (
        "picozoo: error: the pnnx converter is not installed (pip install --no-deps pnnx (the "
        "pnnx executable is standalone: skip its torch dependency), or pass --pnnx-bin PATH)\n"
    )
    code, _, err = cli(
        "convert", str(tiny), "--to", "ncnn", "--pnnx-bin", "/nonexistent/pnnx",
        "--cache", str(tmp_path / "c"),
    )  # fmt: skip
    assert code == ExitCode.MISSING_DEPENDENCY and "--pnnx-bin" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "ncnn", "--precision", "int8"], "--precision int8 is not available for ncnn "
         "(use one of: fp32, fp16)"),
        (["--to", "onnx", "--precision", "fp16"], "--precision applies to --to "
         "openvino|mnn|ncnn only"),
        (["--to", "mnn", "--fp16"], "--fp16 applies to --to lite only (use --precision fp16)"),
    ],
)  # fmt: skip
def test_precision_options_are_checked(
    args: list[str], message: str, tiny: Path, tmp_path: Path, cli: Run
) -> None:
    code, out, err = cli("convert", str(tiny), *args, "--cache", str(tmp_path / "c"))
    assert code == ExitCode.USAGE and out == "" and message in err


def test_arm_nb_is_refused_by_runtime_bench_and_convert(tmp_path: Path, cli: Run) -> None:
    """A Paddle-Lite ``.nb`` is ARM code: on x86 it loads and returns garbage in 0.02 ms, so
    nothing in picozoo runs it."""
    from picozoo.runtime import ENGINES, load

    nb = tmp_path / "model.nb"
    nb.write_bytes(os.urandom(256))
    for engine in ENGINES:
        # --engine lite reads the .nb's kernels first: these bytes are no .nb at all
        said = r"not a Paddle-Lite \.nb" if engine == "lite" else r"Paddle-Lite model for ARM"
        with pytest.raises(ModelFileError, match=rf"model\.nb(: | is a ){said}"):
            load(engine, nb)
    cache = str(tmp_path / "cache")
    code, out, err = cli("convert", str(nb), "--to", "openvino", "--cache", cache)
    assert code == ExitCode.USAGE and "Paddle-Lite model for ARM" in err
    code, out, err = cli("bench", str(nb), "--cache", cache, "--min-time", "0")
    assert code == ExitCode.FAILED
    assert "model.nb is a Paddle-Lite model for ARM: picozoo cannot run or bench it" in err
    assert "run it with Paddle-Lite on an ARM device" in out  # the report's failure line


# -- slow tier: the PicoDet-like test model ----------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_picodet_onnx_converts_with_parity(engine: str, picodet_onnx: Path, store: Store) -> None:
    _need(engine)
    _check_conversion(store, picodet_onnx, engine)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_reduced_precision_reports_error_and_agreement(
    engine: str, picodet_onnx: Path, store: Store
) -> None:
    """bf16 / int8 / fp16 are reported, not failed: the error is measured (beyond the fp32
    tolerance, so the precision really was reduced) and detections still mostly agree."""
    _need(engine)
    precision = REDUCED[engine]
    r = _convert(store, picodet_onnx, engine, precision=precision)
    parity = r.provenance.parity
    assert parity is not None
    assert parity.passed == "reported" and parity.precision == precision
    settings = parity.engine_settings or {}
    if engine == "openvino":
        from support.cpu import BF16_FLAGS, has_bf16

        # by CPU feature (any vendor), never by CPU name: with one of BF16_FLAGS OpenVINO
        # must run bf16; without, it may fall back to fp32 (then there is nothing to measure)
        if "bfloat16" not in settings["INFERENCE_PRECISION_HINT"]:
            assert not has_bf16(), settings
            pytest.skip(f"this CPU has none of {', '.join(BF16_FLAGS)}: OpenVINO runs fp32")
    assert parity.within_fp32_tolerance is False
    assert 1e-3 < parity.max_abs < 1.0, parity.outputs
    agreement = parity.agreement
    assert agreement is not None and agreement.detections is not None, agreement
    assert agreement.agreement is not None, agreement
    assert agreement.detections >= 100 and agreement.agreement >= 0.95, agreement
    assert agreement.mean_iou is not None and agreement.mean_iou > 0.9
